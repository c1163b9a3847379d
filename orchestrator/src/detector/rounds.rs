//! A detection round: regular (whole or in parts, isolation judged
//! first), prompt (it may only start a down streak); the hysteresis
//! (fall, rise, hold-down) it counts on each [`SiteTrack`]; and what a
//! round concludes ([`Verdict`], [`Transition`], [`Round`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use warden_config::Detection;

use super::{Detector, Evidence};

/// What one round concluded about one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Down this round (rule 1 or 2 of DESIGN §3).
    Down(String),
    /// Agent fresh, local checks pass, outside views agree it serves.
    Healthy,
    /// External probes fail while the local view and the peers say healthy.
    PathFault(String),
    /// Agent stale while the probes succeed.
    DeadAgent(String),
    /// The agent says a critical check fails but nobody outside agrees.
    Unconfirmed(String),
    /// Not enough evidence either way.
    Unknown(String),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Down(_) => "down",
            Verdict::Healthy => "healthy",
            Verdict::PathFault(_) => "path_fault",
            Verdict::DeadAgent(_) => "dead_agent",
            Verdict::Unconfirmed(_) => "unconfirmed",
            Verdict::Unknown(_) => "unknown",
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Down(r)
            | Verdict::PathFault(r)
            | Verdict::DeadAgent(r)
            | Verdict::Unconfirmed(r)
            | Verdict::Unknown(r) => r,
        }
    }
}

/// Hysteresis state of one site.
#[derive(Debug, Clone, Default)]
pub struct SiteTrack {
    pub down_rounds: u32,
    pub healthy_rounds: u32,
    pub healthy_since: Option<Instant>,
    /// Start of the current run of rounds that could not judge the site,
    /// while it was healthy: that time does not count towards the hold-down.
    pub unjudged_since: Option<Instant>,
    pub confirmed_down: bool,
    /// First down round of the current incident (for RTO).
    pub first_failing: Option<Instant>,
    pub last: Option<Verdict>,
    /// When a prompt round last started a down streak: a regular round
    /// less than one interval later does not count its next down round
    /// (a streak's rounds stay one interval apart for each site, whatever
    /// other sites' prompt rounds did to the shared tick).
    pub prompted_at: Option<Instant>,
}

impl SiteTrack {
    /// Health time earned towards the hold-down: since `healthy_since`,
    /// minus the rounds that could not judge the site (paused, DESIGN §3).
    pub fn healthy_for(&self, now: Instant) -> Option<Duration> {
        let since = self.healthy_since?;
        let until = self.unjudged_since.unwrap_or(now);
        Some(until.saturating_duration_since(since))
    }
}

/// A change worth an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `fall` consecutive down rounds reached.
    ConfirmedDown,
    /// `rise` healthy rounds and `hold_down` of unbroken health after a confirmed disaster.
    Recovered,
    /// The verdict's kind changed (e.g. healthy → path_fault).
    Changed,
}

/// One site's result for a round.
#[derive(Debug, Clone)]
pub struct SiteRound {
    pub site: String,
    pub verdict: Verdict,
    pub transitions: Vec<Transition>,
    /// Whether the round counted for this site (a prompt round counts only
    /// the first down round of a streak; an isolated round counts nothing).
    pub counted: bool,
}

/// The result of a round.
#[derive(Debug, Clone)]
pub struct Round {
    /// The orchestrator reaches no site and hears from no agent: it decides nothing.
    pub isolated: bool,
    /// `Some(new)` when isolation started or ended this round.
    pub isolation_changed: Option<bool>,
    pub sites: Vec<SiteRound>,
}

impl Detector {
    /// A *prompt* round (DESIGN §3): evaluated as soon as bad evidence
    /// arrives instead of at the next tick, it may only **start** a down
    /// streak — a site judged down that has no down round yet gets its
    /// first one now; every other site and verdict is left for the regular
    /// rounds, which keep one interval apart (the caller restarts its tick
    /// from a prompt round that counted, so a streak's next rounds come one
    /// interval after its first). `fall` down rounds therefore still span
    /// `(fall - 1) × interval` of failing evidence; only the wait for the
    /// first tick is gone.
    /// Only `sites` (those the bad evidence is about) are evaluated.
    pub fn prompt_round<'a>(
        &mut self,
        ev: &Evidence,
        now: Instant,
        sites: impl IntoIterator<Item = &'a String>,
    ) -> Round {
        let names: Vec<String> = sites
            .into_iter()
            .filter(|s| self.sites.contains_key(*s))
            .cloned()
            .collect();
        self.round_of(ev, now, Some(names))
    }

    /// Run one detection round at `now`.
    pub fn round(&mut self, ev: &Evidence, now: Instant) -> Round {
        self.round_of(ev, now, None)
    }

    fn round_of(&mut self, ev: &Evidence, now: Instant, prompt: Option<Vec<String>>) -> Round {
        if let Some(names) = prompt {
            // Isolation is judged by the regular rounds only.
            let mut sites = Vec::new();
            for name in names {
                let verdict = self.verdict(ev, &name, now);
                let starts = !self.isolated
                    && matches!(verdict, Verdict::Down(_))
                    && self.wants_prompt(&name);
                let transitions = if starts {
                    if let Some(t) = self.sites.get_mut(&name) {
                        t.prompted_at = Some(now);
                    }
                    self.count(&name, &verdict, now)
                } else {
                    Vec::new()
                };
                sites.push(SiteRound {
                    site: name,
                    verdict,
                    transitions,
                    counted: starts,
                });
            }
            return Round {
                isolated: self.isolated,
                isolation_changed: None,
                sites,
            };
        }
        let (isolated, isolation_changed) = self.begin_round(ev, now);
        let names = self.site_names();
        let sites = self.round_part(ev, now, &names);
        Round {
            isolated,
            isolation_changed,
            sites,
        }
    }

    /// Every site judged, in order.
    pub fn site_names(&self) -> Arc<[String]> {
        Arc::clone(&self.names)
    }

    /// The start of a regular round: whether the orchestrator is isolated
    /// (no fresh agent and every external probe failing, or none) — then
    /// the round counts nothing — and whether that changed. The sites are
    /// then judged with [`Detector::round_part`], all at once
    /// ([`Detector::round`]) or in parts with other work between them.
    pub fn begin_round(&mut self, ev: &Evidence, now: Instant) -> (bool, Option<bool>) {
        let any_agent = self.sites.keys().any(|s| self.agent_fresh(ev, s, now));
        let any_probe_ok = self.sites.keys().any(|s| {
            ev.external.get(s).is_some_and(|(at, r)| {
                now.saturating_duration_since(*at) <= self.cfg.agent_timeout
                    && !r.is_empty()
                    && r.iter().all(|c| c.ok)
            })
        });
        let isolated = !self.agentless && !any_agent && !any_probe_ok;
        let isolation_changed = (isolated != self.isolated).then_some(isolated);
        self.isolated = isolated;
        (isolated, isolation_changed)
    }

    /// Judge and count `names` for the regular round begun by
    /// [`Detector::begin_round`] (isolated: judged, not counted — health
    /// cannot be judged from here). Every site's verdict first, then each
    /// counted on its track.
    pub fn round_part(&mut self, ev: &Evidence, now: Instant, names: &[String]) -> Vec<SiteRound> {
        let verdicts: Vec<Verdict> = names.iter().map(|n| self.verdict(ev, n, now)).collect();
        let isolated = self.isolated;
        let Detector { cfg, sites, .. } = self;
        names
            .iter()
            .zip(verdicts)
            .map(|(name, verdict)| {
                let track = if isolated { None } else { sites.get_mut(name) };
                // The streak a prompt round started less than one interval
                // ago: its next down round waits for a later regular round.
                let track = track.filter(|t| {
                    !(matches!(verdict, Verdict::Down(_))
                        && t.prompted_at.is_some_and(|p| now < p + cfg.interval))
                });
                let counted = track.is_some();
                let transitions = match track {
                    Some(t) => count_on(cfg, t, &verdict, now),
                    None => Vec::new(),
                };
                SiteRound {
                    site: name.clone(),
                    verdict,
                    transitions,
                    counted,
                }
            })
            .collect()
    }

    /// Count `verdict` as this round's for `site`: the hysteresis of DESIGN §3.
    fn count(&mut self, site: &str, verdict: &Verdict, now: Instant) -> Vec<Transition> {
        match self.sites.get_mut(site) {
            Some(t) => count_on(&self.cfg, t, verdict, now),
            None => Vec::new(),
        }
    }
}

/// Count `verdict` as this round's on track `t`: the hysteresis of DESIGN §3.
fn count_on(
    cfg: &Detection,
    t: &mut SiteTrack,
    verdict: &Verdict,
    now: Instant,
) -> Vec<Transition> {
    let mut transitions = Vec::new();
    let (fall, rise) = (cfg.fall, cfg.rise);
    if t.last.as_ref().map(|v| v.label()) != Some(verdict.label()) {
        transitions.push(Transition::Changed);
    }
    match verdict {
        Verdict::Down(_) => {
            t.down_rounds += 1;
            t.healthy_rounds = 0;
            t.healthy_since = None;
            t.unjudged_since = None;
            if t.first_failing.is_none() {
                t.first_failing = Some(now);
            }
            if !t.confirmed_down && t.down_rounds >= fall {
                t.confirmed_down = true;
                transitions.push(Transition::ConfirmedDown);
            }
        }
        Verdict::Healthy => {
            t.down_rounds = 0;
            t.healthy_rounds += 1;
            // Back from rounds that could not judge: the clock
            // resumes where it stopped.
            if let (Some(u), Some(h)) = (t.unjudged_since.take(), t.healthy_since) {
                t.healthy_since = Some(h + now.saturating_duration_since(u));
            }
            if t.healthy_since.is_none() {
                t.healthy_since = Some(now);
            }
            let held = t
                .healthy_since
                .is_some_and(|s| now.saturating_duration_since(s) >= cfg.hold_down);
            if t.confirmed_down && t.healthy_rounds >= rise && held {
                t.confirmed_down = false;
                t.first_failing = None;
                transitions.push(Transition::Recovered);
            }
            if !t.confirmed_down {
                t.first_failing = None;
            }
        }
        // Judged unwell by its own agent: recovery starts over.
        Verdict::Unconfirmed(_) => {
            t.down_rounds = 0;
            t.healthy_rounds = 0;
            t.healthy_since = None;
            t.unjudged_since = None;
        }
        // Cannot judge the site this round (DESIGN §3): a disaster
        // needs consecutive down rounds, so that count starts over;
        // recovery pauses — healthy rounds and the hold-down time
        // already earned stay, and the clock stops until a round
        // judges the site again.
        Verdict::PathFault(_) | Verdict::DeadAgent(_) | Verdict::Unknown(_) => {
            t.down_rounds = 0;
            if t.healthy_since.is_some() && t.unjudged_since.is_none() {
                t.unjudged_since = Some(now);
            }
        }
    }
    t.last = Some(verdict.clone());
    transitions
}
