//! A site pushes into its peer only under an order that stands, and
//! states that order's epoch — through [`Replication`] with its real
//! authority and a real rsync daemon on 127.0.0.1.
//!
//! Site a, active at epoch 4, replicates to b. It hears of epoch 5 (a
//! failover elsewhere, or a move given up before its demote): from then on
//! nothing more is pushed under the epoch-4 order, and its status says why.
//! The orchestrator's start at epoch 5 (the group's, a still active) keeps
//! the replicator and raises its order: what was written meanwhile
//! arrives. Needs `rsync` (CI fails without it, elsewhere the test skips).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_agents::authority::Authority;
use warden_agents::wire::{Command, CommandKind};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;
#[path = "support/rsync_repl.rs"]
mod rsync_repl;
#[path = "support/web.rs"]
mod web;
use rsync_repl::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_under_a_stale_order_is_not_sent_and_a_newer_start_resumes_it() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let r = site_a(&d, "");
    let authority = Arc::new(
        Authority::open(
            &d.dir.path().join("state-a"),
            "a",
            &[("web".into(), "a".into())],
        )
        .expect("authority"),
    );
    r.attach_authority(authority.clone());
    let promote = Command::new("web", 4, CommandKind::Promote).to_site("a");
    authority.admit(&promote).unwrap();
    authority.record(&promote).unwrap();
    let start = |epoch| {
        let c = cmd(CommandKind::StartReplication, epoch);
        authority.admit(&c).unwrap();
        c
    };
    let started = r.run(&start(4), &CancellationToken::new()).await;
    assert!(started.ok, "{started:?}");
    std::fs::write(d.src().join("at-4.txt"), "written at epoch 4").unwrap();
    eventually(PATIENCE, "at-4.txt reaches b", || {
        d.target().join("at-4.txt").exists()
    })
    .await;

    // Epoch 5 heard (the orchestrator's answer): the order of 4 is stale.
    authority.observe(&BTreeMap::from([("web".to_string(), 5)]));
    std::fs::write(d.src().join("after.txt"), "written after epoch 5 was heard").unwrap();
    eventually(
        PATIENCE,
        "the status says the push no longer stands",
        || {
            status(&r)
                .error
                .is_some_and(|e| e.contains("no longer stands") && e.contains("epoch 5"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !d.target().join("after.txt").exists(),
        "pushed under an order that no longer stands"
    );

    // The start at the group's epoch, a still active: the push resumes.
    let again = r.run(&start(5), &CancellationToken::new()).await;
    assert!(again.ok, "{again:?}");
    assert!(again.detail.contains("already running"), "{}", again.detail);
    eventually(PATIENCE, "after.txt reaches b under the order of 5", || {
        d.target().join("after.txt").exists()
    })
    .await;
    assert_eq!(status(&r).epoch, 5);
}
