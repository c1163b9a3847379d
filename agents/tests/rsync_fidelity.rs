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

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    DivergentPolicy, Replicator, Resyncer, RsyncReplicator, RsyncResyncer,
};
use warden_agents::AgentError;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

/// A sparse file's length, and the most it may allocate at the peer.
const SPARSE_LEN: u64 = 1 << 20;
const SPARSE_ALLOC_MAX: u64 = 64 * 1024;

/// Whether everything these tests need is here (root, rsync, attr, acl).
fn prerequisites() -> bool {
    if !have_rsync() {
        return false;
    }
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (a chrooted rsync daemon, chown)".to_string());
    }
    for (tool, package) in [
        ("setfattr", "attr"),
        ("getfattr", "attr"),
        ("setfacl", "acl"),
        ("getfacl", "acl"),
    ] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !ok {
            missing.push(format!("{tool} (apt-get install -y {package})"));
        }
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

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn setfattr(path: &Path, name: &str, value: &[u8]) {
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    run(Command::new("setfattr")
        .args(["-n", name, "-v"])
        .arg(format!("0x{hex}"))
        .arg(path));
}

fn setfacl(path: &Path, args: &[&str]) {
    run(Command::new("setfacl").args(args).arg(path));
}

/// Sets a file's mtime to the nanosecond (not following symlinks).
fn set_mtime(path: &Path, stamp: &str) {
    run(Command::new("touch").args(["-h", "-d", stamp]).arg(path));
}

/// A value like the pickled dict the Swift object server keeps in
/// `user.swift.metadata`: binary, with NULs and high bytes.
fn swift_metadata(name: &str) -> Vec<u8> {
    let mut v = b"\x80\x02}q\x00(X\x04\x00\x00\x00NameX".to_vec();
    v.extend_from_slice(format!("\x0b\x00\x00\x00/AUTH_test/c/{name}").as_bytes());
    v.extend_from_slice(b"q\x01X\x0e\x00\x00\x00Content-Lengthq\x02X\x01\x00\x00\x003");
    v.extend_from_slice(b"X\x04\x00\x00\x00ETagX \x00\x00\x00");
    v.extend_from_slice(&[0xff, 0x00, 0xfe, 0x01, 0x7f]);
    v.extend_from_slice(b"0123456789abcdef0123456789abcdefu.");
    v
}

/// One entry of the fidelity manifest: everything that must arrive.
#[derive(Debug, PartialEq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    content: Option<u64>,
    mtime: (i64, i64),
    symlink: Option<Vec<u8>>,
    xattrs: String,
    acl: String,
    /// The names (relative) sharing this entry's inode, when it has several.
    links: Vec<PathBuf>,
}

/// The fidelity manifest of the tree under `root` (`.` is the root itself).
fn manifest(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut names = vec![PathBuf::from(".")];
    walk(root, root, &mut names);
    let mut inodes: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    for n in &names {
        let m = root.join(n).symlink_metadata().unwrap();
        if m.is_file() && m.nlink() > 1 {
            inodes.entry(m.ino()).or_default().push(n.clone());
        }
    }
    let mut out = BTreeMap::new();
    for n in names {
        let p = root.join(&n);
        let m = p.symlink_metadata().unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        let content = ft.is_file().then(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(&p).unwrap().hash(&mut h);
            h.finish()
        });
        let symlink = ft.is_symlink().then(|| {
            std::fs::read_link(&p)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        let xattrs = String::from_utf8_lossy(&run(Command::new("getfattr")
            .args(["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"])
            .arg(&p)))
        .lines()
        .filter(|l| !l.starts_with("# file:") && !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
        let acl = if ft.is_symlink() {
            String::new()
        } else {
            String::from_utf8_lossy(&run(Command::new("getfacl")
                .args(["-P", "-n", "--omit-header", "--absolute-names"])
                .arg(&p)))
            .into_owned()
        };
        let links = if ft.is_file() && m.nlink() > 1 {
            inodes.get(&m.ino()).cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        let entry = Entry {
            kind,
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: if ft.is_dir() { 0 } else { m.size() },
            content,
            mtime: (m.mtime(), m.mtime_nsec()),
            symlink,
            xattrs,
            acl,
            links,
        };
        out.insert(n, entry);
    }
    out
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
            let mut differ = String::new();
            for (k, v) in &ma {
                match mb.get(k) {
                    Some(w) if w == v => {}
                    Some(w) => differ.push_str(&format!("\n{k:?}:\n  here  {v:?}\n  there {w:?}")),
                    None => differ.push_str(&format!("\n{k:?}: missing there")),
                }
            }
            for k in mb.keys().filter(|k| !ma.contains_key(*k)) {
                differ.push_str(&format!("\n{k:?}: extra there"));
            }
            panic!(
                "{what}: {} and {} differ:{differ}",
                a.display(),
                b.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Bytes allocated to a file.
fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// A 1 MiB file with a few bytes at 0 and at 768 KiB, holes elsewhere.
fn write_sparse(p: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(p).unwrap();
    f.write_all(b"head").unwrap();
    f.seek(SeekFrom::Start(768 * 1024)).unwrap();
    f.write_all(b"middle").unwrap();
    f.set_len(SPARSE_LEN).unwrap();
}

/// Every kind of symlink, byte for byte: absolute, relative, `../..`,
/// dangling, out of the tree, `..` inside an absolute target, non-UTF-8.
fn symlinks(dir: &Path) {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(dir).unwrap();
    symlink("/etc/hostname", dir.join("absolute")).unwrap();
    symlink("../files/plain.txt", dir.join("relative")).unwrap();
    symlink("../../..", dir.join("up-up-up")).unwrap();
    symlink("does/not/exist", dir.join("dangling")).unwrap();
    symlink("/nonexistent/outside/the/tree", dir.join("outside")).unwrap();
    symlink("/a/../../b/./c//d", dir.join("absolute-dotdot")).unwrap();
    symlink(OsStr::from_bytes(b"caf\xe9 \\#1"), dir.join("bytes")).unwrap();
}

/// The initial tree: xattrs, ACLs, hard links, a sparse file, symlinks, owners, modes, ns mtimes.
fn build_tree(src: &Path) {
    let files = src.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("plain.txt"), "plain").unwrap();
    setfattr(&files.join("plain.txt"), "user.note", b"a note");
    setfattr(&files.join("plain.txt"), "user.binary", &[0, 1, 2, 0xff, 0]);
    setfattr(&files, "user.dir-note", b"on a directory");
    setfattr(src, "user.root-note", b"on the root");

    // A Swift object server's layout: objects/PART/SUFFIX/HASH/TS.data.
    let obj = src.join("objects/1023/abc/0123456789abcdef0123456789abcabc");
    std::fs::create_dir_all(&obj).unwrap();
    std::fs::write(obj.join("1700000000.00000.data"), "abc").unwrap();
    setfattr(
        &obj.join("1700000000.00000.data"),
        "user.swift.metadata",
        &swift_metadata("o1"),
    );

    let acl = src.join("acl");
    std::fs::create_dir_all(&acl).unwrap();
    std::fs::write(acl.join("shared.txt"), "shared").unwrap();
    setfacl(&acl.join("shared.txt"), &["-m", "u:1234:rw-,g:2345:r--"]);
    setfacl(&acl, &["-d", "-m", "u:1234:rwx"]);
    setfacl(&acl, &["-m", "g:2345:r-x"]);

    let links = src.join("links");
    std::fs::create_dir_all(links.join("sub")).unwrap();
    std::fs::write(links.join("a1"), "pair").unwrap();
    std::fs::hard_link(links.join("a1"), links.join("a2")).unwrap();
    std::fs::write(links.join("b1"), "triple").unwrap();
    std::fs::hard_link(links.join("b1"), links.join("sub/b2")).unwrap();
    std::fs::hard_link(links.join("b1"), src.join("b3-at-the-root")).unwrap();

    write_sparse(&src.join("sparse.img"));
    symlinks(&src.join("sym"));

    std::fs::write(src.join("owned.txt"), "owned").unwrap();
    std::os::unix::fs::chown(src.join("owned.txt"), Some(1234), Some(2345)).unwrap();
    std::fs::set_permissions(src.join("owned.txt"), PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::set_permissions(&files, PermissionsExt::from_mode(0o750)).unwrap();
    set_mtime(&files.join("plain.txt"), "2001-02-03 04:05:06.123456789");
    set_mtime(&src.join("sym/absolute"), "2002-03-04 05:06:07.987654321");
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
