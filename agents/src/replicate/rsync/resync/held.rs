//! The pair manifest as resyncers hold it between their passes (one holder
//! per file in the process, since every resync command builds its own
//! resyncer): read from
//! its file once, then handed from pass to pass in memory, so the
//! cut-over's final pass does not parse the whole manifest again (20,000
//! entries: about 15 ms, plus the copies) before it can start. The file
//! stays the truth: every pass still writes it (atomically) before it
//! reports, and the copy in memory is used only while the file is the
//! one this holder wrote or read (same inode, size and mtime); anything
//! else — another writer, an operator's edit — makes it read again.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::replicate::manifest::Manifest;
use crate::AgentError;

/// What identifies one version of the manifest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

/// The manifest at `path`, held in memory between passes.
pub(super) struct HeldManifest {
    path: PathBuf,
    held: Mutex<Option<(FileId, Manifest)>>,
}

impl HeldManifest {
    /// The holder of the manifest at `path`, one per file in the process:
    /// each resync command builds its own resyncer, and the final pass's
    /// must find what the resync step's passes left.
    pub(super) fn of(path: PathBuf) -> Arc<HeldManifest> {
        static ALL: Mutex<BTreeMap<PathBuf, Arc<HeldManifest>>> = Mutex::new(BTreeMap::new());
        ALL.lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(path.clone())
            .or_insert_with(|| {
                Arc::new(HeldManifest {
                    path,
                    held: Mutex::new(None),
                })
            })
            .clone()
    }

    /// The manifest's file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest, taken out of the holder (a pass owns it until it
    /// [`HeldManifest::store`]s the next one; a pass that fails leaves the
    /// holder empty, and the next reads the file). Blocking.
    pub(super) fn take(&self) -> Result<Manifest, AgentError> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((id, m)) = held {
            if FileId::of(&self.path) == Some(id) {
                return Ok(m);
            }
        }
        Manifest::load_escaped(&self.path)
    }

    /// Gives back a taken manifest that a pass left as it was (nothing to
    /// write). Blocking.
    pub(super) fn put_back(&self, m: Manifest) {
        if let Some(id) = FileId::of(&self.path) {
            *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, m));
        }
    }

    /// Writes `m` to the file (atomically, before anything is reported)
    /// and keeps it for the next pass. Blocking.
    pub(super) fn store(&self, m: Manifest) -> Result<(), AgentError> {
        m.save(&self.path)?;
        if let Some(id) = FileId::of(&self.path) {
            *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, m));
        }
        Ok(())
    }
}

impl super::RsyncResyncer {
    /// [`HeldManifest::take`] off the runtime.
    pub(super) async fn take_manifest(&self) -> Result<Manifest, AgentError> {
        let held = self.manifest.clone();
        tokio::task::spawn_blocking(move || held.take())
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?
    }

    /// [`HeldManifest::store`] off the runtime.
    pub(super) async fn store_manifest(&self, m: Manifest) -> Result<(), AgentError> {
        let held = self.manifest.clone();
        tokio::task::spawn_blocking(move || held.store(m))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::manifest::Item;

    fn one(name: &str) -> Manifest {
        let mut items = crate::replicate::manifest::Listing::new();
        items.insert(
            name.to_string(),
            Item {
                size: 1,
                version: "1".into(),
            },
        );
        Manifest::confirmed_escaped(items)
    }

    #[test]
    fn hands_the_stored_manifest_on_and_rereads_a_file_changed_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let h = HeldManifest::of(path.clone());
        assert!(
            Arc::ptr_eq(&h, &HeldManifest::of(path.clone())),
            "one per file"
        );
        assert!(h.take().unwrap().items.is_empty(), "no file: empty");
        h.store(one("a")).unwrap();
        assert!(h.take().unwrap().items.contains_key("a"));
        // Taken: the next take reads the file (the same content).
        let m = h.take().unwrap();
        assert!(m.items.contains_key("a"));
        h.put_back(m);
        assert!(h.take().unwrap().items.contains_key("a"));
        h.store(one("a")).unwrap();
        // Another writer replaces the file: its version wins.
        one("b").save(&path).unwrap();
        let m = h.take().unwrap();
        assert!(m.items.contains_key("b") && !m.items.contains_key("a"));
    }
}
