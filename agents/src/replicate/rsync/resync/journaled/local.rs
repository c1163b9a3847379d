//! What is here at or under the journal's names, read before the
//! journaled pass touches anything: which names stay inside the tree
//! ([`inside`]), which are reached through a link ([`through_link`]), and
//! every local item under them with its stamp ([`local_items`]), those the
//! manifest does not call unchanged apart.

use super::*;

/// Whether an escaped name is `.` or a relative path without `.`, `..` or
/// empty components (nothing a join could take outside the tree).
pub(super) fn inside(name: &str) -> bool {
    if name == ROOT {
        return true;
    }
    let raw = unescape_name(name);
    !raw.is_empty()
        && !raw.contains(&0)
        && raw
            .split(|b| *b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// Whether `name` (escaped, relative) is reached here through a symbolic
/// link or a non-directory: one of its parents inside `root` is not a real
/// directory. Such a name is no item of the tree (a pass carries the link
/// itself), and a path through it may lead outside the tree: nothing is
/// read, counted or deleted there.
pub(super) fn through_link(root: &Path, name: &str) -> bool {
    let raw = unescape_name(name);
    let mut parent = root.to_path_buf();
    let parts: Vec<&[u8]> = raw.split(|b| *b == b'/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        parent.push(OsStr::from_bytes(part));
        match parent.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            // A link, a file, or nothing: not a directory of this tree.
            _ => return true,
        }
    }
    false
}

/// Every item here at or under `names` (files, symlinks, special files,
/// empty directories, as a pass lists them) with its stamp, and those of them
/// the manifest does not call unchanged; `Err` says what cannot be read,
/// or (`hard_links`: the passes carry links) that a file among them has
/// other hard links here: the last pass linked them because the peer's
/// were, and a write there through the journaled name changed the other
/// names too, unnamed when the written name was then removed or replaced
/// (the peer's demote sees no link left to refuse).
pub(super) fn local_items(
    root: &Path,
    names: &[String],
    manifest: &Manifest,
    hard_links: bool,
) -> Result<(Listing, Stamps, Vec<String>), String> {
    let mut moved = Vec::new();
    let mut here = Listing::new();
    let mut stamps = Stamps::new();
    let mut stack: Vec<String> = names.iter().filter(|n| *n != ROOT).cloned().collect();
    while let Some(name) = stack.pop() {
        if here.contains_key(&name) {
            continue;
        }
        if through_link(root, &name) {
            // Not an item of this tree: what a link here points at.
            continue;
        }
        let path = root.join(OsStr::from_bytes(&unescape_name(&name)));
        let meta = match path.symlink_metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot stat {name} here: {e}")),
        };
        let item = if meta.is_dir() {
            let entries: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| format!("cannot list {name} here: {e}"))?
                .flatten()
                .collect();
            if !entries.is_empty() {
                for e in entries {
                    stack.push(format!("{name}/{}", escape_name(e.file_name().as_bytes())));
                }
                continue;
            }
            dir_item()
        } else {
            if hard_links && meta.is_file() && std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
                return Err(format!(
                    "{name} here has other hard links (the peer may have changed them under names it did not journal)"
                ));
            }
            match item_of(&meta) {
                Some(i) => i,
                // (a directory is handled above)
                None => return Err(format!("{name} here is of no kind a pass carries")),
            }
        };
        let stamp = Stamp::of(&meta);
        if !manifest.unchanged(&name, &item, Some(&stamp)) {
            moved.push(name.clone());
        }
        here.insert(name.clone(), item);
        stamps.insert(name, stamp);
    }
    Ok((here, stamps, moved))
}
