//! `store`, `[orchestrator.etcd]` and `[[orchestrator.nodes]]`: the HA
//! nodes on etcd agree with each other and with the orchestrator table.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    /// `store`, `[orchestrator.etcd]` and `[[orchestrator.nodes]]` agree.
    pub(super) fn check_ha(&mut self, o: &OrchestratorConfig) {
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
}
