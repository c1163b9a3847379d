//! A full pass that `--max-delete` stopped while a file vanished from the
//! source: rsync exits 24 ("some files vanished"), which outranks 25
//! ("--max-delete stopped deletions") in its exit code. The pass must not
//! count as done — the peer still holds what the source deleted, and a
//! pass taken as done clears the guard, the failure and the lag, with
//! nothing owed — but be held by the mass-delete guard as a plain 25 is.
//! Against a real rsync daemon on 127.0.0.1; an rsync wrapper makes the
//! peer gain items between the dry run and the pass (more to delete than
//! counted) and removes a source file while the pass sends a slow one.
//! Needs `rsync` (CI fails without it, elsewhere the test skips).

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{Replicator, RsyncReplicator};
use warden_agents::AgentError;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_stopped_by_max_delete_are_not_hidden_by_a_vanished_file() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, target) = (d.src(), d.target());
    // Sent first (names in order), slowly: 1 MiB at 256 KiB/s.
    let big: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("a-big.bin"), big).unwrap();
    std::fs::write(
        src.join("b-vanishes.txt"),
        "removed while a-big.bin is sent",
    )
    .unwrap();
    std::fs::write(src.join("c.txt"), "stays").unwrap();
    // The real pass alone (the dry run has `-n`, the probe no
    // `--max-delete`): 10 items appear at the peer, and the source loses
    // a file once the pass is under way.
    let wrapper = d.dir.path().join("rsync-racing");
    rsync_wrapper(
        &wrapper,
        &format!(
            "case \" $* \" in *\" -n \"*) ;; *--max-delete=*)\n\
             for i in 0 1 2 3 4 5 6 7 8 9; do echo extra > '{t}'/extra-$i.txt; done\n\
             (sleep 1; rm -f '{s}/b-vanishes.txt') &\n\
             ;; esac",
            t = target.display(),
            s = src.display()
        ),
        "--bwlimit=256",
    );
    let mut s = d.settings("drdata", PASSWORD);
    s.rsync_path = wrapper;
    s.guard.max_count = 2;
    let hold = s.hold.clone();
    let repl = RsyncReplicator::new(s);
    let res = repl.resync(CancellationToken::new(), None).await;
    let left = std::fs::read_dir(&target)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("extra-")
        })
        .count();
    assert!(
        left > 0,
        "the setup: --max-delete stopped the deletions (none left at the peer)"
    );
    assert!(
        !src.join("b-vanishes.txt").exists(),
        "the setup: the file vanished"
    );
    match res {
        Err(AgentError::DeleteGuard(why)) => {
            assert!(why.contains("max-delete"), "{why}");
            assert!(hold.held().is_some(), "the guard holds, and says so");
        }
        other => panic!(
            "a pass that left {left} deletions undone at the peer ended as {other:?}, not held by the guard"
        ),
    }
}
