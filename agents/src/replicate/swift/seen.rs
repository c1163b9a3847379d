//! The copier's memory of each object's source listing timestamp when it
//! was last confirmed at the destination (`State::seen`), kept beside the
//! manifest (`MANIFEST.swift-seen`). A change that keeps the ETag — a
//! metadata-only POST, the same body written again with new metadata —
//! shows only as a newer listing timestamp; with this file a change made
//! while the agent was down is still seen, and copied, after a restart.
//!
//! The file is a hint, not the pair's record: a missing one is an empty
//! memory (no change of that kind is known: the object is left as it is,
//! as before this file existed), an unreadable one is said once and then
//! rewritten.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_beside_the_manifest_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("pair.json");
        assert!(load(&manifest).is_empty(), "none yet");
        let seen: HashMap<String, u64> =
            [("c/a".to_string(), 1), ("c/b".to_string(), 2)].into();
        save(&manifest, &seen).unwrap();
        assert!(dir.path().join("pair.json.swift-seen").exists());
        assert_eq!(load(&manifest), seen);
        std::fs::write(beside(&manifest), b"{not json").unwrap();
        assert!(load(&manifest).is_empty(), "damaged: an empty memory");
    }
}
