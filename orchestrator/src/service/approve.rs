//! Approving a pending decision (`warden approve GROUP`): the decision the
//! operator saw (`SeenPending`), re-judged as it stands now before its
//! runbook starts.

use super::operator::operator_label;
use super::*;

impl Shared {
    /// `warden approve GROUP`: the pending decision as it is now, whatever
    /// it is (see [`Shared::operator_approve_seen`] for the CLI's way).
    pub fn operator_approve(
        self: &Arc<Self>,
        group: &str,
        by: &str,
    ) -> Result<u64, OrchestratorError> {
        self.operator_approve_seen(group, by, &SeenPending::default())
    }

    /// Approves the pending decision only when it is the one the operator
    /// saw: each field of `seen` that is given must be the pending
    /// decision's (kind, target, since when it waits). A decision made
    /// after the one the operator looked at — the first withdrawn and a
    /// new one made, or a failback pending where a failover was — is not
    /// approved by a late or replayed approval of the first (409, nothing
    /// changed).
    pub fn operator_approve_seen(
        self: &Arc<Self>,
        group: &str,
        by: &str,
        seen: &SeenPending,
    ) -> Result<u64, OrchestratorError> {
        if !self.cfg.groups.contains_key(group) {
            return Err(OrchestratorError::NotFound(format!("group {group:?}")));
        }
        let mut st = self.lock();
        let Some(g) = st.groups.get(group).cloned() else {
            return Err(super::untouched::missing_group(&st, group));
        };
        let Some(p) = g
            .pending
            .clone()
            .filter(|_| g.phase == Phase::PendingApproval)
        else {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} has no pending decision"
            )));
        };
        if let Some(diff) = seen.differs(&p) {
            return Err(OrchestratorError::Conflict(format!(
                "the pending decision of group {group} is {} → {} (waiting since unix ms {}), \
                 not the one approved ({diff}); nothing approved: look again with `warden status {group}`",
                runbook::kind_str(p.kind),
                p.to,
                p.since_unix_ms
            )));
        }
        // The decision is approved as it stands now, not as it stood when
        // it was made: its target must still be a site of the group and
        // not be confirmed down; a failback also needs the site it
        // resyncs from (the active one) up.
        let gc = self.group_config(group)?;
        if !gc.site_names().contains(&p.to) {
            return Err(OrchestratorError::Conflict(format!(
                "the pending {} of group {group} is to {}, which is no longer one of its sites [{}]; nothing started",
                runbook::kind_str(p.kind),
                p.to,
                gc.site_names().join(", ")
            )));
        }
        if st.detector.confirmed_down(&p.to) {
            return Err(OrchestratorError::Conflict(format!(
                "the pending {} of group {group} is to {}, which is confirmed down now; nothing started",
                runbook::kind_str(p.kind),
                p.to
            )));
        }
        // A failover decided while the active site was down, approved once
        // it serves again (still confirmed down until rise rounds and the
        // hold-down): it would move users off a site that serves them (the
        // rule of the automatic decisions, DESIGN §3). It waits for a down
        // round, or is withdrawn when the site recovers.
        // A failover pending while the active site is not confirmed down
        // now: it recovered while the group was in maintenance (no
        // decision withdraws a pending one then), or this orchestrator has
        // not judged it since it started (the decision was loaded from the
        // store). The failover would move users off a site that may serve
        // them, with no final pass of its data: it waits until the site is
        // confirmed down again (an automatic round withdraws it once the
        // site is judged recovered).
        if p.kind == RunbookKind::Failover && !st.detector.confirmed_down(&g.active) {
            let since_start = st
                .detector
                .track(&g.active)
                .is_none_or(|t| t.last.is_none());
            return Err(OrchestratorError::Conflict(format!(
                "{} is not confirmed down now ({}): the pending failover would move users off a site that may serve them; \
                 nothing started (it can be approved once {} is confirmed down again); to move users anyway: `warden failover {group} --to {}`",
                g.active,
                if since_start {
                    "not judged yet since this orchestrator started"
                } else {
                    "it recovered"
                },
                g.active,
                p.to
            )));
        }
        // Likewise after a round that could not judge the site (a path
        // fault, a dead agent, too little evidence): an automatic failover
        // runs only after a down round, and so does an approved one — the
        // site may serve its users (its agent gone, the orchestrator's own
        // path to it broken), and a demote that cannot reach it would leave
        // two sites serving.
        let last = st.detector.track(&g.active).and_then(|t| t.last.clone());
        match last {
            _ if p.kind != RunbookKind::Failover => {}
            Some(Verdict::Down(_)) => {}
            Some(Verdict::Healthy) => {
                return Err(OrchestratorError::Conflict(format!(
                    "{} serves again (judged healthy in the last round, not yet recovered): the pending failover would move users off it; \
                     nothing started (it is withdrawn when {} recovers); to move users anyway: `warden failover {group} --to {}`",
                    g.active, g.active, p.to
                )));
            }
            other => {
                let judged = other.map_or("not judged".to_string(), |v| match &v {
                    Verdict::PathFault(w)
                    | Verdict::DeadAgent(w)
                    | Verdict::Unconfirmed(w)
                    | Verdict::Unknown(w) => format!("{}: {w}", v.label()),
                    _ => v.label().to_string(),
                });
                return Err(OrchestratorError::Conflict(format!(
                    "the last round did not judge {} down ({judged}): the pending failover runs after a down round, as an automatic one; \
                     nothing started (approve again after the next down round); to move users anyway: `warden failover {group} --to {}`",
                    g.active, p.to
                )));
            }
        }
        if p.kind == RunbookKind::Failback && st.detector.confirmed_down(&g.active) {
            return Err(OrchestratorError::Conflict(format!(
                "{} is confirmed down now: the pending failback would resync from it; move users with `warden failover {group} --to {}`",
                g.active, p.to
            )));
        }
        // Nothing is recorded or changed unless the runbook can start: no
        // "approved" event, no budget reset, for one refused below.
        if let Some(refused) = self.unpromotable_locked(&st, group, p.kind, &p.to) {
            return Err(refused);
        }
        self.next_epoch_locked(&st, group)?;
        self.event_locked(
            &mut st,
            EventKind::Approved,
            Some(group),
            Some(&p.to),
            format!(
                "{} approved {} → {} ({})",
                operator_label(by),
                runbook::kind_str(p.kind),
                p.to,
                p.reason
            ),
            vec![],
            None,
        );
        // Approval resets the budget window: the operator has taken responsibility.
        if let Some(gs) = st.groups.get_mut(group) {
            gs.moves_unix_ms.clear();
        }
        let trigger = format!("approved by {}", operator_label(by));
        self.start_runbook_locked(&mut st, group, p.kind, &p.to, &trigger, false, vec![])
    }
}

/// What an approval says the operator saw of the pending decision
/// (`POST /v1/groups/{group}/approve` body): every field optional, each
/// given one must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenPending {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RunbookKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_unix_ms: Option<u64>,
}

impl SeenPending {
    /// What `p` has that differs from what was seen, if anything.
    fn differs(&self, p: &Pending) -> Option<String> {
        let mut out = Vec::new();
        if let Some(k) = self.kind.filter(|k| *k != p.kind) {
            out.push(format!("kind {}", runbook::kind_str(k)));
        }
        if let Some(to) = self.to.as_ref().filter(|to| **to != p.to) {
            out.push(format!("to {:?}", crate::text::printable(to)));
        }
        if let Some(t) = self.since_unix_ms.filter(|t| *t != p.since_unix_ms) {
            out.push(format!("waiting since {t}"));
        }
        (!out.is_empty()).then(|| out.join(", "))
    }
}
