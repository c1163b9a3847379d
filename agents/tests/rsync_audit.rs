//! The periodic audit of the peer (`audit_every`) against a real rsync
//! daemon on 127.0.0.1: what is removed or altered at the peer behind
//! replication's back is found by the next audit, sent again and said
//! (the replicator's `drift`, shown in the group's alerts); what
//! replication itself put there, subdirectories included, is not taken
//! for drift. Needs `rsync` (CI fails without it, elsewhere the tests
//! skip).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{Replicator, RsyncReplicator};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

const EVERY: Duration = Duration::from_secs(2);

/// Polls `f` every 50 ms until it gives `Some`, or panics after 30 s.
async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_changed_at_the_peer_behind_replications_back_is_found_and_sent_again() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, dst) = (d.src(), d.target());
    write(&src, "top.txt", "top");
    let mut s = d.settings("drdata", PASSWORD);
    s.audit_every = Some(EVERY);
    let repl = RsyncReplicator::new(s);
    repl.start(CancellationToken::new()).await.unwrap();
    arrives(&dst, "top.txt", "top").await;
    // Replication's own work, in subdirectories (the peer's directories
    // then carry their own mtimes): no audit takes it for drift.
    write(&src, "a/one.txt", "one");
    write(&src, "a/b/two.txt", "two");
    arrives(&dst, "a/b/two.txt", "two").await;
    let quiet_until = Instant::now() + EVERY * 3;
    while Instant::now() < quiet_until {
        assert_eq!(repl.drift(), None, "drift where replication did all");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Behind its back: a file removed at the peer, another altered there.
    std::fs::remove_file(dst.join("a/one.txt")).unwrap();
    std::fs::write(dst.join("top.txt"), "TOP, altered at the peer").unwrap();
    let drift = until("the audit finds it", || repl.drift()).await;
    assert!(drift.contains("found 2 item(s)"), "{drift}");
    assert!(
        drift.contains("\"a/one.txt\"") && drift.contains("\"top.txt\""),
        "{drift}"
    );
    arrives(&dst, "a/one.txt", "one").await;
    arrives(&dst, "top.txt", "top").await;
    // The next audit finds the peer as replication left it.
    until("the next audit finds nothing", || {
        repl.drift().is_none().then_some(())
    })
    .await;
    repl.stop().await;
}
