//! The per-pair manifest (what was last confirmed in sync) and the resync
//! classification built on it: which items a returning (stale) site must
//! fetch, delete, or treat as divergent writes (issue 5, DESIGN §4 failback).
//!
//! Listings do not show deletions, and a site that died may hold writes that
//! never reached its peer. With the manifest `M`, the stale site's listing
//! `H` (here) and the active peer's listing `P`, for every name:
//!
//! | here (`H`)              | peer (`P`)        | decision                                       |
//! | ----------------------- | ----------------- | ---------------------------------------------- |
//! | absent                  | present           | fetch                                          |
//! | equal to `P`            | —                 | nothing (in sync)                              |
//! | equal to `M`            | present, differs  | fetch (changed at the peer during the disaster)|
//! | equal to `M`            | absent            | delete here (deleted during the disaster)      |
//! | not in `M` / differs    | absent            | divergent (written here, never replicated)     |
//! | not in `M` / differs    | present, differs  | divergent conflict: the peer's version wins    |
//!
//! A divergent item is handled by the group's [`DivergentPolicy`]. Items are
//! compared by [`Item::version`]: a plan-specific string (`mtime` seconds for
//! files, `etag@x-timestamp` for Swift objects) plus the size.
//!
//! Whole seconds cannot tell two versions of a file apart (a write at both
//! sites within one second, same size), so the rsync plan does not ask "is
//! here equal to the manifest's version" but "does this local file still
//! hold only what was confirmed": its manifest entry carries a [`Stamp`]
//! (inode, mtime and ctime to the nanosecond; every write changes the ctime,
//! and nothing can set it back), recorded from a `stat` taken *after* the
//! transfer that confirmed it and checked against what rsync reported
//! ([`Manifest::unchanged`]). A local item whose stamp differs (or that has
//! none) while the peer has the name is not called divergent on its times:
//! its content is compared with the peer's (a checksum dry run), and only a
//! different content is a conflict. Changes at the peer never make an item
//! divergent: the peer's side is the pull's to settle
//! (`rsync_resync.rs`). Empty directories are items too (version [`DIR`]), so a
//! divergent empty directory follows the policy like a file; so are special
//! files (FIFOs, sockets, device nodes; `rsync -a` carries them), versioned
//! like files. Older manifests, which hold none, read the same.
//!
//! File names are bytes, not text: the rsync plan keys its listings with
//! [`escape_name`] (UTF-8 as is, a backslash as `\\`, every other byte as
//! `\xNN`), a lossless form that [`unescape_name`] turns back into the exact
//! bytes, so two names never collide and the escaped key is also the name
//! shown to operators. Its manifests say so (`escaped_names`); an older
//! manifest without the flag (plain UTF-8 names) is read by escaping its
//! backslashes ([`Manifest::load_escaped`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::AgentError;

/// What to do with an item the stale site wrote that never reached the peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergentPolicy {
    /// Leave it where it is and report it (default). A conflicting version
    /// (the peer has the same name) cannot stay in place: it is moved aside
    /// as with `quarantine`.
    #[default]
    Keep,
    /// Move it aside (a side directory or container) and report it.
    Quarantine,
    /// Delete it (or let the peer's version overwrite it) and report it.
    Discard,
}

impl DivergentPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DivergentPolicy::Keep => "keep",
            DivergentPolicy::Quarantine => "quarantine",
            DivergentPolicy::Discard => "discard",
        }
    }
}

/// One item of a listing or a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Bytes.
    pub size: u64,
    /// Plan-specific version: mtime in whole seconds for files,
    /// `ETAG@X-TIMESTAMP` for Swift objects. Equal versions and sizes = same item.
    pub version: String,
}

/// Name (relative path, or `container/object`) → item.
pub type Listing = BTreeMap<String, Item>;

/// [`Item::version`] of a directory (the rsync plan lists empty ones).
pub const DIR: &str = "dir";

impl Item {
    /// Whether it is a directory ([`DIR`]).
    pub fn is_dir(&self) -> bool {
        self.version == DIR
    }
}

/// What proves a local file unchanged since it was confirmed: any write,
/// truncation, rename over it, `touch` or attribute change moves the
/// ctime (which no user can set), and a replacement has another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub ino: u64,
    /// Nanoseconds since the epoch.
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    /// The stamp of a `symlink_metadata`.
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            ino: meta.ino(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}

/// Name → [`Stamp`] of the local items (the rsync plan).
pub type Stamps = BTreeMap<String, Stamp>;

/// What was last confirmed equal on both sides of one replication pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// When it was confirmed, unix ms.
    pub confirmed_unix_ms: u64,
    /// The items confirmed at both sides.
    pub items: Listing,
    /// Names are [`escape_name`]d bytes (the rsync plan); absent in older
    /// manifests and in the Swift plans' (plain UTF-8 names).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub escaped_names: bool,
    /// The local [`Stamp`] of confirmed items (the rsync plan): an item
    /// whose stamp still matches holds nothing the peer has not had. Items
    /// without one (older manifests) are compared by size and version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stamps: Stamps,
}

impl Manifest {
    /// A manifest of `items`, confirmed now.
    pub fn confirmed(items: Listing) -> Self {
        Manifest {
            confirmed_unix_ms: now_ms(),
            items,
            escaped_names: false,
            stamps: Stamps::new(),
        }
    }

    /// A manifest of `items` keyed by [`escape_name`]d byte names, confirmed now.
    pub fn confirmed_escaped(items: Listing) -> Self {
        Manifest {
            escaped_names: true,
            ..Self::confirmed(items)
        }
    }

    /// [`Manifest::load`] for byte-named listings: an older manifest with
    /// plain UTF-8 names is converted to [`escape_name`]d keys.
    pub fn load_escaped(path: &Path) -> Result<Self, AgentError> {
        let mut m = Self::load(path)?;
        if !m.escaped_names {
            m.items = std::mem::take(&mut m.items)
                .into_iter()
                .map(|(k, v)| (escape_name(k.as_bytes()), v))
                .collect();
            m.stamps = std::mem::take(&mut m.stamps)
                .into_iter()
                .map(|(k, v)| (escape_name(k.as_bytes()), v))
                .collect();
            m.escaped_names = true;
        }
        Ok(m)
    }

    /// Whether the local item `name` (`item`, `stamp`) still holds only what
    /// was confirmed: its stamp equals the recorded one (and so does the
    /// size); without a recorded stamp (an older manifest), its size and
    /// version do. A directory in the manifest as a directory always does.
    pub fn unchanged(&self, name: &str, item: &Item, stamp: Option<&Stamp>) -> bool {
        let Some(m) = self.items.get(name) else {
            return false;
        };
        if m.is_dir() || item.is_dir() {
            return m.is_dir() && item.is_dir();
        }
        match (self.stamps.get(name), stamp) {
            (Some(a), Some(b)) => a == b && m.size == item.size,
            (Some(_), None) => false,
            (None, _) => m == item,
        }
    }

    /// Loads the manifest at `path`; a missing file is an empty manifest
    /// (every item the stale site holds alone then counts as divergent:
    /// nothing is deleted on a guess).
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AgentError::Manifest {
                path: path.display().to_string(),
                reason: format!("not a warden manifest: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(AgentError::Manifest {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Writes it durably ([`save_json`]).
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        save_json(path, self)
    }
}

/// Writes `value` as JSON at `path` durably ([`warden_config::durable::replace`]:
/// temporary file, sync, rename, directory sync), creating the parent
/// directory: the manifest and the files kept beside it.
pub(crate) fn save_json(path: &Path, value: &impl Serialize) -> Result<(), AgentError> {
    let err = |reason: String| AgentError::Manifest {
        path: path.display().to_string(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let body = serde_json::to_vec(value).map_err(|e| err(e.to_string()))?;
    warden_config::durable::replace(path, &body).map_err(|e| err(e.to_string()))
}

/// Why an item is divergent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergentReason {
    /// Not in the manifest: written here and never confirmed at the peer.
    NotInManifest,
    /// In the manifest, but changed here since it was confirmed.
    ChangedSinceSync,
    /// Not confirmed at the peer, but sent to it by a transfer this site
    /// did not see confirmed ([`super::sent`]): the peer lacks it now, and
    /// may have deleted it after it arrived. Moved to the quarantine even
    /// under `keep` (the active site's deletion wins).
    SentUnconfirmed,
    /// Not in the manifest, written here while a resync pull ran that was
    /// cut off (the agent killed) with its log not naming it: taken for
    /// what the pull fetched from the peer, which lacks it now. Moved to
    /// the quarantine even under `keep`.
    FetchedUnconfirmed,
}

impl DivergentReason {
    /// Whether the peer may have held the item although it lacks it now
    /// (deleted there after it arrived): moved aside even under `keep`.
    pub fn peer_may_have_had(self) -> bool {
        matches!(
            self,
            DivergentReason::SentUnconfirmed | DivergentReason::FetchedUnconfirmed
        )
    }
}

/// The resync plan for one stale site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classification {
    /// Names to fetch from the peer (missing or older here).
    pub fetch: Vec<String>,
    /// Names to delete here (deleted at the peer during the disaster).
    pub delete: Vec<String>,
    /// Divergent names: why, and whether the peer also holds (another version of) the name.
    pub divergent: Vec<(String, DivergentReason, bool)>,
    /// Bytes the fetches will carry (the peer's sizes).
    pub fetch_bytes: u64,
}

/// Applies the table in the module docs.
pub fn classify(manifest: &Manifest, here: &Listing, peer: &Listing) -> Classification {
    let mut c = Classification::default();
    for (name, p) in peer {
        match here.get(name) {
            None => {
                c.fetch.push(name.clone());
                c.fetch_bytes += p.size;
            }
            Some(h) if h == p => {}
            Some(h) => {
                match manifest.items.get(name) {
                    Some(m) if m == h => {}
                    Some(_) => {
                        c.divergent
                            .push((name.clone(), DivergentReason::ChangedSinceSync, true))
                    }
                    None => c
                        .divergent
                        .push((name.clone(), DivergentReason::NotInManifest, true)),
                }
                c.fetch.push(name.clone());
                c.fetch_bytes += p.size;
            }
        }
    }
    for (name, h) in here {
        if peer.contains_key(name) {
            continue;
        }
        match manifest.items.get(name) {
            Some(m) if m == h => c.delete.push(name.clone()),
            Some(_) => c
                .divergent
                .push((name.clone(), DivergentReason::ChangedSinceSync, false)),
            None => c
                .divergent
                .push((name.clone(), DivergentReason::NotInManifest, false)),
        }
    }
    c
}

/// What happened to one divergent item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivergentItem {
    /// Name (relative path or `container/object`).
    pub name: String,
    pub reason: DivergentReason,
    /// `kept`, `quarantined`, or `discarded`.
    pub action: String,
    /// Where a quarantined copy went (path or `container/object`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
}

/// The lossless text form of a byte name: valid UTF-8 as is, except a
/// backslash as `\\`; every byte of an invalid sequence as `\xNN`
/// (lowercase hex). Also how such names are shown (`DivergentWire.name`).
pub fn escape_name(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The bytes of an [`escape_name`]d name. A backslash that starts neither
/// `\\` nor `\xNN` is taken literally (never produced by `escape_name`).
pub fn unescape_name(name: &str) -> Vec<u8> {
    let b = name.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'x') {
                if let (Some(h), Some(l)) = (
                    b.get(i + 2).copied().and_then(hex),
                    b.get(i + 3).copied().and_then(hex),
                ) {
                    out.push(h * 16 + l);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Unix time in ms now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(size: u64, v: &str) -> Item {
        Item {
            size,
            version: v.into(),
        }
    }

    fn listing(items: &[(&str, u64, &str)]) -> Listing {
        items
            .iter()
            .map(|(n, s, v)| (n.to_string(), item(*s, v)))
            .collect()
    }

    #[test]
    fn classifies_every_row_of_the_table() {
        let manifest = Manifest::confirmed(listing(&[
            ("same", 1, "1"),
            ("changed-at-peer", 1, "1"),
            ("deleted-at-peer", 1, "1"),
            ("changed-here", 1, "1"),
            ("changed-here-deleted-at-peer", 1, "1"),
        ]));
        let here = listing(&[
            ("same", 1, "1"),
            ("changed-at-peer", 1, "1"),
            ("deleted-at-peer", 1, "1"),
            ("changed-here", 2, "5"),
            ("changed-here-deleted-at-peer", 2, "5"),
            ("new-here", 3, "7"),
            ("new-both-differ", 3, "7"),
            ("new-both-same", 3, "7"),
        ]);
        let peer = listing(&[
            ("same", 1, "1"),
            ("changed-at-peer", 9, "9"),
            ("changed-here", 1, "1"),
            ("new-at-peer", 4, "4"),
            ("new-both-differ", 8, "8"),
            ("new-both-same", 3, "7"),
        ]);
        let c = classify(&manifest, &here, &peer);
        assert_eq!(
            c.fetch,
            vec![
                "changed-at-peer",
                "changed-here",
                "new-at-peer",
                "new-both-differ"
            ]
        );
        assert_eq!(c.fetch_bytes, 9 + 1 + 4 + 8);
        assert_eq!(c.delete, vec!["deleted-at-peer"]);
        use DivergentReason::*;
        assert_eq!(
            c.divergent,
            vec![
                ("changed-here".to_string(), ChangedSinceSync, true),
                ("new-both-differ".to_string(), NotInManifest, true),
                (
                    "changed-here-deleted-at-peer".to_string(),
                    ChangedSinceSync,
                    false
                ),
                ("new-here".to_string(), NotInManifest, false),
            ]
        );
    }

    #[test]
    fn unchanged_means_the_same_stamp_to_the_nanosecond() {
        let st = Stamp {
            ino: 10,
            mtime_ns: 1_700_000_000_000_000_001,
            ctime_ns: 1_700_000_000_000_000_002,
        };
        let mut m = Manifest::confirmed(listing(&[("f", 3, "1700000000"), ("d", 0, DIR)]));
        m.stamps.insert("f".into(), st);
        let f = item(3, "1700000000");
        assert!(m.unchanged("f", &f, Some(&st)));
        // Same second, same size: another nanosecond is another version.
        let ns = Stamp {
            mtime_ns: st.mtime_ns + 1,
            ..st
        };
        assert!(!m.unchanged("f", &f, Some(&ns)));
        // mtime set back after a write: the ctime still moved.
        let ct = Stamp {
            ctime_ns: st.ctime_ns + 5,
            ..st
        };
        assert!(!m.unchanged("f", &f, Some(&ct)));
        // Replaced by another file (rename over it).
        let ino = Stamp { ino: 11, ..st };
        assert!(!m.unchanged("f", &f, Some(&ino)));
        assert!(!m.unchanged("f", &item(4, "1700000000"), Some(&st)));
        assert!(!m.unchanged("f", &f, None));
        assert!(!m.unchanged("new", &f, Some(&st)));
        // Directories: in the manifest as a directory is enough.
        assert!(m.unchanged("d", &item(0, DIR), Some(&ns)));
        assert!(!m.unchanged("f", &item(0, DIR), Some(&st)));
        // An older manifest without stamps: size and version.
        let old = Manifest::confirmed(listing(&[("f", 3, "1700000000")]));
        assert!(old.unchanged("f", &f, Some(&st)));
        assert!(!old.unchanged("f", &item(3, "1700000001"), Some(&st)));
    }

    #[test]
    fn stamps_round_trip_and_older_manifests_have_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let mut m = Manifest::confirmed_escaped(listing(&[("a\\b", 1, "1")]));
        m.stamps.insert(
            "a\\b".into(),
            Stamp {
                ino: 1,
                mtime_ns: 2,
                ctime_ns: 3,
            },
        );
        m.save(&path).unwrap();
        assert_eq!(Manifest::load_escaped(&path).unwrap(), m);
        std::fs::write(
            &path,
            br#"{"confirmed_unix_ms":1,"items":{"a\b":{"size":1,"version":"1"}}}"#,
        )
        .unwrap();
        assert!(Manifest::load_escaped(&path).unwrap().stamps.is_empty());
    }

    #[test]
    fn an_empty_manifest_never_deletes() {
        let here = listing(&[("a", 1, "1")]);
        let c = classify(&Manifest::default(), &here, &Listing::new());
        assert!(c.delete.is_empty());
        assert_eq!(c.divergent.len(), 1);
    }

    #[test]
    fn byte_names_round_trip_and_never_collide() {
        let names: [&[u8]; 6] = [
            b"plain/a b.txt",
            b"caf\xc3\xa9",
            b"bad\xff\xfe/x",
            "bad\u{FFFD}\u{FFFD}/x".as_bytes(),
            b"back\\slash\\x41",
            b"trunc\xc3",
        ];
        let shown: Vec<String> = names.iter().map(|n| escape_name(n)).collect();
        assert_eq!(shown[1], "caf\u{e9}");
        assert_eq!(shown[2], "bad\\xff\\xfe/x");
        assert_eq!(shown[4], "back\\\\slash\\\\x41");
        assert_eq!(shown[5], "trunc\\xc3");
        for (n, s) in names.iter().zip(&shown) {
            assert_eq!(unescape_name(s), *n, "{s}");
        }
        let distinct: std::collections::BTreeSet<&String> = shown.iter().collect();
        assert_eq!(distinct.len(), names.len());
    }

    #[test]
    fn escaped_manifests_round_trip_bytes_and_old_ones_are_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let name = escape_name(b"x\xff\\y");
        let m = Manifest::confirmed_escaped(listing(&[(&name, 1, "1")]));
        m.save(&path).unwrap();
        assert_eq!(Manifest::load_escaped(&path).unwrap(), m);
        // An older manifest: plain UTF-8 names, a backslash as itself.
        std::fs::write(
            &path,
            br#"{"confirmed_unix_ms":1,"items":{"a\\b":{"size":1,"version":"1"}}}"#,
        )
        .unwrap();
        let old = Manifest::load_escaped(&path).unwrap();
        let keys: Vec<&String> = old.items.keys().collect();
        assert_eq!(keys, vec!["a\\\\b"]);
        assert_eq!(unescape_name(keys[0]), b"a\\b");
    }

    #[test]
    fn manifest_round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/m.json");
        assert_eq!(Manifest::load(&path).unwrap(), Manifest::default());
        let m = Manifest::confirmed(listing(&[("x/y", 5, "123")]));
        m.save(&path).unwrap();
        assert_eq!(Manifest::load(&path).unwrap(), m);
        std::fs::write(&path, b"{not json").unwrap();
        let e = Manifest::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("m.json") && e.contains("not a warden manifest"),
            "{e}"
        );
    }
}
