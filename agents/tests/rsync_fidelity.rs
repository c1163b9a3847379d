//! What the rsync plan carries besides names and bytes, against a real rsync
//! daemon on 127.0.0.1 configured as docs/rsyncd.md asks: xattrs (a
//! `user.swift.metadata`-like binary value), POSIX ACLs, hard-link groups, a
//! sparse file and symlinks of every kind arrive identical, by the initial
//! full pass, by incremental batches and by a resync pull; a module that
//! munges or sanitizes symlinks is refused at start; a batch restores the
//! root directory's mtime.
//!
//! Needs root (a chrooted daemon, chown), `rsync`, and `setfattr`/`getfattr`
//! (package `attr`) and `setfacl`/`getfacl` (package `acl`): in CI
//! (`CI=true`) a missing one fails the suite, elsewhere the tests skip.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    DivergentPolicy, Replicator, Resyncer, RsyncReplicator, RsyncResyncer,
};
use warden_agents::AgentError;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;
#[path = "support/tree.rs"]
mod tree;
use tree::*;

/// Whether everything these tests need is here (root, rsync, attr, acl).
fn prerequisites() -> bool {
    if !have_rsync() {
        return false;
    }
    let mut missing = tree::missing_tools();
    if !is_root() {
        missing.push("root (a chrooted rsync daemon, chown)".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "missing for the rsync fidelity tests: {}",
            missing.join(", ")
        );
    }
    eprintln!("note: skipping, missing: {}", missing.join(", "));
    false
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Waits until `a` and `b` have the same fidelity manifest, or panics with the differences.
async fn identical(a: &Path, b: &Path, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (ma, mb) = (manifest(a), manifest(b));
        if ma == mb {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: {} and {} differ:{}",
                a.display(),
                b.display(),
                tree::differences(&ma, &mb)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xattrs_acls_hard_links_sparse_files_and_symlinks_arrive_identical() {
    if !prerequisites() {
        return;
    }
    let d = Daemon::start();
    let (src, target) = (d.src(), d.target());
    build_tree(&src);
    assert!(allocated(&src.join("sparse.img")) <= SPARSE_ALLOC_MAX);

    // The initial full pass.
    let mut settings = d.settings("drdata", PASSWORD);
    settings.manifest = Some(d.dir.path().join("a.manifest.json"));
    let repl = RsyncReplicator::new(settings);
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await.unwrap();
    identical(&src, &target, "after the initial full pass").await;
    let alloc = allocated(&target.join("sparse.img"));
    assert!(
        alloc <= SPARSE_ALLOC_MAX,
        "the sparse file takes {alloc} bytes at the peer"
    );

    // Incremental batches: new and changed attributes, links, symlinks.
    let obj = src.join("objects/1023/def/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&obj).unwrap();
    std::fs::write(obj.join("1700000001.00000.data"), "def").unwrap();
    setfattr(
        &obj.join("1700000001.00000.data"),
        "user.swift.metadata",
        &swift_metadata("o2"),
    );
    setfattr(&src.join("files/plain.txt"), "user.note", b"changed note");
    setfacl(&src.join("acl/shared.txt"), &["-m", "u:4321:r--"]);
    write_sparse(&src.join("sparse-2.img"));
    symlinks(&src.join("sym-2"));
    identical(
        &src,
        &target,
        "after batches of new xattrs, ACLs and symlinks",
    )
    .await;
    assert!(allocated(&target.join("sparse-2.img")) <= SPARSE_ALLOC_MAX);

    // A new name for an inode that has names outside the batch, and an
    // in-place write through one name of a group.
    std::fs::hard_link(src.join("files/plain.txt"), src.join("links/plain-2")).unwrap();
    identical(&src, &target, "after a new hard link to an existing file").await;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(src.join("links/sub/b2"))
            .unwrap();
        f.write_all(b", appended through b2").unwrap();
    }
    identical(&src, &target, "after writing through one name of a group").await;
    assert_eq!(
        std::fs::read_to_string(target.join("b3-at-the-root")).unwrap(),
        "triple, appended through b2"
    );

    let diffs = repl.verify().await.unwrap();
    assert!(diffs.is_empty(), "verify after convergence: {diffs:?}");
    repl.stop().await;

    // The failback direction: a resync pull of the module carries the same.
    let mut settings = d.settings("drdata", PASSWORD);
    let back = d.dir.path().join("pulled");
    settings.source = back.clone();
    settings.manifest = Some(d.dir.path().join("b.manifest.json"));
    let resync = RsyncResyncer::new(settings).unwrap();
    resync
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    identical(&target, &back, "after a resync pull").await;
    assert!(allocated(&back.join("sparse.img")) <= SPARSE_ALLOC_MAX);
    let v = resync.verify(&[]).await.unwrap();
    assert!(
        v.differences.is_empty(),
        "resync verify: {:?}",
        v.differences
    );

    // What the pull carries beside content, lost here after it (as a
    // receiver that did not keep it would): the verification a cut-over
    // waits for names each item — the last pass's delta, and the whole
    // tree on a fresh resyncer (directories too).
    // (Items of no hard-link group: rsync names one name of a group.)
    let object = "objects/1023/abc/0123456789abcdef0123456789abcabc/1700000000.00000.data";
    setfattr(&back.join(object), "user.swift.metadata", b"not the peer's");
    std::fs::set_permissions(back.join("owned.txt"), PermissionsExt::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(back.join("sparse.img"), Some(4321), None).unwrap();
    setfacl(&back.join("acl/shared.txt"), &["-x", "g:2345"]);
    std::fs::set_permissions(back.join("files"), PermissionsExt::from_mode(0o755)).unwrap();
    let named = |diffs: &[warden_agents::replicate::Difference]| {
        let mut n: Vec<String> = diffs
            .iter()
            .map(|d| d.path.to_string_lossy().trim_end_matches('/').to_string())
            .collect();
        n.sort();
        n
    };
    let files = ["acl/shared.txt", object, "owned.txt", "sparse.img"];
    let v = resync.verify(&[]).await.unwrap();
    let delta = named(&v.differences);
    for f in files {
        assert!(
            delta.iter().any(|n| n == f),
            "the pass's verification does not name {f}: {delta:?}"
        );
    }
    let fresh = RsyncResyncer::new({
        let mut s = d.settings("drdata", PASSWORD);
        s.source = back.clone();
        s.manifest = Some(d.dir.path().join("b.manifest.json"));
        s
    })
    .unwrap();
    let whole = named(&fresh.verify(&[]).await.unwrap().differences);
    for f in files.iter().chain(&["files"]) {
        assert!(
            whole.iter().any(|n| n == f),
            "the whole tree's verification does not name {f}: {whole:?}"
        );
    }
}

/// Restarts `d` with these global lines instead of the chroot and
/// no-munge ones docs/rsyncd.md asks for.
fn reconfigure(d: &mut Daemon, globals: &str) {
    d.down();
    let conf = d.dir.path().join("rsyncd.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let at = text.find("uid = root").unwrap();
    let text = format!("{globals}{}", &text[at..]);
    std::fs::write(&conf, text).unwrap();
    d.up();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_munges_or_sanitizes_symlinks_is_refused_at_start() {
    if !prerequisites() {
        return;
    }
    let mut d = Daemon::start();
    std::fs::write(d.src().join("f.txt"), "x").unwrap();
    for (globals, says) in [
        // munge symlinks defaults to yes without chroot
        ("use chroot = no\n", "munged"),
        ("use chroot = no\nmunge symlinks = no\n", "sanitizes"),
    ] {
        reconfigure(&mut d, globals);
        let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
        let err = repl
            .start(CancellationToken::new())
            .await
            .expect_err(globals);
        assert!(
            matches!(err, AgentError::ReplicationSymlinks { .. }),
            "{globals}: {err}"
        );
        let msg = err.to_string();
        for part in [
            "use chroot = yes",
            "munge symlinks = no",
            "docs/rsyncd.md",
            says,
        ] {
            assert!(msg.contains(part), "{globals}: {part:?} not in {msg}");
        }
        repl.stop().await;
        // Nothing replicated, and the probe removed.
        let left: Vec<_> = std::fs::read_dir(d.target())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{globals}: left at the peer: {left:?}");
    }
    // Fixed: it starts, and the probe left nothing behind.
    reconfigure(&mut d, "use chroot = yes\nmunge symlinks = no\n");
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    repl.start(CancellationToken::new()).await.unwrap();
    let names: Vec<_> = std::fs::read_dir(d.target())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("f.txt")]);
    repl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_restores_the_root_directorys_mtime() {
    if !prerequisites() {
        return;
    }
    let d = Daemon::start();
    let (src, target) = (d.src(), d.target());
    std::fs::create_dir(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/in-sub.txt"), "x").unwrap();
    set_mtime(&src, "2003-04-05 06:07:08.123456789");
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    repl.start(CancellationToken::new()).await.unwrap();
    let mtime = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    let same_root = || async {
        let deadline = Instant::now() + PATIENCE;
        while mtime(&src) != mtime(&target) || repl.lag() > Duration::ZERO {
            assert!(
                Instant::now() < deadline,
                "root mtime here {:?}, at the peer {:?}",
                mtime(&src),
                mtime(&target)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    same_root().await;
    // A new top-level file (created at the peer by a temp file and a rename).
    std::fs::write(src.join("top.txt"), "new").unwrap();
    same_root().await;
    assert!(target.join("top.txt").exists());
    // A rewrite of it, and a deletion at the top.
    std::fs::write(src.join("top.txt"), "rewritten").unwrap();
    same_root().await;
    std::fs::remove_file(src.join("top.txt")).unwrap();
    same_root().await;
    assert!(!target.join("top.txt").exists());
    // The root's own attributes only (an event on the root itself).
    set_mtime(&src, "2004-05-06 07:08:09.5");
    std::fs::set_permissions(&src, PermissionsExt::from_mode(0o750)).unwrap();
    same_root().await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode();
    let deadline = Instant::now() + PATIENCE;
    while mode(&target) != mode(&src) {
        assert!(Instant::now() < deadline, "root mode not carried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A change below the root leaves the peer's root mtime equal too.
    std::fs::write(src.join("sub/in-sub.txt"), "changed").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    same_root().await;
    assert_eq!(
        std::fs::read_to_string(target.join("sub/in-sub.txt")).unwrap(),
        "changed"
    );
    repl.stop().await;
}
