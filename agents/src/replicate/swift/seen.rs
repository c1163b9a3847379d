//! What the Swift plans remember beside the pair's manifest of changes
//! that keep the ETag — a metadata-only POST, the same body written again
//! with new metadata — which show only as a newer listing timestamp:
//!
//! - the copier's listing timestamp of each source object when it was last
//!   confirmed at the destination (`State::seen`, `MANIFEST.swift-seen`):
//!   a change made while the agent was down is still seen, and copied,
//!   after a restart;
//! - the peer's mark (`MANIFEST.swift-peer-mark`): the newest listing
//!   timestamp of the peer cluster when this site last compared all of it
//!   (the copier's last good round toward it, the resync's last good pass
//!   from it). A peer object with the same ETag listed later than the mark
//!   may have been changed there: the resync asks the peer (HEAD) for its
//!   origin timestamp, and fetches it when it is newer than the recorded
//!   one. Objects listed at or before the mark are not asked about.
//!
//! Both files are hints, not the pair's record: a missing or unreadable one
//! is an empty memory (said once in the log; rewritten after the next good
//! round). Without a mark every peer object with the same ETag and a
//! recorded version is asked about once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::AgentError;

/// Where the memory of `manifest` is kept.
pub(super) fn beside(manifest: &Path) -> PathBuf {
    let mut p = manifest.as_os_str().to_owned();
    p.push(".swift-seen");
    PathBuf::from(p)
}

/// The memory kept beside `manifest` (empty when there is none, or when it
/// cannot be read: said in the log).
pub(super) fn load(manifest: &Path) -> HashMap<String, u64> {
    let path = beside(manifest);
    match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<HashMap<String, u64>>(&bytes) {
            Ok(m) => m,
            Err(e) => {
                warn!(file = %path.display(), cause = %e, "the swift copier's listing timestamps cannot be read: started without them (a metadata-only change made while the agent was down may not be copied); the file is rewritten after the next round");
                HashMap::new()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
        Err(e) => {
            warn!(file = %path.display(), cause = %e, "the swift copier's listing timestamps cannot be read: started without them");
            HashMap::new()
        }
    }
}

/// Write the memory beside `manifest`, durably (sorted, so the same memory
/// is the same file).
pub(super) fn save(manifest: &Path, seen: &HashMap<String, u64>) -> Result<(), AgentError> {
    let path = beside(manifest);
    let err = |reason: String| AgentError::Manifest {
        path: path.display().to_string(),
        reason,
    };
    let sorted: BTreeMap<&String, &u64> = seen.iter().collect();
    let body = serde_json::to_vec(&sorted).map_err(|e| err(e.to_string()))?;
    warden_config::durable::replace(&path, &body).map_err(|e| err(e.to_string()))
}

/// The peer's mark: its newest listing timestamp when last compared in
/// full, and which cluster it is of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PeerMark {
    /// `cluster_label` of the peer.
    pub(crate) peer: String,
    /// The newest listing timestamp (µs) of the peer's placement containers.
    pub(crate) newest_us: u64,
}

fn mark_path(manifest: &Path) -> PathBuf {
    let mut p = manifest.as_os_str().to_owned();
    p.push(".swift-peer-mark");
    PathBuf::from(p)
}

/// The mark kept beside `manifest` for `peer`; `None` when there is none,
/// it is another cluster's, or it cannot be read.
pub(crate) fn load_mark(manifest: &Path, peer: &str) -> Option<u64> {
    let path = mark_path(manifest);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(file = %path.display(), cause = %e, "the swift peer mark cannot be read: every object with the same ETag is asked about");
            return None;
        }
    };
    match serde_json::from_slice::<PeerMark>(&bytes) {
        Ok(m) if m.peer == peer => Some(m.newest_us),
        Ok(_) => None,
        Err(e) => {
            warn!(file = %path.display(), cause = %e, "the swift peer mark cannot be read: every object with the same ETag is asked about");
            None
        }
    }
}

/// Keep `newest_us` as `peer`'s mark beside `manifest` (durably).
pub(crate) fn save_mark(manifest: &Path, peer: &str, newest_us: u64) -> Result<(), AgentError> {
    let path = mark_path(manifest);
    let err = |reason: String| AgentError::Manifest {
        path: path.display().to_string(),
        reason,
    };
    let body = serde_json::to_vec(&PeerMark {
        peer: peer.to_string(),
        newest_us,
    })
    .map_err(|e| err(e.to_string()))?;
    warden_config::durable::replace(&path, &body).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_beside_the_manifest_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("pair.json");
        assert!(load(&manifest).is_empty(), "none yet");
        let seen: HashMap<String, u64> = [("c/a".to_string(), 1), ("c/b".to_string(), 2)].into();
        save(&manifest, &seen).unwrap();
        assert!(dir.path().join("pair.json.swift-seen").exists());
        assert_eq!(load(&manifest), seen);
        std::fs::write(beside(&manifest), b"{not json").unwrap();
        assert!(load(&manifest).is_empty(), "damaged: an empty memory");
    }

    #[test]
    fn the_mark_is_the_named_peers_only() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("pair.json");
        assert_eq!(load_mark(&manifest, "b"), None);
        save_mark(&manifest, "b", 42).unwrap();
        assert_eq!(load_mark(&manifest, "b"), Some(42));
        assert_eq!(load_mark(&manifest, "c"), None, "another peer's mark");
        std::fs::write(mark_path(&manifest), b"[").unwrap();
        assert_eq!(load_mark(&manifest, "b"), None, "damaged: no mark");
    }
}
