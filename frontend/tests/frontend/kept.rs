//! Frontends that keep their state (the fence) in a directory, for the
//! tests across restarts: group "web" whose state lives under a test's
//! directory, and a frontend stopped the way a restart stops it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use warden_frontend::FrontendSettings;

use crate::harness::{echo, group, settings, Echo, Frontend};

/// Stops `fe` as a restart does: shutdown, then `run`'s clean end.
pub(crate) async fn stop(mut fe: Frontend) {
    fe.shutdown.cancel();
    if let Some(h) = fe.handle.take() {
        h.await.expect("joined").expect("clean stop");
    }
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
