//! The detection cadence: when rounds and the orchestrator's own probes run.
//!
//! Both run every `detection.interval`, and both can be pulled forward by
//! bad evidence (DESIGN §3, "prompt rounds"):
//! - a report whose critical check fails asks for a **prompt probe** of the
//!   site, so the outside view that can confirm it arrives at once instead
//!   of at the next probe tick;
//! - a failing probe (the orchestrator's, or a peer's in a report) asks for
//!   a **prompt round**, and so does an agent turning silent (the loop
//!   wakes at the moment its last report is 1.5 report intervals old).
//!
//! A prompt round evaluates only the sites the bad evidence is about and
//! only starts down streaks ([`Detector::prompt_round`]); when it did, the
//! tick restarts from it (the first since the last regular round only),
//! so the streak's later rounds still come one interval apart; a regular
//! round less than an interval after a site's prompt round does not count
//! that site's next down round (`SiteTrack::prompted_at`), so a cascade of
//! sites, each starting a streak, neither holds the regular rounds off nor
//! shortens any site's spacing. Triggers are for sites not already in a streak; a
//! prompt probe covers only the sites named and waits at least a quarter
//! interval after the previous one, so a flapping site cannot make either
//! run hot. Silence is looked for
//! every quarter interval among the agents already overdue (a report
//! missing), then waited for to the millisecond; one wake takes every agent
//! silent by then, and silence wakes come at most every eighth of the
//! shortest report interval. Before, each silent agent had a wake and a
//! scan of all agents of its own: with every report late (an overloaded
//! orchestrator, a slow path) 20,000 agents made the loop wake about once a
//! millisecond and the orchestrator spent its cores scanning, which made
//! reports later still (the load bench at 5,000 of 20,000 reports/s).
//!
//! [`Detector::prompt_round`]: crate::detector::Detector::prompt_round

use std::collections::BTreeSet;

use super::*;

#[derive(PartialEq, Eq)]
enum Woke {
    Timer,
    Asked,
}

/// The wake-ups of the detection and probe loops.
#[derive(Default)]
pub(crate) struct Cadence {
    round: tokio::sync::Notify,
    /// The sites (and hybrid frontends) a prompt round is asked for.
    pending: Mutex<BTreeSet<String>>,
    probe: tokio::sync::Notify,
    /// The sites a prompt probe is asked for.
    to_probe: Mutex<BTreeSet<String>>,
}

fn take(set: &Mutex<BTreeSet<String>>) -> BTreeSet<String> {
    std::mem::take(&mut *set.lock().unwrap_or_else(|p| p.into_inner()))
}

impl Cadence {
    fn take_pending(&self) -> BTreeSet<String> {
        take(&self.pending)
    }
}

impl Shared {
    /// Bad evidence about `site` that a round could count now: wake the
    /// detection loop (state lock held).
    pub(crate) fn prompt_round_locked(&self, st: &State, site: &str) {
        if st.detector.wants_prompt(site) || st.fe_detector.wants_prompt(site) {
            self.cadence
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(site.to_string());
            self.cadence.round.notify_one();
        }
    }

    /// `site`'s agent says a critical check fails: probe it from here now
    /// (state lock held).
    pub(crate) fn prompt_probe_locked(&self, st: &State, site: &str) {
        if st.detector.wants_prompt(site) {
            self.cadence
                .to_probe
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(site.to_string());
            self.cadence.probe.notify_one();
        }
    }

    /// Detection rounds every interval, and prompt rounds in between (see
    /// the module doc), until `stop`.
    pub async fn detection_loop(self: Arc<Self>, stop: CancellationToken) {
        let interval = self.cfg.detection.interval;
        let scan = self.lock().detector.shortest_report_interval() / 4;
        // Silence wakes at most this often (see the module doc).
        let spacing = scan / 2;
        let mut next_tick = Instant::now();
        // Every silence up to here has been judged (by a round or a prompt round).
        let mut judged = Instant::now();
        let mut last_silence: Option<Instant> = None;
        // Whether a prompt round restarted the tick since the last regular
        // round: only the first does (one streak's next round comes one
        // interval after its first); later ones, of other sites, leave it —
        // each site's spacing is kept by the detector (`prompted_at`) —,
        // else a cascade of sites each starting a streak within an
        // interval of the last would hold every regular round off.
        let mut restarted = false;
        loop {
            let now = Instant::now();
            let silence = {
                let st = self.lock();
                st.detector.next_silence(&st.evidence, judged, now)
            }
            .map(|at| last_silence.map_or(at, |l| at.max(l + spacing)));
            let rescan = now + scan;
            let wake = silence
                .map_or(next_tick, |at| next_tick.min(at))
                .min(rescan);
            let woke = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(wake) => Woke::Timer,
                _ = self.cadence.round.notified() => Woke::Asked,
            };
            let mut sites = self.cadence.take_pending();
            if woke == Woke::Timer {
                let now = Instant::now();
                if now >= next_tick {
                    self.detect_round().await;
                    judged = now;
                    next_tick = (next_tick + interval).max(Instant::now());
                    restarted = false;
                    continue;
                }
                if silence.is_some_and(|at| now >= at) {
                    let st = self.lock();
                    sites.extend(st.detector.silent_between(&st.evidence, judged, now));
                    judged = now;
                    last_silence = Some(now);
                }
            }
            if sites.is_empty() {
                continue;
            }
            self.metrics().prompt_rounds.inc();
            if self.detect_prompt(&sites) && !restarted {
                next_tick = Instant::now() + interval;
                restarted = true;
            }
        }
    }

    /// The orchestrator's probes of every site and hybrid frontend, every
    /// interval, and of the sites asked for in between (see the module
    /// doc), until `stop`. A prompt probe covers only the sites named and
    /// leaves the regular schedule as it is.
    pub async fn probe_loop(self: Arc<Self>, stop: CancellationToken) {
        let interval = self.cfg.detection.interval;
        let mut next = Instant::now();
        let mut last_prompt: Option<Instant> = None;
        loop {
            let regular = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(next) => true,
                _ = self.cadence.probe.notified() => false,
            };
            if regular {
                let started = Instant::now();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.probe_sites(None) => {}
                }
                next = started + interval;
                continue;
            }
            if let Some(l) = last_prompt {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(l + interval / 4) => {}
                }
            }
            last_prompt = Some(Instant::now());
            let sites = take(&self.cadence.to_probe);
            if sites.is_empty() {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.probe_sites(Some(&sites)) => {}
            }
        }
    }
}
