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
//! `replication/status.rs`. With the `swift-container-sync` plan the
//! pushing is Swift's own daemon, steered by container headers that outlive
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

mod container_sync;
mod handover;
mod resync;
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
        let groups: BTreeMap<String, GroupRepl> = config
            .groups
            .iter()
            .filter(|(_, g)| g.site_names().iter().any(|s| s == site))
            .filter_map(|(name, g)| {
                let cfg = g.replication()?.clone();
                Some((
                    name.clone(),
                    GroupRepl {
                        cfg,
                        run: Mutex::new(GroupRun {
                            role: Role::Idle,
                            passes: 0,
                            error: None,
                            divergent: Vec::new(),
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
        let (a, g) = (authority.clone(), group.to_string());
        let group = group.to_string();
        Some(
            OrderCheck::new(move || authority.still_active(&group, epoch))
                .with_epoch(move || a.get(&g).map(|x| x.epoch)),
        )
    }

    /// Carries out one replication command; never panics, always an outcome.
    pub async fn run(&self, cmd: &Command, shutdown: &CancellationToken) -> CommandOutcome {
        self.run_checked(cmd, shutdown, &|_| Ok(())).await
    }

    /// [`Replication::run`], with a start, resync or final pass asked again
    /// through `admit` (the agent's authority) once its turn comes — the
    /// group's lock taken, after any command it waited behind: a demote that
    /// came meanwhile (and waits for the same lock to stop the push) must not
    /// find a push started after it, nor a promote at a newer epoch a pull
    /// into the site. The command is then refused, not run.
    pub async fn run_checked(
        &self,
        cmd: &Command,
        shutdown: &CancellationToken,
        admit: &(dyn Fn(&Command) -> Result<(), String> + Sync),
    ) -> CommandOutcome {
        let out = |ok: bool, detail: String| CommandOutcome {
            id: cmd.id.clone(),
            ok,
            detail,
            hooks: Vec::new(),
            checks: None,
            journal: None,
            kept_in_place: None,
        };
        let Some(g) = self.groups.get(&cmd.group) else {
            return out(
                false,
                format!(
                    "group {} has no replication plan at site {}",
                    cmd.group, self.site
                ),
            );
        };
        if cmd.kind == CommandKind::Clear {
            // Never queued behind a held pass: it is what that pass waits for.
            let (ok, detail) = self.clear(g, &cmd.group, cmd.guard_seen.as_deref());
            return out(ok, detail);
        }
        if cmd.kind == CommandKind::Journal {
            // The peer pulls from here from now on: stop pushing into it
            // (its resync must not race this site's own transfers) and keep
            // a journal of what changes instead.
            let stopped = self.stop_pushing(g, &cmd.group).await;
            return match self.journal_start(g, cmd).await {
                Ok((detail, mark)) => CommandOutcome {
                    detail: format!("{stopped}; {detail}"),
                    journal: Some(JournalReport {
                        mark,
                        names: None,
                        note: String::new(),
                    }),
                    ..out(true, String::new())
                },
                Err(e) => out(false, e),
            };
        }
        if matches!(
            cmd.kind,
            CommandKind::StartReplication | CommandKind::Resync | CommandKind::FinalSync
        ) {
            // This site's data is now written by the peer or pushed from
            // here: a journal kept for a failback has no more use.
            lock(&g.journal).take();
        }
        // Override what runs now instead of waiting for it.
        if let Some((kind, token)) = g.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let overrides = match cmd.kind {
                CommandKind::StopReplication => true,
                CommandKind::Resync | CommandKind::FinalSync => {
                    *kind == CommandKind::StartReplication
                }
                _ => false,
            };
            if overrides {
                info!(group = %cmd.group, running = kind.as_str(), by = cmd.kind.as_str(), "interrupting the running replication command");
                token.cancel();
            }
        }
        let _one = g.busy.lock().await;
        // Said to be running before it is asked again: a promote or demote
        // admitted after the question finds it here and cancels it; one
        // admitted before makes the question refuse it.
        let token = shutdown.child_token();
        *lock(&g.current) = Some((cmd.kind, token.clone()));
        if matches!(
            cmd.kind,
            CommandKind::StartReplication | CommandKind::Resync | CommandKind::FinalSync
        ) {
            // A push or a pull that waited its turn: a demote (no push
            // after it) or a promote at a newer epoch (no pull into the
            // site users now write to) may have come meanwhile.
            if let Err(refusal) = admit(cmd) {
                lock(&g.current).take();
                return out(
                    false,
                    format!("{refusal} (asked again when its turn came, after the group's running command)"),
                );
            }
        }
        let result = match cmd.kind {
            CommandKind::StartReplication => self.start(g, cmd, &token).await,
            CommandKind::StopReplication => Ok(self.stop(g, &cmd.group).await),
            CommandKind::Resync => self.catch_up(g, cmd, &token).await,
            CommandKind::FinalSync => self.final_sync(g, cmd, &token).await,
            CommandKind::Clear => {
                let (ok, detail) = self.clear(g, &cmd.group, cmd.guard_seen.as_deref());
                if ok {
                    Ok(detail)
                } else {
                    Err(detail)
                }
            }
            CommandKind::Promote | CommandKind::Demote | CommandKind::Journal => Err(format!(
                "{} is not a replication command",
                cmd.kind.as_str()
            )),
        };
        g.current.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
        // What this resync or final pass left in place, said in its outcome.
        let kept_in_place = matches!(cmd.kind, CommandKind::Resync | CommandKind::FinalSync)
            .then(|| resync::kept_names(&run.divergent).len() as u64);
        if cmd.stays_target && result.is_ok() && matches!(run.role, Role::Resync { .. }) {
            // No final pass follows a resync of `warden resync`: this site
            // is the peer's target again, not resyncing.
            run.role = Role::Idle;
        }
        let outcome = match result {
            Ok(detail) => {
                run.error = None;
                out(true, detail)
            }
            Err(e) => {
                run.error = Some(e.clone());
                out(false, e)
            }
        };
        CommandOutcome {
            kept_in_place,
            ..outcome
        }
    }

    /// `warden clear GROUP`: a pass held by the mass-delete guard goes ahead once.
    /// The operator's release of a held pass: of the hold they read
    /// (`seen`) only, when the order says which; `false` when that hold is
    /// not the one held now.
    fn clear(&self, g: &GroupRepl, group: &str, seen: Option<&str>) -> (bool, String) {
        let plan_held = {
            let run = g.run.lock().unwrap_or_else(|p| p.into_inner());
            match &run.role {
                Role::Source { replicator, .. } => match seen {
                    Some(seen) => replicator.clone().clear_guard_seen(seen),
                    None => replicator.clone().clear_guard(),
                },
                _ => false,
            }
        };
        if plan_held {
            warn!(group = %group, "operator released the round held by the plan's mass-delete guard");
            return (
                true,
                "released the round held by the mass-delete guard; it goes ahead once".to_string(),
            );
        }
        let released = match seen {
            Some(seen) => g.hold.release_seen(seen),
            None => g.hold.release().ok_or(None),
        };
        match released {
            Ok(held) => {
                warn!(group = %group, held = %held, "operator released the pass held by the mass-delete guard");
                (
                    true,
                    format!("released the pass held by the mass-delete guard; it goes ahead once (it was held: {held})"),
                )
            }
            Err(Some(now)) if seen.is_some() => (
                false,
                format!(
                    "not released: the pass held now is not the one the operator read (held now: \
                     {now}); read it again (`warden status`) and clear it if it is meant"
                ),
            ),
            Err(_) if seen.is_some() => (
                false,
                "not released: nothing is held by the mass-delete guard now (the hold the \
                 operator read has ended)"
                    .to_string(),
            ),
            Err(_) => (true, "nothing held by the mass-delete guard".to_string()),
        }
    }

    fn peer_of(&self, cmd: &Command) -> Result<String, String> {
        cmd.peer
            .clone()
            .ok_or_else(|| format!("{} command without a peer site", cmd.kind.as_str()))
    }

    async fn start(
        &self,
        g: &GroupRepl,
        cmd: &Command,
        shutdown: &CancellationToken,
    ) -> Result<String, String> {
        let peer = self.peer_of(cmd)?;
        // The Swift plans' replicators are built for the start's epoch: the
        // container-sync plan keys both sides for it (a newer start toward
        // the same peer sets the new key: the old one is what a deposed
        // site would push with), the `swift` copier stops at a destination
        // fenced at its epoch or newer (a newer start builds a new copier).
        let rekeyed = matches!(
            g.cfg.plan,
            ReplicationPlan::SwiftContainerSync | ReplicationPlan::Swift
        );
        let mut rekey = None;
        {
            let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
            if let Role::Source {
                peer: p, epoch: e, ..
            } = &mut run.role
            {
                if *p == peer {
                    if !rekeyed || *e == cmd.epoch {
                        *e = cmd.epoch;
                        return Ok(format!(
                            "replication {} → {peer} already running",
                            self.site
                        ));
                    }
                    rekey = Some(*e);
                }
            }
        }
        // A header change still retried (a demote's removal of Sync-To)
        // must not land after this start's. The `swift` plan's is a
        // promote's fence, which this start (the same active site) must
        // not cut short.
        if g.cfg.plan != ReplicationPlan::Swift {
            self.headers_settled(g).await;
        }
        if rekey.is_some() && g.cfg.plan == ReplicationPlan::SwiftContainerSync {
            // Its watcher stops; its headers stay (the new start sets them
            // again: removing Sync-To would make Swift sync every object again).
            let old = std::mem::replace(&mut lock(&g.run).role, Role::Idle);
            if let Role::Source { cancel, .. } = old {
                cancel.cancel();
            }
        } else {
            self.stop_role(g).await;
        }
        let replicator = plan::replicator_checked(
            &self.config,
            &cmd.group,
            &self.site,
            &peer,
            cmd.epoch,
            &g.hold,
            self.order_check(&cmd.group, cmd.epoch),
        )
        .map_err(|e| e.to_string())?;
        // Lives as long as the replicator; a stop cancels it (the initial pass too).
        let cancel = shutdown.child_token();
        let started = replicator.start(cancel.clone()).await;
        if let Err(e) = started {
            cancel.cancel();
            return Err(match e {
                AgentError::ReplicationCancelled => format!(
                    "replication {} → {peer} interrupted before its initial pass ended",
                    self.site
                ),
                e => format!("replication {} → {peer} cannot start: {e}", self.site),
            });
        }
        info!(group = %cmd.group, peer = %peer, plan = g.cfg.plan.as_str(), epoch = cmd.epoch, "replication started");
        let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
        run.role = Role::Source {
            peer: peer.clone(),
            epoch: cmd.epoch,
            replicator,
            cancel,
        };
        let held = g
            .hold
            .held()
            .map(|h| format!("; held: {h}"))
            .unwrap_or_default();
        if let (Some(old), ReplicationPlan::Swift) = (rekey, g.cfg.plan) {
            return Ok(format!(
                "replication {} → {peer} restarted for epoch {} (its copier was for epoch {old}) (swift){held}",
                self.site, cmd.epoch
            ));
        }
        if let Some(old) = rekey {
            return Ok(format!(
                "replication {} → {peer} re-keyed from epoch {old} to {} ({})",
                self.site,
                cmd.epoch,
                g.cfg.plan.as_str()
            ));
        }
        Ok(format!(
            "replication {} → {peer} started ({}){held}",
            self.site,
            g.cfg.plan.as_str()
        ))
    }

    /// Stops the group's replication from this site: the role's replicator,
    /// and with the `swift-container-sync` plan this site's
    /// `X-Container-Sync-To`, whatever the role (a restarted agent
    /// remembers none, and Swift's daemon pushes as long as the header is
    /// there). What to say in the outcome.
    async fn stop(&self, g: &GroupRepl, group: &str) -> String {
        let stopped = self.stop_role(g).await;
        match self.remove_sync_to(g, group).await {
            Some(said) => format!("{stopped}; {said}"),
            None => stopped,
        }
    }

    /// Ends the role's replicator, if it is `source`.
    async fn stop_role(&self, g: &GroupRepl) -> String {
        let role = {
            let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut run.role, Role::Idle)
        };
        // The held pass (if any) ends with its role; a new one checks again.
        g.hold.passed();
        match role {
            Role::Source {
                peer,
                replicator,
                cancel,
                ..
            } => {
                replicator.stop().await;
                cancel.cancel();
                format!("replication {} → {peer} stopped", self.site)
            }
            _ => format!("no replication was running from {}", self.site),
        }
    }

    /// Stops every continuous replicator (agent shutdown).
    pub async fn shutdown(&self) {
        for g in self.groups.values() {
            self.stop_role(g).await;
            self.headers_settled(g).await;
        }
    }
}
