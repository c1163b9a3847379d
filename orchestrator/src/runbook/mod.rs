//! The runbook engine (DESIGN §4): executes a persisted [`Runbook`] step by
//! step against a [`RunbookEnv`], persisting each step *before* it starts and
//! after it ends, so that a killed orchestrator resumes where it was.
//!
//! Every step is idempotent: commands carry deterministic ids (agents return
//! the first run's outcome), and `activate` with the same epoch and site is a
//! no-op at the routing layer. Safe to cancel at any await point: cancelling
//! leaves the runbook `running` in the store, to be resumed.
//!
//! This module owns the order of the steps; what the engine needs from the
//! world is in [`env`], the steps' records in the store in [`record`], what
//! each step does in [`steps`], what a failed one undoes in [`rollback`].

use std::time::Duration;

use warden_proto::agent::{CommandOutcome, JournalMark};

use crate::model::{EventKind, Runbook, RunbookKind, RunbookStatus, StepName, StepStatus};
use crate::store::Store;

mod env;
mod record;
mod rollback;
mod steps;
pub use env::{FenceOrder, Policy, RunbookEnv};
pub use record::PERSIST_RETRY;
use record::{final_record, persist};
use rollback::{roll_forward_failover, rollback};
use steps::run_step;

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
                    Carry::Journal(mark) => rb.journal = Some(mark.into()),
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
    if !rollback(rb, env, store, policy, name).await {
        // Deposed while recording the rollback's direction: nothing was
        // undone here; the next leader resumes the rollback from the store.
        tracing::warn!(group = %rb.group, runbook = rb.id, "deposed: the rollback is left to the new leader");
        rb.status = RunbookStatus::Running;
        rb.finished_unix_ms = None;
        rb.rolling_back = false;
        return;
    }
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
