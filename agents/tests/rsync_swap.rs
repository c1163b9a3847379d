//! A directory swapped in by renames (`mv current old; mv new current`, a
//! common deploy step) against a real rsync daemon on 127.0.0.1: inotify
//! reports only the three directories, never their entries, so the batch
//! that names them must leave the peer's `current/` equal to the source's
//! (no file of the old version left in it), the manifest must say so, and a
//! failback that pulls from the peer must not bring an old file back. Needs
//! `rsync` (CI fails without it, elsewhere the tests skip).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    DivergentPolicy, Manifest, Replicator, Resyncer, RsyncReplicator, RsyncResyncer,
};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

fn manifest(d: &Daemon) -> BTreeMap<String, String> {
    Manifest::load(&d.dir.path().join("state/manifest.json"))
        .unwrap()
        .items
        .into_iter()
        .map(|(k, v)| (k, v.version))
        .collect()
}

/// `current/` (version 1) replicated, `new/` (version 2) beside it.
fn deploy_tree(src: &Path) {
    write(src, "current/v1only", "only in version 1");
    write(src, "current/common", "common, version 1");
    write(src, "current/lib/old.so", "an old library");
    write(src, "new/common", "common, version 2 (longer)");
    write(src, "new/v2only", "only in version 2");
    write(src, "new/lib/new.so", "a new library");
    write(src, "keep.txt", "untouched");
}

async fn lag_zero(repl: &RsyncReplicator) {
    let deadline = Instant::now() + PATIENCE;
    // the watcher's events first, then the batches they make
    tokio::time::sleep(Duration::from_millis(200)).await;
    while repl.lag() > Duration::ZERO {
        assert!(Instant::now() < deadline, "lag stays {:?}", repl.lag());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_by_renames_leaves_no_old_file_at_the_peer_nor_brings_one_back() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, dst) = (d.src(), d.target());
    deploy_tree(&src);
    let repl = RsyncReplicator::new(settings(&d));
    repl.start(CancellationToken::new()).await.unwrap();
    assert_eq!(snapshot(&dst), snapshot(&src), "after the initial pass");

    std::fs::rename(src.join("current"), src.join("old")).unwrap();
    std::fs::rename(src.join("new"), src.join("current")).unwrap();
    lag_zero(&repl).await;
    assert!(
        !dst.join("current/v1only").exists() && !dst.join("current/lib/old.so").exists(),
        "version 1's files left in the peer's current/: {:?}",
        snapshot(&dst.join("current")).keys().collect::<Vec<_>>()
    );
    assert_eq!(
        snapshot(&dst.join("current")),
        snapshot(&src.join("current"))
    );
    assert_eq!(snapshot(&dst), snapshot(&src), "the whole tree");
    repl.stop().await;
    // The book says what the peer holds: version 2 under current/, version 1 under old/.
    let m = manifest(&d);
    let under = |p: &str| -> Vec<&str> {
        m.keys()
            .filter(|k| k.starts_with(p))
            .map(|k| k.as_str())
            .collect()
    };
    assert_eq!(
        under("current/"),
        ["current/common", "current/lib/new.so", "current/v2only"]
    );
    assert_eq!(
        under("old/"),
        ["old/common", "old/lib/old.so", "old/v1only"]
    );

    // The failover: the peer takes over (and is written to); this site
    // returns and pulls from it. The old version's files never come back
    // into current/, and the resync finds nothing to delete or set aside.
    write(&dst, "written-at-peer.txt", "after the failover");
    let before = snapshot(&dst);
    let back = RsyncResyncer::new(settings(&d)).unwrap();
    let report = back
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(
        !src.join("current/v1only").exists(),
        "the failback brought a deleted file back"
    );
    assert_eq!(snapshot(&src), before, "the returning site is the peer's");
    assert_eq!(
        (report.fetched.items, report.deleted, report.divergent.len()),
        (1, 0, 0),
        "{report:?}"
    );
    let v = back.verify(&[]).await.unwrap();
    assert!(v.differences.is_empty(), "{:?}", v.differences);
    let names: Vec<PathBuf> = snapshot(&src).into_keys().collect();
    assert!(names.contains(&PathBuf::from("old/v1only")), "{names:?}");
}
