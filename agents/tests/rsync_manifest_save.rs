//! The pair manifest is saved while a long batch still runs: the
//! confirmation of a batch that ended waits for no other to end. Before,
//! the save timer was off while any batch ran, and a batch that ended
//! less than a second after the last save left its items unsaved until
//! the long one ended (a 20 GB file's: minutes) — an agent killed
//! meanwhile left the failback a manifest without them, and an item
//! deleted at the peer since was kept as a write here, then pushed back.
//! rsync is slowed by a wrapper first in `PATH` (one call sleeps), so this
//! file holds one test (it changes the process environment).
//! Needs `rsync` (CI fails without it, elsewhere the test skips).

use std::time::{Duration, Instant};

use warden_agents::replicate::Manifest;
use warden_agents::wire::CommandKind;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;
#[path = "support/rsync_repl.rs"]
mod rsync_repl;
#[path = "support/web.rs"]
mod web;
use rsync_repl::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_booked_on_disk_while_a_long_one_still_runs() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    // The next rsync started after `slow` appears sleeps 30 s first.
    let flag = d.dir.path().join("slow");
    rsync_wrapper_in_path(
        d.dir.path(),
        &format!(
            "if [ -e '{f}' ]; then rm -f '{f}'; sleep 30; fi",
            f = flag.display()
        ),
        "",
    );
    let manifest = d.src().with_extension("warden-manifest.json");
    let booked = |name: &str| {
        Manifest::load(&manifest)
            .map(|m| m.items.contains_key(name))
            .unwrap_or(false)
    };
    let r = site_a(&d, "");
    let started = run(&r, CommandKind::StartReplication).await;
    assert!(started.ok, "{started:?}");

    // The long batch: its rsync sleeps.
    std::fs::write(&flag, b"").unwrap();
    write(&d.src(), "big.bin", "the long one");
    eventually(PATIENCE, "the long batch's rsync started", || {
        !flag.exists()
    })
    .await;
    // A second after the last save, a batch whose end saves the manifest.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    write(&d.src(), "one.txt", "1");
    eventually(PATIENCE, "one.txt booked on disk", || booked("one.txt")).await;
    // At once another, ending within a second of that save.
    write(&d.src(), "two.txt", "2");
    arrives(&d.target(), "two.txt", "2").await;
    let arrived = Instant::now();
    eventually(
        Duration::from_secs(5),
        "two.txt booked on disk while the long batch runs",
        || booked("two.txt"),
    )
    .await;
    assert!(
        !d.target().join("big.bin").exists(),
        "the long batch ended first ({:?} after two.txt arrived): the test proves nothing",
        arrived.elapsed()
    );
    let stopped = run(&r, CommandKind::StopReplication).await;
    assert!(stopped.ok, "{stopped:?}");
}
