//! The whole file: the top-level tables, each parsed on its own, then
//! every check run on them in order, building the [`Config`].

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn parse_all(&mut self) -> Option<Config> {
        let root: &'r Spanned<DeValue<'t>> = self.root;
        let DeValue::Table(top) = root.get_ref() else {
            return None;
        };
        let mut sections: BTreeMap<&str, &'r Spanned<DeValue<'t>>> = BTreeMap::new();
        const ALLOWED: &str =
            "allowed top-level tables: orchestrator, detection, sites, frontends, groups";
        for (k, v) in top.iter() {
            match k.get_ref().as_ref() {
                "orchestrator" => sections.insert("orchestrator", v),
                "detection" => sections.insert("detection", v),
                "sites" => sections.insert("sites", v),
                "frontends" => sections.insert("frontends", v),
                "groups" => sections.insert("groups", v),
                other => {
                    let key = fmt_path("", &[Seg::Key(other.to_string())]);
                    self.push(k.span(), &key, None, format!("unknown key; {ALLOWED}"));
                    None
                }
            };
        }

        let orchestrator: Option<OrchestratorConfig> = match sections.get("orchestrator") {
            Some(v) => self.de("orchestrator", v),
            None => {
                self.push(
                    0..0,
                    "orchestrator",
                    None,
                    "missing table [orchestrator] (needs listen, data_dir, operator_token)",
                );
                None
            }
        };
        let detection: Option<Detection> = match sections.get("detection") {
            Some(v) => self.de("detection", v),
            None => Some(Detection::default()),
        };
        let (sites, site_names) = self.named::<SiteConfig>("sites", sections.get("sites").copied());
        let (frontend_entries, frontend_names) =
            self.named::<FrontendEntry>("frontends", sections.get("frontends").copied());
        let (groups, _) = self.named::<GroupConfig>("groups", sections.get("groups").copied());

        if let Some(o) = &orchestrator {
            self.check_orchestrator(o);
        }
        if let Some(d) = &detection {
            self.check_detection(d);
        }
        if let Some(o) = &orchestrator {
            if o.tls.as_ref().is_some_and(|t| t.client_ca.is_some()) {
                self.check_site_cert_names(sections.get("sites").copied(), &sites);
            }
        }
        for (name, site) in &sites {
            self.check_site(name, site);
            if let Some(d) = &detection {
                self.check_report_interval(name, site, d);
            }
        }
        let mut frontends = BTreeMap::new();
        let mut haproxy_frontends = BTreeMap::new();
        let mut frontend_kinds = BTreeMap::new();
        for (name, fe) in &frontend_entries {
            let kind_key = fmt_path(
                "frontends",
                &[Seg::Key(name.clone()), Seg::Key("kind".into())],
            );
            if self.covered(&kind_key) {
                // A bad kind is reported already; checking the keys against a
                // guessed kind would only add confusing problems.
                continue;
            }
            let kind = fe.kind.as_ref().map(|k| *k.get_ref()).unwrap_or_default();
            frontend_kinds.insert(name.clone(), kind);
            match self.check_frontend(name, fe) {
                Some(CheckedFrontend::Builtin(c)) => {
                    frontends.insert(name.clone(), c);
                }
                Some(CheckedFrontend::Haproxy(c)) => {
                    haproxy_frontends.insert(name.clone(), c);
                }
                None => {}
            }
        }
        for (name, g) in &groups {
            self.check_group(name, g, &site_names, &frontend_names, &frontend_kinds);
            self.check_identities(name, g, &sites);
            self.check_hook_times(name, g, &sites);
            if let Some(f) = g.frontend_scheme() {
                self.check_shared_site_backends(name, f);
            }
        }
        if let Some(o) = &orchestrator {
            self.check_frontend_client_certs(o, &frontends);
        }
        self.check_frontend_binds(&frontends, &groups);
        self.check_shared_records(&groups);
        self.check_shared_backends(&groups, &haproxy_frontends);
        self.check_shared_data(&groups);
        self.check_looping_backends(&groups, &frontends);
        if let Some(o) = &orchestrator {
            self.check_zone_ids(o, &frontends, &groups);
            self.check_report_sizes(o, &sites, &groups);
        }
        if let (true, Some(o)) = (self.deployment, &orchestrator) {
            self.check_token_refs(o, &sites, &frontends);
            self.check_dial_addrs(o, &frontends, &haproxy_frontends, &groups);
            self.check_shared_hosts(&o.data_dir, &frontends, &groups);
            self.check_probed_addrs(&sites, &groups);
        }

        Some(Config {
            path: self.path.clone(),
            orchestrator: orchestrator?,
            detection: detection?,
            sites,
            frontends,
            haproxy_frontends,
            groups,
            secret_vars: std::mem::take(&mut self.secret_vars),
        })
    }
}
