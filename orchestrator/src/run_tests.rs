//! [`run`] with API TLS files it cannot use: refused before anything starts
//! (no store file, no ready, no order to the frontend).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

/// A self-signed certificate (P-256, CN orchestrator); the key never matches
/// it, the tests refuse the key before that.
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBhDCCASugAwIBAgIUIoxh/+OHqAnaWGV2392SPX5ZMEQwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMb3JjaGVzdHJhdG9yMCAXDTI2MTIwMzA3MjgwMFoYDzIxMjYx
MTA5MDcyODAwWjAXMRUwEwYDVQQDDAxvcmNoZXN0cmF0b3IwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQD90S/+devW3seukMOQc2AZIv34F5SSgYrMG8gMkiMCNCJ
cpSMLzvQCrqkOcGh0RB+B7wFR4N+VNlBGQ8CpNwWo1MwUTAdBgNVHQ4EFgQUNFu5
BuPU8b0Tbld67S5shuGPsCMwHwYDVR0jBBgwFoAUNFu5BuPU8b0Tbld67S5shuGP
sCMwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiADoiZcxHx1WTeq
4q9AWGDngWJHE5R1DY+X5IzT1uapJAIgXFnl5txxZy+QxdGKoFXsRbHyQ6DjkdIv
avkEX2sNKF8=
-----END CERTIFICATE-----
";

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Sites a and b, group web on builtin frontend fe1 (its control API at
/// `control`), the API with TLS from `tls.pem` and `tls.key` in `dir`.
fn config_text(dir: &Path, control: std::net::SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"[orchestrator]
listen = "127.0.0.1:0"
data_dir = "{d}/data"
operator_token = {{ file = "{d}/op" }}
tls = {{ cert = "{d}/tls.pem", key = "{d}/tls.key" }}
[detection]
interval = "250ms"
fall = 3
rise = 3
hold_down = "2s"
agent_timeout = "1s"
[sites.a]
agent_token = {{ file = "{d}/a" }}
[sites.b]
agent_token = {{ file = "{d}/b" }}
[frontends.fe1]
control = "{control}"
token = {{ file = "{d}/fe" }}
[groups.web]
sites = ["a", "b"]
scheme = "frontend"
step_timeout = "5s"
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:0"
backends = {{ a = "127.0.0.1:1", b = "127.0.0.1:2" }}
"#
    )
}

/// A garbage, a world-readable and a missing TLS key: `run` fails with the
/// TLS error, and the data dir stays empty, ready is never sent and the
/// frontend's control API gets no connection.
#[tokio::test]
async fn unusable_tls_key_is_refused_before_the_store_opens() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // (case, the key file's text and mode if there is one, the reason given)
    type Case<'a> = (&'a str, Option<(&'a str, u32)>, &'a str);
    let cases: [Case<'_>; 3] = [
        (
            "garbage",
            Some(("not a key\n", 0o600)),
            "no usable PEM private key",
        ),
        (
            "world-readable",
            Some(("not a key either\n", 0o644)),
            "private key readable by every user",
        ),
        ("missing", None, "no usable PEM private key"),
    ];
    for (case, key, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (f, v) in [
            ("op", "operator-secret"),
            ("a", "agent-a-secret"),
            ("b", "agent-b-secret"),
            ("fe", "frontend-secret"),
        ] {
            write(&d.join(f), v, 0o600);
        }
        write(&d.join("tls.pem"), CERT, 0o644);
        if let Some((text, mode)) = key {
            write(&d.join("tls.key"), text, mode);
        }
        let frontend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        frontend.set_nonblocking(true).unwrap();
        let text = config_text(d, frontend.local_addr().unwrap());
        let cfg = warden_config::parse(&text, &d.join("failover.conf")).expect("config");
        let settings = OrchestratorSettings::from_config(cfg).expect("settings");

        let (tx, mut rx) = oneshot::channel();
        let shutdown = CancellationToken::new();
        let res = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            run(settings, shutdown.clone(), Some(tx)),
        )
        .await;
        shutdown.cancel();
        let err = match res {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(())) => panic!("{case}: run ended without an error"),
            Err(_) => panic!("{case}: run started despite the TLS key"),
        };
        let key_path = d.join("tls.key");
        assert!(
            err.starts_with(&format!(
                "orchestrator.tls: TLS file {}: {reason}",
                key_path.display()
            )),
            "{case}: {err}"
        );
        let data: Vec<_> = std::fs::read_dir(d.join("data"))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(data.is_empty(), "{case}: the data dir holds {data:?}");
        assert!(rx.try_recv().is_err(), "{case}: ready was sent");
        assert!(
            matches!(frontend.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{case}: the frontend's control API was contacted"
        );
    }
}
