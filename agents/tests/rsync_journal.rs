//! The cut-over's journaled final pass against a real rsync daemon on
//! 127.0.0.1: the daemon's `drdata` module is the active peer, whose
//! [`ChangeJournal`] (started before the resync, as the failback runbook
//! does) names what changed there; the harness's `src/` is the returning
//! site. The pass over only those names must leave the returning site as a
//! full pass would, and refuse (changing nothing) when a full pass is
//! needed. Needs `rsync` (CI fails without it, elsewhere the tests skip).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::journal::ChangeJournal;
use warden_agents::replicate::manifest::escape_name;
use warden_agents::replicate::{DivergentPolicy, Resyncer, RsyncResyncer};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

/// Everything under `root`: files with content, symlinks with target,
/// directories, and each one's mtime to the nanosecond.
fn tree(root: &Path) -> BTreeMap<PathBuf, (Option<Vec<u8>>, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    for (k, v) in snapshot(root) {
        let m = root.join(&k).symlink_metadata().unwrap();
        let body = if m.file_type().is_symlink() {
            Some(
                std::fs::read_link(root.join(&k))
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else {
            v
        };
        out.insert(k, (body, m.mtime(), m.mtime_nsec()));
    }
    out
}

/// The active peer with a tree, its journal started, the returning site
/// resynced by a full pass (which writes the manifest): `(journal, mark)`.
async fn synced(d: &Daemon) -> (ChangeJournal, warden_agents::wire::JournalMark) {
    let active = d.target();
    for i in 0..40 {
        write(
            &active,
            &format!("docs/{}/f{i}.txt", i % 4),
            &format!("file {i}"),
        );
    }
    write(&active, "gone/soon/a.txt", "a");
    write(&active, "gone/soon/b.txt", "b");
    write(&active, "top.txt", "top");
    std::os::unix::fs::symlink("docs/0/f0.txt", active.join("link")).unwrap();
    // Past the clock tick of those writes: a file changed in the mark's own
    // tick is named too (its ctime cannot tell).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let journal = ChangeJournal::start(&active, &d.dir.path().join("journal-barrier")).unwrap();
    let mark = journal.mark_flushed().await.unwrap();
    let first = RsyncResyncer::new(settings(d)).unwrap();
    first
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(tree(&d.src()), tree(&active), "after the resync pass");
    (journal, mark)
}

fn changed(names: Vec<PathBuf>) -> Vec<String> {
    names
        .iter()
        .map(|n| escape_name(n.as_os_str().as_encoded_bytes()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journaled_names_alone_bring_the_returning_site_to_the_peer() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (journal, mark) = synced(&d).await;
    let active = d.target();
    // Writes at the active site after the resync pass, until its demote.
    write(&active, "docs/1/f1.txt", "rewritten, same size?");
    write(&active, "docs/2/f2.txt", "file 2"); // same content, new mtime
    write(&active, "new/deep/dir/x.txt", "in a new directory");
    write(&active, "new/deep/dir/y.txt", "and another");
    std::fs::remove_file(active.join("docs/3/f3.txt")).unwrap();
    std::fs::remove_dir_all(active.join("gone")).unwrap();
    std::fs::rename(active.join("top.txt"), active.join("top-renamed.txt")).unwrap();
    std::fs::remove_file(active.join("link")).unwrap();
    std::os::unix::fs::symlink("../elsewhere", active.join("link")).unwrap();
    // The old active site's own replication already brought one of them
    // here: changed since confirmed, but the peer's content.
    write(&d.src(), "docs/1/f1.txt", "rewritten, same size?");
    let names = changed(journal.since(mark).await.unwrap());
    assert!(names.len() < 20, "only what changed: {names:?}");

    let fin = RsyncResyncer::new(settings(&d)).unwrap();
    let report = fin
        .pass_changed(&names, &[], false, CancellationToken::new())
        .await
        .unwrap()
        .expect("a journaled pass");
    assert_eq!(tree(&d.src()), tree(&active), "after the journaled pass");
    assert!(report.fetched.items >= 5, "{report:?}");
    let v = fin.verify(&[]).await.unwrap();
    assert!(v.differences.is_empty(), "{:?}", v.differences);

    // The manifest it saved is what a full pass finds: nothing to fetch,
    // delete or call divergent.
    let full = RsyncResyncer::new(settings(&d)).unwrap();
    let again = full
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(
        (again.fetched.items, again.deleted, again.divergent.len()),
        (0, 0, 0),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_change_under_a_journaled_name_means_a_full_pass_and_nothing_changes() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (journal, mark) = synced(&d).await;
    let (active, here) = (d.target(), d.src());
    write(&active, "docs/1/f1.txt", "the peer's new version");
    std::fs::remove_dir_all(active.join("gone")).unwrap();
    // The returning site wrote under a name the peer also changed or deleted.
    write(&here, "gone/soon/local-only.txt", "never replicated");
    let names = changed(journal.since(mark).await.unwrap());
    let before = tree(&here);
    let fin = RsyncResyncer::new(settings(&d)).unwrap();
    let why = fin
        .pass_changed(&names, &[], false, CancellationToken::new())
        .await
        .unwrap()
        .expect_err("a full pass must decide");
    assert!(why.contains("changed here"), "{why}");
    assert_eq!(tree(&here), before, "nothing changed here");

    // A kept divergent item under a journaled name: the same.
    let why = fin
        .pass_changed(
            &names,
            &["gone/soon/local-only.txt".into()],
            false,
            CancellationToken::new(),
        )
        .await
        .unwrap()
        .expect_err("a full pass must decide");
    assert!(why.contains("kept divergent"), "{why}");
    assert_eq!(tree(&here), before, "nothing changed here");

    // The peer deleted more than the mass-delete guard lets a pass delete:
    // the full pass's guard decides, nothing is deleted here.
    for i in 0..150 {
        write(&here, &format!("bulk/f{i}.txt"), "bulk");
    }
    let fresh = RsyncResyncer::new(settings(&d)).unwrap();
    for i in 0..150 {
        write(&active, &format!("bulk/f{i}.txt"), "bulk");
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mark = journal.mark_flushed().await.unwrap();
    fresh
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    std::fs::remove_dir_all(active.join("bulk")).unwrap();
    let names = changed(journal.since(mark).await.unwrap());
    let before = tree(&here);
    let why = fresh
        .pass_changed(&names, &[], false, CancellationToken::new())
        .await
        .unwrap()
        .expect_err("the guard's limits");
    assert!(why.contains("guard"), "{why}");
    assert_eq!(tree(&here), before, "nothing deleted here");

    // Names that would leave the tree (a lying or broken peer): refused.
    for bad in ["../escape", "/etc/passwd", "docs/../../x", "docs//f", ""] {
        let why = fin
            .pass_changed(&[bad.to_string()], &[], false, CancellationToken::new())
            .await
            .unwrap()
            .expect_err(bad);
        assert!(
            why.contains("not a relative path inside the tree"),
            "{bad}: {why}"
        );
    }
    assert_eq!(tree(&here), before, "nothing changed here");
}

/// A journaled name whose parent is a symbolic link here (to a directory
/// outside the tree) is no item of the tree: the pass reads, counts and
/// deletes nothing through the link, even when the peer has no such name
/// and the pass runs at a replica (where changed items are not compared
/// with the peer first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_name_behind_a_symlink_deletes_nothing_outside_the_tree() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (_journal, _mark) = synced(&d).await;
    let outside = d.dir.path().join("outside");
    write(&outside, "victim.txt", "not the tree's");
    write(&outside, "dir/deep.txt", "not the tree's either");
    std::os::unix::fs::symlink(&outside, d.src().join("esc")).unwrap();
    let fin = RsyncResyncer::new(settings(&d)).unwrap();
    for replica in [true, false] {
        let names = vec!["esc/victim.txt".to_string(), "esc/dir".to_string()];
        let _ = fin
            .pass_changed(&names, &[], replica, CancellationToken::new())
            .await;
        assert_eq!(
            std::fs::read_to_string(outside.join("victim.txt")).unwrap(),
            "not the tree's",
            "deleted through the link (replica {replica})"
        );
        assert!(
            outside.join("dir/deep.txt").exists(),
            "a directory deleted through the link (replica {replica})"
        );
    }
}

/// A directory swapped in by renames at the active site (`mv current old;
/// mv new current`): the journal names the three directories, not their
/// entries; the pull of a named directory leaves none of the old version's
/// files in it here, and the manifest confirms none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_at_the_peer_ends_equal_here() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let active = d.target();
    write(&active, "current/v1only", "only in version 1");
    write(&active, "current/common", "common, version 1");
    write(&active, "current/lib/old.so", "an old library");
    write(&active, "new/common", "common, version 2 (longer)");
    write(&active, "new/v2only", "only in version 2");
    let (journal, mark) = synced(&d).await;
    std::fs::rename(active.join("current"), active.join("old")).unwrap();
    std::fs::rename(active.join("new"), active.join("current")).unwrap();
    let names = changed(journal.since(mark).await.unwrap());
    assert!(
        !names.iter().any(|n| n.starts_with("current/")),
        "only the directories are named: {names:?}"
    );

    let fin = RsyncResyncer::new(settings(&d)).unwrap();
    let report = fin
        .pass_changed(&names, &[], false, CancellationToken::new())
        .await
        .unwrap()
        .expect("a journaled pass");
    assert!(
        !d.src().join("current/v1only").exists() && !d.src().join("current/lib").exists(),
        "version 1's files left here: {report:?}"
    );
    assert_eq!(tree(&d.src()), tree(&active), "after the journaled pass");
    let v = fin.verify(&[]).await.unwrap();
    assert!(v.differences.is_empty(), "{:?}", v.differences);
    let m = warden_agents::replicate::Manifest::load(&d.dir.path().join("state/manifest.json"))
        .unwrap();
    assert!(
        !m.items
            .keys()
            .any(|k| k.starts_with("current/") && !d.src().join(k).exists()),
        "the manifest confirms files gone from both sides: {:?}",
        m.items.keys().collect::<Vec<_>>()
    );
    // The manifest it saved is what a full pass finds.
    let full = RsyncResyncer::new(settings(&d)).unwrap();
    let again = full
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(
        (again.fetched.items, again.deleted, again.divergent.len()),
        (0, 0, 0),
        "{again:?}"
    );
}

/// A file with another hard link written in place at the peer, then the
/// name written through removed (or replaced) before the demote: the
/// journal names only that name, which the peer no longer has as a linked
/// file, while the other name's content changed. The returning site still
/// holds the two names linked (the last pass carried the link): a pass of
/// the journaled names would leave the other name's old content here, so
/// it refuses and the full pass runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_file_written_then_unlinked_at_the_peer_means_a_full_pass() {
    if !have_rsync() {
        return;
    }
    for replace in [false, true] {
        let d = Daemon::start();
        let active = d.target();
        write(&active, "dir/f", "version 1");
        std::fs::hard_link(active.join("dir/f"), active.join("g")).unwrap();
        let (journal, mark) = synced(&d).await;
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(active.join("dir/f"))
                .unwrap();
            f.write_all(b"version 2").unwrap();
        }
        if replace {
            write(&active, "dir/f.new", "another file");
            std::fs::rename(active.join("dir/f.new"), active.join("dir/f")).unwrap();
        } else {
            std::fs::remove_file(active.join("dir/f")).unwrap();
        }
        assert_eq!(std::fs::read(active.join("g")).unwrap(), b"version 2");
        // The journal finds g by its ctime; inotify named only dir/f, and
        // those are the names an older peer's journal sends.
        let names: Vec<String> = changed(journal.since(mark).await.unwrap())
            .into_iter()
            .filter(|n| n != "g")
            .collect();

        let fin = RsyncResyncer::new(settings(&d)).unwrap();
        match fin
            .pass_changed(&names, &[], false, CancellationToken::new())
            .await
            .unwrap()
        {
            Err(why) => assert!(why.contains("hard link"), "{why}"),
            Ok(report) => {
                assert_eq!(
                    String::from_utf8_lossy(&std::fs::read(d.src().join("g")).unwrap()),
                    "version 2",
                    "g here after the journaled pass of {names:?} ({report:?})"
                );
                assert_eq!(tree(&d.src()), tree(&active), "after the journaled pass");
            }
        }
    }
}

/// A file changed at the peer with no inotify event in the tree: written
/// through a hard link outside it, that link then removed (a write through
/// a shared mapping, `mmap`, is never reported either: inotify(7)). The
/// kernel moved the file's ctime all the same: the journal names it, and
/// the journaled pass brings it here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_without_an_inotify_event_is_journaled() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let active = d.target();
    write(&active, "db/pages", "page 1 of the database, version 1");
    let (journal, mark) = synced(&d).await;
    let outside = d.dir.path().join("outside-link");
    std::fs::hard_link(active.join("db/pages"), &outside).unwrap();
    std::fs::write(&outside, "page 1 of the database, version 2").unwrap();
    std::fs::remove_file(&outside).unwrap();
    assert!(std::fs::read_to_string(active.join("db/pages"))
        .unwrap()
        .ends_with("version 2"));
    let names = changed(journal.since(mark).await.unwrap());
    assert!(
        names.contains(&"db/pages".to_string()),
        "the change is not journaled: {names:?}"
    );
    let fin = RsyncResyncer::new(settings(&d)).unwrap();
    fin.pass_changed(&names, &[], false, CancellationToken::new())
        .await
        .unwrap()
        .expect("a journaled pass");
    assert_eq!(tree(&d.src()), tree(&active), "after the journaled pass");
}
