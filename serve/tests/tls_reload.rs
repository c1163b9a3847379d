//! TLS files are read again on SIGHUP: a rotated certificate (files
//! replaced, their times put back so only the signal can tell) is served
//! to the next connection; files that do not load keep the old ones.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_serve::tls::{ServerFiles, ServerTls};
use warden_serve::{serve, Limits};

const CERTS: &str = r#"
set -eu
cd "$1"
for n in one two; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$n.key" 2>/dev/null
  openssl req -x509 -key "$n.key" -out "$n.pem" -days 2 -subj "/CN=cert-$n" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
done
chmod 600 ./*.key
"#;

/// The subject of the certificate served at `port` (openssl s_client).
fn served_subject(port: u16) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Replace `to` with `from`'s content, keeping `to`'s modification time.
fn swap_keeping_time(from: &Path, to: &Path) {
    let keep = std::fs::metadata(to).unwrap().modified().unwrap();
    std::fs::copy(from, to).unwrap();
    std::fs::File::options()
        .write(true)
        .open(to)
        .unwrap()
        .set_modified(keep)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("certs.sh");
    std::fs::write(&script, CERTS).unwrap();
    assert!(Command::new("bash")
        .arg(&script)
        .arg(dir.path())
        .status()
        .expect("bash, openssl")
        .success());
    let f = |n: &str| dir.path().join(n);
    std::fs::copy(f("one.pem"), f("cert.pem")).unwrap();
    std::fs::copy(f("one.key"), f("key.pem")).unwrap();
    std::fs::set_permissions(
        f("key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let tls = Arc::new(
        ServerTls::new(ServerFiles {
            cert: f("cert.pem"),
            key: f("key.pem"),
            client_ca: None,
        })
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let app = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(serve(
        listener,
        app,
        Limits::default(),
        Some(tls),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let subject = tokio::task::spawn_blocking(move || served_subject(port))
        .await
        .unwrap();
    assert!(subject.contains("cert-one"), "{subject}");

    // Rotated files with their old times: a change the mtime check cannot see.
    swap_keeping_time(&f("two.pem"), &f("cert.pem"));
    swap_keeping_time(&f("two.key"), &f("key.pem"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let subject = tokio::task::spawn_blocking(move || served_subject(port))
        .await
        .unwrap();
    assert!(
        subject.contains("cert-one"),
        "no reload without the signal: {subject}"
    );

    let pid = std::process::id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let mut seen = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = tokio::task::spawn_blocking(move || served_subject(port))
            .await
            .unwrap();
        if seen.contains("cert-two") {
            break;
        }
    }
    assert!(seen.contains("cert-two"), "SIGHUP reloads: {seen}");

    // Files that do not load: the signal keeps the current certificate.
    std::fs::write(f("cert.pem"), "not a certificate").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let subject = tokio::task::spawn_blocking(move || served_subject(port))
        .await
        .unwrap();
    assert!(subject.contains("cert-two"), "{subject}");
    stop.cancel();
}
