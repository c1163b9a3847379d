//! The frontend layer of `hybrid` groups: judging every frontend machine,
//! deciding to move the DNS name off a confirmed-down frontend (the move
//! itself: `dns_move.rs`; reconciling both layers: `hybrid_reconcile.rs`).

use super::*;

impl Shared {
    /// The frontend layer of `hybrid` groups: judge every frontend machine
    /// (same rules as sites, no agent of their own), record its transitions,
    /// and move a group's DNS name off a confirmed-down frontend to a healthy one.
    /// Returns whether the round counted for any frontend (a prompt round
    /// counts only the first down round of a streak).
    pub(crate) fn frontend_round_locked(
        self: &Arc<Self>,
        st: &mut State,
        now: Instant,
        prompt_for: Option<&std::collections::BTreeSet<String>>,
    ) -> bool {
        if self.frontend_probes.is_empty() {
            return false;
        }
        let round = match prompt_for {
            Some(names) => st.fe_detector.prompt_round(&st.fe_evidence, now, names),
            None => st.fe_detector.round(&st.fe_evidence, now),
        };
        if prompt_for.is_some() && !round.sites.iter().any(|f| f.counted) {
            return false;
        }
        for f in &round.sites {
            for t in &f.transitions {
                let (kind, msg) = match (t, &f.verdict) {
                    (Transition::ConfirmedDown, v) => (
                        EventKind::FrontendConfirmedDown,
                        format!(
                            "frontend {} confirmed down after {} rounds: {}",
                            f.site,
                            self.cfg.detection.fall,
                            v.reason()
                        ),
                    ),
                    (Transition::Recovered, _) => (
                        EventKind::FrontendRecovered,
                        format!("frontend {} recovered", f.site),
                    ),
                    (Transition::Changed, Verdict::Down(r)) => (
                        EventKind::FrontendDown,
                        format!("frontend {} down this round: {r}", f.site),
                    ),
                    (Transition::Changed, Verdict::PathFault(r)) => (
                        EventKind::PathFault,
                        format!(
                            "path fault to frontend {} (not a frontend death): {r}",
                            f.site
                        ),
                    ),
                    _ => continue,
                };
                let rows = st.fe_detector.evidence(&st.fe_evidence, &f.site, now);
                self.event_locked(st, kind, None, Some(&f.site), msg, rows, None);
            }
        }
        let by_fe: BTreeMap<&str, &crate::detector::SiteRound> =
            round.sites.iter().map(|f| (f.site.as_str(), f)).collect();
        let names: Vec<String> = st.groups.keys().cloned().collect();
        for name in names {
            let Some(h) = self.strategies.get(&name).and_then(|s| s.hybrid()) else {
                continue;
            };
            let Some(g) = st.groups.get(&name).cloned() else {
                continue;
            };
            if g.maintenance || st.dns_moving.contains(&name) || !self.licence.is_held() {
                continue;
            }
            let frontends = h.frontend_names();
            let current = g.frontend.clone().unwrap_or_else(|| frontends[0].clone());
            if !st
                .fe_detector
                .track(&current)
                .is_some_and(|t| t.confirmed_down)
            {
                st.recorded.observe(&format!("no_frontend/{name}"), None);
                st.recorded.observe(&format!("frontend_held/{name}"), None);
                continue;
            }
            // Confirmed when no other frontend could take the name, and
            // not judged down now (a prompt round that did not judge it:
            // as the last round left it) — healthy again, or a path fault
            // (the orchestrator's probe failing alone, no frontend's
            // death): a move would send users off a frontend that may
            // well serve them, on a verdict this round's evidence does not
            // bear out. It waits for a down round (or the frontend's
            // recovery, which ends the incident).
            let (down_now, serving) = {
                let verdict = match by_fe.get(current.as_str()) {
                    Some(r) => Some(&r.verdict),
                    None => st.fe_detector.track(&current).and_then(|t| t.last.as_ref()),
                };
                (
                    matches!(verdict, Some(Verdict::Down(_))),
                    verdict == Some(&Verdict::Healthy),
                )
            };
            if !down_now {
                if serving {
                    st.recorded.observe(&format!("no_frontend/{name}"), None);
                }
                continue;
            }
            // An epoch seen above the group's holds automatic decisions
            // until `warden adopt-epoch` (another orchestrator may be
            // acting): this move is one, at an epoch of its own, and a
            // dyndns2 server keeps no epoch to refuse it with.
            if st.epoch_ahead.contains_key(&name) {
                let why = self.held_locked(st, &name).unwrap_or_default();
                if st
                    .recorded
                    .observe(&format!("frontend_held/{name}"), Some(current.as_str()))
                {
                    self.event_locked(st, EventKind::Alert, Some(&name), None, format!("frontend layer: {current} is confirmed down, but the DNS name of group {name} is not moved: {why}"), vec![], None);
                }
                continue;
            }
            // Just started: the frontends were judged on the vantage points
            // heard so far (DESIGN §7), as a site is — no automatic move
            // before one evidence window has passed.
            if !self.evidence_warm() {
                if st
                    .recorded
                    .observe(&format!("frontend_cold/{name}"), Some(current.as_str()))
                {
                    info!(group = %name, frontend = %current, "just started: the DNS name is not moved off a frontend confirmed down before one evidence window has passed");
                }
                continue;
            }
            let evidence: Vec<EvidenceRow> = frontends
                .iter()
                .filter(|f| by_fe.contains_key(f.as_str()))
                .flat_map(|f| st.fe_detector.evidence(&st.fe_evidence, f, now))
                .collect();
            // Healthy this round; in a prompt round, which judges only the
            // frontends the bad evidence is about, the others as the last
            // round left them (as for sites, see `decisions_locked`).
            let target = frontends
                .iter()
                .find(|f| {
                    **f != current
                        && match by_fe.get(f.as_str()) {
                            Some(r) => r.verdict == Verdict::Healthy,
                            None => {
                                prompt_for.is_some()
                                    && st
                                        .fe_detector
                                        .track(f)
                                        .is_some_and(|t| t.last == Some(Verdict::Healthy))
                            }
                        }
                })
                .cloned();
            let Some(target) = target else {
                if st
                    .recorded
                    .observe(&format!("no_frontend/{name}"), Some(current.as_str()))
                {
                    self.event_locked(st, EventKind::NoStandby, Some(&name), None, format!("frontend layer: {current} is confirmed down but no other frontend of group {name} is healthy; DNS stays"), evidence, None);
                }
                continue;
            };
            // The move's own epoch, durable before any write carries it.
            let mut ng = g.clone();
            ng.frontend = Some(target.clone());
            ng.frontend_epoch = g.dns_epoch() + 1;
            let epoch = ng.dns_epoch();
            let seq = self.persist(&ng);
            st.groups.insert(name.clone(), ng);
            st.dns_moving.insert(name.clone());
            let why = by_fe
                .get(current.as_str())
                .map(|r| r.verdict.reason().to_string())
                .unwrap_or_default();
            self.event_locked(
                st,
                EventKind::FrontendMoved,
                Some(&name),
                None,
                format!("frontend layer: {current} confirmed down ({why}) → DNS to {target} at epoch {epoch}"),
                evidence,
                None,
            );
            self.spawn_dns_move(name, target, epoch, seq);
        }
        true
    }
}
