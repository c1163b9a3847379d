//! When an agent turns *silent*: the overdue agents' deadlines, the next
//! one to fall silent, and those that fell silent together (one prompt
//! round for all).

use std::time::Duration;

use tokio::time::Instant;

use super::{Detector, Evidence};

impl Detector {
    /// The shortest report interval of any site (the scan of
    /// [`Detector::next_silence`] skips every agent heard within it).
    pub fn shortest_report_interval(&self) -> Duration {
        self.shortest_interval
    }

    /// When the next agent turns *silent* (its last report one and a half
    /// report intervals old) after `after`, unless it reports first: only
    /// agents already *overdue* — their last report older than their
    /// interval and an eighth at `now`, so a report is missing, not just
    /// late by jitter — and not in a down streak. A prompt round at that
    /// moment can start the streak of a whole-site loss at once. In steady
    /// state no agent is overdue, and the scan compares only times for the
    /// others (it runs several times a round: call it at least every
    /// quarter of the shortest report interval). `after` is when silences
    /// were last judged: a deadline passed since then is returned too (it
    /// is due now).
    pub fn next_silence(&self, ev: &Evidence, after: Instant, now: Instant) -> Option<Instant> {
        self.overdue(ev, now)
            .filter(|(deadline, _)| *deadline > after)
            .fold(None, |next: Option<Instant>, (deadline, site)| {
                // The time first: the site look-up only for an earlier one.
                if next.is_none_or(|n| deadline < n) && self.wants_prompt(site) {
                    Some(deadline)
                } else {
                    next
                }
            })
    }

    /// The agents that turned silent after `after` and by `now` (see
    /// [`Detector::next_silence`]), for one prompt round: however many
    /// agents fall silent at once (a site with all its agents lost, or
    /// every report delayed by an overloaded path), they cost one scan and
    /// one round, not one of each per agent.
    pub fn silent_between(&self, ev: &Evidence, after: Instant, now: Instant) -> Vec<String> {
        self.overdue(ev, now)
            .filter(|(deadline, site)| {
                *deadline > after && *deadline <= now && self.wants_prompt(site)
            })
            .map(|(_, site)| site.clone())
            .collect()
    }

    /// Each overdue agent's site with its silence deadline (time
    /// comparisons only, no look-up among the sites); none for a detector
    /// without agents.
    fn overdue<'a>(
        &'a self,
        ev: &'a Evidence,
        now: Instant,
    ) -> impl Iterator<Item = (Instant, &'a String)> + 'a {
        let overdue = |i: Duration| i.saturating_add(i / 8);
        let skip = overdue(self.shortest_report_interval());
        let reports = (!self.agentless).then(|| ev.reports.iter());
        reports
            .into_iter()
            .flatten()
            .filter_map(move |(site, (at, _))| {
                let age = now.saturating_duration_since(*at);
                if age <= skip || age <= overdue(self.report_interval(site)) {
                    return None;
                }
                Some((
                    *at + self.silent_after(site) + Duration::from_millis(1),
                    site,
                ))
            })
    }
}
