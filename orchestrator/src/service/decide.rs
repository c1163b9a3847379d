//! The decisions a round leads to (failover, failback), with the guards
//! above the detector (manual mode, failover budget, lag, start-up hold,
//! epochs seen ahead): which groups can have anything to decide, and what.

use crate::detector::SiteRound;

use super::*;

impl Shared {
    /// The groups a round may decide something for (see
    /// [`Shared::nothing_to_decide`]): a steady group on its primary whose
    /// active site is neither down this round nor confirmed down has
    /// nothing — in a large deployment, nearly all of them, every round.
    pub(super) fn deciding_locked(&self, st: &State, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|n| {
                st.groups
                    .get(n.as_str())
                    .is_some_and(|g| !self.nothing_to_decide(st, n, g))
            })
            .cloned()
            .collect()
    }

    /// The decisions of a round for the groups `names` (see
    /// [`Shared::deciding_locked`]; each is looked at again here, as it is
    /// now). `judged`: the round's sites; a prompt round judged only some,
    /// the others stand as the last regular round left them.
    pub(super) fn decisions_locked(
        self: &Arc<Self>,
        st: &mut State,
        names: Vec<String>,
        judged: &[SiteRound],
        now: Instant,
        prompt: bool,
    ) {
        if names.is_empty() {
            return;
        }
        let by_site: std::collections::HashMap<&str, &crate::detector::SiteRound> =
            judged.iter().map(|s| (s.site.as_str(), s)).collect();
        // A prompt round judged only some sites: the others stand as the
        // last regular round left them.
        let judged_now = |st: &State, s: &str, is: fn(&Verdict) -> bool| match by_site.get(s) {
            Some(r) => is(&r.verdict),
            None => {
                prompt
                    && st
                        .detector
                        .track(s)
                        .is_some_and(|t| t.last.as_ref().is_some_and(is))
            }
        };
        let healthy = |st: &State, s: &str| judged_now(st, s, |v| *v == Verdict::Healthy);
        let down = |st: &State, s: &str| judged_now(st, s, |v| matches!(v, Verdict::Down(_)));
        for name in names {
            let Some(mut g) = st.groups.get(&name).cloned() else {
                continue;
            };
            let Some(gc) = self.cfg.groups.get(&name) else {
                continue;
            };
            if g.maintenance || g.phase == Phase::Running {
                continue;
            }
            // An incident that ended without a move — the active site
            // recovered (no standby could take its place, or the pending
            // failover was withdrawn) — is over: its first failing evidence
            // is no start of the next one, whose RTO would be counted from
            // it (in `runbook_succeeded` and `warden_group_last_rto_seconds`).
            if g.incident_started_unix_ms.is_some() && st.detector.is_recovered(&g.active, now) {
                g.incident_started_unix_ms = None;
                self.put_group_locked(st, g.clone());
            }
            let active_track = st.detector.track(&g.active).cloned().unwrap_or_default();
            let sites = gc.site_names();
            // The evidence table, now, of the group's sites judged this round.
            let evidence = |st: &State| -> Vec<EvidenceRow> {
                sites
                    .iter()
                    .filter(|s| by_site.contains_key(s.as_str()))
                    .flat_map(|s| st.detector.evidence(&st.evidence, s, now))
                    .collect()
            };
            if g.phase == Phase::PendingApproval {
                // A pending failover is void once the active site is
                // judged recovered (rise rounds and the hold-down: seen
                // here, not merely "not confirmed down", which every site
                // is in a process that just started or took over and has
                // not judged it yet — a withdrawal then would say what
                // nobody observed); a pending failback or switchover once
                // it is confirmed down (it would resync from it):
                // withdrawn, and then the failover is decided below like
                // for any group.
                let void = g.pending.as_ref().and_then(|p| {
                    let failover = p.kind == RunbookKind::Failover;
                    match (failover, active_track.confirmed_down) {
                        (true, false) if st.detector.is_recovered(&g.active, now) => Some(format!(
                            "pending failover withdrawn: {} recovered (no longer confirmed down)",
                            g.active
                        )),
                        (true, false) => None,
                        (false, true) => Some(format!(
                            "pending {} → {} withdrawn: {} is confirmed down; deciding a failover instead",
                            runbook::kind_str(p.kind),
                            p.to,
                            g.active
                        )),
                        _ => None,
                    }
                });
                let Some(why) = void else { continue };
                let rows = evidence(st);
                g.pending = None;
                g.phase = Phase::Steady;
                self.put_group_locked(st, g.clone());
                self.event_locked(
                    st,
                    EventKind::PendingApproval,
                    Some(&name),
                    Some(&g.active),
                    why,
                    rows,
                    None,
                );
                if !active_track.confirmed_down {
                    continue;
                }
            }
            if g.phase == Phase::Failed {
                continue;
            }
            // Suspected: counted down, not yet confirmed. A switch may be
            // coming: the frontends hold new connections meanwhile.
            if !active_track.confirmed_down
                && g.phase == Phase::Steady
                && matches!(active_track.last, Some(Verdict::Down(_)))
            {
                self.suspect_locked(st, &g.active, now);
            }
            // Failover?
            if active_track.confirmed_down {
                // Confirmed when no standby could take it, and not judged
                // down now: healthy again, or a round that cannot judge it
                // (a path fault, a dead agent, too little evidence — none
                // of them a disaster, DESIGN §3). A failover would move
                // users off a site that may well serve them, on a verdict
                // the evidence of this round does not bear out. It waits
                // for a down round (or the site's recovery, which ends the
                // incident).
                if !down(st, &g.active) {
                    if healthy(st, &g.active) {
                        st.recorded.observe(&format!("no_standby/{name}"), None);
                    }
                    continue;
                }
                if g.incident_started_unix_ms.is_none() {
                    if let Some(ff) = active_track.first_failing {
                        let ms = self.clock.to_ms(ff);
                        if let Some(gs) = st.groups.get_mut(&name) {
                            gs.incident_started_unix_ms = Some(ms);
                        }
                    }
                }
                let target = sites
                    .iter()
                    .find(|s| *s != &g.active && healthy(st, s))
                    .cloned();
                let Some(target) = target else {
                    if st
                        .recorded
                        .observe(&format!("no_standby/{name}"), Some(g.active.as_str()))
                    {
                        let rows = evidence(st);
                        self.event_locked(st, EventKind::NoStandby, Some(&name), Some(&g.active), format!("{} is confirmed down but no standby of group {name} is healthy; waiting", g.active), rows, None);
                    }
                    continue;
                };
                st.recorded.observe(&format!("no_standby/{name}"), None);
                let rows = evidence(st);
                self.decide(st, &name, RunbookKind::Failover, &target, rows);
                continue;
            }
            // Failback? Not after a switchover: the primary did not fail,
            // an operator moved the group on purpose.
            let primary = gc.primary().to_string();
            let retry_ok = g.failback_blocked.is_none()
                && g.failback_retry_unix_ms
                    .is_none_or(|t| self.clock.now_ms() >= t);
            if g.active != primary
                && gc.failback == FailbackMode::Auto
                && !g.switched_over
                && retry_ok
                && st.detector.is_recovered(&primary, now)
                && healthy(st, &primary)
            {
                let rows = evidence(st);
                self.decide(st, &name, RunbookKind::Failback, &primary, rows);
            }
        }
    }

    /// Whether a round can decide nothing for group `name` (see
    /// [`Shared::decisions_locked`]): in maintenance, running or failed;
    /// or steady on its primary with the active site neither down this
    /// round nor confirmed down (every branch of the loop needs one of
    /// those).
    fn nothing_to_decide(&self, st: &State, name: &str, g: &GroupState) -> bool {
        if g.maintenance || matches!(g.phase, Phase::Running | Phase::Failed) {
            return true;
        }
        let on_primary = self
            .cfg
            .groups
            .get(name)
            .is_some_and(|gc| gc.primary() == g.active);
        let active_well = st
            .detector
            .track(&g.active)
            .is_none_or(|t| !t.confirmed_down && !matches!(t.last, Some(Verdict::Down(_))));
        // (An incident still recorded is looked at: its end clears it.)
        g.phase == Phase::Steady
            && on_primary
            && active_well
            && g.incident_started_unix_ms.is_none()
    }

    /// An automatic decision: start it, or make it pending (manual mode, budget).
    pub(crate) fn decide(
        self: &Arc<Self>,
        st: &mut State,
        group: &str,
        kind: RunbookKind,
        to: &str,
        evidence: Vec<EvidenceRow>,
    ) {
        if !self.licence.is_held() {
            return;
        }
        if !self.evidence_warm() {
            info!(
                group,
                "just elected: no automatic decision before one evidence window has passed"
            );
            return;
        }
        let Some(gc) = self.cfg.groups.get(group) else {
            return;
        };
        let now = self.clock.now_ms();
        let window = self.cfg.detection.failover_window.as_millis() as u64;
        let Some(g) = st.groups.get(group).cloned() else {
            return;
        };
        let recent = g
            .moves_unix_ms
            .iter()
            .filter(|&&t| now.saturating_sub(t) < window)
            .count() as u32;
        let reason = if !gc.automatic {
            Some("automatic = false".to_string())
        } else if let Some(why) = self.held_locked(st, group) {
            Some(why)
        } else if let Some(why) = self.lag_too_large_locked(st, group, kind, to) {
            Some(why)
        } else if let Some(why) = self.unfit_locked(st, group, to) {
            Some(format!("{why}; the promote would be refused"))
        } else if recent >= self.cfg.detection.max_failovers {
            Some(format!(
                "failover budget exhausted: {recent} automatic moves in the last {} (max_failovers = {})",
                humantime::format_duration(self.cfg.detection.failover_window),
                self.cfg.detection.max_failovers
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            let mut ng = g.clone();
            ng.phase = Phase::PendingApproval;
            ng.pending = Some(Pending {
                kind,
                to: to.to_string(),
                reason: reason.clone(),
                since_unix_ms: now,
                unknown: Default::default(),
            });
            ng.moves_unix_ms.retain(|&t| now.saturating_sub(t) < window);
            self.put_group_locked(st, ng);
            self.event_locked(
                st,
                EventKind::PendingApproval,
                Some(group),
                Some(to),
                format!(
                    "{} {} → {to} waits for `warden approve {group}`: {reason}",
                    runbook::kind_str(kind),
                    g.active
                ),
                evidence,
                None,
            );
            return;
        }
        if let Err(e) = self.start_runbook_locked(st, group, kind, to, "detector", true, evidence) {
            warn!(group, cause = %e, "cannot start runbook");
        }
    }

    /// `max_lag_on_failover`: why an automatic failover to `to` must wait,
    /// if the standby's last known lag exceeds it or is unknown.
    fn lag_too_large_locked(
        &self,
        st: &State,
        group: &str,
        kind: RunbookKind,
        to: &str,
    ) -> Option<String> {
        if kind != RunbookKind::Failover {
            return None;
        }
        let max = self
            .cfg
            .groups
            .get(group)?
            .replication()?
            .max_lag_on_failover?;
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        let shown = humantime::format_duration(max);
        match Self::last_lag_ms(st, group, to) {
            Some(lag) if lag <= max_ms => None,
            Some(lag) => Some(format!(
                "standby {to} was {} behind at the last report (max_lag_on_failover = {shown}): promoting it would lose those writes",
                humantime::format_duration(Duration::from_millis(lag))
            )),
            None => Some(format!(
                "the replication lag toward standby {to} is unknown — no report of the active site \
                 replicating into {to} (max_lag_on_failover = {shown})"
            )),
        }
    }
}
