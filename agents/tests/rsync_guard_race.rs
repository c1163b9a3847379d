//! The mass-delete guard when what is deleted changed during the pass that
//! carried it: a full pass records in the manifest only what did not change
//! while it ran, so a directory removed at the source while the initial
//! pass was still sending (after the peer got it) is unknown to the agent's
//! book. Deleting it must still be counted at the peer — the regression
//! behind an intermittent `tests/data` failure, made deterministic here by
//! slowing rsync (a `--bwlimit` wrapper first in `PATH`, hence a test binary
//! of its own) and a large file sent last. Needs `rsync` (CI fails without
//! it, elsewhere the test skips).

use std::sync::Arc;
use std::time::Duration;

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

fn file_count(root: &std::path::Path) -> usize {
    snapshot(root).values().filter(|v| v.is_some()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_removed_during_the_initial_pass_are_counted_at_the_peer() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    for i in 0..FILES {
        let p = d.src().join(format!("d{}/f{i}.txt", i % 5));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("file {i}")).unwrap();
    }
    std::fs::write(d.src().join("keep.txt"), "still here").unwrap();
    // Sent last, about 3 s at 256 KiB/s: rsync sends directory by
    // directory in name order (incremental recursion), and a directory's
    // own files before its subdirectories' — so in a last subdirectory,
    // not at the top (rsync 3.5 sends top-level files first).
    let big: Vec<u8> = (0..768 * 1024).map(|j| (j % 251) as u8).collect();
    std::fs::create_dir(d.src().join("zz")).unwrap();
    std::fs::write(d.src().join("zz/big.bin"), big).unwrap();
    slow_rsync_in_path(d.dir.path());
    let r = Arc::new(site_a(&d, ""));
    let start = tokio::spawn({
        let r = r.clone();
        async move { run(&r, CommandKind::StartReplication).await }
    });
    eventually(PATIENCE, "the peer has the directories", || {
        (0..5).all(|i| {
            std::fs::read_dir(d.target().join(format!("d{i}")))
                .map(|e| e.count() == FILES / 5)
                .unwrap_or(false)
        })
    })
    .await;
    assert!(
        !start.is_finished(),
        "the initial pass still sends the big file"
    );
    // Someone moves every directory out of the tree while the pass runs.
    for i in 0..5 {
        let dir = format!("d{i}");
        std::fs::rename(
            d.src().join(&dir),
            d.dir.path().join(format!("moved-{dir}")),
        )
        .unwrap();
    }
    let out = start.await.unwrap();
    assert!(out.ok, "{}", out.detail);
    eventually(
        PATIENCE,
        "the guard holds the directories' deletion",
        || status(&r).guard.is_some(),
    )
    .await;
    let held = status(&r).guard.unwrap();
    assert!(held.contains("would delete"), "{held}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        file_count(&d.target().join("d0")) + file_count(&d.target().join("d4")),
        2 * FILES / 5,
        "nothing was deleted at the peer"
    );
    let out = run(&r, CommandKind::StopReplication).await;
    assert!(out.ok, "{}", out.detail);
}
