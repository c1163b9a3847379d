//! The checks of the `[orchestrator]` table and what the orchestrator's
//! peers must agree with: its listen and URLs, HA nodes on etcd, TLS and
//! mTLS (client certificates the agents and frontends present, the names
//! a certificate can carry), each problem at its file:line:col.

use super::*;

/// The smallest `orchestrator.max_body_bytes`: the default, what an agent's
/// largest report needs (a divergent page of about 16 KiB, one name of up
/// to 8 KiB more, checks, peer views, outcomes).
const MIN_BODY_BYTES: usize = 64 * 1024;

impl<'t, 'r> Cx<'t, 'r> {
    /// `[[orchestrator.operators]]` names: 1–64 of letters, digits, `.`,
    /// `_`, `-`; not `operator` (the `operator_token`'s); unique. Each
    /// problem at the name, which it shows (a name is no secret).
    fn check_operator_names(&mut self, o: &OrchestratorConfig) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, t) in o.operators.iter().enumerate() {
            let key = format!("orchestrator.operators[{i}].name");
            let valid = (1..=64).contains(&t.name.len())
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            let problem = if !valid {
                Some("an operator name is 1 to 64 of letters, digits, '.', '_', '-'".to_string())
            } else if t.name == "operator" {
                Some(
                    "is the name orchestrator.operator_token's actions are recorded under; choose another"
                        .to_string(),
                )
            } else if let Some(first) = seen.get(t.name.as_str()) {
                Some(format!(
                    "is the name of orchestrator.operators[{first}] too: each operator's actions are recorded under its own name; give each its own"
                ))
            } else {
                seen.insert(&t.name, i);
                None
            };
            if let Some(message) = problem {
                let value = self.value_at(&key);
                self.push(self.at(&key), &key, value, message);
            }
        }
    }

    pub(super) fn check_orchestrator(&mut self, o: &OrchestratorConfig) {
        self.check_state_dir("orchestrator.data_dir", &o.data_dir);
        self.check_secret("orchestrator.operator_token", &o.operator_token);
        for (i, t) in o.operators.iter().enumerate() {
            self.check_secret(&format!("orchestrator.operators[{i}].token"), &t.token);
        }
        self.check_operator_names(o);
        if let Some(r) = &o.read_token {
            self.check_secret("orchestrator.read_token", r);
        }
        if o.max_body_bytes < MIN_BODY_BYTES {
            self.push(
                self.at("orchestrator.max_body_bytes"),
                "orchestrator.max_body_bytes",
                Some(o.max_body_bytes.to_string()),
                "must be at least 65536 (64 KiB): an agent's report carries a page of a divergent list (about 16 KiB, and one name of up to 8 KiB more, escaped) beside its checks, peer views and outcomes, and a report the orchestrator refuses leaves the site's agent silent",
            );
        }
        if let Some(u) = &o.url {
            if !self.check_url(
                "orchestrator.url",
                u,
                "e.g. \"https://warden.example.net:7000\"",
            ) {
                self.check_base_url("orchestrator.url", u);
            }
        }
        // long_poll may be 0 (no long-polling); a zero reconcile interval would spin.
        for (key, v) in [
            ("orchestrator.reconcile_interval", o.reconcile_interval),
            ("orchestrator.header_read_timeout", o.header_read_timeout),
            ("orchestrator.request_timeout", o.request_timeout),
        ] {
            if v.is_zero() {
                self.positive(key);
            }
        }
        // Shorter ones are accepted by nothing that runs: a reconciliation
        // loop that never rests, every request answered 408.
        for (key, v) in [
            ("orchestrator.reconcile_interval", o.reconcile_interval),
            ("orchestrator.header_read_timeout", o.header_read_timeout),
            ("orchestrator.request_timeout", o.request_timeout),
        ] {
            self.at_least(
                key,
                v,
                std::time::Duration::from_millis(100),
                "shorter: a loop that never rests, or every request timed out)",
            );
        }
        if let Some(c) = &o.client_tls {
            self.check_client_tls("orchestrator.client_tls", c);
        }
        if let Some(t) = &o.tls {
            self.check_tls("orchestrator.tls", t);
            if o.url.as_deref().is_some_and(|u| u.starts_with("http://")) {
                let value = self.value_at("orchestrator.url");
                self.push(
                    self.at("orchestrator.url"),
                    "orchestrator.url",
                    value,
                    "the API speaks TLS (orchestrator.tls): the url must be https://",
                );
            }
        }
        if !(100..=100_000_000).contains(&o.events_keep) {
            self.push(
                self.at("orchestrator.events_keep"),
                "orchestrator.events_keep",
                Some(o.events_keep.to_string()),
                "must be between 100 and 100000000",
            );
        }
        if o.events_max_age < std::time::Duration::from_secs(3600) {
            let value = self.value_at("orchestrator.events_max_age");
            self.push(
                self.at("orchestrator.events_max_age"),
                "orchestrator.events_max_age",
                value,
                "must be at least 1h",
            );
        }
        if !(16..=1_000_000).contains(&o.max_connections) {
            self.push(
                self.at("orchestrator.max_connections"),
                "orchestrator.max_connections",
                Some(o.max_connections.to_string()),
                "must be between 16 and 1000000",
            );
        }
        self.check_ha(o);
        self.check_notify(&o.notify);
    }

    /// `store`, `[orchestrator.etcd]` and `[[orchestrator.nodes]]` agree.
    fn check_ha(&mut self, o: &OrchestratorConfig) {
        match (o.store, &o.etcd) {
            (StoreKind::Etcd, None) => self.push(
                self.at("orchestrator.store"),
                "orchestrator.store",
                Some("\"etcd\"".into()),
                "needs an [orchestrator.etcd] table with the etcd endpoints",
            ),
            (StoreKind::Local, Some(_)) => self.push(
                self.at("orchestrator.etcd"),
                "orchestrator.etcd",
                None,
                "is only used with store = \"etcd\" (the store is \"local\"): set store = \"etcd\" or remove the table",
            ),
            _ => {}
        }
        if let Some(e) = &o.etcd {
            if e.endpoints.is_empty() {
                self.push(
                    self.at("orchestrator.etcd.endpoints"),
                    "orchestrator.etcd.endpoints",
                    None,
                    "lists no etcd member; give every member's client URL, e.g. [\"http://10.0.1.5:2379\"]",
                );
            }
            let tls = e.tls.is_some();
            for (i, u) in e.endpoints.iter().enumerate() {
                let k = format!("orchestrator.etcd.endpoints[{i}]");
                if !self.check_url(&k, u, "an etcd client URL, e.g. \"http://10.0.1.5:2379\"")
                    && tls != u.starts_with("https://")
                {
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{u:?}")),
                        if tls {
                            "orchestrator.etcd.tls is set: every endpoint must be https://"
                        } else {
                            "an https:// endpoint needs orchestrator.etcd.tls (its ca)"
                        },
                    );
                }
            }
            if e.prefix.is_empty() || e.prefix.contains('\0') {
                self.push(
                    self.at("orchestrator.etcd.prefix"),
                    "orchestrator.etcd.prefix",
                    Some(format!("{:?}", e.prefix)),
                    "must be a non-empty key prefix, e.g. \"/warden/\"",
                );
            }
            let ttl = e.lease_ttl;
            if !(std::time::Duration::from_secs(2)..=std::time::Duration::from_secs(60))
                .contains(&ttl)
                || ttl.subsec_nanos() != 0
            {
                let value = self.value_at("orchestrator.etcd.lease_ttl");
                self.push(
                    self.at("orchestrator.etcd.lease_ttl"),
                    "orchestrator.etcd.lease_ttl",
                    value,
                    "must be whole seconds between 2s and 60s (etcd grants leases in seconds, 2s at least with its default election timeout)",
                );
            }
            self.timeout_floor("orchestrator.etcd.timeout", e.timeout);
            if e.timeout.is_zero() || e.timeout * 2 > ttl {
                let value = self.value_at("orchestrator.etcd.timeout");
                self.push(
                    self.at("orchestrator.etcd.timeout"),
                    "orchestrator.etcd.timeout",
                    value,
                    "must be above zero and at most half of lease_ttl (a slower request could not keep the lease)",
                );
            }
            if let Some(t) = &e.tls {
                if t.cert.is_some() != t.key.is_some() {
                    self.push(
                        self.at("orchestrator.etcd.tls"),
                        "orchestrator.etcd.tls",
                        None,
                        "cert and key go together (a client certificate and its key)",
                    );
                }
                for (name, f) in [
                    ("ca", Some(&t.ca)),
                    ("cert", t.cert.as_ref()),
                    ("key", t.key.as_ref()),
                ] {
                    if let Some(f) = f.filter(|f| !f.is_absolute()) {
                        let k = format!("orchestrator.etcd.tls.{name}");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{:?}", f.display().to_string())),
                            "must be an absolute path",
                        );
                    }
                }
            }
        }
        if !o.nodes.is_empty() && o.store != StoreKind::Etcd {
            self.push(
                self.at("orchestrator.nodes"),
                "orchestrator.nodes",
                None,
                "several orchestrators need store = \"etcd\" (two on one local store would both act)",
            );
        }
        let mut names = std::collections::BTreeSet::new();
        let mut listens = std::collections::BTreeSet::new();
        // Where each node is reached (its url, else its listen), as a URL
        // compares: agents report to each, the CLI and redirects name each.
        let mut reached: Vec<(url::Url, &str)> = Vec::new();
        for (i, n) in o.nodes.iter().enumerate() {
            let same_listen = listens.contains(&n.listen);
            if let (false, Ok(u)) = (same_listen, url::Url::parse(&o.node_url(n))) {
                if let Some((_, other)) = reached.iter().find(|(r, _)| *r == u) {
                    let k = if n.url.is_some() {
                        format!("orchestrator.nodes[{i}].url")
                    } else {
                        format!("orchestrator.nodes[{i}].listen")
                    };
                    self.push(
                        self.at(&k),
                        &k,
                        self.value_at(&k),
                        format!(
                            "is where node {other} is reached too ({u}): agents report to each \
                             node's URL, so one node would get every report twice and this one \
                             none (nor the CLI's requests); give each node its own"
                        ),
                    );
                } else {
                    reached.push((u, n.name.as_str()));
                }
            }
            let k = format!("orchestrator.nodes[{i}].name");
            if !valid_name(&n.name) {
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{:?}", n.name)),
                    "must be a name of letters, digits, '-' and '_'",
                );
            } else if !names.insert(n.name.clone()) {
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{:?}", n.name)),
                    "names another node already; every node needs its own name",
                );
            }
            if !listens.insert(n.listen) {
                let k = format!("orchestrator.nodes[{i}].listen");
                let value = self.value_at(&k);
                self.push(self.at(&k), &k, value, "is another node's address too");
            }
            if let Some(u) = &n.url {
                let k = format!("orchestrator.nodes[{i}].url");
                let scheme_ok = if o.tls.is_some() {
                    u.starts_with("https://")
                } else {
                    u.starts_with("http://") || u.starts_with("https://")
                };
                if !scheme_ok {
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{u:?}")),
                        "must be the node's http:// URL (https:// with orchestrator.tls)",
                    );
                } else if !self.check_url(&k, u, "the node's URL, e.g. \"http://10.0.1.5:7000\"") {
                    self.check_base_url(&k, u);
                }
            }
        }
    }

    /// An API base URL (`orchestrator.url`, a node's `url`) has the API's
    /// paths added to it (`{url}/v1/reports`): a query or a fragment in it
    /// would swallow them — every agent's command poll and every CLI call
    /// would reach `/` (the dashboard) instead.
    fn check_base_url(&mut self, key: &str, u: &str) {
        let Ok(parsed) = url::Url::parse(u) else {
            return;
        };
        let what = match (parsed.query(), parsed.fragment()) {
            (Some(_), _) => "a query (?…)",
            (None, Some(_)) => "a fragment (#…)",
            (None, None) => return,
        };
        self.push(
            self.at(key),
            key,
            Some(format!("{u:?}")),
            format!(
                "holds {what}: the API's paths are added to this URL (…/v1/reports), and would \
                 end up inside it; give scheme, host, port and at most a path"
            ),
        );
    }

    /// With `orchestrator.tls.client_ca`, an agent is let in only with a
    /// certificate whose subjectAltName DNS names its site (checked as TLS
    /// checks a host name: letters, digits, `-`, `_`; no label starting or
    /// ending with `-`, not all digits; case ignored). A site name that
    /// cannot be such a name would have its agent refused at every report,
    /// two names that differ only in case are one name to a certificate
    /// (either one's agent could present the other's), and a site named
    /// `orchestrator` would carry the name the frontends take as the
    /// orchestrator's.
    pub(super) fn check_site_cert_names(
        &mut self,
        sites: Option<&'r Spanned<DeValue<'t>>>,
        parsed: &BTreeMap<String, SiteConfig>,
    ) {
        let Some(DeValue::Table(t)) = sites.map(|v| v.get_ref()) else {
            return;
        };
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        // In the file's order: the later of two names is the one reported.
        let mut names: Vec<_> = t.iter().map(|(name, _)| name).collect();
        names.sort_by_key(|name| name.span().start);
        for name in names {
            let n = name.get_ref().as_ref();
            if !valid_name(n) {
                continue; // reported already
            }
            let key = fmt_path("sites", &[Seg::Key(n.to_string())]);
            if parsed.get(n).is_some_and(|s| s.client_tls.is_none()) {
                self.push(
                    name.span(),
                    &key,
                    Some(format!("{n:?}")),
                    "orchestrator.tls.client_ca makes the API ask every client for a certificate, \
                     and this site's agent has none: it would be refused at every report; give it \
                     client_tls = { cert = \"/path/agent.pem\", key = \"/path/agent.key\" } \
                     (a certificate naming the site, signed by that CA)",
                );
            }
            if n.starts_with('-') || n.ends_with('-') || n.chars().all(|c| c.is_ascii_digit()) {
                self.push(
                    name.span(),
                    &key,
                    Some(format!("{n:?}")),
                    "orchestrator.tls.client_ca makes an agent's certificate name its site \
                     (subjectAltName DNS), and this name cannot be a DNS name (it begins or ends \
                     with '-', or is all digits): its agent would be refused at every report; \
                     rename the site",
                );
            } else if n.eq_ignore_ascii_case("orchestrator") {
                self.push(
                    name.span(),
                    &key,
                    Some(format!("{n:?}")),
                    "orchestrator.tls.client_ca makes this site's agent carry a certificate naming \
                     \"orchestrator\" (subjectAltName DNS), which is the orchestrator's own name to \
                     the frontends that verify clients: rename the site",
                );
            } else if let Some(first) = seen.get(&n.to_ascii_lowercase()) {
                self.push(
                    name.span(),
                    &key,
                    Some(format!("{n:?}")),
                    format!(
                        "differs from site {first:?} only in case: a certificate (subjectAltName \
                         DNS, orchestrator.tls.client_ca) naming one names the other, so it cannot \
                         tell their agents apart; rename one of them"
                    ),
                );
            } else {
                seen.insert(n.to_ascii_lowercase(), n.to_string());
            }
        }
    }

    /// A built-in frontend whose control API verifies its clients
    /// (`tls.client_ca`) takes orders only from a certificate naming
    /// `orchestrator`: the orchestrator needs `client_tls` to present one,
    /// else every route and hold order is refused.
    pub(super) fn check_frontend_client_certs(
        &mut self,
        o: &OrchestratorConfig,
        frontends: &BTreeMap<String, FrontendConfig>,
    ) {
        if o.client_tls.is_some() {
            return;
        }
        for (name, f) in frontends {
            if f.tls.as_ref().is_some_and(|t| t.client_ca.is_some()) {
                let k = format!("frontends.{name}.tls.client_ca");
                self.push(
                    self.at(&k),
                    &k,
                    self.value_at(&k),
                    "makes the frontend ask the orchestrator for a certificate, and the \
                     orchestrator has none: every route and hold order would be refused; set \
                     orchestrator.client_tls = { cert, key } (a certificate naming \"orchestrator\")",
                );
            }
        }
    }

    /// A client certificate's files are absolute paths, like a server's.
    pub(super) fn check_client_tls(&mut self, key: &str, c: &crate::ClientTls) {
        self.absolute_files(key, [("cert", Some(&c.cert)), ("key", Some(&c.key))]);
    }

    /// A TLS table's files are absolute paths.
    pub(super) fn check_tls(&mut self, key: &str, t: &crate::TlsConfig) {
        self.absolute_files(
            key,
            [
                ("cert", Some(&t.cert)),
                ("key", Some(&t.key)),
                ("ca", t.ca.as_ref()),
                ("client_ca", t.client_ca.as_ref()),
            ],
        );
    }

    fn absolute_files<'p>(
        &mut self,
        key: &str,
        files: impl IntoIterator<Item = (&'static str, Option<&'p std::path::PathBuf>)>,
    ) {
        for (field, path) in files {
            if let Some(p) = path {
                if !p.is_absolute() {
                    let k = format!("{key}.{field}");
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{:?}", p.display().to_string())),
                        "must be an absolute path to a PEM file",
                    );
                }
            }
        }
    }
}
