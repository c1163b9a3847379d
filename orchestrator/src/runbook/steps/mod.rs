//! What each runbook step does (DESIGN §4): the commands it sends, the
//! routing-layer calls it makes, and what its outcome says. The engine
//! ([`super`]) runs them in order, records them and rolls back.
//!
//! Here: [`run_step`], which picks a step's function, and the steps that
//! change a site's role (`fence`, `promote`); `bystanders.rs` the group's
//! other sites taking the epoch before a promote; `replication.rs` the steps
//! that move data (stop and start replication, resync, the cut-over's
//! demote and final sync); `routing.rs` the steps at the routing layer
//! (`switch`, `verify`).

mod bystanders;
mod replication;
mod routing;

use std::time::Duration;

use warden_config::Fencing;
use warden_proto::agent::{Command, CommandKind, CommandOutcome};

use super::{outcome_text, Outcome, Policy, RunbookEnv};
use crate::model::{Runbook, StepName};
use bystanders::bystanders_take_epoch;
use replication::{demote, replication, stop_replication};
use routing::{switch, verify};

/// Run step `name` of `rb` once (the engine bounds it by the step's timeout).
pub(super) async fn run_step(
    rb: &Runbook,
    name: StepName,
    env: &dyn RunbookEnv,
    policy: &Policy,
) -> Outcome {
    match name {
        StepName::Decide if !rb.kind.moves_users() => Outcome::Done(format!(
            "resync of {} from {} (users stay on {}) decided at epoch {} by {}",
            rb.to, rb.from, rb.from, rb.epoch, rb.trigger
        )),
        StepName::Decide => Outcome::Done(format!(
            "move {} → {} decided at epoch {} by {}",
            rb.from, rb.to, rb.epoch, rb.trigger
        )),
        StepName::Fence => fence(rb, env, policy).await,
        StepName::StopReplication => stop_replication(rb, env, policy).await,
        StepName::Resync | StepName::FinalSync | StepName::StartReplication => {
            replication(rb, name, env, policy).await
        }
        StepName::Demote => demote(rb, env, policy).await,
        StepName::Promote => promote(rb, env, policy).await,
        StepName::Switch => switch(rb, env, policy).await,
        StepName::Verify => verify(rb, env, policy).await,
    }
}

/// Promote the new active site and wait for its checks to pass; first,
/// the group's other sites take the epoch ([`bystanders`]).
async fn promote(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    let t = policy.step_timeout;
    let others = bystanders_take_epoch(rb, env, policy).await;
    let said = |text: String| {
        if others.is_empty() {
            text
        } else {
            format!("{}; {text}", others.join("; "))
        }
    };
    let cmd = Command::new(&rb.group, rb.epoch, CommandKind::Promote);
    let id = cmd.id.clone();
    let o = match env.command(&rb.to, cmd, t).await {
        Ok(o) if o.ok => o,
        Ok(o) => {
            return Outcome::Failed(said(format!(
                "{} promote failed: {}",
                rb.to,
                outcome_text(&o)
            )))
        }
        Err(e) => return Outcome::Failed(said(format!("{} promote: {e}", rb.to))),
    };
    // Checks the agent ran right after the hooks: no wait for a report.
    if fresh_checks_pass(&id, &o) {
        return Outcome::Done(said(format!(
            "{} promoted ({}); checks run after the hooks pass",
            rb.to,
            outcome_text(&o)
        )));
    }
    match env.wait_healthy(&rb.to, t).await {
        Ok(()) => Outcome::Done(said(format!(
            "{} promoted ({}); checks pass",
            rb.to,
            outcome_text(&o)
        ))),
        Err(e) => Outcome::Failed(said(format!(
            "{} promoted but its checks do not pass: {e}",
            rb.to
        ))),
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

/// Take the old active site out: its demote (when its agent can be reached)
/// and the group's fence command; `fencing` says whether failing to is fatal.
async fn fence(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    if policy.fencing == Fencing::Off {
        return Outcome::Skipped("fencing = \"off\"".into());
    }
    let mut notes = Vec::new();
    let mut fenced = false;
    // Required fencing tries while the agent is not stale, and so does an
    // operator's failover: a move ordered by hand is no confirmed loss, and
    // a report late by a moment must not leave the site it leaves active.
    // An automatic failover under best effort waits only for a site heard
    // within two report intervals (a silent one is probably gone: waiting
    // would add to the RTO of a whole-site loss); to one silent longer but
    // not stale the demote is queued without waiting — delivered if its
    // agent reports while the runbook runs.
    let by_hand = rb.trigger.starts_with("operator");
    let reachable = match policy.fencing {
        Fencing::Required => env.agent_fresh(&rb.from),
        _ if by_hand => env.agent_fresh(&rb.from),
        _ => env.agent_heard(&rb.from),
    };
    let started = tokio::time::Instant::now();
    if !reachable && env.agent_fresh(&rb.from) {
        let cmd = Command::new(&rb.group, rb.epoch, CommandKind::Demote);
        // Queued, not waited for: its answer (if any) comes after the step.
        let _ = env.command(&rb.from, cmd, Duration::ZERO).await;
        notes.push(format!(
            "{}'s agent is silent (no report for two report intervals); demote queued for it, not waited for",
            rb.from
        ));
    } else if reachable {
        // Best effort: a site whose service died may still run its demote
        // hooks. With a fence command to fall back on, the demote has half
        // the step at most: the command must have time to run within it.
        let wait = match policy.fencing {
            Fencing::Required if policy.fence_command.is_none() => policy.step_timeout,
            Fencing::Required => policy.step_timeout / 2,
            _ if policy.fence_command.is_some() => {
                (policy.step_timeout / 2).min(Duration::from_secs(10))
            }
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
        let order = super::FenceOrder {
            group: &rb.group,
            epoch: rb.epoch,
            site: &rb.from,
            target: &rb.to,
        };
        // What is left of the step, less a margin for its record.
        let left = policy
            .step_timeout
            .saturating_sub(started.elapsed())
            .saturating_sub(policy.step_timeout / 20);
        match env.fence_command(argv, &order, left).await {
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
