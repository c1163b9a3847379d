//! What a transfer carried to the peer, as the book records it: the stats
//! of a batch's paths before and after it ([`Update`]s, kept only where
//! they agree), and the book after a batch or a full pass — less what the
//! peer's receiver did not create, of which the book keeps what it had.

use super::*;

/// How a batch changes the manifest once its transfer succeeded (from stats
/// taken before and after it that agree).
#[derive(Debug, PartialEq)]
pub(super) enum Update {
    /// A file, symlink or empty directory with its version and stamp.
    Set(String, Item, Stamp),
    /// A directory (sent with its subtree, `--delete` inside it): its
    /// entries become this listing (names relative to the root), as the
    /// peer's copy of it now is.
    Subtree(String, Listing, Stamps),
    /// A directory that changed while it was sent: entries at or under the
    /// name that are not among these (neither listed before nor after the
    /// transfer) are gone from the peer (`--delete`); those kept keep their
    /// older entries (the version sent is unknown).
    Prune(String, BTreeSet<String>),
    /// Gone: the name and everything under it leave the manifest.
    Remove(String),
}

/// Stats a batch's paths (relative to `root`) for the manifest.
pub(super) fn stat_paths(root: &Path, paths: &[PathBuf]) -> Vec<Update> {
    paths
        .iter()
        .map(|p| {
            let name = escape_name(p.as_os_str().as_bytes());
            let full = root.join(p);
            match full.symlink_metadata() {
                Ok(m) if m.is_dir() => {
                    let (items, stamps) = list_local_stamped(&full).unwrap_or_default();
                    if items.is_empty() {
                        return Update::Set(name, dir_item(), Stamp::of(&m));
                    }
                    let under = |k: String| format!("{name}/{k}");
                    Update::Subtree(
                        name.clone(),
                        items.into_iter().map(|(k, v)| (under(k), v)).collect(),
                        stamps.into_iter().map(|(k, v)| (under(k), v)).collect(),
                    )
                }
                Ok(m) => match item_of(&m) {
                    Some(item) => Update::Set(name, item, Stamp::of(&m)),
                    None => Update::Remove(name),
                },
                Err(_) => Update::Remove(name),
            }
        })
        .collect()
}

/// The updates of a transfer from the stats `before` and `after` it. A
/// path that changed in between (the version sent is unknown) is left as
/// the manifest had it: its old stamp no longer matches, so a later resync
/// compares its content, and the guard still counts its entries.
pub(super) fn confirmed_updates(before: Vec<Update>, after: Vec<Update>) -> Vec<Update> {
    let mut out = Vec::new();
    for (b, a) in before.into_iter().zip(after) {
        match (b, a) {
            (b, a) if a == b => out.push(b),
            (Update::Subtree(name, items, mut stamps), Update::Subtree(_, now_items, now)) => {
                let moved: BTreeSet<String> = items
                    .keys()
                    .chain(now_items.keys())
                    .filter(|k| stamps.get(*k).is_none_or(|st| now.get(*k) != Some(st)))
                    .cloned()
                    .collect();
                out.push(Update::Prune(name, moved));
                stamps.retain(|k, st| now.get(k) == Some(st));
                for (k, item) in items {
                    if let Some(st) = stamps.remove(&k) {
                        out.push(Update::Set(k, item, st));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Applies a successful batch's [`Update`]s to the manifest.
pub(super) fn apply_updates(book: &mut Book, updates: Vec<Update>) {
    pub(super) fn remove_under(book: &mut Book, name: &str) {
        let prefix = format!("{name}/");
        let under: Vec<String> = book
            .items
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in under {
            book.items.remove(&k);
            book.stamps.remove(&k);
        }
    }
    for u in updates {
        match u {
            Update::Set(name, item, stamp) => {
                remove_under(book, &name);
                book.items.insert(name.clone(), item);
                book.stamps.insert(name, stamp);
            }
            Update::Subtree(name, sub, stamps) => {
                book.items.remove(&name);
                book.stamps.remove(&name);
                remove_under(book, &name);
                book.items.extend(sub);
                book.stamps.extend(stamps);
            }
            Update::Prune(name, keep) => {
                if !keep.contains(&name) {
                    book.items.remove(&name);
                    book.stamps.remove(&name);
                }
                let prefix = format!("{name}/");
                let gone: Vec<String> = book
                    .items
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .filter(|(k, _)| !keep.contains(*k))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in gone {
                    book.items.remove(&k);
                    book.stamps.remove(&k);
                }
            }
            Update::Remove(name) => {
                book.items.remove(&name);
                book.stamps.remove(&name);
                remove_under(book, &name);
            }
        }
    }
}

/// The book after a successful batch: the updates of its paths from the
/// stats `before` and `after` it, less the names the peer did not create
/// (`skipped`), of which the book keeps what it had.
pub(super) fn after_batch(
    book: &mut Book,
    before: Vec<Update>,
    after: Vec<Update>,
    skipped: &[String],
) {
    let kept = entries_of(book, skipped);
    apply_updates(book, confirmed_updates(before, after));
    restore(book, skipped, kept);
    book.dirty = true;
}

/// The book after a successful full pass: the source's listing before it
/// (`items`, `stamps`), where only what did not change while the pass ran
/// (its stamp `after` the same) and what the peer created was carried;
/// every other name keeps the book's older entry, if any.
pub(super) fn after_pass(
    book: &mut Book,
    mut items: Listing,
    mut stamps: Stamps,
    after: &Stamps,
    skipped: &[String],
) {
    let changed: Vec<String> = stamps
        .iter()
        .filter(|(name, st)| after.get(*name) != Some(*st))
        .map(|(name, _)| name.clone())
        .chain(skipped.iter().cloned())
        .collect();
    for name in changed {
        items.remove(&name);
        stamps.remove(&name);
        if let Some(old) = book.items.get(&name) {
            items.insert(name.clone(), old.clone());
            if let Some(st) = book.stamps.get(&name) {
                stamps.insert(name, *st);
            }
        }
    }
    book.items = items;
    book.stamps = stamps;
    book.dirty = true;
}

type Entries = Vec<Option<(Item, Option<Stamp>)>>;

fn entries_of(book: &Book, names: &[String]) -> Entries {
    names
        .iter()
        .map(|n| {
            book.items
                .get(n)
                .map(|i| (i.clone(), book.stamps.get(n).copied()))
        })
        .collect()
}

fn restore(book: &mut Book, names: &[String], kept: Entries) {
    for (name, entry) in names.iter().zip(kept) {
        book.items.remove(name);
        book.stamps.remove(name);
        if let Some((item, stamp)) = entry {
            book.items.insert(name.clone(), item);
            if let Some(st) = stamp {
                book.stamps.insert(name.clone(), st);
            }
        }
    }
}
