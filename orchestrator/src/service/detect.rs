//! The detection rounds: evidence → verdicts (the detector) and the events
//! of their transitions — regular rounds in parts on the runtime's worker,
//! yielding to reports between parts; prompt rounds at once — handing over to [`decide`](super::decide).

use std::collections::BTreeSet;

use super::*;
use crate::detector::SiteRound;

/// Sites judged in one part of a regular round (well under a millisecond
/// of work on a fast machine, 1 ms on a slow one): see
/// [`Shared::detect_round`].
const ROUND_PART: usize = 256;

impl Shared {
    /// One regular detection round and the decisions it leads to, in parts
    /// of [`ROUND_PART`] sites on the runtime's worker, which serves the
    /// agents' reports in between: after each part the round yields, and
    /// tokio polls the sockets before it runs the round again, so every
    /// report that arrived during a part is taken before the next part. A
    /// report waits for one part at most, never for the whole round.
    ///
    /// (The round ran on a blocking-pool thread, the parts under the state
    /// lock: the runtime's worker then blocked on that lock for every part,
    /// and a part whose thread was preempted while holding it stalled every
    /// report — the samples over 5 ms of the load bench's report streams
    /// all came in the round's 150 ms of each second.)
    ///
    /// Each part judges its sites on the evidence at its own instant;
    /// isolation is judged once, at the start; the decisions come once
    /// every site is judged.
    pub async fn detect_round(self: &Arc<Self>) {
        let t0 = std::time::Instant::now();
        self.regular_round().await;
        self.metrics()
            .round_seconds
            .observe(t0.elapsed().as_secs_f64());
    }

    async fn regular_round(self: &Arc<Self>) {
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
        for part in names.chunks(ROUND_PART) {
            tokio::task::yield_now().await;
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
        for part in self.group_names.chunks(ROUND_PART) {
            tokio::task::yield_now().await;
            let st = self.lock();
            deciding.extend(self.deciding_locked(&st, part));
        }
        tokio::task::yield_now().await;
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
        // The frontends' detector has no isolation of its own (it is judged
        // on the sites): an isolated orchestrator counts no frontend either.
        let fe_counted = !round.isolated && self.frontend_round_locked(st, now, Some(sites));
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
}
