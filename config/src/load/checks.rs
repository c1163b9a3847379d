//! The per-table checks of failover.conf not owned by a file of their own
//! (`orchestrator.rs`, `schemes.rs`, `replication.rs`, …): sites, detection,
//! checks and probes, groups and their cross-references (sites of groups,
//! frontends of schemes), duration bounds, each problem at its file:line:col.

use super::*;

/// The longest name of a check, an endpoint or a hook, in characters.
const MAX_LABEL_CHARS: usize = 128;

/// The shortest time allowed for an answer (see [`Cx::timeout_floor`]):
/// `"1ns"` or `"500us"` (a unit mistaken) passed, and each run of the
/// check, hook or update it bounds was cut off before any host could
/// answer; 10 ms is the floor `detection.probe_timeout` has too.
pub(super) const MIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(10);

impl<'t, 'r> Cx<'t, 'r> {
    /// A directory of durable state (the orchestrator's store, an agent's
    /// authority, a frontend's fence) must not depend on the directory a
    /// process happens to start in: a restart from elsewhere would forget
    /// every epoch it holds.
    pub(super) fn check_state_dir(&mut self, key: &str, dir: &std::path::Path) {
        if dir.as_os_str().as_encoded_bytes().contains(&0) {
            self.push(
                self.at(key),
                key,
                self.value_at(key),
                "holds a NUL character (\\u0000), which no file name can hold: the directory could \
                 never be created or opened; remove it",
            );
        } else if !dir.is_absolute() {
            self.push(
                self.at(key),
                key,
                Some(format!("{:?}", dir.display().to_string())),
                "must be an absolute path: durable state (epochs, roles) must not depend on the directory a process starts in",
            );
        }
    }

    /// Report a zero duration at `key`.
    pub(super) fn positive(&mut self, key: &str) {
        let value = self.value_at(key);
        self.push(
            self.at(key),
            key,
            value,
            format!("must be a positive duration; expected {DURATION_HINT}"),
        );
    }

    /// `key` (a duration) must be at least `min` when it is not zero (zero
    /// has its own message); `why` completes "(…" in the message.
    pub(super) fn at_least(
        &mut self,
        key: &str,
        v: std::time::Duration,
        min: std::time::Duration,
        why: &str,
    ) {
        if !v.is_zero() && v < min {
            let value = self.value_at(key);
            self.push(
                self.at(key),
                key,
                value,
                format!(
                    "must be at least \"{}\" ({why}",
                    humantime::format_duration(min)
                ),
            );
        }
    }

    /// `key`, the time allowed for something another process or host must
    /// answer (a check or probe, a hook, a runbook step, a DNS update, an
    /// etcd request, a resync), must be at least [`MIN_TIMEOUT`] when it is
    /// not zero (zero has its own message).
    pub(super) fn timeout_floor(&mut self, key: &str, v: std::time::Duration) {
        self.at_least(
            key,
            v,
            MIN_TIMEOUT,
            "shorter, nothing answers within it: it would fail every time)",
        );
    }

    /// `key` (a duration) must be at most `max`; `why` completes "(…" in the message.
    pub(super) fn at_most(
        &mut self,
        key: &str,
        v: std::time::Duration,
        max: std::time::Duration,
        why: &str,
    ) {
        if v > max {
            let value = self.value_at(key);
            self.push(
                self.at(key),
                key,
                value,
                format!(
                    "must be at most \"{}\" ({why}",
                    humantime::format_duration(max)
                ),
            );
        }
    }

    pub(super) fn check_detection(&mut self, d: &Detection) {
        for (key, v) in [("detection.fall", d.fall), ("detection.rise", d.rise)] {
            if v == 0 {
                self.push(self.at(key), key, Some("0".into()), "must be at least 1");
            }
        }
        for (key, v) in [
            ("detection.interval", d.interval),
            ("detection.probe_timeout", d.probe_timeout),
            ("detection.failover_window", d.failover_window),
        ] {
            if v.is_zero() {
                self.positive(key);
            }
        }
        // A round or a probe shorter than a network round trip between
        // sites judges nothing: the detector would spin and every probe
        // time out.
        for (key, v) in [
            ("detection.interval", d.interval),
            ("detection.probe_timeout", d.probe_timeout),
        ] {
            self.at_least(
                key,
                v,
                std::time::Duration::from_millis(10),
                "shorter judges nothing: the loop spins and probes time out)",
            );
        }
        if d.agent_timeout <= d.interval {
            let key = "detection.agent_timeout";
            self.push(
                self.at(key),
                key,
                Some(format!(
                    "\"{}\"",
                    humantime::format_duration(d.agent_timeout)
                )),
                format!(
                    "must be longer than detection.interval ({})",
                    humantime::format_duration(d.interval)
                ),
            );
        }
    }

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

    /// Report the name of a check, an endpoint or a hook at `key` unless it
    /// is a label: it is written into reports, events, alerts and log
    /// lines, so it must say something (not empty or blank), stay one line
    /// (no control characters: a newline in a name would forge a log line
    /// of its own) and stay short.
    fn check_label(&mut self, key: &str, label: &str) {
        let why = if label.trim().is_empty() {
            "must name it: not empty or blank"
        } else if label.chars().any(char::is_control) {
            "must be one line of text: no control characters (a newline, a tab, an escape)"
        } else if label.chars().count() > MAX_LABEL_CHARS {
            "is too long: at most 128 characters"
        } else {
            return;
        };
        self.push(self.at(key), key, Some(format!("{label:?}")), why);
    }

    /// Report `u` at `key` unless it is an http(s) URL the services accept
    /// (see [`http_url_problem`]); `example` ends the message. True when it
    /// was reported.
    pub(super) fn check_url(&mut self, key: &str, u: &str, example: &str) -> bool {
        let Some((why, echo)) = http_url_problem(u) else {
            return false;
        };
        self.push(
            self.at(key),
            key,
            echo.then(|| format!("{u:?}")),
            format!("{why}; {example}"),
        );
        true
    }

    pub(super) fn check_secret(&mut self, key: &str, s: &SecretRef) {
        if let Some(var) = &s.env {
            self.secret_vars.insert(var.clone());
        }
        // Where the key is only when something is wrong: finding it is a
        // walk of its tables, and a config names a secret per site.
        match (&s.file, &s.env) {
            (Some(_), Some(_)) => self.push(
                self.at(key),
                key,
                None,
                "give exactly one of `file` or `env`, not both",
            ),
            (None, None) => self.push(
                self.at(key),
                key,
                None,
                "give where the secret comes from: { file = \"/path\" } or { env = \"VAR\" }",
            ),
            // The value is not echoed: a secret pasted here by mistake
            // must not reach a terminal or a log.
            (None, Some(e))
                if !e.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    || !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                let k = format!("{key}.env");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "must name an environment variable (letters, digits and _, not starting with a digit), \
                     e.g. \"WARDEN_TOKEN\"",
                )
            }
            (Some(f), None) if f.as_os_str().as_encoded_bytes().contains(&0) => {
                let k = format!("{key}.file");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "holds a NUL character (\\u0000), which no file name can hold: the secret \
                     could never be read; remove it",
                )
            }
            (Some(f), None) if !f.as_os_str().is_empty() && !f.is_absolute() => {
                let k = format!("{key}.file");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "must be an absolute path (a relative one would depend on the directory \
                     each service starts in), e.g. \"/etc/warden/NAME.token\"",
                )
            }
            (Some(f), None) if f.as_os_str().is_empty() => {
                let k = format!("{key}.file");
                self.push(
                    self.at(&k),
                    &k,
                    Some("\"\"".into()),
                    "must be the path of a file holding the secret",
                )
            }
            _ => {}
        }
    }

    pub(super) fn check_check(&mut self, key: &str, c: &CheckSpec) {
        let kspan = c.kind.span();
        match c.kind.get_ref() {
            CheckKind::Http => match &c.url {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.url"),
                    None,
                    "kind \"http\" needs url = \"http://host:port/path\"",
                ),
                Some(u) => {
                    let s = u.get_ref();
                    if let Some((why, echo)) = http_url_problem(s) {
                        self.push(
                            u.span(),
                            &format!("{key}.url"),
                            echo.then(|| format!("{s:?}")),
                            why,
                        );
                    }
                }
            },
            CheckKind::Tcp => match &c.address {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.address"),
                    None,
                    "kind \"tcp\" needs address = \"host:port\"",
                ),
                Some(a) => {
                    if !host_port(a.get_ref()) {
                        self.push(
                            a.span(),
                            &format!("{key}.address"),
                            Some(format!("{:?}", a.get_ref())),
                            "must be host:port, e.g. \"db.ca.example.net:5432\"",
                        );
                    }
                }
            },
            CheckKind::Command => match &c.command {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.command"),
                    None,
                    "kind \"command\" needs command = [\"/path/to/prog\", \"arg\", ...]",
                ),
                Some(cmd) => {
                    if let Some(why) = argv_problem(cmd.get_ref()) {
                        self.push(
                            cmd.span(),
                            &format!("{key}.command"),
                            self.snippet(&cmd.span()),
                            why,
                        );
                    }
                }
            },
            CheckKind::Dns => {
                match &c.server {
                    None => self.push(
                        kspan.clone(),
                        &format!("{key}.server"),
                        None,
                        "kind \"dns\" needs server = \"IP[:PORT]\" (the DNS server asked)",
                    ),
                    Some(sv) if c.dns_server().is_none() => self.push(
                        sv.span(),
                        &format!("{key}.server"),
                        Some(format!("{:?}", sv.get_ref())),
                        "must be an IP address with an optional port other than 0 (53 when left out), e.g. \"10.1.0.53\" or \"[2001:db8::53]:5353\"",
                    ),
                    Some(sv) => {
                        let why = c.dns_server().and_then(|a| dns_server_wildcard(a.ip()));
                        if let Some(why) = why {
                            self.push(
                                sv.span(),
                                &format!("{key}.server"),
                                Some(format!("{:?}", sv.get_ref())),
                                why,
                            );
                        }
                    }
                }
                match &c.query {
                    None => self.push(
                        kspan.clone(),
                        &format!("{key}.query"),
                        None,
                        "kind \"dns\" needs query = \"name.example.org\" (the name asked for)",
                    ),
                    Some(q) if !dns_name(q) => {
                        let k = format!("{key}.query");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{q:?}")),
                            "must be a DNS name: labels of 1-63 letters, digits, '-' or '_', 253 characters at most",
                        )
                    }
                    Some(_) => {}
                }
                // An A answer is an IPv4 address, an AAAA answer an IPv6
                // one: any other `expect` matches no answer, and the check
                // would fail at every run.
                let rtype = c
                    .record_type
                    .as_deref()
                    .unwrap_or("A")
                    .to_ascii_uppercase();
                if let Some(want) = &c.expect {
                    let ip = want.trim().parse::<std::net::IpAddr>().ok();
                    let fits = match rtype.as_str() {
                        "A" => ip.is_some_and(|ip| ip.is_ipv4()),
                        "AAAA" => ip.is_some_and(|ip| ip.is_ipv6()),
                        _ => true,
                    };
                    if !fits {
                        let k = format!("{key}.expect");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{want:?}")),
                            format!(
                                "a {rtype} record holds an {} address, and this is none: no \
                                 answer could match it, so the check would fail at every run \
                                 (give the address, or the record_type whose value this is)",
                                if rtype == "A" { "IPv4" } else { "IPv6" }
                            ),
                        );
                    }
                }
                if let Some(t) = &c.record_type {
                    if !CheckSpec::DNS_TYPES.contains(&t.to_ascii_uppercase().as_str()) {
                        let k = format!("{key}.record_type");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{t:?}")),
                            format!("must be one of {}", CheckSpec::DNS_TYPES.join(", ")),
                        );
                    }
                }
            }
            kind @ (CheckKind::Keystone | CheckKind::Swift) => match &c.keystone {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.keystone"),
                    None,
                    format!(
                        "kind \"{}\" needs keystone = {{ auth_url = \"http://host:5000/v3\", user = …, \
                         password = {{ file = … }}, project = … }} (or an application credential)",
                        if *kind == CheckKind::Swift { "swift" } else { "keystone" }
                    ),
                ),
                Some(k) => self.check_keystone(&format!("{key}.keystone"), k),
            },
        }
        let kind = *c.kind.get_ref();
        for (name, present, used) in [
            (
                "keystone",
                c.keystone.is_some(),
                matches!(kind, CheckKind::Keystone | CheckKind::Swift),
            ),
            ("container", c.container.is_some(), kind == CheckKind::Swift),
            ("server", c.server.is_some(), kind == CheckKind::Dns),
            ("query", c.query.is_some(), kind == CheckKind::Dns),
            (
                "record_type",
                c.record_type.is_some(),
                kind == CheckKind::Dns,
            ),
            ("expect", c.expect.is_some(), kind == CheckKind::Dns),
        ] {
            if present && !used {
                let k = format!("{key}.{name}");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "not used by this kind (keystone: keystone and swift; container: swift; server, query, record_type, expect: dns); remove it",
                );
            }
        }
        if let Some(cn) = &c.container {
            if cn.is_empty()
                || cn == "."
                || cn == ".."
                || cn.contains('/')
                || cn.len() > 256
                || cn.chars().any(char::is_control)
            {
                let k = format!("{key}.container");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{cn:?}")),
                    "must be a Swift container name: 1-256 bytes, not \".\" or \"..\", no '/', no control characters",
                );
            }
        }
        if let Some(s) = c.expect_status {
            if !(100..=599).contains(&s) {
                let k = format!("{key}.expect_status");
                self.push(
                    self.at(&k),
                    &k,
                    Some(s.to_string()),
                    "must be an HTTP status code (100-599)",
                );
            }
        }
        if c.timeout.is_zero() {
            self.positive(&format!("{key}.timeout"));
        }
        self.timeout_floor(&format!("{key}.timeout"), c.timeout);
        if c.interval.is_some_and(|d| d.is_zero()) {
            self.positive(&format!("{key}.interval"));
        }
        if c.interval.is_some_and(|d| d > MAX_CHECK_INTERVAL) {
            let k = format!("{key}.interval");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "at most 5m: the reports between two runs repeat the last result, so a longer one \
                 would hide a failure for that long",
            );
        }
    }

    pub(super) fn check_group(
        &mut self,
        name: &str,
        g: &GroupConfig,
        sites: &BTreeSet<String>,
        frontends: &BTreeSet<String>,
        frontend_kinds: &BTreeMap<String, FrontendDriverKind>,
    ) {
        let list = g.sites.get_ref();
        if list.len() < 2 {
            self.push(
                g.sites.span(),
                &format!("groups.{name}.sites"),
                self.snippet(&g.sites.span()),
                "a group needs at least two sites (primary first, then standbys)",
            );
        }
        let mut seen = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let key = format!("groups.{name}.sites[{i}]");
            if !sites.contains(s.get_ref()) {
                let known: Vec<_> = sites.iter().cloned().collect();
                self.push(
                    s.span(),
                    &key,
                    Some(format!("{:?}", s.get_ref())),
                    format!("unknown site; defined sites: [{}]", known.join(", ")),
                );
            }
            if seen.contains(s.get_ref()) {
                self.push(
                    s.span(),
                    &key,
                    Some(format!("{:?}", s.get_ref())),
                    "site listed twice",
                );
            }
            seen.push(s.get_ref().clone());
        }
        let scheme = *g.scheme.get_ref();
        let need_fe = matches!(scheme, Scheme::Frontend | Scheme::Hybrid);
        let need_dns = matches!(scheme, Scheme::Dns | Scheme::Hybrid);
        let scheme_shown = format!("\"{}\"", scheme.as_str());
        let scheme_key = format!("groups.{name}.scheme");
        // (A table written as [[...]] is reported already.)
        if need_fe && g.frontend.is_none() && !self.covered(&format!("groups.{name}.frontend")) {
            self.push(
                g.scheme.span(),
                &scheme_key,
                Some(scheme_shown.clone()),
                format!(
                    "scheme \"{}\" needs a [groups.{name}.frontend] table",
                    scheme.as_str()
                ),
            );
        }
        if need_dns && g.dns.is_none() && !self.covered(&format!("groups.{name}.dns")) {
            self.push(
                g.scheme.span(),
                &scheme_key,
                Some(scheme_shown.clone()),
                format!(
                    "scheme \"{}\" needs a [groups.{name}.dns] table",
                    scheme.as_str()
                ),
            );
        }
        if !need_fe {
            if let Some(f) = &g.frontend {
                self.push(
                    f.span(),
                    &format!("groups.{name}.frontend"),
                    None,
                    format!("scheme \"{}\" does not use a frontend table; remove it or use scheme = \"frontend\" or \"hybrid\"", scheme.as_str()),
                );
            }
        }
        if !need_dns {
            if let Some(d) = &g.dns {
                self.push(
                    d.span(),
                    &format!("groups.{name}.dns"),
                    None,
                    format!("scheme \"{}\" does not use a dns table; remove it or use scheme = \"dns\" or \"hybrid\"", scheme.as_str()),
                );
            }
        }
        if let Some(cmd) = &g.fence_command {
            if let Some(why) = argv_problem(cmd) {
                let k = format!("groups.{name}.fence_command");
                self.push(self.at(&k), &k, self.value_at(&k), why);
            }
        }
        if g.step_timeout.is_zero() {
            self.positive(&format!("groups.{name}.step_timeout"));
        }
        self.timeout_floor(&format!("groups.{name}.step_timeout"), g.step_timeout);
        // (A frontend table the scheme does not use is reported above; its
        // contents are not checked.)
        if let Some(fs) = g.frontend.as_ref().filter(|_| need_fe) {
            self.check_frontend_scheme(name, fs, list, sites, frontends, frontend_kinds);
            if scheme == Scheme::Hybrid {
                // The agents probe a hybrid group's frontends as peers, and a
                // probe names its target only: one name for a site and a
                // frontend would make a site's probes evidence about the
                // frontend (and the frontend unprobed by the agents).
                for (i, fe) in fs.get_ref().frontends.iter().enumerate() {
                    if sites.contains(fe.get_ref()) {
                        self.push(
                            fe.span(),
                            &format!("groups.{name}.frontend.frontends[{i}]"),
                            Some(format!("{:?}", fe.get_ref())),
                            "is also a site's name: the agents' probes name sites and a hybrid group's frontends alike; rename the frontend",
                        );
                    }
                }
            }
        }
        if let Some(d) = &g.dns {
            let fe_names: Option<Vec<String>> = g.frontend.as_ref().map(|f| {
                f.get_ref()
                    .frontends
                    .iter()
                    .map(|s| s.get_ref().clone())
                    .collect()
            });
            self.check_dns(name, scheme, d, list, sites, fe_names);
        }
        if let Some(r) = &g.replication {
            self.check_replication(name, r.get_ref(), list);
        }
    }
}

/// The longest `interval` a check may have.
const MAX_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// A DNS name as a `dns` check may ask for it (a trailing dot allowed).
fn dns_name(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
