//! A group whose last runbook failed (`Phase::Failed`): the runbook that
//! failed, the other end of its move (the site a failover to the group's
//! own active site fences, [`Shared::operator_failover_seen`]), and the
//! alert that says both ways on. Its roles are watched in `authority`.

use super::*;

/// The last runbook of `g` when `g` is failed.
fn last_failed<'a>(st: &'a State, g: &GroupState) -> Option<&'a Runbook> {
    if g.phase != Phase::Failed {
        return None;
    }
    st.runbooks.newest_of(&g.name)
}

/// The other end of the move that failed, seen from the group's active
/// site: the site it moved users toward, or away from. None when `g` is
/// not failed, or no runbook of it in memory names another site.
pub(super) fn other_end(st: &State, g: &GroupState) -> Option<String> {
    let rb = last_failed(st, g)?;
    let other = if rb.to != g.active { &rb.to } else { &rb.from };
    (*other != g.active).then(|| other.clone())
}

/// Which runbook failed, where, and the operator's two ways on.
pub(super) fn alert(st: &State, g: &GroupState) -> Option<String> {
    let rb = last_failed(st, g)?;
    let step = rb
        .steps
        .iter()
        .find(|s| s.status == crate::model::StepStatus::Failed)
        .map(|s| format!(" at step {}: {}", runbook::step_str(s.name), s.detail))
        .unwrap_or_default();
    let stay = other_end(st, g)
        .map(|other| {
            format!(
                ", or `warden failover {} --to {}` to stay on {} ({other} is fenced, {} promoted again)",
                g.name, g.active, g.active, g.active
            )
        })
        .unwrap_or_default();
    Some(format!(
        "the last runbook ({}, {} {} → {} at epoch {}) failed{step}; the group waits for the operator: \
         fix the cause, then `warden failover {} --to SITE` to move users{stay}",
        rb.id,
        runbook::kind_str(rb.kind),
        rb.from,
        rb.to,
        rb.epoch,
        g.name
    ))
}
