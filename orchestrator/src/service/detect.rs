//! The detection round: evidence → verdicts (the detector) → decisions
//! (failover, failback), with the guards above the detector (manual mode,
//! failover budget, start-up hold, epochs seen ahead).

use std::collections::BTreeSet;

use super::*;

impl Shared {
    /// One (regular) detection round and the decisions it leads to.
    pub fn detect_round(self: &Arc<Self>) {
        let t0 = std::time::Instant::now();
        self.round_locked(None);
        self.metrics()
            .round_seconds
            .observe(t0.elapsed().as_secs_f64());
    }

    /// A prompt round of `sites` (see
    /// [`crate::detector::Detector::prompt_round`]): it only starts down
    /// streaks. Returns whether it counted for any site or frontend (then
    /// the caller restarts its tick from now).
    pub(crate) fn detect_prompt(self: &Arc<Self>, sites: &BTreeSet<String>) -> bool {
        self.round_locked(Some(sites))
    }

    fn round_locked(self: &Arc<Self>, prompt_for: Option<&BTreeSet<String>>) -> bool {
        let prompt = prompt_for.is_some();
        let now = Instant::now();
        let mut st = self.lock();
        let st = &mut *st;
        let acting = self.licence.is_held();
        let round = if let Some(sites) = prompt_for {
            let round = st.detector.prompt_round(&st.evidence, now, sites);
            let fe_counted = self.frontend_round_locked(st, now, Some(sites));
            if !round.sites.iter().any(|s| s.counted) {
                return fe_counted;
            }
            round
        } else {
            if acting {
                self.lift_holds_locked(st, now);
            }
            self.flush_dropped_locked(st);
            st.detector.round(&st.evidence, now)
        };
        // At start-up nothing has been heard yet: that is not isolation worth an alert.
        let announce = match round.isolation_changed {
            Some(true) => st.evidence.has_reports(),
            Some(false) => st.recorded.holds("isolated"),
            None => false,
        };
        if let (true, Some(iso)) = (announce, round.isolation_changed) {
            st.recorded.observe("isolated", iso.then_some("isolated"));
            let (kind, msg) = if iso {
                (EventKind::Isolated, "the orchestrator reaches no site and hears from no agent: it is the one cut off; deciding nothing".to_string())
            } else {
                (
                    EventKind::IsolationEnded,
                    "the orchestrator hears from sites again".to_string(),
                )
            };
            let ev: Vec<EvidenceRow> = round
                .sites
                .iter()
                .flat_map(|s| st.detector.evidence(&st.evidence, &s.site, now))
                .collect();
            self.event_locked(st, kind, None, None, msg, ev, None);
        }
        if round.isolated {
            return false;
        }
        for s in &round.sites {
            for t in &s.transitions {
                let (kind, msg) = match (t, &s.verdict) {
                    (Transition::ConfirmedDown, v) => (
                        EventKind::SiteConfirmedDown,
                        format!(
                            "site {} confirmed down after {} rounds: {}",
                            s.site,
                            self.cfg.detection.fall,
                            v.reason()
                        ),
                    ),
                    (Transition::Recovered, _) => (
                        EventKind::SiteRecovered,
                        format!(
                            "site {} recovered: {} healthy rounds and hold-down {:?} passed",
                            s.site, self.cfg.detection.rise, self.cfg.detection.hold_down
                        ),
                    ),
                    (Transition::Changed, Verdict::Down(r)) => (
                        EventKind::SiteDown,
                        format!("site {} down this round: {r}", s.site),
                    ),
                    (Transition::Changed, Verdict::PathFault(r)) => (
                        EventKind::PathFault,
                        format!("path fault to site {} (not a disaster): {r}", s.site),
                    ),
                    (Transition::Changed, Verdict::DeadAgent(r)) => (
                        EventKind::DeadAgent,
                        format!("dead agent at site {} (not a disaster): {r}", s.site),
                    ),
                    (Transition::Changed, Verdict::Unconfirmed(r)) => {
                        (EventKind::Unconfirmed, format!("site {}: {r}", s.site))
                    }
                    _ => continue,
                };
                let rows = st.detector.evidence(&st.evidence, &s.site, now);
                self.event_locked(st, kind, None, Some(&s.site), msg, rows, None);
            }
        }
        if !prompt {
            self.frontend_round_locked(st, now, None);
        }
        if !acting {
            // A follower keeps its verdicts warm; the group state is the leader's.
            return prompt;
        }
        if !prompt {
            self.replication_round_locked(st);
        }
        // Decisions per group. Only groups with something to decide are
        // looked at further: a steady group on its primary whose active
        // site is neither down this round nor confirmed down has none (no
        // pending move, no suspicion, no failover, no failback) — in a
        // large deployment, nearly all of them, every round.
        let names: Vec<String> = st
            .groups
            .iter()
            .filter(|(name, g)| !self.nothing_to_decide(st, name, g))
            .map(|(name, _)| name.clone())
            .collect();
        if names.is_empty() {
            return prompt;
        }
        let by_site: std::collections::HashMap<&str, &crate::detector::SiteRound> =
            round.sites.iter().map(|s| (s.site.as_str(), s)).collect();
        // A prompt round judged only some sites: the others stand as the
        // last regular round left them.
        let healthy = |st: &State, s: &str| match by_site.get(s) {
            Some(r) => r.verdict == Verdict::Healthy,
            None => {
                prompt
                    && st
                        .detector
                        .track(s)
                        .is_some_and(|t| t.last == Some(Verdict::Healthy))
            }
        };
        for name in names {
            let Some(g) = st.groups.get(&name).cloned() else {
                continue;
            };
            let Some(gc) = self.cfg.groups.get(&name) else {
                continue;
            };
            if g.maintenance || g.phase == Phase::Running {
                continue;
            }
            let active_track = st.detector.track(&g.active).cloned().unwrap_or_default();
            let sites = gc.site_names();
            // The evidence table of the group's sites judged this round.
            let evidence = |st: &State| -> Vec<EvidenceRow> {
                sites
                    .iter()
                    .filter(|s| by_site.contains_key(s.as_str()))
                    .flat_map(|s| st.detector.evidence(&st.evidence, s, now))
                    .collect()
            };
            if g.phase == Phase::PendingApproval {
                if let Some(p) = &g.pending {
                    if p.kind == RunbookKind::Failover && !active_track.confirmed_down {
                        let rows = evidence(st);
                        let mut ng = g.clone();
                        ng.pending = None;
                        ng.phase = Phase::Steady;
                        self.persist(&ng);
                        st.groups.insert(name.clone(), ng);
                        self.event_locked(
                            st,
                            EventKind::PendingApproval,
                            Some(&name),
                            Some(&g.active),
                            format!(
                                "pending failover withdrawn: {} is no longer confirmed down",
                                g.active
                            ),
                            rows,
                            None,
                        );
                    }
                }
                continue;
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
            // Failback?
            let primary = gc.primary().to_string();
            let retry_ok = g.failback_blocked.is_none()
                && g.failback_retry_unix_ms
                    .is_none_or(|t| self.clock.now_ms() >= t);
            if g.active != primary
                && gc.failback == FailbackMode::Auto
                && retry_ok
                && st.detector.is_recovered(&primary, now)
                && healthy(st, &primary)
            {
                let rows = evidence(st);
                self.decide(st, &name, RunbookKind::Failback, &primary, rows);
            }
        }
        prompt
    }

    /// Whether a round can decide nothing for group `name` (see the
    /// decision loop of `round_locked`): in maintenance, running or failed;
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
        g.phase == Phase::Steady && on_primary && active_well
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
            });
            ng.moves_unix_ms.retain(|&t| now.saturating_sub(t) < window);
            self.persist(&ng);
            st.groups.insert(group.to_string(), ng);
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
        match Self::last_lag_ms(st, group) {
            Some(lag) if lag <= max_ms => None,
            Some(lag) => Some(format!(
                "standby {to} was {} behind at the last report (max_lag_on_failover = {shown}): promoting it would lose those writes",
                humantime::format_duration(Duration::from_millis(lag))
            )),
            None => Some(format!(
                "the replication lag toward standby {to} is unknown (max_lag_on_failover = {shown})"
            )),
        }
    }
}
