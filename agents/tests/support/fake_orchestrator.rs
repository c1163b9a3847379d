//! What a test of the agent loop sets up around a lone site's agent (see
//! `lone_site.rs`): the fake orchestrator's two routes served on
//! 127.0.0.1:0, waiting on what the fake saw, the test's own directory
//! and site a's authority as group web's standby.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::routing::MethodRouter;
use axum::Router;
use tokio::net::TcpListener;

/// Serves `reports` at `/v1/reports` and `commands` (the long poll) at
/// `/v1/agents/commands`, both with `state`; the fake's base URL.
pub(crate) async fn serve<S>(
    reports: MethodRouter<S>,
    commands: MethodRouter<S>,
    state: S,
) -> String
where
    S: Clone + Send + Sync + 'static,
{
    let app = Router::new()
        .route("/v1/reports", reports)
        .route("/v1/agents/commands", commands)
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Waits until `cond` holds on the fake; the test fails, saying `what`,
/// when it does not within `within`.
pub(crate) async fn until<F>(
    fake: &Mutex<F>,
    what: &str,
    within: Duration,
    cond: impl Fn(&F) -> bool,
) {
    let deadline = Instant::now() + within;
    while !cond(&fake.lock().unwrap()) {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A test's own directory, removed with everything in it when dropped.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("warden-agent-test-")
        .tempdir()
        .unwrap()
}

/// Site a's authority in `dir`'s state directory as the standby of group
/// web (b active), as an agent's earlier life left it.
pub(crate) fn standby_of_web(dir: &std::path::Path) {
    warden_agents::authority::Authority::open(
        &dir.join("state"),
        "a",
        &[("web".into(), "b".into())],
    )
    .expect("authority");
}
