//! The rsync resyncer (failback pull) against a real rsync daemon on
//! 127.0.0.1: the daemon's `drdata` module plays the active peer, the
//! harness's `src/` the returning (stale) site. The manifest is written by the
//! real push replicator before the "disaster". Needs `rsync` (CI fails
//! without it, elsewhere the tests skip).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    DivergentPolicy, DivergentReason, Manifest, Replicator, Resyncer, RsyncReplicator,
    RsyncResyncer,
};
use warden_agents::AgentError;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

/// The push replicator's full pass: both sides in sync, the manifest recorded.
async fn in_sync(d: &Daemon) {
    RsyncReplicator::new(settings(d))
        .resync(CancellationToken::new(), None)
        .await
        .unwrap();
}

/// Both sides in sync through the push replicator (which records the
/// manifest), then the disaster: the peer takes writes and deletes, the
/// stale site holds writes that never left it.
async fn disaster(d: &Daemon) {
    let (stale, active) = (d.src(), d.target());
    write(&stale, "same.txt", "same");
    write(&stale, "deleted-at-peer.txt", "gone soon");
    write(&stale, "changed-at-peer.txt", "v1");
    write(&stale, "conflict.txt", "v1");
    write(&stale, "sub dir/deep file.txt", "deep");
    let push = RsyncReplicator::new(settings(d));
    push.resync(CancellationToken::new(), None).await.unwrap();
    assert_eq!(files(&stale), files(&active));
    let m = Manifest::load(&d.dir.path().join("state/manifest.json")).unwrap();
    assert_eq!(m.items.len(), 5, "{m:?}");

    // At the peer, during the disaster.
    write(&active, "new-at-peer.txt", "written at the peer");
    write(&active, "new dir/x.txt", "x at the peer");
    write(&active, "changed-at-peer.txt", "v2 at the peer, longer");
    write(&active, "conflict.txt", "peer's version of the conflict");
    std::fs::remove_file(active.join("deleted-at-peer.txt")).unwrap();
    std::os::unix::fs::symlink("same.txt", active.join("link")).unwrap();
    // At the stale site, never replicated.
    write(&stale, "only-here/divergent.txt", "written here only");
    write(&stale, "conflict.txt", "stale site's version");
}

async fn run_policy(policy: DivergentPolicy) {
    let d = Daemon::start();
    disaster(&d).await;
    let (stale, active) = (d.src(), d.target());
    let resyncer = RsyncResyncer::new(settings(&d)).unwrap();
    let quarantine = resyncer.quarantine().to_path_buf();
    assert_eq!(quarantine, d.dir.path().join("src.warden-quarantine"));

    let (tx, rx) = tokio::sync::watch::channel(Default::default());
    let report = resyncer
        .pass(policy, CancellationToken::new(), Some(tx))
        .await
        .unwrap();

    // Every active-side file is here with the same content; deleted ones are gone.
    let (here, peer) = (files(&stale), files(&active));
    for (name, body) in &peer {
        assert_eq!(here.get(name), Some(body), "{policy:?}: {name:?}");
    }
    assert_eq!(
        std::fs::read_link(stale.join("link")).unwrap(),
        Path::new("same.txt")
    );
    assert!(!stale.join("deleted-at-peer.txt").exists());
    assert_eq!(report.deleted, 1, "{report:?}");
    assert!(report.fetched.items >= 5, "{report:?}");
    assert_eq!(report.peer_items, 7, "{report:?}");
    let p = *rx.borrow();
    assert_eq!((p.items_left, p.bytes_left), (0, 0), "{p:?}");
    assert!(p.items_done >= report.fetched.items, "{p:?}");

    // The divergent items: listed, and handled as the policy says.
    let mut div = report.divergent.clone();
    div.sort_by(|a, b| a.name.cmp(&b.name));
    let got: Vec<(&str, DivergentReason, &str)> = div
        .iter()
        .map(|i| (i.name.as_str(), i.reason, i.action.as_str()))
        .collect();
    let (conflict_action, here_action) = match policy {
        DivergentPolicy::Keep => ("quarantined", "kept"),
        DivergentPolicy::Quarantine => ("quarantined", "quarantined"),
        DivergentPolicy::Discard => ("discarded", "discarded"),
    };
    assert_eq!(
        got,
        vec![
            (
                "conflict.txt",
                DivergentReason::ChangedSinceSync,
                conflict_action
            ),
            (
                "only-here/divergent.txt",
                DivergentReason::NotInManifest,
                here_action
            ),
        ]
    );
    for item in &div {
        match &item.moved_to {
            Some(to) => {
                assert_eq!(item.action, "quarantined");
                let to = PathBuf::from(to);
                assert!(to.starts_with(&quarantine), "{to:?}");
                let want = if item.name == "conflict.txt" {
                    "stale site's version"
                } else {
                    "written here only"
                };
                assert_eq!(std::fs::read_to_string(&to).unwrap(), want);
            }
            None => assert_ne!(item.action, "quarantined", "{item:?}"),
        }
    }
    let kept: Vec<String> = div
        .iter()
        .filter(|i| i.action == "kept")
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(
        stale.join("only-here/divergent.txt").exists(),
        policy == DivergentPolicy::Keep
    );
    if policy == DivergentPolicy::Discard {
        assert!(!quarantine.exists(), "discard moved something aside");
    }

    // Verified equal except the kept items; without the exception, it differs.
    let v = resyncer.verify(&kept).await.unwrap();
    assert_eq!(v.differences, vec![], "{policy:?}");
    assert_eq!(v.items, 7);
    assert_eq!(v.excepted, kept.len() as u64);
    if !kept.is_empty() {
        let v = resyncer.verify(&[]).await.unwrap();
        assert!(!v.differences.is_empty(), "kept file not seen by verify");
    }

    // Second pass after more changes at the peer, including deleting a file
    // the first pass fetched: it is deleted here, not divergent.
    std::fs::remove_file(active.join("new-at-peer.txt")).unwrap();
    write(&active, "second.txt", "second round");
    write(
        &active,
        "sub dir/deep file.txt",
        "deep, changed at the peer",
    );
    let report = resyncer
        .pass(policy, CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(!stale.join("new-at-peer.txt").exists());
    assert_eq!(report.deleted, 1, "{report:?}");
    let names: Vec<&str> = report.divergent.iter().map(|i| i.name.as_str()).collect();
    let want: Vec<&str> = if policy == DivergentPolicy::Keep {
        vec!["only-here/divergent.txt"]
    } else {
        vec![]
    };
    assert_eq!(names, want, "{report:?}");
    let (here, peer) = (files(&stale), files(&active));
    for (name, body) in &peer {
        assert_eq!(here.get(name), Some(body), "second pass: {name:?}");
    }
    assert_eq!(here.len(), peer.len() + kept.len());
    assert_eq!(resyncer.verify(&kept).await.unwrap().differences, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_with_keep_leaves_divergent_writes_and_moves_conflicts_aside() {
    if have_rsync() {
        run_policy(DivergentPolicy::Keep).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_with_quarantine_moves_divergent_writes_aside() {
    if have_rsync() {
        run_policy(DivergentPolicy::Quarantine).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_with_discard_removes_divergent_writes() {
    if have_rsync() {
        run_policy(DivergentPolicy::Discard).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_missing_module_and_unwritable_target_fail_clearly_and_change_nothing() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    disaster(&d).await;
    let before = snapshot(&d.src());
    let manifest_before = Manifest::load(&d.dir.path().join("state/manifest.json")).unwrap();

    let wrong = "Wrong-Password-77";
    let mut s = settings(&d);
    s.password = warden_config::Secret::new(wrong);
    let r = RsyncResyncer::new(s).unwrap();
    let err = r
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::ReplicationAuth { .. }), "{err:?}");
    assert!(!err.to_string().contains(wrong) && !format!("{err:?}").contains(wrong));
    assert!(matches!(
        r.verify(&[]).await.unwrap_err(),
        AgentError::ReplicationAuth { .. }
    ));

    let mut s = settings(&d);
    s.module = "nosuchmodule".into();
    let err = RsyncResyncer::new(s)
        .unwrap()
        .pass(DivergentPolicy::Discard, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::ReplicationNoModule { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("nosuchmodule"), "{err}");

    assert_eq!(
        snapshot(&d.src()),
        before,
        "a failed pass changed the stale site"
    );
    assert!(!d.dir.path().join("src.warden-quarantine").exists());
    assert_eq!(
        Manifest::load(&d.dir.path().join("state/manifest.json")).unwrap(),
        manifest_before
    );

    // A local "directory" below a regular file cannot be created.
    let mut s = settings(&d);
    s.source = d.src().join("same.txt/sub");
    let err = RsyncResyncer::new(s)
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::LocalTarget { .. }), "{err:?}");
    assert!(err.to_string().contains("same.txt/sub"), "{err}");
    assert_eq!(snapshot(&d.src()), before);

    // A directory this site cannot write: a 0555 one (for anyone but
    // root), else (root) a volume mounted read-only — as a data volume the
    // kernel remounted read-only after I/O errors.
    let ro = d.dir.path().join("ro-local");
    std::fs::create_dir(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let _mounted = if std::fs::write(ro.join("probe"), b"").is_ok() {
        let _ = std::fs::remove_file(ro.join("probe"));
        let Some(m) = Tmpfs::mount_with(&ro, "ro,size=1m,mode=0755") else {
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
            return;
        };
        assert!(
            std::fs::write(ro.join("probe"), b"").is_err(),
            "the read-only volume takes writes"
        );
        Some(m)
    } else {
        None
    };
    let mut s = settings(&d);
    s.source = ro.clone();
    let err = RsyncResyncer::new(s)
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::LocalTarget { .. }), "{err:?}");
    assert!(err.to_string().contains("ro-local"), "{err}");
    drop(_mounted);
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_pass_stops_with_cancelled() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let r = RsyncResyncer::new(settings(&d)).unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = r
        .pass(DivergentPolicy::Keep, cancel, None)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::ReplicationCancelled), "{err:?}");
}

/// A peer emptied while the resync's passes run (two files, then four):
/// each pass alone is within the limits (4 of the 8 left is 50 %, not
/// over), but the deletions of the passes of the last minute count
/// together, so the second pass is held and deletes nothing here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_emptied_between_passes_is_held_at_the_total() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (here, peer) = (d.src(), d.target());
    for i in 0..10 {
        write(&here, &format!("f{i}"), &format!("file {i}"));
    }
    in_sync(&d).await;
    assert_eq!(files(&here), files(&peer));
    let mut s = settings(&d);
    s.guard = warden_agents::replicate::guard::DeleteGuard {
        max_share: 0.5,
        max_count: 3,
    };
    let resyncer = RsyncResyncer::new(s).unwrap();
    for i in 0..2 {
        std::fs::remove_file(peer.join(format!("f{i}"))).unwrap();
    }
    let report = resyncer
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(report.deleted, 2, "{report:?}");
    assert_eq!(files(&here), files(&peer));
    for i in 2..6 {
        std::fs::remove_file(peer.join(format!("f{i}"))).unwrap();
    }
    let err = resyncer
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap_err();
    let AgentError::DeleteGuard(msg) = err else {
        panic!("held by the guard: {err:?}");
    };
    assert!(
        msg.contains("4 of 8 items") && msg.contains("after 2 deleted") && msg.contains("6 of 10"),
        "{msg}"
    );
    assert_eq!(files(&here).len(), 8, "nothing more deleted here");
}

/// A returning site that was never a source (no manifest: every item is
/// its own change) resynced under `discard` — a switchover's replica
/// pass, whatever the config says — from a peer module that is empty
/// (emptied at the active site, whose push guard held): every item is
/// divergent, the peer lacking it, and each would be discarded. Those
/// discards go through the mass-delete guard as deletes do: the pass is
/// held, as from an empty peer, and nothing here is removed. Before, the
/// discards ran ahead of the guard, which counted deletes only: the
/// returning site was emptied and verified equal to the empty peer.
/// With the peer's data back, the next pass discards only what the peer
/// still lacks, and what the peer has arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discards_against_an_empty_peer_are_held_by_the_guard() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (here, peer) = (d.src(), d.target());
    for i in 0..10 {
        write(&here, &format!("d/f{i}"), &format!("file {i}"));
    }
    assert!(files(&peer).is_empty());
    let resyncer = RsyncResyncer::new(settings(&d)).unwrap();
    let err = resyncer
        .pass(DivergentPolicy::Discard, CancellationToken::new(), None)
        .await
        .unwrap_err();
    let AgentError::DeleteGuard(msg) = err else {
        panic!("held by the guard: {err:?}");
    };
    assert!(
        msg.contains("is empty") && msg.contains("10 of the 10 items") && msg.contains("discarded"),
        "{msg}"
    );
    assert_eq!(files(&here).len(), 10, "nothing discarded here");

    // The peer's data is back (all but f9): f9 alone is discarded.
    for i in 0..9 {
        write(&peer, &format!("d/f{i}"), &format!("peer's file {i}"));
    }
    let report = resyncer
        .pass(DivergentPolicy::Discard, CancellationToken::new(), None)
        .await
        .unwrap();
    let discarded: Vec<&str> = report
        .divergent
        .iter()
        .filter(|i| i.action == "discarded")
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(discarded.len(), 10, "{report:?}");
    assert_eq!(files(&here), files(&peer));
    assert!(!here.join("d/f9").exists());
}

/// Two names of one inode here (`x`, `y`), in sync with the peer. The
/// peer deletes `y`: the pass deletes it here, which moves the ctime of
/// `x` (the inode's link count). The peer then deletes `x`: the next pass
/// deletes it here too — `x` did not change here, the pass's own delete
/// moved its ctime. Before, `x` kept the stamp taken before that delete,
/// counted as changed here, and was kept as a divergent write (then
/// pushed back to the peer at the promote: a delete acknowledged at the
/// active site undone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_of_one_hard_link_does_not_make_its_twin_a_divergent_write() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (here, peer) = (d.src(), d.target());
    write(&here, "x", "linked twice");
    std::fs::hard_link(here.join("x"), here.join("y")).unwrap();
    write(&here, "other", "stays");
    in_sync(&d).await;
    assert_eq!(files(&here), files(&peer));
    let resyncer = RsyncResyncer::new(settings(&d)).unwrap();

    std::fs::remove_file(peer.join("y")).unwrap();
    let report = resyncer
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(
        (report.deleted, report.divergent.len()),
        (1, 0),
        "{report:?}"
    );
    assert!(!here.join("y").exists() && here.join("x").exists());

    std::fs::remove_file(peer.join("x")).unwrap();
    let report = resyncer
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(report.divergent, vec![], "x is no write of this site");
    assert_eq!(report.deleted, 1, "{report:?}");
    assert!(!here.join("x").exists(), "the peer's delete of x is undone");
    assert_eq!(files(&here), files(&peer));
}

/// A tmpfs mounted on a directory, unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (a skip) when this process cannot mount; in CI, a failure.
    fn mount(dir: &Path) -> Option<Tmpfs> {
        Self::mount_with(dir, "size=16m,mode=0755")
    }

    /// [`Tmpfs::mount`] with the mount options `opts`.
    fn mount_with(dir: &Path, opts: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs (CI runs the tests as root)"
            );
            eprintln!("note: cannot mount a tmpfs (not root?), skipping this test");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The returning site's data directory is a mount point (its own volume),
/// so the default quarantine, its sibling, is on another filesystem: the
/// divergent items are copied there with their attributes, then removed
/// here, and the failback's pass completes (a rename alone failed with
/// EXDEV on every pass that found a divergent item: no failback ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divergent_items_are_quarantined_across_filesystems() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    std::fs::create_dir_all(d.src()).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&d.src()) else {
        return;
    };
    disaster(&d).await;
    let stale = d.src();
    std::fs::set_permissions(
        stale.join("only-here/divergent.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let mtime = stale
        .join("only-here/divergent.txt")
        .metadata()
        .unwrap()
        .mtime();
    // Every rsync it runs, the copy across filesystems too, carries the
    // agent's mark (`warden_agents::leftovers`: the agent's next process
    // ends one its death left running): a wrapper logs it.
    let mut s = settings(&d);
    let mark = warden_agents::leftovers::rsync_mark(&d.dir.path().join("state"));
    s.runs_mark = Some(mark.clone());
    let (wrapper, said) = (
        d.dir.path().join("rsync-wrapper"),
        d.dir.path().join("marks"),
    );
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"${{WARDEN_RUN:-unmarked}} $*\" >> '{}'\nexec '{}' \"$@\"\n",
            said.display(),
            s.rsync_path.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.rsync_path = wrapper;
    let resyncer = RsyncResyncer::new(s).unwrap();
    let quarantine = resyncer.quarantine().to_path_buf();
    assert_ne!(
        quarantine.parent().unwrap().metadata().unwrap().dev(),
        stale.metadata().unwrap().dev(),
        "the quarantine is on another filesystem"
    );
    let report = resyncer
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .expect("the pass completes across filesystems");
    assert_eq!(report.divergent.len(), 2, "{report:?}");
    for item in &report.divergent {
        assert_eq!(item.action, "quarantined", "{item:?}");
        let to = PathBuf::from(item.moved_to.as_ref().unwrap());
        assert!(to.starts_with(&quarantine), "{to:?}");
        let want = if item.name == "conflict.txt" {
            "stale site's version"
        } else {
            let m = to.metadata().unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o640, "mode kept");
            assert_eq!(m.mtime(), mtime, "mtime kept");
            "written here only"
        };
        assert_eq!(std::fs::read_to_string(&to).unwrap(), want);
    }
    assert!(!stale.join("only-here/divergent.txt").exists());
    assert_eq!(
        std::fs::read_to_string(stale.join("conflict.txt")).unwrap(),
        "peer's version of the conflict"
    );
    let runs = std::fs::read_to_string(&said).unwrap();
    let copies = runs
        .lines()
        .filter(|l| l.contains(&*quarantine.to_string_lossy()))
        .count();
    assert!(copies > 0, "no copy into the quarantine was logged: {runs}");
    for run in runs.lines() {
        assert!(
            run.starts_with(&format!("{} ", mark.value())),
            "an rsync without the agent's mark: {run}"
        );
    }
}

/// The returning site's directory was its own volume (the agent recorded it
/// as a mount point) and the volume is gone when the failback's resync
/// runs: the pass pulls nothing into the directory under the mount point
/// and says why; once the volume is mounted again, it pulls. Before, the
/// pass filled the directory on the root filesystem, the site was promoted
/// on it, and the volume, mounted again, would hide what users wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_pulls_nothing_into_a_directory_whose_volume_is_gone() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    std::fs::create_dir_all(d.src()).unwrap();
    write(&d.target(), "at-peer.txt", "the peer's data");
    let state = d.dir.path().join("agent-state");
    std::fs::create_dir_all(&state).unwrap();
    let dirs = vec![warden_agents::volumes::Dir {
        group: "web".into(),
        path: d.src(),
        declared: false,
    }];
    {
        let Some(_volume) = Tmpfs::mount(&d.src()) else {
            return;
        };
        let seen = warden_agents::volumes::note(&state, &dirs).unwrap();
        assert_eq!(seen, ["web"]);
    }
    let mut s = settings(&d);
    s.volume = Some(warden_agents::replicate::Volume {
        state_dir: state.clone(),
        group: "web".into(),
        declared: false,
    });
    let resyncer = RsyncResyncer::new(s).unwrap();
    let e = resyncer
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("was a mount point and is not one now"),
        "{e}"
    );
    assert!(files(&d.src()).is_empty(), "pulled under the mount point");
    let Some(_volume) = Tmpfs::mount(&d.src()) else {
        return;
    };
    resyncer
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .expect("the volume is back");
    assert_eq!(
        std::fs::read_to_string(d.src().join("at-peer.txt")).unwrap(),
        "the peer's data"
    );
}

/// The returning site's agent killed in the middle of a failback's long
/// pull (SIGKILL, the OOM killer, a reboot: modelled by dropping the pass
/// where it is — its rsync killed with its process group, no manifest
/// stored), and the active site's users delete files the pull had
/// already fetched. The next process's pass deletes them here too. Before,
/// the manifest was recorded only when the pull ended (or failed): the
/// next pass took every fetched file as unconfirmed, kept them as
/// divergent writes (policy `keep`) and the cut-over pushed them back —
/// an acknowledged delete undone. Now each itemized line goes to a log
/// beside the manifest as it comes, and the next pass confirms it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_cut_off_by_a_kill_leaves_what_it_fetched_confirmed() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "seed.txt", "seed");
    in_sync(&d).await;
    // The disaster: the peer takes 40 files of 64 KiB.
    let blob = "x".repeat(64 * 1024);
    for i in 0..40 {
        write(&active, &format!("bulk/{i:02}.dat"), &blob);
    }
    // The pull at 256 KiB/s: about four files a second.
    let mut slow = settings(&d);
    let wrapper = d.dir.path().join("slow-rsync");
    rsync_wrapper(&wrapper, "", "--bwlimit=256");
    slow.rsync_path = wrapper;
    let r = RsyncResyncer::new(slow).unwrap();
    let pass = tokio::spawn(async move {
        r.pass(DivergentPolicy::Keep, CancellationToken::new(), None)
            .await
    });
    let whole = |root: &Path| -> Vec<PathBuf> {
        files(root)
            .into_iter()
            .filter(|(k, v)| k.starts_with("bulk") && v.len() == blob.len())
            .map(|(k, _)| k)
            .collect()
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while whole(&stale).len() < 4 {
        assert!(
            std::time::Instant::now() < until,
            "the pull fetched {} files in 30 s",
            whole(&stale).len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The agent dies: the pass is dropped where it is.
    pass.abort();
    assert!(
        pass.await.unwrap_err().is_cancelled(),
        "the pass was still running"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let arrived = whole(&stale);
    assert!(
        (4..40).contains(&arrived.len()),
        "cut off in the middle: {} of 40 arrived",
        arrived.len()
    );
    // The active site's users delete what had arrived at the returning one.
    for n in &arrived {
        std::fs::remove_file(active.join(n)).unwrap();
    }
    // The agent's next process: a new resyncer, its pass.
    let r = RsyncResyncer::new(settings(&d)).unwrap();
    let report = r
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    // Whatever rsync had named with its line still unread in the pipe when
    // the pass was dropped (a loaded host) is in doubt, not kept.
    assert!(
        report.divergent.iter().all(|d| {
            d.reason == DivergentReason::FetchedUnconfirmed && d.action == "quarantined"
        }),
        "files fetched from the peer and deleted there are no writes of this site: {:?}",
        report.divergent
    );
    for n in &arrived {
        assert!(
            !stale.join(n).exists(),
            "{} was deleted at the peer after it arrived: deleted here too",
            n.display()
        );
    }
    assert_eq!(files(&stale), files(&active));
    assert!(
        !d.dir.path().join("state/manifest.json.pulling").exists(),
        "the pass's log is removed once its manifest is stored"
    );
}

/// An item whose stamp moved here with its content the same (its mode
/// changed and changed back: a new ctime) is compared with the peer and
/// found identical — then the peer's users delete it before the pull
/// lists it (the narrow window between the two; here, as the pull
/// starts). The next pass deletes it here too. Before, it stayed
/// unconfirmed, and the next pass took it for a write of this site: kept
/// (`keep`), then pushed back after the cut-over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_deleted_at_the_peer_between_the_compare_and_the_pull_is_not_kept() {
    use std::os::unix::fs::PermissionsExt;
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "x.txt", "the same at both sites");
    write(&stale, "y.txt", "another");
    in_sync(&d).await;
    let x = stale.join("x.txt");
    let mode = std::fs::metadata(&x).unwrap().permissions().mode();
    std::fs::set_permissions(&x, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&x, std::fs::Permissions::from_mode(mode)).unwrap();
    // The peer's users delete it as the pull starts.
    let mut deleting = settings(&d);
    let wrapper = d.dir.path().join("deleting-rsync");
    rsync_wrapper(
        &wrapper,
        &format!(
            "case \" $* \" in *\" --force \"*) rm -f '{}' ;; esac",
            active.join("x.txt").display()
        ),
        "",
    );
    deleting.rsync_path = wrapper;
    let first = RsyncResyncer::new(deleting)
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(first.divergent.is_empty(), "{:?}", first.divergent);
    assert!(
        !active.join("x.txt").exists(),
        "deleted at the peer during the pass"
    );
    let second = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(
        second.divergent.is_empty(),
        "deleted at the peer after it was found identical, not a write here: {:?}",
        second.divergent
    );
    assert!(!x.exists(), "deleted here too");
    assert_eq!(files(&stale), files(&active));
}

/// A pull cut off while lines rsync had printed sat unread in the pipe
/// (the agent killed on a loaded host, a pull of many small files): the
/// items they named arrived here, and its log does not name them. The
/// next pass takes what was written here since the pull began and the log
/// does not name (the site serves no users while it resyncs) for what the
/// pull fetched: one the peer lacks now, deleted there after it arrived,
/// is moved to the quarantine (`fetched_unconfirmed`) — not kept as a
/// write here and pushed back after the cut-over — and so is the
/// temporary file of one cut in the middle. A write from before the pull
/// stays a write here. The log is written by hand as the pull writes it
/// (`MANIFEST.pulling`: its start, then the itemized lines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_a_cut_off_pull_wrote_without_logging_them_are_not_kept() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "seed.txt", "seed");
    in_sync(&d).await;
    // Written here before the failback (never replicated).
    write(&stale, "before.txt", "a write of this site");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::fs::write(
        d.dir.path().join("state/manifest.json.pulling"),
        format!("# warden pull started at {started}\n"),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    // What the pull wrote before the kill, its lines unread.
    write(&stale, "arrived.txt", "fetched, then deleted at the peer");
    write(&stale, "still-at-peer.txt", "the same at both sites");
    write(&active, "still-at-peer.txt", "the same at both sites");
    write(&stale, "bulk/.big.bin.Xy12Ab", "half a file");
    let report = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    let div: BTreeMap<&str, (DivergentReason, &str)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), (i.reason, i.action.as_str())))
        .collect();
    assert_eq!(
        div,
        BTreeMap::from([
            (
                "arrived.txt",
                (DivergentReason::FetchedUnconfirmed, "quarantined")
            ),
            (
                "bulk/.big.bin.Xy12Ab",
                (DivergentReason::FetchedUnconfirmed, "quarantined")
            ),
            ("before.txt", (DivergentReason::NotInManifest, "kept")),
        ])
    );
    let mut expected = files(&active);
    expected.insert("before.txt".into(), b"a write of this site".to_vec());
    assert_eq!(files(&stale), expected);
    assert!(
        !d.dir.path().join("state/manifest.json.pulling").exists(),
        "the log is done with"
    );
}

/// Writes a pull log as a pull that began now writes it (its start only).
fn pull_log_started(d: &Daemon) {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::fs::write(
        d.dir.path().join("state/manifest.json.pulling"),
        format!("# warden pull started at {started}\n"),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
}

/// A pull cut off by a kill, then the site promoted (the failback given
/// up) and pushing: the log it left is gone once the push starts. Left
/// there, a later failback's first pass read it as its own, and every
/// write of the site since the old pull began — those `keep` exists for —
/// was taken for what that pull fetched and quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_log_left_before_a_promote_is_gone_once_the_site_pushes() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let stale = d.src();
    write(&stale, "seed.txt", "seed");
    in_sync(&d).await;
    pull_log_started(&d);
    // Promoted: the push starts (and stops again).
    let push = RsyncReplicator::new(settings(&d));
    let cancel = CancellationToken::new();
    push.start(cancel.clone()).await.unwrap();
    push.stop().await;
    cancel.cancel();
    assert!(!d.dir.path().join("state/manifest.json.pulling").exists());
    // Written while active, never pushed (the site lost); failback.
    write(&stale, "late.txt", "a write this site never sent");
    let report = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    let div: Vec<(&str, DivergentReason, &str)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), i.reason, i.action.as_str()))
        .collect();
    assert_eq!(div, [("late.txt", DivergentReason::NotInManifest, "kept")]);
}

/// A kept divergent item hard-linked to a file the pull replaces: the
/// rename over the file moves the kept name's ctime (one inode), and the
/// pass is killed before it ends. The next pass must not take the kept
/// item for what the cut-off pull fetched: the pull's log names what it
/// left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_hard_link_of_a_file_the_cut_off_pull_replaced_stays_kept() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "f.txt", "v1");
    in_sync(&d).await;
    // Written here alone: a snapshot of f.txt by hard link.
    std::fs::create_dir_all(stale.join("snap")).unwrap();
    std::fs::hard_link(stale.join("f.txt"), stale.join("snap/f.txt")).unwrap();
    // The peer changes f.txt; the pull replaces it here, then hangs.
    write(&active, "f.txt", "v2 at the peer, longer");
    let flag = d.dir.path().join("hang-pull");
    std::fs::write(&flag, b"").unwrap();
    let mut hanging = settings(&d);
    hanging.rsync_path = d.dir.path().join("hanging-rsync");
    hanging_rsync(&hanging.rsync_path, &flag, "*\" --force \"*");
    let r = RsyncResyncer::new(hanging).unwrap();
    let pass = tokio::spawn(async move {
        r.pass(DivergentPolicy::Keep, CancellationToken::new(), None)
            .await
    });
    let until = std::time::Instant::now() + PATIENCE;
    while std::fs::read_to_string(stale.join("f.txt")).ok().as_deref()
        != Some("v2 at the peer, longer")
    {
        assert!(
            std::time::Instant::now() < until,
            "the pull never replaced f.txt"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    pass.abort();
    assert!(
        pass.await.unwrap_err().is_cancelled(),
        "the pass was still running"
    );
    assert!(d.dir.path().join("state/manifest.json.pulling").exists());
    let report = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    let div: Vec<(&str, DivergentReason, &str)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), i.reason, i.action.as_str()))
        .collect();
    assert_eq!(
        div,
        [("snap/f.txt", DivergentReason::NotInManifest, "kept")]
    );
    assert_eq!(
        std::fs::read_to_string(stale.join("snap/f.txt")).unwrap(),
        "v1"
    );
}

/// The cut-over's journaled pull killed after it fetched: its log is
/// there, and the next pass confirms what it fetched from it — a file the
/// active site's users delete afterwards is deleted here too, not kept as
/// a write of this site and pushed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_pull_cut_off_leaves_its_log() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (stale, active) = (d.src(), d.target());
    write(&stale, "seed.txt", "seed");
    in_sync(&d).await;
    write(&active, "new.txt", "written at the peer during the resync");
    let flag = d.dir.path().join("hang-pull");
    std::fs::write(&flag, b"").unwrap();
    let mut hanging = settings(&d);
    hanging.rsync_path = d.dir.path().join("hanging-rsync");
    hanging_rsync(&hanging.rsync_path, &flag, "*\" --files-from=\"*");
    let r = RsyncResyncer::new(hanging).unwrap();
    let pass = tokio::spawn(async move {
        r.pass_changed(
            &["new.txt".to_string()],
            &[],
            false,
            CancellationToken::new(),
        )
        .await
    });
    arrives(&stale, "new.txt", "written at the peer during the resync").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    pass.abort();
    assert!(
        pass.await.unwrap_err().is_cancelled(),
        "the pass was still running"
    );
    assert!(
        d.dir.path().join("state/manifest.json.pulling").exists(),
        "the journaled pull logs as it goes"
    );
    std::fs::remove_file(active.join("new.txt")).unwrap();
    let report = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(report.divergent.is_empty(), "{:?}", report.divergent);
    assert!(
        !stale.join("new.txt").exists(),
        "deleted at the peer: here too"
    );
    assert_eq!(files(&stale), files(&active));
}

/// A cut-off pull's log says what it wrote unlogged; the next pass fails
/// before it sets those aside (its comparison with the peer cut off), and
/// the pass after must still know them: the log stays until a pass's own
/// pull starts anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_cut_off_pull_wrote_unlogged_outlives_a_pass_that_fails_before_it() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let stale = d.src();
    write(&stale, "seed.txt", "seed");
    in_sync(&d).await;
    pull_log_started(&d);
    write(&stale, "arrived.txt", "fetched, then deleted at the peer");
    // The next pass: its checksum comparison with the peer fails.
    let mut failing = settings(&d);
    failing.rsync_path = d.dir.path().join("failing-rsync");
    rsync_wrapper(
        &failing.rsync_path,
        "case \" $* \" in *\" -c \"*) exit 10 ;; esac",
        "",
    );
    let first = RsyncResyncer::new(failing)
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await;
    assert!(first.is_err(), "{first:?}");
    let report = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    let div: Vec<(&str, DivergentReason, &str)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), i.reason, i.action.as_str()))
        .collect();
    assert_eq!(
        div,
        [(
            "arrived.txt",
            DivergentReason::FetchedUnconfirmed,
            "quarantined"
        )]
    );
}
