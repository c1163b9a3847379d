//! What the Swift plans remember beside the pair's manifest
//! (`MANIFEST.swift-seen`) of changes that keep the ETag — a metadata-only
//! POST, the same body written again with new metadata — which show only
//! as a newer listing timestamp: per object, this site's and the peer's
//! listing timestamps when the two were last confirmed equal ([`Stamps`]).
//!
//! - The copier (this site the source) copies an object whose listing
//!   timestamp here moved since (also after a restart: the file outlives
//!   the process), and records both timestamps of every object in sync.
//! - The resync (this site the returning one) counts an object whose
//!   timestamp moved at the peer as changed there (fetched), one whose
//!   timestamp moved here as changed here (divergent), both as a conflict;
//!   after a pass it records what it made equal (this site's timestamps as
//!   listed after its fetches, the peer's as compared), so the copier that
//!   follows the failback does not copy every fetched object back.
//!
//! The file names its two clusters (`cluster_label`): read by the other
//! side of the pair (a manifest path both sites share), its stamps are
//! swapped; read for another pair, it is an empty memory. The file is a
//! hint beside the pair's record: a missing one is an empty memory (no
//! same-ETag change is known, as before it existed), an unreadable one is
//! said in the log and rewritten after the next round.

use std::collections::{BTreeMap, HashMap};

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::AgentError;

/// An object's listing timestamps (µs) when last confirmed equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamps {
    /// This site's.
    pub(crate) here: u64,
    /// The peer's, when known (a copy just made is listed at the next round).
    pub(crate) peer: Option<u64>,
}

/// Name → its [`Stamps`].
pub(crate) type Seen = HashMap<String, Stamps>;

/// Where the memory of `manifest` is kept.
pub(crate) fn beside(manifest: &Path) -> PathBuf {
    let mut p = manifest.as_os_str().to_owned();
    p.push(".swift-seen");
    PathBuf::from(p)
}

/// The file: its pair and the stamps (`[here, peer]`, 0 for not known).
#[derive(serde::Serialize, serde::Deserialize)]
struct File<'a> {
    here: std::borrow::Cow<'a, str>,
    peer: std::borrow::Cow<'a, str>,
    stamps: BTreeMap<String, [u64; 2]>,
}

/// The memory kept beside `manifest` for the pair `here` → `peer` (empty
/// when there is none, it is another pair's, or it cannot be read: said in
/// the log).
pub(crate) fn load(manifest: &Path, here: &str, peer: &str) -> Seen {
    let path = beside(manifest);
    let unreadable = |cause: String| {
        warn!(file = %path.display(), cause = %cause, "the swift plan's listing timestamps cannot be read: started without them (a metadata-only change made meanwhile may not be seen); rewritten after the next round");
        Seen::new()
    };
    let f = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<File<'_>>(&bytes) {
            Ok(f) => f,
            Err(e) => return unreadable(e.to_string()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Seen::new(),
        Err(e) => return unreadable(e.to_string()),
    };
    let swapped = match (f.here == here, f.peer == peer) {
        (true, true) => false,
        _ if f.here == peer && f.peer == here => true,
        _ => return Seen::new(),
    };
    f.stamps
        .into_iter()
        .filter_map(|(n, [h, p])| {
            let (h, p) = if swapped { (p, h) } else { (h, p) };
            // a side not known: nothing to compare with
            (h != 0).then(|| {
                (
                    n,
                    Stamps {
                        here: h,
                        peer: (p != 0).then_some(p),
                    },
                )
            })
        })
        .collect()
}

/// Write the memory of the pair `here` → `peer` beside `manifest`, durably
/// (sorted: the same memory is the same file).
pub(crate) fn save(manifest: &Path, here: &str, peer: &str, seen: &Seen) -> Result<(), AgentError> {
    let path = beside(manifest);
    let err = |reason: String| AgentError::Manifest {
        path: path.display().to_string(),
        reason,
    };
    let f = File {
        here: here.into(),
        peer: peer.into(),
        stamps: seen
            .iter()
            .map(|(n, s)| (n.clone(), [s.here, s.peer.unwrap_or(0)]))
            .collect(),
    };
    let body = serde_json::to_vec(&f).map_err(|e| err(e.to_string()))?;
    warden_config::durable::replace(&path, &body).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_beside_the_manifest_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("pair.json");
        let seen: Seen = [
            (
                "c/a".to_string(),
                Stamps {
                    here: 1,
                    peer: Some(5),
                },
            ),
            (
                "c/b".to_string(),
                Stamps {
                    here: 2,
                    peer: None,
                },
            ),
        ]
        .into();
        assert!(load(&manifest, "A", "B").is_empty(), "none yet");
        save(&manifest, "A", "B", &seen).unwrap();
        assert!(dir.path().join("pair.json.swift-seen").exists());
        assert_eq!(load(&manifest, "A", "B"), seen);
        // read by the other side of the pair: swapped (a side not known dropped)
        let other = load(&manifest, "B", "A");
        assert_eq!(
            other,
            Seen::from([(
                "c/a".to_string(),
                Stamps {
                    here: 5,
                    peer: Some(1)
                }
            )])
        );
        assert!(load(&manifest, "A", "C").is_empty(), "another pair's");
        std::fs::write(beside(&manifest), b"{not json").unwrap();
        assert!(
            load(&manifest, "A", "B").is_empty(),
            "damaged: an empty memory"
        );
    }
}
