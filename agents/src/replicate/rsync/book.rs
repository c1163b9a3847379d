//! Manifest bookkeeping of the push side: what is confirmed at the peer
//! (items and their stamps), listing and stat-ing the source, and the counts
//! the mass-delete guard needs.

use super::*;

/// The in-memory pair manifest of a running replicator.
#[derive(Debug, Default)]
pub(super) struct Book {
    pub(super) items: Listing,
    /// The local stamps of `items` (what was sent).
    pub(super) stamps: Stamps,
    /// Changed since the last save.
    pub(super) dirty: bool,
    /// When it was last saved (at most one save a second).
    pub(super) saved_at: Option<Instant>,
}

/// How often the manifest is saved at most.
pub(super) const MANIFEST_SAVE_EVERY: Duration = Duration::from_secs(1);

/// The directory `mkfs` puts at the root of a fresh ext2/3/4 volume. Empty,
/// it is no data: a tree that holds nothing else counts as empty for the
/// holds of an empty source or peer (a blank volume mounted at a source
/// path, a peer module on a fresh volume), as an unmounted one does.
pub(super) const FRESH_VOLUME_DIR: &str = "lost+found";

/// Whether every name (relative to a tree's root, a directory's with or
/// without its trailing `/`) is the top-level [`FRESH_VOLUME_DIR`] itself:
/// the tree holds no data. Nothing under it may be listed (what `fsck`
/// put there is data).
pub(super) fn only_fresh_volume_dir<'a>(names: impl IntoIterator<Item = &'a str>) -> bool {
    names
        .into_iter()
        .all(|n| n.trim_end_matches('/') == FRESH_VOLUME_DIR)
}

/// Whether the directory `root` holds nothing but an empty
/// [`FRESH_VOLUME_DIR`] (`false` when it cannot be read: not known empty).
pub(super) fn holds_no_data(root: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else {
        return false;
    };
    for entry in entries {
        let Ok(entry) = entry else {
            return false;
        };
        let is_fresh_dir = entry.file_name() == FRESH_VOLUME_DIR
            && entry.file_type().is_ok_and(|t| t.is_dir())
            && std::fs::read_dir(entry.path()).is_ok_and(|mut d| d.next().is_none());
        if !is_fresh_dir {
            return false;
        }
    }
    true
}

/// What a full pass's dry run found (see [`Shared::dry_run`]).
#[derive(Debug, Default, Clone)]
pub(super) struct DryRun {
    pub(super) deletes: u64,
    pub(super) source_items: u64,
    pub(super) target_items: u64,
    /// Of `source_items` and `target_items`, the top-level
    /// [`FRESH_VOLUME_DIR`] (0 or 1 each): not data.
    pub(super) source_fresh_dir: u64,
    pub(super) target_fresh_dir: u64,
    /// The dry run could not read part of the source (rsync code 23): it
    /// counted no deletion, and the pass must delete none (rsync itself
    /// skips deletions then; a pass that could read it all would delete
    /// what was never counted). What rsync said.
    pub(super) incomplete: Option<String>,
}

/// Items of `items` named `name` or under `name/`.
pub(super) fn count_under(items: &Listing, name: &str) -> u64 {
    let prefix = format!("{name}/");
    let under = items
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .count() as u64;
    under + u64::from(items.contains_key(name))
}

/// The shallowest proper ancestor of `rel` (relative to `root`) that is
/// not a real directory here — a symlink, a file, or nothing: `rel` is then
/// no item of this tree, and rsync, handed `rel`, would follow the symlink
/// (its `--relative` path components are followed), sending what lies
/// behind it (outside the tree, even) as a directory in place of the link.
/// `None` when every ancestor is a directory (or cannot be looked at: rsync
/// then says why).
pub(crate) fn non_dir_ancestor(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut at = PathBuf::new();
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            break;
        }
        at.push(part);
        match root.join(&at).symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Some(at),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(at),
            Err(_) => return None,
        }
    }
    None
}

/// `paths` without those under another of them: `-r` sends a listed
/// directory's subtree anyway, and a listed name that is no directory (a
/// directory replaced by a symlink) must be sent as itself, never be made a
/// directory again by a name under it.
pub(crate) fn without_nested(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let all: BTreeSet<PathBuf> = paths.iter().cloned().collect();
    let mut out: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| !p.ancestors().skip(1).any(|a| all.contains(a)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A batch's paths as they may go to rsync: `(send, later)`. A path
/// reached through something that is no longer a directory here
/// ([`non_dir_ancestor`]) is not sent: that ancestor is, in this batch
/// when it is listed, else `later` (a batch of its own, once no running
/// batch overlaps it). Then [`without_nested`].
pub(crate) fn through_non_dirs(root: &Path, paths: Vec<PathBuf>) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let listed: BTreeSet<PathBuf> = paths.iter().cloned().collect();
    let mut send = Vec::new();
    let mut later = BTreeSet::new();
    for p in paths {
        match non_dir_ancestor(root, &p) {
            None => send.push(p),
            Some(a) if listed.contains(&a) => {}
            Some(a) => {
                later.insert(a);
            }
        }
    }
    (without_nested(send), later.into_iter().collect())
}

/// Whether a regular file among `paths` (relative to `root`; directories
/// with their subtrees, symlinks not followed) has hard links whose other
/// names are not among them: `-H` only links names sent in the same
/// transfer, so sent alone such a file would arrive as a separate copy.
pub(super) fn links_outside(root: &Path, paths: &[PathBuf]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut groups: std::collections::HashMap<(u64, u64), (u64, BTreeSet<PathBuf>)> =
        std::collections::HashMap::new();
    let mut stack: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
    while let Some(p) = stack.pop() {
        let Ok(m) = p.symlink_metadata() else {
            continue;
        };
        if m.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if m.is_file() && m.nlink() > 1 {
            groups
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| (m.nlink(), BTreeSet::new()))
                .1
                .insert(p);
        }
    }
    groups
        .values()
        .any(|(links, names)| (names.len() as u64) < *links)
}

/// Whether `path` is a mount point (one test for the source's guard and the gate's).
pub(crate) use crate::volumes::is_mount_point;

/// The manifest form of the tree under `root`: files, symlinks (not
/// followed), special files (FIFOs, sockets, device nodes: `rsync -a`
/// carries them) and empty directories, named by their path relative to `root`
/// with `/` ([`escape_name`]d bytes), versioned by their mtime in whole
/// seconds ([`DIR`] for directories). A missing `root` is an error.
pub(crate) fn list_local(root: &Path) -> std::io::Result<Listing> {
    list_local_stamped(root).map(|(items, _)| items)
}

/// [`list_local`] with every item's [`Stamp`].
pub(crate) fn list_local_stamped(root: &Path) -> std::io::Result<(Listing, Stamps)> {
    pub(super) fn walk(
        dir: &Path,
        prefix: &str,
        out: &mut (Listing, Stamps),
    ) -> std::io::Result<bool> {
        let mut any = false;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            any = true;
            let name = escape_name(entry.file_name().as_bytes());
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = match entry.path().symlink_metadata() {
                Ok(m) => m,
                // Vanished while listing: not there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                match walk(&entry.path(), &rel, out) {
                    Ok(true) => {}
                    Ok(false) => {
                        out.0.insert(rel.clone(), dir_item());
                        out.1.insert(rel, Stamp::of(&meta));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            } else if let Some(item) = item_of(&meta) {
                out.0.insert(rel.clone(), item);
                out.1.insert(rel, Stamp::of(&meta));
            }
        }
        Ok(any)
    }
    let mut out = (Listing::new(), Stamps::new());
    walk(root, "", &mut out)?;
    Ok(out)
}

/// The manifest item of an (empty) directory.
pub(crate) fn dir_item() -> Item {
    Item {
        size: 0,
        version: DIR.to_string(),
    }
}

/// The manifest item of a file, symlink or special file (FIFO, socket,
/// device node: `rsync -a` carries them, so a pass must also delete them);
/// `None` for a directory.
pub(crate) fn item_of(meta: &std::fs::Metadata) -> Option<Item> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let ft = meta.file_type();
    let special = ft.is_fifo() || ft.is_socket() || ft.is_char_device() || ft.is_block_device();
    (ft.is_file() || ft.is_symlink() || special).then(|| Item {
        size: meta.len(),
        version: meta.mtime().to_string(),
    })
}
