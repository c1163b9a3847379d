//! The orchestrator service: shared state, the detection loop that turns
//! rounds into decisions, runbook tasks, reconciliation, and the
//! [`RunbookEnv`] implementation that talks to agents and strategies.
//!
//! One `Mutex<State>` guards everything that decisions read, so a decision and
//! the evidence it was made on are always consistent. No await happens while
//! it is held.

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
use warden_strategies::{Observed, SiteRoute, Strategy, StrategyError, SwitchMode};

use crate::commands::{Accepted, Ledger};
use crate::detector::{Detector, Evidence, Transition, Verdict};
use crate::metrics::Metrics;
use crate::model::*;
use crate::runbook::{self, Policy, RunbookEnv};
use crate::store::Store;
use crate::OrchestratorError;

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
    pub fn to_ms(&self, at: Instant) -> u64 {
        let off = at.saturating_duration_since(self.base).as_millis() as u64;
        self.base_unix_ms + off
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything decisions read, behind one lock.
pub struct State {
    pub evidence: Evidence,
    pub detector: Detector,
    pub groups: BTreeMap<String, GroupState>,
    /// Commands queued for agents and their outcomes (see [`Ledger`]).
    pub ledger: Ledger,
    /// Recent events (the store has them all).
    pub recent: VecDeque<Event>,
    pub next_event: u64,
    pub next_runbook: u64,
    /// Latest runbook per id (running and recent).
    pub runbooks: BTreeMap<u64, Runbook>,
    /// Per group: a "no healthy standby" event was already raised for this incident.
    pub no_standby_raised: BTreeMap<String, bool>,
    /// An `isolated` event was raised and not yet ended.
    pub isolation_announced: bool,
    /// `hybrid` groups' frontends judged like sites (DESIGN §3) from the
    /// orchestrator's probes and the agents' peer probes; see [`Detector::agentless`].
    pub fe_evidence: Evidence,
    pub fe_detector: Detector,
    /// Hybrid groups whose DNS layer is being moved right now (one move at a time).
    pub dns_moving: std::collections::BTreeSet<String>,
    /// Per hybrid group: a "no healthy frontend" event was already raised.
    pub no_frontend_raised: BTreeMap<String, bool>,
    /// Per group with `rpo_max`: the RPO is over it (an event was raised).
    pub rpo_over: BTreeMap<String, bool>,
    /// Per group: an epoch above the group's seen outside (see [`crate::authority`]).
    pub epoch_ahead: BTreeMap<String, crate::authority::EpochAhead>,
    /// Groups new to the store, to be adopted from the routing layer at start.
    pub fresh: std::collections::BTreeSet<String>,
    /// Divergent lists being assembled from report pages, per (site, group).
    pub divergent_pages: BTreeMap<(String, String), crate::divergent::Assembly>,
}

/// Shared by the loops, the API handlers and the runbook tasks.
pub struct Shared {
    pub cfg: Config,
    pub operator: Secret,
    /// Agent token → site. A hash lookup (not a constant-time scan) keeps a
    /// report O(1) with tens of thousands of sites; tokens are long and random.
    pub agent_tokens: std::collections::HashMap<String, String>,
    pub store: Arc<dyn Store>,
    pub strategies: BTreeMap<String, Arc<dyn Strategy>>,
    pub state: Mutex<State>,
    /// Bumped on every accepted report (waiters for outcomes and health).
    pub report_tick: watch::Sender<u64>,
    /// Bumped whenever a command is queued (long-polls).
    pub command_tick: watch::Sender<u64>,
    pub clock: Clock,
    pub http: reqwest::Client,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
    /// The frontends of `hybrid` groups and their probe (see
    /// [`Config::hybrid_frontend_probes`]); empty without hybrid groups.
    pub frontend_probes: BTreeMap<String, (warden_config::CheckSpec, Vec<String>)>,
    /// Events recorded but not yet in the store (see [`Shared::write_events`]).
    unsaved: Mutex<Vec<Event>>,
    unsaved_notify: tokio::sync::Notify,
}

/// Build the strategy of every group. Fails when a group's strategy cannot be built (config, secrets).
pub fn build_strategies(
    cfg: &Config,
) -> Result<BTreeMap<String, Arc<dyn Strategy>>, OrchestratorError> {
    let mut out = BTreeMap::new();
    for (name, g) in &cfg.groups {
        let s: Arc<dyn Strategy> = match g.scheme.get_ref() {
            Scheme::Frontend => {
                warden_strategies::frontend::FrontendStrategy::from_config(cfg, name)
                    .map_err(|e| OrchestratorError::Setup(format!("group {name}: {e}")))?
            }
            Scheme::Dns => warden_strategies::dns::DnsStrategy::from_config(cfg, name)
                .map_err(|e| OrchestratorError::Setup(format!("group {name}: {e}")))?,
            Scheme::Hybrid => warden_strategies::hybrid::HybridStrategy::from_config(cfg, name)
                .map_err(|e| OrchestratorError::Setup(format!("group {name}: {e}")))?,
        };
        out.insert(name.clone(), s);
    }
    Ok(out)
}

impl Shared {
    pub fn new(
        cfg: Config,
        store: Arc<dyn Store>,
        strategies: BTreeMap<String, Arc<dyn Strategy>>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Shared>, OrchestratorError> {
        let operator = Secret::load(
            "orchestrator.operator_token",
            &cfg.orchestrator.operator_token,
        )?;
        let mut agent_tokens = std::collections::HashMap::new();
        for (name, s) in &cfg.sites {
            let t = Secret::load(&format!("sites.{name}.agent_token"), &s.agent_token)?;
            if let Some(other) = agent_tokens.insert(t.expose().to_string(), name.clone()) {
                return Err(OrchestratorError::Setup(format!(
                    "sites.{name}.agent_token and sites.{other}.agent_token are the same secret; give every site its own"
                )));
            }
        }
        let clock = Clock::new();
        let mut groups: BTreeMap<String, GroupState> = store
            .groups()?
            .into_iter()
            .map(|g| (g.name.clone(), g))
            .collect();
        groups.retain(|k, _| cfg.groups.contains_key(k));
        let mut fresh_groups = std::collections::BTreeSet::new();
        for (name, g) in &cfg.groups {
            let sites = g.site_names();
            let fresh = GroupState {
                name: name.clone(),
                active: g.primary().to_string(),
                epoch: 1,
                phase: Phase::Steady,
                maintenance: false,
                pending: None,
                runbook: None,
                moves_unix_ms: vec![],
                incident_started_unix_ms: None,
                frontend: None,
                replication_paused_since_unix_ms: None,
                divergent: vec![],
                failback_retry_unix_ms: None,
                hold: Some(
                    "the group is new to the store: automatic decisions wait until every site has reported"
                        .to_string(),
                ),
                failback_aborts: 0,
                last_failback_failure: None,
                failback_blocked: None,
            };
            if !groups.contains_key(name) {
                fresh_groups.insert(name.clone());
            }
            let entry = groups.entry(name.clone()).or_insert_with(|| fresh.clone());
            if !sites.contains(&entry.active) {
                warn!(group = %name, active = %entry.active, "stored active site is no longer in the group; starting from the primary");
                let epoch = entry.epoch + 1;
                *entry = GroupState { epoch, ..fresh };
            }
            store.put_group(entry)?;
        }
        let runbooks: BTreeMap<u64, Runbook> =
            store.runbooks()?.into_iter().map(|r| (r.id, r)).collect();
        let next_runbook = runbooks.keys().next_back().copied().unwrap_or(0) + 1;
        let next_event = store.last_event_id()? + 1;
        let http = reqwest::Client::builder()
            .timeout(cfg.detection.probe_timeout)
            .build()
            .map_err(|e| OrchestratorError::Setup(format!("http client: {e}")))?;
        let detector = Detector::new(cfg.detection.clone(), cfg.sites.keys().cloned());
        let state = State {
            evidence: Evidence::default(),
            detector,
            groups,
            ledger: Ledger::default(),
            recent: VecDeque::new(),
            next_event,
            next_runbook,
            runbooks,
            no_standby_raised: BTreeMap::new(),
            isolation_announced: false,
            fe_evidence: Evidence::default(),
            fe_detector: Detector::agentless(
                cfg.detection.clone(),
                cfg.hybrid_frontend_probes().into_keys(),
            ),
            dns_moving: Default::default(),
            no_frontend_raised: BTreeMap::new(),
            rpo_over: BTreeMap::new(),
            epoch_ahead: BTreeMap::new(),
            fresh: fresh_groups,
            divergent_pages: BTreeMap::new(),
        };
        let frontend_probes = cfg.hybrid_frontend_probes();
        Ok(Arc::new(Shared {
            cfg,
            operator,
            agent_tokens,
            store,
            strategies,
            state: Mutex::new(state),
            report_tick: watch::channel(0).0,
            command_tick: watch::channel(0).0,
            clock,
            http,
            metrics: Metrics::new(),
            shutdown,
            frontend_probes,
            unsaved: Mutex::new(Vec::new()),
            unsaved_notify: tokio::sync::Notify::new(),
        }))
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record an event (state lock must NOT be held).
    pub fn event(
        &self,
        kind: EventKind,
        group: Option<&str>,
        site: Option<&str>,
        message: String,
        evidence: Vec<EvidenceRow>,
        runbook: Option<u64>,
    ) {
        let mut st = self.lock();
        self.event_locked(&mut st, kind, group, site, message, evidence, runbook);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn event_locked(
        &self,
        st: &mut State,
        kind: EventKind,
        group: Option<&str>,
        site: Option<&str>,
        message: String,
        evidence: Vec<EvidenceRow>,
        runbook: Option<u64>,
    ) {
        let e = Event {
            id: st.next_event,
            time_unix_ms: self.clock.now_ms(),
            kind,
            group: group.map(str::to_string),
            site: site.map(str::to_string),
            message,
            evidence,
            runbook,
        };
        st.next_event += 1;
        info!(event = ?e.kind, group = e.group.as_deref().unwrap_or("-"), site = e.site.as_deref().unwrap_or("-"), "{}", e.message);
        // Persisted by `write_events` in batches, outside the state lock: an
        // incident that raises thousands of events must not hold up reports.
        self.unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
        self.unsaved_notify.notify_one();
        self.metrics.events.inc();
        st.recent.push_back(e);
        while st.recent.len() > 2000 {
            st.recent.pop_front();
        }
    }

    /// Persist recorded events in batches until `stop`, then once more.
    pub async fn write_events(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = self.unsaved_notify.notified() => false,
                _ = stop.cancelled() => true,
            };
            let batch =
                std::mem::take(&mut *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()));
            if !batch.is_empty() {
                let store = self.store.clone();
                let n = batch.len();
                match tokio::task::spawn_blocking(move || store.put_events(&batch)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!(cause = %e, events = n, "cannot persist events"),
                    Err(e) => warn!(cause = %e, events = n, "event writer task failed"),
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Which site a bearer token belongs to.
    pub fn site_of_token(&self, token: &str) -> Option<&str> {
        self.agent_tokens.get(token).map(String::as_str)
    }

    /// Accept a report (already authenticated for `site`).
    ///
    /// Outcomes count only for commands queued for this very site (see
    /// [`Ledger::accept`]); every outcome is acked so the agent stops
    /// resending it. A site that believes it is active for a group that was
    /// failed away from it is told to demote before anything else.
    pub fn accept_report(&self, report: AgentReport) -> ReportResponse {
        let site = report.site.clone();
        let mut acked = Vec::new();
        let mut st = self.lock();
        for o in &report.outcomes {
            acked.push(o.id.clone());
            if st.ledger.accept(&site, o) == Accepted::Late {
                info!(site = %site, command = %crate::commands::display_id(&o.id), "late outcome for a withdrawn command ignored");
            }
        }
        self.authority_check_locked(&mut st, &site, &report.authority);
        self.divergent_intake_locked(&mut st, &site, &report.replication);
        let now = Instant::now();
        if report
            .peers
            .iter()
            .any(|p| self.frontend_probes.contains_key(&p.site))
        {
            // The agent's probes of hybrid frontends are evidence about them.
            st.fe_evidence.insert_report(now, report.clone());
        }
        st.evidence.insert_report(now, report);
        let commands = st.ledger.pending_for(&site);
        let epochs = self.epochs_of_locked(&st, &site);
        drop(st);
        self.report_tick.send_modify(|v| *v += 1);
        ReportResponse {
            commands,
            acked,
            epochs,
        }
    }

    /// The commands waiting for `site`, demotes first.
    pub fn commands_for(&self, site: &str) -> Vec<Command> {
        self.lock().ledger.pending_for(site)
    }

    /// The current epoch of every group `site` belongs to (told to its agent).
    pub fn epochs_of_locked(&self, st: &State, site: &str) -> BTreeMap<String, u64> {
        st.groups
            .iter()
            .filter(|(name, _)| {
                self.cfg
                    .groups
                    .get(*name)
                    .is_some_and(|g| g.site_names().iter().any(|s| s == site))
            })
            .map(|(name, g)| (name.clone(), g.epoch))
            .collect()
    }

    fn policy(&self, group: &str) -> Policy {
        let g = &self.cfg.groups[group];
        Policy {
            fencing: g.fencing,
            fence_command: g.fence_command.clone(),
            step_timeout: g.step_timeout,
            resync_timeout: g
                .replication
                .as_ref()
                .map(|r| r.get_ref().resync_timeout)
                .unwrap_or(g.step_timeout),
        }
    }

    /// Start a runbook (state lock held by caller). Returns its id.
    #[allow(clippy::too_many_arguments)]
    fn start_runbook_locked(
        self: &Arc<Self>,
        st: &mut State,
        group: &str,
        kind: RunbookKind,
        to: &str,
        trigger: &str,
        automatic: bool,
        evidence: Vec<EvidenceRow>,
    ) -> Result<u64, OrchestratorError> {
        let now = self.clock.now_ms();
        let g = st
            .groups
            .get(group)
            .cloned()
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group}")))?;
        if let Some(x) = st.epoch_ahead.get(group) {
            return Err(OrchestratorError::Conflict(format!(
                "group {group}: {} holds epoch {}, above the group's {}: any move would be refused as stale; \
                 adopt it first (`warden adopt-epoch {group}`) once you know no other orchestrator acts",
                x.seen_at, x.epoch, g.epoch
            )));
        }
        let id = st.next_runbook;
        let epoch = g.epoch.checked_add(1).ok_or_else(|| {
            OrchestratorError::Conflict(format!(
                "group {group} is at epoch {}: no later epoch exists",
                g.epoch
            ))
        })?;
        let incident = match kind {
            RunbookKind::Failover => g.incident_started_unix_ms.unwrap_or(now),
            RunbookKind::Failback | RunbookKind::Switchover => now,
        };
        let rb = Runbook::new(
            id, group, kind, &g.active, to, epoch, trigger, now, incident,
        );
        let mut ng = g.clone();
        ng.epoch = epoch;
        ng.phase = Phase::Running;
        // A decision was taken (by the detector with every site heard, or an operator).
        ng.hold = None;
        ng.runbook = Some(id);
        ng.pending = None;
        if automatic {
            ng.moves_unix_ms.push(now);
        }
        if kind == RunbookKind::Failover
            && self.cfg.groups[group].replication.is_some()
            && ng.replication_paused_since_unix_ms.is_none()
        {
            // From here on nothing may restart replication from the old
            // active site; the failback's resync ends the pause.
            ng.replication_paused_since_unix_ms = Some(now);
        }
        self.store.put_group_and_runbook(&ng, &rb)?;
        // Orders of earlier epochs are void from here on.
        st.ledger.withdraw_below(
            group,
            epoch,
            &format!("runbook {id} moved the group to epoch {epoch}"),
        );
        st.next_runbook += 1;
        st.groups.insert(group.to_string(), ng);
        st.runbooks.insert(id, rb.clone());
        self.event_locked(
            st,
            EventKind::RunbookStarted,
            Some(group),
            Some(to),
            format!(
                "{}{} {} → {} started by {trigger} at epoch {epoch}",
                if self.cfg.groups[group].scheme.get_ref() == &warden_config::Scheme::Hybrid {
                    "site layer (frontends route to the new site): "
                } else {
                    ""
                },
                runbook::kind_str(kind),
                g.active,
                to
            ),
            evidence,
            Some(id),
        );
        self.spawn_runbook(rb);
        Ok(id)
    }

    fn spawn_runbook(self: &Arc<Self>, rb: Runbook) {
        let me = self.clone();
        tokio::spawn(async move {
            let policy = me.policy(&rb.group);
            let env = Env { shared: me.clone() };
            let shutdown = me.shutdown.clone();
            let group = rb.group.clone();
            let done = tokio::select! {
                rb = runbook::execute(rb, &env, me.store.as_ref(), &policy) => rb,
                _ = shutdown.cancelled() => {
                    info!(group = %group, "shutdown: runbook left running in the store; it resumes on restart");
                    return;
                }
            };
            me.finish_runbook(done);
        });
    }

    fn finish_runbook(&self, rb: Runbook) {
        let mut st = self.lock();
        st.runbooks.insert(rb.id, rb.clone());
        // Its commands no agent has answered are taken back: nobody may act on
        // them later (a silent site that returns must not promote itself).
        let withdrawn = st
            .ledger
            .withdraw_runbook(rb.id, &format!("runbook {} ended", rb.id));
        if !withdrawn.is_empty() {
            let list: Vec<String> = withdrawn
                .iter()
                .map(|c| format!("{} for {}", c.id, c.site))
                .collect();
            info!(runbook = rb.id, commands = %list.join(", "), "withdrew the runbook's unanswered commands");
        }
        let Some(g) = st.groups.get(&rb.group).cloned() else {
            return;
        };
        let mut ng = g;
        let switched = rb
            .steps
            .iter()
            .any(|s| s.name == StepName::Switch && s.status == StepStatus::Done);
        if switched {
            ng.active = rb.to.clone();
        }
        ng.runbook = None;
        ng.phase = match rb.status {
            RunbookStatus::Succeeded => Phase::Steady,
            _ if rb.aborted && !switched => Phase::Steady,
            _ => Phase::Failed,
        };
        if rb.status == RunbookStatus::Succeeded {
            ng.incident_started_unix_ms = None;
            ng.failback_retry_unix_ms = None;
            if rb.kind != RunbookKind::Failover {
                crate::retry::reset(&mut ng);
            }
        }
        let replication_started = rb
            .steps
            .iter()
            .any(|s| s.name == StepName::StartReplication && s.status == StepStatus::Done);
        if replication_started {
            ng.replication_paused_since_unix_ms = None;
        }
        if rb.aborted && !switched {
            let base = self.cfg.detection.hold_down.max(Duration::from_secs(5));
            let after = if rb.kind == RunbookKind::Failback {
                crate::retry::on_aborted(&mut ng, &rb, base)
            } else {
                crate::retry::After::Retry(base)
            };
            let backoff = match &after {
                crate::retry::After::Retry(d) => *d,
                crate::retry::After::Stop(_) => base,
            };
            let retry = self.clock.now_ms() + backoff.as_millis() as u64;
            ng.failback_retry_unix_ms = Some(retry);
            if let crate::retry::After::Stop(msg) = &after {
                self.event_locked(
                    &mut st,
                    EventKind::Alert,
                    Some(&rb.group),
                    Some(&rb.to),
                    msg.clone(),
                    vec![],
                    Some(rb.id),
                );
            }
            self.event_locked(
                &mut st,
                EventKind::FailbackAborted,
                Some(&rb.group),
                Some(&rb.from),
                format!(
                    "{} {} → {} aborted before the switch: users stay on {}, which keeps its data and writes; {}",
                    runbook::kind_str(rb.kind),
                    rb.from,
                    rb.to,
                    rb.from,
                    if rb.kind == RunbookKind::Failback && ng.failback_blocked.is_some() {
                        "automatic failback stopped: the same failure twice".to_string()
                    } else if rb.kind == RunbookKind::Failback {
                        format!("retried once {} is recovered again, not before {} s from now", rb.to, backoff.as_secs())
                    } else {
                        "run the switchover again when the cause is fixed".to_string()
                    }
                ),
                vec![],
                Some(rb.id),
            );
        }
        if let Err(e) = self.store.put_group(&ng) {
            warn!(cause = %e, "cannot persist group state");
        }
        st.groups.insert(rb.group.clone(), ng);
        self.metrics.runbooks.inc();
        if let Some(rto) = rb.rto_ms {
            self.metrics.last_rto_ms.set(rto as i64);
        }
    }

    /// The latest replication status `site`'s agent reported for `group`, with the report's age.
    pub fn replication_status(
        st: &State,
        site: &str,
        group: &str,
    ) -> Option<(Duration, ReplicationStatus)> {
        let (at, rep) = st.evidence.report(site)?;
        let r = rep.replication.iter().find(|r| r.group == group)?;
        Some((at.elapsed(), r.clone()))
    }

    /// Keep continuous replication as decided (run from every detection
    /// round): in a steady group whose replication is not paused, the active
    /// site replicates to its standby; no other site replicates. Commands
    /// carry the agent's start time in their id, so each agent process is
    /// asked once per epoch (a fatal error is not retried in a loop: it shows
    /// in `warden status`).
    fn replication_round_locked(&self, st: &mut State) {
        let mut queued = false;
        let now_ms = self.clock.now_ms();
        let names: Vec<String> = st.groups.keys().cloned().collect();
        for name in names {
            let gc = &self.cfg.groups[&name];
            let Some(rc) = gc.replication.as_ref().map(|r| r.get_ref()) else {
                continue;
            };
            let g = st.groups[&name].clone();
            if g.phase == Phase::Running || self.held_locked(st, &name).is_some() {
                continue;
            }
            let sites = gc.site_names();
            let standby = sites.iter().find(|s| **s != g.active).cloned();
            let want_source = g.replication_paused_since_unix_ms.is_none();
            for site in &sites {
                let Some((age, r)) = Self::replication_status(st, site, &name) else {
                    continue;
                };
                if age > self.cfg.detection.agent_timeout {
                    continue;
                }
                let started = st
                    .evidence
                    .report(site)
                    .map(|(_, r)| r.started_unix_ms)
                    .unwrap_or(0);
                let is_active = *site == g.active;
                let (kind, peer) = if is_active && want_source {
                    let Some(peer) = standby.clone() else {
                        continue;
                    };
                    if r.role == "source" && r.peer.as_deref() == Some(peer.as_str()) {
                        continue;
                    }
                    if r.role == "resync" {
                        continue;
                    }
                    (CommandKind::StartReplication, Some(peer))
                } else if r.role == "source" {
                    (CommandKind::StopReplication, None)
                } else {
                    continue;
                };
                let mut cmd = Command::new(&name, g.epoch, kind).to_site(site);
                cmd.id = format!("{}:{started}", cmd.id);
                cmd.peer = peer.clone();
                if st.ledger.state(&cmd.id).is_some() {
                    continue;
                }
                st.ledger.queue(cmd, None);
                queued = true;
                let msg = match kind {
                    CommandKind::StartReplication => format!(
                        "asking {site} to replicate to {} ({}); it reported {}",
                        peer.unwrap_or_default(),
                        rc.plan.as_str(),
                        r.role
                    ),
                    _ => format!(
                        "asking {site} to stop replicating: {} is the active site{}",
                        g.active,
                        if want_source {
                            ""
                        } else {
                            " and replication is paused until failback"
                        }
                    ),
                };
                self.event_locked(
                    st,
                    EventKind::Replication,
                    Some(&name),
                    Some(site),
                    msg,
                    vec![],
                    None,
                );
            }
            // RPO watch: over rpo_max → one event; back under → one event.
            if let Some(max) = rc.rpo_max {
                let rpo = self.rpo_ms(st, &name, now_ms);
                let over = rpo.is_none_or(|r| r > max.as_millis() as u64);
                let was = st.rpo_over.get(&name).copied().unwrap_or(false);
                if over != was {
                    st.rpo_over.insert(name.clone(), over);
                    let shown = rpo.map(|r| format!("{} ms", r)).unwrap_or_else(|| {
                        "unknown (no replication report from the active site)".into()
                    });
                    self.event_locked(
                        st,
                        EventKind::RpoExceeded,
                        Some(&name),
                        Some(&g.active),
                        if over {
                            format!("RPO {shown} is over rpo_max {} ms: losing {} now would lose that much", max.as_millis(), g.active)
                        } else {
                            format!("RPO back under rpo_max: {shown}")
                        },
                        vec![],
                        None,
                    );
                }
            }
        }
        if queued {
            self.command_tick.send_modify(|v| *v += 1);
        }
    }

    /// The RPO of `group` now: what would be lost if its active site died
    /// this moment. The active site's reported lag plus the report's age;
    /// while replication is paused (after a failover), the time since the
    /// pause. `None` when the active site reports no replication.
    pub fn rpo_ms(&self, st: &State, group: &str, now_ms: u64) -> Option<u64> {
        let g = st.groups.get(group)?;
        if let Some(p) = g.replication_paused_since_unix_ms {
            return Some(now_ms.saturating_sub(p));
        }
        let (age, r) = Self::replication_status(st, &g.active, group)?;
        if r.role != "source" {
            return None;
        }
        Some(r.lag_ms.unwrap_or(0) + age.as_millis() as u64)
    }

    /// Resume runbooks left running by a previous process.
    pub fn resume(self: &Arc<Self>) {
        let mut to_spawn = Vec::new();
        let mut to_finish = Vec::new();
        {
            let st = self.lock();
            for g in st.groups.values() {
                if g.phase != Phase::Running {
                    continue;
                }
                let Some(id) = g.runbook else { continue };
                match st.runbooks.get(&id) {
                    Some(rb) if rb.status == RunbookStatus::Running => to_spawn.push(rb.clone()),
                    Some(rb) => to_finish.push(rb.clone()),
                    None => warn!(group = %g.name, runbook = id, "runbook missing from store"),
                }
            }
        }
        for rb in to_finish {
            self.finish_runbook(rb);
        }
        for mut rb in to_spawn {
            rb.resumes += 1;
            let step = rb
                .next_step()
                .map(|i| runbook::step_str(rb.steps[i].name))
                .unwrap_or("end");
            self.event(
                EventKind::RunbookResumed,
                Some(&rb.group),
                Some(&rb.to),
                format!(
                    "resuming {} {} → {} at step {step} (epoch {})",
                    runbook::kind_str(rb.kind),
                    rb.from,
                    rb.to,
                    rb.epoch
                ),
                vec![],
                Some(rb.id),
            );
            // Re-queue nothing here: the step re-sends its command with the same id.
            self.spawn_runbook(rb);
        }
    }

    /// One detection round and the decisions it leads to.
    pub fn detect_round(self: &Arc<Self>) {
        let now = Instant::now();
        let mut st = self.lock();
        let st = &mut *st;
        self.lift_holds_locked(st, now);
        self.flush_dropped_locked(st);
        let round = st.detector.round(&st.evidence, now);
        // At start-up nothing has been heard yet: that is not isolation worth an alert.
        let announce = match round.isolation_changed {
            Some(true) => st.evidence.has_reports(),
            Some(false) => st.isolation_announced,
            None => false,
        };
        if let (true, Some(iso)) = (announce, round.isolation_changed) {
            st.isolation_announced = iso;
            let (kind, msg) = if iso {
                (EventKind::Isolated, "the orchestrator reaches no site and hears from no agent: it is the one cut off; deciding nothing".to_string())
            } else {
                (
                    EventKind::IsolationEnded,
                    "the orchestrator hears from sites again".to_string(),
                )
            };
            let ev: Vec<EvidenceRow> = round
                .sites
                .iter()
                .flat_map(|s| s.evidence.clone())
                .collect();
            self.event_locked(st, kind, None, None, msg, ev, None);
        }
        if round.isolated {
            return;
        }
        for s in &round.sites {
            for t in &s.transitions {
                let (kind, msg) = match (t, &s.verdict) {
                    (Transition::ConfirmedDown, v) => (
                        EventKind::SiteConfirmedDown,
                        format!(
                            "site {} confirmed down after {} rounds: {}",
                            s.site,
                            self.cfg.detection.fall,
                            v.reason()
                        ),
                    ),
                    (Transition::Recovered, _) => (
                        EventKind::SiteRecovered,
                        format!(
                            "site {} recovered: {} healthy rounds and hold-down {:?} passed",
                            s.site, self.cfg.detection.rise, self.cfg.detection.hold_down
                        ),
                    ),
                    (Transition::Changed, Verdict::Down(r)) => (
                        EventKind::SiteDown,
                        format!("site {} down this round: {r}", s.site),
                    ),
                    (Transition::Changed, Verdict::PathFault(r)) => (
                        EventKind::PathFault,
                        format!("path fault to site {} (not a disaster): {r}", s.site),
                    ),
                    (Transition::Changed, Verdict::DeadAgent(r)) => (
                        EventKind::DeadAgent,
                        format!("dead agent at site {} (not a disaster): {r}", s.site),
                    ),
                    (Transition::Changed, Verdict::Unconfirmed(r)) => {
                        (EventKind::Unconfirmed, format!("site {}: {r}", s.site))
                    }
                    _ => continue,
                };
                self.event_locked(st, kind, None, Some(&s.site), msg, s.evidence.clone(), None);
            }
        }
        self.frontend_round_locked(st, now);
        self.replication_round_locked(st);
        // Decisions per group.
        let by_site: BTreeMap<&str, &crate::detector::SiteRound> =
            round.sites.iter().map(|s| (s.site.as_str(), s)).collect();
        let healthy = |s: &str| {
            by_site
                .get(s)
                .is_some_and(|r| r.verdict == Verdict::Healthy)
        };
        let names: Vec<String> = st.groups.keys().cloned().collect();
        for name in names {
            let g = st.groups[&name].clone();
            let gc = &self.cfg.groups[&name];
            if g.maintenance || g.phase == Phase::Running {
                continue;
            }
            let active_track = st.detector.track(&g.active).cloned().unwrap_or_default();
            let sites = gc.site_names();
            let evidence = || -> Vec<EvidenceRow> {
                sites
                    .iter()
                    .filter_map(|s| by_site.get(s.as_str()))
                    .flat_map(|s| s.evidence.clone())
                    .collect()
            };
            if g.phase == Phase::PendingApproval {
                if let Some(p) = &g.pending {
                    if p.kind == RunbookKind::Failover && !active_track.confirmed_down {
                        let mut ng = g.clone();
                        ng.pending = None;
                        ng.phase = Phase::Steady;
                        let _ = self.store.put_group(&ng);
                        st.groups.insert(name.clone(), ng);
                        self.event_locked(
                            st,
                            EventKind::PendingApproval,
                            Some(&name),
                            Some(&g.active),
                            format!(
                                "pending failover withdrawn: {} is no longer confirmed down",
                                g.active
                            ),
                            evidence(),
                            None,
                        );
                    }
                }
                continue;
            }
            if g.phase == Phase::Failed {
                continue;
            }
            // Failover?
            if active_track.confirmed_down {
                if g.incident_started_unix_ms.is_none() {
                    if let Some(ff) = active_track.first_failing {
                        let ms = self.clock.to_ms(ff);
                        if let Some(gs) = st.groups.get_mut(&name) {
                            gs.incident_started_unix_ms = Some(ms);
                        }
                    }
                }
                let target = sites
                    .iter()
                    .find(|s| *s != &g.active && healthy(s))
                    .cloned();
                let Some(target) = target else {
                    if !st.no_standby_raised.get(&name).copied().unwrap_or(false) {
                        st.no_standby_raised.insert(name.clone(), true);
                        self.event_locked(st, EventKind::NoStandby, Some(&name), Some(&g.active), format!("{} is confirmed down but no standby of group {name} is healthy; waiting", g.active), evidence(), None);
                    }
                    continue;
                };
                st.no_standby_raised.insert(name.clone(), false);
                self.decide(st, &name, RunbookKind::Failover, &target, evidence());
                continue;
            }
            // Failback?
            let primary = gc.primary().to_string();
            let retry_ok = g.failback_blocked.is_none()
                && g.failback_retry_unix_ms
                    .is_none_or(|t| self.clock.now_ms() >= t);
            if g.active != primary
                && gc.failback == FailbackMode::Auto
                && retry_ok
                && st.detector.is_recovered(&primary, now)
                && healthy(&primary)
            {
                self.decide(st, &name, RunbookKind::Failback, &primary, evidence());
            }
        }
    }

    /// The frontend layer of `hybrid` groups: judge every frontend machine
    /// (same rules as sites, no agent of their own), record its transitions,
    /// and move a group's DNS name off a confirmed-down frontend to a healthy one.
    fn frontend_round_locked(self: &Arc<Self>, st: &mut State, now: Instant) {
        if self.frontend_probes.is_empty() {
            return;
        }
        let round = st.fe_detector.round(&st.fe_evidence, now);
        for f in &round.sites {
            for t in &f.transitions {
                let (kind, msg) = match (t, &f.verdict) {
                    (Transition::ConfirmedDown, v) => (
                        EventKind::FrontendConfirmedDown,
                        format!(
                            "frontend {} confirmed down after {} rounds: {}",
                            f.site,
                            self.cfg.detection.fall,
                            v.reason()
                        ),
                    ),
                    (Transition::Recovered, _) => (
                        EventKind::FrontendRecovered,
                        format!("frontend {} recovered", f.site),
                    ),
                    (Transition::Changed, Verdict::Down(r)) => (
                        EventKind::FrontendDown,
                        format!("frontend {} down this round: {r}", f.site),
                    ),
                    (Transition::Changed, Verdict::PathFault(r)) => (
                        EventKind::PathFault,
                        format!(
                            "path fault to frontend {} (not a frontend death): {r}",
                            f.site
                        ),
                    ),
                    _ => continue,
                };
                self.event_locked(st, kind, None, Some(&f.site), msg, f.evidence.clone(), None);
            }
        }
        let by_fe: BTreeMap<&str, &crate::detector::SiteRound> =
            round.sites.iter().map(|f| (f.site.as_str(), f)).collect();
        let names: Vec<String> = st.groups.keys().cloned().collect();
        for name in names {
            let Some(h) = self.strategies.get(&name).and_then(|s| s.as_hybrid()) else {
                continue;
            };
            let g = st.groups[&name].clone();
            if g.maintenance || st.dns_moving.contains(&name) {
                continue;
            }
            let frontends = h.frontend_names();
            let current = g.frontend.clone().unwrap_or_else(|| frontends[0].clone());
            if !st
                .fe_detector
                .track(&current)
                .is_some_and(|t| t.confirmed_down)
            {
                st.no_frontend_raised.insert(name.clone(), false);
                continue;
            }
            let evidence: Vec<EvidenceRow> = frontends
                .iter()
                .filter_map(|f| by_fe.get(f.as_str()))
                .flat_map(|f| f.evidence.clone())
                .collect();
            let target = frontends
                .iter()
                .find(|f| {
                    **f != current
                        && by_fe
                            .get(f.as_str())
                            .is_some_and(|r| r.verdict == Verdict::Healthy)
                })
                .cloned();
            let Some(target) = target else {
                if !st.no_frontend_raised.get(&name).copied().unwrap_or(false) {
                    st.no_frontend_raised.insert(name.clone(), true);
                    self.event_locked(st, EventKind::NoStandby, Some(&name), None, format!("frontend layer: {current} is confirmed down but no other frontend of group {name} is healthy; DNS stays"), evidence, None);
                }
                continue;
            };
            let mut ng = g.clone();
            ng.frontend = Some(target.clone());
            if let Err(e) = self.store.put_group(&ng) {
                warn!(group = %name, cause = %e, "cannot persist the frontend decision; retrying next round");
                continue;
            }
            st.groups.insert(name.clone(), ng);
            st.dns_moving.insert(name.clone());
            let why = by_fe
                .get(current.as_str())
                .map(|r| r.verdict.reason().to_string())
                .unwrap_or_default();
            self.event_locked(
                st,
                EventKind::FrontendMoved,
                Some(&name),
                None,
                format!("frontend layer: {current} confirmed down ({why}) → DNS to {target} at epoch {}", g.epoch),
                evidence,
                None,
            );
            self.spawn_dns_move(name, target, g.epoch);
        }
    }

    /// Point a hybrid group's DNS name at `frontend` (the decision is already
    /// persisted: a failure here is retried by reconciliation).
    fn spawn_dns_move(self: &Arc<Self>, group: String, frontend: String, epoch: u64) {
        let me = self.clone();
        tokio::spawn(async move {
            let Some(strategy) = me.strategies.get(&group).cloned() else {
                return;
            };
            let Some(h) = strategy.as_hybrid() else {
                return;
            };
            let started = Instant::now();
            let r = tokio::select! {
                r = h.point_dns(&frontend, epoch) => r,
                _ = me.shutdown.cancelled() => {
                    me.lock().dns_moving.remove(&group);
                    return;
                }
            };
            me.lock().dns_moving.remove(&group);
            let (kind, msg) = match r {
                Ok(()) => (
                    EventKind::FrontendMoved,
                    format!(
                        "frontend layer: DNS of group {group} points at {frontend} (published at epoch {epoch} in {} ms)",
                        started.elapsed().as_millis()
                    ),
                ),
                Err(e) if e.is_fencing() => (
                    EventKind::Fencing,
                    format!("frontend layer: DNS move to {frontend} refused: {e}"),
                ),
                Err(e) => (
                    EventKind::ReconcileFailed,
                    format!("frontend layer: DNS move to {frontend} failed (reconciliation retries): {e}"),
                ),
            };
            me.event(kind, Some(&group), None, msg, vec![], None);
        });
    }

    /// An automatic decision: start it, or make it pending (manual mode, budget).
    fn decide(
        self: &Arc<Self>,
        st: &mut State,
        group: &str,
        kind: RunbookKind,
        to: &str,
        evidence: Vec<EvidenceRow>,
    ) {
        let gc = &self.cfg.groups[group];
        let now = self.clock.now_ms();
        let window = self.cfg.detection.failover_window.as_millis() as u64;
        let g = st.groups[group].clone();
        let recent = g
            .moves_unix_ms
            .iter()
            .filter(|&&t| now.saturating_sub(t) < window)
            .count() as u32;
        let reason = if !gc.automatic {
            Some("automatic = false".to_string())
        } else if let Some(why) = self.held_locked(st, group) {
            Some(why)
        } else if recent >= self.cfg.detection.max_failovers {
            Some(format!(
                "failover budget exhausted: {recent} automatic moves in the last {} (max_failovers = {})",
                humantime::format_duration(self.cfg.detection.failover_window),
                self.cfg.detection.max_failovers
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            let mut ng = g.clone();
            ng.phase = Phase::PendingApproval;
            ng.pending = Some(Pending {
                kind,
                to: to.to_string(),
                reason: reason.clone(),
                since_unix_ms: now,
            });
            ng.moves_unix_ms.retain(|&t| now.saturating_sub(t) < window);
            let _ = self.store.put_group(&ng);
            st.groups.insert(group.to_string(), ng);
            self.event_locked(
                st,
                EventKind::PendingApproval,
                Some(group),
                Some(to),
                format!(
                    "{} {} → {to} waits for `warden approve {group}`: {reason}",
                    runbook::kind_str(kind),
                    g.active
                ),
                evidence,
                None,
            );
            return;
        }
        if let Err(e) = self.start_runbook_locked(st, group, kind, to, "detector", true, evidence) {
            warn!(group, cause = %e, "cannot start runbook");
        }
    }

    /// Operator actions.
    pub fn operator_failover(
        self: &Arc<Self>,
        group: &str,
        to: &str,
    ) -> Result<u64, OrchestratorError> {
        let gc = self
            .cfg
            .groups
            .get(group)
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group:?}")))?;
        if !gc.site_names().iter().any(|s| s == to) {
            return Err(OrchestratorError::BadRequest(format!(
                "site {to:?} is not in group {group}; its sites are [{}]",
                gc.site_names().join(", ")
            )));
        }
        let mut st = self.lock();
        let g = st.groups[group].clone();
        if g.phase == Phase::Running {
            return Err(OrchestratorError::Conflict(format!(
                "a runbook (id {}) is running for group {group}",
                g.runbook.unwrap_or(0)
            )));
        }
        if g.active == to {
            return Err(OrchestratorError::Conflict(format!(
                "{to} is already the active site of group {group}"
            )));
        }
        let kind = if to == gc.primary() {
            RunbookKind::Failback
        } else {
            RunbookKind::Failover
        };
        self.start_runbook_locked(&mut st, group, kind, to, "operator", false, vec![])
    }

    pub fn operator_failback(self: &Arc<Self>, group: &str) -> Result<u64, OrchestratorError> {
        let gc = self
            .cfg
            .groups
            .get(group)
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group:?}")))?;
        let primary = gc.primary().to_string();
        let mut st = self.lock();
        let g = st.groups[group].clone();
        if g.phase == Phase::Running {
            return Err(OrchestratorError::Conflict(format!(
                "a runbook (id {}) is running for group {group}",
                g.runbook.unwrap_or(0)
            )));
        }
        if g.active == primary {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} already runs on its primary {primary}"
            )));
        }
        if st
            .detector
            .track(&primary)
            .is_some_and(|t| t.confirmed_down)
        {
            return Err(OrchestratorError::Conflict(format!(
                "primary {primary} is still confirmed down; fail back once it is healthy"
            )));
        }
        // The operator takes over from a stopped automatic failback.
        if let Some(gs) = st.groups.get_mut(group) {
            gs.failback_blocked = None;
        }
        self.start_runbook_locked(
            &mut st,
            group,
            RunbookKind::Failback,
            &primary,
            "operator",
            false,
            vec![],
        )
    }

    /// `warden switchover GROUP --to SITE`: the failback cut-over applied to
    /// a healthy pair (resync, demote, final pass + verify, promote, switch).
    pub fn operator_switchover(
        self: &Arc<Self>,
        group: &str,
        to: &str,
    ) -> Result<u64, OrchestratorError> {
        let gc = self
            .cfg
            .groups
            .get(group)
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group:?}")))?;
        if !gc.site_names().iter().any(|s| s == to) {
            return Err(OrchestratorError::BadRequest(format!(
                "{to:?} is not a site of group {group}; its sites: {}",
                gc.site_names().join(", ")
            )));
        }
        let mut st = self.lock();
        let g = st.groups[group].clone();
        if g.phase == Phase::Running {
            return Err(OrchestratorError::Conflict(format!(
                "a runbook (id {}) is running for group {group}",
                g.runbook.unwrap_or(0)
            )));
        }
        if g.active == to {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} already runs on {to}"
            )));
        }
        for site in [&g.active, &to.to_string()] {
            if !st.detector.agent_fresh(&st.evidence, site, Instant::now()) {
                return Err(OrchestratorError::Conflict(format!(
                    "{site}'s agent is not reporting: a switchover needs both sites healthy (use failover for a lost site)"
                )));
            }
        }
        self.start_runbook_locked(
            &mut st,
            group,
            RunbookKind::Switchover,
            to,
            "operator",
            false,
            vec![],
        )
    }

    pub fn operator_approve(self: &Arc<Self>, group: &str) -> Result<u64, OrchestratorError> {
        if !self.cfg.groups.contains_key(group) {
            return Err(OrchestratorError::NotFound(format!("group {group:?}")));
        }
        let mut st = self.lock();
        if let Some(x) = st.epoch_ahead.get(group) {
            return Err(OrchestratorError::Conflict(format!(
                "group {group}: {} holds epoch {}, above the group's {}: adopt it first (`warden adopt-epoch {group}`), \
                 or any move would be refused as stale",
                x.seen_at, x.epoch, st.groups[group].epoch
            )));
        }
        if let Some(gs) = st.groups.get_mut(group) {
            gs.hold = None;
        }
        let g = st.groups[group].clone();
        let Some(p) = g
            .pending
            .clone()
            .filter(|_| g.phase == Phase::PendingApproval)
        else {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} has no pending decision"
            )));
        };
        self.event_locked(
            &mut st,
            EventKind::Approved,
            Some(group),
            Some(&p.to),
            format!(
                "operator approved {} → {} ({})",
                runbook::kind_str(p.kind),
                p.to,
                p.reason
            ),
            vec![],
            None,
        );
        // Approval resets the budget window: the operator has taken responsibility.
        if let Some(gs) = st.groups.get_mut(group) {
            gs.moves_unix_ms.clear();
        }
        self.start_runbook_locked(&mut st, group, p.kind, &p.to, "approved", false, vec![])
    }

    pub fn operator_maintenance(&self, group: &str, on: bool) -> Result<(), OrchestratorError> {
        if !self.cfg.groups.contains_key(group) {
            return Err(OrchestratorError::NotFound(format!("group {group:?}")));
        }
        let mut st = self.lock();
        let mut g = st.groups[group].clone();
        g.maintenance = on;
        self.store.put_group(&g)?;
        st.groups.insert(group.to_string(), g);
        self.event_locked(
            &mut st,
            EventKind::Maintenance,
            Some(group),
            None,
            format!(
                "maintenance {}",
                if on {
                    "on: no automatic decisions"
                } else {
                    "off"
                }
            ),
            vec![],
            None,
        );
        Ok(())
    }

    /// Compare decided routing with what each strategy observes; re-apply on drift.
    pub async fn reconcile_once(&self) {
        let groups: Vec<GroupState> = self.lock().groups.values().cloned().collect();
        for g in groups {
            if g.phase == Phase::Running {
                continue;
            }
            let Some(strategy) = self.strategies.get(&g.name) else {
                continue;
            };
            if let Some(h) = strategy.as_hybrid() {
                self.reconcile_hybrid(&g, h).await;
                continue;
            }
            let observed = strategy.current().await;
            if let Ok(o) = &observed {
                if o.epoch > g.epoch {
                    let mut st = self.lock();
                    self.note_epoch_ahead_locked(&mut st, &g, o.epoch, "the routing layer");
                    continue;
                }
            }
            let drift = match &observed {
                Ok(o)
                    if o.site.as_deref() == Some(g.active.as_str())
                        && o.drift.is_empty()
                        && o.epoch == g.epoch =>
                {
                    None
                }
                Ok(o) => Some(format!(
                    "routing layer reports {:?} at epoch {}{}",
                    o.site,
                    o.epoch,
                    if o.drift.is_empty() {
                        String::new()
                    } else {
                        format!(" (drift: {})", o.drift.join("; "))
                    }
                )),
                Err(e) => Some(format!("cannot observe routing: {e}")),
            };
            let Some(drift) = drift else { continue };
            // Re-check that nothing started meanwhile.
            {
                let st = self.lock();
                if st
                    .groups
                    .get(&g.name)
                    .is_none_or(|x| x.phase == Phase::Running || x.epoch != g.epoch)
                {
                    continue;
                }
            }
            let route = SiteRoute {
                site: g.active.clone(),
                mode: SwitchMode::Immediate,
            };
            match strategy.activate(&route, g.epoch).await {
                Ok(()) => self.event(
                    EventKind::Reconciled,
                    Some(&g.name),
                    Some(&g.active),
                    format!(
                        "routing drift corrected: {drift}; re-applied {} at epoch {}",
                        g.active, g.epoch
                    ),
                    vec![],
                    None,
                ),
                Err(e) => {
                    let (kind, msg) = if e.is_fencing() {
                        (EventKind::Fencing, format!("reconcile refused: {e}"))
                    } else if matches!(e, StrategyError::Blocked { .. }) {
                        (
                            EventKind::Alert,
                            format!("cannot correct routing drift ({drift}): {e}"),
                        )
                    } else {
                        (
                            EventKind::ReconcileFailed,
                            format!("cannot correct routing drift ({drift}): {e}"),
                        )
                    };
                    // Raise once per distinct cause, not every cycle.
                    let dup = self
                        .lock()
                        .recent
                        .iter()
                        .rev()
                        .take(50)
                        .any(|ev| ev.kind == kind && ev.message == msg);
                    if !dup {
                        self.event(kind, Some(&g.name), None, msg, vec![], None);
                    }
                }
            }
        }
    }

    /// Raise an event once per distinct cause (not every reconcile cycle).
    fn event_once(&self, kind: EventKind, group: &str, site: Option<&str>, msg: String) {
        let dup = self
            .lock()
            .recent
            .iter()
            .rev()
            .take(50)
            .any(|ev| ev.kind == kind && ev.message == msg);
        if !dup {
            self.event(kind, Some(group), site, msg, vec![], None);
        }
    }

    /// Whether `g` is still the decided state (nothing started meanwhile).
    fn unchanged(&self, g: &GroupState) -> bool {
        self.lock().groups.get(&g.name).is_some_and(|x| {
            x.phase != Phase::Running && x.epoch == g.epoch && x.frontend == g.frontend
        })
    }

    /// Reconcile both layers of a hybrid group. Site layer: every frontend
    /// that answers must route to the active site at the group's epoch (a
    /// restarted, empty frontend gets its route back); unreachable frontends
    /// are left to the frontend layer. Frontend layer: the DNS name must
    /// point at the decided frontend (a hand edit or a failed move is redone),
    /// unless that frontend is confirmed down (the detector moves it).
    async fn reconcile_hybrid(
        &self,
        g: &GroupState,
        h: &warden_strategies::hybrid::HybridStrategy,
    ) {
        let route = SiteRoute {
            site: g.active.clone(),
            mode: SwitchMode::Immediate,
        };
        for (fe, read) in h.routes().await {
            let (site, epoch) = match read {
                Ok(x) => x,
                Err(e) if e.is_transient() => continue,
                Err(e) => {
                    self.event_once(
                        EventKind::ReconcileFailed,
                        &g.name,
                        None,
                        format!("site layer: cannot read {fe}'s route: {e}"),
                    );
                    continue;
                }
            };
            if site.as_deref() == Some(g.active.as_str()) && epoch == g.epoch {
                continue;
            }
            let drift = match &site {
                None => format!("{fe} has no route (restarted empty?) at epoch {epoch}"),
                Some(s) => format!("{fe} routes to {s} at epoch {epoch}"),
            };
            if !self.unchanged(g) {
                return;
            }
            match h.set_route(&fe, &route, g.epoch).await {
                Ok(()) => self.event(
                    EventKind::Reconciled,
                    Some(&g.name),
                    Some(&g.active),
                    format!("site layer: routing drift corrected: {drift}; re-applied {} at epoch {} to {fe}", g.active, g.epoch),
                    vec![],
                    None,
                ),
                Err(e) if e.is_fencing() => self.event_once(EventKind::Fencing, &g.name, None, format!("site layer: reconcile of {fe} refused: {e}")),
                Err(e) => self.event_once(EventKind::ReconcileFailed, &g.name, None, format!("site layer: cannot correct {fe} ({drift}): {e}")),
            }
        }
        let frontends = h.frontend_names();
        let want = g.frontend.clone().unwrap_or_else(|| frontends[0].clone());
        {
            let st = self.lock();
            if st.dns_moving.contains(&g.name)
                || st
                    .fe_detector
                    .track(&want)
                    .is_some_and(|t| t.confirmed_down)
            {
                return;
            }
        }
        let drift = match h.dns_current().await {
            Ok(o) if o.site.as_deref() == Some(want.as_str()) && o.drift.is_empty() => return,
            Ok(o) => format!(
                "the name resolves to {}{}",
                o.site.as_deref().unwrap_or("no frontend"),
                if o.drift.is_empty() {
                    String::new()
                } else {
                    format!(" (drift: {})", o.drift.join("; "))
                }
            ),
            Err(e) => format!("cannot observe DNS: {e}"),
        };
        if !self.unchanged(g) {
            return;
        }
        match h.point_dns(&want, g.epoch).await {
            Ok(()) => self.event(
                EventKind::Reconciled,
                Some(&g.name),
                None,
                format!("frontend layer: DNS drift corrected: {drift}; the name points at {want} again (epoch {})", g.epoch),
                vec![],
                None,
            ),
            Err(e) if e.is_fencing() => self.event_once(EventKind::Fencing, &g.name, None, format!("frontend layer: DNS reconcile refused: {e}")),
            Err(e) if matches!(e, StrategyError::Blocked { .. }) => self.event_once(EventKind::Alert, &g.name, None, format!("frontend layer: cannot correct DNS drift ({drift}): {e}")),
            Err(e) => self.event_once(EventKind::ReconcileFailed, &g.name, None, format!("frontend layer: cannot correct DNS drift ({drift}): {e}")),
        }
    }

    /// Alerts of every group's strategy (blocked providers, holds).
    pub fn alerts(&self, group: &str) -> Vec<String> {
        let mut out = self
            .strategies
            .get(group)
            .map(|s| s.alerts())
            .unwrap_or_default();
        let st = self.lock();
        if let Some(x) = st.epoch_ahead.get(group) {
            let own = st.groups.get(group).map(|g| g.epoch).unwrap_or_default();
            out.push(crate::authority::epoch_ahead_alert(group, own, x));
        }
        if let Some(b) = st
            .groups
            .get(group)
            .and_then(|g| g.failback_blocked.clone())
        {
            out.push(b);
        }
        if let Some(gc) = self.cfg.groups.get(group) {
            for site in gc.site_names() {
                if let Some((_, r)) = Self::replication_status(&st, &site, group) {
                    if let Some(guard) = r.guard {
                        out.push(format!("replication at {site}: {guard}"));
                    }
                    if r.refused_total > 0 {
                        out.push(format!(
                            "replication at {site}: {} item(s) refused (names that cannot be copied safely), e.g. {}",
                            r.refused_total,
                            r.refused.join(", ")
                        ));
                    }
                }
            }
        }
        out
    }

    /// `warden clear GROUP`: the operator fixed the cause of the group's
    /// alerts; lift provider blocks and holds. Returns what was lifted.
    pub fn operator_clear(&self, group: &str) -> Result<Vec<String>, OrchestratorError> {
        let strategy = self
            .strategies
            .get(group)
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group:?}")))?;
        let mut lifted = strategy.clear_alerts();
        {
            let mut st = self.lock();
            // A pass held by an agent's mass-delete guard may go ahead once.
            let epoch = st.groups.get(group).map(|g| g.epoch).unwrap_or_default();
            let now_ms = self.clock.now_ms();
            let mut released = false;
            for site in self.cfg.groups[group].site_names() {
                let guarded = Self::replication_status(&st, &site, group)
                    .is_some_and(|(_, r)| r.guard.is_some());
                if guarded {
                    let mut cmd = Command::new(group, epoch, CommandKind::Clear).to_site(&site);
                    cmd.id = format!("{}:{now_ms}", cmd.id);
                    st.ledger.queue(cmd, None);
                    lifted.push(format!(
                        "the mass-delete guard at {site} lets the held pass go ahead once"
                    ));
                    released = true;
                }
            }
            if released {
                self.command_tick.send_modify(|v| *v += 1);
            }
            if let Some(g) = st.groups.get(group).cloned() {
                if g.failback_blocked.is_some() {
                    let mut ng = g;
                    crate::retry::reset(&mut ng);
                    ng.failback_retry_unix_ms = None;
                    self.store.put_group(&ng)?;
                    st.groups.insert(group.to_string(), ng);
                    lifted.push("automatic failback may retry".to_string());
                }
            }
            if let Some(g) = st.groups.get(group).cloned() {
                if !g.divergent.is_empty() {
                    lifted.push(format!(
                        "{} divergent item(s) acknowledged",
                        g.divergent.len()
                    ));
                    let mut ng = g;
                    ng.divergent.clear();
                    self.store.put_group(&ng)?;
                    st.groups.insert(group.to_string(), ng);
                }
            }
        }
        self.event(
            EventKind::AlertCleared,
            Some(group),
            None,
            if lifted.is_empty() {
                "operator cleared alerts: nothing was blocked".to_string()
            } else {
                format!("operator cleared alerts: {}", lifted.join("; "))
            },
            vec![],
            None,
        );
        Ok(lifted)
    }

    /// Probe every site's endpoints and every hybrid frontend once (the external view).
    pub async fn probe_sites(&self) {
        let futs = self
            .cfg
            .sites
            .iter()
            .filter(|(_, s)| !s.endpoints.is_empty())
            .map(|(name, s)| {
                let specs: Vec<_> = s
                    .endpoints
                    .iter()
                    .map(|e| {
                        let mut e = e.clone();
                        e.timeout = e.timeout.min(self.cfg.detection.probe_timeout);
                        e
                    })
                    .collect();
                async move {
                    (
                        name.clone(),
                        warden_checks::run_all(&specs, &self.http).await,
                    )
                }
            });
        let fe_futs = self
            .frontend_probes
            .iter()
            .map(|(name, (spec, _))| async move {
                (
                    name.clone(),
                    warden_checks::run_all(std::slice::from_ref(spec), &self.http).await,
                )
            });
        let (results, fe_results) = tokio::join!(
            futures::future::join_all(futs),
            futures::future::join_all(fe_futs)
        );
        let now = Instant::now();
        let mut st = self.lock();
        for (name, r) in results {
            st.evidence.external.insert(name, (now, r));
        }
        for (name, r) in fe_results {
            st.fe_evidence.external.insert(name, (now, r));
        }
    }

    /// Address where users enter the group (each frontend's listener).
    fn entry_addrs(&self, group: &str) -> Vec<SocketAddr> {
        let gc = &self.cfg.groups[group];
        let Some(fs) = &gc.frontend else {
            return vec![];
        };
        let f = fs.get_ref();
        // Port 0 (tests, benches) has no fixed address to probe from here.
        let Some(listen) = f.listen.filter(|l| l.port() != 0) else {
            return vec![];
        };
        f.frontends
            .iter()
            .filter_map(|n| self.cfg.frontends.get(n.get_ref()))
            .map(|fe| {
                let ip: IpAddr = if listen.ip().is_unspecified() {
                    fe.control.ip()
                } else {
                    listen.ip()
                };
                SocketAddr::new(ip, listen.port())
            })
            .collect()
    }
}

/// The runbook environment of the live service.
struct Env {
    shared: Arc<Shared>,
}

#[async_trait]
impl RunbookEnv for Env {
    fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    fn agent_fresh(&self, site: &str) -> bool {
        let st = self.shared.lock();
        st.detector.agent_fresh(&st.evidence, site, Instant::now())
    }

    async fn command(
        &self,
        site: &str,
        cmd: Command,
        timeout: Duration,
    ) -> Result<CommandOutcome, String> {
        let cmd = cmd.to_site(site);
        let id = cmd.id.clone();
        {
            let mut st = self.shared.lock();
            if let Some(o) = st.ledger.outcome(&id) {
                return Ok(o.clone());
            }
            let runbook = st.groups.get(&cmd.group).and_then(|g| g.runbook);
            st.ledger.queue(cmd, runbook);
        }
        self.shared.command_tick.send_modify(|v| *v += 1);
        let mut rx = self.shared.report_tick.subscribe();
        let deadline = Instant::now() + timeout;
        // A command whose agent stops reporting fails early (a resync can be
        // allowed an hour; a dead returning site must not hold it that long).
        let grace = self.shared.cfg.detection.agent_timeout;
        let mut silent_since: Option<Instant> = None;
        loop {
            {
                let st = self.shared.lock();
                match st.ledger.state(&id) {
                    Some(crate::commands::CommandState::Finished(o)) => return Ok(o.clone()),
                    Some(crate::commands::CommandState::Withdrawn(why)) => {
                        return Err(format!("{id} was withdrawn: {why}"))
                    }
                    _ => {}
                }
            }
            if self.agent_fresh(site) {
                silent_since = None;
            } else {
                let since = *silent_since.get_or_insert_with(Instant::now);
                if since.elapsed() > grace {
                    return Err(format!(
                        "{site}'s agent stopped reporting while {id} was running (no report for over {:.1}s)",
                        (grace * 2).as_secs_f64()
                    ));
                }
            }
            let wake = deadline.min(Instant::now() + Duration::from_millis(250));
            match tokio::time::timeout_at(wake, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("orchestrator shutting down".into()),
                Err(_) if Instant::now() < deadline => {}
                Err(_) => {
                    let fresh = self.agent_fresh(site);
                    return Err(format!(
                        "no outcome from {site}'s agent within {:.1}s (agent {})",
                        timeout.as_secs_f64(),
                        if fresh { "reporting" } else { "not reporting" }
                    ));
                }
            }
        }
    }

    async fn wait_healthy(&self, site: &str, timeout: Duration) -> Result<(), String> {
        // A report received after this moment, with every critical check passing.
        let since = Instant::now();
        let mut rx = self.shared.report_tick.subscribe();
        let deadline = since + timeout;
        let mut last = "no report yet".to_string();
        loop {
            {
                let st = self.shared.lock();
                if let Some((at, rep)) = st.evidence.report(site) {
                    if *at >= since {
                        let bad: Vec<String> = rep
                            .checks
                            .iter()
                            .filter(|c| c.critical && !c.ok)
                            .map(|c| format!("{}: {}", c.name, c.detail))
                            .collect();
                        if bad.is_empty() {
                            return Ok(());
                        }
                        last = bad.join("; ");
                    }
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("orchestrator shutting down".into()),
                Err(_) => return Err(last),
            }
        }
    }

    async fn activate(
        &self,
        group: &str,
        route: &SiteRoute,
        epoch: u64,
    ) -> Result<(), StrategyError> {
        let s = self
            .shared
            .strategies
            .get(group)
            .ok_or_else(|| StrategyError::Config(format!("no strategy for group {group}")))?;
        s.activate(route, epoch).await
    }

    async fn current(&self, group: &str) -> Result<Observed, StrategyError> {
        let s = self
            .shared
            .strategies
            .get(group)
            .ok_or_else(|| StrategyError::Config(format!("no strategy for group {group}")))?;
        s.current().await
    }

    async fn probe_entry(&self, group: &str) -> Result<String, String> {
        let addrs = self.shared.entry_addrs(group);
        if addrs.is_empty() {
            return Ok("no entry address to probe".into());
        }
        // Hybrid: users enter through whichever frontend DNS points at, and a
        // dead frontend is the frontend layer's business: one entry suffices.
        let any = self.shared.cfg.groups[group].scheme.get_ref() == &Scheme::Hybrid;
        let mut reached = Vec::new();
        let mut failed = Vec::new();
        for a in &addrs {
            match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(a))
                .await
            {
                Ok(Ok(_)) => reached.push(a.to_string()),
                Ok(Err(e)) if !any => return Err(format!("entry {a}: {e}")),
                Err(_) if !any => return Err(format!("entry {a}: connect timed out")),
                Ok(Err(e)) => failed.push(format!("entry {a}: {e}")),
                Err(_) => failed.push(format!("entry {a}: connect timed out")),
            }
        }
        if reached.is_empty() {
            return Err(failed.join("; "));
        }
        Ok(format!("entry {} accepts connections", reached.join(", ")))
    }

    async fn fence_command(&self, argv: &[String], timeout: Duration) -> Result<String, String> {
        let Some((prog, args)) = argv.split_first() else {
            return Err("empty fence command".into());
        };
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        match tokio::time::timeout(timeout, cmd.output()).await {
            Ok(Ok(o)) if o.status.success() => Ok("exit 0".into()),
            Ok(Ok(o)) => Err(format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
            Ok(Err(e)) => Err(format!("cannot start {prog}: {e}")),
            Err(_) => Err(format!("timed out after {:.1}s", timeout.as_secs_f64())),
        }
    }

    fn has_replication(&self, group: &str) -> bool {
        self.shared
            .cfg
            .groups
            .get(group)
            .is_some_and(|g| g.replication.is_some())
    }

    fn resync_finished(&self, rb: &Runbook, site: &str) {
        self.shared.record_divergent(rb, site);
    }

    fn progress(&self, rb: &Runbook) {
        self.shared.lock().runbooks.insert(rb.id, rb.clone());
    }

    fn event(
        &self,
        kind: EventKind,
        group: &str,
        site: Option<&str>,
        message: String,
        runbook: Option<u64>,
    ) {
        self.shared
            .event(kind, Some(group), site, message, vec![], runbook);
    }
}

#[cfg(test)]
mod tests {
    //! Decisions of the live service on paused time: manual mode and the
    //! failover budget (the guards that live above the detector).
    use super::*;
    use crate::store::MemStore;
    use warden_proto::agent::{CheckResult, PeerProbe};

    #[derive(Default)]
    struct FakeRoute {
        route: Mutex<(Option<String>, u64)>,
    }

    #[async_trait]
    impl Strategy for FakeRoute {
        fn name(&self) -> &str {
            "fake"
        }
        async fn activate(&self, target: &SiteRoute, epoch: u64) -> Result<(), StrategyError> {
            let mut r = self.route.lock().unwrap();
            if epoch < r.1 {
                return Err(StrategyError::StaleEpoch {
                    element: "fake".into(),
                    sent: epoch,
                    seen: r.1,
                });
            }
            *r = (Some(target.site.clone()), epoch);
            Ok(())
        }
        async fn current(&self) -> Result<Observed, StrategyError> {
            let r = self.route.lock().unwrap();
            Ok(Observed {
                site: r.0.clone(),
                epoch: r.1,
                drift: vec![],
            })
        }
    }

    fn setup(
        automatic: bool,
        max_failovers: u32,
    ) -> (Arc<Shared>, Arc<FakeRoute>, std::path::PathBuf) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!(
            "warden-svc-{}-{}-{automatic}-{max_failovers}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (f, v) in [
            ("op", "operator-secret"),
            ("a", "agent-a-secret"),
            ("b", "agent-b-secret"),
            ("fe", "frontend-secret"),
        ] {
            std::fs::write(dir.join(f), v).unwrap();
        }
        let d = dir.display();
        let text = format!(
            r#"[orchestrator]
listen = "127.0.0.1:0"
data_dir = "{d}/data"
operator_token = {{ file = "{d}/op" }}
[detection]
interval = "250ms"
fall = 3
rise = 3
hold_down = "2s"
agent_timeout = "1s"
max_failovers = {max_failovers}
failover_window = "1h"
[sites.a]
agent_token = {{ file = "{d}/a" }}
[sites.b]
agent_token = {{ file = "{d}/b" }}
[frontends.fe1]
control = "127.0.0.1:1"
token = {{ file = "{d}/fe" }}
[groups.web]
sites = ["a", "b"]
scheme = "frontend"
automatic = {automatic}
step_timeout = "5s"
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:0"
backends = {{ a = "127.0.0.1:1", b = "127.0.0.1:2" }}
"#
        );
        let cfg = warden_config::parse(&text, &dir.join("failover.conf")).expect("config");
        let fake = Arc::new(FakeRoute::default());
        let strategies: BTreeMap<String, Arc<dyn Strategy>> =
            [("web".to_string(), fake.clone() as Arc<dyn Strategy>)].into();
        let shared = Shared::new(
            cfg,
            Arc::new(MemStore::default()),
            strategies,
            CancellationToken::new(),
        )
        .expect("shared");
        (shared, fake, dir)
    }

    fn check(ok: bool) -> CheckResult {
        CheckResult {
            name: "web".into(),
            ok,
            critical: true,
            detail: if ok {
                "status 200"
            } else {
                "connection refused"
            }
            .into(),
            elapsed_ms: 1,
        }
    }

    /// One 250 ms round: both agents report (answering queued commands), the
    /// orchestrator's probes land, the detector runs, runbook tasks progress.
    async fn round(s: &Arc<Shared>, a_up: bool) {
        for (site, peer, local, peer_ok) in [("a", "b", a_up, true), ("b", "a", true, a_up)] {
            let outcomes = s
                .commands_for(site)
                .into_iter()
                .map(|c| CommandOutcome {
                    id: c.id,
                    ok: true,
                    detail: "ok".into(),
                    hooks: vec![],
                })
                .collect();
            s.accept_report(AgentReport {
                site: site.into(),
                seq: 1,
                started_unix_ms: 0,
                checks: vec![check(local)],
                peers: vec![PeerProbe {
                    site: peer.into(),
                    results: vec![check(peer_ok)],
                }],
                outcomes,
                replication: vec![],
                authority: vec![],
            });
        }
        {
            let mut st = s.lock();
            let now = Instant::now();
            st.evidence
                .external
                .insert("a".into(), (now, vec![check(a_up)]));
            st.evidence
                .external
                .insert("b".into(), (now, vec![check(true)]));
        }
        s.detect_round();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::advance(Duration::from_millis(250)).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    fn group(s: &Shared) -> GroupState {
        s.lock().groups["web"].clone()
    }

    async fn rounds_until(
        s: &Arc<Shared>,
        a_up: bool,
        max: usize,
        what: &str,
        f: impl Fn(&GroupState) -> bool,
    ) {
        for _ in 0..max {
            if f(&group(s)) {
                return;
            }
            round(s, a_up).await;
        }
        panic!("{what}: group is {:#?}", group(s));
    }

    #[tokio::test(start_paused = true)]
    async fn manual_mode_turns_a_confirmed_disaster_into_a_pending_decision() {
        let (s, fake, dir) = setup(false, 5);
        for _ in 0..4 {
            round(&s, true).await;
        }
        for _ in 0..10 {
            round(&s, false).await;
        }
        let g = group(&s);
        assert_eq!(g.phase, Phase::PendingApproval);
        assert_eq!(g.active, "a");
        let p = g.pending.expect("pending decision");
        assert_eq!((p.kind, p.to.as_str()), (RunbookKind::Failover, "b"));
        assert!(p.reason.contains("automatic = false"), "{}", p.reason);
        assert!(
            s.lock().runbooks.is_empty(),
            "nothing moves without the operator"
        );
        assert!(
            s.lock()
                .recent
                .iter()
                .any(|e| e.kind == EventKind::PendingApproval && !e.evidence.is_empty()),
            "the pending decision carries its evidence"
        );
        // The operator approves: the failover runs.
        s.operator_approve("web").expect("approve");
        rounds_until(&s, false, 40, "failover after approval", |g| {
            g.phase == Phase::Steady && g.active == "b"
        })
        .await;
        assert_eq!(*fake.route.lock().unwrap(), (Some("b".into()), 2));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(start_paused = true)]
    async fn failover_budget_stops_automatic_moves_until_approved() {
        let (s, fake, dir) = setup(true, 1);
        for _ in 0..4 {
            round(&s, true).await;
        }
        // Move 1: automatic failover.
        rounds_until(&s, false, 40, "automatic failover", |g| {
            g.phase == Phase::Steady && g.active == "b"
        })
        .await;
        assert_eq!(group(&s).moves_unix_ms.len(), 1);
        // a recovers: a failback would be move 2, over the budget of 1.
        rounds_until(&s, true, 60, "pending failback", |g| {
            g.phase == Phase::PendingApproval
        })
        .await;
        let g = group(&s);
        assert_eq!(g.active, "b");
        let p = g.pending.expect("pending");
        assert_eq!(p.kind, RunbookKind::Failback);
        assert!(p.reason.contains("budget exhausted"), "{}", p.reason);
        for _ in 0..20 {
            round(&s, true).await;
        }
        assert_eq!(group(&s).phase, Phase::PendingApproval, "still waiting");
        assert_eq!(s.lock().runbooks.len(), 1);
        s.operator_approve("web").expect("approve");
        rounds_until(&s, true, 40, "failback after approval", |g| {
            g.phase == Phase::Steady && g.active == "a"
        })
        .await;
        assert_eq!(*fake.route.lock().unwrap(), (Some("a".into()), 3));
        assert!(
            s.operator_approve("web").is_err(),
            "nothing left to approve"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
