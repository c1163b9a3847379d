//! Operator actions (failover, failback, switchover, resync, approve,
//! maintenance, clear) and the alerts an operator must clear.

use super::*;

impl Shared {
    /// The precheck every action shares: the group is configured…
    fn group_config(&self, group: &str) -> Result<&warden_config::GroupConfig, OrchestratorError> {
        self.cfg
            .groups
            .get(group)
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group:?}")))
    }

    /// …and no runbook runs for it (state lock held): its state.
    fn idle_group_locked(st: &State, group: &str) -> Result<GroupState, OrchestratorError> {
        let g = st
            .groups
            .get(group)
            .cloned()
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group:?}")))?;
        if g.phase == Phase::Running {
            return Err(OrchestratorError::Conflict(format!(
                "a runbook (id {}) is running for group {group}",
                g.runbook.unwrap_or(0)
            )));
        }
        Ok(g)
    }

    /// Every one of `sites` has an agent reporting; else why `needs` it.
    fn reporting_locked(
        st: &State,
        sites: [&str; 2],
        needs: &str,
    ) -> Result<(), OrchestratorError> {
        for site in sites {
            if !st.detector.agent_fresh(&st.evidence, site, Instant::now()) {
                return Err(OrchestratorError::Conflict(format!(
                    "{site}'s agent is not reporting: {needs}"
                )));
            }
        }
        Ok(())
    }

    /// `warden failover GROUP --to SITE` (to the primary: a failback).
    /// `by`: the acting operator's name (in the runbook's trigger and events).
    pub fn operator_failover(
        self: &Arc<Self>,
        group: &str,
        to: &str,
        by: &str,
    ) -> Result<u64, OrchestratorError> {
        self.operator_failover_seen(group, to, by, &SeenGroup::default())
    }

    /// [`Shared::operator_failover`], refused when the group is not as the
    /// operator saw it (`seen`: its active site, its epoch): a failover
    /// replayed or delayed after the group moved on — users moved off a
    /// site that is active again — changes nothing.
    pub fn operator_failover_seen(
        self: &Arc<Self>,
        group: &str,
        to: &str,
        by: &str,
        seen: &SeenGroup,
    ) -> Result<u64, OrchestratorError> {
        let gc = self.group_config(group)?;
        if !gc.site_names().iter().any(|s| s == to) {
            return Err(OrchestratorError::BadRequest(format!(
                "site {to:?} is not in group {group}; its sites are [{}]",
                gc.site_names().join(", ")
            )));
        }
        let mut st = self.lock();
        let g = Self::idle_group_locked(&st, group)?;
        seen.check(&g, "failover")?;
        if g.active == to {
            // A failed group whose failover failed may be left on a site
            // fenced by it, with the other end promoted late or half: a
            // failover to its own active site fences that other end and
            // promotes the active site again, at a new epoch.
            let Some(from) = super::failed::other_end(&st, &g) else {
                return Err(OrchestratorError::Conflict(format!(
                    "{to} is already the active site of group {group}"
                )));
            };
            let trigger = operator_label(by);
            return self.start_runbook_from_locked(
                &mut st,
                group,
                RunbookKind::Failover,
                Some(&from),
                to,
                &trigger,
                false,
                vec![],
            );
        }
        // To the primary from a live site: a failback (resync first). From
        // a site confirmed down there is nothing to resync from: a failover.
        let active_down = st.detector.confirmed_down(&g.active);
        let kind = if to == gc.primary() && !active_down {
            RunbookKind::Failback
        } else {
            RunbookKind::Failover
        };
        let trigger = operator_label(by);
        self.start_runbook_locked(&mut st, group, kind, to, &trigger, false, vec![])
    }

    pub fn operator_failback(
        self: &Arc<Self>,
        group: &str,
        by: &str,
    ) -> Result<u64, OrchestratorError> {
        self.operator_failback_seen(group, by, &SeenGroup::default())
    }

    /// [`Shared::operator_failback`], refused when the group is not as the
    /// operator saw it (`seen`: its active site, its epoch).
    pub fn operator_failback_seen(
        self: &Arc<Self>,
        group: &str,
        by: &str,
        seen: &SeenGroup,
    ) -> Result<u64, OrchestratorError> {
        let gc = self.group_config(group)?;
        let primary = gc.primary().to_string();
        let mut st = self.lock();
        let g = Self::idle_group_locked(&st, group)?;
        seen.check(&g, "failback")?;
        if g.active == primary {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} already runs on its primary {primary}"
            )));
        }
        if st.detector.confirmed_down(&primary) {
            return Err(OrchestratorError::Conflict(format!(
                "primary {primary} is still confirmed down; fail back once it is healthy"
            )));
        }
        if st.detector.confirmed_down(&g.active) {
            return Err(OrchestratorError::Conflict(format!(
                "{} is confirmed down: a failback resyncs from it; move users with `warden failover {group} --to {primary}` \
                 (what {} wrote since the failover may then stay behind there)",
                g.active, g.active
            )));
        }
        // The operator takes over from a stopped automatic failback — once
        // the runbook starts: a refused failback changes nothing.
        let blocked = st
            .groups
            .get_mut(group)
            .and_then(|gs| gs.failback_blocked.take());
        let started = self.start_runbook_locked(
            &mut st,
            group,
            RunbookKind::Failback,
            &primary,
            &operator_label(by),
            false,
            vec![],
        );
        if started.is_err() {
            if let Some(gs) = st.groups.get_mut(group) {
                gs.failback_blocked = blocked;
            }
        }
        started
    }

    /// `warden switchover GROUP --to SITE`: the failback cut-over applied to
    /// a healthy pair (resync, demote, final pass + verify, promote, switch).
    pub fn operator_switchover(
        self: &Arc<Self>,
        group: &str,
        to: &str,
        by: &str,
    ) -> Result<u64, OrchestratorError> {
        self.operator_switchover_seen(group, to, by, &SeenGroup::default())
    }

    /// [`Shared::operator_switchover`], refused when the group is not as
    /// the operator saw it (`seen`: its active site, its epoch).
    pub fn operator_switchover_seen(
        self: &Arc<Self>,
        group: &str,
        to: &str,
        by: &str,
        seen: &SeenGroup,
    ) -> Result<u64, OrchestratorError> {
        let gc = self.group_config(group)?;
        if !gc.site_names().iter().any(|s| s == to) {
            return Err(OrchestratorError::BadRequest(format!(
                "{to:?} is not a site of group {group}; its sites: {}",
                gc.site_names().join(", ")
            )));
        }
        let mut st = self.lock();
        let g = Self::idle_group_locked(&st, group)?;
        seen.check(&g, "switchover")?;
        if g.active == to {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} already runs on {to}"
            )));
        }
        if st.detector.confirmed_down(&g.active) {
            return Err(OrchestratorError::Conflict(format!(
                "{} is confirmed down: a switchover resyncs from it; use `warden failover {group} --to {to}`",
                g.active
            )));
        }
        // A target still counted down would be failed straight back away
        // from once users are on it: recovered first (rise and hold_down).
        if st.detector.confirmed_down(to) {
            return Err(OrchestratorError::Conflict(format!(
                "{to} is still confirmed down: a switchover moves users only to a site judged recovered (rise healthy rounds and hold_down); wait for its site_recovered event"
            )));
        }
        Self::reporting_locked(
            &st,
            [g.active.as_str(), to],
            "a switchover needs both sites healthy (use failover for a lost site)",
        )?;
        self.start_runbook_locked(
            &mut st,
            group,
            RunbookKind::Switchover,
            to,
            &operator_label(by),
            false,
            vec![],
        )
    }

    /// `warden resync GROUP`: replication from the active site is paused (a
    /// failover to this site, a new store that adopted the group): the
    /// standby is resynced from the active site (what it wrote on its own
    /// is kept or quarantined as `divergent` says, never lost) and
    /// replication resumes toward it. Users stay where they are.
    pub fn operator_resync(
        self: &Arc<Self>,
        group: &str,
        by: &str,
    ) -> Result<u64, OrchestratorError> {
        self.operator_resync_seen(group, by, &SeenGroup::default())
    }

    /// [`Shared::operator_resync`], refused when the group is not as the
    /// operator saw it (`seen`: its active site, its epoch) — a resync asked
    /// before a move and landing after it would bring the other site in
    /// line, one whose writes the operator never looked at.
    pub fn operator_resync_seen(
        self: &Arc<Self>,
        group: &str,
        by: &str,
        seen: &SeenGroup,
    ) -> Result<u64, OrchestratorError> {
        let gc = self.group_config(group)?;
        let mut st = self.lock();
        if let Some(g) = st.groups.get(group) {
            seen.check(g, "resync")?;
        }
        if gc.replication().is_none() {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} has no replication plan: nothing to resync"
            )));
        }
        let g = Self::idle_group_locked(&st, group)?;
        if g.replication_paused_since_unix_ms.is_none() {
            return Err(OrchestratorError::Conflict(format!(
                "replication of group {group} from {} is not paused: nothing to resync",
                g.active
            )));
        }
        // The standby replication runs toward (as the replication round picks it).
        let Some(standby) = gc.site_names().into_iter().find(|s| *s != g.active) else {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} has no standby site"
            )));
        };
        if st.detector.confirmed_down(&g.active) {
            return Err(OrchestratorError::Conflict(format!(
                "{} is confirmed down: fail over first (`warden failover {group} --to {standby}`)",
                g.active
            )));
        }
        Self::reporting_locked(
            &st,
            [g.active.as_str(), standby.as_str()],
            "a resync needs both sites' agents",
        )?;
        self.start_runbook_locked(
            &mut st,
            group,
            RunbookKind::Resync,
            &standby,
            &operator_label(by),
            false,
            vec![],
        )
    }

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
            return Err(OrchestratorError::NotFound(format!("group {group:?}")));
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
        if p.kind == RunbookKind::Failover
            && st
                .detector
                .track(&g.active)
                .is_some_and(|t| t.confirmed_down && t.last == Some(Verdict::Healthy))
        {
            return Err(OrchestratorError::Conflict(format!(
                "{} serves again (judged healthy in the last round, not yet recovered): the pending failover would move users off it; \
                 nothing started (it is withdrawn when {} recovers); to move users anyway: `warden failover {group} --to {}`",
                g.active, g.active, p.to
            )));
        }
        if p.kind == RunbookKind::Failback && st.detector.confirmed_down(&g.active) {
            return Err(OrchestratorError::Conflict(format!(
                "{} is confirmed down now: the pending failback would resync from it; move users with `warden failover {group} --to {}`",
                g.active, p.to
            )));
        }
        // Nothing is recorded or changed unless the runbook can start.
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

    pub fn operator_maintenance(
        &self,
        group: &str,
        on: bool,
        by: &str,
    ) -> Result<(), OrchestratorError> {
        self.must_act()?;
        if !self.cfg.groups.contains_key(group) {
            return Err(OrchestratorError::NotFound(format!("group {group:?}")));
        }
        let mut st = self.lock();
        let Some(mut g) = st.groups.get(group).cloned() else {
            return Err(OrchestratorError::NotFound(format!("group {group:?}")));
        };
        g.maintenance = on;
        self.persist(&g);
        st.groups.insert(group.to_string(), g);
        self.event_locked(
            &mut st,
            EventKind::Maintenance,
            Some(group),
            None,
            format!(
                "maintenance {} ({})",
                if on {
                    "on: no automatic decisions"
                } else {
                    "off"
                },
                operator_label(by)
            ),
            vec![],
            None,
        );
        Ok(())
    }

    /// Alerts of every group's strategy (blocked providers, holds).
    pub fn alerts(&self, group: &str) -> Vec<String> {
        let mut out = self
            .strategies
            .get(group)
            .map(|s| s.alerts())
            .unwrap_or_default();
        out.extend(self.store_alerts());
        let st = self.lock();
        if let Some(x) = st.epoch_ahead.get(group) {
            let own = st.groups.get(group).map(|g| g.epoch).unwrap_or_default();
            out.push(super::authority::epoch_ahead_alert(group, own, x));
        }
        if let Some(b) = st
            .groups
            .get(group)
            .and_then(|g| g.failback_blocked.clone())
        {
            out.push(b);
        }
        if let Some(f) = st
            .groups
            .get(group)
            .and_then(|g| super::failed::alert(&st, g))
        {
            out.push(f);
        }
        out.extend(self.unfit_alerts_locked(&st, group));
        if let Some(gc) = self.cfg.groups.get(group) {
            for site in gc.site_names() {
                if let Some((_, r)) = Self::replication_status(&st, &site, group) {
                    if let Some(guard) = r.guard {
                        out.push(format!("replication at {site}: {guard}"));
                    }
                    if let Some(drift) = r.drift {
                        out.push(format!("replication at {site}: {drift}"));
                    }
                    if r.refused_total > 0 {
                        out.push(format!(
                            "replication at {site}: {} item(s) refused (names that cannot be copied safely), e.g. {}; rename or remove them at the source (`warden clear` does not lift this)",
                            r.refused_total,
                            r.refused.join(", ")
                        ));
                    }
                }
            }
        }
        out
    }

    /// `warden clear GROUP [--deletions SITE]…`: lift the group's alerts
    /// (a DNS provider's block or hold, a stopped automatic failback, the
    /// list of divergent items). A pass held by the mass-delete guard goes
    /// ahead only at the sites named in `deletions`, once: releasing one
    /// lets it delete at the other side, so it is never a side effect of
    /// clearing something else (a guard that tripped after the operator
    /// looked stays held, and the answer says how to release it). A name
    /// that is not a site of the group is refused before anything changes.
    pub fn operator_clear(
        &self,
        group: &str,
        by: &str,
        deletions: &[String],
    ) -> Result<Cleared, OrchestratorError> {
        self.operator_clear_seen(group, by, deletions, &BTreeMap::new())
    }

    /// [`Shared::operator_clear`] of the holds the operator read: `seen`,
    /// per site, the held pass's message as read; a site whose hold is not
    /// that one (a new hold since, a clear replayed from shell history) is
    /// not released. Every release order names the hold it releases, so
    /// the agent lets nothing else go either.
    pub fn operator_clear_seen(
        &self,
        group: &str,
        by: &str,
        deletions: &[String],
        seen: &BTreeMap<String, String>,
    ) -> Result<Cleared, OrchestratorError> {
        self.must_act()?;
        let strategy = self
            .strategies
            .get(group)
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group:?}")))?;
        let sites = self
            .cfg
            .groups
            .get(group)
            .map(|g| g.site_names())
            .unwrap_or_default();
        if let Some(other) = deletions.iter().find(|d| !sites.contains(d)) {
            return Err(OrchestratorError::Conflict(format!(
                "--deletions names {other:?}, not a site of group {group} [{}]; nothing was cleared",
                sites.join(", ")
            )));
        }
        let mut lifted = strategy.clear_alerts();
        let mut not_cleared = Vec::new();
        self.sync_provider_stops(Some(group));
        {
            let mut st = self.lock();
            // A pass held by an agent's mass-delete guard may go ahead
            // once where the operator named the site.
            let epoch = st.groups.get(group).map(|g| g.epoch).unwrap_or_default();
            let now_ms = self.clock.now_ms();
            let mut released = false;
            for site in &sites {
                let guard = Self::replication_status(&st, site, group).and_then(|(_, r)| r.guard);
                match guard {
                    Some(why)
                        if deletions.contains(site)
                            && seen.get(site).is_some_and(|read| *read != why) =>
                    {
                        not_cleared.push(format!(
                            "the pass held at {site} is not the one you read (held now: {why}); \
                             nothing released there: read it again (`warden status {group}`) and \
                             clear it if it is meant"
                        ))
                    }
                    Some(why) if deletions.contains(site) => {
                        let mut cmd = Command::new(group, epoch, CommandKind::Clear).to_site(site);
                        cmd.id = format!("{}:{now_ms}", cmd.id);
                        cmd.guard_seen = Some(why.clone());
                        st.ledger.queue(cmd, None);
                        lifted.push(format!(
                            "the mass-delete guard at {site} lets the held pass go ahead once ({why})"
                        ));
                        released = true;
                    }
                    Some(why) => not_cleared.push(format!(
                        "the mass-delete guard at {site} still holds a pass ({why}); once you have checked, \
                         `warden clear {group} --deletions {site}` lets it go ahead once"
                    )),
                    None if deletions.contains(site) => {
                        not_cleared.push(format!("no pass is held by the mass-delete guard at {site}"))
                    }
                    None => {}
                }
            }
            if released {
                self.command_tick.send_modify(|v| *v += 1);
            }
            if let Some(g) = st.groups.get(group).cloned() {
                if g.failback_blocked.is_some() {
                    let mut ng = g;
                    crate::retry::reset(&mut ng);
                    ng.failback_retry_unix_ms = None;
                    self.put_group_locked(&mut st, ng);
                    lifted.push("automatic failback may retry".to_string());
                }
            }
            if let Some(g) = st.groups.get(group).cloned() {
                if !g.divergent.is_empty() || g.divergent_not_stored > 0 {
                    lifted.push(format!(
                        "{} divergent item(s) acknowledged",
                        (g.divergent.len() as u64).saturating_add(g.divergent_not_stored)
                    ));
                    let mut ng = g;
                    ng.divergent.clear();
                    ng.divergent_not_stored = 0;
                    self.put_group_locked(&mut st, ng);
                }
            }
        }
        let still = if not_cleared.is_empty() {
            String::new()
        } else {
            format!("; not cleared: {}", not_cleared.join("; "))
        };
        self.event(
            EventKind::AlertCleared,
            Some(group),
            None,
            if lifted.is_empty() && not_cleared.is_empty() {
                format!("{} cleared alerts: nothing was blocked", operator_label(by))
            } else if lifted.is_empty() {
                format!(
                    "{} cleared alerts: nothing cleared{still}",
                    operator_label(by)
                )
            } else {
                format!(
                    "{} cleared alerts: {}{still}",
                    operator_label(by),
                    lifted.join("; ")
                )
            },
            vec![],
            None,
        );
        Ok(Cleared {
            cleared: lifted,
            not_cleared,
        })
    }
}

/// What `warden clear` lifted, and what it did not (a mass-delete
/// guard's pass at a site it did not name, with how to release it; a site
/// named where nothing is held).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cleared {
    pub cleared: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_cleared: Vec<String>,
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

/// How events and runbook triggers name an acting operator: `operator` for
/// `orchestrator.operator_token`, `operator NAME` for a named token.
pub(crate) fn operator_label(by: &str) -> String {
    if by == "operator" {
        "operator".to_string()
    } else {
        format!("operator {by}")
    }
}
