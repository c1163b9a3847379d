//! The runbook engine (DESIGN §4): executes a persisted [`Runbook`] step by
//! step against a [`RunbookEnv`], persisting each step *before* it starts and
//! after it ends, so that a killed orchestrator resumes where it was.
//!
//! Every step is idempotent: commands carry deterministic ids (agents return
//! the first run's outcome), and `activate` with the same epoch and site is a
//! no-op at the routing layer. Safe to cancel at any await point: cancelling
//! leaves the runbook `running` in the store, to be resumed.
//!
//! This module owns the order of the steps and their records; what each
//! step does is in [`steps`], what a failed one undoes in [`rollback`].

use std::time::Duration;

use async_trait::async_trait;
use warden_config::Fencing;
use warden_proto::agent::{Command, CommandOutcome, JournalMark};
use warden_strategies::{Observed, SiteRoute, StrategyError};

use crate::model::{EventKind, Runbook, RunbookKind, RunbookStatus, StepName, StepStatus};
use crate::store::Store;

mod rollback;
mod steps;
use rollback::{roll_forward_failover, rollback};
use steps::run_step;

/// What a fence command is told, in its environment: `WARDEN_GROUP`,
/// `WARDEN_EPOCH`, `WARDEN_SITE` (the site to fence: users are being moved
/// away from it), `WARDEN_TARGET` (the site being promoted; never to be
/// fenced) and `WARDEN_ACTION=fence`. One command serves every direction of
/// a group's moves, so it must act on `WARDEN_SITE`.
#[derive(Debug, Clone, Copy)]
pub struct FenceOrder<'a> {
    pub group: &'a str,
    pub epoch: u64,
    pub site: &'a str,
    pub target: &'a str,
}

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
    /// Run the group's fence command against `order.site` (told in its
    /// environment, see [`FenceOrder`]).
    async fn fence_command(
        &self,
        argv: &[String],
        order: &FenceOrder<'_>,
        timeout: Duration,
    ) -> Result<String, String>;
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
    /// Resolves, with what was seen, once the site users are on (`rb.from`)
    /// is confirmed down while `rb` (a failback or switchover) has not begun
    /// its cut-over: the engine then gives the move up, so that the failover
    /// it needs is not held for as long as a resync may take. Never resolves
    /// by default.
    async fn active_lost(&self, _rb: &Runbook) -> String {
        std::future::pending().await
    }
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
    if rb.rolling_back {
        // Its failure was recorded and its rollback cut short (the process
        // died, or the licence ended, mid-rollback): the rollback is
        // finished here. The cut-over is never resumed past it.
        let failed = rb.steps.iter().find(|s| s.status == StepStatus::Failed);
        let (name, detail) = failed
            .map(|s| (s.name, s.detail.clone()))
            .unwrap_or((StepName::Decide, "failed".to_string()));
        release_hold(&rb, env);
        roll_back_and_end(&mut rb, env, store, policy, name, &detail).await;
        return rb;
    }
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
        let bounded = async {
            match tokio::time::timeout(limit, run_step(&rb, name, env, policy)).await {
                Ok(o) => o,
                Err(_) => Outcome::Failed(format!("timed out after {}", humantime_fmt(limit))),
            }
        };
        let (outcome, lost) = if preemptible(&rb, i) {
            tokio::select! {
                o = bounded => (o, false),
                seen = env.active_lost(&rb) => (
                    Outcome::Failed(format!(
                        "given up: {}, where users are, was confirmed down ({seen}); \
                         the move cannot finish without it, and users need a failover now",
                        rb.from
                    )),
                    true,
                ),
            }
        } else {
            (bounded.await, false)
        };
        rb.preempted |= lost;
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
            release_hold(&rb, env);
            if rb.kind == RunbookKind::Failover {
                roll_forward_failover(&mut rb, env);
                end_failed(&mut rb, env, store, name, &detail);
                return rb;
            }
            // The failure is recorded before anything is undone: a
            // resume (after a crash or a lost lease mid-rollback) must
            // never carry the cut-over forward past a rollback that has
            // already put users back on the old site (writes there
            // would never reach the new one, and both would be active).
            // It finishes the rollback instead (`rolling_back`).
            // A store that refuses the record is tried again, as for any
            // step ([`persist`]): rolling back unrecorded left the store
            // saying the step runs, and the next leader (this one's licence
            // lost in the same etcd trouble) or a restart resumed the
            // cut-over past the rollback. Only the local file on a full
            // disk rolls back from memory.
            rb.rolling_back = true;
            if !persist(&mut rb, name, env, store).await {
                // Another orchestrator leads and resumes the failed
                // step from its record: nothing is undone here.
                tracing::warn!(group = %rb.group, runbook = rb.id, "deposed: the failed step is left to the new leader, no rollback from here");
                rb.status = RunbookStatus::Running;
                rb.finished_unix_ms = None;
                rb.rolling_back = false;
                return rb;
            }
            roll_back_and_end(&mut rb, env, store, policy, name, &detail).await;
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
    final_record(&mut rb, store);
    env.progress(&rb);
    env.event(
        EventKind::RunbookSucceeded,
        &rb.group,
        Some(&rb.to),
        match rb.kind {
            RunbookKind::Resync => format!(
                "resync {} → {} done at epoch {}: {} holds {}'s data and {} replicates to it again; users stayed on {}",
                rb.from, rb.to, rb.epoch, rb.to, rb.from, rb.from, rb.from
            ),
            _ => format!(
                "{} {} → {} done at epoch {}; RTO {} ms{}",
                kind_str(rb.kind),
                rb.from,
                rb.to,
                rb.epoch,
                rb.rto_ms.unwrap_or(0),
                match (rb.kind, rb.rpo_ms) {
                    (RunbookKind::Failover, Some(rpo)) => format!(
                        "; RPO at most {rpo} ms (writes {} may not have had)",
                        rb.to
                    ),
                    (RunbookKind::Failover, None) if env.has_replication(&rb.group) => {
                        format!("; RPO unknown (no lag reported toward {})", rb.to)
                    }
                    (RunbookKind::Failover, None) => String::new(),
                    _ if rb.steps.iter().any(|s| {
                        s.name == StepName::FinalSync && s.status == StepStatus::Done
                    }) =>
                    {
                        "; RPO 0 (the final pass was verified before users moved)".to_string()
                    }
                    _ => String::new(),
                }
            ),
        },
        Some(rb.id),
    );
    rb
}

/// A failed failback or switchover whose failure is recorded: roll it
/// back ([`rollback`]), then record its end.
async fn roll_back_and_end(
    rb: &mut Runbook,
    env: &dyn RunbookEnv,
    store: &dyn Store,
    policy: &Policy,
    name: StepName,
    detail: &str,
) {
    rollback(rb, env, policy).await;
    rb.rolling_back = false;
    end_failed(rb, env, store, name, detail);
}

/// No switch is coming after all (none was done): nothing may be held.
fn release_hold(rb: &Runbook, env: &dyn RunbookEnv) {
    let switched = rb
        .steps
        .iter()
        .any(|s| s.name == StepName::Switch && s.status == StepStatus::Done);
    if !switched {
        env.hold(&rb.group, rb.epoch, Duration::ZERO);
    }
}

/// Record a failed runbook's end (step `name` failed with `detail`).
fn end_failed(
    rb: &mut Runbook,
    env: &dyn RunbookEnv,
    store: &dyn Store,
    name: StepName,
    detail: &str,
) {
    final_record(rb, store);
    env.progress(rb);
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
}

/// Whether step `i` of `rb` is given up when the site users are on is
/// confirmed down: a failback's or switchover's steps before its cut-over
/// (the resync can be allowed an hour). From the demote on, the old active
/// site is taken down on purpose and the cut-over runs to its end or rolls
/// back.
fn preemptible(rb: &Runbook, i: usize) -> bool {
    rb.kind != RunbookKind::Failover
        && rb.steps[..=i]
            .iter()
            .all(|s| matches!(s.name, StepName::Decide | StepName::Resync))
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

/// Whether step `n` of `rb` has begun (its record is not `pending`).
fn started(rb: &Runbook, n: StepName) -> bool {
    rb.steps
        .iter()
        .any(|s| s.name == n && s.status != StepStatus::Pending)
}

/// How long a failing runbook write is retried before an alert says the
/// runbook waits for the store.
pub const PERSIST_RETRY: Duration = Duration::from_secs(5);

/// The longest pause between two tries of a runbook write the store refuses.
const PERSIST_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Record a finished runbook. If this write is lost the store still says
/// `running`, and a restart resumes the idempotent steps: safe, so only warn.
fn final_record(rb: &mut Runbook, store: &dyn Store) {
    rb.revision = rb.revision.saturating_add(1);
    let rb = &*rb;
    if let Err(e) = crate::store::blocking(|| store.put_runbook(rb)) {
        tracing::warn!(group = %rb.group, runbook = rb.id, cause = %e, "cannot persist the finished runbook; it will be resumed on restart");
    }
}

/// Write `rb` and publish its progress. False only when this orchestrator
/// was deposed (another leads and resumes the runbook from the store).
///
/// A store that may act unwritten (the local file on a full disk) goes on
/// from memory. Any other store's refusal is tried again, with a growing
/// pause, for as long as the runbook's task runs (the licence ends it): no
/// step starts, nor does the next one, without its record — and a refusal
/// of the record alone is no failure of the move (giving up there left a
/// failback failed after its demote, with nothing rolled back). After
/// [`PERSIST_RETRY`] an alert says the runbook waits; etcd's raft leader
/// elections take a second or two, its space quota needs an operator.
async fn persist(
    rb: &mut Runbook,
    step: StepName,
    env: &dyn RunbookEnv,
    store: &dyn Store,
) -> bool {
    let started = tokio::time::Instant::now();
    // A newer record than any written before (and any still queued to the
    // group writer: the decision's, retried on a full disk).
    rb.revision = rb.revision.saturating_add(1);
    let mut pause = Duration::from_millis(250);
    let mut said = false;
    loop {
        match crate::store::blocking(|| store.put_runbook(rb)) {
            Ok(()) => {
                env.progress(rb);
                if said {
                    env.event(
                        EventKind::Alert,
                        &rb.group,
                        None,
                        format!("step {} recorded: the runbook goes on", step_str(step)),
                        Some(rb.id),
                    );
                }
                return true;
            }
            Err(e @ crate::OrchestratorError::Deposed(_)) => {
                // Another orchestrator leads: it resumes this runbook from
                // the store. Stop without a word in the record (still `running`).
                tracing::warn!(group = %rb.group, runbook = rb.id, cause = %e, "deposed: runbook left to the new leader");
                return false;
            }
            Err(e) if store.may_act_unwritten() => {
                // A full disk must not stop a failover that does not need it: go
                // on from memory (the decision's alert already said so).
                tracing::warn!(group = %rb.group, runbook = rb.id, step = step_str(step), cause = %e, "step not persisted; going on from memory");
                env.progress(rb);
                return true;
            }
            Err(e) => {
                tracing::warn!(group = %rb.group, runbook = rb.id, step = step_str(step), cause = %e, "cannot persist the runbook; retrying");
                if !said && started.elapsed() >= PERSIST_RETRY {
                    said = true;
                    env.event(
                        EventKind::Alert,
                        &rb.group,
                        None,
                        format!(
                            "cannot record step {} ({e}): the runbook waits until the store takes the record; \
                             nothing more is done unrecorded",
                            step_str(step)
                        ),
                        Some(rb.id),
                    );
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(PERSIST_BACKOFF_MAX);
            }
        }
    }
}

pub fn kind_str(k: RunbookKind) -> &'static str {
    match k {
        RunbookKind::Failover => "failover",
        RunbookKind::Failback => "failback",
        RunbookKind::Switchover => "switchover",
        RunbookKind::Resync => "resync",
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

#[cfg(test)]
mod tests;
