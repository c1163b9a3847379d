//! The runbook steps at the routing layer: `switch` sends the group's new
//! route at the runbook's epoch, `verify` waits until the layer shows it
//! everywhere (sending it again meanwhile) and the entry probe passes.

use std::time::Duration;

use warden_strategies::{SiteRoute, StrategyError, SwitchMode};

use crate::model::{EventKind, Runbook, RunbookKind};
use crate::runbook::{Outcome, Policy, RunbookEnv};

/// Route traffic to the new active site at the runbook's epoch; transient
/// errors are retried with backoff, a fencing refusal or a block is final.
pub(super) async fn switch(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
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
/// leaves a group whose runbook has begun its cut-over to the runbook —
/// would only do after the step failed.
/// The same site at the same epoch changes nothing where it was taken.
pub(super) async fn verify(rb: &Runbook, env: &dyn RunbookEnv, policy: &Policy) -> Outcome {
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
