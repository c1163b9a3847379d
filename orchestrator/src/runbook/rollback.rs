//! What a failed runbook undoes (DESIGN §4): a failback's or switchover's
//! rollback (the old site routed again at the runbook's epoch, the new
//! site demoted, the old one promoted again), or, when users may already
//! reach the new site, nothing: the move is carried forward.

use std::time::Duration;

use warden_proto::agent::{Command, CommandKind};
use warden_strategies::{SiteRoute, SwitchMode};

use super::record::persist;
use super::{kind_str, outcome_text, started, Policy, RunbookEnv};
use crate::model::{EventKind, Runbook, StepName, StepStatus};
use crate::store::Store;

/// A failover whose switch failed after its promote: the new site is
/// promoted and the old one fenced or down, and part of the routing layer
/// may route to the new site already. Users' way is forward: `to` stays
/// the active site and reconciliation completes the route (routing the
/// rest back to the site that was lost would also fence the frontends
/// against the new site at this epoch).
pub(super) fn roll_forward_failover(rb: &mut Runbook, env: &dyn RunbookEnv) {
    let done = |n: StepName| {
        rb.steps
            .iter()
            .any(|s| s.name == n && s.status == StepStatus::Done)
    };
    if !done(StepName::Promote) || done(StepName::Switch) || !started(rb, StepName::Switch) {
        return;
    }
    rb.rolled_forward = true;
    env.event(
        EventKind::Alert,
        &rb.group,
        Some(&rb.to),
        format!(
            "the failover's switch to {} failed after {} was promoted: {} stays the active site at epoch {}, \
             and reconciliation routes the rest of the routing layer to it",
            rb.to, rb.to, rb.to, rb.epoch
        ),
        Some(rb.id),
    );
}

/// What the routing layer shows after a failed switch, when it shows that
/// the switch reached none of it: every element read, none at the
/// runbook's epoch (or every one at the old site at it: the rollback's own
/// route, found by a resumed rollback). `Err` with what was seen otherwise (part of it took
/// the route, or it could not be read to tell — also when only some of
/// it could: a `hybrid` group's unreachable frontend may have taken the
/// route, its answer lost).
async fn reached_nowhere(rb: &Runbook, env: &dyn RunbookEnv) -> Result<String, String> {
    match env.current(&rb.group).await {
        Ok(o) if !o.unread.is_empty() => Err(format!(
            "the routing layer could not all be read ({}); the rest routes to {} at epoch {}",
            o.unread.join("; "),
            o.site.as_deref().unwrap_or("nothing"),
            o.epoch
        )),
        // The old site at the runbook's epoch is the rollback's own route
        // (see [`claim_back`]; a resumed rollback finds it): nobody routes
        // to the new site at this epoch.
        Ok(o)
            if o.drift.is_empty()
                && (o.epoch < rb.epoch
                    || (o.epoch == rb.epoch && o.site.as_deref() == Some(rb.from.as_str()))) =>
        {
            Ok(format!(
                "the routing layer still routes to {} at epoch {}",
                o.site.as_deref().unwrap_or("nothing"),
                o.epoch
            ))
        }
        Ok(o) => Err(format!(
            "the routing layer routes to {} at epoch {}{}",
            o.site.as_deref().unwrap_or("nothing"),
            o.epoch,
            if o.drift.is_empty() {
                String::new()
            } else {
                format!(" (drift: {})", o.drift.join("; "))
            }
        )),
        Err(e) => Err(format!("the routing layer cannot be read: {e}")),
    }
}

/// A failback or switchover failed. Before the switch nothing moved but
/// (maybe) the old active site's demote and the new one's promote: route
/// the old site again at the runbook's epoch ([`claim_back`]), demote the
/// new site, then promote the old one again so users keep a writable
/// site. Marks the runbook `aborted` when traffic and writes are as they
/// were; otherwise it stays failed for the operator.
///
/// A switch that failed may still have reached part of the routing layer
/// (one frontend took the route, another timed out). Rolling back then
/// would leave users on both sites, or on a demoted one, with writes at
/// the new site the old one never gets: unless the routing layer shows
/// that the switch reached none of it, the runbook rolls forward instead
/// — the new site (promoted, holding the final pass) stays active, the old
/// one stays demoted, and reconciliation completes the route.
///
/// The direction, once it is back to the old site, is recorded before
/// anything is undone (`rolling_back_to_old`): a rollback resumed after a
/// crash or by the next leader finishes it, whatever the routing layer
/// reads then. `false` when this orchestrator was deposed while recording
/// it (nothing undone here).
pub(super) async fn rollback(
    rb: &mut Runbook,
    env: &dyn RunbookEnv,
    store: &dyn Store,
    policy: &Policy,
    failed: StepName,
) -> bool {
    if !rb.kind.moves_users() {
        // Nothing was demoted and users never moved: the group is as it was
        // (replication still paused).
        rb.aborted = true;
        return true;
    }
    let switch_done = rb
        .steps
        .iter()
        .any(|s| s.name == StepName::Switch && s.status == StepStatus::Done);
    if switch_done {
        return true;
    }
    // Decided back by an earlier attempt of this rollback (recorded).
    let resumed_back = rb.rolling_back_to_old;
    let mut seen = None;
    if started(rb, StepName::Switch) && !resumed_back {
        match reached_nowhere(rb, env).await {
            Ok(s) => seen = Some(s),
            Err(s) => {
                carry_forward(rb, env, &s);
                return true;
            }
        }
    }
    if !started(rb, StepName::Demote) {
        rb.aborted = true;
        return true;
    }
    if !resumed_back {
        rb.rolling_back_to_old = true;
        if !persist(rb, failed, env, store).await {
            rb.rolling_back_to_old = false;
            return false;
        }
    }
    // Before anything is undone, the routing layer is told the old site at
    // the runbook's epoch: a late route to the new site at this epoch (a
    // deposed leader's switch still in flight) is refused from here on as
    // a conflicting decision, instead of being taken and then refusing
    // reconciliation's route back to the old site at the same epoch.
    let claimed = match claim_back(rb, env, policy).await {
        Claim::GoOn(s) => s,
        // Resumed: the first attempt may have demoted the new site already;
        // the rollback is finished (the old site promoted again), and the
        // part of the layer that refuses the route back is said — the
        // reconciliation and the operator see to it.
        Claim::Refused { seen, .. } if resumed_back => {
            env.event(
                EventKind::Alert,
                &rb.group,
                Some(&rb.from),
                format!(
                    "the resumed rollback of the {} {} → {} goes on (decided and recorded before the \
                     restart): the route back to {} was refused ({seen}); {} is promoted again",
                    kind_str(rb.kind),
                    rb.from,
                    rb.to,
                    rb.from,
                    rb.from
                ),
                Some(rb.id),
            );
            format!("the route back was refused: {seen}")
        }
        // A late route to the new site at this epoch landed first (the
        // switch began: the new site is promoted): users may reach it.
        Claim::Refused { seen, epoch } if epoch == rb.epoch && started(rb, StepName::Switch) => {
            carry_forward(rb, env, &seen);
            return true;
        }
        Claim::Refused { seen, .. } => {
            // A decision this runbook did not make holds the layer (a
            // newer one, or a route to the new site before any switch):
            // nothing is undone from here, the operator decides.
            env.event(
                EventKind::Alert,
                &rb.group,
                Some(&rb.from),
                format!(
                    "the {} {} → {} failed and is not rolled back: {seen}; {} and {} are left as they are \
                     for the operator (this orchestrator may be deposed)",
                    kind_str(rb.kind),
                    rb.from,
                    rb.to,
                    rb.from,
                    rb.to
                ),
                Some(rb.id),
            );
            return true;
        }
    };
    // The new site first: never two sites promoted at once.
    let demoted = if started(rb, StepName::Promote) {
        let mut cmd = Command::new(&rb.group, rb.epoch, CommandKind::Demote);
        cmd.id = format!("{}:{}:demote_back", rb.group, rb.epoch);
        let outcome = env.command(&rb.to, cmd, policy.step_timeout / 2).await;
        Some(match &outcome {
            Ok(o) if o.ok => format!("{} demoted again ({})", rb.to, outcome_text(o)),
            Ok(o) => format!(
                "{} could not be demoted again ({}); it is told to demote when it next reports",
                rb.to,
                outcome_text(o)
            ),
            Err(e) => format!(
                "{} could not be demoted again ({e}); it is told to demote when it next reports",
                rb.to
            ),
        })
    } else {
        None
    };
    let mut cmd = Command::new(&rb.group, rb.epoch, CommandKind::Promote);
    cmd.id = format!("{}:{}:promote_back", rb.group, rb.epoch);
    let outcome = env.command(&rb.from, cmd, policy.step_timeout).await;
    let text = match &outcome {
        Ok(o) => outcome_text(o),
        Err(e) => e.clone(),
    };
    rb.aborted = matches!(&outcome, Ok(o) if o.ok);
    let before: Vec<String> = seen.into_iter().chain([claimed]).chain(demoted).collect();
    env.event(
        if rb.aborted {
            EventKind::FailbackAborted
        } else {
            EventKind::RunbookFailed
        },
        &rb.group,
        Some(&rb.from),
        format!(
            "{}{} promoted again after the failed {}: {text}",
            if before.is_empty() {
                String::new()
            } else {
                format!("{}; ", before.join("; "))
            },
            rb.from,
            kind_str(rb.kind)
        ),
        Some(rb.id),
    );
    true
}

/// A failed switch may have reached part of the routing layer (`seen`
/// says what was seen): nothing is undone; the new site stays active and
/// reconciliation routes the rest to it.
fn carry_forward(rb: &mut Runbook, env: &dyn RunbookEnv, seen: &str) {
    rb.rolled_forward = true;
    env.event(
        EventKind::Alert,
        &rb.group,
        Some(&rb.to),
        format!(
            "the {}'s switch to {} failed and may have reached part of the routing layer ({seen}): \
             not rolled back — {} stays the active site at epoch {} (promoted, with {}'s data), {} \
             stays demoted, and reconciliation routes the rest to {}; replication toward {} is not \
             started (`warden resync {}` once the route is complete)",
            kind_str(rb.kind),
            rb.to,
            rb.to,
            rb.epoch,
            rb.from,
            rb.from,
            rb.to,
            rb.from,
            rb.group
        ),
        Some(rb.id),
    );
}

/// What [`claim_back`] found.
enum Claim {
    /// The rollback may go on (what to say: the route written, or not
    /// writable now — unreachable, a provider's block —, then written by
    /// reconciliation, as before).
    GoOn(String),
    /// The layer refused the route and holds another decision at `epoch`
    /// (the runbook's or a later one), as `seen` says.
    Refused { seen: String, epoch: u64 },
}

/// Route the group to the old site (`rb.from`, where users still are) at
/// the runbook's epoch, before the rollback undoes anything: the routing
/// layer's fence then names the old site at this epoch, and refuses a
/// late route to the new one at it (a deposed leader's switch) as a
/// conflicting decision. Users do not move (the layer routes to the old
/// site already); reconciliation would write the same route, later.
///
/// Retries an unreachable layer for half a step (ten seconds at most:
/// users wait on a demoted site meanwhile).
async fn claim_back(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Claim {
    let route = SiteRoute {
        site: rb.from.clone(),
        // What reconciliation writes: its later pass is then a no-op.
        mode: SwitchMode::Immediate,
    };
    let mut delay = Duration::from_millis(50);
    let deadline =
        tokio::time::Instant::now() + (policy.step_timeout / 2).min(Duration::from_secs(10));
    loop {
        let e = match env.activate(&rb.group, &route, rb.epoch).await {
            Ok(()) => {
                return Claim::GoOn(format!(
                    "the routing layer names {} at epoch {} (a late route to {} at it is refused)",
                    rb.from, rb.epoch, rb.to
                ))
            }
            Err(e) => e,
        };
        if e.is_transient() && tokio::time::Instant::now() < deadline {
            let jitter = rand::random::<f64>() * 0.5 + 0.5;
            tokio::time::sleep(delay.mul_f64(jitter)).await;
            delay = (delay * 2).min(Duration::from_secs(1));
            continue;
        }
        if !e.is_transient() {
            if let Ok(o) = env.current(&rb.group).await {
                let other = o.site.as_deref() != Some(rb.from.as_str()) || !o.drift.is_empty();
                if o.epoch > rb.epoch || (o.epoch == rb.epoch && other) {
                    let seen = format!(
                        "{}'s route at epoch {} was refused ({e}); the routing layer routes to {} at epoch {}{}",
                        rb.from,
                        rb.epoch,
                        o.site.as_deref().unwrap_or("nothing"),
                        o.epoch,
                        if o.drift.is_empty() {
                            String::new()
                        } else {
                            format!(" (drift: {})", o.drift.join("; "))
                        }
                    );
                    return Claim::Refused {
                        seen,
                        epoch: o.epoch,
                    };
                }
            }
        }
        return Claim::GoOn(format!(
            "{}'s route at epoch {} not written ({e}): reconciliation writes it",
            rb.from, rb.epoch
        ));
    }
}
