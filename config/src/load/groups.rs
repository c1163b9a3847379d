//! The checks of `[groups.NAME]` and its cross-references: the sites it
//! names, its scheme's table and frontends, its replication, duration
//! bounds, each problem at its file:line:col.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
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
