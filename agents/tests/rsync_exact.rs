//! Issue 11 at crate level: conflict detection that cannot be fooled, with
//! the real push replicator (which records the manifest) and the real
//! resyncer against a real rsync daemon on 127.0.0.1. The daemon's `drdata`
//! module plays the active peer, `src/` the returning (stale) site.
//! Needs `rsync` (CI fails without it, elsewhere the tests skip).

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    DivergentPolicy, DivergentReason, Manifest, Replicator, Resyncer, RsyncReplicator,
    RsyncResyncer,
};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn read(root: &Path, name: &str) -> String {
    std::fs::read_to_string(root.join(name)).unwrap()
}

/// Both sides in sync through the push replicator (which records the manifest).
async fn synced(d: &Daemon) {
    let push = RsyncReplicator::new(settings(d));
    push.resync(CancellationToken::new(), None).await.unwrap();
}

/// A whole second, 0.25 s into it.
fn a_second() -> SystemTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(now - 100) + Duration::from_millis(250)
}

/// A file written at both sites within the same second, to the same size:
/// detected (nanosecond mtimes), and the policy applies — here quarantine:
/// the stale site's version set aside, the peer's in place. Also the
/// worst case, both mtimes equal to the nanosecond (rsync's quick check
/// sees nothing): the stamp's ctime and a checksum still tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_second_same_size_conflict_is_quarantined() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "ns.txt", "version 0");
    write(&stale, "equal-ns.txt", "version 0");
    write(&stale, "untouched.txt", "version 0");
    synced(&d).await;
    let m = Manifest::load_escaped(&d.dir.path().join("state/manifest.json")).unwrap();
    assert_eq!(m.stamps.len(), 3, "{m:?}");

    let t = a_second();
    write(&stale, "ns.txt", "version A");
    write(&active, "ns.txt", "version B");
    set_mtime(&stale.join("ns.txt"), t);
    set_mtime(&active.join("ns.txt"), t + Duration::from_millis(300));
    write(&stale, "equal-ns.txt", "version A");
    write(&active, "equal-ns.txt", "version B");
    set_mtime(&stale.join("equal-ns.txt"), t);
    set_mtime(&active.join("equal-ns.txt"), t);

    let r = RsyncResyncer::new(settings(&d)).unwrap();
    let report = r
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    let mut got: Vec<(&str, DivergentReason, &str)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), i.reason, i.action.as_str()))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![
            (
                "equal-ns.txt",
                DivergentReason::ChangedSinceSync,
                "quarantined"
            ),
            ("ns.txt", DivergentReason::ChangedSinceSync, "quarantined"),
        ]
    );
    for item in &report.divergent {
        let to = item.moved_to.as_deref().unwrap();
        assert_eq!(std::fs::read_to_string(to).unwrap(), "version A", "{to}");
        assert_eq!(read(&stale, &item.name), "version B", "{}", item.name);
    }
    assert_eq!(read(&stale, "untouched.txt"), "version 0");
    // Verified equal; a second pass finds nothing divergent.
    assert_eq!(r.verify(&[]).await.unwrap().differences, vec![]);
    let again = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(again.divergent, vec![]);
}

/// A write here whose mtime was set back to the confirmed one (same size):
/// the ctime moved, so it is not taken for the confirmed version. Under
/// `discard` the peer's version replaces it; a file only touched here
/// (same content) is not divergent at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_its_mtime_set_back_is_seen_by_its_ctime() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "sneaky.txt", "original");
    write(&stale, "touched.txt", "same content");
    let t = a_second();
    set_mtime(&stale.join("sneaky.txt"), t);
    set_mtime(&stale.join("touched.txt"), t);
    synced(&d).await;

    // Rewritten here, mtime restored: size and mtime (to the ns) as confirmed.
    write(&stale, "sneaky.txt", "ORIGINAL");
    set_mtime(&stale.join("sneaky.txt"), t);
    set_mtime(&stale.join("touched.txt"), t + Duration::from_secs(3));
    let r = RsyncResyncer::new(settings(&d)).unwrap();
    let report = r
        .pass(DivergentPolicy::Discard, CancellationToken::new(), None)
        .await
        .unwrap();
    let got: Vec<(&str, &str)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), i.action.as_str()))
        .collect();
    assert_eq!(got, vec![("sneaky.txt", "discarded")]);
    assert_eq!(read(&stale, "sneaky.txt"), "original");
    assert_eq!(read(&active, "sneaky.txt"), "original");
    assert_eq!(read(&stale, "touched.txt"), "same content");
    assert_eq!(r.verify(&[]).await.unwrap().differences, vec![]);
}

/// An empty directory written here only is divergent like a file: kept,
/// quarantined or discarded as the policy says, never deleted silently.
/// An empty directory confirmed in sync that the peer deleted goes.
async fn empty_dir(policy: DivergentPolicy) {
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    std::fs::create_dir_all(stale.join("synced-empty")).unwrap();
    std::fs::create_dir_all(stale.join("kept-by-peer")).unwrap();
    write(&stale, "f.txt", "f");
    synced(&d).await;
    assert!(active.join("synced-empty").is_dir());
    std::fs::remove_dir(active.join("synced-empty")).unwrap();
    std::fs::create_dir_all(stale.join("new-empty/inner")).unwrap();

    let r = RsyncResyncer::new(settings(&d)).unwrap();
    let report = r
        .pass(policy, CancellationToken::new(), None)
        .await
        .unwrap();
    let got: Vec<(&str, DivergentReason, &str)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), i.reason, i.action.as_str()))
        .collect();
    let action = match policy {
        DivergentPolicy::Keep => "kept",
        DivergentPolicy::Quarantine => "quarantined",
        DivergentPolicy::Discard => "discarded",
    };
    assert_eq!(
        got,
        vec![("new-empty/inner", DivergentReason::NotInManifest, action)],
        "{policy:?}"
    );
    assert!(!stale.join("synced-empty").exists(), "deleted at the peer");
    assert!(stale.join("kept-by-peer").is_dir());
    assert_eq!(
        stale.join("new-empty/inner").is_dir(),
        policy == DivergentPolicy::Keep
    );
    if policy == DivergentPolicy::Quarantine {
        let to = report.divergent[0].moved_to.as_deref().unwrap();
        assert!(Path::new(to).is_dir(), "{to}");
        assert!(to.ends_with("new-empty/inner"), "{to}");
    }
    let kept: Vec<String> = report
        .divergent
        .iter()
        .filter(|i| i.action == "kept")
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(r.verify(&kept).await.unwrap().differences, vec![]);
    // The next pass says the same: still kept (keep), nothing (others).
    let again = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(policy, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(again.divergent.len(), kept.len(), "{again:?}");
    assert_eq!(again.deleted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_empty_directory_is_kept_under_keep() {
    if have_rsync() {
        empty_dir(DivergentPolicy::Keep).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_empty_directory_is_quarantined_under_quarantine() {
    if have_rsync() {
        empty_dir(DivergentPolicy::Quarantine).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_empty_directory_is_removed_under_discard() {
    if have_rsync() {
        empty_dir(DivergentPolicy::Discard).await;
    }
}

/// Items fetched by one pass, then deleted or rewritten at the peer (the
/// writer keeps going between passes): the next pass deletes or refetches
/// them — never divergent, never kept — because the manifest recorded what
/// arrived, by a stat after the pull. The delta verification covers what
/// the pass fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_pass_fetched_and_the_peer_then_deleted_is_deleted_not_kept() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    for i in 0..50 {
        write(&active, &format!("w/{i}.txt"), &format!("first {i}"));
    }
    let r = RsyncResyncer::new(settings(&d)).unwrap();
    let first = r
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!((first.fetched.items, first.divergent.len()), (50, 0));
    for i in 0..25 {
        std::fs::remove_file(active.join(format!("w/{i}.txt"))).unwrap();
    }
    for i in 25..50 {
        write(&active, &format!("w/{i}.txt"), &format!("v2 {i}"));
    }
    let second = r
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(second.divergent, vec![], "{second:?}");
    assert_eq!(second.deleted, 25);
    assert_eq!(second.fetched.items, 25);
    for i in 0..25 {
        assert!(!stale.join(format!("w/{i}.txt")).exists());
    }
    assert_eq!(read(&stale, "w/49.txt"), "v2 49");
    let v = r.verify(&[]).await.unwrap();
    assert_eq!(v.differences, vec![]);
    // The delta verification reads what the pass fetched, not the tree.
    std::fs::write(active.join("w/30.txt"), "v3 30").unwrap();
    let v = r.verify(&[]).await.unwrap();
    assert_eq!(v.differences.len(), 1, "{v:?}");
}
