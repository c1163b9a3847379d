//! The active site's part in a journaled cut-over, through [`Replication`]
//! with real commands and a real rsync daemon on 127.0.0.1: the `journal`
//! command stops the site's push into the peer (the peer pulls from now on)
//! and answers with a mark; a demote stops any push and answers with the
//! names changed since the mark, once; a plan without a journal says so.
//! Needs `rsync` (CI fails without it, elsewhere the tests skip).

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_command_stops_the_push_and_the_demote_names_what_changed() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    std::fs::write(d.src().join("before.txt"), "before").unwrap();
    let r = site_a(&d, "");
    let started = run(&r, CommandKind::StartReplication).await;
    assert!(started.ok, "{started:?}");
    assert_eq!(status(&r).role, "source");

    let j = run(&r, CommandKind::Journal).await;
    assert!(j.ok, "{j:?}");
    assert!(j.detail.contains("stopped"), "{}", j.detail);
    let mark = j.journal.as_ref().expect("a mark").mark;
    assert_eq!(status(&r).role, "idle", "no push while the peer pulls");
    std::fs::write(d.src().join("after.txt"), "after the mark").unwrap();
    std::fs::create_dir_all(d.src().join("new/dir")).unwrap();
    std::fs::write(d.src().join("new/dir/x"), "x").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !d.target().join("after.txt").exists(),
        "pushed after the journal started"
    );

    let rep = r.journal_since("web", mark).await;
    let names = rep.names.expect("names");
    assert!(names.contains(&"after.txt".to_string()), "{names:?}");
    assert!(names.contains(&"new".to_string()), "{names:?}");
    assert!(!names.contains(&"before.txt".to_string()), "{names:?}");
    // Read once: a second ask (another mark, a restarted journal) cannot tell.
    let again = r.journal_since("web", mark).await;
    assert!(again.names.is_none());
    assert!(again.note.contains("no change journal"), "{}", again.note);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_site_stops_pushing() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let r = site_a(&d, "");
    assert!(run(&r, CommandKind::StartReplication).await.ok);
    let said = r.demoted("web").await.expect("it was pushing");
    assert!(said.contains("stopped"), "{said}");
    assert_eq!(status(&r).role, "idle");
    std::fs::write(d.src().join("late.txt"), "written after the demote").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!d.target().join("late.txt").exists());
    assert!(r.demoted("web").await.is_none(), "nothing left to stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicas_differences_are_stale_copies_replaced_not_divergent() {
    if !have_rsync() {
        return;
    }
    // `a` (the harness's src/) resyncs from `b` (the daemon's module).
    for replica in [false, true] {
        let d = Daemon::start();
        std::fs::write(d.target().join("f.txt"), "the peer's newer version").unwrap();
        std::fs::write(d.src().join("f.txt"), "older copy").unwrap();
        std::fs::write(d.src().join("only-here.txt"), "not at the peer").unwrap();
        let r = site_a(&d, r#"divergent = "quarantine""#);
        let mut c = cmd(CommandKind::Resync, 1);
        c.replica = replica;
        let out = r.run(&c, &tokio_util::sync::CancellationToken::new()).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(
            std::fs::read_to_string(d.src().join("f.txt")).unwrap(),
            "the peer's newer version"
        );
        let divergent = status(&r).divergent.len();
        let mut q = d.src().into_os_string();
        q.push(".warden-quarantine");
        if replica {
            assert_eq!(divergent, 0, "a replica has no divergent items");
            assert!(
                !d.src().join("only-here.txt").exists(),
                "removed like a push would"
            );
            assert!(!std::path::Path::new(&q).exists(), "nothing quarantined");
        } else {
            assert_eq!(divergent, 2, "a returning site's own writes are divergent");
            assert!(std::path::Path::new(&q).exists(), "set aside");
            // The agent killed now (its list not all reported yet): the
            // next process reports the same list, kept on disk. Before, it
            // reported none — what was set aside left no trace but a log.
            let listed = status(&r).divergent;
            drop(r);
            let next = site_a(&d, r#"divergent = "quarantine""#);
            assert_eq!(status(&next).divergent, listed, "the next process's list");
            // The same resync handed out again to the new process (the
            // orchestrator still waiting for it): the list stays, its pass
            // adding what it finds (nothing more here).
            let again = next
                .run(&c, &tokio_util::sync::CancellationToken::new())
                .await;
            assert!(again.ok, "{again:?}");
            assert_eq!(
                status(&next).divergent,
                listed,
                "kept through the same resync"
            );
        }
    }
}

/// A file with other hard links written in place after the mark: every one
/// of its names changed, the journal saw only the one written through. With
/// `hard_links = false` too (the returning site holds the other names as
/// copies of their own, which a pass of the journaled names would leave
/// stale), the demote says it cannot tell: a full final pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_file_written_in_place_means_a_full_pass_without_hard_links_too() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    std::fs::write(d.src().join("f"), "version 1").unwrap();
    std::fs::hard_link(d.src().join("f"), d.src().join("g")).unwrap();
    let r = site_a(&d, "hard_links = false");
    let j = run(&r, CommandKind::Journal).await;
    assert!(j.ok, "{j:?}");
    let mark = j.journal.as_ref().expect("a mark").mark;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.src().join("f"))
            .unwrap();
        f.write_all(b"version 2").unwrap();
    }
    assert_eq!(std::fs::read(d.src().join("g")).unwrap(), b"version 2");
    let rep = r.journal_since("web", mark).await;
    assert!(
        rep.names.is_none(),
        "g changed with f, but the names are {:?}",
        rep.names
    );
    assert!(rep.note.contains("hard links"), "{}", rep.note);
}
