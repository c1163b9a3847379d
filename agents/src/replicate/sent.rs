//! What a push sent to the peer that its manifest does not confirm yet
//! (`MANIFEST.sent`, beside the pair manifest).
//!
//! A push has no local proof of arrival: rsync names an item before it
//! sends it, and the manifest that confirms a batch is saved after the
//! batch ended (at most a second later). A site lost during a transfer, or
//! in that second, leaves items that may have reached the peer, though its
//! manifest never confirmed them. At the failback they looked like writes
//! of this site that never left it, and the `keep` policy left them in
//! place — so an item that did arrive, and that the peer's users deleted
//! while the peer was the active site, came back with the next push: a
//! delete acknowledged at the active site, undone.
//!
//! The record closes that gap. Before a transfer starts, the names it may
//! carry are written here durably (a full pass writes `full`: anything may
//! be at the peer); once the manifest that confirms them is saved, they are
//! dropped again. The failback's resync ([`Sent::covers`]) moves such an
//! item, where the peer lacks it, to the quarantine instead of keeping it in
//! place (`sent_unconfirmed`): the active site's deletion wins, as its
//! version wins a conflict, and this site's copy is not lost. It errs on the
//! safe side only: a name recorded that never arrived is quarantined, never
//! deleted; a record that cannot be read counts as `full`.
//!
//! A resync pass that completed ends the record (the pair is settled), and
//! so does a Swift round that did every copy and delete it owed; an rsync
//! full pass that completed and was confirmed ends its `full`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::AgentError;

/// More names than this and the record says `full` instead (it stays small).
pub const MAX_NAMES: usize = 100_000;

/// The record: names as the manifest keys them ([`super::manifest::escape_name`]d,
/// relative to the tree); a name covers everything under it (a directory
/// sent with its subtree).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// A full pass was sent and not confirmed: any item may be at the peer.
    #[serde(default)]
    pub full: bool,
    #[serde(default)]
    pub names: BTreeSet<String>,
}

impl Sent {
    /// The record's file beside the manifest at `manifest`.
    pub fn beside(manifest: &Path) -> PathBuf {
        let mut p = manifest.as_os_str().to_owned();
        p.push(".sent");
        PathBuf::from(p)
    }

    /// Loads the record; a missing file is an empty one; a file that cannot
    /// be read or parsed counts as `full` (said in the log): what it held
    /// is unknown, and only the safe side may be guessed.
    pub fn load(path: &Path) -> Sent {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    warn!(file = %path.display(), cause = %e, "the record of what was sent unconfirmed is not readable: every item may be at the peer");
                    Sent::everything()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Sent::default(),
            Err(e) => {
                warn!(file = %path.display(), cause = %e, "the record of what was sent unconfirmed cannot be read: every item may be at the peer");
                Sent::everything()
            }
        }
    }

    fn everything() -> Sent {
        Sent {
            full: true,
            names: BTreeSet::new(),
        }
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        !self.full && self.names.is_empty()
    }

    /// Whether `name` (or a directory above it) may be at the peer unconfirmed.
    pub fn covers(&self, name: &str) -> bool {
        if self.full || self.names.contains(name) {
            return true;
        }
        let mut at = name;
        while let Some(i) = at.rfind('/') {
            at = &at[..i];
            if self.names.contains(at) {
                return true;
            }
        }
        false
    }

    /// Whether the object `name` (`container/object`: a `/` in it is no
    /// directory) may be at the peer unconfirmed.
    pub fn covers_object(&self, name: &str) -> bool {
        self.full || self.names.contains(name)
    }

    /// Adds `names` (more than [`MAX_NAMES`] in all: `full`); whether what
    /// it says changed. While `full`, the names are kept all the same (not
    /// worth a write: `full` covers them): they must stay once it ends.
    pub fn add<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) -> bool {
        let mut changed = false;
        for n in names {
            changed |= self.names.insert(n.to_string());
        }
        if self.names.len() > MAX_NAMES {
            let was_full = self.full;
            *self = Sent::everything();
            return !was_full;
        }
        changed && !self.full
    }

    /// Writes it durably ([`super::manifest::save_json`]), or removes the
    /// file when nothing is recorded.
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        if !self.is_empty() {
            return super::manifest::save_json(path, self);
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AgentError::Manifest {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// Adds `names` to the record beside `manifest` (the Swift copier, before
/// a round's copies start); a failure is said, and the copies go on.
pub fn note_beside<'a>(manifest: &Path, names: impl IntoIterator<Item = &'a str>) {
    let file = Sent::beside(manifest);
    let mut sent = Sent::load(&file);
    if sent.add(names) {
        if let Err(e) = sent.save(&file) {
            warn!(cause = %e, "cannot record what this round copies before it is confirmed");
        }
    }
}

/// Drops from the record beside `manifest` the names `settled` says a saved
/// manifest now confirms (or that are gone here).
pub fn settle_beside(manifest: &Path, settled: impl Fn(&str) -> bool) {
    let file = Sent::beside(manifest);
    let mut sent = Sent::load(&file);
    if sent.full {
        return;
    }
    let before = sent.names.len();
    sent.names.retain(|n| !settled(n));
    if sent.names.len() != before {
        if let Err(e) = sent.save(&file) {
            warn!(cause = %e, "cannot update the record of what was sent unconfirmed (it keeps more than it must)");
        }
    }
}

/// Ends the record beside `manifest` (a resync pass that completed, a
/// Swift round that did all it owed).
pub fn end_beside(manifest: &Path) {
    if let Err(e) = Sent::default().save(&Sent::beside(manifest)) {
        warn!(cause = %e, "cannot remove the record of what was sent unconfirmed (the next pass reads it again)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_covers_itself_and_what_is_under_it() {
        let mut s = Sent::default();
        assert!(s.add(["dir", "a.txt"]));
        assert!(!s.add(["a.txt"]), "nothing new");
        assert!(s.covers("a.txt"));
        assert!(s.covers("dir/x/y.bin"));
        assert!(!s.covers("dirt/y.bin"), "a prefix is not a parent");
        assert!(!s.covers("b.txt"));
        s.full = true;
        assert!(s.covers("b.txt"));
    }

    #[test]
    fn too_many_names_say_full_and_an_unreadable_record_counts_as_full() {
        let mut s = Sent::default();
        let names: Vec<String> = (0..=MAX_NAMES).map(|i| format!("f{i}")).collect();
        assert!(s.add(names.iter().map(String::as_str)));
        assert!(s.full && s.names.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let path = Sent::beside(&dir.path().join("m.json"));
        assert_eq!(path, dir.path().join("m.json.sent"));
        assert_eq!(Sent::load(&path), Sent::default(), "missing: empty");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(Sent::load(&path).covers("anything"));

        let mut s = Sent::default();
        s.add(["x"]);
        s.save(&path).unwrap();
        assert_eq!(Sent::load(&path), s);
        Sent::default().save(&path).unwrap();
        assert!(!path.exists(), "an empty record leaves no file");
    }
}
