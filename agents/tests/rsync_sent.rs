//! A push whose site is lost before its manifest confirmed what it sent:
//! the items arrived at the peer, the peer's users deleted one while the
//! peer was the active site, and the failback's resync must not keep the
//! returning site's copy in place (the next push would bring the deleted
//! item back: a delete acknowledged at the active site, undone). It is
//! moved to the quarantine (`sent_unconfirmed`), while a write that never
//! left the site stays in place under `keep`.
//!
//! Real rsync daemon on 127.0.0.1 (`drdata` plays the peer), the real push
//! replicator (its worker, its batches and its initial full pass), then the
//! real resyncer. "The site is lost" = the replicator dropped while its
//! rsync (a wrapper: the real rsync, then a sleep) has delivered the
//! transfer but not ended, so nothing after it is booked. Needs `rsync`
//! (CI fails without it, elsewhere the tests skip).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::sent::Sent;
use warden_agents::replicate::{
    DivergentPolicy, DivergentReason, Manifest, Replicator, Resyncer, RsyncReplicator,
    RsyncResyncer, RsyncSettings,
};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

/// Where [`settings`] keeps the pair manifest.
fn manifest_path(d: &Daemon) -> PathBuf {
    d.dir.path().join("state/manifest.json")
}

/// Settings whose rsync hangs after the first transfer matching
/// `pattern` once `flag` exists ([`hanging_rsync`]).
fn hanging_after(d: &Daemon, flag: &Path, pattern: &str) -> RsyncSettings {
    let wrapper = d.dir.path().join("hanging-rsync");
    hanging_rsync(&wrapper, flag, pattern);
    let mut s = settings(d);
    s.rsync_path = wrapper;
    s
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The failback at the stale site under `keep`: what it reported, by name.
async fn failback(d: &Daemon) -> BTreeMap<String, (DivergentReason, String)> {
    let report = RsyncResyncer::new(settings(d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    report
        .divergent
        .into_iter()
        .map(|i| (i.name, (i.reason, i.action)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_lost_with_its_site_is_quarantined_where_the_peer_deleted_it() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "old.txt", "in sync for long");
    let flag = d.dir.path().join("hang-next-batch");
    let push = RsyncReplicator::new(hanging_after(&d, &flag, "*\" --files-from=\"*"));
    let cancel = CancellationToken::new();
    push.start(cancel.clone()).await.unwrap();
    arrives(&active, "old.txt", "in sync for long").await;
    until("old.txt booked in the manifest", || {
        Manifest::load(&manifest_path(&d)).is_ok_and(|m| m.items.contains_key("old.txt"))
    })
    .await;
    until(
        "the record of the first pass ended once a save confirmed it",
        || {
            let r = Sent::load(&Sent::beside(&manifest_path(&d)));
            !r.full && !r.covers("old.txt")
        },
    )
    .await;

    // The batch that is delivered, and then the site is lost.
    std::fs::write(&flag, b"").unwrap();
    write(&stale, "sent.txt", "arrived, never confirmed");
    write(&stale, "sent-kept.txt", "arrived too, the peer keeps it");
    arrives(&active, "sent.txt", "arrived, never confirmed").await;
    arrives(&active, "sent-kept.txt", "arrived too, the peer keeps it").await;
    let record = Sent::load(&Sent::beside(&manifest_path(&d)));
    assert!(
        record.covers("sent.txt") && !record.full,
        "on disk before the batch ran: {record:?}"
    );
    cancel.cancel();
    drop(push);
    let booked = Manifest::load(&manifest_path(&d)).unwrap();
    assert!(
        !booked.items.contains_key("sent.txt"),
        "the test proves nothing: the batch was confirmed"
    );
    // Written after the last batch left: it never reached the peer.
    write(&stale, "never-sent.txt", "only here");

    // The peer is active: its users delete what arrived.
    std::fs::remove_file(active.join("sent.txt")).unwrap();

    let div = failback(&d).await;
    assert_eq!(
        div.get("sent.txt"),
        Some(&(DivergentReason::SentUnconfirmed, "quarantined".to_string())),
        "{div:?}"
    );
    assert_eq!(
        div.get("never-sent.txt"),
        Some(&(DivergentReason::NotInManifest, "kept".to_string())),
        "a write that never left the site stays under keep: {div:?}"
    );
    assert!(
        !div.contains_key("sent-kept.txt"),
        "the peer holds it as sent: in sync, not divergent: {div:?}"
    );
    assert!(
        !stale.join("sent.txt").exists(),
        "deleted at the active site, not back in the returning site's tree"
    );
    let mut expected = files(&active);
    expected.insert("never-sent.txt".into(), b"only here".to_vec());
    assert_eq!(files(&stale), expected);
    let quarantined = snapshot(&settings(&d).quarantine_dir());
    assert!(
        quarantined.iter().any(|(k, v)| k.ends_with("sent.txt")
            && v.as_deref() == Some(&b"arrived, never confirmed"[..])),
        "the returning site's copy is not lost: {quarantined:?}"
    );
    assert!(
        !Sent::beside(&manifest_path(&d)).exists(),
        "a resync pass that completed ends the record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pass_lost_with_its_site_leaves_everything_unconfirmed_in_doubt() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "a.txt", "a");
    write(&stale, "dir/b.txt", "b");
    let flag = d.dir.path().join("hang-next-pass");
    std::fs::write(&flag, b"").unwrap();
    // The initial full pass delivers, then hangs: `start` never returns.
    let push = std::sync::Arc::new(RsyncReplicator::new(hanging_after(
        &d,
        &flag,
        "*\" --force \"*",
    )));
    let cancel = CancellationToken::new();
    let starting = tokio::spawn({
        let (push, cancel) = (push.clone(), cancel.clone());
        async move { push.start(cancel).await }
    });
    arrives(&active, "dir/b.txt", "b").await;
    until("the pass delivered", || !flag.exists()).await;
    let rec = Sent::beside(&manifest_path(&d));
    assert!(
        Sent::load(&rec).full,
        "{:?} {:?}",
        std::fs::read_to_string(&rec),
        std::fs::read_dir(d.dir.path().join("state"))
            .map(|r| r.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
    );
    cancel.cancel();
    let _ = starting.await;
    drop(push);

    std::fs::remove_file(active.join("dir/b.txt")).unwrap();
    let div = failback(&d).await;
    assert_eq!(
        div.get("dir/b.txt"),
        Some(&(DivergentReason::SentUnconfirmed, "quarantined".to_string())),
        "{div:?}"
    );
    assert!(!stale.join("dir/b.txt").exists());
    assert_eq!(files(&stale), files(&active));
}
