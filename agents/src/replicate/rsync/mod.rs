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
//!   `rsync -a -r --files-from=- --from0 --delete-missing-args --delete
//!   --force --max-delete=N --ignore-times` (every listed path changed, even
//!   a same-size rewrite in the same second that rsync's quick check would
//!   skip), so a listed path that no longer exists is deleted at the target,
//!   one whose kind changed is replaced, and a listed directory ends equal
//!   to the source's (`--delete` acts only inside listed directories: a
//!   directory swapped in by renames, `mv current old; mv new current`, is
//!   reported by its name alone, and none of its old entries stay). A
//!   rename is both paths: the old one is deleted, the new one sent (a
//!   directory with its subtree, hence `-r`).
//! - A full pass (`rsync -a --delete --force`) runs at start, on an inotify
//!   queue overflow (a `Rescan` event or a watcher error), when more than
//!   `max_pending` paths wait, and after any failed transfer — so when an
//!   unreachable peer comes back, whatever changed meanwhile converges.
//!   An overflow or a watcher error (a new directory refused a watch at
//!   the inotify watch limit) also has the tree watched afresh: a
//!   directory whose creation was lost, or that got no watch, would send
//!   no event again. While the tree cannot be watched whole, a full pass
//!   runs every [`ROOT_CHECK_EVERY`] instead, and the status says so.
//!   Failures are retried with exponential backoff. One also runs
//!   `audit_every` after the last ([`audit`]): what it changes at the peer
//!   that nothing here changed is drift, said in the status.
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
//!   [`DELETE_SETTLE_MAX`]), so an `rm -rf` arrives as one batch. Every
//!   deletion a batch can make is counted before it runs (gone names,
//!   subtrees under a changed kind, a listed directory's entries gone from
//!   the source: from the book, or by a dry run at the peer where the book
//!   cannot tell; a batch of changed or new files needs none); a batch
//!   whose deletions (with those of the last [`DELETE_WINDOW`](super::guard::DELETE_WINDOW)) trip the
//!   guard, or that finds the source empty or unmounted, is not sent: a full
//!   pass (which holds) is owed instead. Its `--max-delete` is what the
//!   guard's limits still allow (the book is a lower bound of the peer):
//!   a batch that reaches it stops, its deletions stay counted, and the
//!   full pass it owes counts and holds the rest. A full pass counts the deletions of
//!   the window with its own too (so a source emptied a file at a time is
//!   held, not carried by the pass the tripped batch owes).
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
//!   batch: its paths, a listed directory's subtree replacing the book's). An item that changed during its transfer keeps its
//!   older entry, whose stamp no longer matches: a later resync compares its
//!   content instead of trusting it.
//!   Saved atomically at most once a second and when replication stops.
//!   Names are bytes: manifest keys are [`escape_name`]d.

use std::collections::BTreeSet;
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

use super::guard::{DeleteGuard, GuardHold, RecentDeletes, Trip};
use super::manifest::{escape_name, Item, Listing, Manifest, Stamp, Stamps, DIR};
use super::recent_deletes::Side;
use super::{Difference, DifferenceKind, Progress, Replicator, ResyncReport};
use crate::AgentError;

mod audit;
mod behind;
mod book;
mod carried;
mod classify;
#[cfg(test)]
mod fuzz;
mod guarded;
mod process;
mod pull;
pub mod receivers;
pub mod resync;
mod settings;
mod skipped;
#[cfg(test)]
mod tests;
mod transfer;
mod unconfirmed;
mod watcher;
mod worker;

pub(crate) use book::*;
use carried::*;
pub(crate) use classify::*;
use guarded::{batch_args, BatchDeletes, MAX_DELETE_ARG};
pub(crate) use process::*;
pub use settings::*;
use watcher::Watched;
pub use watcher::ROOT_CHECK_EVERY;
use worker::worker;

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
    /// Deletions sent by recent batches and full passes (within [`DELETE_WINDOW`](super::guard::DELETE_WINDOW)).
    recent_deletes: RecentDeletes,
    /// Items at the target after the last full pass (its dry run's count).
    target_items: Option<u64>,
    /// The watch no longer covers the whole tree and must be set up
    /// afresh: the watcher saw the source root itself removed or moved
    /// away, or inotify lost events or could not watch a new directory (a
    /// queue overflow, the watch limit reached): a directory whose creation
    /// was lost, or that got no watch, sends no event for what is written
    /// in it later.
    rewatch: bool,
    /// An audit is owed (`audit_every` passed since `last_full`): a full
    /// pass that owes nothing to a change here, so it does not count in
    /// the lag.
    audit_due: bool,
    /// When the last full pass went through.
    last_full: Option<Instant>,
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
    /// Whether the source was a mount point when replication started (or
    /// is declared one: `mount_point = true`, or recorded as one in the
    /// site's `volumes.json`).
    was_mount: Mutex<bool>,
    /// Set once the peer module was seen to store symlinks byte for byte
    /// ([`check_symlinks`], before the first full pass that reaches it).
    module_checked: std::sync::atomic::AtomicBool,
    /// The last transfer's failure while continuous replication keeps
    /// failing (retried in the background); cleared by the next full pass
    /// that succeeds. What the status shows besides the growing lag.
    failing: Mutex<Option<String>>,
    /// Why the source tree is not watched whole (its watch cannot be set
    /// up: the inotify watch limit, …) while full passes stand in for
    /// inotify; `None` while it is watched. Shown as the status's error.
    unwatched: Mutex<Option<String>>,
    /// What the last audit found changed at the peer behind replication's
    /// back (sent again by it); `None` once an audit finds nothing.
    drift: Mutex<Option<String>>,
    /// The lag kept beside the manifest ([`behind`]).
    behind: Mutex<behind::BehindState>,
    /// What was sent and not confirmed yet ([`unconfirmed`]).
    sent: Arc<Mutex<unconfirmed::SentBook>>,
}

/// The rsync [`Replicator`]. See the module docs.
pub struct RsyncReplicator {
    shared: Arc<Shared>,
    /// The worker (it owns the inotify watch).
    running: crate::replicate::task::TaskSlot,
    /// Cancels a `start` still in its initial full pass (`stop` does not wait for it).
    starting: Mutex<Option<CancellationToken>>,
}

impl RsyncReplicator {
    /// A stopped replicator; nothing runs until [`Replicator::start`].
    pub fn new(settings: RsyncSettings) -> Self {
        // The guard's window kept beside the manifest, when there is one.
        let recent_deletes = settings
            .manifest
            .as_deref()
            .map(|m| RecentDeletes::beside(m, Side::Push))
            .unwrap_or_default();
        let sent = unconfirmed::SentBook::beside(settings.manifest.as_deref());
        RsyncReplicator {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(State {
                    recent_deletes,
                    ..State::default()
                }),
                wake: Notify::new(),
                transfer: tokio::sync::RwLock::new(()),
                book: Mutex::new(None),
                was_mount: Mutex::new(false),
                module_checked: std::sync::atomic::AtomicBool::new(false),
                failing: Mutex::new(None),
                unwatched: Mutex::new(None),
                drift: Mutex::new(None),
                behind: Mutex::default(),
                sent,
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
        shared.load_book()?;
        shared.reload_sent();
        if let Some(m) = &shared.settings.manifest {
            resync::drop_stale_pull_log(m);
        }
        // Watch first, then the full pass: nothing changed after the pass started is lost.
        let watched = Watched::start(shared)?;
        *shared.was_mount.lock().unwrap() = shared.declared_mount()
            || shared.recorded_mount()
            || is_mount_point(&shared.settings.source).unwrap_or(false);
        shared.state.lock().unwrap().full_since = Some(Instant::now());
        shared.take_up_behind();
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
                warn!(target = %shared.settings.target(), cause = %e, "initial full pass failed, retrying in the background");
                *shared.failing.lock().unwrap() = Some(e.to_string());
            }
        }
        let task = tokio::spawn(worker(shared.clone(), cancel.clone(), watched));
        info!(source = %shared.settings.source.display(), target = %shared.settings.target(), "rsync replication running");
        running.set(cancel, Some(task), ());
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
        let report = self
            .shared
            .full_pass(&cancel, progress.as_ref(), None)
            .await?;
        self.shared.save_manifest(false).await;
        Ok(report)
    }

    fn lag(&self) -> Duration {
        let oldest = self.shared.state.lock().unwrap().oldest();
        // while behind, at least what was owed before this start
        oldest.map_or(Duration::ZERO, |t| t.elapsed().max(self.shared.kept_lag()))
    }

    fn failing(&self) -> Option<String> {
        let failing = self.shared.failing.lock().unwrap().clone();
        failing.or_else(|| self.shared.unwatched.lock().unwrap().clone())
    }

    fn drift(&self) -> Option<String> {
        self.shared.drift.lock().unwrap().clone()
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
        let busy = self.busy_names();
        let (sent, root) = (self.sent.clone(), self.settings.source.clone());
        let saved = tokio::task::spawn_blocking(move || {
            unconfirmed::save_and_compact(&sent, &root, &path, &manifest, &busy)
        })
        .await;
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
