//! What each runbook step does (DESIGN §4): the commands it sends, the
//! routing-layer calls it makes, and what its outcome says. The engine
//! ([`super`]) runs them in order, records them and rolls back.

use std::time::Duration;

use warden_config::Fencing;
use warden_proto::agent::{Command, CommandKind, CommandOutcome, JournalMark};
use warden_strategies::{SiteRoute, StrategyError, SwitchMode};

use super::{outcome_text, Carry, Outcome, Policy, RunbookEnv};
use crate::model::{EventKind, Runbook, RunbookKind, StepName};

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

/// Stop the replication into the new active site (it runs at the old one).
async fn stop_replication(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    let t = policy.step_timeout;
    if !env.has_replication(&rb.group) {
        return Outcome::Skipped("no replication plan for this group".into());
    }
    // Replication into the new active site runs at the old one.
    if !env.agent_fresh(&rb.from) {
        return Outcome::Done(format!(
            "{}'s agent is not reporting: its replication could not be told to stop and is not confirmed stopped (the orchestrator will not restart it; a push into the new active site is refused by its rsync gate where one is configured)",
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

/// Resync, final sync or the start of replication: all three at the
/// returning site with the old active site as peer (resync and final sync
/// fetch from it; replication then runs toward it).
async fn replication(
    rb: &Runbook,
    name: StepName,
    env: &dyn RunbookEnv,
    policy: &Policy,
) -> Outcome {
    let t = policy.step_timeout;
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
    // (A resync in place has no cut-over and so no final pass.)
    let journal = if name == StepName::Resync && rb.kind.moves_users() {
        Some(start_journal(rb, env, t).await)
    } else {
        None
    };
    // All three run at the returning site, with the old active site as peer:
    // resync and final sync fetch from it; replication then runs toward it.
    // A resync in place: the standby (`to`) fetches from the active site,
    // which then replicates to it, saying that its peer was resynced from it.
    let in_place = !rb.kind.moves_users();
    let (site, peer) = if in_place && name == StepName::StartReplication {
        (&rb.from, &rb.to)
    } else {
        (&rb.to, &rb.from)
    };
    let mut cmd = Command::new(&rb.group, rb.epoch, kind);
    cmd.peer = Some(peer.clone());
    cmd.replica = rb.replica && name != StepName::StartReplication;
    cmd.peer_resynced = in_place && name == StepName::StartReplication;
    cmd.stays_target = cmd_stays_target(rb, name);
    if name == StepName::FinalSync && rb.journal.is_some() {
        cmd.changed = rb.changed.clone();
    }
    let res = env.command(site, cmd, policy.timeout_of(name)).await;
    if matches!(name, StepName::Resync | StepName::FinalSync) {
        env.resync_finished(rb, &rb.to);
    }
    if let (Ok(o), true) = (&res, cmd_stays_target(rb, name)) {
        // The site stays the active one's target: what it wrote alone must
        // be out of the tree before anything is pushed into it.
        match o.kept_in_place {
            Some(0) => {}
            Some(n) if o.ok => {
                return Outcome::Failed(format!(
                    "{site} left {n} item(s) it wrote alone in place: replication into it would delete them \
                     (move them aside, then run `warden resync {}` again)",
                    rb.group
                ))
            }
            None if o.ok => {
                return Outcome::Failed(format!(
                    "{site}'s agent did not say it left nothing in place (older than `warden resync`?): \
                     replication into it could delete what it wrote alone; upgrade it first"
                ))
            }
            _ => {}
        }
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
        (Ok(o), _) => Outcome::Failed(format!("{site}: {}", outcome_text(&o))),
        (Err(e), _) => Outcome::Failed(e),
    }
}

/// Whether step `name` of `rb` resyncs a site that stays the active site's
/// replication target (`warden resync`): nothing it wrote alone may stay in
/// place.
fn cmd_stays_target(rb: &Runbook, name: StepName) -> bool {
    !rb.kind.moves_users() && name == StepName::Resync
}

/// The most a demote's journal names may take (their JSON) to be carried
/// to the final pass through the runbook's record: each write of the
/// record must stay within one etcd request (1.5 MiB by default, with the
/// rest of the record), and the final sync's command within an answer to
/// the agent. More names: a full final pass, always correct.
pub(super) const CHANGED_CARRY_BYTES: usize = 256 * 1024;

/// Failback cut-over: writes stop at the active site before the final pass.
async fn demote(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    let t = policy.step_timeout;
    // Failback cut-over: writes must stop at the active site before the final pass.
    let mut cmd = Command::new(&rb.group, rb.epoch, CommandKind::Demote);
    cmd.journal_since = rb.journal;
    match env.command(&rb.from, cmd, t).await {
        Ok(o) if o.ok && rb.journal.is_some() => {
            let (said, names) = match o.journal.clone() {
                Some(j) if Some(j.mark) == rb.journal && j.names.is_some() => {
                    let n = j.names.as_ref().map_or(0, Vec::len);
                    let bytes: usize = j.names.iter().flatten().map(|n| n.len() + 3).sum();
                    if bytes > CHANGED_CARRY_BYTES {
                        (
                            format!(
                                "its journal names {n} changed since the resync began, more than the \
                                 runbook's record carries ({} KiB): a full final pass",
                                CHANGED_CARRY_BYTES / 1024
                            ),
                            None,
                        )
                    } else {
                        (
                            format!("its journal names {n} changed since the resync began"),
                            j.names,
                        )
                    }
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
        Ok(o) if o.ok => Outcome::Done(format!("{} demoted: {}", rb.from, outcome_text(&o))),
        Ok(o) => Outcome::Failed(format!("{} demote failed: {}", rb.from, outcome_text(&o))),
        Err(e) => Outcome::Failed(format!("{} demote: {e}", rb.from)),
    }
}

/// Promote the new active site and wait for its checks to pass.
async fn promote(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    let t = policy.step_timeout;
    let cmd = Command::new(&rb.group, rb.epoch, CommandKind::Promote);
    let id = cmd.id.clone();
    let o = match env.command(&rb.to, cmd, t).await {
        Ok(o) if o.ok => o,
        Ok(o) => return Outcome::Failed(format!("{} promote failed: {}", rb.to, outcome_text(&o))),
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

/// Route traffic to the new active site at the runbook's epoch; transient
/// errors are retried with backoff, a fencing refusal or a block is final.
async fn switch(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    let t = policy.step_timeout;
    let site = rb.users_site();
    let route = switch_route(rb);
    let mut delay = Duration::from_millis(50);
    let deadline = tokio::time::Instant::now() + t.saturating_sub(Duration::from_millis(200));
    loop {
        match env.activate(&rb.group, &route, rb.epoch).await {
            Ok(()) => {
                return Outcome::Done(format!("traffic routed to {site} at epoch {}", rb.epoch))
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

/// The route the switch step sends (and the verify step sends again).
fn switch_route(rb: &Runbook) -> SiteRoute {
    let mode = match rb.kind {
        RunbookKind::Failover => SwitchMode::Immediate,
        RunbookKind::Failback | RunbookKind::Switchover | RunbookKind::Resync => SwitchMode::Drain,
    };
    SiteRoute {
        site: rb.users_site().to_string(),
        mode,
    }
}

/// How often the verify step sends the switch's route again while the
/// routing layer, at the runbook's epoch, does not show it everywhere.
const VERIFY_REAPPLY_EVERY: Duration = Duration::from_secs(1);

/// Done once the routing layer reports the new site at the epoch (or a
/// later one) without drift and the entry probe reaches that site.
///
/// While the layer, at the runbook's epoch, does not show the route
/// everywhere, the switch's own order is sent again (once a second at
/// most): an element restarted since the switch (a frontend comes back
/// routing nothing until told) gets it back, which reconciliation — that
/// skips a group whose runbook runs — would only do after the step failed.
/// The same site at the same epoch changes nothing where it was taken.
async fn verify(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    let t = policy.step_timeout;
    let deadline = tokio::time::Instant::now() + t.saturating_sub(Duration::from_millis(200));
    let mut reapplied: Option<tokio::time::Instant> = None;
    loop {
        let mut last;
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
                    Err(e) => last = format!("route is right but the entry probe failed: {e}"),
                }
            }
            Ok(o) => {
                last = format!(
                    "routing layer reports {:?} at epoch {} (drift: {})",
                    o.site,
                    o.epoch,
                    o.drift.join("; ")
                );
                // Not above the runbook's epoch: no newer decision took it.
                let due = reapplied.is_none_or(|at| at.elapsed() >= VERIFY_REAPPLY_EVERY);
                if o.epoch <= rb.epoch && due {
                    reapplied = Some(tokio::time::Instant::now());
                    if let Err(e) = env.activate(&rb.group, &switch_route(rb), rb.epoch).await {
                        last = format!("{last}; the switch's route sent again: {e}");
                    }
                }
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
    // Best effort skips a silent site (two missed reports: it is probably
    // gone); required fencing still tries while the agent is not stale.
    let reachable = match policy.fencing {
        Fencing::Required => env.agent_fresh(&rb.from),
        _ => env.agent_heard(&rb.from),
    };
    let started = tokio::time::Instant::now();
    if reachable {
        // Best effort: a site whose service died may still run its demote
        // hooks. With a fence command to fall back on, the demote has half
        // the step at most: the command must have time to run within it.
        let wait = match policy.fencing {
            Fencing::Required if policy.fence_command.is_some() => policy.step_timeout / 2,
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
