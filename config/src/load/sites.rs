//! The checks of `[sites.NAME]`: its token, state directory, checks and
//! endpoints, identity and hooks; its report interval against
//! `detection.agent_timeout`, its hooks' timeouts against a group's step.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    /// A site's own report interval must be shorter than
    /// `detection.agent_timeout`: an agent that reports less often is
    /// judged stale between its reports, and fencing and runbook commands
    /// that wait for a fresh agent fail half the time.
    pub(super) fn check_report_interval(&mut self, name: &str, site: &SiteConfig, d: &Detection) {
        let Some(every) = site.report_interval else {
            return;
        };
        if !every.is_zero() && every >= d.agent_timeout {
            let key = format!("sites.{name}.report_interval");
            self.push(
                self.at(&key),
                &key,
                Some(format!("\"{}\"", humantime::format_duration(every))),
                format!(
                    "must be shorter than detection.agent_timeout ({}): an agent reporting less often is judged stale between its reports",
                    humantime::format_duration(d.agent_timeout)
                ),
            );
        }
    }

    /// A runbook waits `step_timeout` for a promote's outcome (and for a
    /// demote's under `fencing = "required"`): hooks allowed to run longer
    /// in all make a step fail after the site was promoted — the
    /// failover reported failed and the traffic not moved, with the hooks
    /// still done. Their timeouts added up must fit in the step.
    pub(super) fn check_hook_times(
        &mut self,
        group: &str,
        g: &GroupConfig,
        sites: &BTreeMap<String, SiteConfig>,
    ) {
        let step = g.step_timeout;
        for s in g.sites.get_ref() {
            let Some(site) = sites.get(s.get_ref()) else {
                continue;
            };
            let mut lists = vec![("promote", &site.promote)];
            if g.fencing == Fencing::Required {
                lists.push(("demote", &site.demote));
            }
            for (kind, hooks) in lists {
                let total = hooks.iter().fold(std::time::Duration::ZERO, |t, h| {
                    t.saturating_add(h.timeout)
                });
                if total <= step || hooks.is_empty() {
                    continue;
                }
                let key = format!("sites.{}.{kind}", s.get_ref());
                self.push(
                    self.at(&key),
                    &key,
                    None,
                    format!(
                        "the {kind} hooks of site {} may run for {} in all (their timeouts added), longer than groups.{group}.step_timeout ({}), \
                         which is all a runbook waits for them: lower the hooks' timeouts or raise step_timeout",
                        s.get_ref(),
                        humantime::format_duration(total),
                        humantime::format_duration(step)
                    ),
                );
            }
        }
    }

    pub(super) fn check_site(&mut self, name: &str, site: &SiteConfig) {
        self.check_secret(&format!("sites.{name}.agent_token"), &site.agent_token);
        if let Some(d) = &site.state_dir {
            self.check_state_dir(&format!("sites.{name}.state_dir"), d);
        }
        if let Some(c) = &site.client_tls {
            self.check_client_tls(&format!("sites.{name}.client_tls"), c);
        }
        if let Some(every) = site.report_interval {
            self.at_least(
                &format!("sites.{name}.report_interval"),
                every,
                std::time::Duration::from_millis(10),
                "shorter: an agent that reports without rest)",
            );
        }
        if site.report_interval.is_some_and(|d| d.is_zero()) {
            self.positive(&format!("sites.{name}.report_interval"));
        }
        for (list, checks) in [("checks", &site.checks), ("endpoints", &site.endpoints)] {
            let mut seen = BTreeSet::new();
            for (i, c) in checks.iter().enumerate() {
                let key = format!("sites.{name}.{list}[{i}]");
                self.check_check(&key, c);
                if list == "endpoints" && c.interval.is_some() {
                    let k = format!("{key}.interval");
                    self.push(
                        self.at(&k),
                        &k,
                        self.value_at(&k),
                        "endpoints are probed on the prober's schedule (detection.interval): remove it",
                    );
                }
                if list == "endpoints"
                    && !matches!(
                        c.kind.get_ref(),
                        CheckKind::Http | CheckKind::Tcp | CheckKind::Dns
                    )
                {
                    self.push(
                        c.kind.span(),
                        &format!("{key}.kind"),
                        self.snippet(&c.kind.span()),
                        "endpoints are probed from other hosts: allowed kinds are \"http\", \"tcp\" and \"dns\"",
                    );
                }
                self.check_label(&format!("{key}.name"), &c.name);
                if !seen.insert(c.name.as_str()) {
                    let k = format!("{key}.name");
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{:?}", c.name)),
                        format!("name used twice in sites.{name}.{list}; names must be unique"),
                    );
                }
            }
        }
        if let Some(id) = &site.identity {
            self.check_identity(&format!("sites.{name}.identity"), id);
        }
        for (list, hooks) in [("promote", &site.promote), ("demote", &site.demote)] {
            for (i, h) in hooks.iter().enumerate() {
                self.check_label(&format!("sites.{name}.{list}[{i}].name"), &h.name);
                if let Some(why) = argv_problem(h.command.get_ref()) {
                    self.push(
                        h.command.span(),
                        &format!("sites.{name}.{list}[{i}].command"),
                        self.snippet(&h.command.span()),
                        why,
                    );
                }
                let k = format!("sites.{name}.{list}[{i}].timeout");
                if h.timeout.is_zero() {
                    self.positive(&k);
                }
                self.timeout_floor(&k, h.timeout);
            }
        }
    }
}
