//! The `rsync` plan: a local directory mirrored into an rsync daemon module
//! at the peer site with the real `rsync` binary.
//!
//! - Changes are seen with inotify (`notify`, recursive). The watcher only
//!   records relative paths in [`State`]; one worker task turns them into
//!   transfers.
//! - Up to `max_transfers` batches run at once (an rsync session spends most
//!   of its ~0.1 s waiting, not working), but never two with overlapping
//!   paths (the same path, or one inside the other), so a path's versions
//!   arrive in order. A full pass or `verify` runs alone (the `transfer`
//!   lock: batches share it, they take it exclusively).
//! - A batch is what arrived within `batch_window` of its oldest change (or
//!   `batch_max` paths); changes that waited for a free transfer go at once:
//!   `rsync -a -r --files-from=- --from0 --delete-missing-args --force
//!   --ignore-times` (every listed path changed, even a same-size rewrite in
//!   the same second that rsync's quick check would skip), so a
//!   listed path that no longer exists is deleted at the target. A rename is
//!   both paths: the old one is deleted, the new one sent (a directory with
//!   its subtree, hence `-r`).
//! - A full pass (`rsync -a --delete --force`) runs at start, on an inotify
//!   queue overflow (a `Rescan` event or a watcher error), when more than
//!   `max_pending` paths wait, and after any failed transfer — so when an
//!   unreachable peer comes back, whatever changed meanwhile converges.
//!   Failures are retried with exponential backoff.
//! - Every full pass is guarded (DESIGN §10): a dry run (`-n --delete -ii`)
//!   counts what it would delete out of the items at the target first, and
//!   the pass does not run when that is more than `max_delete_share` *and*
//!   `max_delete_count` ([`DeleteGuard`]), when the source is empty while the
//!   target holds items, or when the source was a mount point at start and is
//!   not one now (its `st_dev` equals its parent's). The reason is kept in the
//!   shared [`GuardHold`] (the group's `guard` status); the pass is retried
//!   with backoff, so it goes through by itself once the cause is fixed, or
//!   once when the operator releases it (`warden clear`). The real pass then
//!   runs with `--max-delete` (the checked count) in case the source emptied
//!   in between. Batches that delete (an inotify remove or rename) wait until
//!   removals have been quiet for [`DELETE_SETTLE`] (at most
//!   [`DELETE_SETTLE_MAX`]), so an `rm -rf` arrives as one batch; a batch
//!   whose deletions (with those of the last [`DELETE_WINDOW`]) trip the
//!   guard, or that finds the source empty or unmounted, is not sent: a full
//!   pass (which holds) is owed instead.
//! - Every transfer carries the [`attribute_args`] besides `-a`: xattrs
//!   (`-X`), ACLs (`-A`), hard links (`-H`), sparseness (`-S`), each on by
//!   default and switched by the config. `-H` only links names sent in the
//!   same transfer, so a batch whose regular files have other names outside
//!   it is not sent: a full pass is owed instead. A `--files-from` batch
//!   never sends the root `.` itself, so a batch that names a top-level
//!   entry, or the root (an event on the root itself), ends with a root-only
//!   transfer ([`Shared::send_root`]) that restores its mtime and attributes.
//!   Symlinks are never followed by the watcher.
//! - Before the first full pass that reaches the peer, the module is probed
//!   ([`check_symlinks`]): a daemon that munges or sanitizes symlinks
//!   (`use chroot = no`) is refused with the fix (docs/rsyncd.md).
//! - rsync runs in its own process group; cancelling (a stop) kills the
//!   group, and so does dropping a transfer.
//! - The password goes to rsync in `RSYNC_PASSWORD` (the child's
//!   environment), never on the command line, and is scrubbed from any rsync
//!   output quoted in an error.
//! - With `manifest` set, the pair [`Manifest`] (what is confirmed at the
//!   target) is kept up to date: an item is recorded with its local
//!   [`Stamp`] (inode, ns mtime, ctime) only when a stat before the transfer
//!   and one after it agree, i.e. the version sent is the one recorded
//!   (after a full pass: the listings before and after the pass; after a
//!   batch: its paths). An item that changed during its transfer keeps its
//!   older entry, whose stamp no longer matches: a later resync compares its
//!   content instead of trusting it.
//!   Saved atomically at most once a second and when replication stops.
//!   Names are bytes: manifest keys are [`escape_name`]d.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warden_config::secret::Secret;

use super::guard::{DeleteGuard, GuardHold};
use super::manifest::{escape_name, Item, Listing, Manifest, Stamp, Stamps, DIR};
use super::{Difference, DifferenceKind, Progress, Replicator, ResyncReport};
use crate::AgentError;

mod book;
mod process;
mod pull;
pub mod resync;
mod settings;
#[cfg(test)]
mod tests;

pub(crate) use book::*;
pub(crate) use process::*;
pub use settings::*;

/// What is waiting to be transferred; written by the watcher, taken by the worker.
#[derive(Debug, Default)]
struct State {
    /// Changed paths relative to the source root, not yet in a transfer.
    paths: BTreeSet<PathBuf>,
    /// When the oldest of `paths` changed.
    pending_since: Option<Instant>,
    /// Set when a full pass is needed, to when it became needed.
    full_since: Option<Instant>,
    /// The oldest change covered by the running full pass.
    full_inflight_since: Option<Instant>,
    /// Running batches: id → (oldest change covered, its paths).
    batches: std::collections::BTreeMap<u64, (Instant, Vec<PathBuf>)>,
    /// All paths of the running batches (a pending path overlapping one waits).
    batch_paths: BTreeSet<PathBuf>,
    /// The next batch id.
    next_batch: u64,
    /// When inotify last saw something leave a path (a remove or a rename).
    last_remove: Option<Instant>,
    /// Deletions sent by recent batches (within [`DELETE_WINDOW`]).
    recent_deletes: VecDeque<(Instant, u64)>,
    /// Items at the target after the last full pass (its dry run's count).
    target_items: Option<u64>,
}

impl State {
    /// The oldest change not yet confirmed at the target.
    fn oldest(&self) -> Option<Instant> {
        let batches = self.batches.values().map(|(t, _)| *t).min();
        earliest(
            earliest(self.pending_since, self.full_since),
            earliest(self.full_inflight_since, batches),
        )
    }

    /// Whether `p` is, contains or is inside a path of a running batch.
    fn overlaps_running(&self, p: &Path) -> bool {
        if p.ancestors().any(|a| self.batch_paths.contains(a)) {
            return true;
        }
        // Paths inside `p` sort right after it (components compare in order).
        self.batch_paths
            .range::<Path, _>((std::ops::Bound::Excluded(p), std::ops::Bound::Unbounded))
            .next()
            .is_some_and(|q| q.starts_with(p))
    }
}

/// The later of two optional deadlines.
fn earliest_some_max(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Batches wait until removals have been quiet this long (an `rm -rf` is one batch).
pub const DELETE_SETTLE: Duration = Duration::from_millis(100);
/// ... but not longer than this after their oldest change.
pub const DELETE_SETTLE_MAX: Duration = Duration::from_secs(1);
/// Batch deletions within this window count together against the guard.
pub const DELETE_WINDOW: Duration = Duration::from_secs(60);

/// Shared by the replicator, the watcher callback and the worker task.
struct Shared {
    settings: RsyncSettings,
    state: Mutex<State>,
    /// Wakes the worker when the watcher recorded something.
    wake: Notify,
    /// Batches share it; a full pass and `verify` take it alone.
    transfer: tokio::sync::RwLock<()>,
    /// The manifest being maintained; `None` until loaded (or without `settings.manifest`).
    book: Mutex<Option<Book>>,
    /// Whether the source was a mount point when replication started.
    was_mount: Mutex<bool>,
    /// Set once the peer module was seen to store symlinks byte for byte
    /// ([`check_symlinks`], before the first full pass that reaches it).
    module_checked: std::sync::atomic::AtomicBool,
}

/// The rsync [`Replicator`]. See the module docs.
pub struct RsyncReplicator {
    shared: Arc<Shared>,
    /// The worker, with the inotify watcher kept alive as long as it runs.
    running: crate::replicate::task::TaskSlot<notify::RecommendedWatcher>,
    /// Cancels a `start` still in its initial full pass (`stop` does not wait for it).
    starting: Mutex<Option<CancellationToken>>,
}

impl RsyncReplicator {
    /// A stopped replicator; nothing runs until [`Replicator::start`].
    pub fn new(settings: RsyncSettings) -> Self {
        RsyncReplicator {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                transfer: tokio::sync::RwLock::new(()),
                book: Mutex::new(None),
                was_mount: Mutex::new(false),
                module_checked: std::sync::atomic::AtomicBool::new(false),
            }),
            running: Default::default(),
            starting: Mutex::new(None),
        }
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &RsyncSettings {
        &self.shared.settings
    }
}

impl Drop for RsyncReplicator {
    fn drop(&mut self) {
        if let Some(t) = self
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.cancel();
        }
        self.running.cancel_now();
    }
}

#[async_trait]
impl Replicator for RsyncReplicator {
    async fn start(&self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let mut running = self.running.lock().await;
        if running.is_running() {
            return Ok(());
        }
        let shared = &self.shared;
        let source =
            std::fs::canonicalize(&shared.settings.source).map_err(|e| AgentError::Watch {
                path: shared.settings.source.display().to_string(),
                reason: format!("{e}; create the directory or fix the replication source"),
            })?;
        shared.load_book()?;
        *shared.was_mount.lock().unwrap() = is_mount_point(&source).unwrap_or(false);
        // Watch first, then the full pass: nothing changed after the pass started is lost.
        let watcher = watch_tree(shared.clone(), source)?;
        shared.state.lock().unwrap().full_since = Some(Instant::now());
        let cancel = shutdown.child_token();
        *self.starting.lock().unwrap() = Some(cancel.clone());
        let first = shared.run_full(&cancel).await;
        self.starting.lock().unwrap().take();
        match first {
            Ok(()) => {}
            Err(AgentError::DeleteGuard(why)) => {
                warn!(target = %shared.settings.target(), reason = %why, "initial full pass held by the mass-delete guard")
            }
            Err(e) if !e.is_retryable() => {
                shared.state.lock().unwrap().full_since = None;
                return Err(e);
            }
            Err(e) => {
                warn!(target = %shared.settings.target(), cause = %e, "initial full pass failed, retrying in the background")
            }
        }
        let task = tokio::spawn(worker(shared.clone(), cancel.clone()));
        info!(source = %shared.settings.source.display(), target = %shared.settings.target(), "rsync replication running");
        running.set(cancel, Some(task), watcher);
        Ok(())
    }

    async fn stop(&self) {
        // A start still in its initial pass ends now (its rsync is killed).
        if let Some(t) = self.starting.lock().unwrap().take() {
            t.cancel();
        }
        if self.running.stop().await {
            self.shared.save_manifest(true).await;
            info!(target = %self.shared.settings.target(), "rsync replication stopped");
        }
    }

    async fn resync(
        &self,
        cancel: CancellationToken,
        progress: Option<watch::Sender<Progress>>,
    ) -> Result<ResyncReport, AgentError> {
        self.shared.load_book()?;
        self.shared.check_module(&cancel).await?;
        let report = self.shared.full_pass(&cancel, progress.as_ref()).await?;
        self.shared.save_manifest(false).await;
        Ok(report)
    }

    fn lag(&self) -> Duration {
        let s = self.shared.state.lock().unwrap();
        s.oldest().map(|t| t.elapsed()).unwrap_or_default()
    }

    async fn verify(&self) -> Result<Vec<Difference>, AgentError> {
        let s = &self.shared.settings;
        let args = vec![
            "-a".into(),
            "--delete".into(),
            "--dry-run".into(),
            "--out-format=%i %n".into(),
            source_arg(&s.source),
            s.url().into(),
        ];
        let mut diffs = Vec::new();
        let cancel = CancellationToken::new();
        self.shared
            .rsync(args, None, true, &cancel, |line| {
                if let Some(d) = parse_difference(line) {
                    diffs.push(d);
                }
            })
            .await?;
        Ok(diffs)
    }
}

/// Starts a recursive inotify watch on `source` that records changes in `shared`.
fn watch_tree(
    shared: Arc<Shared>,
    source: PathBuf,
) -> Result<notify::RecommendedWatcher, AgentError> {
    let root = source.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        let now = Instant::now();
        let mut st = shared.state.lock().unwrap();
        match res {
            Err(e) => {
                warn!(cause = %e, "inotify error, a full pass follows");
                st.full_since = earliest(st.full_since, Some(now));
            }
            Ok(ev) if ev.need_rescan() => {
                warn!("inotify queue overflow, a full pass follows");
                st.full_since = earliest(st.full_since, Some(now));
            }
            Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => return,
            Ok(ev) => {
                if matches!(
                    ev.kind,
                    notify::EventKind::Remove(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Name(
                            notify::event::RenameMode::From
                                | notify::event::RenameMode::Both
                                | notify::event::RenameMode::Any
                        ))
                ) {
                    st.last_remove = Some(now);
                }
                for p in &ev.paths {
                    if let Ok(rel) = p.strip_prefix(&root) {
                        if rel.as_os_str().is_empty() {
                            // The root itself (its mode, owner, xattrs): `.`
                            // is never listed to rsync, it asks for [`Shared::send_root`].
                            st.paths.insert(PathBuf::from(ROOT));
                        } else {
                            st.paths.insert(rel.to_path_buf());
                        }
                    }
                }
                if st.paths.is_empty() {
                    return;
                }
                st.pending_since = earliest(st.pending_since, Some(now));
                if st.paths.len() > shared.settings.max_pending {
                    st.paths.clear();
                    st.full_since = earliest(st.full_since, st.pending_since.take());
                }
            }
        }
        drop(st);
        shared.wake.notify_one();
    };
    let path = source.display().to_string();
    // Symlinks are replicated as links, never followed: a link to a
    // directory outside the tree (or `../..`) would otherwise be watched,
    // and its events sent as paths through it (turning it into a directory
    // at the peer).
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher =
        notify::RecommendedWatcher::new(handler, config).map_err(|e| AgentError::Watch {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    watcher
        .watch(&source, RecursiveMode::Recursive)
        .map_err(|e| AgentError::Watch {
            path,
            reason: format!("{e}; check the path and fs.inotify.max_user_watches"),
        })?;
    Ok(watcher)
}

/// The continuous loop, then a last manifest save.
async fn worker(shared: Arc<Shared>, cancel: CancellationToken) {
    work_loop(&shared, cancel).await;
    shared.save_manifest(true).await;
}

/// Wait for changes, gather batches, run up to `max_transfers` of them,
/// run a full pass when one is owed (alone), retry failures.
async fn work_loop(shared: &Arc<Shared>, cancel: CancellationToken) {
    let s = &shared.settings;
    let mut backoff = s.retry_min;
    let mut failing = false;
    let mut running: tokio::task::JoinSet<Result<(), AgentError>> = tokio::task::JoinSet::new();
    loop {
        while let Some(done) = running.try_join_next() {
            if !shared.batch_done(done, &mut failing).await {
                return;
            }
        }
        let (full, pending, since, many, removed) = {
            let st = shared.state.lock().unwrap();
            (
                st.full_since.is_some(),
                !st.paths.is_empty(),
                st.pending_since,
                st.paths.len() >= s.batch_max,
                st.last_remove,
            )
        };
        if full {
            if let Some(done) = running.join_next().await {
                if !shared.batch_done(done, &mut failing).await {
                    return;
                }
                continue;
            }
            match shared.run_full(&cancel).await {
                Ok(()) => {
                    shared.save_manifest(false).await;
                    if failing {
                        info!(target = %s.target(), "replication target reachable again, caught up with a full pass");
                    }
                    failing = false;
                    backoff = s.retry_min;
                }
                Err(AgentError::ReplicationCancelled) => return,
                Err(AgentError::DeleteGuard(why)) => {
                    if !failing {
                        warn!(target = %s.target(), reason = %why, "replication held by the mass-delete guard, nothing deleted; retrying");
                    }
                    failing = true;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = s.hold.released() => {}
                        _ = cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(s.retry_max);
                }
                Err(e) => {
                    if !failing {
                        warn!(target = %s.target(), cause = %e, "replication transfer failed, retrying with a full pass");
                    } else {
                        debug!(target = %s.target(), cause = %e, "replication still failing");
                    }
                    failing = true;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(s.retry_max);
                }
            }
            continue;
        }
        if pending && running.len() < s.max_transfers.max(1) {
            // Let the batch fill for one window from its oldest change, or
            // until it is large; while paths are being removed, until the
            // removals settle (bounded), so a mass delete is judged whole.
            let fill = since
                .map(|t| t + s.batch_window)
                .filter(|d| *d > Instant::now() && !many);
            let settle = since
                .zip(removed)
                .map(|(t, r)| (r + DELETE_SETTLE).min(t + DELETE_SETTLE_MAX));
            let deadline = earliest_some_max(fill, settle).filter(|d| *d > Instant::now());
            if let Some(deadline) = deadline {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                    _ = shared.wake.notified() => {}
                    _ = cancel.cancelled() => return,
                }
                continue;
            }
            if let Some((id, paths)) = shared.take_batch() {
                running.spawn(shared.clone().run_batch(id, paths, cancel.clone()));
                continue;
            }
            // Everything pending overlaps a running batch: wait for one to end.
        }
        let save_in = shared.save_due_in().filter(|_| running.is_empty());
        tokio::select! {
            _ = shared.wake.notified() => {}
            Some(done) = running.join_next(), if !running.is_empty() => {
                if !shared.batch_done(done, &mut failing).await {
                    return;
                }
            }
            _ = tokio::time::sleep(save_in.unwrap_or_default()), if save_in.is_some() => {
                shared.save_manifest(false).await;
            }
            _ = cancel.cancelled() => return,
        }
    }
}

impl Shared {
    /// Loads the manifest file into memory once (when `settings.manifest` is set).
    fn load_book(&self) -> Result<(), AgentError> {
        let Some(path) = &self.settings.manifest else {
            return Ok(());
        };
        let mut book = self.book.lock().unwrap();
        if book.is_none() {
            let m = Manifest::load_escaped(path)?;
            *book = Some(Book {
                items: m.items,
                stamps: m.stamps,
                ..Book::default()
            });
        }
        Ok(())
    }

    /// Whether the manifest is maintained (set and loaded).
    fn keeps_manifest(&self) -> bool {
        self.book.lock().unwrap().is_some()
    }

    /// How long until an unsaved manifest is due to be saved; `None` when nothing is unsaved.
    fn save_due_in(&self) -> Option<Duration> {
        let book = self.book.lock().unwrap();
        let b = book.as_ref().filter(|b| b.dirty)?;
        Some(
            b.saved_at
                .map(|t| MANIFEST_SAVE_EVERY.saturating_sub(t.elapsed()))
                .unwrap_or_default(),
        )
    }

    /// Saves the manifest if it changed and (unless `force`) the last save is a second old.
    async fn save_manifest(&self, force: bool) {
        let Some(path) = self.settings.manifest.clone() else {
            return;
        };
        let manifest = {
            let mut book = self.book.lock().unwrap();
            let Some(b) = book.as_mut().filter(|b| b.dirty) else {
                return;
            };
            if !force
                && b.saved_at
                    .is_some_and(|t| t.elapsed() < MANIFEST_SAVE_EVERY)
            {
                return;
            }
            b.dirty = false;
            b.saved_at = Some(Instant::now());
            Manifest {
                stamps: b.stamps.clone(),
                ..Manifest::confirmed_escaped(b.items.clone())
            }
        };
        let saved = tokio::task::spawn_blocking(move || manifest.save(&path)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(cause = %e, "cannot save the replication manifest, retrying later");
                if let Some(b) = self.book.lock().unwrap().as_mut() {
                    b.dirty = true;
                }
            }
            Err(e) => warn!(cause = %e, "manifest save task failed"),
        }
    }

    /// Handles a finished batch; `false` when the worker must end (cancelled).
    async fn batch_done(
        &self,
        done: Result<Result<(), AgentError>, tokio::task::JoinError>,
        failing: &mut bool,
    ) -> bool {
        match done {
            Ok(Ok(())) => {
                self.save_manifest(false).await;
                true
            }
            Ok(Err(AgentError::ReplicationCancelled)) => false,
            Ok(Err(AgentError::DeleteGuard(why))) => {
                warn!(target = %self.settings.target(), reason = %why, "replication batch not sent (mass-delete guard), a guarded full pass follows");
                true
            }
            Ok(Err(e)) => {
                if !*failing {
                    warn!(target = %self.settings.target(), cause = %e, "replication batch failed, a full pass follows");
                }
                *failing = true;
                true
            }
            Err(e) => {
                warn!(cause = %e, "replication batch task failed, a full pass follows");
                let mut st = self.state.lock().unwrap();
                st.full_since = earliest(st.full_since, Some(Instant::now()));
                true
            }
        }
    }

    /// Takes up to `batch_max` pending paths that overlap no running batch
    /// and marks them running.
    fn take_batch(&self) -> Option<(u64, Vec<PathBuf>)> {
        let mut st = self.state.lock().unwrap();
        let since = st.pending_since?;
        let mut taken = Vec::new();
        let mut left = BTreeSet::new();
        for p in std::mem::take(&mut st.paths) {
            if taken.len() < self.settings.batch_max && !st.overlaps_running(&p) {
                // Overlaps within the batch are fine: one rsync sends them in order.
                taken.push(p);
            } else {
                left.insert(p);
            }
        }
        st.paths = left;
        if st.paths.is_empty() {
            st.pending_since = None;
        }
        if taken.is_empty() {
            return None;
        }
        let id = st.next_batch;
        st.next_batch += 1;
        st.batch_paths.extend(taken.iter().cloned());
        st.batches.insert(id, (since, taken.clone()));
        Some((id, taken))
    }

    /// Runs batch `id`; on failure a full pass is owed from its oldest change.
    async fn run_batch(
        self: Arc<Self>,
        id: u64,
        paths: Vec<PathBuf>,
        cancel: CancellationToken,
    ) -> Result<(), AgentError> {
        let (result, owe_full) = match self.send_batch(paths, &cancel).await {
            Ok(sent) => (Ok(()), !sent),
            Err(e) => (Err(e), true),
        };
        let mut st = self.state.lock().unwrap();
        if let Some((since, paths)) = st.batches.remove(&id) {
            for p in &paths {
                st.batch_paths.remove(p);
            }
            if owe_full {
                st.full_since = earliest(st.full_since, Some(since));
            }
        }
        drop(st);
        self.wake.notify_one();
        result
    }

    /// A batch's paths as rsync needs them: `Ok(false)` (nothing sent) when a
    /// full pass must send them instead, because `-H` only links names sent
    /// in the same transfer and a changed file has other names outside the
    /// batch. The root ([`ROOT`]) is never listed: a batch that names it or
    /// a top-level entry (whose creation, rewrite or deletion at the peer
    /// changes the peer root's mtime) ends with [`Shared::send_root`].
    async fn send_batch(
        &self,
        paths: Vec<PathBuf>,
        cancel: &CancellationToken,
    ) -> Result<bool, AgentError> {
        let s = &self.settings;
        let (root, paths): (Vec<PathBuf>, Vec<PathBuf>) =
            paths.into_iter().partition(|p| p == Path::new(ROOT));
        let touches_root = !root.is_empty() || paths.iter().any(|p| p.components().count() == 1);
        if s.hard_links && !paths.is_empty() {
            let (root, list) = (s.source.clone(), paths.clone());
            let linked = tokio::task::spawn_blocking(move || links_outside(&root, &list))
                .await
                .map_err(|e| AgentError::Task(e.to_string()))?;
            if linked {
                debug!(
                    paths = paths.len(),
                    "batch changes hard-linked files with names outside it, a full pass sends it"
                );
                return Ok(false);
            }
        }
        if !paths.is_empty() {
            self.batch(paths, cancel).await?;
        }
        if touches_root {
            self.send_root(cancel).await?;
        }
        Ok(true)
    }

    /// `rsync -a -d --no-r --exclude=* SOURCE/ URL`: only the transfer root
    /// itself, with its mtime, mode, owner, xattrs and ACLs. A
    /// `--files-from` batch sends the implied directories of its paths but
    /// never `.`, while writing or deleting top-level names changes the
    /// peer root's mtime.
    async fn send_root(&self, cancel: &CancellationToken) -> Result<(), AgentError> {
        let s = &self.settings;
        let args = vec![
            "-a".into(),
            "--no-r".into(),
            "-d".into(),
            "--exclude=*".into(),
            source_arg(&s.source),
            s.url().into(),
        ];
        self.rsync(args, None, false, cancel, |_| {}).await
    }

    /// [`check_symlinks`] until it passed once.
    async fn check_module(&self, cancel: &CancellationToken) -> Result<(), AgentError> {
        use std::sync::atomic::Ordering;
        if self.module_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        check_symlinks(&self.settings, cancel).await?;
        self.module_checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Runs the owed full pass (it covers everything pending); on failure it stays owed.
    async fn run_full(&self, cancel: &CancellationToken) -> Result<(), AgentError> {
        {
            let mut st = self.state.lock().unwrap();
            let since = earliest(st.full_since.take(), st.pending_since.take());
            st.full_inflight_since = earliest(st.full_inflight_since, since);
            st.paths.clear();
        }
        let result = match self.check_module(cancel).await {
            Ok(()) => self.full_pass(cancel, None).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let mut st = self.state.lock().unwrap();
        if result.is_err() {
            st.full_since = earliest(st.full_since, st.full_inflight_since);
        }
        st.full_inflight_since = None;
        result
    }

    /// One `--files-from` transfer of the listed relative paths.
    async fn batch(
        &self,
        paths: Vec<PathBuf>,
        cancel: &CancellationToken,
    ) -> Result<(), AgentError> {
        let s = &self.settings;
        self.check_mount()?;
        self.guard_batch(&paths, cancel).await?;
        let updates = if self.keeps_manifest() {
            let (root, paths) = (s.source.clone(), paths.clone());
            Some(
                tokio::task::spawn_blocking(move || stat_paths(&root, &paths))
                    .await
                    .map_err(|e| AgentError::Task(e.to_string()))?,
            )
        } else {
            None
        };
        let mut list = Vec::new();
        for p in &paths {
            list.extend_from_slice(p.as_os_str().as_encoded_bytes());
            list.push(0);
        }
        debug!(paths = paths.len(), "rsync batch");
        let args = vec![
            "-a".into(),
            "-r".into(),
            "--files-from=-".into(),
            "--from0".into(),
            "--delete-missing-args".into(),
            "--force".into(),
            // Listed because they changed: rsync's size+mtime quick check
            // would skip a same-size rewrite within the same second.
            "--ignore-times".into(),
            source_arg(&s.source),
            s.url().into(),
        ];
        self.rsync(args, Some(list), false, cancel, |_| {}).await?;
        if let Some(before) = updates {
            // What was sent is what was stat'ed before only if it still is.
            let root = s.source.clone();
            let after = tokio::task::spawn_blocking(move || stat_paths(&root, &paths))
                .await
                .map_err(|e| AgentError::Task(e.to_string()))?;
            let updates = confirmed_updates(before, after);
            if let Some(b) = self.book.lock().unwrap().as_mut() {
                apply_updates(b, updates);
                b.dirty = true;
            }
        }
        Ok(())
    }

    /// `rsync -a --delete --force SOURCE/ URL`, counting what rsync reports.
    async fn full_pass(
        &self,
        cancel: &CancellationToken,
        progress: Option<&watch::Sender<Progress>>,
    ) -> Result<ResyncReport, AgentError> {
        let s = &self.settings;
        let started = Instant::now();
        let released_mount = self.check_mount()?;
        // The listing before the pass: what the pass is sure to have carried.
        let before = if self.keeps_manifest() {
            Some(self.list_source().await?)
        } else {
            None
        };
        // The guard: what would this pass delete, out of how many items at the target?
        let dry = self.dry_run(cancel).await?;
        let target = s.target();
        let verdict = if dry.source_items == 0 && dry.target_items > 0 {
            s.hold.trip(format!(
                "mass-delete guard: the replication source {} is empty while {target} holds {} items; \
                 nothing was deleted. Check the source (emptied, unmounted?): replication resumes by itself \
                 once its files are back; run `warden clear GROUP` only if the peer must really be emptied",
                s.source.display(),
                dry.target_items
            ))
        } else {
            s.hold
                .check(&s.guard, dry.deletes, dry.target_items, &target)
        };
        let released = verdict.map_err(AgentError::DeleteGuard)? || released_mount;
        let mut args: Vec<OsString> = vec![
            "-a".into(),
            "--delete".into(),
            "--force".into(),
            "--out-format=%i %l %n".into(),
        ];
        if !released {
            // The source may empty between the dry run and the pass.
            let most = dry.deletes.max(s.guard.max_count);
            args.push(format!("--max-delete={most}").into());
        }
        args.push(source_arg(&s.source));
        args.push(s.url().into());
        let mut done = Progress::default();
        self.rsync(args, None, true, cancel, |line| {
            done.items += 1;
            if line.starts_with(['<', '>']) {
                let len = line
                    .get(12..)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok());
                done.bytes += len.unwrap_or(0);
            }
            if let Some(tx) = progress {
                tx.send_replace(done);
            }
        })
        .await
        .map_err(|e| match e {
            AgentError::Rsync { code: 25, .. } => {
                let why = format!(
                    "mass-delete guard: the source {} changed during the pass and rsync stopped deleting \
                     at --max-delete (checked: {} of {} items at {target}). Check the source, then run \
                     `warden clear GROUP` if the deletions are wanted",
                    s.source.display(),
                    dry.deletes,
                    dry.target_items
                );
                let _ = s.hold.trip(why.clone());
                AgentError::DeleteGuard(why)
            }
            e => e,
        })?;
        s.hold.passed();
        self.state.lock().unwrap().target_items = Some(dry.source_items);
        debug!(
            items = done.items,
            bytes = done.bytes,
            "rsync full pass done"
        );
        if let Some((mut items, mut stamps)) = before {
            // Only what did not change while the pass ran is what it carried;
            // what did keeps its older entry (see `confirmed_updates`).
            let (_, after) = self.list_source().await?;
            if let Some(b) = self.book.lock().unwrap().as_mut() {
                let changed: Vec<String> = stamps
                    .iter()
                    .filter(|(name, st)| after.get(*name) != Some(*st))
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in changed {
                    items.remove(&name);
                    stamps.remove(&name);
                    if let Some(old) = b.items.get(&name) {
                        items.insert(name.clone(), old.clone());
                        if let Some(st) = b.stamps.get(&name) {
                            stamps.insert(name, *st);
                        }
                    }
                }
                b.items = items;
                b.stamps = stamps;
                b.dirty = true;
            }
        }
        Ok(ResyncReport {
            done,
            elapsed: started.elapsed(),
        })
    }

    /// The source's items and stamps for the manifest (a blocking walk off the runtime).
    async fn list_source(&self) -> Result<(Listing, Stamps), AgentError> {
        let s = &self.settings;
        let root = s.source.clone();
        tokio::task::spawn_blocking(move || list_local_stamped(&root))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?
            .map_err(|e| AgentError::Watch {
                path: s.source.display().to_string(),
                reason: format!("cannot list it for the manifest: {e}"),
            })
    }

    /// The source was a mount point at start and is not one now: held
    /// (`Err`), unless the operator released it (`Ok(true)`, and the source
    /// as it is now becomes the baseline).
    fn check_mount(&self) -> Result<bool, AgentError> {
        let s = &self.settings;
        if !*self.was_mount.lock().unwrap() {
            return Ok(false);
        }
        if is_mount_point(&s.source).unwrap_or(false) {
            return Ok(false);
        }
        let why = format!(
            "mass-delete guard: the replication source {} was a mount point when replication started \
             and is not one now (unmounted?); nothing was sent or deleted. Mount it again (replication \
             resumes by itself), or run `warden clear GROUP` if the data now lives there unmounted",
            s.source.display()
        );
        s.hold.trip(why).map_err(AgentError::DeleteGuard)?;
        *self.was_mount.lock().unwrap() = false;
        Ok(true)
    }

    /// A batch that would delete too much (with the recent batches), or
    /// delete from a source that is now empty, is not sent (`Err`; the
    /// guarded full pass that follows holds with exact counts).
    async fn guard_batch(
        &self,
        paths: &[PathBuf],
        cancel: &CancellationToken,
    ) -> Result<(), AgentError> {
        let s = &self.settings;
        let (root, list) = (s.source.clone(), paths.to_vec());
        let (gone, empty) = tokio::task::spawn_blocking(move || {
            let gone: Vec<String> = list
                .iter()
                .filter(|p| {
                    matches!(root.join(p).symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                })
                .map(|p| escape_name(p.as_os_str().as_bytes()))
                .collect();
            let empty = std::fs::read_dir(&root)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            (gone, empty)
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?;
        if gone.is_empty() {
            return Ok(());
        }
        // Items at the target these deletions take (a directory: its
        // subtree, once even when its entries are listed too).
        let gone: Vec<&String> = gone
            .iter()
            .filter(|n| {
                !gone.iter().any(|a| {
                    n.len() > a.len() && n.starts_with(a.as_str()) && n.as_bytes()[a.len()] == b'/'
                })
            })
            .collect();
        // The book counts exactly only names it knows as files: it is a
        // lower bound of the target (a pass keeps what changed while it ran
        // at its older entry, or none), so a gone directory or a name it
        // does not know is counted at the target itself.
        let (book_deletes, known_book, exact) = match self.book.lock().unwrap().as_ref() {
            Some(b) => (
                gone.iter()
                    .map(|n| count_under(&b.items, n).max(1))
                    .sum::<u64>(),
                Some(b.items.len() as u64),
                gone.iter().all(|n| {
                    b.items.get(n.as_str()).is_some_and(|i| !i.is_dir())
                        && count_under(&b.items, n) == 1
                }),
            ),
            None => (gone.len() as u64, None, false),
        };
        let deletes = if exact {
            book_deletes
        } else {
            book_deletes.max(self.batch_deletes(paths, cancel).await?)
        };
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        while st
            .recent_deletes
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > DELETE_WINDOW)
        {
            st.recent_deletes.pop_front();
        }
        let recent: u64 = st.recent_deletes.iter().map(|(_, n)| n).sum();
        let known = known_book.max(st.target_items).unwrap_or(0);
        if empty && known > 0 {
            return Err(AgentError::DeleteGuard(format!(
                "the source {} is empty while {} holds {known} items",
                s.source.display(),
                s.target()
            )));
        }
        s.guard
            .check(recent + deletes, known, &s.target())
            .map_err(AgentError::DeleteGuard)?;
        st.recent_deletes.push_back((now, deletes));
        Ok(())
    }

    /// `rsync -n` of a batch: how many items at the target it would delete
    /// (a directory counts with everything under it).
    async fn batch_deletes(
        &self,
        paths: &[PathBuf],
        cancel: &CancellationToken,
    ) -> Result<u64, AgentError> {
        let s = &self.settings;
        let mut list = Vec::new();
        for p in paths {
            list.extend_from_slice(p.as_os_str().as_encoded_bytes());
            list.push(0);
        }
        let args = vec![
            "-n".into(),
            "-a".into(),
            "-r".into(),
            "--files-from=-".into(),
            "--from0".into(),
            "--delete-missing-args".into(),
            "--force".into(),
            "-ii".into(),
            "--out-format=%i %n".into(),
            source_arg(&s.source),
            s.url().into(),
        ];
        let mut deletes = 0;
        self.rsync(args, Some(list), false, cancel, |line| {
            if line.starts_with("*deleting") {
                deletes += 1;
            }
        })
        .await?;
        Ok(deletes)
    }

    /// `rsync -n -a --delete -ii`: what a full pass would delete, and how
    /// many items the source and the target hold (the root not counted).
    async fn dry_run(&self, cancel: &CancellationToken) -> Result<DryRun, AgentError> {
        let s = &self.settings;
        let args = vec![
            "-n".into(),
            "-a".into(),
            "--delete".into(),
            "-ii".into(),
            "--out-format=%i %n".into(),
            source_arg(&s.source),
            s.url().into(),
        ];
        let mut dry = DryRun::default();
        self.rsync(args, None, true, cancel, |line| {
            let Some((flags, name)) = line.split_at_checked(11) else {
                return;
            };
            if name.trim_start() == "./" || name.is_empty() {
                return;
            }
            if flags.starts_with("*deleting") {
                dry.deletes += 1;
                dry.target_items += 1;
            } else if flags.get(2..).is_some_and(|f| f.starts_with("+++++++")) {
                dry.source_items += 1;
            } else if flags.starts_with(['<', '>', 'c', 'h', '.']) {
                dry.source_items += 1;
                dry.target_items += 1;
            }
        })
        .await?;
        Ok(dry)
    }

    /// Runs rsync with the password in its environment, feeding `stdin` and
    /// handing each stdout line to `on_line`; kills it when `cancel` fires.
    /// `alone`: no other transfer runs meanwhile (full pass, verify). Every
    /// push transfer and dry run goes through here, so each carries the
    /// [`attribute_args`].
    async fn rsync(
        &self,
        args: Vec<OsString>,
        stdin: Option<Vec<u8>>,
        alone: bool,
        cancel: &CancellationToken,
        on_line: impl FnMut(&str) + Send,
    ) -> Result<(), AgentError> {
        let mut all = attribute_args(&self.settings);
        all.extend(args);
        let args = all;
        if alone {
            let _alone = self.transfer.write().await;
            run_rsync(&self.settings, args, stdin, cancel, on_line).await
        } else {
            let _shared = self.transfer.read().await;
            run_rsync(&self.settings, args, stdin, cancel, on_line).await
        }
    }
}

/// The batch path that stands for the source root itself (never listed to rsync).
const ROOT: &str = ".";
