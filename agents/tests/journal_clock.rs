//! The change journal when the wall clock is set: a mark taken before the
//! clock was set cannot tell the changes that sent no event (their ctime
//! may be stamped before any cut-off), so the cut-over's final pass is a
//! full one. Before, a clock set back and forward again between the mark
//! and its read left no trace, and a write through a hard link outside the
//! tree meanwhile was missed by the final pass.
//!
//! Alone in its test binary: it sets this machine's clock (to the time it
//! reads, a step of microseconds), which every journal of the process
//! would see. Needs root (`CAP_SYS_TIME`); in CI a missing one fails.

use std::path::PathBuf;

use warden_agents::replicate::journal::ChangeJournal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_from_before_the_wall_clock_was_set_cannot_tell() {
    use rustix::time::{clock_gettime, clock_settime, ClockId};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f.txt"), "v1").unwrap();
    let j = ChangeJournal::start(&root, &dir.path().join("barrier")).unwrap();
    // Past the clock tick of that write: a file changed within a tick or
    // two of the mark is named too, as its ctime cannot tell.
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let mark = j.mark_flushed().await.unwrap();
    std::fs::write(root.join("g.txt"), "new").unwrap();
    let names = j.since(mark).await.expect("no clock set yet");
    assert_eq!(names, vec![PathBuf::from("g.txt")]);

    // Set to what it reads: the smallest step there is (back by the
    // microseconds between the two calls).
    if let Err(e) = clock_settime(ClockId::Realtime, clock_gettime(ClockId::Realtime)) {
        assert!(
            std::env::var("CI").is_err(),
            "cannot set the clock ({e}): this test needs root (CAP_SYS_TIME)"
        );
        eprintln!("skipped: cannot set the clock ({e}); run as root");
        return;
    }
    let err = j.since(mark).await.expect_err("a mark from before the set");
    assert!(err.contains("wall clock was set since the mark"), "{err}");
    assert!(
        j.since(mark).await.is_err(),
        "said once by the kernel, kept for the mark"
    );
    // A mark taken after the set tells again.
    let after = j.mark_flushed().await.unwrap();
    std::fs::write(root.join("h.txt"), "after").unwrap();
    let names = j.since(after).await.expect("a mark after the set");
    assert!(names.contains(&PathBuf::from("h.txt")), "{names:?}");
}
