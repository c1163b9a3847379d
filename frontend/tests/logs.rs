//! What users can make the frontend write to its log while their backend
//! fails: bounded, not a line per connection. Its own test binary: the
//! proxy workers log on threads of their own, so the capture is the
//! process's global subscriber.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use warden_config::Secret;
use warden_frontend::{FrontendSettings, GroupSettings};

const TOKEN: &str = "test-token-0123456789";

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Lines that contain every one of `parts`.
    fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        let text = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
            .collect()
    }
}

/// An address that refuses connections (held: no test beside takes it).
async fn refusing() -> SocketAddr {
    warden_testkit::net::refusing()
}

/// A user: connects, sends a line, and waits for the frontend to close.
async fn user(listen: SocketAddr) {
    let mut s = TcpStream::connect(listen).await.expect("connect");
    let _ = s.write_all(b"who\n").await;
    let mut buf = [0u8; 16];
    let end = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(matches!(end, Ok(Ok(0)) | Ok(Err(_))), "not closed: {end:?}");
}

/// Site a refuses every connection: 64 users closed at once (no hold
/// order), then 16 held under a hold order until their hold time is over.
/// Each group's warnings are written at the 1st, 2nd, 4th, 8th… failure,
/// with the count. Before, each user's connection wrote its own warning:
/// anyone could fill the log (and the disk the fence is on) during an
/// outage, a line per connection it opened.
#[tokio::test]
async fn failing_users_are_counted_not_each_logged() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let (a, b) = (refusing().await, refusing().await);
    let group = GroupSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        backends: BTreeMap::from([("a".into(), a.to_string()), ("b".into(), b.to_string())]),
        drain_timeout: Duration::from_secs(5),
        hold_connections: Duration::from_millis(500),
        connect_retry: Duration::ZERO,
    };
    let settings = FrontendSettings {
        name: "fe-test".into(),
        control: "127.0.0.1:0".parse().expect("addr"),
        token: Secret::new(TOKEN),
        tls: None,
        groups: BTreeMap::from([("web".to_string(), group)]),
        state_dir: None,
    };
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn(warden_frontend::run(settings, shutdown.clone(), Some(tx)));
    let addrs = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("frontend ready in time")
        .expect("frontend reported ready");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("http client");
    let put = |path: &str, body: serde_json::Value| {
        client
            .put(format!("http://{}{path}", addrs.control))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let resp = put(
        "/v1/routes/web",
        serde_json::json!({"site": "a", "epoch": 1}),
    )
    .await
    .expect("route set");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let listen = addrs.groups["web"];

    for _ in 0..64 {
        user(listen).await;
    }
    let backend = a.to_string();
    let failed = captured.lines_with(&["backend connect failed", &backend]);
    assert!(
        (1..=8).contains(&failed.len()),
        "{} warnings for 64 failed connects: {failed:#?}",
        failed.len()
    );
    assert!(
        failed.iter().any(|l| l.contains("failed=64")),
        "the count is said: {failed:#?}"
    );

    let resp = put(
        "/v1/routes/web/hold",
        serde_json::json!({"epoch": 1, "ttl_ms": 60_000}),
    )
    .await
    .expect("hold set");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let held: Vec<_> = (0..16).map(|_| tokio::spawn(user(listen))).collect();
    for h in held {
        h.await.expect("user ran");
    }
    let timed_out = captured.lines_with(&["no route change within the hold time", &backend]);
    assert!(
        (1..=5).contains(&timed_out.len()),
        "{} warnings for 16 held connections let go: {timed_out:#?}",
        timed_out.len()
    );
    assert!(
        timed_out.iter().any(|l| l.contains("timed_out=16")),
        "the count is said: {timed_out:#?}"
    );

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
}
