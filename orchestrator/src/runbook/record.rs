//! A runbook's records in the store: each step's write ([`persist`], tried
//! again while the store refuses it, an alert after [`PERSIST_RETRY`]) and
//! the finished runbook's ([`final_record`], best effort).

use std::time::Duration;

use super::{step_str, RunbookEnv};
use crate::model::{EventKind, Runbook, StepName};
use crate::store::Store;

/// How long a failing runbook write is retried before an alert says the
/// runbook waits for the store.
pub const PERSIST_RETRY: Duration = Duration::from_secs(5);

/// The longest pause between two tries of a runbook write the store refuses.
const PERSIST_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Record a finished runbook. If this write is lost the store still says
/// `running`, and a restart resumes the idempotent steps: safe, so only warn.
pub(super) fn final_record(rb: &mut Runbook, store: &dyn Store) {
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
pub(super) async fn persist(
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
