//! The detection cadence: when rounds and the orchestrator's own probes run.
//!
//! Both run every `detection.interval`, and both can be pulled forward by
//! bad evidence (DESIGN §3, "prompt rounds"):
//! - a report whose critical check fails asks for a **prompt probe** of the
//!   site, so the outside view that can confirm it arrives at once instead
//!   of at the next probe tick;
//! - a failing probe (the orchestrator's, or a peer's in a report) asks for
//!   a **prompt round**, and so does an agent turning silent (the loop
//!   wakes at the moment its last report is two report intervals old).
//!
//! A prompt round only starts down streaks ([`Detector::prompt_round`]);
//! when it did, the tick restarts from it, so the streak's later rounds
//! still come one interval apart. Triggers are for sites not already in a
//! streak, and a prompt probe waits at least a quarter interval after the
//! previous probe, so a flapping site cannot make either run hot.
//!
//! [`Detector::prompt_round`]: crate::detector::Detector::prompt_round

use super::*;

/// The wake-ups of the detection and probe loops.
#[derive(Default)]
pub(crate) struct Cadence {
    round: tokio::sync::Notify,
    probe: tokio::sync::Notify,
}

impl Shared {
    /// Bad evidence about `site` that a round could count now: wake the
    /// detection loop (state lock held).
    pub(crate) fn prompt_round_locked(&self, st: &State, site: &str) {
        if st.detector.wants_prompt(site) || st.fe_detector.wants_prompt(site) {
            self.cadence.round.notify_one();
        }
    }

    /// `site`'s agent says a critical check fails: probe it from here now
    /// (state lock held).
    pub(crate) fn prompt_probe_locked(&self, st: &State, site: &str) {
        if st.detector.wants_prompt(site) {
            self.cadence.probe.notify_one();
        }
    }

    /// Detection rounds every interval, and prompt rounds in between (see
    /// the module doc), until `stop`.
    pub async fn detection_loop(self: Arc<Self>, stop: CancellationToken) {
        let interval = self.cfg.detection.interval;
        let mut next_tick = Instant::now();
        loop {
            let silence = {
                let st = self.lock();
                st.detector.next_silence(&st.evidence, Instant::now())
            };
            let wake = silence.map_or(next_tick, |s| s.min(next_tick));
            let regular = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(wake) => wake == next_tick,
                _ = self.cadence.round.notified() => false,
            };
            if regular {
                self.detect_round();
                next_tick = (next_tick + interval).max(Instant::now());
            } else if self.detect_prompt() {
                next_tick = Instant::now() + interval;
            }
        }
    }

    /// The orchestrator's probes of every site and hybrid frontend, every
    /// interval and on request (see the module doc), until `stop`.
    pub async fn probe_loop(self: Arc<Self>, stop: CancellationToken) {
        let interval = self.cfg.detection.interval;
        let mut next = Instant::now();
        let mut last: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
                _ = self.cadence.probe.notified() => {
                    if let Some(l) = last {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep_until(l + interval / 4) => {}
                        }
                    }
                }
            }
            let started = Instant::now();
            last = Some(started);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.probe_sites() => {}
            }
            next = started + interval;
        }
    }
}
