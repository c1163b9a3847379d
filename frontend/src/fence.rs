//! The frontend's durable fence: per group, the highest epoch it has
//! accepted (a route or a hold order) and the site a route at it named,
//! kept in `{state_dir}/fence.json` and
//! written — synced, then renamed into place — before an order that raises
//! it takes effect. A restarted frontend thus still refuses what a deposed
//! orchestrator sends below an epoch it accepted before the restart. Routes
//! themselves are not kept: a restarted frontend routes nothing until the
//! orchestrator's reconciliation sends the route again (at the epoch kept
//! here, or a newer one).
//!
//! A file it cannot read, or one of another frontend, stops the frontend
//! at start (fail closed); a missing file is a first start — unless the
//! marker written with the first fence (`fence.kept`) is there: then the
//! fence was lost (a disk restored without it, a file removed by hand).
//! Nothing can tell the frontend the epochs it forgot, so it still takes
//! orders, but says so: an error at start, and `warden_frontend_fence_lost`
//! 1 until an order is kept again for every group it serves (an order for
//! one group fences that group only). A fence that
//! cannot be written (a full disk, a removed directory) does not stop an
//! order: like the orchestrator on a full disk, the frontend acts from
//! memory — the fence there still refuses older orders until a restart —
//! logs an error and shows `warden_frontend_fence_unsaved` 1 until a later
//! write succeeds (every order tries again; the directory is made again).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::FrontendError;

/// The file's name in the frontend's state directory.
const FILE_NAME: &str = "fence.json";

/// Written beside the file with its first write, never removed: the file
/// missing where the marker is means the fence was lost (not a first start).
const MARKER_NAME: &str = "fence.kept";

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// The `[frontends.NAME]` it belongs to.
    frontend: String,
    /// Highest epoch accepted, per group.
    groups: BTreeMap<String, Kept>,
}

/// One group's fence: the highest epoch accepted, and the site a route at
/// that epoch named (none: only a hold order came at it) — another site at
/// the same epoch is a conflicting decision, after a restart too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Kept {
    pub(crate) epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) site: Option<String>,
}

/// The fence on disk, and what was last written there.
pub(crate) struct Fence {
    path: PathBuf,
    file: Mutex<File>,
    /// The last write failed: memory is ahead of the file.
    unsaved: AtomicBool,
    /// The marker is written.
    marked: AtomicBool,
    /// The groups whose fence was lost and that no order has fenced
    /// since (see [`Fence::lost`]).
    lost: Mutex<BTreeSet<String>>,
}

impl Fence {
    /// Open (or start) the fence of frontend `name`, serving `groups`, in
    /// `dir`; the epochs kept there, per group.
    pub(crate) fn open<'a>(
        dir: &Path,
        name: &str,
        groups: impl IntoIterator<Item = &'a String>,
    ) -> Result<Fence, FrontendError> {
        let path = dir.join(FILE_NAME);
        let fail = |detail: String| FrontendError::State {
            path: path.clone(),
            detail,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
        let file = match std::fs::read(&path) {
            Ok(bytes) => {
                let f: File = serde_json::from_slice(&bytes).map_err(|e| {
                    fail(format!(
                        "unreadable ({e}); it holds the highest epoch this frontend accepted per group: \
                         restore it, or remove it only when no orchestrator older than the current one can reach this frontend"
                    ))
                })?;
                if f.frontend != name {
                    return Err(fail(format!(
                        "it belongs to frontend {:?}, not {name:?}: give every frontend its own state_dir",
                        f.frontend
                    )));
                }
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File {
                frontend: name.to_string(),
                groups: BTreeMap::new(),
            },
            Err(e) => return Err(fail(format!("cannot read it: {e}"))),
        };
        let marked = dir.join(MARKER_NAME).exists();
        let lost: BTreeSet<String> = if marked && !path.exists() {
            groups.into_iter().cloned().collect()
        } else {
            BTreeSet::new()
        };
        if !lost.is_empty() {
            tracing::error!(path = %path.display(), groups = ?lost, "fence.json is gone from a state_dir that held it: the highest epochs this frontend accepted are forgotten, so the first route of any epoch is taken (a deposed orchestrator's late one too) until the orchestrator routes again; warden_frontend_fence_lost is 1 until an order is kept for every group");
        }
        Ok(Fence {
            path,
            file: Mutex::new(file),
            unsaved: AtomicBool::new(false),
            marked: AtomicBool::new(marked),
            lost: Mutex::new(lost),
        })
    }

    /// Whether the fence was lost (its file gone where it had been kept)
    /// and a group it serves has had no order kept since the start.
    pub(crate) fn lost(&self) -> bool {
        !self
            .lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Whether memory is ahead of the file (the last write failed).
    pub(crate) fn unsaved(&self) -> bool {
        self.unsaved.load(Ordering::Relaxed)
    }

    /// The fences kept, per group.
    pub(crate) fn kept(&self) -> BTreeMap<String, Kept> {
        self.lock().groups.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `epoch` (with the routed `site`, for a route) for `group` when it
    /// is higher than the one kept, or names the site at the kept epoch for
    /// the first time: in memory, and on disk before this returns. An error
    /// when the file cannot be written; memory keeps it anyway (see the
    /// module docs), and the next call writes again.
    pub(crate) fn raise(&self, group: &str, epoch: u64, site: Option<&str>) -> Result<(), String> {
        let mut f = self.lock();
        let next = match f.groups.get(group) {
            Some(k) if k.epoch > epoch => None,
            Some(k) if k.epoch == epoch => match (&k.site, site) {
                (None, Some(s)) => Some(Kept {
                    epoch,
                    site: Some(s.to_string()),
                }),
                // Kept already; another site at it is refused by the route.
                _ => None,
            },
            _ => Some(Kept {
                epoch,
                site: site.map(str::to_string),
            }),
        };
        match next {
            Some(k) => {
                f.groups.insert(group.to_string(), k);
            }
            None if !self.unsaved() => return Ok(()),
            None => {}
        }
        match self.write(&f) {
            Ok(()) => {
                self.unsaved.store(false, Ordering::Relaxed);
                self.lost
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(group);
                Ok(())
            }
            Err(e) => {
                self.unsaved.store(true, Ordering::Relaxed);
                Err(format!(
                    "cannot keep epoch {epoch} of group {group:?} in {}: {e}",
                    self.path.display()
                ))
            }
        }
    }

    fn write(&self, f: &File) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let body = serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?;
        warden_config::durable::replace(&self.path, &body)?;
        if !self.marked.load(Ordering::Relaxed) {
            warden_config::durable::mark(&self.path.with_file_name(MARKER_NAME), b"")?;
            self.marked.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first start (no marker) is not a loss; a fence file gone where
    /// one was kept is, until the next order is kept.
    /// The groups the frontend serves.
    fn groups() -> Vec<String> {
        vec!["db".into(), "web".into()]
    }

    #[test]
    fn a_lost_fence_file_is_told_from_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(!f.lost(), "a first start");
        drop(f);
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(!f.lost(), "no order kept yet: nothing to lose");
        f.raise("web", 3, Some("a")).unwrap();
        drop(f);
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(f.lost());
        assert!(f.kept().is_empty(), "nothing to refuse with");
        f.raise("web", 4, Some("b")).unwrap();
        assert!(f.lost(), "db's epochs are still forgotten");
        f.raise("db", 2, None).unwrap();
        assert!(!f.lost(), "kept again for every group");
    }

    #[test]
    fn epochs_survive_a_reopen_and_only_rise() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(f.kept().is_empty());
        f.raise("web", 6, None).unwrap();
        f.raise("web", 6, Some("b")).unwrap();
        f.raise("web", 6, Some("a")).unwrap();
        f.raise("web", 4, Some("a")).unwrap();
        f.raise("db", 2, None).unwrap();
        drop(f);
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        let kept = |epoch, site: Option<&str>| Kept {
            epoch,
            site: site.map(str::to_string),
        };
        assert_eq!(
            f.kept(),
            BTreeMap::from([
                ("db".to_string(), kept(2, None)),
                ("web".to_string(), kept(6, Some("b")))
            ])
        );
    }

    #[test]
    fn a_garbage_or_foreign_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"{\"frontend\": \"fe1\", \"groups\": {\"web\": 6").unwrap();
        let e = Fence::open(dir.path(), "fe1", &groups())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("unreadable"), "{e}");
        assert!(path.exists(), "kept for the operator");
        Fence::open(dir.path(), "fe2", &groups())
            .err()
            .expect("refused");
        std::fs::write(&path, b"{\"frontend\": \"fe2\", \"groups\": {}}").unwrap();
        let e = Fence::open(dir.path(), "fe1", &groups())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("belongs to frontend \"fe2\""), "{e}");
    }

    /// A write that fails leaves memory ahead of the file, says so, and is
    /// tried again by the next order — a repeat too; a removed directory is
    /// made again.
    #[test]
    fn an_epoch_that_cannot_be_written_is_kept_in_memory_and_written_later() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        f.raise("web", 3, Some("a")).unwrap();
        let tmp = dir
            .path()
            .join(format!("fence.json.tmp.{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        let e = f.raise("web", 5, None).unwrap_err();
        assert!(e.contains("cannot keep epoch 5 of group \"web\""), "{e}");
        assert_eq!(f.kept()["web"].epoch, 5, "memory keeps it");
        assert!(f.unsaved());
        let on_disk = |d: &Path| Fence::open(d, "fe1", &groups()).unwrap().kept()["web"].epoch;
        assert_eq!(on_disk(dir.path()), 3);
        std::fs::remove_dir(&tmp).unwrap();
        f.raise("web", 5, None).unwrap();
        assert!(!f.unsaved());
        assert_eq!(on_disk(dir.path()), 5);

        // The whole directory removed (an operator wiping a data_dir).
        let sub = dir.path().join("fe");
        let f = Fence::open(&sub, "fe1", &groups()).unwrap();
        f.raise("web", 6, None).unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
        f.raise("web", 7, None).unwrap();
        assert_eq!(on_disk(&sub), 7);
    }
}
