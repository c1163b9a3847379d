//! The detection round: evidence → verdicts (the detector) → decisions
//! (failover, failback), with the guards above the detector (manual mode,
//! failover budget, start-up hold, epochs seen ahead).

use std::collections::BTreeSet;

use crate::detector::SiteRound;

/// Sites judged in one part of a regular round (about half a millisecond
/// of work): see [`Shared::detect_round`].
const ROUND_PART: usize = 512;

/// Between two parts of a round: the state lock is not fair (a thread that
/// unlocks and locks again at once keeps it from those waiting), so the
/// round's thread steps aside long enough for a waiting report to take it.
fn breathe() {
    std::thread::sleep(std::time::Duration::from_micros(100));
}

use super::*;

impl Shared {
    /// One regular detection round and the decisions it leads to, on a
    /// thread of its own (the blocking pool): judging tens of thousands of
    /// sites takes tens of milliseconds of CPU that the runtime's worker
    /// spends on agent reports meanwhile. The sites are judged in parts of
    /// [`ROUND_PART`], the state lock released between two parts, so a
    /// report waits for one part at most, never for the whole round. Each
    /// part judges its sites on the evidence at its own instant; isolation
    /// is judged once, at the start; the decisions come once every site is
    /// judged.
    pub async fn detect_round(self: &Arc<Self>) {
        let t0 = std::time::Instant::now();
        let me = Arc::clone(self);
        if let Err(e) = tokio::task::spawn_blocking(move || me.regular_round()).await {
            warn!(cause = %e, "detection round did not finish");
        }
        self.metrics()
            .round_seconds
            .observe(t0.elapsed().as_secs_f64());
    }

    fn regular_round(self: &Arc<Self>) {
        let names = {
            let now = Instant::now();
            let mut st = self.lock();
            let st = &mut *st;
            if self.licence.is_held() {
                self.lift_holds_locked(st, now);
            }
            self.flush_dropped_locked(st);
            let (isolated, changed) = st.detector.begin_round(&st.evidence, now);
            self.isolation_event_locked(st, changed, now);
            if isolated {
                return;
            }
            st.detector.site_names()
        };
        let mut judged = Vec::with_capacity(names.len());
        for (i, part) in names.chunks(ROUND_PART).enumerate() {
            if i > 0 {
                breathe();
            }
            let now = Instant::now();
            let mut st = self.lock();
            let st = &mut *st;
            let sites = st.detector.round_part(&st.evidence, now, part);
            self.transition_events_locked(st, &sites, now);
            judged.extend(sites);
        }
        {
            let now = Instant::now();
            let mut st = self.lock();
            let st = &mut *st;
            self.frontend_round_locked(st, now, None);
            if !self.licence.is_held() {
                // A follower keeps its verdicts warm; the group state is the leader's.
                return;
            }
            self.replication_round_locked(st);
        }
        // The groups to look at, found in parts too.
        let mut deciding = Vec::new();
        for (i, part) in self.group_names.chunks(ROUND_PART).enumerate() {
            if i > 0 {
                breathe();
            }
            let st = self.lock();
            deciding.extend(self.deciding_locked(&st, part));
        }
        let now = Instant::now();
        let mut st = self.lock();
        self.decisions_locked(&mut st, deciding, &judged, now, false);
    }

    /// A prompt round of `sites` (see
    /// [`crate::detector::Detector::prompt_round`]): it only starts down
    /// streaks. Returns whether it counted for any site or frontend (then
    /// the caller restarts its tick from now).
    pub(crate) fn detect_prompt(self: &Arc<Self>, sites: &BTreeSet<String>) -> bool {
        let now = Instant::now();
        let mut st = self.lock();
        let st = &mut *st;
        let round = st.detector.prompt_round(&st.evidence, now, sites);
        let fe_counted = self.frontend_round_locked(st, now, Some(sites));
        if !round.sites.iter().any(|s| s.counted) {
            return fe_counted;
        }
        if round.isolated {
            return false;
        }
        self.transition_events_locked(st, &round.sites, now);
        if self.licence.is_held() {
            let names: Vec<String> = st.groups.keys().cloned().collect();
            let names = self.deciding_locked(st, &names);
            self.decisions_locked(st, names, &round.sites, now, true);
        }
        true
    }

    /// The isolation event when it started or ended (at start-up nothing
    /// has been heard yet: that is not isolation worth an alert).
    fn isolation_event_locked(
        self: &Arc<Self>,
        st: &mut State,
        changed: Option<bool>,
        now: Instant,
    ) {
        let announce = match changed {
            Some(true) => st.evidence.has_reports(),
            Some(false) => st.recorded.holds("isolated"),
            None => false,
        };
        let (true, Some(iso)) = (announce, changed) else {
            return;
        };
        st.recorded.observe("isolated", iso.then_some("isolated"));
        let (kind, msg) = if iso {
            (EventKind::Isolated, "the orchestrator reaches no site and hears from no agent: it is the one cut off; deciding nothing".to_string())
        } else {
            (
                EventKind::IsolationEnded,
                "the orchestrator hears from sites again".to_string(),
            )
        };
        let ev: Vec<EvidenceRow> = st
            .detector
            .site_names()
            .iter()
            .flat_map(|s| st.detector.evidence(&st.evidence, s, now))
            .collect();
        self.event_locked(st, kind, None, None, msg, ev, None);
    }

    /// The events of the sites' transitions this round (with the evidence
    /// each was judged on: same evidence, same instant).
    fn transition_events_locked(
        self: &Arc<Self>,
        st: &mut State,
        sites: &[SiteRound],
        now: Instant,
    ) {
        for s in sites {
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
    }

    /// The groups a round may decide something for (see
    /// [`Shared::nothing_to_decide`]): a steady group on its primary whose
    /// active site is neither down this round nor confirmed down has
    /// nothing — in a large deployment, nearly all of them, every round.
    fn deciding_locked(&self, st: &State, names: &[String]) -> Vec<String> {
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
    fn decisions_locked(
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
            // The evidence table, now, of the group's sites judged this round.
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
