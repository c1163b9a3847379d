//! Replication plans, agent side: keep a site's data mirrored at the peer
//! site so a failover finds it there (DESIGN.md §6).
//!
//! A [`Replicator`] owns one direction (this site → the peer). The
//! orchestrator decides the direction; the agent only runs it. Plans:
//! - [`rsync`]: a directory mirrored to an rsync daemon module with the real
//!   `rsync` binary, driven by inotify ([`rsync::RsyncReplicator`]); its
//!   failback side pulls the module back ([`rsync_resync::RsyncResyncer`]);
//! - [`command`]: a user command per phase for anything else, e.g. a
//!   database ([`command::CommandPlan`]);
//! - [`swift`]: two Swift clusters through the Swift API
//!   ([`swift::SwiftReplicator`], [`swift::SwiftResyncer`]), Swift's own
//!   container sync ([`swift::SwiftContainerSync`]), and `none`
//!   ([`swift::NoReplication`], a stretched cluster).
//!
//! The failback side is a [`Resyncer`]: the returning (stale) site brings
//! itself to the active peer's content, using the pair's [`Manifest`] to tell
//! deletions from divergent writes ([`manifest`]).

mod clock_set;
pub mod command;
pub mod guard;
pub mod journal;
pub mod manifest;
pub mod plan;
pub(crate) mod recent_deletes;
pub mod replication;
pub mod rsync;
pub mod sent;
/// The rsync plan's failback side (kept at its old path).
pub use rsync::resync as rsync_resync;
pub mod swift;
pub(crate) mod task;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::AgentError;

pub use command::{CommandLine, CommandPlan, CommandSettings};
pub use manifest::{
    classify, Classification, DivergentItem, DivergentPolicy, DivergentReason, Item, Listing,
    Manifest,
};
pub use rsync::{RsyncReplicator, RsyncSettings, SshLogin, Volume};
pub use rsync_resync::RsyncResyncer;
pub use swift::{
    ContainerSyncSettings, ContainerSyncSite, NoReplication, SwiftClient, SwiftContainerSync,
    SwiftReplicator, SwiftReplicatorSettings, SwiftResyncer, SwiftResyncerSettings, SwiftSettings,
};

/// Whether the order a replicator was built for still stands at this
/// site (the agent's authority: this site still active in the group, no
/// newer epoch known); `Err` says why not. Asked by work that outlives its
/// command before it acts on the peer (every rsync push, every `swift`
/// copier round, a container-sync start retried in the background).
/// Cheap: memory only.
///
/// It holds the order's epoch — the one a push states to the peer
/// ([`crate::gate::order`]) — never an epoch the site merely heard: a
/// site deposed at 4 that heard of epoch 5 (a failover elsewhere) must not
/// pass a third site's gate as if it were the active site of 5. A newer
/// start order that keeps the replicator ([`OrderCheck::raise`]) is the
/// only way up. Clones share the epoch.
#[derive(Clone)]
pub struct OrderCheck {
    stands: Arc<dyn Fn(u64) -> Result<(), String> + Send + Sync>,
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl OrderCheck {
    /// An order of `epoch`, judged by `check` (given the order's epoch
    /// as it is then).
    pub fn new(
        epoch: u64,
        check: impl Fn(u64) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        OrderCheck {
            stands: Arc::new(check),
            epoch: Arc::new(std::sync::atomic::AtomicU64::new(epoch)),
        }
    }

    /// `Err(why)` once the order no longer stands.
    pub fn stands(&self) -> Result<(), String> {
        (self.stands)(self.epoch())
    }

    /// The order's epoch (raised by a newer start that kept the replicator).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A newer start order toward the same peer kept the replicator: from
    /// now on it runs under `epoch` (never lowered).
    pub fn raise(&self, epoch: u64) {
        self.epoch
            .fetch_max(epoch, std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for OrderCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OrderCheck(epoch {})", self.epoch())
    }
}

/// How far a full pass has got (sent on the progress channel while it runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Items (files, directories, links, deletions) rsync reported as changed so far.
    pub items: u64,
    /// Bytes of the files among them (their full length, not the wire bytes).
    pub bytes: u64,
}

/// What a finished full pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncReport {
    /// The final [`Progress`].
    pub done: Progress,
    /// Wall time of the pass.
    pub elapsed: Duration,
}

/// One way the source and the target differ, found by [`Replicator::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Path relative to the replicated root (directories end with `/`).
    pub path: PathBuf,
    /// What differs.
    pub kind: DifferenceKind,
}

/// The kind of a [`Difference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceKind {
    /// At the source, not at the target.
    MissingAtTarget,
    /// At the target, not at the source.
    ExtraAtTarget,
    /// On both sides, with a different size and/or modification time.
    Changed,
}

/// One replication plan in one direction. Held as `Arc<dyn Replicator>`.
///
/// All calls are safe to repeat: `start` on a running replicator and `stop`
/// on a stopped one do nothing; `resync` is a full mirror and idempotent.
#[async_trait]
pub trait Replicator: Send + Sync {
    /// Starts continuous replication: a full pass first, then every change
    /// as it happens, until `stop` or until `shutdown` is cancelled.
    /// Returns once the replicator is running. Fails only on what retrying
    /// cannot fix (wrong password, missing or read-only target); an
    /// unreachable peer is retried in the background.
    async fn start(&self, shutdown: CancellationToken) -> Result<(), AgentError>;

    /// Stops continuous replication and waits for its transfer to end
    /// (a running transfer is killed).
    async fn stop(&self);

    /// Runs one full pass now (deletes at the target what the source lacks),
    /// reporting progress on `progress` when given. Cancelled by `cancel`.
    async fn resync(
        &self,
        cancel: CancellationToken,
        progress: Option<watch::Sender<Progress>>,
    ) -> Result<ResyncReport, AgentError>;

    /// The age of the oldest change not yet at the target; zero when in sync.
    fn lag(&self) -> Duration;

    /// Whether [`Replicator::lag`] is known: a plan that cannot tell (a
    /// `command` plan without a lag command, or whose lag command fails)
    /// reports no lag rather than 0 — an unknown lag holds an automatic
    /// failover for approval (`max_lag_on_failover`). Default: known.
    fn lag_known(&self) -> bool {
        true
    }

    /// Compares source and target by relative path, size and mtime; empty
    /// means equal. Read-only at both ends.
    async fn verify(&self) -> Result<Vec<Difference>, AgentError>;

    /// Items the last pass refused to touch (names a URL would rewrite,
    /// control characters), escaped for display with the reason, sorted;
    /// the full list (the status shows the first ones and the count).
    /// Default: none.
    fn refused(&self) -> Vec<String> {
        Vec::new()
    }

    /// While continuous replication keeps failing and retrying in the
    /// background (an unreachable peer, a refused login or push): the last
    /// failure. `None` once a transfer gets through. Default: `None`.
    fn failing(&self) -> Option<String> {
        None
    }

    /// What the last audit of the peer found changed there behind
    /// replication's back (and sent again); `None` once an audit finds
    /// nothing. Default: `None`.
    fn drift(&self) -> Option<String> {
        None
    }

    /// While the mass-delete guard holds replication: its message (what
    /// the pass would have deleted, what to do). `None` otherwise, and
    /// again once a pass is within the limits. Default: `None`.
    fn guard(&self) -> Option<String> {
        None
    }

    /// The operator's `warden clear`: lets the next pass go ahead once
    /// (deleting no more than the held pass would have). Returns whether
    /// a pass was held. Default: nothing held, `false`.
    fn clear_guard(&self) -> bool {
        false
    }

    /// [`Self::clear_guard`] only while the hold is the one the operator
    /// read (`seen`, the message [`Self::guard`] gave).
    fn clear_guard_seen(&self, seen: &str) -> bool {
        self.guard()
            .is_some_and(|held| guard::same_hold(&held, seen))
            && self.clear_guard()
    }
}

/// How far a resync pass has got: done and left (sent while it runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncProgress {
    pub items_done: u64,
    pub bytes_done: u64,
    pub items_left: u64,
    pub bytes_left: u64,
}

/// What one [`Resyncer::pass`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Items and bytes fetched from the peer.
    pub fetched: Progress,
    /// Items deleted here because the peer deleted them (in the manifest, gone at the peer).
    pub deleted: u64,
    /// Divergent items found in this pass and what was done with them.
    pub divergent: Vec<DivergentItem>,
    /// Items the peer holds after the pass (its listing).
    pub peer_items: u64,
    /// Wall time of the pass.
    pub elapsed: Duration,
}

/// What [`Resyncer::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Items compared (at the peer), and their bytes.
    pub items: u64,
    pub bytes: u64,
    /// Items present here only because the policy kept them (not differences).
    pub excepted: u64,
    /// Everything else that differs; empty means verified equal.
    pub differences: Vec<Difference>,
}

/// The returning (stale) site's side of a failback or switchover: bring this
/// site to exactly the active peer's content (DESIGN §4 failback 2–3).
#[async_trait]
pub trait Resyncer: Send + Sync {
    /// One pass: list both sides, [`classify`] against the manifest, apply
    /// `policy` to divergent items here, fetch from the peer, delete here
    /// what the peer deleted. At the end the manifest records what is now
    /// equal on both sides, so a later pass does not take an item fetched in
    /// this one for a divergent write. Idempotent; cancelled by `cancel`.
    async fn pass(
        &self,
        policy: DivergentPolicy,
        cancel: CancellationToken,
        progress: Option<watch::Sender<ResyncProgress>>,
    ) -> Result<PassReport, AgentError>;

    /// The cut-over's final pass when the peer's change journal named what
    /// changed there since the resync began (`changed`, escaped names):
    /// only those names, and the subtrees of those that are directories,
    /// leaving `kept` divergent items alone; at a `replica` (see
    /// `Command::replica`) what moved here is replaced without a look.
    /// `Ok(Err(reason))` when this
    /// plan or this case cannot (a full [`Resyncer::pass`] must run
    /// instead); nothing was deleted or set aside then (newer content may
    /// have arrived, which that pass confirms). Default: cannot.
    async fn pass_changed(
        &self,
        _changed: &[String],
        _kept: &[String],
        _replica: bool,
        _cancel: CancellationToken,
    ) -> Result<Result<PassReport, String>, AgentError> {
        Ok(Err("this plan has no journal pass".into()))
    }

    /// Compares this site with the peer by counts and content checksums
    /// (rsync `--checksum`, Swift ETags). Names in `except` (divergent items
    /// the policy kept) are not differences. Read-only at both ends.
    async fn verify(&self, except: &[String]) -> Result<VerifyReport, AgentError>;

    /// Items the last pass refused to touch (never fetched, deleted,
    /// quarantined or discarded), escaped for display with the reason,
    /// sorted. Default: none.
    fn refused(&self) -> Vec<String> {
        Vec::new()
    }

    /// The mass-delete guard's message while it holds this resyncer's
    /// passes ([`Resyncer::pass`] then fails with
    /// [`AgentError::DeleteGuard`] and deletes nothing). Default: `None`.
    fn guard(&self) -> Option<String> {
        None
    }

    /// The operator's `warden clear`: the next pass may delete up to what
    /// the held one would have. Returns whether a pass was held. Default:
    /// `false`.
    fn clear_guard(&self) -> bool {
        false
    }
}
