//! The certificates' side of the orchestrator's peers: the names a site's
//! agent and the orchestrator's client certificate must carry, and TLS
//! tables' files as absolute paths.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    /// With `orchestrator.tls.client_ca`, an agent is let in only with a
    /// certificate whose subjectAltName DNS names its site (checked as TLS
    /// checks a host name: letters, digits, `-`, `_`; no label starting or
    /// ending with `-`, not all digits; case ignored). A site name that
    /// cannot be such a name would have its agent refused at every report,
    /// two names that differ only in case are one name to a certificate
    /// (either one's agent could present the other's), and a site named
    /// `orchestrator` would carry the name the frontends take as the
    /// orchestrator's.
    pub(in crate::load) fn check_site_cert_names(
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
    pub(in crate::load) fn check_frontend_client_certs(
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
    pub(in crate::load) fn check_client_tls(&mut self, key: &str, c: &crate::ClientTls) {
        self.absolute_files(key, [("cert", Some(&c.cert)), ("key", Some(&c.key))]);
    }

    /// A TLS table's files are absolute paths.
    pub(in crate::load) fn check_tls(&mut self, key: &str, t: &crate::TlsConfig) {
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
