//! The inotify watch limit reached under a running replicator, against a
//! real rsync daemon on 127.0.0.1: directories made after the limit was
//! reached have no watch (inotify refuses it with `ENOSPC`), so nothing
//! written in them sends an event. A full pass once is not enough: what
//! is written there later must still reach the peer, the status must say
//! the tree is not fully watched, and once the tree fits the limit again
//! inotify takes over again.
//!
//! The limit is per user namespace (`/proc/sys/user/max_inotify_watches`,
//! Linux 5.11+), so the test runs itself again inside `unshare -U -r` with
//! a limit of [`LIMIT`] watches; the rsync daemon runs out here (a daemon
//! inside cannot `setgroups`). Needs `rsync` and `unshare` (CI fails
//! without them, elsewhere the test skips).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{Replicator, RsyncReplicator, RsyncSettings};
use warden_config::Secret;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

/// Set in the run inside the user namespace: the daemon's directory and port.
const CHILD_DIR: &str = "WARDEN_WATCH_LIMIT_TEST_DIR";
const CHILD_PORT: &str = "WARDEN_WATCH_LIMIT_TEST_PORT";
const TEST: &str = "directories_beyond_the_inotify_watch_limit_are_still_replicated";
/// inotify watches the replicator may hold in the child's user namespace.
const LIMIT: usize = 8;

#[test]
fn directories_beyond_the_inotify_watch_limit_are_still_replicated() {
    if let (Some(dir), Some(port)) = (std::env::var_os(CHILD_DIR), std::env::var_os(CHILD_PORT)) {
        let port = port.to_str().and_then(|p| p.parse().ok()).expect("a port");
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(in_namespace(Path::new(&dir), port));
        return;
    }
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let run = Command::new("unshare")
        .args(["-U", "-r", "sh", "-c"])
        .arg("echo \"$1\" > /proc/sys/user/max_inotify_watches && shift && exec \"$@\"")
        .arg("sh")
        .arg(LIMIT.to_string())
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, d.dir.path())
        .env(CHILD_PORT, d.port.to_string())
        .output();
    let out = match run {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot run unshare: {e} (CI must have util-linux)"
            );
            eprintln!("note: cannot run unshare ({e}), skipping this test");
            return;
        }
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if !out.status.success() && !stdout.contains("running 1 test") {
        // unshare itself failed (no user namespaces here)
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot make a user namespace with a watch limit: {stderr}"
        );
        eprintln!("note: cannot make a user namespace ({stderr}), skipping this test");
        return;
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the replicator under a limit of {LIMIT} inotify watches failed:\n{stdout}\n{stderr}"
    );
}

/// The test proper, in the user namespace whose limit is [`LIMIT`].
async fn in_namespace(dir: &Path, port: u16) {
    let (src, dst) = (dir.join("src"), dir.join("target"));
    let mut s = RsyncSettings::new(
        src.clone(),
        "127.0.0.1",
        "drdata",
        USER,
        Secret::new(PASSWORD),
    );
    s.port = port;
    s.retry_max = Duration::from_millis(500);
    s.io_timeout = Duration::from_secs(5);
    write(&src, "a/one.txt", "one");
    write(&src, "b/two.txt", "two");
    let repl = RsyncReplicator::new(s);
    repl.start(CancellationToken::new()).await.unwrap();
    arrives(&dst, "a/one.txt", "one").await;
    assert_eq!(repl.failing(), None);

    // A tree of more directories than the limit leaves watches for.
    for i in 0..LIMIT {
        std::fs::create_dir_all(src.join(format!("many/d{i}"))).unwrap();
    }
    write(&src, "many/d0/first.txt", "first");
    arrives(&dst, "many/d0/first.txt", "first").await;
    // Later writes in every directory: some of them inotify could not watch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..LIMIT {
        write(
            &src,
            &format!("many/d{i}/later.txt"),
            &format!("after the limit, {i}"),
        );
    }
    for i in 0..LIMIT {
        arrives(
            &dst,
            &format!("many/d{i}/later.txt"),
            &format!("after the limit, {i}"),
        )
        .await;
    }
    let said = repl.failing().unwrap_or_default();
    assert!(
        said.contains("inotify") && said.contains("full pass"),
        "the status does not say the tree is not fully watched: {said:?}"
    );

    // The tree fits again: inotify takes over, and the status is clear.
    std::fs::remove_dir_all(src.join("many")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while repl.failing().is_some() {
        assert!(
            Instant::now() < deadline,
            "the status still says {:?} with the tree back within the limit",
            repl.failing()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write(&src, "a/after.txt", "watched again");
    arrives(&dst, "a/after.txt", "watched again").await;
    assert!(
        !dst.join("many").exists(),
        "the removed tree stays at the peer"
    );
    repl.stop().await;
}
