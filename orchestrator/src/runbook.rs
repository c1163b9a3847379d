//! The runbook engine (DESIGN §4): executes a persisted [`Runbook`] step by
//! step against a [`RunbookEnv`], persisting each step *before* it starts and
//! after it ends, so that a killed orchestrator resumes where it was.
//!
//! Every step is idempotent: commands carry deterministic ids (agents return
//! the first run's outcome), and `activate` with the same epoch and site is a
//! no-op at the routing layer. Safe to cancel at any await point: cancelling
//! leaves the runbook `running` in the store, to be resumed.

use std::time::Duration;

use async_trait::async_trait;
use warden_config::Fencing;
use warden_proto::agent::{Command, CommandKind, CommandOutcome, JournalMark};
use warden_strategies::{Observed, SiteRoute, StrategyError, SwitchMode};

use crate::model::{EventKind, Runbook, RunbookKind, RunbookStatus, StepName, StepStatus};
use crate::store::Store;

/// What the engine needs from the world. The service implements it with
/// agents, strategies and probes; unit tests with a simulation.
#[async_trait]
pub trait RunbookEnv: Send + Sync {
    /// Wall-clock unix ms (derived from tokio time, so paused tests move it).
    fn now_ms(&self) -> u64;
    /// Whether the site's agent reported recently.
    fn agent_fresh(&self, site: &str) -> bool;
    /// Whether it reported within two of its report intervals (not silent):
    /// the fence step sends no demote to wait for to a silent site.
    fn agent_heard(&self, site: &str) -> bool {
        self.agent_fresh(site)
    }
    /// Queue a command for the site's agent and wait for its outcome.
    async fn command(
        &self,
        site: &str,
        cmd: Command,
        timeout: Duration,
    ) -> Result<CommandOutcome, String>;
    /// Wait until the site's agent reports every critical check passing.
    async fn wait_healthy(&self, site: &str, timeout: Duration) -> Result<(), String>;
    async fn activate(
        &self,
        group: &str,
        route: &SiteRoute,
        epoch: u64,
    ) -> Result<(), StrategyError>;
    async fn current(&self, group: &str) -> Result<Observed, StrategyError>;
    /// End-to-end probe through the group's public entry for users reaching
    /// `site` (its identity when it declares one); Ok(detail) when it answers so.
    async fn probe_entry(&self, group: &str, site: &str) -> Result<String, String>;
    /// Run the group's fence command.
    async fn fence_command(&self, argv: &[String], timeout: Duration) -> Result<String, String>;
    /// Whether the group has a replication plan.
    fn has_replication(&self, group: &str) -> bool;
    /// Tell the group's routing layer a switch is coming (`ttl` > 0) or no
    /// longer is (`ttl` zero): frontends hold new connections whose backend
    /// fails instead of closing them. Best effort, never waited for.
    fn hold(&self, _group: &str, _epoch: u64, _ttl: Duration) {}
    /// A resync or final-sync step at `site` finished: record what its agent
    /// reported (divergent items) for status and events.
    fn resync_finished(&self, _rb: &Runbook, _site: &str) {}
    /// The runbook was persisted with new progress (for status views).
    fn progress(&self, _rb: &Runbook) {}
    /// Record an event.
    fn event(
        &self,
        kind: EventKind,
        group: &str,
        site: Option<&str>,
        message: String,
        runbook: Option<u64>,
    );
}

/// Per-group settings the engine obeys.
#[derive(Debug, Clone)]
pub struct Policy {
    pub fencing: Fencing,
    pub fence_command: Option<Vec<String>>,
    pub step_timeout: Duration,
    /// Time allowed for the resync and final-sync steps (`resync_timeout`).
    pub resync_timeout: Duration,
}

impl Policy {
    /// The time allowed for one step.
    pub fn timeout_of(&self, step: StepName) -> Duration {
        match step {
            StepName::Resync | StepName::FinalSync => self.resync_timeout.max(self.step_timeout),
            _ => self.step_timeout,
        }
    }
}

enum Outcome {
    Done(String),
    /// Done, with something the later steps need (kept in the runbook).
    Carrying(String, Carry),
    Skipped(String),
    Failed(String),
}

/// What a step hands to later ones through the persisted runbook.
enum Carry {
    /// The old active site's change journal started here (resync step).
    Journal(JournalMark),
    /// What its demote said changed since (`None`: it could not say).
    Changed(Option<Vec<String>>),
}

/// Run (or resume) `rb` to the end. Returns the final runbook (also persisted).
pub async fn execute(
    mut rb: Runbook,
    env: &dyn RunbookEnv,
    store: &dyn Store,
    policy: &Policy,
) -> Runbook {
    while let Some(i) = rb.next_step() {
        let name = rb.steps[i].name;
        {
            let s = &mut rb.steps[i];
            s.status = StepStatus::Running;
            s.attempts += 1;
            s.started_unix_ms = Some(env.now_ms());
            s.finished_unix_ms = None;
        }
        // Without the record we must not act: a crash now could repeat an unrecorded step.
        if !persist(&mut rb, name, env, store).await {
            return rb;
        }
        env.event(
            EventKind::StepStarted,
            &rb.group,
            None,
            format!(
                "{} step {} started (attempt {})",
                kind_str(rb.kind),
                step_str(name),
                rb.steps[i].attempts
            ),
            Some(rb.id),
        );
        if matches!(name, StepName::Fence | StepName::Demote) {
            // The active site is about to be taken down (or is down): from
            // here until the switch, users' new connections wait, not fail.
            env.hold(&rb.group, rb.epoch, cut_over_window(&rb, i, policy));
        }
        let limit = policy.timeout_of(name);
        let outcome = match tokio::time::timeout(limit, run_step(&rb, name, env, policy)).await {
            Ok(o) => o,
            Err(_) => Outcome::Failed(format!("timed out after {}", humantime_fmt(limit))),
        };
        let (status, detail) = match outcome {
            Outcome::Done(d) => (StepStatus::Done, d),
            Outcome::Carrying(d, carry) => {
                match carry {
                    Carry::Journal(mark) => rb.journal = Some(mark),
                    Carry::Changed(names) => rb.changed = names,
                }
                (StepStatus::Done, d)
            }
            Outcome::Skipped(d) => (StepStatus::Skipped, d),
            Outcome::Failed(d) => (StepStatus::Failed, d),
        };
        let now = env.now_ms();
        {
            let s = &mut rb.steps[i];
            s.status = status;
            s.detail = detail.clone();
            s.finished_unix_ms = Some(now);
        }
        env.event(
            EventKind::StepFinished,
            &rb.group,
            None,
            format!(
                "{} step {}: {:?}: {detail}",
                kind_str(rb.kind),
                step_str(name),
                status
            ),
            Some(rb.id),
        );
        if status == StepStatus::Failed {
            rb.status = RunbookStatus::Failed;
            rb.finished_unix_ms = Some(now);
            let switched = rb
                .steps
                .iter()
                .any(|s| s.name == StepName::Switch && s.status == StepStatus::Done);
            if !switched {
                // No switch is coming after all: nothing may be held.
                env.hold(&rb.group, rb.epoch, Duration::ZERO);
            }
            if rb.kind != RunbookKind::Failover {
                rollback(&mut rb, env, policy).await;
            }
            final_record(&rb, store);
            env.progress(&rb);
            env.event(
                EventKind::RunbookFailed,
                &rb.group,
                Some(&rb.to),
                format!(
                    "{} to {} failed at step {}: {detail}",
                    kind_str(rb.kind),
                    rb.to,
                    step_str(name)
                ),
                Some(rb.id),
            );
            return rb;
        }
        if name == StepName::Verify {
            rb.rto_ms = Some(now.saturating_sub(rb.incident_started_unix_ms));
        }
        if !persist(&mut rb, name, env, store).await {
            return rb;
        }
    }
    rb.status = RunbookStatus::Succeeded;
    rb.finished_unix_ms = Some(env.now_ms());
    final_record(&rb, store);
    env.progress(&rb);
    env.event(
        EventKind::RunbookSucceeded,
        &rb.group,
        Some(&rb.to),
        format!(
            "{} {} → {} done at epoch {}; RTO {} ms",
            kind_str(rb.kind),
            rb.from,
            rb.to,
            rb.epoch,
            rb.rto_ms.unwrap_or(0)
        ),
        Some(rb.id),
    );
    rb
}

/// How long a hold order sent before step `from` must stand: the time the
/// steps up to and including the switch may take, and a second of margin.
fn cut_over_window(rb: &Runbook, from: usize, policy: &Policy) -> Duration {
    let mut window = Duration::from_secs(1);
    for s in rb.steps.iter().skip(from) {
        window = window.saturating_add(policy.timeout_of(s.name));
        if s.name == StepName::Switch {
            break;
        }
    }
    window
}

/// A failback or switchover failed. Before the switch nothing moved but
/// (maybe) the old active site's demote: promote it again so users keep a
/// writable site. Marks the runbook `aborted` when traffic and writes are as
/// they were; otherwise it stays failed for the operator.
async fn rollback(rb: &mut Runbook, env: &dyn RunbookEnv, policy: &Policy) {
    let done = |n: StepName| {
        rb.steps
            .iter()
            .any(|s| s.name == n && s.status == StepStatus::Done)
    };
    if done(StepName::Switch) {
        return;
    }
    let demote_started = rb
        .steps
        .iter()
        .any(|s| s.name == StepName::Demote && s.status != StepStatus::Pending);
    if !demote_started {
        rb.aborted = true;
        return;
    }
    let mut cmd = Command::new(&rb.group, rb.epoch, CommandKind::Promote);
    cmd.id = format!("{}:{}:promote_back", rb.group, rb.epoch);
    let outcome = env.command(&rb.from, cmd, policy.step_timeout).await;
    let text = match &outcome {
        Ok(o) => outcome_text(o),
        Err(e) => e.clone(),
    };
    rb.aborted = matches!(&outcome, Ok(o) if o.ok);
    env.event(
        if rb.aborted {
            EventKind::FailbackAborted
        } else {
            EventKind::RunbookFailed
        },
        &rb.group,
        Some(&rb.from),
        format!(
            "{} promoted again after the failed {}: {text}",
            rb.from,
            kind_str(rb.kind)
        ),
        Some(rb.id),
    );
}

/// How long a failing runbook write is retried before the runbook fails.
pub const PERSIST_RETRY: Duration = Duration::from_secs(5);

/// Record a finished runbook. If this write is lost the store still says
/// `running`, and a restart resumes the idempotent steps: safe, so only warn.
fn final_record(rb: &Runbook, store: &dyn Store) {
    if let Err(e) = crate::store::blocking(|| store.put_runbook(rb)) {
        tracing::warn!(group = %rb.group, runbook = rb.id, cause = %e, "cannot persist the finished runbook; it will be resumed on restart");
    }
}

/// Write `rb` and publish its progress; on a store error mark it failed
/// (in memory: the store holds the last good record to resume from).
///
/// A store error is retried for [`PERSIST_RETRY`] first (etcd electing a new
/// raft leader takes a second or two); a deposed orchestrator stops at once.
async fn persist(
    rb: &mut Runbook,
    step: StepName,
    env: &dyn RunbookEnv,
    store: &dyn Store,
) -> bool {
    let started = tokio::time::Instant::now();
    let mut written = crate::store::blocking(|| store.put_runbook(rb));
    while let Err(e) = &written {
        if matches!(e, crate::OrchestratorError::Deposed(_))
            || store.may_act_unwritten()
            || started.elapsed() >= PERSIST_RETRY
        {
            break;
        }
        tracing::warn!(group = %rb.group, runbook = rb.id, cause = %e, "cannot persist the runbook; retrying");
        tokio::time::sleep(Duration::from_millis(250)).await;
        written = crate::store::blocking(|| store.put_runbook(rb));
    }
    match written {
        Ok(()) => {
            env.progress(rb);
            true
        }
        Err(e @ crate::OrchestratorError::Deposed(_)) => {
            // Another orchestrator leads: it resumes this runbook from the
            // store. Stop without a word in the record (still `running`).
            tracing::warn!(group = %rb.group, runbook = rb.id, cause = %e, "deposed: runbook left to the new leader");
            false
        }
        Err(e) if store.may_act_unwritten() => {
            // A full disk must not stop a failover that does not need it: go
            // on from memory (the decision's alert already said so).
            tracing::warn!(group = %rb.group, runbook = rb.id, step = step_str(step), cause = %e, "step not persisted; going on from memory");
            env.progress(rb);
            true
        }
        Err(e) => {
            env.event(
                EventKind::RunbookFailed,
                &rb.group,
                None,
                format!("cannot persist step {}: {e}", step_str(step)),
                Some(rb.id),
            );
            rb.status = RunbookStatus::Failed;
            false
        }
    }
}

pub fn kind_str(k: RunbookKind) -> &'static str {
    match k {
        RunbookKind::Failover => "failover",
        RunbookKind::Failback => "failback",
        RunbookKind::Switchover => "switchover",
    }
}

pub fn step_str(s: StepName) -> &'static str {
    match s {
        StepName::Decide => "decide",
        StepName::Fence => "fence",
        StepName::StopReplication => "stop_replication",
        StepName::FinalSync => "final_sync",
        StepName::Resync => "resync",
        StepName::Demote => "demote",
        StepName::Promote => "promote",
        StepName::Switch => "switch",
        StepName::Verify => "verify",
        StepName::StartReplication => "start_replication",
    }
}

fn humantime_fmt(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn outcome_text(o: &CommandOutcome) -> String {
    let hooks: Vec<String> = o
        .hooks
        .iter()
        .map(|h| format!("{}: {}", h.name, h.detail))
        .collect();
    if hooks.is_empty() {
        if o.detail.is_empty() {
            "no hooks configured".into()
        } else {
            o.detail.clone()
        }
    } else {
        hooks.join("; ")
    }
}

/// Asks the old active site (`rb.from`) to journal what changes in the
/// group's data from now on: what to say in the step, and the journal's
/// mark when it started one. Never fails the step: without a journal the
/// final pass covers the whole tree.
async fn start_journal(
    rb: &Runbook,
    env: &dyn RunbookEnv,
    t: Duration,
) -> (String, Option<JournalMark>) {
    if !env.agent_fresh(&rb.from) {
        return (
            format!("no change journal ({}'s agent is not reporting)", rb.from),
            None,
        );
    }
    let mut cmd = Command::new(&rb.group, rb.epoch, CommandKind::Journal);
    cmd.peer = Some(rb.to.clone());
    match env
        .command(&rb.from, cmd, t.min(JOURNAL_START_TIMEOUT))
        .await
    {
        Ok(o) if o.ok => match o.journal {
            Some(j) => (format!("{} journals its changes", rb.from), Some(j.mark)),
            None => (
                format!("no change journal ({} sent no mark)", rb.from),
                None,
            ),
        },
        Ok(o) => (
            format!("no change journal at {}: {}", rb.from, outcome_text(&o)),
            None,
        ),
        Err(e) => (format!("no change journal at {}: {e}", rb.from), None),
    }
}

/// How long the resync step waits for the old active site to start its journal.
const JOURNAL_START_TIMEOUT: Duration = Duration::from_secs(30);

async fn run_step(rb: &Runbook, name: StepName, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    let t = policy.step_timeout;
    match name {
        StepName::Decide => Outcome::Done(format!(
            "move {} → {} decided at epoch {} by {}",
            rb.from, rb.to, rb.epoch, rb.trigger
        )),
        StepName::Fence => fence(rb, env, policy).await,
        StepName::StopReplication => {
            if !env.has_replication(&rb.group) {
                return Outcome::Skipped("no replication plan for this group".into());
            }
            // Replication into the new active site runs at the old one.
            if !env.agent_fresh(&rb.from) {
                return Outcome::Done(format!(
                    "{}'s agent is not reporting: its replication stopped with it (the orchestrator will not restart it)",
                    rb.from
                ));
            }
            let cmd = Command::new(&rb.group, rb.epoch, CommandKind::StopReplication);
            match env.command(&rb.from, cmd, t).await {
                Ok(o) if o.ok => Outcome::Done(outcome_text(&o)),
                Ok(o) if policy.fencing != Fencing::Required => Outcome::Done(format!(
                    "{} could not stop its replication ({}); going on (fencing = best-effort)",
                    rb.from,
                    outcome_text(&o)
                )),
                Ok(o) => Outcome::Failed(outcome_text(&o)),
                Err(e) if policy.fencing != Fencing::Required => {
                    Outcome::Done(format!("{e}; going on (fencing = best-effort)"))
                }
                Err(e) => Outcome::Failed(e),
            }
        }
        StepName::Resync | StepName::FinalSync | StepName::StartReplication => {
            if !env.has_replication(&rb.group) {
                return Outcome::Skipped("no replication plan for this group".into());
            }
            let kind = match name {
                StepName::Resync => CommandKind::Resync,
                StepName::FinalSync => CommandKind::FinalSync,
                _ => CommandKind::StartReplication,
            };
            // Before the resync: the old active site journals what changes
            // from now on, so the cut-over's final pass covers only that.
            let journal = if name == StepName::Resync {
                Some(start_journal(rb, env, t).await)
            } else {
                None
            };
            // All three run at the returning site, with the old active site as peer:
            // resync and final sync fetch from it; replication then runs toward it.
            let mut cmd = Command::new(&rb.group, rb.epoch, kind);
            cmd.peer = Some(rb.from.clone());
            cmd.replica = rb.replica && name != StepName::StartReplication;
            if name == StepName::FinalSync && rb.journal.is_some() {
                cmd.changed = rb.changed.clone();
            }
            let res = env.command(&rb.to, cmd, policy.timeout_of(name)).await;
            if matches!(name, StepName::Resync | StepName::FinalSync) {
                env.resync_finished(rb, &rb.to);
            }
            match (res, journal) {
                (Ok(o), Some((said, Some(mark)))) if o.ok => Outcome::Carrying(
                    format!("{said}; {}", outcome_text(&o)),
                    Carry::Journal(mark),
                ),
                (Ok(o), Some((said, None))) if o.ok => {
                    Outcome::Done(format!("{said}; {}", outcome_text(&o)))
                }
                (Ok(o), _) if o.ok => Outcome::Done(outcome_text(&o)),
                (Ok(o), _) => Outcome::Failed(format!("{}: {}", rb.to, outcome_text(&o))),
                (Err(e), _) => Outcome::Failed(e),
            }
        }
        StepName::Demote => {
            // Failback cut-over: writes must stop at the active site before the final pass.
            let mut cmd = Command::new(&rb.group, rb.epoch, CommandKind::Demote);
            cmd.journal_since = rb.journal;
            match env.command(&rb.from, cmd, t).await {
                Ok(o) if o.ok && rb.journal.is_some() => {
                    let (said, names) = match o.journal.clone() {
                        Some(j) if Some(j.mark) == rb.journal && j.names.is_some() => {
                            let n = j.names.as_ref().map_or(0, Vec::len);
                            (
                                format!("its journal names {n} changed since the resync began"),
                                j.names,
                            )
                        }
                        Some(j) => (
                            format!(
                                "its journal cannot say what changed ({}): a full final pass",
                                j.note
                            ),
                            None,
                        ),
                        None => ("it sent no journal: a full final pass".to_string(), None),
                    };
                    Outcome::Carrying(
                        format!("{} demoted: {}; {said}", rb.from, outcome_text(&o)),
                        Carry::Changed(names),
                    )
                }
                Ok(o) if o.ok => {
                    Outcome::Done(format!("{} demoted: {}", rb.from, outcome_text(&o)))
                }
                Ok(o) => {
                    Outcome::Failed(format!("{} demote failed: {}", rb.from, outcome_text(&o)))
                }
                Err(e) => Outcome::Failed(format!("{} demote: {e}", rb.from)),
            }
        }
        StepName::Promote => {
            let cmd = Command::new(&rb.group, rb.epoch, CommandKind::Promote);
            let id = cmd.id.clone();
            let o = match env.command(&rb.to, cmd, t).await {
                Ok(o) if o.ok => o,
                Ok(o) => {
                    return Outcome::Failed(format!(
                        "{} promote failed: {}",
                        rb.to,
                        outcome_text(&o)
                    ))
                }
                Err(e) => return Outcome::Failed(format!("{} promote: {e}", rb.to)),
            };
            // Checks the agent ran right after the hooks: no wait for a report.
            if fresh_checks_pass(&id, &o) {
                return Outcome::Done(format!(
                    "{} promoted ({}); checks run after the hooks pass",
                    rb.to,
                    outcome_text(&o)
                ));
            }
            match env.wait_healthy(&rb.to, t).await {
                Ok(()) => Outcome::Done(format!(
                    "{} promoted ({}); checks pass",
                    rb.to,
                    outcome_text(&o)
                )),
                Err(e) => Outcome::Failed(format!(
                    "{} promoted but its checks do not pass: {e}",
                    rb.to
                )),
            }
        }
        StepName::Switch => {
            let mode = match rb.kind {
                RunbookKind::Failover => SwitchMode::Immediate,
                RunbookKind::Failback | RunbookKind::Switchover => SwitchMode::Drain,
            };
            let route = SiteRoute {
                site: rb.to.clone(),
                mode,
            };
            let mut delay = Duration::from_millis(50);
            let deadline =
                tokio::time::Instant::now() + t.saturating_sub(Duration::from_millis(200));
            loop {
                match env.activate(&rb.group, &route, rb.epoch).await {
                    Ok(()) => {
                        return Outcome::Done(format!(
                            "traffic routed to {} at epoch {}",
                            rb.to, rb.epoch
                        ))
                    }
                    Err(e) if e.is_fencing() => {
                        env.event(
                            EventKind::Fencing,
                            &rb.group,
                            None,
                            format!("switch refused: {e}"),
                            Some(rb.id),
                        );
                        return Outcome::Failed(e.to_string());
                    }
                    Err(e @ StrategyError::Blocked { .. }) => {
                        env.event(
                            EventKind::Alert,
                            &rb.group,
                            None,
                            format!("switch not attempted: {e}"),
                            Some(rb.id),
                        );
                        return Outcome::Failed(e.to_string());
                    }
                    Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                        tracing::warn!(group = %rb.group, cause = %e, "switch failed, retrying");
                        // Exponential backoff with jitter (50 % to 100 % of the step).
                        let jitter = rand::random::<f64>() * 0.5 + 0.5;
                        tokio::time::sleep(delay.mul_f64(jitter)).await;
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                    Err(e) => return Outcome::Failed(e.to_string()),
                }
            }
        }
        StepName::Verify => {
            let deadline =
                tokio::time::Instant::now() + t.saturating_sub(Duration::from_millis(200));
            loop {
                let last;
                match env.current(&rb.group).await {
                    Ok(o)
                        if o.site.as_deref() == Some(rb.to.as_str())
                            && o.epoch >= rb.epoch
                            && o.drift.is_empty() =>
                    {
                        match env.probe_entry(&rb.group, &rb.to).await {
                            Ok(d) => {
                                return Outcome::Done(format!(
                                    "routing layer reports {} at epoch {}; {d}",
                                    rb.to, o.epoch
                                ))
                            }
                            Err(e) => {
                                last = format!("route is right but the entry probe failed: {e}")
                            }
                        }
                    }
                    Ok(o) => {
                        last = format!(
                            "routing layer reports {:?} at epoch {} (drift: {})",
                            o.site,
                            o.epoch,
                            o.drift.join("; ")
                        )
                    }
                    Err(e) => last = e.to_string(),
                }
                tracing::debug!(group = %rb.group, %last, "verify not yet");
                if tokio::time::Instant::now() >= deadline {
                    return Outcome::Failed(format!("not verified: {last}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Whether a promote outcome's own checks (taken by the agent right after
/// its hooks) end the step without waiting for a report: only when the
/// outcome answers this very command (`id` names the group, the epoch and the
/// kind; the ledger already made sure it came from the site it was queued
/// for), it carries checks (an older agent sends none) and every critical
/// one passes. Anything else leaves the step to the reports.
fn fresh_checks_pass(id: &str, o: &CommandOutcome) -> bool {
    o.id == id
        && o.checks
            .as_ref()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c.ok || !c.critical))
}

async fn fence(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    if policy.fencing == Fencing::Off {
        return Outcome::Skipped("fencing = \"off\"".into());
    }
    let mut notes = Vec::new();
    let mut fenced = false;
    // Best effort skips a silent site (two missed reports: it is probably
    // gone); required fencing still tries while the agent is not stale.
    let reachable = match policy.fencing {
        Fencing::Required => env.agent_fresh(&rb.from),
        _ => env.agent_heard(&rb.from),
    };
    if reachable {
        // Best effort: a site whose service died may still run its demote hooks.
        let wait = match policy.fencing {
            Fencing::Required => policy.step_timeout,
            _ => policy.step_timeout.min(Duration::from_secs(10)),
        };
        let cmd = Command::new(&rb.group, rb.epoch, CommandKind::Demote);
        match env.command(&rb.from, cmd, wait).await {
            Ok(o) if o.ok => {
                fenced = true;
                notes.push(format!("{} demoted: {}", rb.from, outcome_text(&o)));
            }
            Ok(o) => notes.push(format!("{} demote failed: {}", rb.from, outcome_text(&o))),
            Err(e) => notes.push(format!("{} demote: {e}", rb.from)),
        }
    } else {
        notes.push(format!(
            "{}'s agent is silent or unreachable; demote not sent",
            rb.from
        ));
    }
    if let Some(argv) = &policy.fence_command {
        match env.fence_command(argv, policy.step_timeout).await {
            Ok(d) => {
                fenced = true;
                notes.push(format!("fence command: {d}"));
            }
            Err(e) => notes.push(format!("fence command failed: {e}")),
        }
    }
    let text = notes.join("; ");
    match (fenced, policy.fencing) {
        (true, _) => Outcome::Done(text),
        (false, Fencing::Required) => Outcome::Failed(format!(
            "fencing = \"required\" and {} could not be fenced: {text}",
            rb.from
        )),
        (false, _) => Outcome::Done(format!("best effort: {text}")),
    }
}

#[cfg(test)]
#[path = "runbook_tests.rs"]
mod tests;
