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
mod tests {
    //! The runbook state machine against a simulated world, on paused time.
    use super::*;
    use crate::model::Event;
    use crate::store::MemStore;
    use crate::OrchestratorError;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use warden_proto::agent::{HookOutcome, JournalReport};

    #[derive(Default)]
    struct World {
        route: Mutex<(Option<String>, u64, u64)>,
        outcomes: Mutex<HashMap<String, CommandOutcome>>,
        hook_runs: Mutex<HashMap<(String, CommandKind), u32>>,
        stale: Mutex<Vec<String>>,
        failing_promote: Mutex<Vec<String>>,
        unhealthy: Mutex<Vec<String>>,
        /// What the checks a promote outcome carries say (none when unset:
        /// an agent older than the field).
        fresh_checks: Mutex<Option<bool>>,
        /// The promote's outcome carries this id instead of the command's
        /// (an answer to another command or epoch).
        answer_as: Mutex<Option<String>>,
        /// Calls of `wait_healthy` (the step waited for a report).
        waited: std::sync::atomic::AtomicU32,
        events: Mutex<Vec<(EventKind, String)>>,
        /// The group has a replication plan (replication steps run).
        replication: AtomicBool,
        /// What a demote with `journal_since` answers.
        journaled: Mutex<Option<Vec<String>>>,
        /// The demote answers for another journal than it was asked about
        /// (a late or replayed outcome, a restarted agent's new journal).
        other_journal: AtomicBool,
        /// Every command sent, with its site.
        sent: Mutex<Vec<(String, Command)>>,
        /// Hold orders (epoch, ttl) and the commands sent before each.
        holds: Mutex<Vec<(u64, Duration, usize)>>,
    }

    impl World {
        fn runs(&self, site: &str, k: CommandKind) -> u32 {
            *self
                .hook_runs
                .lock()
                .unwrap()
                .get(&(site.to_string(), k))
                .unwrap_or(&0)
        }
    }

    #[async_trait]
    impl RunbookEnv for World {
        fn now_ms(&self) -> u64 {
            tokio::time::Instant::now().elapsed().as_millis() as u64 + 1_000_000
        }
        fn agent_fresh(&self, site: &str) -> bool {
            !self.stale.lock().unwrap().iter().any(|s| s == site)
        }
        fn hold(&self, _group: &str, epoch: u64, ttl: Duration) {
            let sent = self.sent.lock().unwrap().len();
            self.holds.lock().unwrap().push((epoch, ttl, sent));
        }
        async fn command(
            &self,
            site: &str,
            cmd: Command,
            timeout: Duration,
        ) -> Result<CommandOutcome, String> {
            if !self.agent_fresh(site) {
                tokio::time::sleep(timeout).await;
                return Err(format!("no outcome from {site}"));
            }
            self.sent
                .lock()
                .unwrap()
                .push((site.to_string(), cmd.clone()));
            if let Some(o) = self.outcomes.lock().unwrap().get(&cmd.id) {
                return Ok(o.clone());
            }
            tokio::time::sleep(Duration::from_millis(300)).await; // hooks take time
            *self
                .hook_runs
                .lock()
                .unwrap()
                .entry((site.to_string(), cmd.kind))
                .or_default() += 1;
            let ok = !(cmd.kind == CommandKind::Promote
                && self
                    .failing_promote
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|s| s == site));
            let answer_as = match cmd.kind {
                CommandKind::Promote => self.answer_as.lock().unwrap().clone(),
                _ => None,
            };
            let o = CommandOutcome {
                id: answer_as.unwrap_or_else(|| cmd.id.clone()),
                ok,
                detail: String::new(),
                hooks: vec![HookOutcome {
                    name: "hook".into(),
                    ok,
                    exit_code: Some(if ok { 0 } else { 1 }),
                    detail: format!("exit {}", if ok { 0 } else { 1 }),
                    elapsed_ms: 300,
                }],
                checks: self.fresh_checks.lock().unwrap().map(|pass| {
                    vec![warden_proto::agent::CheckResult {
                        name: "web".into(),
                        ok: pass,
                        critical: true,
                        detail: if pass { "status 200" } else { "status 503" }.into(),
                        elapsed_ms: 2,
                    }]
                }),
                journal: match (cmd.kind, cmd.journal_since) {
                    (CommandKind::Journal, _) => Some(JournalReport {
                        mark: JournalMark { id: 7, seq: 3 },
                        names: None,
                        note: String::new(),
                    }),
                    (CommandKind::Demote, Some(mark)) => Some(JournalReport {
                        mark: if self.other_journal.load(Ordering::Relaxed) {
                            JournalMark { id: 99, ..mark }
                        } else {
                            mark
                        },
                        names: self.journaled.lock().unwrap().clone(),
                        note: "overflow".into(),
                    }),
                    _ => None,
                },
            };
            self.outcomes.lock().unwrap().insert(cmd.id, o.clone());
            Ok(o)
        }
        async fn wait_healthy(&self, site: &str, timeout: Duration) -> Result<(), String> {
            self.waited.fetch_add(1, Ordering::Relaxed);
            if self.unhealthy.lock().unwrap().iter().any(|s| s == site) {
                tokio::time::sleep(timeout).await;
                return Err("web: status 503".into());
            }
            Ok(())
        }
        async fn activate(
            &self,
            _group: &str,
            route: &SiteRoute,
            epoch: u64,
        ) -> Result<(), StrategyError> {
            let mut r = self.route.lock().unwrap();
            if epoch < r.1 {
                return Err(StrategyError::StaleEpoch {
                    element: "fe1".into(),
                    sent: epoch,
                    seen: r.1,
                });
            }
            if epoch == r.1 && r.0.as_deref() != Some(route.site.as_str()) {
                return Err(StrategyError::Rejected {
                    element: "fe1".into(),
                    reason: "conflicting route for the same epoch".into(),
                });
            }
            if r.0.as_deref() != Some(route.site.as_str()) {
                r.2 += 1;
            }
            r.0 = Some(route.site.clone());
            r.1 = epoch;
            Ok(())
        }
        async fn current(&self, _group: &str) -> Result<Observed, StrategyError> {
            let r = self.route.lock().unwrap();
            Ok(Observed {
                site: r.0.clone(),
                epoch: r.1,
                drift: vec![],
            })
        }
        async fn probe_entry(&self, _group: &str, _site: &str) -> Result<String, String> {
            Ok("entry answers".into())
        }
        async fn fence_command(
            &self,
            argv: &[String],
            _timeout: Duration,
        ) -> Result<String, String> {
            if argv[0] == "true" {
                Ok("exit 0".into())
            } else {
                Err("exit 1".into())
            }
        }
        fn has_replication(&self, _group: &str) -> bool {
            self.replication.load(Ordering::Relaxed)
        }
        fn event(
            &self,
            kind: EventKind,
            _group: &str,
            _site: Option<&str>,
            message: String,
            _runbook: Option<u64>,
        ) {
            self.events.lock().unwrap().push((kind, message));
        }
    }

    /// A store that "crashes" (refuses every later write) right after the
    /// given step was persisted as running: the process died mid-step.
    struct CrashStore {
        inner: MemStore,
        crash_in: Option<StepName>,
        crashed: AtomicBool,
    }

    impl Store for CrashStore {
        fn groups(&self) -> Result<Vec<crate::model::GroupState>, OrchestratorError> {
            self.inner.groups()
        }
        fn put_group(&self, g: &crate::model::GroupState) -> Result<(), OrchestratorError> {
            self.inner.put_group(g)
        }
        fn put_group_and_runbook(
            &self,
            g: &crate::model::GroupState,
            rb: &Runbook,
        ) -> Result<(), OrchestratorError> {
            self.inner.put_group_and_runbook(g, rb)
        }
        fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError> {
            if self.crashed.load(Ordering::SeqCst) {
                return Err(OrchestratorError::store(
                    "write",
                    std::io::Error::other("process killed"),
                ));
            }
            self.inner.put_runbook(rb)?;
            if let Some(step) = self.crash_in {
                if rb
                    .steps
                    .iter()
                    .any(|s| s.name == step && s.status == StepStatus::Running)
                {
                    self.crashed.store(true, Ordering::SeqCst);
                }
            }
            Ok(())
        }
        fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError> {
            self.inner.runbooks()
        }
        fn put_event(&self, e: &Event) -> Result<(), OrchestratorError> {
            self.inner.put_event(e)
        }
        fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError> {
            self.inner.events(after, limit)
        }
        fn last_event_id(&self) -> Result<u64, OrchestratorError> {
            self.inner.last_event_id()
        }
        fn prune_events(
            &self,
            keep: usize,
            before_unix_ms: u64,
            max: usize,
        ) -> Result<usize, OrchestratorError> {
            self.inner.prune_events(keep, before_unix_ms, max)
        }
    }

    fn policy(fencing: Fencing, fence_command: Option<Vec<String>>) -> Policy {
        Policy {
            fencing,
            fence_command,
            step_timeout: Duration::from_secs(5),
            resync_timeout: Duration::from_secs(5),
        }
    }

    fn world_on(site: &str, epoch: u64) -> World {
        let w = World::default();
        *w.route.lock().unwrap() = (Some(site.into()), epoch, 0);
        w
    }

    fn failover_rb() -> Runbook {
        Runbook::new(
            1,
            "web",
            RunbookKind::Failover,
            "a",
            "b",
            2,
            "detector",
            1_000_000,
            999_000,
        )
    }

    fn statuses(rb: &Runbook) -> Vec<(StepName, StepStatus)> {
        rb.steps.iter().map(|s| (s.name, s.status)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failover_runs_every_step_in_order_and_switches_once() {
        let w = world_on("a", 1);
        let store = MemStore::default();
        let rb = execute(
            failover_rb(),
            &w,
            &store,
            &policy(Fencing::BestEffort, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
        use StepName::*;
        use StepStatus::*;
        assert_eq!(
            statuses(&rb),
            vec![
                (Decide, Done),
                (Fence, Done),
                (StopReplication, Skipped),
                (Promote, Done),
                (Switch, Done),
                (Verify, Done)
            ]
        );
        assert_eq!(*w.route.lock().unwrap(), (Some("b".into()), 2, 1));
        assert_eq!(w.runs("a", CommandKind::Demote), 1);
        assert_eq!(w.runs("b", CommandKind::Promote), 1);
        assert!(
            rb.rto_ms.unwrap() >= 1000,
            "RTO counts from the incident start"
        );
        // persisted copy equals the returned one
        assert_eq!(store.runbooks().unwrap()[0], rb);
    }

    #[tokio::test(start_paused = true)]
    async fn best_effort_fencing_goes_on_when_the_old_site_is_unreachable() {
        let w = world_on("a", 1);
        w.stale.lock().unwrap().push("a".into());
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::BestEffort, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded);
        assert!(
            rb.steps[1].detail.contains("unreachable"),
            "{}",
            rb.steps[1].detail
        );
        assert_eq!(w.runs("a", CommandKind::Demote), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn required_fencing_stops_the_runbook_before_any_switch() {
        let w = world_on("a", 1);
        w.stale.lock().unwrap().push("a".into());
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Required, Some(vec!["false".into()])),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Failed);
        assert_eq!(rb.steps[1].status, StepStatus::Failed);
        assert!(rb.steps[1].detail.contains("required"));
        assert_eq!(
            *w.route.lock().unwrap(),
            (Some("a".into()), 1, 0),
            "traffic untouched"
        );
        assert_eq!(w.runs("b", CommandKind::Promote), 0);
        // ...and a working fence command satisfies it.
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Required, Some(vec!["true".into()])),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_is_ordered_before_the_old_site_is_touched_and_withdrawn_when_no_switch_comes() {
        // Failover: before the fence (the first command), for the steps up to the switch.
        let w = world_on("a", 1);
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::BestEffort, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
        // Fence, stop_replication, promote, switch: 4 × 5 s, plus 1 s.
        assert_eq!(
            *w.holds.lock().unwrap(),
            vec![(2, Duration::from_secs(21), 0)],
            "one order, at the new epoch, before any command"
        );

        // Switchover: before the demote, not during the resync.
        let w = world_on("a", 1);
        let mut so = failover_rb();
        so.kind = RunbookKind::Switchover;
        so.steps = Runbook::new(1, "web", RunbookKind::Switchover, "a", "b", 2, "op", 0, 0).steps;
        let rb = execute(so, &w, &MemStore::default(), &policy(Fencing::Off, None)).await;
        assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
        let holds = w.holds.lock().unwrap().clone();
        let sent = w.sent.lock().unwrap().clone();
        assert_eq!(holds.len(), 1, "{holds:?}");
        let (_, cmd) = &sent[holds[0].2];
        assert_eq!(
            cmd.kind,
            CommandKind::Demote,
            "the hold comes right before the demote"
        );

        // A failover that fails before its switch withdraws the order.
        let w = world_on("a", 1);
        w.failing_promote.lock().unwrap().push("b".into());
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Off, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Failed);
        let holds = w.holds.lock().unwrap().clone();
        assert_eq!(holds.len(), 2, "{holds:?}");
        assert!(
            holds[0].1 > Duration::ZERO && holds[1].1 == Duration::ZERO,
            "{holds:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_promote_never_switches() {
        let w = world_on("a", 1);
        w.failing_promote.lock().unwrap().push("b".into());
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Off, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Failed);
        let p = rb
            .steps
            .iter()
            .find(|s| s.name == StepName::Promote)
            .unwrap();
        assert_eq!(p.status, StepStatus::Failed);
        assert!(p.detail.contains("promote failed"), "{}", p.detail);
        assert_eq!(w.route.lock().unwrap().2, 0);
        assert!(w
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|(k, _)| *k == EventKind::RunbookFailed));
    }

    #[tokio::test(start_paused = true)]
    async fn promote_whose_checks_never_pass_times_out() {
        let w = world_on("a", 1);
        w.unhealthy.lock().unwrap().push("b".into());
        let t0 = tokio::time::Instant::now();
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Off, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Failed);
        let p = rb
            .steps
            .iter()
            .find(|s| s.name == StepName::Promote)
            .unwrap();
        assert!(p.detail.contains("timed out"), "{}", p.detail);
        assert!(t0.elapsed() >= Duration::from_secs(5));
        assert_eq!(w.route.lock().unwrap().2, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn promote_whose_outcome_carries_passing_checks_does_not_wait_for_a_report() {
        let w = world_on("a", 1);
        // Reports would never show b healthy: only the outcome's checks can end the step.
        w.unhealthy.lock().unwrap().push("b".into());
        *w.fresh_checks.lock().unwrap() = Some(true);
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Off, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded);
        let p = rb
            .steps
            .iter()
            .find(|s| s.name == StepName::Promote)
            .unwrap();
        assert!(
            p.detail.contains("checks run after the hooks pass"),
            "{}",
            p.detail
        );
        assert_eq!(w.waited.load(Ordering::Relaxed), 0, "no report waited for");
        assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("b"));
    }

    fn promote_step(rb: &Runbook) -> &crate::model::StepRecord {
        rb.steps
            .iter()
            .find(|s| s.name == StepName::Promote)
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn promote_whose_fresh_checks_fail_ends_on_a_later_passing_report() {
        // The outcome's checks fail (the service is still starting); a later
        // report shows them pass: the step ends then, through the reports.
        let w = world_on("a", 1);
        *w.fresh_checks.lock().unwrap() = Some(false);
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Off, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded);
        let p = promote_step(&rb);
        assert!(p.detail.ends_with("; checks pass"), "{}", p.detail);
        assert_eq!(w.waited.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_checks_answering_another_command_or_epoch_do_not_end_the_promote() {
        // Passing checks in an outcome for an older epoch's promote, or for
        // another command of this epoch, say nothing about this promote.
        for other in ["web:1:promote", "web:2:promote_back", "db:2:promote"] {
            let w = world_on("a", 1);
            w.unhealthy.lock().unwrap().push("b".into());
            *w.fresh_checks.lock().unwrap() = Some(true);
            *w.answer_as.lock().unwrap() = Some(other.into());
            let t0 = tokio::time::Instant::now();
            let rb = execute(
                failover_rb(),
                &w,
                &MemStore::default(),
                &policy(Fencing::Off, None),
            )
            .await;
            assert_eq!(rb.status, RunbookStatus::Failed, "{other}");
            let p = promote_step(&rb);
            assert!(p.detail.contains("timed out"), "{other}: {}", p.detail);
            assert!(t0.elapsed() >= Duration::from_secs(5), "{other}");
            assert_eq!(w.waited.load(Ordering::Relaxed), 1, "{other}");
            assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("a"), "{other}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_older_agent_without_fresh_checks_is_promoted_through_the_reports() {
        // An agent older than `CommandOutcome::checks` sends none: the step
        // waits for a report, as it always did.
        let w = world_on("a", 1);
        assert!(w.fresh_checks.lock().unwrap().is_none());
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Off, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded);
        let p = promote_step(&rb);
        assert!(p.detail.ends_with("; checks pass"), "{}", p.detail);
        assert_eq!(w.waited.load(Ordering::Relaxed), 1);
        assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn promote_whose_outcome_carries_failing_checks_waits_for_reports() {
        let w = world_on("a", 1);
        w.unhealthy.lock().unwrap().push("b".into());
        *w.fresh_checks.lock().unwrap() = Some(false);
        let t0 = tokio::time::Instant::now();
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Off, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Failed);
        let p = rb
            .steps
            .iter()
            .find(|s| s.name == StepName::Promote)
            .unwrap();
        // It waited for a report to show them pass, until the step's timeout.
        assert!(p.detail.contains("timed out"), "{}", p.detail);
        assert!(t0.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_epoch_at_the_switch_is_a_fencing_event_not_a_retry_loop() {
        let w = world_on("a", 7); // a newer decision already reached the frontend
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(Fencing::Off, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Failed);
        let s = rb
            .steps
            .iter()
            .find(|s| s.name == StepName::Switch)
            .unwrap();
        assert_eq!(s.attempts, 1);
        assert!(
            s.detail.contains("epoch 2 is older than the 7"),
            "{}",
            s.detail
        );
        assert!(w
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|(k, _)| *k == EventKind::Fencing));
        assert_eq!(*w.route.lock().unwrap(), (Some("a".into()), 7, 0));
    }

    async fn crash_and_resume(kind: RunbookKind, crash_in: StepName) {
        let (from, to, epoch0) = match kind {
            RunbookKind::Failover => ("a", "b", 1),
            RunbookKind::Failback | RunbookKind::Switchover => ("b", "a", 2),
        };
        let w = world_on(from, epoch0);
        w.replication.store(true, Ordering::Relaxed);
        *w.journaled.lock().unwrap() = Some(vec!["x".into()]);
        let rb0 = Runbook::new(
            1,
            "web",
            kind,
            from,
            to,
            epoch0 + 1,
            "detector",
            1_000_000,
            1_000_000,
        );
        let store = CrashStore {
            inner: MemStore::default(),
            crash_in: Some(crash_in),
            crashed: AtomicBool::new(false),
        };
        let p = policy(Fencing::BestEffort, None);
        let died = execute(rb0, &w, &store, &p).await;
        assert_ne!(
            died.status,
            RunbookStatus::Succeeded,
            "crash injected in {crash_in:?}"
        );
        // The restarted process reads the store and resumes.
        let persisted = store.inner.runbooks().unwrap().pop().unwrap();
        let at = persisted.next_step().unwrap();
        assert_eq!(persisted.steps[at].name, crash_in);
        assert_eq!(persisted.steps[at].status, StepStatus::Running);
        let fresh = MemStore::default();
        let done = execute(persisted, &w, &fresh, &p).await;
        assert_eq!(
            done.status,
            RunbookStatus::Succeeded,
            "{kind:?} crash in {crash_in:?}: {done:#?}"
        );
        assert_eq!(done.steps[at].attempts, 2);
        let r = w.route.lock().unwrap().clone();
        assert_eq!(
            r,
            (Some(to.to_string()), epoch0 + 1, 1),
            "{kind:?} crash in {crash_in:?}: exactly one switch"
        );
        assert_eq!(
            w.runs(to, CommandKind::Promote),
            1,
            "promote hooks ran once"
        );
        assert!(w.runs(from, CommandKind::Demote) <= 1);
        if kind != RunbookKind::Failover {
            // The journal's mark and names live in the store across the crash.
            let sent = w.sent.lock().unwrap();
            let fin = sent
                .iter()
                .rev()
                .find(|(_, c)| c.kind == CommandKind::FinalSync)
                .expect("a final sync");
            assert_eq!(
                fin.1.changed,
                Some(vec!["x".to_string()]),
                "{kind:?} crash in {crash_in:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn resume_after_a_crash_in_every_failover_step() {
        for &step in StepName::for_kind(RunbookKind::Failover) {
            crash_and_resume(RunbookKind::Failover, step).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn resume_after_a_crash_in_every_failback_step() {
        for &step in StepName::for_kind(RunbookKind::Failback) {
            crash_and_resume(RunbookKind::Failback, step).await;
        }
    }

    /// A failback with replication: the old active site's journal starts
    /// before the resync, its demote is asked for the names since that mark,
    /// and the final sync gets them — or none when the journal could not say.
    async fn failback_with_journal(
        names: Option<Vec<String>>,
    ) -> (Runbook, Vec<(String, Command)>) {
        let w = world_on("b", 2);
        w.replication.store(true, Ordering::Relaxed);
        *w.journaled.lock().unwrap() = names;
        let rb = Runbook::new(
            1,
            "web",
            RunbookKind::Failback,
            "b",
            "a",
            3,
            "failback",
            1_000_000,
            1_000_000,
        );
        let rb = execute(
            rb,
            &w,
            &MemStore::default(),
            &policy(Fencing::BestEffort, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
        let sent = w.sent.lock().unwrap().clone();
        (rb, sent)
    }

    fn first<'a>(
        sent: &'a [(String, Command)],
        site: &str,
        kind: CommandKind,
    ) -> (usize, &'a Command) {
        sent.iter()
            .enumerate()
            .find(|(_, (s, c))| s == site && c.kind == kind)
            .map(|(i, (_, c))| (i, c))
            .unwrap_or_else(|| panic!("no {kind:?} to {site} in {sent:#?}"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_failback_hands_the_names_journaled_at_the_old_site_to_the_final_pass() {
        let (rb, sent) = failback_with_journal(Some(vec!["docs/a.txt".into()])).await;
        let (j, _) = first(&sent, "b", CommandKind::Journal);
        let (r, _) = first(&sent, "a", CommandKind::Resync);
        assert!(j < r, "the journal starts before the resync: {sent:#?}");
        let (_, demote) = first(&sent, "b", CommandKind::Demote);
        assert_eq!(demote.journal_since, Some(JournalMark { id: 7, seq: 3 }));
        let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
        assert_eq!(fin.changed, Some(vec!["docs/a.txt".to_string()]));
        assert_eq!(rb.changed, Some(vec!["docs/a.txt".to_string()]));
        let d = rb
            .steps
            .iter()
            .find(|s| s.name == StepName::Demote)
            .unwrap();
        assert!(d.detail.contains("names 1 changed"), "{}", d.detail);
    }

    #[tokio::test(start_paused = true)]
    async fn a_switchover_to_a_replica_says_so_to_its_resync_and_final_sync() {
        let w = world_on("a", 2);
        w.replication.store(true, Ordering::Relaxed);
        let mut rb = Runbook::new(
            1,
            "web",
            RunbookKind::Switchover,
            "a",
            "b",
            3,
            "operator",
            1_000_000,
            1_000_000,
        );
        rb.replica = true;
        let rb = execute(
            rb,
            &w,
            &MemStore::default(),
            &policy(Fencing::BestEffort, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
        let sent = w.sent.lock().unwrap().clone();
        assert!(first(&sent, "b", CommandKind::Resync).1.replica);
        assert!(first(&sent, "b", CommandKind::FinalSync).1.replica);
        assert!(!first(&sent, "b", CommandKind::StartReplication).1.replica);
    }

    #[tokio::test(start_paused = true)]
    async fn names_for_another_journal_are_not_taken() {
        let w = world_on("b", 2);
        w.replication.store(true, Ordering::Relaxed);
        w.other_journal.store(true, Ordering::Relaxed);
        *w.journaled.lock().unwrap() = Some(vec!["only-this.txt".into()]);
        let rb = Runbook::new(
            1,
            "web",
            RunbookKind::Failback,
            "b",
            "a",
            3,
            "failback",
            1_000_000,
            1_000_000,
        );
        let rb = execute(
            rb,
            &w,
            &MemStore::default(),
            &policy(Fencing::BestEffort, None),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
        let sent = w.sent.lock().unwrap().clone();
        let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
        assert_eq!(
            fin.changed, None,
            "names of another journal: a full final pass"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_journal_that_cannot_say_means_a_full_final_pass() {
        let (rb, sent) = failback_with_journal(None).await;
        let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
        assert_eq!(fin.changed, None);
        let d = rb
            .steps
            .iter()
            .find(|s| s.name == StepName::Demote)
            .unwrap();
        assert!(
            d.detail.contains("cannot say what changed (overflow)"),
            "{}",
            d.detail
        );
    }
}
