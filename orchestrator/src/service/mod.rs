//! The orchestrator service: [`Shared`] (private state behind one lock, the
//! store, the strategies, the command ledger) and its rooms, one owner each:
//!
//! - [`events`]: the event log (buffered, written by one task, never under the lock);
//! - [`intake`]: agent reports and command polls, the orchestrator's own probes;
//! - [`detect`]: the detection round and the decisions it leads to;
//! - [`runbooks`]: start, run (tracked tasks) and resume runbooks;
//! - [`runbook_env`]: the live `RunbookEnv` (commands, health, routes, fence);
//! - [`finish`]: what a finished runbook leaves (group state, withdrawn commands, aborted moves, metrics);
//! - [`replication`]: replication orders per round, replication status, RPO;
//! - [`divergent`]: divergent lists assembled from report pages;
//! - [`hybrid`]: the frontend layer of hybrid groups;
//! - [`hold`]: hold orders to frontends while a switch may be coming;
//! - [`reconcile`]: routing drift, re-applied;
//! - [`authority`]: adoption by a new store, epochs seen ahead, demoting a site
//!   failed away from while cut off, dropped outcomes;
//! - [`operator`]: operator actions and alerts;
//! - [`replay`]: each agent process's report sequence (replays refused);
//! - [`polls`]: concurrent command long-polls per site (capped);
//! - [`views`]: read-only views for the API.
//!
//! One `Mutex<State>` guards everything that decisions read, so a decision and
//! the evidence it was made on are always consistent. No await happens while
//! it is held. Fields are private: the API reaches the service only through
//! methods.
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warden_config::{Config, FailbackMode, Scheme, Secret};
use warden_proto::agent::{
    AgentReport, Command, CommandKind, CommandOutcome, ReplicationStatus, ReportResponse,
};
use warden_strategies::{Observed, SiteRoute, StrategyError, SwitchMode};

use crate::commands::{Accepted, Ledger};
use crate::detector::{Detector, Evidence, Transition, Verdict};
use crate::licence::Licence;
use crate::metrics::Metrics;
use crate::model::*;
use crate::runbook::{self, Policy, RunbookEnv};
use crate::settings::OrchestratorSettings;
use crate::store::Store;
use crate::OrchestratorError;

#[cfg(test)]
mod accepted;
mod admit;
mod adopt;
mod adopt_dns;
mod answer_order;
mod approve;
mod authority;
#[cfg(test)]
mod bystander_tests;
mod cadence;
mod clear;
#[cfg(test)]
mod clear_read_tests;
#[cfg(test)]
mod crash_tests;
mod decide;
#[cfg(test)]
mod decision_tests;
mod detect;
mod divergent;
mod dns_move;
mod entry;
#[cfg(test)]
mod event_epoch_tests;
mod events;
mod failed;
#[cfg(test)]
mod failed_roles_tests;
mod fence;
mod finish;
#[cfg(test)]
mod follower_api_tests;
#[cfg(test)]
mod fresh_checks_tests;
mod ha;
#[cfg(test)]
pub(crate) mod harness;
mod hold;
#[cfg(test)]
mod hold_place_tests;
mod hybrid;
#[cfg(test)]
mod hybrid_drift_tests;
#[cfg(test)]
mod hybrid_move_tests;
mod intake;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod maintenance_tests;
mod newest;
mod notify;
mod operator;
#[cfg(test)]
mod orders_tests;
mod persist;
pub mod polls;
#[cfg(test)]
mod preempt_tests;
#[cfg(test)]
mod probe_tests;
#[cfg(test)]
mod read_gate_tests;
mod reconcile;
#[cfg(test)]
mod record_tests;
mod replay;
mod replication;
#[cfg(test)]
mod resync_tests;
mod runbook_env;
mod runbooks;
mod seen;
#[cfg(test)]
mod serving_again_tests;
#[cfg(test)]
mod silence_tests;
mod skew;
#[cfg(test)]
mod skew_tests;
mod split;
#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod state_tests;
mod stops;
#[cfg(test)]
mod store_fault_tests;
#[cfg(test)]
mod takeover_tests;
#[cfg(test)]
mod tests;
mod unfit;
mod untouched;
#[cfg(test)]
mod upgrade_tests;
#[cfg(test)]
mod verify_restart_tests;
mod views;

pub use approve::SeenPending;
pub use authority::EpochAhead;
pub use clear::{AlertsRead, Cleared};
pub use ha::HaRole;
pub use seen::SeenGroup;
pub use views::{
    DivergentPage, GroupView, ReplicationView, SiteView, StatusView, DIVERGENT_IN_STATUS,
};

/// Unix-ms clock derived from tokio's clock, so paused-time tests move it too.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_unix_ms: u64,
    base: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            base_unix_ms,
            base: Instant::now(),
        }
    }
    pub fn now_ms(&self) -> u64 {
        self.base_unix_ms + self.base.elapsed().as_millis() as u64
    }
    /// This clock set `ms` back (a host whose clock is behind another's,
    /// or was stepped back).
    #[cfg(test)]
    pub(crate) fn behind(self, ms: u64) -> Clock {
        Clock {
            base_unix_ms: self.base_unix_ms.saturating_sub(ms),
            ..self
        }
    }
    pub fn to_ms(&self, at: Instant) -> u64 {
        let off = at.saturating_duration_since(self.base).as_millis() as u64;
        self.base_unix_ms + off
    }
}

/// The state as the store has it, completed from the config.
pub(crate) struct Loaded {
    pub(crate) groups: BTreeMap<String, GroupState>,
    /// Groups new to the store.
    pub(crate) fresh: std::collections::BTreeSet<String>,
    /// Groups created or corrected from the config, to be written.
    pub(crate) to_write: Vec<GroupState>,
    pub(crate) runbooks: BTreeMap<u64, Runbook>,
    pub(crate) next_runbook: u64,
    pub(crate) next_event: u64,
    /// Groups left as stored, not acted on (see `untouched`), with their alerts.
    pub(crate) untouched: BTreeMap<String, String>,
}

/// Read groups, runbooks and event ids from `store`: groups the config no
/// longer has are left out, new ones start at their primary, and a stored
/// active site the group no longer has moves to the primary at a new epoch;
/// a running runbook or a pending decision naming a site the group no
/// longer has is not acted on (failed, withdrawn), nor a stored frontend
/// it no longer has. On a store other orchestrators share, and for records
/// this version cannot read, a group is left as stored instead
/// ([`untouched::set_aside`]).
pub(crate) fn load_state(cfg: &Config, store: &dyn Store) -> Result<Loaded, OrchestratorError> {
    let read = store.groups_read()?;
    let mut groups: BTreeMap<String, GroupState> =
        read.read.into_iter().map(|g| (g.name.clone(), g)).collect();
    groups.retain(|k, _| cfg.groups.contains_key(k));
    let runbooks_read = store.runbooks_read()?;
    let runbooks: BTreeMap<u64, Runbook> =
        runbooks_read.read.into_iter().map(|r| (r.id, r)).collect();
    let mut untouched = untouched::set_aside(
        cfg,
        store,
        &mut groups,
        &runbooks,
        &read.unreadable,
        &runbooks_read.unreadable,
    );
    let mut fresh_groups = std::collections::BTreeSet::new();
    let mut to_write = Vec::new();
    for (name, g) in &cfg.groups {
        if untouched.contains_key(name) {
            continue;
        }
        let sites = g.site_names();
        let fresh = GroupState {
            name: name.clone(),
            active: g.primary().to_string(),
            epoch: 1,
            phase: Phase::Steady,
            maintenance: false,
            maintenance_seq: 0,
            pending: None,
            runbook: None,
            moves_unix_ms: vec![],
            incident_started_unix_ms: None,
            frontend: None,
            frontend_epoch: 0,
            replication_paused_since_unix_ms: None,
            divergent: vec![],
            divergent_not_stored: 0,
            failback_retry_unix_ms: None,
            hold: Some(
                "the group is new to the store: automatic decisions wait until every site has reported"
                    .to_string(),
            ),
            failback_aborts: 0,
            last_failback_failure: None,
            failback_blocked: None,
            switched_over: false,
            provider_stops: vec![],
            unknown: Default::default(),
        };
        let mut changed = !groups.contains_key(name);
        if changed {
            fresh_groups.insert(name.clone());
        }
        let entry = groups.entry(name.clone()).or_insert_with(|| fresh.clone());
        if !sites.contains(&entry.active) {
            warn!(group = %name, active = %entry.active, "stored active site is no longer in the group; starting from the primary");
            let epoch = entry.epoch.saturating_add(1);
            // A provider's stops are its own, whatever the sites.
            let provider_stops = std::mem::take(&mut entry.provider_stops);
            // The DNS layer's epochs never go back (its marker would refuse
            // them): pointing the name anew is a decision above the last.
            let frontend_epoch = entry.dns_epoch() + 1;
            // What a newer version keeps in the record is its own too.
            let unknown = std::mem::take(&mut entry.unknown);
            *entry = GroupState {
                epoch,
                provider_stops,
                frontend_epoch,
                unknown,
                ..fresh
            };
            changed = true;
        }
        // Hybrid: the frontend DNS was last pointed at, no longer one of the
        // group's (the detector never tracks it, so DNS would never move off
        // it): forgotten; reconciliation points DNS at a served one.
        if let Some(fe) = entry.frontend.clone() {
            if !g
                .frontend
                .as_ref()
                .is_some_and(|f| f.get_ref().is_served_by(&fe))
            {
                warn!(group = %name, frontend = %fe, "stored frontend is no longer one of the group's; forgotten");
                entry.frontend = None;
                // Pointing the name at a served one is a decision of its own.
                entry.frontend_epoch = entry.dns_epoch() + 1;
                changed = true;
            }
        }
        // A decision waiting for approval to a site the group no longer
        // has cannot be approved: withdrawn.
        if entry
            .pending
            .as_ref()
            .is_some_and(|p| !sites.contains(&p.to))
        {
            warn!(group = %name, "a pending decision names a site no longer in the group; withdrawn");
            entry.pending = None;
            if entry.phase == Phase::PendingApproval {
                entry.phase = Phase::Steady;
            }
            changed = true;
        }
        if changed {
            to_write.push(entry.clone());
        }
    }
    newest::run_newest_runbooks(cfg, &mut groups, &runbooks, &mut to_write);
    // A store that lost a group's record (or holds an older one) still
    // holds the runbooks it decided: the epoch never goes below theirs.
    for rb in runbooks.values() {
        if let Some(g) = groups.get_mut(&rb.group) {
            if g.epoch < rb.epoch {
                warn!(group = %g.name, stored = g.epoch, runbook = rb.id, epoch = rb.epoch,
                      "the stored group is at an epoch below its own runbook's: raised to it (epochs never go back)");
                g.epoch = rb.epoch;
                to_write.retain(|w| w.name != g.name);
                to_write.push(g.clone());
            }
        }
    }
    // A group running a runbook the store does not hold (or one of another
    // group, or one between sites the group no longer has: resumed, it
    // would fence one and fail at the promote) would stay `running` for
    // ever, refusing every move: it is failed instead, so the operator
    // decides.
    let mut steps_aside = Vec::new();
    for g in groups.values_mut() {
        // A runbook to resume whose steps this version does not run as
        // stored (written by another version, or damaged): refused before
        // anything acts or is written, naming it — on a store other nodes
        // share (a rolling upgrade), its group alone is left as stored
        // (the node of the version that wrote it resumes it).
        let live = g.runbook.and_then(|id| runbooks.get(&id)).filter(|rb| {
            g.phase == Phase::Running && (rb.status == RunbookStatus::Running || rb.rolling_back)
        });
        if let Some(rb) = live.filter(|rb| !rb.steps_as_run()) {
            let names = |steps: &mut dyn Iterator<Item = StepName>| {
                steps.map(runbook::step_str).collect::<Vec<_>>().join(", ")
            };
            let why = format!(
                "the state store ({}) holds runbook {} of group {} ({} {} → {} at epoch {}, to be resumed) \
                 with the steps [{}], not those this version runs for a {} [{}]: written by another \
                 version of warden, or damaged. Nothing was resumed or written: finish it with the \
                 version that wrote it, or restore the store from a backup",
                store.describe(),
                rb.id,
                g.name,
                runbook::kind_str(rb.kind),
                rb.from,
                rb.to,
                rb.epoch,
                names(&mut rb.steps.iter().map(|s| s.name)),
                runbook::kind_str(rb.kind),
                names(&mut StepName::for_kind(rb.kind).iter().copied()),
            );
            if !store.shared() {
                return Err(OrchestratorError::Setup(why));
            }
            steps_aside.push((g.name.clone(), why));
            continue;
        }
        let sites = cfg
            .groups
            .get(&g.name)
            .map(|c| c.site_names())
            .unwrap_or_default();
        let usable = g
            .runbook
            .and_then(|id| runbooks.get(&id))
            .is_some_and(|rb| {
                rb.group == g.name && sites.contains(&rb.from) && sites.contains(&rb.to)
            });
        if g.phase == Phase::Running && !usable {
            warn!(group = %g.name, runbook = ?g.runbook,
                  "the group is running a runbook the store does not hold for it: marked failed, the operator decides");
            g.phase = Phase::Failed;
            g.runbook = None;
            to_write.retain(|w| w.name != g.name);
            to_write.push(g.clone());
        }
    }
    for (name, why) in steps_aside {
        warn!(group = %name, "{why}");
        groups.remove(&name);
        to_write.retain(|w| w.name != name);
        untouched.insert(name.clone(), format!("group {name}: {why}"));
    }
    // Ids and epochs near the largest number are a corrupt store (one is
    // used per runbook, event or decision): refused, never wrapped around.
    let corrupt = |what: String| {
        OrchestratorError::Setup(format!(
            "the state store ({}) holds {what}: a corrupt or tampered store; \
             restore it from a backup or fix that record",
            store.describe()
        ))
    };
    for g in groups.values() {
        // The frontend layer's epoch too: its next pointing adds one.
        if g.dns_epoch() > warden_proto::EPOCH_CEILING {
            return Err(corrupt(format!(
                "group {} at epoch {}, within 2^32 of the largest",
                g.name,
                g.dns_epoch()
            )));
        }
    }
    let last_runbook = runbooks.keys().next_back().copied().unwrap_or(0).max(
        untouched::highest_unreadable_runbook(&runbooks_read.unreadable),
    );
    let next_runbook = last_runbook
        .checked_add(1)
        .ok_or_else(|| corrupt(format!("a runbook with id {last_runbook}")))?;
    let last_event = store.last_event_id()?;
    let next_event = last_event
        .checked_add(1)
        .ok_or_else(|| corrupt(format!("an event with id {last_event}")))?;
    Ok(Loaded {
        groups,
        fresh: fresh_groups,
        to_write,
        runbooks,
        next_runbook,
        next_event,
        untouched,
    })
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything decisions read, behind one lock.
pub struct State {
    evidence: Evidence,
    detector: Detector,
    groups: BTreeMap<String, GroupState>,
    /// Commands queued for agents and their outcomes (see [`Ledger`]).
    ledger: Ledger,
    /// Recent events (the store has them all).
    recent: VecDeque<Event>,
    next_event: u64,
    next_runbook: u64,
    /// Latest runbook per id (running and recent).
    runbooks: BTreeMap<u64, Runbook>,
    /// What was last recorded of every condition worth an event (level-triggered).
    recorded: crate::recorded::Recorded,
    /// `hybrid` groups' frontends judged like sites (DESIGN §3) from the
    /// orchestrator's probes and the agents' peer probes; see [`Detector::agentless`].
    fe_evidence: Evidence,
    fe_detector: Detector,
    /// Hybrid groups whose DNS layer is being moved right now (one move at a time).
    dns_moving: std::collections::BTreeSet<String>,
    /// Per group: an epoch above the group's seen outside (see [`crate::authority`]).
    epoch_ahead: BTreeMap<String, authority::EpochAhead>,
    /// Command ids after which a site was not asked again to take its role
    /// (`authority_check_locked`): alerted once each; only ids the ledger
    /// still holds are kept.
    refence_exhausted: std::collections::BTreeSet<String>,
    /// Groups new to the store, to be adopted from the routing layer at start.
    fresh: std::collections::BTreeSet<String>,
    /// Divergent lists being assembled from report pages, per (site, group).
    divergent_pages: BTreeMap<(String, String), divergent::Assembly>,
    /// The place of this process's answers to agents (see [`answer_order`]).
    answer_orders: answer_order::AnswerOrders,
    /// Per group: when the last hold order for a suspected active site was
    /// sent (renewed at most every half its ttl, see [`hold`]).
    suspect_holds: BTreeMap<String, Instant>,
    /// Groups left as stored at the last load, not acted on, with their
    /// alerts (see `untouched`).
    untouched: BTreeMap<String, String>,
}

/// Shared by the loops, the API handlers and the runbook tasks.
pub struct Shared {
    cfg: Config,
    /// Operator tokens by name.
    operators: Vec<(String, Secret)>,
    /// The read-only token.
    reader: Option<Secret>,
    /// Last accepted report seq per agent process (replays are refused).
    report_seqs: replay::ReportSeqs,
    /// Open command long-polls per site.
    polls: polls::Polls,
    /// What the store failed to write, and why (alerts until it can).
    store_trouble: Mutex<BTreeMap<String, String>>,
    /// SHA-256 of an agent token → site. A hash lookup (not a scan) keeps a
    /// report O(1) with tens of thousands of sites; keyed by the digest, its
    /// timing says nothing about the tokens.
    agent_tokens: std::collections::HashMap<crate::settings::TokenDigest, String>,
    store: Arc<dyn Store>,
    strategies: BTreeMap<String, crate::routing::Routing>,
    state: Mutex<State>,
    /// Bumped on every accepted report (waiters for outcomes and health).
    report_tick: watch::Sender<u64>,
    /// Bumped whenever a command is queued (long-polls).
    command_tick: watch::Sender<u64>,
    /// Wakes the detection and probe loops early (see [`cadence`]).
    cadence: cadence::Cadence,
    clock: Clock,
    http: warden_checks::ProbeClient,
    /// The verify step's requests through a public entry: no pooled
    /// connection (one opened before a switch may still be relayed to the
    /// old site), no proxy (entries are addresses); see [`entry`].
    entry_http: reqwest::Client,
    metrics: Metrics,
    shutdown: CancellationToken,
    /// The agents' open report streams (see `api::stream`): waited for at shutdown.
    streams: tokio_util::task::TaskTracker,
    /// The report streams each site holds open (see `api::seats`).
    stream_seats: crate::api::seats::Seats,
    /// The frontends of `hybrid` groups and their probe (see
    /// [`Config::hybrid_frontend_probes`]); empty without hybrid groups.
    frontend_probes: BTreeMap<String, (warden_config::CheckSpec, Vec<String>)>,
    /// Every site and hybrid frontend an agent may report probes of (a hash
    /// set: every report's peers are looked up here).
    probe_targets: std::collections::HashSet<String>,
    /// Site → what its agent probes (its peers and its hybrid groups'
    /// frontends; [`Config::probe_targets_of`]): a report's other probes are dropped.
    site_probes: foldhash::HashMap<String, std::collections::HashSet<String>>,
    /// (site, what) pairs already warned about once (see [`admit`]).
    admit_warned: Mutex<std::collections::HashSet<(String, String)>>,
    /// Events recorded but not yet in the store (see [`Shared::write_events`]).
    unsaved: Mutex<Vec<Event>>,
    unsaved_notify: tokio::sync::Notify,
    /// Held while this process may act (see [`Licence`]).
    licence: Arc<Licence>,
    /// The place of the last hold order given (see [`Shared::order_hold`]).
    hold_seq: std::sync::atomic::AtomicU64,
    /// Site → the groups it belongs to (built once: reports look it up).
    site_groups: foldhash::HashMap<String, Vec<String>>,
    /// Every group's name, in order (built once: each round goes over them).
    group_names: Vec<String>,
    /// Group state changes waiting for the store (see [`persist`]).
    writer: persist::GroupWriter,
    /// `[[orchestrator.notify]]`: webhooks and commands told of events.
    notify: notify::Notify,
    /// Groups whose stored provider stops are not empty (`stops.rs`); its
    /// lock also puts syncs in order.
    stopped_groups: Mutex<std::collections::BTreeSet<String>>,
    /// With etcd: the leadership as this node sees it (see [`ha`]).
    ha: Option<ha::Ha>,
}

/// How a service gets its licence to act.
pub enum Mode {
    /// Alone on a local store: held from start to shutdown.
    Local,
    /// One of several on etcd: held while this node holds the leader lease.
    Elected(watch::Receiver<crate::etcd::leader::Leadership>),
}

impl Mode {
    fn is_local(&self) -> bool {
        matches!(self, Mode::Local)
    }
}

impl Shared {
    /// A single orchestrator on its own store: it acts from the start.
    pub fn new(
        settings: OrchestratorSettings,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Shared>, OrchestratorError> {
        Self::with_mode(settings, store, shutdown, Mode::Local)
    }

    /// A service that acts as `mode` says (alone, or when elected).
    pub fn with_mode(
        settings: OrchestratorSettings,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
        mode: Mode,
    ) -> Result<Arc<Shared>, OrchestratorError> {
        Self::with_clock(settings, store, shutdown, mode, Clock::new())
    }

    /// [`Shared::with_mode`] telling the time by `clock`.
    pub(crate) fn with_clock(
        settings: OrchestratorSettings,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
        mode: Mode,
        clock: Clock,
    ) -> Result<Arc<Shared>, OrchestratorError> {
        let OrchestratorSettings {
            config: cfg,
            operators,
            reader,
            agent_tokens,
            strategies,
            node: _,
            notify_secrets,
        } = settings;
        let notify = notify::Notify::new(&cfg.orchestrator.notify, notify_secrets)?;
        let mut loaded = load_state(&cfg, store.as_ref())?;
        let local = mode.is_local();
        skew::times_ahead(&mut loaded, &cfg, clock.now_ms());
        // One process: it acts from the start, so the corrections are
        // written now (or, on a full disk, retried by the group writer).
        let (unwritten, store_cause) = if mode.is_local() {
            persist::write_corrections(store.as_ref(), &loaded.to_write)?
        } else {
            (Vec::new(), None)
        };
        let Loaded {
            groups,
            fresh: fresh_groups,
            runbooks,
            next_runbook,
            next_event,
            untouched,
            ..
        } = loaded;
        // The agents' probe client: directly, no redirect followed (each
        // probe is bounded by its timeout, at most `probe_timeout`).
        let http = warden_checks::probe_client().map_err(|e| {
            OrchestratorError::Setup(format!("cannot build the probe http client: {e}"))
        })?;
        let entry_http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .no_proxy()
            .build()
            .map_err(|e| {
                OrchestratorError::Setup(format!("cannot build the entry probe http client: {e}"))
            })?;
        let report_intervals = || {
            cfg.sites.iter().map(|(name, s)| {
                (
                    name.clone(),
                    s.report_interval.unwrap_or(cfg.detection.interval),
                )
            })
        };
        let detector = Detector::new(cfg.detection.clone(), cfg.sites.keys().cloned())
            .with_report_intervals(report_intervals());
        let writer = persist::GroupWriter::new();
        writer.loaded(groups.values());
        for g in &unwritten {
            writer.queue(g, None);
        }
        let state = State {
            evidence: Evidence::default(),
            detector,
            groups,
            ledger: Ledger::default(),
            recent: VecDeque::new(),
            next_event,
            next_runbook,
            runbooks,
            recorded: Default::default(),
            fe_evidence: Evidence::default(),
            // The agents probing the frontends fall silent after their own
            // report intervals, as everywhere.
            fe_detector: Detector::agentless(
                cfg.detection.clone(),
                cfg.hybrid_frontend_probes().into_keys(),
            )
            .with_report_intervals(report_intervals()),
            dns_moving: Default::default(),
            epoch_ahead: BTreeMap::new(),
            refence_exhausted: Default::default(),
            fresh: fresh_groups,
            divergent_pages: BTreeMap::new(),
            answer_orders: answer_order::AnswerOrders::new(),
            suspect_holds: BTreeMap::new(),
            untouched,
        };
        let frontend_probes = cfg.hybrid_frontend_probes();
        let probe_targets = cfg
            .sites
            .keys()
            .chain(frontend_probes.keys())
            .cloned()
            .collect();
        // What each site's agent probes (`Config::probe_targets_of`, built
        // in one pass over the groups: per site it would be sites × groups).
        let mut site_probes: foldhash::HashMap<String, std::collections::HashSet<String>> = cfg
            .sites
            .keys()
            .map(|s| (s.clone(), Default::default()))
            .collect();
        for g in cfg.groups.values() {
            let names = g.site_names();
            for site in &names {
                if let Some(set) = site_probes.get_mut(site) {
                    set.extend(names.iter().filter(|n| *n != site).cloned());
                }
            }
        }
        for (fe, (_, groups)) in &frontend_probes {
            for site in groups
                .iter()
                .filter_map(|g| cfg.groups.get(g))
                .flat_map(|g| g.site_names())
            {
                if let Some(set) = site_probes.get_mut(&site) {
                    set.insert(fe.clone());
                }
            }
        }
        let licence = Arc::new(if mode.is_local() {
            Licence::held(&shutdown)
        } else {
            Licence::new(&shutdown)
        });
        let mut site_groups: foldhash::HashMap<String, Vec<String>> = foldhash::HashMap::default();
        for (name, g) in &cfg.groups {
            for site in g.site_names() {
                site_groups.entry(site).or_default().push(name.clone());
            }
        }
        let group_names: Vec<String> = cfg.groups.keys().cloned().collect();
        let shared = Arc::new(Shared {
            cfg,
            operators,
            reader,
            report_seqs: replay::ReportSeqs::default(),
            polls: polls::Polls::default(),
            store_trouble: Mutex::new(
                store_cause
                    .map(|c| ("group state".to_string(), c))
                    .into_iter()
                    .collect(),
            ),
            agent_tokens,
            store,
            strategies,
            state: Mutex::new(state),
            report_tick: watch::channel(0).0,
            command_tick: watch::channel(0).0,
            cadence: cadence::Cadence::default(),
            clock,
            http,
            entry_http,
            metrics: Metrics::new(),
            shutdown,
            streams: tokio_util::task::TaskTracker::new(),
            stream_seats: Default::default(),
            frontend_probes,
            probe_targets,
            site_probes,
            admit_warned: Mutex::default(),
            unsaved: Mutex::new(Vec::new()),
            unsaved_notify: tokio::sync::Notify::new(),
            licence,
            hold_seq: std::sync::atomic::AtomicU64::new(0),
            site_groups,
            group_names,
            writer,
            notify,
            stopped_groups: Mutex::default(),
            ha: match mode {
                Mode::Local => None,
                Mode::Elected(view) => Some(ha::Ha::new(view)),
            },
        });
        if local {
            // With etcd the take-over announces them: this node may follow.
            shared.announce_untouched();
        }
        Ok(shared)
    }

    /// The validated config the service runs.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The licence to act (decisions, runbooks, reconciliation, replication
    /// orders, DNS moves run only while it is held).
    pub fn licence(&self) -> &Licence {
        &self.licence
    }

    /// `Err` when this process may not act now.
    pub(crate) fn must_act(&self) -> Result<(), OrchestratorError> {
        if self.licence.is_held() {
            Ok(())
        } else {
            Err(OrchestratorError::Conflict(
                "this orchestrator does not hold the licence to act now; ask the one that does"
                    .into(),
            ))
        }
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Cancelled when the service shuts down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The report streams each site holds open (at most a few: see
    /// `api::seats`).
    pub(crate) fn stream_seats(&self) -> &crate::api::seats::Seats {
        &self.stream_seats
    }

    /// The agents' open report streams, each ending at shutdown.
    pub fn streams(&self) -> &tokio_util::task::TaskTracker {
        &self.streams
    }

    /// Changes whenever a command is queued (for long-polls).
    pub fn command_ticks(&self) -> watch::Receiver<u64> {
        self.command_tick.subscribe()
    }

    /// The name of the operator whose token `token` is: every operator
    /// token is compared (constant time each, no early exit).
    pub fn operator_name(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (name, t) in &self.operators {
            if t.matches(token) {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// Whether the API verifies client certificates (mTLS).
    pub fn verifies_client_certs(&self) -> bool {
        self.cfg
            .orchestrator
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca.is_some())
    }

    /// Whether `token` is the read-only token (constant-time comparison).
    pub fn is_reader(&self, token: &str) -> bool {
        self.reader.as_ref().is_some_and(|r| r.matches(token))
    }

    /// Whether an agent may report about `name`: a site, or a hybrid frontend it probes.
    pub fn is_probe_target(&self, name: &str) -> bool {
        self.probe_targets.contains(name)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
