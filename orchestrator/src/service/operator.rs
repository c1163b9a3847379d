//! Operator actions that move or resync a group (failover, failback,
//! switchover, resync) and maintenance, with the prechecks every action
//! shares; approval is `approve`, alerts and `warden clear` are `clear`.

use super::*;

impl Shared {
    /// The precheck every action shares: the group is configured…
    pub(super) fn group_config(
        &self,
        group: &str,
    ) -> Result<&warden_config::GroupConfig, OrchestratorError> {
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
            .ok_or_else(|| super::untouched::missing_group(st, group))?;
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

    pub fn operator_maintenance(
        &self,
        group: &str,
        on: bool,
        by: &str,
    ) -> Result<(), OrchestratorError> {
        self.operator_maintenance_seen(group, on, None, by)
    }

    /// [`Shared::operator_maintenance`] as read at the group's maintenance
    /// change `seen` (its `maintenance_seq`): refused (409), nothing
    /// changed, when maintenance was changed since.
    pub fn operator_maintenance_seen(
        &self,
        group: &str,
        on: bool,
        seen: Option<u64>,
        by: &str,
    ) -> Result<(), OrchestratorError> {
        self.maintenance_change(group, on, seen, by).map(|_| ())
    }

    /// [`Shared::operator_maintenance_seen`] answered once the change is
    /// stored (`POST .../maintenance`): an operator told that maintenance
    /// is on takes a site down on that word, and a change only in this
    /// orchestrator's memory is lost with it (a crash, a step-down: the
    /// next leader never had it) — then the automatic failover the
    /// operator turned off follows. See [`Shared::stored_for_operator`].
    pub async fn operator_maintenance_stored(
        &self,
        group: &str,
        on: bool,
        seen: Option<u64>,
        by: &str,
    ) -> Result<(bool, u64), OrchestratorError> {
        let term = self.licence.token();
        let seq = self.maintenance_change(group, on, seen, by)?;
        let what = || {
            format!(
                "maintenance {} of group {group}",
                if on { "on" } else { "off" }
            )
        };
        self.stored_for_operator(seq, term, what).await?;
        // What is stored now (the answer says it, so a client can tell
        // a stored change from any 2xx in the way).
        let st = self.lock();
        let g = st
            .groups
            .get(group)
            .ok_or_else(|| super::untouched::missing_group(&st, group))?;
        Ok((g.maintenance, g.maintenance_seq))
    }

    /// The change of [`Shared::operator_maintenance_seen`], made; its
    /// sequence number in the group writer.
    fn maintenance_change(
        &self,
        group: &str,
        on: bool,
        seen: Option<u64>,
        by: &str,
    ) -> Result<u64, OrchestratorError> {
        self.must_act()?;
        if !self.cfg.groups.contains_key(group) {
            return Err(OrchestratorError::NotFound(format!("group {group:?}")));
        }
        let mut st = self.lock();
        let Some(mut g) = st.groups.get(group).cloned() else {
            return Err(super::untouched::missing_group(&st, group));
        };
        if let Some(seen) = seen.filter(|s| *s != g.maintenance_seq) {
            return Err(OrchestratorError::Conflict(format!(
                "maintenance {} of group {group} was asked as read at its change {seen}; \
                 it was changed since (now {}, change {}): nothing was done \
                 (look at `warden status` and ask again)",
                if on { "on" } else { "off" },
                if g.maintenance { "on" } else { "off" },
                g.maintenance_seq
            )));
        }
        if g.maintenance != on {
            g.maintenance_seq += 1;
        }
        g.maintenance = on;
        let seq = self.persist(&g);
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
        Ok(seq)
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
