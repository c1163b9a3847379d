//! Before a promote: the group's other sites (a group of three or more)
//! take the runbook's epoch. A standby that is neither the old active site
//! nor the new one gets no order in a move, and learns the new epoch only
//! from the answer to its next report; meanwhile the deposed site, whose
//! replication may still run (it never heard its demote), pushes into it
//! stating the old epoch, and its rsync gate — judging by the epoch it
//! knows — lets the push land. So the promote waits, bounded, until every
//! such site that reports has reported the runbook's epoch (its agent
//! writes it to disk before reporting it, and its gate refuses a push
//! stated at an older one from then on). A site that is silent, or that
//! does not report the epoch in time, is said in the step and does not
//! hold the move: it takes the epoch at its next answer, and an agent
//! that starts again takes no push until it has heard the orchestrator.

use std::time::Duration;

use tokio::time::Instant;

use crate::model::Runbook;
use crate::runbook::{Policy, RunbookEnv};

/// The longest the promote waits for the other sites (a report interval
/// or two is what it takes; a quarter of the step at most).
const MOST: Duration = Duration::from_secs(10);

/// Wait until the group's sites other than `rb.from` and `rb.to` that
/// report have reported `rb.epoch`: what to say in the step (nothing in a
/// group of two).
pub(super) async fn bystanders_take_epoch(
    rb: &Runbook,
    env: &dyn RunbookEnv,
    policy: &Policy,
) -> Vec<String> {
    let others: Vec<String> = env
        .sites_of(&rb.group)
        .into_iter()
        .filter(|s| *s != rb.from && *s != rb.to)
        .collect();
    let deadline = Instant::now() + (policy.step_timeout / 4).min(MOST);
    let mut notes = Vec::new();
    for site in others {
        if !env.agent_heard(&site) {
            notes.push(format!(
                "{site}'s agent is silent: it takes epoch {} from the answer to its next \
                 report (until then a push stated at an older epoch may land there)",
                rb.epoch
            ));
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match env.wait_epoch(&site, &rb.group, rb.epoch, left).await {
            Ok(()) => notes.push(format!("{site} took epoch {}", rb.epoch)),
            Err(e) => notes.push(format!(
                "{site} has not reported epoch {} within {:.1}s ({e}): it takes it from the \
                 answer to its next report",
                rb.epoch,
                left.as_secs_f64()
            )),
        }
    }
    notes
}
