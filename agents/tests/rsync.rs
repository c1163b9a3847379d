//! The rsync replicator against a real rsync daemon on 127.0.0.1 (started per
//! test from a temp dir, killed by PID on drop). Needs the `rsync` binary: in
//! CI (`CI=true`) its absence fails the suite, elsewhere the tests skip.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    DifferenceKind, Item, Listing, Manifest, Replicator, RsyncReplicator,
};
use warden_agents::AgentError;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

async fn converges(d: &Daemon, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (a, b) = (snapshot(&d.src()), snapshot(&d.target()));
        if a == b {
            return;
        }
        if Instant::now() > deadline {
            let differ: Vec<_> = a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(v))
                .map(|(k, _)| k)
                .collect();
            panic!(
                "{what}: target did not converge in {PATIENCE:?}\nsource: {:?}\ntarget: {:?}\ndiffer: {differ:?}",
                a.keys(),
                b.keys()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_replication_carries_creates_overwrites_renames_and_deletes() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let src = d.src();
    std::fs::write(src.join("before-start.txt"), "seed").unwrap();
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await.unwrap();
    converges(&d, "initial full pass").await;

    std::fs::write(src.join("a.txt"), "one").unwrap();
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    std::fs::write(src.join("dir/sub/deep.txt"), "deep").unwrap();
    std::fs::write(src.join("dir/b.txt"), "b").unwrap();
    converges(&d, "creates").await;

    std::fs::write(src.join("a.txt"), "overwritten with more bytes").unwrap();
    converges(&d, "overwrite").await;

    std::fs::rename(src.join("a.txt"), src.join("renamed.txt")).unwrap();
    std::fs::rename(src.join("dir"), src.join("dir2")).unwrap();
    converges(&d, "renames of a file and a directory").await;
    assert!(!d.target().join("dir").exists() && d.target().join("dir2/sub/deep.txt").exists());

    std::fs::remove_file(src.join("renamed.txt")).unwrap();
    std::fs::remove_dir_all(src.join("dir2")).unwrap();
    converges(&d, "deletes of a file and a tree").await;
    assert_eq!(
        snapshot(&d.target()).len(),
        1,
        "only before-start.txt is left"
    );

    let deadline = Instant::now() + PATIENCE;
    while repl.lag() > Duration::ZERO {
        assert!(
            Instant::now() < deadline,
            "lag stays {:?} after convergence",
            repl.lag()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    repl.stop().await;
    std::fs::write(src.join("after-stop.txt"), "x").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !d.target().join("after-stop.txt").exists(),
        "stopped replicator still transfers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_after_the_daemon_was_down() {
    if !have_rsync() {
        return;
    }
    let mut d = Daemon::start();
    let src = d.src();
    for i in 0..5 {
        std::fs::write(src.join(format!("keep{i}.txt")), "v1").unwrap();
    }
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await.unwrap();
    converges(&d, "initial").await;

    d.down();
    std::fs::write(src.join("keep0.txt"), "v2, written while the peer was down").unwrap();
    std::fs::remove_file(src.join("keep1.txt")).unwrap();
    std::fs::create_dir(src.join("new-dir")).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("new-dir/while-down{i}.txt")), "x").unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        repl.lag() >= Duration::from_secs(1),
        "lag {:?} while the peer is down",
        repl.lag()
    );
    assert!(!d.target().join("new-dir").exists());

    d.up();
    converges(&d, "after the daemon came back").await;
    shutdown.cancel();
    repl.stop().await;
}

/// An agent restarted while its pushes keep failing owes what it owed
/// before: the lag counts from the oldest change not carried before the
/// restart (kept beside the manifest), not from the new start — else
/// `max_lag_on_failover` would trust a standby hours behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_outlives_a_restart_of_the_replicator() {
    if !have_rsync() {
        return;
    }
    let mut d = Daemon::start();
    std::fs::write(d.src().join("f0.txt"), "v1").unwrap();
    let mut settings = d.settings("drdata", PASSWORD);
    settings.manifest = Some(d.dir.path().join("lag-manifest.json"));
    let repl = RsyncReplicator::new(settings.clone());
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await.unwrap();
    converges(&d, "initial").await;

    d.down();
    std::fs::write(d.src().join("f1.txt"), "written while the peer was down").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(repl.lag() >= Duration::from_secs(2), "{:?}", repl.lag());
    shutdown.cancel();
    repl.stop().await;

    // The agent starts again while the peer is still down.
    let again = RsyncReplicator::new(settings.clone());
    let shutdown = CancellationToken::new();
    again.start(shutdown.clone()).await.unwrap();
    assert!(
        again.lag() >= Duration::from_secs(3),
        "the restarted replicator's lag is {:?}: it forgot the 3 s owed before",
        again.lag()
    );
    // Still owed while its first passes keep failing (each at once: the
    // daemon refuses), and by a start after that one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        again.lag() >= Duration::from_secs(5),
        "{:?} after its first failed passes",
        again.lag()
    );
    shutdown.cancel();
    again.stop().await;
    let again = RsyncReplicator::new(settings.clone());
    let shutdown = CancellationToken::new();
    again.start(shutdown.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        again.lag() >= Duration::from_secs(6),
        "{:?} at a third start",
        again.lag()
    );
    d.up();
    converges(&d, "after the peer came back").await;
    let deadline = Instant::now() + PATIENCE;
    while again.lag() > Duration::ZERO {
        assert!(Instant::now() < deadline, "lag stays {:?}", again.lag());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // In sync: kept no more, a third start owes nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shutdown.cancel();
    again.stop().await;
    let third = RsyncReplicator::new(settings);
    let shutdown = CancellationToken::new();
    third.start(shutdown.clone()).await.unwrap();
    assert!(third.lag() < Duration::from_secs(1), "{:?}", third.lag());
    shutdown.cancel();
    third.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_clearly_on_wrong_password_missing_module_and_read_only_target() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    std::fs::write(d.src().join("f.txt"), "x").unwrap();

    let wrong = "WrongPassword-42";
    let err = RsyncReplicator::new(d.settings("drdata", wrong))
        .start(CancellationToken::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AgentError::ReplicationAuth { .. }), "{err:?}");
    assert!(msg.contains("drdata") && msg.contains("password"), "{msg}");
    assert!(
        !msg.contains(wrong) && !format!("{err:?}").contains(wrong),
        "password leaked: {msg}"
    );
    assert!(!err.is_retryable());

    let err = RsyncReplicator::new(d.settings("nosuchmodule", PASSWORD))
        .start(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::ReplicationNoModule { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("nosuchmodule"), "{err}");

    let err = RsyncReplicator::new(d.settings("ro", PASSWORD))
        .resync(CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::ReplicationReadOnly { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("\"ro\"") && err.to_string().contains("read only"),
        "{err}"
    );
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_differences_until_a_full_pass() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, tgt) = (d.src(), d.target());
    std::fs::write(src.join("same.txt"), "same").unwrap();
    std::fs::write(src.join("only-src.txt"), "new").unwrap();
    std::fs::write(src.join("changed.txt"), "source version, longer").unwrap();
    std::fs::write(tgt.join("only-target.txt"), "stale").unwrap();
    std::fs::write(tgt.join("changed.txt"), "target").unwrap();
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));

    let mut diffs = repl.verify().await.unwrap();
    diffs.sort_by(|a, b| a.path.cmp(&b.path));
    let got: Vec<(String, DifferenceKind)> = diffs
        .iter()
        .map(|d| (d.path.display().to_string(), d.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            ("changed.txt".to_string(), DifferenceKind::Changed),
            ("only-src.txt".to_string(), DifferenceKind::MissingAtTarget),
            ("only-target.txt".to_string(), DifferenceKind::ExtraAtTarget),
            ("same.txt".to_string(), DifferenceKind::MissingAtTarget),
        ]
    );
    assert!(!tgt.join("only-src.txt").exists(), "verify must not write");

    let (tx, rx) = tokio::sync::watch::channel(Default::default());
    let report = repl
        .resync(CancellationToken::new(), Some(tx))
        .await
        .unwrap();
    assert!(report.done.items >= 4, "{report:?}");
    assert!(report.done.bytes >= 4 + 3 + 22, "{report:?}");
    assert_eq!(*rx.borrow(), report.done);
    assert_eq!(repl.verify().await.unwrap(), vec![]);
    assert_eq!(snapshot(&src), snapshot(&tgt));
}

/// The manifest form of a tree, computed independently of the crate.
fn expected_listing(root: &Path) -> Listing {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut Listing) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let m = p.symlink_metadata().unwrap();
            if m.is_dir() {
                walk(root, &p, out);
            } else {
                let name = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.insert(
                    name,
                    Item {
                        size: m.len(),
                        version: m.mtime().to_string(),
                    },
                );
            }
        }
    }
    let mut out = Listing::new();
    walk(root, root, &mut out);
    out
}

async fn manifest_becomes(path: &Path, want: &Listing, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = Manifest::load(path).unwrap().items;
        if &got == want {
            return;
        }
        if Instant::now() > deadline {
            panic!("{what}: manifest\n{got:?}\nwanted\n{want:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_replicator_keeps_the_pair_manifest() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let src = d.src();
    let manifest = d.dir.path().join("state/manifest.json");
    std::fs::write(src.join("seed.txt"), "seed").unwrap();
    std::fs::create_dir(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/in dir.txt"), "x").unwrap();
    std::os::unix::fs::symlink("seed.txt", src.join("link")).unwrap();
    let mut settings = d.settings("drdata", PASSWORD);
    settings.manifest = Some(manifest.clone());
    let repl = RsyncReplicator::new(settings);
    repl.start(CancellationToken::new()).await.unwrap();
    converges(&d, "initial full pass").await;
    manifest_becomes(&manifest, &expected_listing(&src), "after the full pass").await;
    assert_eq!(Manifest::load(&manifest).unwrap().items.len(), 3);

    // Batches: a create, an overwrite, a delete, a directory rename.
    std::fs::write(src.join("new.txt"), "new file").unwrap();
    std::fs::write(src.join("seed.txt"), "seed, overwritten").unwrap();
    std::fs::remove_file(src.join("link")).unwrap();
    std::fs::rename(src.join("dir"), src.join("dir2")).unwrap();
    converges(&d, "batch").await;
    let want = expected_listing(&src);
    assert!(want.contains_key("dir2/in dir.txt") && !want.contains_key("link"));
    manifest_becomes(&manifest, &want, "after batches").await;

    // A change after stop is not confirmed at the target: not in the manifest.
    repl.stop().await;
    std::fs::write(src.join("after-stop.txt"), "x").unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(Manifest::load(&manifest).unwrap().items, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_keep_each_paths_versions_in_order() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let src = d.src();
    let mut settings = d.settings("drdata", PASSWORD);
    settings.max_transfers = 8;
    settings.batch_window = Duration::from_millis(1);
    let repl = RsyncReplicator::new(settings);
    repl.start(CancellationToken::new()).await.unwrap();
    // One hot file rewritten (with growing content) while other files keep the
    // batches busy: an older version landing last would never be corrected.
    std::fs::create_dir(src.join("hot")).unwrap();
    for i in 0..300 {
        std::fs::write(src.join("hot/file.txt"), "v".repeat(i + 1)).unwrap();
        std::fs::write(src.join(format!("cold{}.txt", i % 50)), format!("{i}")).unwrap();
        if i % 100 == 99 {
            std::fs::rename(src.join("hot"), src.join("hot2")).unwrap();
            std::fs::rename(src.join("hot2"), src.join("hot")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    converges(&d, "hot file rewritten under concurrent batches").await;
    assert_eq!(
        std::fs::read_to_string(d.target().join("hot/file.txt")).unwrap(),
        "v".repeat(300)
    );
    repl.stop().await;
}

/// A corner of the tree rsync cannot read (here a name longer than
/// PATH_MAX, which it skips even as root; a directory without permission
/// does the same for a non-root agent) makes every full pass end with code
/// 23 and delete nothing. The failure is said, and the full pass retried —
/// but changes elsewhere still reach the peer in batches meanwhile,
/// deletes included. Before, the owed full pass held every batch back for
/// as long as the corner stayed unreadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_corner_does_not_hold_back_other_changes() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let src = d.src();
    std::fs::write(src.join("kept.txt"), "kept").unwrap();
    std::fs::write(src.join("to-delete.txt"), "soon gone").unwrap();
    // 17 levels of 250-byte names: over PATH_MAX (made one level at a time).
    let level = "d".repeat(250);
    let mut script = String::from("cd \"$1\"");
    for _ in 0..17 {
        script.push_str(&format!(" && mkdir {level} && cd {level}"));
    }
    script.push_str(" && echo deep > file");
    let made = std::process::Command::new("bash")
        .args(["-c", &script, "bash"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(made.success());
    let mut settings = d.settings("drdata", PASSWORD);
    settings.retry_min = Duration::from_millis(500);
    settings.retry_max = Duration::from_secs(30);
    let repl = RsyncReplicator::new(settings);
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !d.target().join("kept.txt").exists() {
        assert!(Instant::now() < deadline, "the rest of the tree was sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let said = repl.failing().expect("the incomplete full pass is said");
    assert!(said.contains("23"), "{said}");

    std::fs::write(src.join("new.txt"), "written later").unwrap();
    std::fs::remove_file(src.join("to-delete.txt")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let arrived =
        || d.target().join("new.txt").exists() && !d.target().join("to-delete.txt").exists();
    while !arrived() {
        assert!(
            Instant::now() < deadline,
            "a change and a delete elsewhere in the tree reach the peer in {PATIENCE:?} (new.txt there: {}, to-delete.txt gone: {}; {:?})",
            d.target().join("new.txt").exists(),
            !d.target().join("to-delete.txt").exists(),
            repl.failing()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read_to_string(d.target().join("new.txt")).unwrap(),
        "written later"
    );
    shutdown.cancel();
}
