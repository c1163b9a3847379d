//! The mass-delete guard of the rsync plan against a real rsync daemon on
//! 127.0.0.1, driven through the agent's replication role with real
//! commands: an emptied source is held (nothing deleted at the peer, the
//! guard in the status), restoring it resumes replication, `clear` lets a
//! held pass go ahead once; an empty peer module never makes a resync delete
//! local files. Needs `rsync` (CI fails without it, elsewhere the tests skip).

use std::path::Path;
use std::time::Duration;

use warden_agents::replication::Replication;
use warden_agents::wire::CommandKind;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;
#[path = "support/rsync_repl.rs"]
mod rsync_repl;
#[path = "support/web.rs"]
mod web;
use rsync_repl::*;

const FILES: usize = 150;

fn fill(root: &Path) {
    for i in 0..FILES {
        let p = root.join(format!("d{}/f{i}.txt", i % 5));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("file {i}")).unwrap();
    }
}

fn empty(root: &Path) {
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
}

fn file_count(root: &Path) -> usize {
    snapshot(root).values().filter(|v| v.is_some()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_source_is_held_until_restored_or_cleared() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    fill(&d.src());
    let r = site_a(&d, "");
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    assert_eq!(
        file_count(&d.target()),
        FILES,
        "the initial pass copied everything"
    );
    assert_eq!(status(&r).guard, None);

    // The source is emptied while replicating: nothing goes, the guard says why.
    empty(&d.src());
    eventually(PATIENCE, "the guard holds replication", || {
        status(&r).guard.is_some()
    })
    .await;
    let held = status(&r).guard.unwrap();
    assert!(
        held.contains("empty") && held.contains(&d.src().display().to_string()),
        "{held}"
    );
    assert!(held.contains("warden clear"), "says what to do: {held}");
    assert_eq!(status(&r).role, "source");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        file_count(&d.target()),
        FILES,
        "nothing was deleted at the peer"
    );

    // Restored (then cleared): replication resumes, nothing was lost.
    fill(&d.src());
    let out = run(&r, CommandKind::Clear).await;
    assert!(out.ok, "{}", out.detail);
    eventually(PATIENCE, "the guard releases", || {
        status(&r).guard.is_none()
    })
    .await;
    std::fs::write(d.src().join("after-restore.txt"), "new").unwrap();
    eventually(PATIENCE, "a new file replicates", || {
        d.target().join("after-restore.txt").exists()
    })
    .await;
    assert_eq!(file_count(&d.target()), FILES + 1);

    // Emptied again; this time the operator means it: clear lets the pass go.
    empty(&d.src());
    eventually(PATIENCE, "the guard holds again", || {
        status(&r).guard.is_some()
    })
    .await;
    assert_eq!(file_count(&d.target()), FILES + 1, "held: nothing deleted");
    let out = run(&r, CommandKind::Clear).await;
    assert!(out.ok && out.detail.contains("released"), "{}", out.detail);
    eventually(PATIENCE, "the released pass empties the peer", || {
        file_count(&d.target()) == 0
    })
    .await;
    assert_eq!(status(&r).guard, None);
    std::fs::write(d.src().join("fresh.txt"), "fresh").unwrap();
    eventually(PATIENCE, "replication resumed after the clear", || {
        d.target().join("fresh.txt").exists()
    })
    .await;
    let out = run(&r, CommandKind::Clear).await;
    assert!(
        out.ok && out.detail.contains("nothing held"),
        "{}",
        out.detail
    );
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_deleting_more_than_the_limits_is_held_but_a_few_deletes_go() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    fill(&d.src());
    let r = site_a(&d, "max_delete_share = 0.25\nmax_delete_count = 10\n");
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    // A few deletes (under the count) go through.
    for i in 0..5 {
        std::fs::remove_file(d.src().join(format!("d{}/f{i}.txt", i % 5))).unwrap();
    }
    eventually(PATIENCE, "small deletes replicate", || {
        file_count(&d.target()) == FILES - 5
    })
    .await;
    assert_eq!(status(&r).guard, None);
    // One directory of five (29 files and the directory: 30 items; with
    // the five deletions of a moment ago, 35 of the about 155 items at the
    // peer: 23 %, not over 25 %): goes. Then two more (60 items; with the
    // 35 of the last minute, 95 of 155: 61 %): held.
    std::fs::remove_dir_all(d.src().join("d0")).unwrap();
    eventually(PATIENCE, "a 23 % delete replicates", || {
        !d.target().join("d0").exists()
    })
    .await;
    let before = file_count(&d.target());
    std::fs::remove_dir_all(d.src().join("d1")).unwrap();
    std::fs::remove_dir_all(d.src().join("d2")).unwrap();
    eventually(PATIENCE, "the guard holds the mass delete", || {
        status(&r).guard.is_some()
    })
    .await;
    let held = status(&r).guard.unwrap();
    assert!(held.contains("would delete"), "{held}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(file_count(&d.target()), before, "nothing deleted");
    assert!(d.target().join("d1/f6.txt").exists());
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
    assert_eq!(status(&r).guard, None, "stopped: nothing held any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_peer_module_never_makes_a_resync_delete_local_files() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    fill(&d.src());
    let r = site_a(&d, "");
    // In sync through the push replicator, which records the manifest.
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
    let manifest = std::path::PathBuf::from(format!("{}.warden-manifest.json", d.src().display()));
    assert!(manifest.exists(), "the push recorded the manifest");
    let before = snapshot(&d.src());

    // The peer module comes back empty: a blank volume mounted there (a
    // fresh ext4 holds only an empty lost+found, which is no data).
    let saved = d.dir.path().join("saved");
    std::fs::rename(d.target(), &saved).unwrap();
    std::fs::create_dir_all(d.target().join("lost+found")).unwrap();
    let r = std::sync::Arc::new(r);
    let resync = tokio::spawn({
        let r = r.clone();
        async move { run(&r, CommandKind::Resync).await }
    });
    eventually(PATIENCE, "the guard holds the resync", || {
        status(&r).guard.is_some()
    })
    .await;
    let held = status(&r).guard.unwrap();
    assert!(
        held.contains("is empty") && held.contains(&format!("{FILES} of the {FILES}")),
        "{held}"
    );
    assert_eq!(status(&r).role, "resync");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // (the peer's empty lost+found may have been pulled: nothing else)
    let mut here = snapshot(&d.src());
    here.remove(std::path::Path::new("lost+found"));
    assert_eq!(here, before, "nothing deleted here");
    assert!(!resync.is_finished(), "the held resync waits");

    // The peer's data is back: the waiting resync goes on by itself.
    std::fs::remove_dir_all(d.target()).unwrap();
    std::fs::rename(&saved, d.target()).unwrap();
    let out = tokio::time::timeout(PATIENCE, resync)
        .await
        .expect("the resync ends once the peer is back")
        .unwrap();
    assert!(out.ok, "{}", out.detail);
    assert_eq!(snapshot(&d.src()), before);
    assert_eq!(status(&r).guard, None);
}

/// A blank volume mounted at the source path (a fresh ext4 holds only an
/// empty `lost+found`) is an empty source all the same: held, in a group
/// small enough that the count limit would let every deletion through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_volume_at_the_source_is_held_as_an_empty_source() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    for i in 0..20 {
        std::fs::write(d.src().join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    let r = site_a(&d, "");
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    assert_eq!(file_count(&d.target()), 20);

    let blank = d.dir.path().join("blank-volume");
    std::fs::create_dir_all(blank.join("lost+found")).unwrap();
    std::fs::rename(d.src(), d.dir.path().join("old-volume")).unwrap();
    std::fs::rename(&blank, d.src()).unwrap();
    eventually(PATIENCE, "the guard holds replication", || {
        status(&r).guard.is_some()
    })
    .await;
    let held = status(&r).guard.unwrap();
    assert!(held.contains("is empty"), "{held}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        file_count(&d.target()),
        20,
        "nothing was deleted at the peer"
    );
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
}

/// The limits of the slow-emptying drills: half the files, more than 3.
const HALF: &str = "max_delete_share = 0.5\nmax_delete_count = 3\n";

/// Site a replicating ten files under [`HALF`], then five of them deleted
/// one at a time, each carried before the next (5 of 10: 50 %, not over).
async fn five_of_ten_deleted(d: &Daemon) -> Replication {
    for i in 0..10 {
        std::fs::write(d.src().join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    let r = site_a(d, HALF);
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    assert_eq!(file_count(&d.target()), 10);
    for i in 0..5 {
        std::fs::remove_file(d.src().join(format!("f{i}"))).unwrap();
        eventually(PATIENCE, "the deletion replicates", || {
            file_count(&d.target()) == 9 - i
        })
        .await;
        assert_eq!(status(&r).guard, None, "after {}", i + 1);
    }
    r
}

/// A source emptied slowly, one file at a time (a cleanup script, a
/// failing disk): each batch deletes one file, within the limits, but the
/// deletions of the last minute count together, and the full pass a held
/// batch leads to counts them too: the file that takes the total over the
/// limits stays at the peer until the operator clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_emptied_one_file_at_a_time_is_held_too() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let r = five_of_ten_deleted(&d).await;
    std::fs::remove_file(d.src().join("f5")).unwrap();
    eventually(PATIENCE, "the sixth is held", || status(&r).guard.is_some()).await;
    let held = status(&r).guard.unwrap();
    assert!(held.contains("after 5 deleted"), "{held}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        d.target().join("f5").exists(),
        "nothing more deleted at the peer"
    );
    assert_eq!(file_count(&d.target()), 5);
    let out = run(&r, CommandKind::Clear).await;
    assert!(out.ok && out.detail.contains("released"), "{}", out.detail);
    eventually(PATIENCE, "the cleared pass deletes it", || {
        !d.target().join("f5").exists()
    })
    .await;
    assert_eq!(status(&r).guard, None);
    assert_eq!(file_count(&d.target()), 4);
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
}

#[tokio::test]
async fn the_window_outlives_a_restart_of_the_agent() {
    // The same drill, with the agent restarted (a new replication role, the
    // old one's memory gone: a crash, an operator's restart, a crash loop)
    // after the fifth deletion: the sixth is held all the same, as the
    // deletions of the last minute are kept beside the manifest.
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let r = five_of_ten_deleted(&d).await;
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
    drop(r);
    let r = site_a(&d, HALF);
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    assert_eq!(
        status(&r).guard,
        None,
        "the restart's own pass deletes nothing"
    );
    std::fs::remove_file(d.src().join("f5")).unwrap();
    eventually(PATIENCE, "the sixth is held after the restart", || {
        status(&r).guard.is_some()
    })
    .await;
    let held = status(&r).guard.unwrap();
    assert!(held.contains("after 5 deleted"), "{held}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        d.target().join("f5").exists(),
        "nothing more deleted at the peer"
    );
    // Restarted again while held (an operator hoping to unstick it): the
    // start's full pass is held in turn, and the file stays at the peer.
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
    drop(r);
    let r = site_a(&d, HALF);
    let out = run(&r, CommandKind::StartReplication).await;
    eventually(PATIENCE, "held again after the second restart", || {
        status(&r).guard.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        d.target().join("f5").exists(),
        "the restarted agent's pass deleted nothing ({})",
        out.detail
    );
    let out = run(&r, CommandKind::Clear).await;
    assert!(out.ok && out.detail.contains("released"), "{}", out.detail);
    eventually(PATIENCE, "the cleared pass deletes it", || {
        !d.target().join("f5").exists()
    })
    .await;
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
}

/// A directory of 500 files replaced by a symlink (the directory moved out
/// of the tree, a link put in its place: inotify names only `big`, which
/// still exists): rsync's `--force` would delete the 500 files at the peer,
/// so the batch counts them (the book knows them) and is held like a mass
/// delete by name; `clear` lets the replacement go ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_replaced_by_a_symlink_is_counted_and_held() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    fill(&d.src());
    for i in 0..500 {
        let p = d.src().join(format!("big/f{i}.txt"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("big {i}")).unwrap();
    }
    let r = site_a(&d, "max_delete_count = 10\n");
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    assert_eq!(file_count(&d.target()), FILES + 500);

    std::fs::rename(d.src().join("big"), d.dir.path().join("big-moved-away")).unwrap();
    std::os::unix::fs::symlink("d0", d.src().join("big")).unwrap();
    eventually(PATIENCE, "the guard holds the replacement", || {
        status(&r).guard.is_some()
    })
    .await;
    let held = status(&r).guard.unwrap();
    assert!(held.contains("would delete 500"), "{held}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        file_count(&d.target()),
        FILES + 500,
        "nothing deleted at the peer"
    );
    assert!(d.target().join("big").is_dir() && !d.target().join("big").is_symlink());

    let out = run(&r, CommandKind::Clear).await;
    assert!(out.ok && out.detail.contains("released"), "{}", out.detail);
    eventually(PATIENCE, "the released pass replaces the directory", || {
        d.target().join("big").is_symlink()
    })
    .await;
    assert_eq!(snapshot(&d.target()), snapshot(&d.src()));
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
}

/// What no count foresaw (a directory at the peer the manifest does not
/// know, where the source now has a new file) is bounded all the same:
/// the batch runs with `--max-delete` at what the guard's limits still
/// allow (15: 10 % of the 150 items known), stops there, and the guarded
/// full pass it owes holds the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_no_count_foresaw_stop_at_the_limits() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    fill(&d.src());
    let r = site_a(&d, "max_delete_count = 10\n");
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    for i in 0..50 {
        let p = d.target().join(format!("x/f{i}.txt"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "put at the peer behind the replication's back").unwrap();
    }
    std::fs::write(d.src().join("x"), "a new file").unwrap();
    eventually(PATIENCE, "the guard holds the rest", || {
        status(&r).guard.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let left = file_count(&d.target().join("x"));
    assert!(
        (35..50).contains(&left),
        "at most 15 deleted, and the batch did delete: {left} left"
    );
    let held = status(&r).guard.unwrap();
    assert!(held.contains("would delete"), "{held}");
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
}

/// A release order names the hold the operator read: a late or replayed
/// one whose hold is not the one held now releases nothing (the peer keeps
/// its files, the outcome says what is held); the one naming it lets the
/// held pass go ahead once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_lets_go_only_the_hold_it_names() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    fill(&d.src());
    let r = site_a(&d, "");
    let out = run(&r, CommandKind::StartReplication).await;
    assert!(out.ok, "{}", out.detail);
    empty(&d.src());
    eventually(PATIENCE, "the guard holds replication", || {
        status(&r).guard.is_some()
    })
    .await;
    let held = status(&r).guard.unwrap();
    let clear = |seen: &str| {
        let mut c = cmd(CommandKind::Clear, 1);
        c.guard_seen = Some(seen.to_string());
        c
    };
    let stale = clear("mass-delete guard: a hold read long ago");
    let out = r
        .run(&stale, &tokio_util::sync::CancellationToken::new())
        .await;
    assert!(
        !out.ok && out.detail.contains("not released") && out.detail.contains(&held),
        "{}",
        out.detail
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        file_count(&d.target()),
        FILES,
        "nothing deleted at the peer"
    );
    assert!(status(&r).guard.is_some(), "still held");
    let out = r
        .run(&clear(&held), &tokio_util::sync::CancellationToken::new())
        .await;
    assert!(out.ok && out.detail.contains("released"), "{}", out.detail);
    eventually(PATIENCE, "the released pass empties the peer", || {
        file_count(&d.target()) == 0
    })
    .await;
}
