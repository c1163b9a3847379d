//! The per-table checks of failover.conf: what each table's keys may be,
//! and the cross-references between tables (sites of groups, frontends of
//! schemes, replication sites), each problem at its file:line:col.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_orchestrator(&mut self, o: &OrchestratorConfig) {
        self.check_secret("orchestrator.operator_token", &o.operator_token);
        if o.max_body_bytes < 1024 {
            self.push(
                self.at("orchestrator.max_body_bytes"),
                "orchestrator.max_body_bytes",
                Some(o.max_body_bytes.to_string()),
                "must be at least 1024",
            );
        }
        if let Some(u) = &o.url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                self.push(
                    self.at("orchestrator.url"),
                    "orchestrator.url",
                    Some(format!("{u:?}")),
                    "must be an http:// or https:// URL, e.g. \"https://warden.example.net:7000\"",
                );
            }
        }
        // long_poll may be 0 (no long-polling); a zero reconcile interval would spin.
        if o.reconcile_interval.is_zero() {
            self.positive("orchestrator.reconcile_interval");
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

    pub(super) fn check_site(&mut self, name: &str, site: &SiteConfig) {
        self.check_secret(&format!("sites.{name}.agent_token"), &site.agent_token);
        if site.report_interval.is_some_and(|d| d.is_zero()) {
            self.positive(&format!("sites.{name}.report_interval"));
        }
        for (list, checks) in [("checks", &site.checks), ("endpoints", &site.endpoints)] {
            let mut seen = BTreeSet::new();
            for (i, c) in checks.iter().enumerate() {
                let key = format!("sites.{name}.{list}[{i}]");
                self.check_check(&key, c);
                if list == "endpoints" && c.kind.get_ref() == &CheckKind::Command {
                    self.push(
                        c.kind.span(),
                        &format!("{key}.kind"),
                        Some("\"command\"".into()),
                        "endpoints are probed from other hosts: allowed kinds are \"http\" and \"tcp\"",
                    );
                }
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
        for (list, hooks) in [("promote", &site.promote), ("demote", &site.demote)] {
            for (i, h) in hooks.iter().enumerate() {
                if h.command.get_ref().is_empty() || h.command.get_ref()[0].is_empty() {
                    self.push(
                        h.command.span(),
                        &format!("sites.{name}.{list}[{i}].command"),
                        self.snippet(&h.command.span()),
                        "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                    );
                }
                if h.timeout.is_zero() {
                    self.positive(&format!("sites.{name}.{list}[{i}].timeout"));
                }
            }
        }
    }

    pub(super) fn check_secret(&mut self, key: &str, s: &SecretRef) {
        let span = self.at(key);
        match (&s.file, &s.env) {
            (Some(_), Some(_)) => self.push(
                span,
                key,
                None,
                "give exactly one of `file` or `env`, not both",
            ),
            (None, None) => self.push(
                span,
                key,
                None,
                "give where the secret comes from: { file = \"/path\" } or { env = \"VAR\" }",
            ),
            (None, Some(e)) if e.is_empty() || e.contains(['=', '\0']) => {
                let k = format!("{key}.env");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{e:?}")),
                    "must name an environment variable, e.g. \"WARDEN_TOKEN\"",
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
                    if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() < 10 {
                        self.push(
                            u.span(),
                            &format!("{key}.url"),
                            Some(format!("{s:?}")),
                            "must be an http:// or https:// URL",
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
                Some(cmd) if cmd.get_ref().is_empty() || cmd.get_ref()[0].is_empty() => self.push(
                    cmd.span(),
                    &format!("{key}.command"),
                    self.snippet(&cmd.span()),
                    "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                ),
                _ => {}
            },
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
        if need_fe && g.frontend.is_none() {
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
        if need_dns && g.dns.is_none() {
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
            if cmd.is_empty() || cmd[0].is_empty() {
                let k = format!("groups.{name}.fence_command");
                self.push(
                    self.at(&k),
                    &k,
                    self.value_at(&k),
                    "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                );
            }
        }
        if g.step_timeout.is_zero() {
            self.positive(&format!("groups.{name}.step_timeout"));
        }
        // (A frontend table the scheme does not use is reported above; its
        // contents are not checked.)
        if let Some(fs) = g.frontend.as_ref().filter(|_| need_fe) {
            self.check_frontend_scheme(name, fs, list, sites, frontends, frontend_kinds);
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

    /// `[groups.NAME.replication]`: the plan's keys are there for every site
    /// of the group, and keys of other plans are not.
    pub(super) fn check_replication(
        &mut self,
        name: &str,
        r: &crate::model::ReplicationConfig,
        list: &[Spanned<String>],
    ) {
        use crate::model::ReplicationPlan as P;
        let base = format!("groups.{name}.replication");
        let plan = r.plan;
        let shown = format!("\"{}\"", plan.as_str());
        for (k, d) in [
            ("resync_lag_max", r.resync_lag_max),
            ("resync_timeout", r.resync_timeout),
            ("interval", r.interval),
        ] {
            if d.is_zero() {
                self.positive(&format!("{base}.{k}"));
            }
        }
        if r.concurrency == 0 {
            let k = format!("{base}.concurrency");
            self.push(self.at(&k), &k, self.value_at(&k), "must be at least 1");
        }
        let share = r.max_delete_share;
        if !share.is_finite() || !(0.0..=1.0).contains(&share) {
            let k = format!("{base}.max_delete_share");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "must be a share from 0.0 to 1.0 (e.g. 0.10: a pass may delete up to 10 % of the peer's items)",
            );
        }
        if let Some(s) = &r.sync_key {
            self.check_secret(&format!("{base}.sync_key"), s);
        }
        let group_sites: Vec<String> = list.iter().map(|s| s.get_ref().clone()).collect();
        for site in r.sites.keys() {
            if !group_sites.contains(site) {
                let k = format!("{base}.sites.{site}");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    format!(
                        "not a site of group {name}; its sites: [{}]",
                        group_sites.join(", ")
                    ),
                );
            }
        }
        let swift = matches!(plan, P::Swift | P::SwiftContainerSync);
        // Group-level keys only some plans use.
        let group_keys: [(&str, bool, bool); 11] = [
            ("xattrs", r.xattrs.is_some(), plan == P::Rsync),
            ("acls", r.acls.is_some(), plan == P::Rsync),
            ("hard_links", r.hard_links.is_some(), plan == P::Rsync),
            ("sparse", r.sparse.is_some(), plan == P::Rsync),
            ("containers", !r.containers.is_empty(), swift),
            ("realm", r.realm.is_some(), plan == P::SwiftContainerSync),
            (
                "sync_key",
                r.sync_key.is_some(),
                plan == P::SwiftContainerSync,
            ),
            ("start", r.start.is_some(), plan == P::Command),
            ("stop", r.stop.is_some(), plan == P::Command),
            ("resync", r.resync.is_some(), plan == P::Command),
            ("verify", r.verify.is_some(), plan == P::Command),
        ];
        for (k, present, used) in group_keys {
            let key = format!("{base}.{k}");
            if present && !used {
                self.push(
                    self.at(&key),
                    &key,
                    None,
                    format!("plan {shown} does not use this key; remove it"),
                );
            }
        }
        if r.lag.is_some() && plan != P::Command {
            let key = format!("{base}.lag");
            self.push(
                self.at(&key),
                &key,
                None,
                format!("plan {shown} does not use this key; remove it"),
            );
        }
        let plan_key = format!("{base}.plan");
        let need = |this: &mut Self, key: &str, what: &str| {
            let k = format!("{base}.{key}");
            this.push(
                this.at(&plan_key),
                &k,
                Some(shown.clone()),
                format!("plan {shown} needs {key} = {what}"),
            );
        };
        match plan {
            P::Swift | P::SwiftContainerSync => {
                if r.containers.is_empty() {
                    need(self, "containers", "[\"name\", ...] (the placement list)");
                }
                for (i, c) in r.containers.iter().enumerate() {
                    if c.is_empty() || c.contains('/') {
                        let k = format!("{base}.containers[{i}]");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{c:?}")),
                            "must be a container name (no '/')",
                        );
                    }
                }
                if plan == P::SwiftContainerSync {
                    if r.realm.is_none() {
                        need(
                            self,
                            "realm",
                            "\"realm1\" (from container-sync-realms.conf)",
                        );
                    }
                    if r.sync_key.is_none() {
                        need(
                            self,
                            "sync_key",
                            "{ file = \"/path\" } (the X-Container-Sync-Key)",
                        );
                    }
                }
            }
            P::Command => {
                for (k, v) in [("start", &r.start), ("resync", &r.resync)] {
                    match v {
                        None => need(self, k, "[\"/path/to/prog\", \"arg\", ...]"),
                        Some(argv) if argv.is_empty() || argv[0].is_empty() => {
                            let key = format!("{base}.{k}");
                            self.push(
                                self.at(&key),
                                &key,
                                self.value_at(&key),
                                "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                            );
                        }
                        _ => {}
                    }
                }
            }
            P::Rsync | P::None => {}
        }
        // Per-site keys.
        let (needed, allowed): (&[&str], &[&str]) = match plan {
            P::Rsync => (
                &["path", "module", "user", "password"],
                &[
                    "path",
                    "module",
                    "user",
                    "password",
                    "manifest",
                    "quarantine",
                ],
            ),
            P::Swift => (
                &["auth_url", "user", "key"],
                &["auth_url", "user", "key", "manifest", "account"],
            ),
            P::SwiftContainerSync => (
                &["auth_url", "user", "key", "cluster"],
                &["auth_url", "user", "key", "cluster", "account"],
            ),
            P::None | P::Command => (&[], &[]),
        };
        for site in &group_sites {
            let skey = format!("{base}.sites.{site}");
            let Some(rs) = r.sites.get(site) else {
                if !needed.is_empty() {
                    self.push(
                        self.at(&plan_key),
                        &skey,
                        Some(shown.clone()),
                        format!(
                            "plan {shown} needs a [{skey}] table with {}",
                            needed.join(", ")
                        ),
                    );
                }
                continue;
            };
            let present: [(&str, bool); 10] = [
                ("path", rs.path.is_some()),
                ("module", rs.module.is_some()),
                ("user", rs.user.is_some()),
                ("password", rs.password.is_some()),
                ("manifest", rs.manifest.is_some()),
                ("quarantine", rs.quarantine.is_some()),
                ("auth_url", rs.auth_url.is_some()),
                ("key", rs.key.is_some()),
                ("cluster", rs.cluster.is_some()),
                ("account", rs.account.is_some()),
            ];
            for (k, p) in present {
                let key = format!("{skey}.{k}");
                if p && !allowed.contains(&k) {
                    self.push(
                        self.at(&key),
                        &key,
                        None,
                        format!("plan {shown} does not use this key; remove it"),
                    );
                }
                if !p && needed.contains(&k) {
                    self.push(
                        self.at(&skey),
                        &key,
                        None,
                        format!("missing: plan {shown} needs {k} for every site of the group"),
                    );
                }
            }
            if let Some(m) = &rs.module {
                if let Err(e) = crate::model::parse_rsync_module(m) {
                    let key = format!("{skey}.module");
                    self.push(self.at(&key), &key, Some(format!("{m:?}")), e);
                }
            }
            if let Some(p) = &rs.path {
                if !p.is_absolute() {
                    let key = format!("{skey}.path");
                    self.push(
                        self.at(&key),
                        &key,
                        self.value_at(&key),
                        "must be an absolute path",
                    );
                }
            }
            if let Some(u) = &rs.auth_url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    let key = format!("{skey}.auth_url");
                    self.push(self.at(&key), &key, Some(format!("{u:?}")), "must be an http:// or https:// URL, e.g. \"http://10.0.0.2:8080/auth/v1.0\"");
                }
            }
            if let Some(pw) = &rs.password {
                self.check_secret(&format!("{skey}.password"), pw);
            }
            if let Some(k) = &rs.key {
                self.check_secret(&format!("{skey}.key"), k);
            }
        }
    }

    /// Check a `[frontends.NAME]` entry against its kind: the keys that kind
    /// needs are there, the other kind's keys are not. The typed entry when
    /// nothing is missing.
    pub(super) fn check_frontend(
        &mut self,
        name: &str,
        fe: &FrontendEntry,
    ) -> Option<CheckedFrontend> {
        let key = fmt_path("frontends", &[Seg::Key(name.to_string())]);
        let kind = fe.kind.as_ref().map(|k| *k.get_ref()).unwrap_or_default();
        let foreign: &[(&str, bool, &str)] = match kind {
            FrontendDriverKind::Builtin => &[(
                "runtime",
                fe.runtime.is_some(),
                "only kind = \"haproxy\" is reached through a runtime API; this frontend is kind \"builtin\" (the default: `warden frontend`, which needs control and token). Add kind = \"haproxy\" or remove this key",
            )],
            FrontendDriverKind::Haproxy => &[
                (
                    "control",
                    fe.control.is_some(),
                    "kind \"haproxy\" is reached through runtime; control is only for kind \"builtin\" (`warden frontend`): remove this key",
                ),
                (
                    "token",
                    fe.token.is_some(),
                    "kind \"haproxy\" takes no token (HAProxy's runtime API has no authentication: keep it on a UNIX socket or a loopback address): remove this key",
                ),
            ],
        };
        for (field, present, message) in foreign {
            if *present {
                let k = format!("{key}.{field}");
                self.push(self.at(&k), &k, None, *message);
            }
        }
        match kind {
            FrontendDriverKind::Builtin => {
                if fe.control.is_none() {
                    let k = format!("{key}.control");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "missing required key `control`: a kind \"builtin\" frontend (the default) needs the IP:PORT of its control API, e.g. control = \"10.0.0.5:7100\"",
                    );
                }
                match &fe.token {
                    None => {
                        let k = format!("{key}.token");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            "missing required key `token`: a kind \"builtin\" frontend (the default) needs token = { file = \"/etc/warden/NAME.token\" } or { env = \"VAR\" }",
                        );
                    }
                    Some(t) => self.check_secret(&format!("{key}.token"), t),
                }
                let (Some(control), Some(token)) = (fe.control, fe.token.clone()) else {
                    return None;
                };
                Some(CheckedFrontend::Builtin(FrontendConfig { control, token }))
            }
            FrontendDriverKind::Haproxy => {
                let k = format!("{key}.runtime");
                let Some(r) = &fe.runtime else {
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "missing required key `runtime`: a kind \"haproxy\" frontend needs the address of HAProxy's runtime API (a `stats socket ... level admin` line of haproxy.cfg), e.g. runtime = \"/run/haproxy/admin.sock\" or \"127.0.0.1:9999\"",
                    );
                    return None;
                };
                match RuntimeAddr::parse(r.get_ref()) {
                    Ok(runtime) => {
                        Some(CheckedFrontend::Haproxy(HaproxyFrontendConfig { runtime }))
                    }
                    Err(e) => {
                        self.push(r.span(), &k, Some(format!("{:?}", r.get_ref())), e);
                        None
                    }
                }
            }
        }
    }

    pub(super) fn check_frontend_scheme(
        &mut self,
        name: &str,
        fs: &Spanned<FrontendScheme>,
        list: &[Spanned<String>],
        sites: &BTreeSet<String>,
        frontends: &BTreeSet<String>,
        frontend_kinds: &BTreeMap<String, FrontendDriverKind>,
    ) {
        let f = fs.get_ref();
        let key = format!("groups.{name}.frontend");
        let driver = *f.driver.get_ref();
        let dname = driver.as_str();
        if f.frontends.is_empty() {
            self.push(
                fs.span(),
                &format!("{key}.frontends"),
                None,
                format!("driver \"{dname}\" needs frontends = [\"NAME\", ...] naming [frontends.NAME] tables of kind \"{dname}\""),
            );
        }
        match driver {
            FrontendDriverKind::Builtin => {
                if f.listen.is_none() {
                    self.push(
                        fs.span(),
                        &format!("{key}.listen"),
                        None,
                        "driver \"builtin\" needs listen = \"ADDR:PORT\" (where each frontend accepts this group's users)",
                    );
                }
                for (field, present) in [
                    ("backend", f.backend.is_some()),
                    ("servers", !f.servers.is_empty()),
                ] {
                    if present {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            format!("only driver \"haproxy\" uses {field}; driver \"builtin\" forwards to backends = {{ SITE = \"host:port\", ... }}: remove this key"),
                        );
                    }
                }
            }
            FrontendDriverKind::Haproxy => self.check_haproxy_scheme(&key, fs, list),
        }
        let mut seen = Vec::new();
        for (i, fe) in f.frontends.iter().enumerate() {
            let k = format!("{key}.frontends[{i}]");
            if !frontends.contains(fe.get_ref()) {
                let known: Vec<_> = frontends.iter().cloned().collect();
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    format!(
                        "unknown frontend; defined frontends: [{}]",
                        known.join(", ")
                    ),
                );
            }
            if let Some(kind) = frontend_kinds.get(fe.get_ref()).filter(|k| **k != driver) {
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    format!(
                        "frontend {:?} is kind \"{}\" but this group's driver is \"{dname}\"; list only frontends with kind = \"{dname}\", or change the driver",
                        fe.get_ref(),
                        kind.as_str()
                    ),
                );
            }
            if seen.contains(fe.get_ref()) {
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    "frontend listed twice",
                );
            }
            seen.push(fe.get_ref().clone());
        }
        if driver == FrontendDriverKind::Builtin {
            // (An unknown site is reported already; asking for its backend would mislead.)
            for s in list.iter().filter(|s| sites.contains(s.get_ref())) {
                if !f.backends.keys().any(|k| k.get_ref() == s.get_ref()) {
                    let k = format!("{key}.backends");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        format!(
                            "no backend for site {:?}; give one \"host:port\" per site of the group",
                            s.get_ref()
                        ),
                    );
                }
            }
            for (k, v) in &f.backends {
                let bkey = fmt_path(&format!("{key}.backends"), &[Seg::Key(k.get_ref().clone())]);
                if !list.iter().any(|s| s.get_ref() == k.get_ref()) {
                    let sites: Vec<_> = list.iter().map(|s| s.get_ref().as_str()).collect();
                    self.push(
                        k.span(),
                        &bkey,
                        None,
                        format!(
                            "not a site of this group; the group's sites: [{}]",
                            sites.join(", ")
                        ),
                    );
                }
                if !host_port(v.get_ref()) {
                    self.push(
                        v.span(),
                        &bkey,
                        Some(format!("{:?}", v.get_ref())),
                        "must be host:port, e.g. \"10.1.0.10:8080\"",
                    );
                }
            }
        }
        if f.drain_timeout.is_zero() {
            self.positive(&format!("{key}.drain_timeout"));
        }
    }

    /// The keys of `[groups.NAME.frontend]` with driver "haproxy": `backend`,
    /// `servers`, and none of the builtin driver's.
    pub(super) fn check_haproxy_scheme(
        &mut self,
        key: &str,
        fs: &Spanned<FrontendScheme>,
        list: &[Spanned<String>],
    ) {
        const NAMES: &str = "HAProxy names use only ASCII letters, digits, '-', '_', '.' and ':'";
        let f = fs.get_ref();
        let bkey = format!("{key}.backend");
        match &f.backend {
            None => self.push(
                fs.span(),
                &bkey,
                None,
                "driver \"haproxy\" needs backend = \"NAME\": the backend of haproxy.cfg that holds one server per site",
            ),
            Some(b) if !valid_haproxy_name(b.get_ref()) => self.push(
                b.span(),
                &bkey,
                Some(format!("{:?}", b.get_ref())),
                format!("not an HAProxy backend name; {NAMES}"),
            ),
            Some(_) => {}
        }
        if f.listen.is_some() {
            let k = format!("{key}.listen");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "driver \"haproxy\" does not use listen: the `bind` lines of haproxy.cfg decide where users connect; remove this key",
            );
        }
        if !f.backends.is_empty() {
            let k = format!("{key}.backends");
            self.push(
                self.at(&k),
                &k,
                None,
                "driver \"haproxy\" does not use backends: the server addresses are in haproxy.cfg (one `server` per site in the backend); name each site's server with servers = { SITE = \"SERVER\" } instead",
            );
        }
        let skey = format!("{key}.servers");
        for (site, server) in &f.servers {
            let k = fmt_path(&skey, &[Seg::Key(site.get_ref().clone())]);
            if !list.iter().any(|s| s.get_ref() == site.get_ref()) {
                let sites: Vec<_> = list.iter().map(|s| s.get_ref().as_str()).collect();
                self.push(
                    site.span(),
                    &k,
                    None,
                    format!(
                        "not a site of this group; the group's sites: [{}]",
                        sites.join(", ")
                    ),
                );
            }
            if !valid_haproxy_name(server.get_ref()) {
                self.push(
                    server.span(),
                    &k,
                    Some(format!("{:?}", server.get_ref())),
                    format!("not an HAProxy server name; {NAMES}"),
                );
            }
        }
        let mut taken: Vec<(&str, &str)> = Vec::new();
        for site in list {
            let site = site.get_ref().as_str();
            let server = f.server_of(site);
            if let Some((other, _)) = taken.iter().find(|(_, s)| *s == server) {
                let k = fmt_path(&skey, &[Seg::Key(site.to_string())]);
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{server:?}")),
                    format!("sites {other:?} and {site:?} both map to HAProxy server {server:?}; each site needs its own server (a site not listed in servers uses its own name)"),
                );
            }
            taken.push((site, server));
        }
    }

    pub(super) fn check_dns(
        &mut self,
        name: &str,
        scheme: Scheme,
        d: &Spanned<DnsScheme>,
        list: &[Spanned<String>],
        sites: &BTreeSet<String>,
        fe_names: Option<Vec<String>>,
    ) {
        let dns = d.get_ref();
        let key = format!("groups.{name}.dns");
        if let Some(c) = &dns.credentials {
            self.check_secret(&format!("{key}.credentials"), c);
        }
        if dns.name.trim().is_empty() {
            let k = format!("{key}.name");
            self.push(
                self.at(&k),
                &k,
                Some("\"\"".into()),
                "must be the record users resolve, e.g. \"www.example.net\"",
            );
        }
        if dns.ttl.is_zero() {
            self.positive(&format!("{key}.ttl"));
        }
        match dns.provider {
            DnsProviderKind::Rfc2136 => {
                for (field, val, example) in [
                    ("server", &dns.server, "\"ns1.example.net:53\""),
                    ("zone", &dns.zone, "\"example.net\""),
                ] {
                    if val.as_deref().is_none_or(|s| s.trim().is_empty()) {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            format!("provider \"rfc2136\" needs {field} = {example}"),
                        );
                    }
                }
            }
            DnsProviderKind::Noip | DnsProviderKind::Dyndns2 => {
                if dns.credentials.is_none() {
                    let k = format!("{key}.credentials");
                    self.push(self.at(&k), &k, None, "this provider needs credentials = { file = \"/etc/warden/NAME\" } or { env = \"VAR\" }");
                }
                if dns.provider == DnsProviderKind::Dyndns2 && dns.server.is_none() {
                    let k = format!("{key}.server");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "provider \"dyndns2\" needs server = \"https://members.example.net/nic/update\" (the update URL)",
                    );
                }
                if let Some(url) = &dns.server {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        let k = format!("{key}.server");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{url:?}")),
                            "must be the update URL, e.g. \"https://dynupdate.no-ip.com/nic/update\"",
                        );
                    }
                }
                for (field, v) in [("key_name", &dns.key_name), ("algorithm", &dns.algorithm)] {
                    if v.is_some() {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            "only provider \"rfc2136\" uses a TSIG key; remove this key",
                        );
                    }
                }
            }
        }
        if dns.provider == DnsProviderKind::Rfc2136 {
            if let Some(server) = &dns.server {
                if let Err(e) = crate::model::dns_server_syntax(server) {
                    let k = format!("{key}.server");
                    self.push(self.at(&k), &k, Some(format!("{server:?}")), e);
                }
            }
            if let Some(alg) = &dns.algorithm {
                if !crate::model::TSIG_ALGORITHMS.contains(&alg.as_str()) {
                    let k = format!("{key}.algorithm");
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{alg:?}")),
                        format!(
                            "unknown TSIG algorithm; expected one of {}",
                            crate::model::TSIG_ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            if dns.user_agent.is_some() {
                let k = format!("{key}.user_agent");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "only providers \"noip\" and \"dyndns2\" send a User-Agent; remove this key",
                );
            }
        }
        if let Some(ua) = &dns.user_agent {
            // No-IP: "Company NameOfProgram/Version contact@example".
            let parts: Vec<&str> = ua.split_whitespace().collect();
            if parts.len() < 3 || !parts[1].contains('/') {
                let k = format!("{key}.user_agent");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{ua:?}")),
                    "must have the form \"Company NameOfProgram/Version contact@example\" (No-IP blocks other forms)",
                );
            }
        }
        for (i, ns) in dns.nameservers.iter().enumerate() {
            if let Err(e) = crate::model::dns_server_syntax(ns) {
                let k = format!("{key}.nameservers[{i}]");
                self.push(self.at(&k), &k, Some(format!("{ns:?}")), e);
            }
        }
        for (i, a) in dns.aliases.iter().enumerate() {
            if a.trim().is_empty() || a.contains(char::is_whitespace) || a.contains(',') {
                let k = format!("{key}.aliases[{i}]");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{a:?}")),
                    "must be a hostname, e.g. \"www2.example.net\"",
                );
            }
        }
        if dns.timeout.is_zero() {
            self.positive(&format!("{key}.timeout"));
        }
        // Which names `addresses` is keyed by: sites (dns) or the group's
        // frontends (hybrid: users resolve to a frontend, which picks the site).
        let (what, expected): (&str, Vec<String>) = match scheme {
            Scheme::Hybrid => match fe_names {
                Some(f) => ("frontend", f),
                None => return, // already reported: hybrid needs a frontend table
            },
            _ => ("site", list.iter().map(|s| s.get_ref().clone()).collect()),
        };
        let akey = format!("{key}.addresses");
        // (An unknown site is reported already; asking for its address would mislead.)
        for n in expected
            .iter()
            .filter(|n| what != "site" || sites.contains(*n))
        {
            if !dns.addresses.contains_key(n) {
                self.push(
                    self.at(&akey),
                    &akey,
                    None,
                    format!(
                        "no address for {what} {n:?}; give one address per {what} of the group"
                    ),
                );
            }
        }
        for (k, v) in &dns.addresses {
            let ak = fmt_path(&akey, &[Seg::Key(k.clone())]);
            if !expected.contains(k) {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some(format!("{v:?}")),
                    format!("not a {what} of this group; keys of addresses are the group's {what}s: [{}]", expected.join(", ")),
                );
            }
            if v.trim().is_empty() {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some("\"\"".into()),
                    "must be an address, e.g. \"10.1.0.10\"",
                );
            } else if let Err(e) = crate::model::parse_record_addresses(v) {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some(format!("{v:?}")),
                    format!("{e}; expected \"10.1.0.10\", \"fd00::10\" or \"10.1.0.10, fd00::10\""),
                );
            }
        }
    }
}
