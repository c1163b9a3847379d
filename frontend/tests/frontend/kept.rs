//! Frontends that keep their state (the fence) in a directory, for the
//! tests across restarts: group "web" whose state lives under a test's
//! directory, and a frontend stopped the way a restart stops it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use warden_frontend::FrontendSettings;

use crate::harness::{echo, group, settings, start_settings, Echo, Frontend};

/// Stops `fe` as a restart does: shutdown, then `run`'s clean end.
pub(crate) async fn stop(mut fe: Frontend) {
    fe.shutdown.cancel();
    if let Some(h) = fe.handle.take() {
        h.await.expect("joined").expect("clean stop");
    }
}

/// A frontend started on `s` that routes web to `site` at `epoch` and
/// stops; then the frontend started again on the state that one kept.
pub(crate) async fn restarted_after_route(
    s: &FrontendSettings,
    site: &str,
    epoch: u64,
) -> Frontend {
    let fe = start_settings(s.clone()).await;
    assert_eq!(
        fe.put("web", site, epoch, "immediate").await.0,
        StatusCode::OK
    );
    stop(fe).await;
    start_settings(s.clone()).await
}

/// The settings of one group "web" over `backends` (drained for 1 s),
/// the frontend's state in `root/fe-test`.
pub(crate) fn web_kept_in(root: &Path, backends: &[(&str, SocketAddr)]) -> FrontendSettings {
    let groups = BTreeMap::from([("web".to_string(), group(backends, Duration::from_secs(1)))]);
    let mut s = settings(groups);
    s.state_dir = Some(root.join("fe-test"));
    s
}

/// [`web_kept_in`] over echo backends a and b, which answer as long as
/// the two returned [`Echo`]s are kept.
pub(crate) async fn echo_web_kept_in(root: &Path) -> (FrontendSettings, Echo, Echo) {
    let (a, b) = (echo("a").await, echo("b").await);
    let s = web_kept_in(root, &[("a", a.addr), ("b", b.addr)]);
    (s, a, b)
}
