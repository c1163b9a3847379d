//! A peer that is full: rsync deletes at the peer first (`--delete`
//! removes a directory's extra entries before sending into it), then a
//! write fails (ENOSPC, rsync code 11). The deletions it made count in the
//! mass-delete guard's window all the same: a source emptied a few items at
//! a time while every pass fails is held once the window's count goes over
//! the limits, never deleted whole at the peer uncounted. Against a real
//! rsync daemon on 127.0.0.1 whose module is a small tmpfs. Needs root
//! (mount) and `rsync` (CI fails without them, elsewhere the test skips).

use std::path::Path;
use std::process::Command;

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{Replicator, RsyncReplicator};
use warden_agents::AgentError;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(on: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(on)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "cannot mount a tmpfs on {} (the test needs root)",
                    on.display()
                );
            }
            eprintln!("note: cannot mount a tmpfs (not root?), skipping");
            return None;
        }
        Some(Tmpfs(on.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn write(root: &Path, name: &str, body: &[u8]) {
    std::fs::write(root.join(name), body).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_of_a_pass_that_failed_on_a_full_peer_still_count() {
    if !have_rsync() {
        return;
    }
    let mut d = Daemon::start();
    let Some(_fs) = Tmpfs::mount(&d.target(), "256k") else {
        return;
    };
    // The daemon chroots into the module per connection; restarted anyway
    // so nothing it holds predates the mount.
    d.down();
    d.up();
    let (src, target) = (d.src(), d.target());
    for i in 0..40 {
        let name = format!("k{i:02}.txt");
        write(&src, &name, b"kept");
        write(&target, &name, b"kept");
    }
    for i in 0..4 {
        write(
            &target,
            &format!("a-gone-{i}.txt"),
            b"deleted at the source",
        );
    }
    // Sent after the deletions (names in order); it does not fit.
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    write(&src, "z-big.bin", &big);

    let mut s = d.settings("drdata", PASSWORD);
    s.guard.max_count = 5;
    let repl = RsyncReplicator::new(s);
    // 4 deletions: within the limits. Done, then the write fails.
    let first = repl.resync(CancellationToken::new(), None).await;
    assert!(
        matches!(first, Err(AgentError::Rsync { .. })),
        "a full peer: {first:?}"
    );
    assert!(
        !target.join("a-gone-0.txt").exists(),
        "the setup: deleted first"
    );

    // The source loses 4 more: 8 within the minute, over the limits (5, and
    // 10 % of 44 items).
    for i in 0..4 {
        std::fs::remove_file(src.join(format!("k{i:02}.txt"))).unwrap();
    }
    let second = repl.resync(CancellationToken::new(), None).await;
    assert!(
        matches!(second, Err(AgentError::DeleteGuard(_))),
        "the second pass, 8 deletions within the minute: {second:?}"
    );
    for i in 0..4 {
        assert!(
            target.join(format!("k{i:02}.txt")).exists(),
            "k{i:02}.txt deleted at the peer by a pass over the guard's limits"
        );
    }
}
