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
//!
//! Both the single routing layer (`reconcile.rs`) and each frontend of a
//! `hybrid` group (`hybrid_reconcile.rs`, its DNS name left to the
//! runbook) use what is here: the step check, the epoch before the
//! runbook's, the re-check under the lock and the words of the events.

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

impl BeforeCutOver {
    /// Whether a routing element read at `epoch` already took the
    /// runbook's own orders (a hold, a switch, at the runbook's epoch):
    /// nothing older is sent there.
    pub(super) fn reached_by_runbook(&self, epoch: u64) -> bool {
        epoch > self.epoch
    }

    /// The end of a `routing drift corrected` event (and of its
    /// `persists`): why the route is the one from before the runbook.
    pub(super) fn reapplied_words(&self) -> String {
        format!(
            ", the epoch it was routed at before the runbook: {}",
            self.what
        )
    }

    /// The end of a refusal or failure event of that route.
    pub(super) fn failed_words(&self) -> String {
        format!(
            " (the route from before the runbook, at epoch {}: {})",
            self.epoch, self.what
        )
    }
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

    /// Whether an order refused as `e` was fenced off by the runbook's
    /// cut-over, begun since `b` was read: as it should be (nothing to
    /// say). `false` outside a runbook (`b` is `None`).
    pub(super) fn fenced_by_cut_over(
        &self,
        g: &GroupState,
        b: Option<&BeforeCutOver>,
        e: &StrategyError,
    ) -> bool {
        e.is_fencing() && b.is_some_and(|b| !self.still_before_cut_over(g, b))
    }
}
