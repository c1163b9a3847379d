//! The agent's replication role per group: what the orchestrator's
//! replication commands do at this site, and what the agent reports about it.
//!
//! A site plays one role per group at a time:
//! - `source`: continuous replication from this site to the peer runs (the
//!   active site; started by `start_replication`, ended by `stop_replication`);
//! - `resync`: this returning site is being brought up to the active peer
//!   (`resync`: passes until one is shorter than `resync_lag_max`; then
//!   then a whole-tree checksum verification while writes still flow;
//!   `final_sync` after the peer was demoted: one more pass and a
//!   verification of that pass's delta, so the cut-over's pause follows
//!   what changed, not the size of the data);
//! - `idle`.
//!
//! Entering `resync` stops `source` first: a stale site must never push.
//! The active site's part of a cut-over (stop pushing, the change journal)
//! is in `replication/handover.rs`, the returning site's passes and
//! verification in `replication/resync.rs`, the report in
//! `replication/status.rs`; how a command is run (one at a time, the
//! overrides, the authority asked again) in `replication/commands.rs`, the
//! `source` role's start and stop in `replication/source.rs`. With the
//! `swift-container-sync` plan the pushing is Swift's own daemon, steered by container headers that outlive
//! the agent's memory: `replication/container_sync.rs` removes this site's
//! `X-Container-Sync-To` at every demote and stop whatever the role, and
//! keys its containers for the promote's epoch (a site keyed for an older
//! epoch cannot push into them); a start at a newer epoch toward the same
//! peer re-keys both sides. With the `swift` plan the pushing is warden's
//! own copier with the peer's credentials: a promote fences this site's
//! containers as active at its epoch (`X-Container-Meta-Warden-Active`),
//! and a copier built for an older start order writes nothing into a
//! fenced cluster; a start at a newer epoch toward the same peer builds a
//! new copier for it.
//! Commands are idempotent: a repeated `start_replication` toward the same peer
//! keeps the running replicator; a repeated `resync` runs passes again (each
//! pass is a full comparison).
//!
//! One replication command of a group runs at a time, but a command never
//! waits behind a long one it overrides: `stop_replication` cancels whatever
//! runs (a start still in its initial full pass, resync passes; their rsync is
//! killed) and `resync`/`final_sync` cancel a running start. `clear` (`warden
//! clear GROUP`) does not queue at all: it releases a pass held by the
//! mass-delete guard (the group's [`GuardHold`], reported as
//! `ReplicationStatus.guard`) to go ahead once. A held resync pass waits and
//! retries ([`GUARD_RETRY`]) until released or until the cause is gone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warden_config::{Config, Divergent, ReplicationConfig, ReplicationPlan};

use crate::authority::Authority;
use crate::replicate::guard::GuardHold;
use crate::replicate::journal::ChangeJournal;
use crate::replicate::{
    plan, DivergentItem, DivergentPolicy, OrderCheck, PassReport, Replicator, ResyncProgress,
    Resyncer,
};
use crate::wire::{
    Command, CommandKind, CommandOutcome, DivergentWire, JournalMark, JournalReport,
    ReplicationStatus, ResyncProgressWire,
};
use crate::AgentError;

/// Resync passes before the step gives up on reaching `resync_lag_max`.
pub const MAX_PASSES: u32 = 50;

/// Refused item names shown in a report (the count is always complete).
const REFUSED_SHOWN: usize = 20;

/// How often a resync pass held by the mass-delete guard is tried again.
pub const GUARD_RETRY: Duration = Duration::from_secs(2);

mod commands;
mod container_sync;
mod divergent_kept;
mod handover;
mod kept_file;
mod pending_headers;
mod resync;
mod source;
mod status;
pub use handover::{JOURNAL_BYTES_MAX, JOURNAL_NAMES_MAX};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Role {
    Idle,
    Source {
        peer: String,
        epoch: u64,
        /// The order the replicator runs under (`None`: no authority
        /// attached): a newer start that keeps the replicator raises it.
        order: Option<OrderCheck>,
        replicator: Arc<dyn Replicator>,
        /// Cancels the replicator's background work.
        cancel: CancellationToken,
    },
    Resync {
        peer: String,
        epoch: u64,
        progress: watch::Receiver<ResyncProgress>,
    },
}

struct GroupRun {
    role: Role,
    passes: u32,
    error: Option<String>,
    divergent: Vec<DivergentItem>,
}

/// One group's replication at this site.
struct GroupRepl {
    /// The group's name.
    name: String,
    cfg: ReplicationConfig,
    run: Mutex<GroupRun>,
    /// One replication command of a group at a time.
    busy: tokio::sync::Mutex<()>,
    /// The command running now and its cancel token (a stop cancels it).
    current: Mutex<Option<(CommandKind, CancellationToken)>>,
    /// The mass-delete guard's state, shared with the group's plans.
    hold: GuardHold,
    /// The change journal this site keeps while a returning peer resyncs
    /// from it (`journal` command), read once by the demote at the cut-over.
    journal: Mutex<Option<Arc<ChangeJournal>>>,
    /// `swift-container-sync`: why this site's container headers are not
    /// yet what the last demote, stop or promote set (a failed removal of
    /// `X-Container-Sync-To`, a failed fence), reported as the status's
    /// error; shared with the task that retries the change.
    headers: Arc<Mutex<Option<String>>>,
    /// That retry task, stopped (and awaited) by the next command that
    /// sets the headers, so an old change never lands after a new one.
    headers_retry: Mutex<Option<container_sync::Retry>>,
}

/// Every group of this site that has a replication plan.
pub struct Replication {
    site: String,
    config: Config,
    groups: BTreeMap<String, GroupRepl>,
    /// The agent's authority, once attached: asked by a start's work that
    /// outlives it (a container-sync start retried in the background)
    /// before each attempt, so an order superseded meanwhile acts no more.
    authority: std::sync::OnceLock<Arc<Authority>>,
    /// Container header changes not landed yet, kept for the next process.
    pending: Arc<pending_headers::PendingChanges>,
    /// Each group's divergent list, kept for the next process.
    divergent: divergent_kept::KeptLists,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("site", &self.site)
            .field("groups", &self.groups.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The policy of a resync or final sync: the group's, except at a replica
/// (a switchover's target), whose differences are the peer's older
/// versions: replaced (`discard`) like the peer's push would.
fn policy_for(g: &GroupRepl, cmd: &Command) -> DivergentPolicy {
    match policy_of(g.cfg.divergent) {
        _ if cmd.replica => DivergentPolicy::Discard,
        // Kept in place at a site that stays the peer's replication target,
        // the peer's next push would delete it: moved aside instead.
        DivergentPolicy::Keep if cmd.stays_target => DivergentPolicy::Quarantine,
        p => p,
    }
}

/// A pass's divergent items, or none at a replica (stale copies replaced,
/// said in the log, not divergent writes).
fn divergent_of(cmd: &Command, items: Vec<DivergentItem>) -> Vec<DivergentItem> {
    if cmd.replica && !items.is_empty() {
        info!(group = %cmd.group, items = items.len(), "replica: stale copies of the peer's items replaced");
        return Vec::new();
    }
    items
}

pub fn policy_of(d: Divergent) -> DivergentPolicy {
    match d {
        Divergent::Keep => DivergentPolicy::Keep,
        Divergent::Quarantine => DivergentPolicy::Quarantine,
        Divergent::Discard => DivergentPolicy::Discard,
    }
}

impl Replication {
    /// The groups of `site` with a `[groups.NAME.replication]` table; `None` when there are none.
    pub fn from_config(config: &Config, site: &str) -> Option<Self> {
        let state_dir = crate::settings::state_dir(config, site);
        // What the process before reported (or had still to report).
        let divergent = divergent_kept::KeptLists::open(&state_dir);
        let groups: BTreeMap<String, GroupRepl> = config
            .groups
            .iter()
            .filter(|(_, g)| g.site_names().iter().any(|s| s == site))
            .filter_map(|(name, g)| {
                let cfg = g.replication()?.clone();
                Some((
                    name.clone(),
                    GroupRepl {
                        name: name.clone(),
                        cfg,
                        run: Mutex::new(GroupRun {
                            role: Role::Idle,
                            passes: 0,
                            error: None,
                            divergent: divergent.get(name),
                        }),
                        busy: tokio::sync::Mutex::new(()),
                        current: Mutex::new(None),
                        hold: GuardHold::new(),
                        journal: Mutex::new(None),
                        headers: Arc::new(Mutex::new(None)),
                        headers_retry: Mutex::new(None),
                    },
                ))
            })
            .collect();
        (!groups.is_empty()).then(|| Replication {
            site: site.to_string(),
            config: config.clone(),
            groups,
            authority: std::sync::OnceLock::new(),
            pending: Arc::new(pending_headers::PendingChanges::open(&state_dir)),
            divergent,
        })
    }

    /// The agent's authority (once; a second is ignored): from now on a
    /// start's background work asks it whether the start still stands
    /// ([`Authority::still_active`]).
    pub fn attach_authority(&self, authority: Arc<Authority>) {
        let _ = self.authority.set(authority);
    }

    /// The check a start of `group` at `epoch` hands its replicator.
    fn order_check(&self, group: &str, epoch: u64) -> Option<OrderCheck> {
        let authority = self.authority.get()?.clone();
        let group = group.to_string();
        Some(OrderCheck::new(epoch, move |e| {
            authority.still_active(&group, e)
        }))
    }

    fn peer_of(&self, cmd: &Command) -> Result<String, String> {
        cmd.peer
            .clone()
            .ok_or_else(|| format!("{} command without a peer site", cmd.kind.as_str()))
    }
}
