//! The runbook steps that move a group's data: stopping the replication
//! into the new active site, the resync (with the old active site's change
//! journal started first), the failback cut-over's demote (carrying the
//! journal's names to the final pass), the final sync and the start of
//! replication.

use std::time::Duration;

use warden_config::Fencing;
use warden_proto::agent::{Command, CommandKind, JournalMark};

use crate::model::{Runbook, StepName};
use crate::runbook::{outcome_text, Carry, Outcome, Policy, RunbookEnv};

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

/// Stop the replication into the new active site (it runs at the old one).
pub(super) async fn stop_replication(
    rb: &Runbook,
    env: &dyn RunbookEnv,
    policy: &Policy,
) -> Outcome {
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
pub(super) async fn replication(
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
pub(super) async fn demote(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
    let t = policy.step_timeout;
    // Failback cut-over: writes must stop at the active site before the final pass.
    let mut cmd = Command::new(&rb.group, rb.epoch, CommandKind::Demote);
    let journal = rb.journal.as_ref().map(|m| m.known);
    cmd.journal_since = journal;
    match env.command(&rb.from, cmd, t).await {
        Ok(o) if o.ok && rb.journal.is_some() => {
            let (said, names) = match o.journal.clone() {
                Some(j) if Some(j.mark) == journal && j.names.is_some() => {
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
