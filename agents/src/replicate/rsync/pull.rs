//! What the resync pull says and is told, in rsync's own terms: filter
//! rules that match a name literally, the itemized lines of the pull (what
//! it settled) and of `--list-only`, and the manifest a pull confirms.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{dir_item, item_of, rsync_unescape};
use crate::replicate::manifest::{
    escape_name, unescape_name, Item, Listing, Manifest, Stamp, Stamps,
};

/// Whether `names` holds anything under `name/`.
pub(super) fn holds_under(names: &BTreeSet<String>, name: &str) -> bool {
    let prefix = format!("{name}/");
    names
        .range(prefix.clone()..)
        .next()
        .is_some_and(|k| k.starts_with(&prefix))
}

/// A file removed when dropped.
pub(super) struct TempFile(tempfile::TempPath);

impl TempFile {
    /// A new file holding `body`: created exclusively (`O_EXCL`, a random
    /// name, mode 0600) in [`private_temp_dir`]; removed when dropped.
    pub(super) fn with(prefix: &str, suffix: &str, body: &[u8]) -> std::io::Result<TempFile> {
        use std::io::Write;
        let mut f = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .tempfile_in(private_temp_dir()?)?;
        f.write_all(body)?;
        f.flush()?;
        Ok(TempFile(f.into_temp_path()))
    }

    /// The rsync arguments that read this file as NUL-separated filter rules.
    pub(super) fn args(&self) -> [std::ffi::OsString; 2] {
        let mut rule = std::ffi::OsString::from("--filter=merge ");
        rule.push(self.0.as_os_str());
        ["--from0".into(), rule]
    }
}

/// This user's private directory for warden's temporary files,
/// `$TMPDIR/warden-UID` (mode 0700): created if missing; one that is not a
/// real directory owned by this user, or that others may enter, is refused.
pub(crate) fn private_temp_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    // The owner of /proc/self is this process's effective user.
    let uid = std::fs::metadata("/proc/self")?.uid();
    let dir = std::env::temp_dir().join(format!("warden-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = std::fs::symlink_metadata(&dir)?;
    if !m.is_dir() || m.uid() != uid || m.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not a private directory of uid {uid} (a directory, mode 0700): remove it",
            dir.display()
        )));
    }
    Ok(dir)
}

/// The rsync filter rule `RULE /NAME` (NAME: the raw bytes of an
/// [`escape_name`]d name), anchored at the transfer root, matching NAME literally.
pub(super) fn rule(rule: &str, name: &str) -> Vec<u8> {
    let mut out = rule.as_bytes().to_vec();
    out.push(b' ');
    out.extend(anchored(&unescape_name(name)));
    out
}

/// An rsync filter pattern anchored at the transfer root that matches the
/// byte name `name` literally.
pub(super) fn anchored(name: &[u8]) -> Vec<u8> {
    let mut out = vec![b'/'];
    // Backslashes only escape when the pattern holds a wildcard.
    if name.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        for &b in name {
            if matches!(b, b'*' | b'?' | b'[' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
    } else {
        out.extend_from_slice(name);
    }
    out
}

/// One itemized line of the pull (`%i %l %M %n`): an item rsync settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    /// [`escape_name`]d, without a directory's trailing `/`.
    pub name: String,
    /// `f` file, `L` symlink, `d` directory, `S` FIFO or socket, `D`
    /// device node (rsync's second flag).
    pub kind: u8,
    /// Content was transferred (`>f`, a new or changed symlink `cL`).
    pub fetched: bool,
    /// rsync changed nothing about it (`.f` and no flag set).
    pub untouched: bool,
    pub size: u64,
    /// Whole seconds, as rsync's file list had it.
    pub mtime: i64,
}

/// Parses one line of `--out-format=%i %l %M %n` (with `TZ=UTC`).
pub(crate) fn parse_settled(line: &str) -> Option<Settled> {
    let (flags, rest) = line.split_at_checked(11)?;
    let fb = flags.as_bytes();
    if !matches!(fb[0], b'>' | b'c' | b'.' | b'h') {
        return None;
    }
    let kind = fb[1];
    let (size, rest) = rest.trim_start().split_once(' ')?;
    let (when, name) = rest.split_once(' ')?;
    let (date, time) = when.split_once('-')?;
    let mtime = epoch_utc(date, time)?;
    let name = name.strip_suffix('/').unwrap_or(name);
    if name.is_empty() || name == "." {
        return None;
    }
    Some(Settled {
        name: escape_name(&rsync_unescape(name)),
        kind,
        fetched: fb[0] == b'>' || (fb[0] == b'c' && kind == b'L'),
        untouched: fb[0] == b'.' && fb[2..].iter().all(|b| matches!(b, b' ' | b'.')),
        size: size.parse().ok()?,
        mtime,
    })
}

/// What a content comparison found for one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Same {
    /// The peer holds the same content (or, for a directory, a directory).
    Equal,
    /// A file or symlink the peer holds the same in content and in every
    /// attribute the comparison looks at (no flag set): in sync as it is.
    Identical,
    /// The peer holds another content or another kind of item.
    Differs,
}

/// What the last [`Resyncer::pass`] of this resyncer left to verify.
#[derive(Debug, Default, Clone)]
pub(super) struct Delta {
    /// Names whose content the pass fetched (their checksums are compared).
    pub(super) fetched: Vec<String>,
    /// Names the peer listed that are not here as it listed them.
    pub(super) missing: Vec<String>,
    /// Names here the peer did not list and that were not deleted.
    pub(super) extra: Vec<String>,
    /// Items and bytes the pass confirmed in sync (the manifest it saved).
    pub(super) items: u64,
    pub(super) bytes: u64,
}

/// After a pass removed, moved aside or (re)linked names here (`touched`:
/// their inodes, before and after): the other names of those inodes —
/// hard links — had their ctime moved by the pass, not by a change. Their
/// stamps in `m` are taken again when nothing else of theirs moved (the
/// same inode, the mtime to the nanosecond, the size); else such a name
/// counts as changed here at the next pass, and one the peer deleted
/// since is kept as a divergent write — then pushed back to the peer.
pub(super) fn restamp_linked(root: &Path, m: &mut Manifest, touched: &BTreeSet<u64>) {
    if touched.is_empty() {
        return;
    }
    let Manifest { items, stamps, .. } = m;
    for (name, st) in stamps.iter_mut() {
        if !touched.contains(&st.ino) {
            continue;
        }
        let path = root.join(OsStr::from_bytes(&unescape_name(name)));
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        let now = Stamp::of(&meta);
        if now.ino == st.ino
            && now.mtime_ns == st.mtime_ns
            && items.get(name).is_some_and(|i| i.size == meta.len())
        {
            st.ctime_ns = now.ctime_ns;
        }
    }
}

/// The manifest after a pull: every item rsync `settled` that is here as
/// rsync reported it (kind, whole-second mtime, size unless it fetched the
/// content) is confirmed with a stat taken now; an older entry stays while its item here is untouched
/// (`here`/`stamps`: the listing before the pull). Also returns the settled
/// names that are not here as reported.
pub(super) fn confirm(
    root: &Path,
    settled: &[Settled],
    old: &Manifest,
    here: &Listing,
    stamps: &Stamps,
) -> (Listing, Stamps, Vec<String>) {
    use std::os::unix::fs::MetadataExt;
    let mut items = Listing::new();
    let mut new_stamps = Stamps::new();
    for (name, item) in here {
        if old.unchanged(name, item, stamps.get(name)) {
            items.insert(name.clone(), old.items[name].clone());
            if let Some(st) = stamps.get(name) {
                new_stamps.insert(name.clone(), *st);
            }
        }
    }
    let mut missing = Vec::new();
    for it in settled {
        // Untouched by rsync and already confirmed as it is: no stat needed
        // (this keeps a pass with a small delta from stat'ing the tree twice).
        if it.untouched
            && (it.kind == b'd'
                && (items.contains_key(&it.name) || !here.get(&it.name).is_some_and(Item::is_dir))
                || items
                    .get(&it.name)
                    .is_some_and(|i| i.size == it.size && i.version == it.mtime.to_string()))
        {
            continue;
        }
        let path = root.join(OsStr::from_bytes(&unescape_name(&it.name)));
        let meta = path.symlink_metadata();
        let entry = match (&meta, it.kind) {
            // rsync sets the mtime from its file list; a write here after
            // it would move it. The size may differ from the list's when
            // the peer's file grew while it was read: what arrived is still
            // the peer's.
            (Ok(m), b'f' | b'L' | b'S' | b'D')
                if kind_of(m) == it.kind
                    && m.mtime() == it.mtime
                    && (m.len() == it.size || it.fetched) =>
            {
                item_of(m)
            }
            (Ok(m), b'd') if m.is_dir() => {
                // Only empty directories are items; a full one is its entries.
                match std::fs::read_dir(&path).map(|mut d| d.next().is_none()) {
                    Ok(true) => Some(dir_item()),
                    _ => {
                        items.remove(&it.name);
                        new_stamps.remove(&it.name);
                        continue;
                    }
                }
            }
            (_, b'f' | b'L' | b'S' | b'D' | b'd') => None,
            _ => continue,
        };
        match (entry, meta) {
            (Some(item), Ok(m)) => {
                items.insert(it.name.clone(), item);
                new_stamps.insert(it.name.clone(), Stamp::of(&m));
            }
            // Not here as rsync reported it: not confirmed. An entry carried
            // over stays (its stamp still proves the older version, or no
            // longer matches and the next pass compares contents).
            _ => missing.push(it.name.clone()),
        }
    }
    (items, new_stamps, missing)
}

/// rsync's itemized kind letter ([`Settled::kind`]) of what `m` is here.
pub(crate) fn kind_of(m: &std::fs::Metadata) -> u8 {
    use std::os::unix::fs::FileTypeExt;
    let ft = m.file_type();
    if ft.is_file() {
        b'f'
    } else if ft.is_symlink() {
        b'L'
    } else if ft.is_dir() {
        b'd'
    } else if ft.is_char_device() || ft.is_block_device() {
        b'D'
    } else {
        b'S'
    }
}

/// One line of `rsync --list-only -r --no-h` (with `TZ=UTC`) → a file,
/// symlink or special file (FIFO, socket, device node). Directories and
/// anything else give `None`.
pub(crate) fn parse_list_line(line: &str) -> Option<(String, Item)> {
    let (perms, rest) = line.split_once(' ')?;
    let kind = perms.as_bytes().first()?;
    if !matches!(kind, b'-' | b'l' | b'p' | b's' | b'c' | b'b') || perms.len() != 10 {
        return None;
    }
    let (size, rest) = rest.trim_start().split_once(' ')?;
    let size: u64 = size.parse().ok()?;
    let (date, rest) = rest.split_once(' ')?;
    let (time, name) = rest.split_once(' ')?;
    let mtime = epoch_utc(date, time)?;
    let name = match (*kind == b'l', name.find(" -> ")) {
        (true, Some(i)) => &name[..i],
        _ => name,
    };
    if name.is_empty() {
        return None;
    }
    Some((
        escape_name(&rsync_unescape(name)),
        Item {
            size,
            version: mtime.to_string(),
        },
    ))
}

/// `YYYY/MM/DD`, `HH:MM:SS` in UTC → unix seconds.
pub(super) fn epoch_utc(date: &str, time: &str) -> Option<i64> {
    let mut d = date.split('/').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}
