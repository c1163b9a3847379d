//! A rich tree for replication fidelity tests, and the manifest that says
//! whether two copies of it are identical: kinds, modes, owners, sizes,
//! content, nanosecond mtimes, symlink targets byte for byte, xattrs, POSIX
//! ACLs and hard-link groups. Shared by `agents/tests/rsync_fidelity.rs`
//! (crate level, one rsync daemon on 127.0.0.1) and `tests/data` (warden's
//! binaries on network-namespace hosts). Needs `getfattr`/`setfattr`
//! (package `attr`) and `getfacl`/`setfacl` (package `acl`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The attr/acl tools this module runs that are missing, with their packages.
pub(crate) fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
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
    missing
}

/// What differs between two manifests, one line per path; empty when identical.
pub(crate) fn differences(ma: &BTreeMap<PathBuf, Entry>, mb: &BTreeMap<PathBuf, Entry>) -> String {
    let mut differ = String::new();
    for (k, v) in ma {
        match mb.get(k) {
            Some(w) if w == v => {}
            Some(w) => differ.push_str(&format!("\n{k:?}:\n  here  {v:?}\n  there {w:?}")),
            None => differ.push_str(&format!("\n{k:?}: missing there")),
        }
    }
    for k in mb.keys().filter(|k| !ma.contains_key(*k)) {
        differ.push_str(&format!("\n{k:?}: extra there"));
    }
    differ
}

/// A sparse file's length, and the most it may allocate at the peer.
pub(crate) const SPARSE_LEN: u64 = 1 << 20;
pub(crate) const SPARSE_ALLOC_MAX: u64 = 64 * 1024;

pub(crate) fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub(crate) fn setfattr(path: &Path, name: &str, value: &[u8]) {
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    run(Command::new("setfattr")
        .args(["-n", name, "-v"])
        .arg(format!("0x{hex}"))
        .arg(path));
}

pub(crate) fn setfacl(path: &Path, args: &[&str]) {
    run(Command::new("setfacl").args(args).arg(path));
}

/// Sets a file's mtime to the nanosecond (not following symlinks).
pub(crate) fn set_mtime(path: &Path, stamp: &str) {
    run(Command::new("touch").args(["-h", "-d", stamp]).arg(path));
}

/// A value like the pickled dict the Swift object server keeps in
/// `user.swift.metadata`: binary, with NULs and high bytes.
pub(crate) fn swift_metadata(name: &str) -> Vec<u8> {
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
pub(crate) struct Entry {
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
/// Taken while replication may still write there: an entry that vanishes
/// during the walk (rsync's temporary file, renamed into place) is left
/// out — callers compare manifests until they agree, so one taken
/// mid-transfer only differs and is taken again.
pub(crate) fn manifest(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out);
            }
        }
    }
    let mut names = vec![PathBuf::from(".")];
    walk(root, root, &mut names);
    names.retain(|n| root.join(n).symlink_metadata().is_ok());
    let mut inodes: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    for n in &names {
        let Ok(m) = root.join(n).symlink_metadata() else {
            continue;
        };
        if m.is_file() && m.nlink() > 1 {
            inodes.entry(m.ino()).or_default().push(n.clone());
        }
    }
    let mut out = BTreeMap::new();
    for n in names {
        let p = root.join(&n);
        let Ok(m) = p.symlink_metadata() else {
            continue;
        };
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
            // Gone since: hashed as no content (differs; taken again).
            std::fs::read(&p).ok().hash(&mut h);
            h.finish()
        });
        let symlink = ft.is_symlink().then(|| {
            std::fs::read_link(&p)
                .map(|t| t.as_os_str().as_bytes().to_vec())
                .unwrap_or_default()
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

/// Bytes allocated to a file.
pub(crate) fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// A 1 MiB file with a few bytes at 0 and at 768 KiB, holes elsewhere.
pub(crate) fn write_sparse(p: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(p).unwrap();
    f.write_all(b"head").unwrap();
    f.seek(SeekFrom::Start(768 * 1024)).unwrap();
    f.write_all(b"middle").unwrap();
    f.set_len(SPARSE_LEN).unwrap();
}

/// Every kind of symlink, byte for byte: absolute, relative, `../..`,
/// dangling, out of the tree, `..` inside an absolute target, non-UTF-8.
pub(crate) fn symlinks(dir: &Path) {
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
pub(crate) fn build_tree(src: &Path) {
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
