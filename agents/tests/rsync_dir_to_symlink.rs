//! A directory replaced by a symlink while the events of its old entries
//! wait (`rm -rf d && ln -s /elsewhere d`), against a real rsync daemon on
//! 127.0.0.1. rsync follows a symlink on the way of a `--files-from` name
//! (`d/f` with `d` a link): handed the old entries' names, it would send
//! what the link points at — outside the tree — and make `d` a directory at
//! the other side in place of the link, for good (no later event names
//! `d`). The push batch, the change journal and the cut-over's journaled
//! pull must carry the link itself, never what is behind it. Needs `rsync`
//! (CI fails without it, elsewhere the tests skip).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::journal::ChangeJournal;
use warden_agents::replicate::manifest::escape_name;
use warden_agents::replicate::{
    DivergentPolicy, Replicator, Resyncer, RsyncReplicator, RsyncResyncer,
};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

/// A directory outside every replicated tree, with names the tree's `d` had.
fn outside(d: &Daemon) -> PathBuf {
    let out = d.dir.path().join("outside");
    write(&out, "f.txt", "OUTSIDE the tree");
    write(&out, "sub/g.txt", "OUTSIDE the tree too");
    write(&out, "sub/more.txt", "never in the tree");
    out
}

/// What `p` is: a symlink's target, or how it is not one.
fn what(p: &Path) -> String {
    match p.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => {
            format!("symlink to {}", std::fs::read_link(p).unwrap().display())
        }
        Ok(m) if m.is_dir() => format!("directory holding {:?}", snapshot(p)),
        Ok(_) => "a file".into(),
        Err(e) => format!("nothing ({e})"),
    }
}

/// Waits until `p` is a symlink to `to`; panics with what it is instead.
async fn link_arrives(p: &Path, to: &Path, what_for: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = what(p);
        if now == format!("symlink to {}", to.display()) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what_for}: {} is a {now}, not a symlink to {}",
                p.display(),
                to.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pushed_link(batch_max: usize) {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, target) = (d.src(), d.target());
    write(&src, "d/f.txt", "inside the tree");
    write(&src, "d/sub/g.txt", "inside the tree too");
    write(&src, "other.txt", "x");
    let out = outside(&d);
    let mut s = d.settings("drdata", PASSWORD);
    s.manifest = Some(d.dir.path().join("state/manifest.json"));
    s.batch_max = batch_max;
    let repl = RsyncReplicator::new(s);
    repl.start(CancellationToken::new()).await.unwrap();
    assert!(target.join("d/sub/g.txt").is_file(), "the initial pass");

    std::fs::remove_dir_all(src.join("d")).unwrap();
    std::os::unix::fs::symlink(&out, src.join("d")).unwrap();
    link_arrives(&target.join("d"), &out, "the directory replaced by a link").await;
    // A while for any batch still to come.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        what(&target.join("d")),
        format!("symlink to {}", out.display()),
        "batch_max {batch_max}"
    );
    let diffs = repl.verify().await.unwrap();
    assert!(diffs.is_empty(), "batch_max {batch_max}: {diffs:?}");
    repl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_replaced_by_a_link_arrives_as_the_link() {
    pushed_link(1000).await;
}

/// One path a batch: the link goes first, its old entries' names alone
/// after it, each reached through the link here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_entries_batched_alone_after_the_link_do_not_turn_it_back() {
    pushed_link(1).await;
}

/// The returning site resynced from the active peer (the daemon's module;
/// `src/` is the returning site) while the peer's journal runs; then, at the
/// peer, an old entry rewritten and its directory replaced by a link to
/// another directory of the module (the daemon would follow it). Returns
/// the names the journal gives.
async fn replaced_during_the_resync(d: &Daemon) -> Vec<String> {
    let (active, here) = (d.target(), d.src());
    write(&active, "d/f.txt", "inside the tree");
    write(&active, "d/sub/g.txt", "inside the tree too");
    write(&active, "other/f.txt", "where the link will point");
    write(&active, "other/sub/g.txt", "likewise");
    write(&active, "other/sub/more.txt", "never under d");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let journal = ChangeJournal::start(&active, &d.dir.path().join("barrier")).unwrap();
    let mark = journal.mark_flushed().await.unwrap();
    RsyncResyncer::new(settings(d))
        .unwrap()
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(here.join("d/sub/g.txt").is_file(), "the resync pass");
    write(&active, "d/f.txt", "rewritten");
    std::fs::remove_dir_all(active.join("d")).unwrap();
    std::os::unix::fs::symlink("other", active.join("d")).unwrap();
    journal
        .since(mark)
        .await
        .unwrap()
        .iter()
        .map(|n| escape_name(n.as_os_str().as_encoded_bytes()))
        .collect()
}

fn settings(d: &Daemon) -> warden_agents::replicate::RsyncSettings {
    let mut s = d.settings("drdata", PASSWORD);
    s.manifest = Some(d.dir.path().join("state/manifest.json"));
    s
}

/// The journaled final pass over `names`: the returning site's `d` ends
/// as the peer's link, and the verification finds nothing.
async fn pulled_link(d: &Daemon, names: &[String]) {
    let fin = RsyncResyncer::new(settings(d)).unwrap();
    let report = fin
        .pass_changed(names, &[], false, CancellationToken::new())
        .await
        .unwrap()
        .unwrap_or_else(|why| panic!("{names:?}: no journaled pass: {why}"));
    assert_eq!(
        what(&d.src().join("d")),
        "symlink to other",
        "{names:?}: {report:?}"
    );
    let v = fin.verify(&[]).await.unwrap();
    assert!(v.differences.is_empty(), "{names:?}: {:?}", v.differences);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_names_the_link_and_its_pull_carries_the_link() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let names = replaced_during_the_resync(&d).await;
    assert_eq!(names, vec!["d".to_string()], "the link alone is named");
    pulled_link(&d, &names).await;
}

/// The names as an agent that also names the old entries sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_entries_named_beside_the_link_are_not_pulled_through_it() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    replaced_during_the_resync(&d).await;
    let names: Vec<String> = ["d", "d/f.txt", "d/sub", "d/sub/g.txt"]
        .into_iter()
        .map(String::from)
        .collect();
    pulled_link(&d, &names).await;
}
