//! The push side's [`Sent`] record: names written before each transfer
//! starts (a batch's paths; `full` for a full pass), dropped once a saved
//! manifest confirms them as they are here (see [`crate::replicate::sent`]).

use super::*;
use crate::replicate::manifest::unescape_name;
use crate::replicate::sent::Sent;

/// The record with its file; shared with the blocking tasks that write it.
#[derive(Default)]
pub(super) struct SentBook {
    /// `None`: no manifest, nothing is recorded.
    file: Option<PathBuf>,
    loaded: bool,
    record: Sent,
    /// A full pass ended and its confirmations are in the book: at the
    /// next save its `full` ends, and these names (changed while it ran,
    /// sent in some version or not) are recorded instead.
    full_done: Option<BTreeSet<String>>,
}

impl SentBook {
    pub(super) fn beside(manifest: Option<&Path>) -> Arc<Mutex<SentBook>> {
        Arc::new(Mutex::new(SentBook {
            file: manifest.map(Sent::beside),
            ..SentBook::default()
        }))
    }

    fn loaded(&mut self) -> Option<PathBuf> {
        let file = self.file.clone()?;
        if !self.loaded {
            self.record = Sent::load(&file);
            self.loaded = true;
        }
        Some(file)
    }

    /// Records `names` (or `full`) before a transfer.
    fn note(&mut self, names: &[String], full: bool) -> Result<(), AgentError> {
        let Some(file) = self.loaded() else {
            return Ok(());
        };
        let changed = if full {
            self.full_done = None;
            !std::mem::replace(&mut self.record.full, true)
        } else {
            self.record.add(names.iter().map(String::as_str))
        };
        if changed {
            self.record.save(&file)?;
        }
        Ok(())
    }

    /// After `saved` is on disk: drops what it confirms as it is here
    /// (under `root`), keeping what a transfer still holds or waits to
    /// send (`busy`).
    fn compact(&mut self, root: &Path, saved: &Manifest, busy: &Sent) -> Result<(), AgentError> {
        let Some(file) = self.loaded() else {
            return Ok(());
        };
        let before = self.record.clone();
        if let Some(changed) = self.full_done.take() {
            self.record.full = false;
            self.record.add(changed.iter().map(String::as_str));
        }
        if !self.record.full {
            let mut left = BTreeSet::new();
            for name in std::mem::take(&mut self.record.names) {
                if busy.covers(&name) {
                    left.insert(name);
                } else {
                    left.extend(unconfirmed(root, saved, &name));
                }
            }
            self.record.names = left;
        }
        if self.record != before {
            self.record.save(&file)?;
        }
        Ok(())
    }
}

/// What of `name` under `root` `saved` does not confirm as it is: nothing
/// (confirmed, or gone), the name itself (a file; one that cannot be
/// read), or a directory's entries that are not confirmed — a directory
/// named once does not keep its whole subtree in doubt for good.
fn unconfirmed(root: &Path, saved: &Manifest, name: &str) -> Vec<String> {
    let path = root.join(std::ffi::OsStr::from_bytes(&unescape_name(name)));
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(_) => return vec![name.to_string()],
    };
    let whole = |ok: bool| {
        if ok {
            Vec::new()
        } else {
            vec![name.to_string()]
        }
    };
    if !meta.is_dir() {
        return whole(
            item_of(&meta)
                .is_some_and(|item| saved.unchanged(name, &item, Some(&Stamp::of(&meta)))),
        );
    }
    match list_local_stamped(&path) {
        Ok((items, _)) if items.is_empty() => {
            whole(saved.unchanged(name, &dir_item(), Some(&Stamp::of(&meta))))
        }
        Ok((items, stamps)) => items
            .iter()
            .filter(|(k, item)| !saved.unchanged(&format!("{name}/{k}"), item, stamps.get(*k)))
            .map(|(k, _)| format!("{name}/{k}"))
            .collect(),
        Err(_) => vec![name.to_string()],
    }
}

fn escaped(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| escape_name(p.as_os_str().as_bytes()))
        .collect()
}

impl Shared {
    /// Reads the record from its file again at the next use (a start: a
    /// resync since may have ended it).
    pub(super) fn reload_sent(&self) {
        let mut b = self.sent.lock().unwrap();
        b.loaded = false;
        b.full_done = None;
    }

    /// Records a batch's paths before it is sent. A record that cannot be
    /// written is said and the batch goes on (holding it back would let
    /// the lag grow for a bookkeeping failure; the failback then treats the
    /// names as before this record existed).
    pub(super) async fn note_sending(&self, paths: &[PathBuf]) {
        self.write_sent(escaped(paths), false).await
    }

    /// Records that a full pass is about to send anything.
    pub(super) async fn note_full_pass(&self) {
        self.write_sent(Vec::new(), true).await
    }

    async fn write_sent(&self, names: Vec<String>, full: bool) {
        let sent = self.sent.clone();
        let r = tokio::task::spawn_blocking(move || sent.lock().unwrap().note(&names, full)).await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(cause = %e, "cannot record what this transfer sends before it is confirmed")
            }
            Err(e) => warn!(cause = %e, "the task recording what a transfer sends failed"),
        }
    }

    /// Names the peer's receiver said it did not create (a device node
    /// a receiver that is not root skips): not at the peer, whatever the
    /// book says. No other batch holds them while this one runs.
    pub(super) fn not_at_peer(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let mut b = self.sent.lock().unwrap();
        let Some(file) = b.loaded() else {
            return;
        };
        let before = b.record.names.len();
        b.record.names.retain(|n| !names.contains(n));
        if b.record.names.len() != before {
            if let Err(e) = b.record.save(&file) {
                warn!(cause = %e, "cannot update the record of what was sent unconfirmed (it keeps more than it must)");
            }
        }
    }

    /// A full pass ended and the book took its confirmations: its `full`
    /// ends with the next save, the names changed while it ran recorded.
    pub(super) fn full_pass_confirmed(&self) {
        let changed: BTreeSet<String> = {
            let st = self.state.lock().unwrap();
            st.paths
                .iter()
                .chain(st.batch_paths.iter())
                .map(|p| escape_name(p.as_os_str().as_bytes()))
                .collect()
        };
        self.sent.lock().unwrap().full_done = Some(changed);
        if let Some(b) = self.book.lock().unwrap().as_mut() {
            b.dirty = true;
        }
    }

    /// What the compaction after a save must keep whatever the book says:
    /// the paths pending or in a running batch (and what is under them).
    pub(super) fn busy_names(&self) -> Sent {
        let st = self.state.lock().unwrap();
        let mut busy = Sent::default();
        for p in st.paths.iter().chain(st.batch_paths.iter()) {
            busy.names.insert(escape_name(p.as_os_str().as_bytes()));
        }
        busy
    }
}

/// The blocking part of a save: the manifest, then the record's compaction.
pub(super) fn save_and_compact(
    sent: &Mutex<SentBook>,
    root: &Path,
    path: &Path,
    manifest: &Manifest,
    busy: &Sent,
) -> Result<(), AgentError> {
    manifest.save(path)?;
    if let Err(e) = sent.lock().unwrap().compact(root, manifest, busy) {
        warn!(cause = %e, "cannot update the record of what was sent unconfirmed (it keeps more than it must)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_manifest_drops_what_it_confirms_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        std::fs::write(root.join("b.txt"), b"b").unwrap();
        std::fs::write(root.join("d/x"), b"x").unwrap();
        let manifest_path = dir.path().join("m.json");
        let book = SentBook::beside(Some(&manifest_path));
        let names: Vec<String> = ["a.txt", "b.txt", "d", "gone.txt", "busy.txt"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        book.lock().unwrap().note(&names, false).unwrap();
        assert_eq!(
            Sent::load(&Sent::beside(&manifest_path)).names.len(),
            5,
            "on disk before the transfer"
        );

        // The manifest confirms a.txt and d (whole), not b.txt's current state.
        let (items, stamps) = list_local_stamped(&root).unwrap();
        let mut m = Manifest {
            stamps: stamps.clone(),
            ..Manifest::confirmed_escaped(items)
        };
        std::fs::write(root.join("b.txt"), b"bb").unwrap();
        std::fs::write(root.join("busy.txt"), b"z").unwrap();
        let (bi, bs) = list_local_stamped(&root).unwrap();
        m.items.insert("busy.txt".into(), bi["busy.txt"].clone());
        m.stamps.insert("busy.txt".into(), bs["busy.txt"]);
        let mut busy = Sent::default();
        busy.names.insert("busy.txt".into());
        save_and_compact(&book, &root, &manifest_path, &m, &busy).unwrap();
        let left = Sent::load(&Sent::beside(&manifest_path));
        assert_eq!(
            left.names.iter().map(String::as_str).collect::<Vec<_>>(),
            ["b.txt", "busy.txt"],
            "b.txt changed since, busy.txt is still being sent"
        );

        // A full pass: everything, until one ended and a save confirmed it.
        book.lock().unwrap().note(&[], true).unwrap();
        assert!(Sent::load(&Sent::beside(&manifest_path)).full);
        let (items, stamps) = list_local_stamped(&root).unwrap();
        let m = Manifest {
            stamps,
            ..Manifest::confirmed_escaped(items)
        };
        let none = Sent::default();
        save_and_compact(&book, &root, &manifest_path, &m, &none).unwrap();
        assert!(
            Sent::load(&Sent::beside(&manifest_path)).full,
            "no full pass ended: still full"
        );
        book.lock().unwrap().full_done = Some(BTreeSet::from(["d/x".to_string()]));
        std::fs::write(root.join("d/x"), b"changed while the pass ran").unwrap();
        save_and_compact(&book, &root, &manifest_path, &m, &none).unwrap();
        let left = Sent::load(&Sent::beside(&manifest_path));
        assert!(!left.full);
        assert_eq!(
            left.names.iter().map(String::as_str).collect::<Vec<_>>(),
            ["d/x"]
        );
        std::fs::remove_file(root.join("d/x")).unwrap();
        save_and_compact(&book, &root, &manifest_path, &m, &none).unwrap();
        assert!(
            !Sent::beside(&manifest_path).exists(),
            "nothing left: no file"
        );
    }

    #[test]
    fn a_directory_narrows_to_what_is_unconfirmed_and_a_name_noted_while_full_stays() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        std::fs::create_dir_all(root.join("up/2026")).unwrap();
        std::fs::write(root.join("up/2026/a"), b"a").unwrap();
        std::fs::write(root.join("up/2026/b"), b"b").unwrap();
        let manifest_path = dir.path().join("m.json");
        let book = SentBook::beside(Some(&manifest_path));
        book.lock()
            .unwrap()
            .note(&["up".to_string()], false)
            .unwrap();
        let (items, stamps) = list_local_stamped(&root).unwrap();
        let m = Manifest {
            stamps,
            ..Manifest::confirmed_escaped(items)
        };
        std::fs::write(root.join("up/2026/b"), b"b, written again").unwrap();
        save_and_compact(&book, &root, &manifest_path, &m, &Sent::default()).unwrap();
        let left = Sent::load(&Sent::beside(&manifest_path));
        assert_eq!(
            left.names.iter().map(String::as_str).collect::<Vec<_>>(),
            ["up/2026/b"],
            "the directory no longer holds up/2026/a in doubt"
        );

        // A full pass starts; a batch is noted while it runs; the pass ends.
        book.lock().unwrap().note(&[], true).unwrap();
        std::fs::write(root.join("late.txt"), b"batched while full").unwrap();
        book.lock()
            .unwrap()
            .note(&["late.txt".to_string()], false)
            .unwrap();
        book.lock().unwrap().full_done = Some(BTreeSet::new());
        save_and_compact(&book, &root, &manifest_path, &m, &Sent::default()).unwrap();
        let left = Sent::load(&Sent::beside(&manifest_path));
        assert!(!left.full);
        assert!(
            left.covers("late.txt"),
            "sent while full, not confirmed: {left:?}"
        );
    }
}
