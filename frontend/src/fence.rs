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
//! one group fences that group only; one whose own write failed is kept
//! by the next write that works, whichever group's). A group the file
//! fences above [`warden_proto::EPOCH_CEILING`] (an epoch no orchestrator
//! decides: forged, corrupt, or kept by an older frontend) is that group's
//! fence lost, said the same way: kept, it would refuse every later order
//! of the group. A fence that
//! cannot be written (a full disk, a removed directory) does not stop an
//! order: like the orchestrator on a full disk, the frontend acts from
//! memory — the fence there still refuses older orders until a restart —
//! logs an error and shows `warden_frontend_fence_unsaved` 1 until a later
//! write succeeds (every order tries again; the directory is made again).
//! A write that does not return (a network filesystem that stopped
//! answering, a dying disk) is a write that failed once it has taken
//! [`WRITE_PATIENCE`]: writes run on a thread of their own (one at a time,
//! the latest fence each time), never on the control API's runtime, and an
//! order waits for its write that long at most — a hung disk stops no
//! order and no read of the control API.
//!
//! Beside a group's epoch, what fences its next hold order (the newest
//! order's place, the withdrawn epoch) is kept too ([`hold`]), written
//! before a hold order that changes it takes effect.
//!
//! Frontend-wide, the etcd cluster of the hold orders' terms and the
//! clusters left are kept too ([`clusters`]), written with the fence of
//! the order that moved them.
//!
//! Rooms: this file is the fence in memory — each order judged against
//! the epoch kept, the wait for its write, what is lost or unsaved;
//! `file` is `fence.json` itself (its form, its load at start, the thread
//! that writes it); [`hold`] the hold orders' part of a group's fence;
//! [`clusters`] the hold orders' etcd clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::FrontendError;

mod clusters;
mod file;
mod hold;
pub(crate) use clusters::{Clusters, ClustersKept};
pub(crate) use hold::HoldKept;

use file::{File, Queue, Saved};

/// The longest an order waits for its fence to be written; then it takes
/// effect from memory, as when the write fails (under the orchestrator's
/// own 2 s for a control request).
pub(crate) const WRITE_PATIENCE: Duration = Duration::from_secs(1);

/// One group's fence: the highest epoch accepted, and the site a route at
/// that epoch named (none: only a hold order came at it) — another site at
/// the same epoch is a conflicting decision, after a restart too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Kept {
    pub(crate) epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) site: Option<String>,
    /// What fences the group's next hold order ([`hold`]); none when no
    /// placed or withdrawn order came at the kept epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hold: Option<HoldKept>,
}

/// The fence on disk, and what was last written there.
pub(crate) struct Fence {
    path: PathBuf,
    /// The fence in memory, and the version of it last handed to the writer.
    file: Mutex<(File, u64)>,
    /// What the writer thread is to write next.
    queue: Arc<Queue>,
    /// The outcome of the writer thread's last write.
    saved: watch::Receiver<Saved>,
    /// The highest version an order took effect at without its write
    /// (failed, or not done within [`WRITE_PATIENCE`]): memory is ahead of
    /// the file until a write of it, or of a later version, succeeds.
    ahead: AtomicU64,
    /// The groups whose fence was lost and that no write has kept since
    /// (see [`Fence::lost`]).
    lost: Mutex<BTreeSet<String>>,
    /// The clusters changed ([`Fence::moved`]) and are not handed to the
    /// writer yet: the next [`Fence::keep`] writes even when its group's
    /// fence is unchanged.
    moved: std::sync::atomic::AtomicBool,
}

impl Drop for Fence {
    fn drop(&mut self) {
        let mut next = self.queue.next.lock().unwrap_or_else(|p| p.into_inner());
        next.closed = true;
        self.queue.ready.notify_all();
    }
}

impl Fence {
    /// Open (or start) the fence of frontend `name`, serving `groups`, in
    /// `dir`; the epochs kept there, per group.
    pub(crate) fn open<'a>(
        dir: &Path,
        name: &str,
        groups: impl IntoIterator<Item = &'a String>,
    ) -> Result<Fence, FrontendError> {
        let (path, file, lost) = file::load(dir, name, groups)?;
        let queue = Arc::new(Queue::default());
        let (tx, saved) = watch::channel(Saved::default());
        let (q, target) = (Arc::clone(&queue), path.clone());
        std::thread::Builder::new()
            .name("fence-writer".into())
            .spawn(move || file::write_loop(&q, &target, &tx))
            .map_err(|e| FrontendError::State {
                path: path.clone(),
                detail: format!("cannot start its writer thread: {e}"),
            })?;
        Ok(Fence {
            path,
            file: Mutex::new((file, 0)),
            queue,
            saved,
            ahead: AtomicU64::new(0),
            lost: Mutex::new(lost),
            moved: Default::default(),
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

    /// Whether memory is ahead of the file: the last write failed, or an
    /// order took effect before its write was done (see [`WRITE_PATIENCE`]).
    pub(crate) fn unsaved(&self) -> bool {
        let saved = self.saved.borrow();
        saved.error.is_some() || saved.version < self.ahead.load(Ordering::Relaxed)
    }

    /// The fences kept, per group.
    pub(crate) fn kept(&self) -> BTreeMap<String, Kept> {
        self.lock().0.groups.clone()
    }

    /// The hold orders' etcd clusters as kept ([`clusters`]).
    pub(crate) fn clusters(&self) -> ClustersKept {
        self.lock().0.clusters.clone()
    }

    /// The orchestrators moved to another etcd cluster ([`clusters`]):
    /// kept in memory now, on disk with the next [`Fence::keep`] (the one
    /// of the order that moved them, before it takes effect).
    pub(crate) fn moved(&self, clusters: ClustersKept) {
        self.lock().0.clusters = clusters;
        self.moved.store(true, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (File, u64)> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Fence::keep`] without a hold fence: `epoch` (with the routed
    /// `site`, for a route).
    #[cfg(test)]
    pub(crate) async fn raise(
        &self,
        group: &str,
        epoch: u64,
        site: Option<&str>,
    ) -> Result<(), String> {
        self.keep(group, epoch, site, None).await
    }

    /// Keep `epoch` (with the routed `site`, for a route; with what fences
    /// the next hold order, `hold`, for a hold order) for `group` when it
    /// is higher than the one kept, names the site at the kept epoch for
    /// the first time, or changes its hold fence: in memory, and on disk
    /// before this returns. An error
    /// when the file cannot be written, or not within [`WRITE_PATIENCE`];
    /// memory keeps it anyway (see the module docs), and the next call
    /// writes again.
    pub(crate) async fn keep(
        &self,
        group: &str,
        epoch: u64,
        site: Option<&str>,
        hold: Option<HoldKept>,
    ) -> Result<(), String> {
        let cannot = |why: &str| {
            format!(
                "cannot keep epoch {epoch} of group {group:?} in {}: {why}",
                self.path.display()
            )
        };
        let (version, kept) = self
            .stage(group, epoch, site, hold)
            .map_err(|e| cannot(&e))?;
        let Some(version) = version else {
            self.found(&kept);
            return Ok(());
        };
        let mut saved = self.saved.clone();
        let written =
            tokio::time::timeout(WRITE_PATIENCE, saved.wait_for(|s| s.version >= version)).await;
        let error = match written {
            Ok(Ok(s)) => s.error.clone(),
            Ok(Err(_)) => Some("its writer thread has stopped".to_string()),
            Err(_) => Some(format!(
                "not written within {}ms (the disk does not answer); the write goes on",
                WRITE_PATIENCE.as_millis()
            )),
        };
        match error {
            None => {
                self.found(&kept);
                Ok(())
            }
            Some(e) => {
                self.ahead.fetch_max(version, Ordering::Relaxed);
                Err(cannot(&e))
            }
        }
    }

    /// `kept`, the groups of a fence now on disk, are fenced again: none
    /// of them is lost any more (every write holds every group's fence, so
    /// a group whose own write failed is kept by the next one that works).
    fn found(&self, kept: &[String]) {
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        if !lost.is_empty() {
            for g in kept {
                lost.remove(g);
            }
        }
    }

    /// The memory part of [`Fence::keep`]: the fence kept in memory, and
    /// handed to the writer thread when it changed or memory is ahead of
    /// the file; the version to wait for (none: it is on disk already),
    /// and the groups that version holds. An order that changes nothing
    /// still waits for a write under way that holds what it relies on.
    fn stage(
        &self,
        group: &str,
        epoch: u64,
        site: Option<&str>,
        hold: Option<HoldKept>,
    ) -> Result<(Option<u64>, Vec<String>), String> {
        let mut guard = self.lock();
        let unsaved = self.unsaved() || self.moved.swap(false, Ordering::SeqCst);
        let (f, handed) = &mut *guard;
        let kept = f.groups.get(group);
        let mut next = match kept {
            Some(k) if k.epoch > epoch => None,
            Some(k) if k.epoch == epoch => match (&k.site, site) {
                (None, Some(s)) => Some(Kept {
                    site: Some(s.to_string()),
                    ..k.clone()
                }),
                // Kept already; another site at it is refused by the route.
                _ => None,
            },
            // A higher epoch: a hold fence below it fences nothing more.
            _ => Some(Kept {
                epoch,
                site: site.map(str::to_string),
                hold: None,
            }),
        };
        if let Some(h) = hold.filter(|h| h.epoch.max(h.withdrawn) <= epoch) {
            let base = next.as_ref().or(kept);
            if base.is_some_and(|k| k.epoch == epoch && k.hold != Some(h)) {
                next = base.map(|k| Kept {
                    hold: Some(h),
                    ..k.clone()
                });
            }
        }
        match next {
            Some(k) => {
                f.groups.insert(group.to_string(), k);
            }
            None if unsaved => {}
            None => {
                // The latest version handed holds every group in memory:
                // each change hands a new one.
                let done = self.saved.borrow().version;
                let kept = f.groups.keys().cloned().collect();
                return Ok(((done < *handed).then_some(*handed), kept));
            }
        }
        let body = serde_json::to_vec_pretty(&*f).map_err(|e| e.to_string())?;
        *handed += 1;
        let version = *handed;
        let kept = f.groups.keys().cloned().collect();
        let mut next = self.queue.next.lock().unwrap_or_else(|p| p.into_inner());
        next.body = Some((version, body));
        self.queue.ready.notify_one();
        Ok((Some(version), kept))
    }
}

#[cfg(test)]
mod tests {
    use super::file::FILE_NAME;
    use super::*;

    /// The groups the frontend serves.
    pub(super) fn groups() -> Vec<String> {
        vec!["db".into(), "web".into()]
    }

    /// A lost fence whose first write for a group failed (a full disk)
    /// is kept for that group once any later write succeeds — every write
    /// holds every group's fence —, and the alert ends then: a group
    /// whose orders stop coming (its route taken from memory, no drift
    /// left to reconcile) is not shown as lost for good.
    #[tokio::test]
    async fn a_lost_group_kept_by_another_groups_write_is_no_longer_lost() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        f.raise("web", 3, Some("a")).await.unwrap();
        drop(f);
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(f.lost());
        let tmp = dir
            .path()
            .join(format!("fence.json.tmp.{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        f.raise("web", 4, Some("b")).await.unwrap_err();
        std::fs::remove_dir(&tmp).unwrap();
        f.raise("db", 2, None).await.unwrap();
        let on_disk = Fence::open(dir.path(), "fe1", &groups()).unwrap().kept();
        assert_eq!(on_disk["web"].epoch, 4, "db's write kept web's fence");
        assert!(!f.lost(), "every group's fence is on disk");

        // The same when the group's next order is a repeat (nothing new
        // to write: its fence is on disk already).
        drop(f);
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        f.raise("web", 5, Some("a")).await.unwrap_err();
        std::fs::remove_dir(&tmp).unwrap();
        f.raise("db", 3, None).await.unwrap();
        f.raise("web", 5, Some("a")).await.unwrap();
        assert!(!f.lost(), "every group's fence is on disk");
    }

    #[tokio::test]
    async fn epochs_survive_a_reopen_and_only_rise() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(f.kept().is_empty());
        f.raise("web", 6, None).await.unwrap();
        f.raise("web", 6, Some("b")).await.unwrap();
        f.raise("web", 6, Some("a")).await.unwrap();
        f.raise("web", 4, Some("a")).await.unwrap();
        f.raise("db", 2, None).await.unwrap();
        drop(f);
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        let kept = |epoch, site: Option<&str>| Kept {
            epoch,
            site: site.map(str::to_string),
            hold: None,
        };
        assert_eq!(
            f.kept(),
            BTreeMap::from([
                ("db".to_string(), kept(2, None)),
                ("web".to_string(), kept(6, Some("b")))
            ])
        );
    }

    /// A write that fails leaves memory ahead of the file, says so, and is
    /// tried again by the next order — a repeat too; a removed directory is
    /// made again.
    #[tokio::test]
    async fn an_epoch_that_cannot_be_written_is_kept_in_memory_and_written_later() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        f.raise("web", 3, Some("a")).await.unwrap();
        let tmp = dir
            .path()
            .join(format!("fence.json.tmp.{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        let e = f.raise("web", 5, None).await.unwrap_err();
        assert!(e.contains("cannot keep epoch 5 of group \"web\""), "{e}");
        assert_eq!(f.kept()["web"].epoch, 5, "memory keeps it");
        assert!(f.unsaved());
        let on_disk = |d: &Path| Fence::open(d, "fe1", &groups()).unwrap().kept()["web"].epoch;
        assert_eq!(on_disk(dir.path()), 3);
        std::fs::remove_dir(&tmp).unwrap();
        f.raise("web", 5, None).await.unwrap();
        assert!(!f.unsaved());
        assert_eq!(on_disk(dir.path()), 5);

        // The whole directory removed (an operator wiping a data_dir).
        let sub = dir.path().join("fe");
        let f = Fence::open(&sub, "fe1", &groups()).unwrap();
        f.raise("web", 6, None).await.unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
        f.raise("web", 7, None).await.unwrap();
        assert_eq!(on_disk(&sub), 7);
    }
}
