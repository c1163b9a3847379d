//! What one frontend process needs to run, extracted from the validated
//! [`warden_config::Config`]: its control address and token, and every group
//! whose `[groups.NAME.frontend]` table lists it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use warden_config::{Config, FrontendDriverKind, Secret};

use crate::FrontendError;

/// Settings of one `warden frontend` process. Built with
/// [`FrontendSettings::from_config`], or by hand in tests.
#[derive(Debug, Clone)]
pub struct FrontendSettings {
    /// Name of the `[frontends.NAME]` entry (for logs).
    pub name: String,
    /// Address the control API binds to.
    pub control: SocketAddr,
    /// Bearer token every control request must carry.
    pub token: Secret,
    /// TLS of the control API.
    pub tls: Option<warden_serve::tls::ServerFiles>,
    /// Groups this frontend proxies, by group name.
    pub groups: BTreeMap<String, GroupSettings>,
    /// Where the fence (the highest epoch accepted per group) is kept across
    /// restarts (`crate::fence`). From the config always: `state_dir`, else
    /// `{orchestrator.data_dir}/frontend-NAME`. `None` (settings made by
    /// hand, in tests and benches): the fence lives in memory only.
    pub state_dir: Option<std::path::PathBuf>,
}

/// One proxied group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// Where users of the group connect.
    pub listen: SocketAddr,
    /// Backend `host:port` per site name; a route may only name one of these sites.
    pub backends: BTreeMap<String, String>,
    /// How long connections to the old backend live on after a `drain` switch.
    pub drain_timeout: Duration,
    /// Longest a new connection is held under a hold order (`0`: never).
    pub hold_connections: Duration,
    /// Longest a refused new connection keeps trying without a hold order
    /// (`0`: it fails at once).
    pub connect_retry: Duration,
}

impl FrontendSettings {
    /// Settings of the frontend named `name`: loads its token and collects
    /// every `builtin`-driver group whose frontend table lists it.
    pub fn from_config(cfg: &Config, name: &str) -> Result<FrontendSettings, FrontendError> {
        let fe = cfg.frontend(name)?;
        let token = Secret::load_token(&format!("frontends.{name}.token"), &fe.token)?;
        let mut groups = BTreeMap::new();
        for (gname, g) in &cfg.groups {
            let Some(scheme) = g.frontend_scheme() else {
                continue;
            };
            if scheme.driver() != FrontendDriverKind::Builtin {
                continue;
            }
            if !scheme.is_served_by(name) {
                continue;
            }
            let listen = scheme.listen.ok_or_else(|| FrontendError::Group {
                group: gname.clone(),
                reason: "no listen address in [groups.NAME.frontend] (driver \"builtin\" needs listen = \"ADDR:PORT\")".into(),
            })?;
            let backends: BTreeMap<String, String> = scheme.backend_addrs();
            if backends.is_empty() {
                return Err(FrontendError::Group {
                    group: gname.clone(),
                    reason: "no backends in [groups.NAME.frontend]".into(),
                });
            }
            groups.insert(
                gname.clone(),
                GroupSettings {
                    listen,
                    backends,
                    drain_timeout: scheme.drain_timeout,
                    hold_connections: scheme.hold_connections,
                    connect_retry: scheme.connect_retry,
                },
            );
        }
        Ok(FrontendSettings {
            name: name.to_string(),
            control: fe.control,
            token,
            tls: fe.tls.as_ref().map(|t| warden_serve::tls::ServerFiles {
                cert: t.cert.clone(),
                key: t.key.clone(),
                client_ca: t.client_ca.clone(),
            }),
            groups,
            state_dir: Some(
                fe.state_dir
                    .clone()
                    .unwrap_or_else(|| cfg.orchestrator.data_dir.join(format!("frontend-{name}"))),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(token_file: &Path) -> Config {
        let text = format!(
            r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/tmp/warden-test"
operator_token = {{ env = "WARDEN_TEST_UNUSED" }}

[sites.a]
agent_token = {{ env = "WARDEN_TEST_UNUSED" }}
[sites.b]
agent_token = {{ env = "WARDEN_TEST_UNUSED" }}

[frontends.fe1]
control = "127.0.0.1:7101"
token = {{ file = {tf:?} }}
[frontends.fe2]
control = "127.0.0.1:7102"
token = {{ file = {tf:?} }}

[groups.web]
sites = ["a", "b"]
scheme = "frontend"
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1", "fe2"]
listen = "127.0.0.1:8080"
backends = {{ a = "10.0.0.1:80", b = "10.0.0.2:80" }}
drain_timeout = "3s"

[groups.db]
sites = ["a", "b"]
scheme = "frontend"
[groups.db.frontend]
driver = "builtin"
frontends = ["fe2"]
listen = "127.0.0.1:5432"
backends = {{ a = "10.0.0.1:5432", b = "10.0.0.2:5432" }}
"#,
            tf = token_file.display().to_string()
        );
        match warden_config::parse(&text, Path::new("test.conf")) {
            Ok(c) => c,
            Err(e) => panic!("test config does not parse: {e}"),
        }
    }

    fn token_file(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "warden-frontend-{tag}-{}.token",
            std::process::id()
        ));
        std::fs::write(&p, "s3cret-token-value\n").expect("write token file");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn collects_the_groups_that_list_this_frontend() {
        let tf = token_file("collect");
        let cfg = config(&tf);

        let fe1 = FrontendSettings::from_config(&cfg, "fe1").expect("fe1 settings");
        assert_eq!(fe1.control, "127.0.0.1:7101".parse().unwrap());
        assert!(fe1.token.matches("s3cret-token-value"));
        assert_eq!(fe1.groups.keys().collect::<Vec<_>>(), vec!["web"]);
        let web = &fe1.groups["web"];
        assert_eq!(web.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(web.backends["b"], "10.0.0.2:80");
        assert_eq!(web.drain_timeout, Duration::from_secs(3));
        assert_eq!(web.hold_connections, Duration::from_secs(2), "default hold");
        assert_eq!(
            fe1.state_dir.as_deref(),
            Some(Path::new("/tmp/warden-test/frontend-fe1")),
            "the fence's default home"
        );

        let fe2 = FrontendSettings::from_config(&cfg, "fe2").expect("fe2 settings");
        assert_eq!(fe2.groups.keys().collect::<Vec<_>>(), vec!["db", "web"]);
        assert_eq!(
            fe2.groups["db"].drain_timeout,
            Duration::from_secs(5),
            "default drain timeout"
        );
        let _ = std::fs::remove_file(tf);
    }

    #[test]
    fn unknown_frontend_names_the_defined_ones() {
        let tf = token_file("unknown");
        let cfg = config(&tf);
        let err = FrontendSettings::from_config(&cfg, "fe9").expect_err("fe9 is not defined");
        let msg = err.to_string();
        assert!(msg.contains("fe9") && msg.contains("fe1, fe2"), "{msg}");
        let _ = std::fs::remove_file(tf);
    }

    #[test]
    fn unreadable_token_is_a_config_error_without_the_value() {
        let tf = token_file("unreadable");
        let cfg = config(&tf);
        std::fs::remove_file(&tf).expect("remove token file");
        let err = FrontendSettings::from_config(&cfg, "fe1").expect_err("token file is gone");
        assert!(matches!(err, FrontendError::Config(_)), "{err:?}");
        assert!(err.to_string().contains("frontends.fe1.token"), "{err}");
    }
}
