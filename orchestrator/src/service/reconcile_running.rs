//! Reconciliation of a group whose runbook runs but has not yet begun to
//! take users off the site they are on (a failback's or switchover's
//! resync, before its demote; a `resync` runbook's, before its switch):
//! the route users had before the runbook — the active site at the epoch
//! before the runbook's — is what the routing layer must show meanwhile,
//! and a frontend restarted empty gets it back instead of serving nobody
//! for as long as the resync takes. Never the runbook's own epoch: a route
//! naming the old site there would make the frontend refuse the switch to
//! the new site at that epoch (another site at the same epoch).
//!
//! A cut-over that begins between the check and the write is fenced by
//! the routing layer: the runbook's hold order (sent as its demote
//! starts) and its switch carry the runbook's epoch, above this route's,
//! so a route landing after either is refused as stale; one landing
//! before leaves the frontend as one that never restarted is at that
//! point (the old site routed until the switch).

use super::*;

/// What the reconciliation of a running group compares and re-applies
/// ([`Shared::before_cut_over`]).
pub(super) struct BeforeCutOver {
    /// The runbook's id.
    pub runbook: u64,
    /// The epoch before the runbook's: the one the routing layer was last
    /// routed at for the active site.
    pub epoch: u64,
    /// The runbook and where it is, for events.
    pub what: String,
}

impl Shared {
    /// For a group whose runbook runs (`g`, as read), what users are to be
    /// routed to meanwhile: `Some` while the runbook has not begun its
    /// cut-over ([`crate::model::Runbook::before_cut_over`]), `None`
    /// otherwise (the group is the runbook's alone).
    pub(super) fn before_cut_over(&self, g: &GroupState) -> Option<BeforeCutOver> {
        let st = self.lock();
        let id = g.runbook?;
        let rb = st.runbooks.get(&id)?;
        if rb.group != g.name || rb.epoch != g.epoch || rb.from != g.active {
            return None;
        }
        if !rb.before_cut_over() {
            return None;
        }
        let epoch = rb.epoch.checked_sub(1)?;
        let next = match rb.kind {
            RunbookKind::Resync => "switch",
            _ => "demote",
        };
        Some(BeforeCutOver {
            runbook: id,
            epoch,
            what: format!(
                "{} {} → {} (runbook {id}) has not begun its {next}: users stay on {} until its \
                 switch at epoch {}",
                runbook::kind_str(rb.kind),
                rb.from,
                rb.to,
                rb.from,
                rb.epoch
            ),
        })
    }

    /// Whether `g` (as read) and its runbook `b` are still where they were
    /// when read: the same epoch, active site and runbook, its cut-over
    /// still not begun.
    pub(super) fn still_before_cut_over(&self, g: &GroupState, b: &BeforeCutOver) -> bool {
        let now = self.lock().groups.get(&g.name).cloned();
        now.is_some_and(|x| {
            x.phase == Phase::Running
                && x.epoch == g.epoch
                && x.active == g.active
                && x.runbook == Some(b.runbook)
                && self.before_cut_over(&x).is_some()
        })
    }
}
