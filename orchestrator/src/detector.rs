//! Detection (DESIGN §3): from the latest evidence per site and vantage point
//! to a verdict per round, hysteresis (fall/rise/hold_down) and the guards
//! (orchestrator isolation, path faults, dead agents).
//!
//! Pure logic over [`Evidence`] and a `now`: no I/O, no clock of its own, so
//! every rule is unit-tested on paused tokio time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use foldhash::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use warden_config::Detection;
use warden_proto::agent::{AgentReport, CheckResult};

/// Latest evidence, stamped with the time the orchestrator received it.
#[derive(Debug, Default, Clone)]
pub struct Evidence {
    /// Last report of each site's agent: private so every insert keeps `probed_by` in step.
    /// (Hash maps: looked up by key only, on every report and round;
    /// foldhash, seeded per process like the standard SipHash, at a
    /// fraction of its cost.)
    reports: HashMap<String, (Instant, AgentReport)>,
    /// The orchestrator's own probes of each site's endpoints.
    pub external: BTreeMap<String, (Instant, Vec<CheckResult>)>,
    /// Which agents have reported probes of a site (probed site → reporters),
    /// so a round costs O(peer views), not O(sites²).
    probed_by: HashMap<String, BTreeSet<String>>,
}

impl Evidence {
    /// Record a report received at `at`.
    pub fn insert_report(&mut self, at: Instant, report: AgentReport) {
        // Replace in place: no key allocation for a site already known.
        match self.reports.get_mut(&report.site) {
            Some(slot) => {
                // `probed_by` only grows, so it names this agent for every
                // peer of its last report already: the same peers again
                // (the usual case) need no look there.
                let same_peers = slot.1.peers.len() == report.peers.len()
                    && slot
                        .1
                        .peers
                        .iter()
                        .zip(&report.peers)
                        .all(|(a, b)| a.site == b.site);
                if !same_peers {
                    Self::note_probes(&mut self.probed_by, &report);
                }
                *slot = (at, report);
            }
            None => {
                Self::note_probes(&mut self.probed_by, &report);
                self.reports.insert(report.site.clone(), (at, report));
            }
        }
    }

    /// Record in `probed_by` that `report`'s agent probes each of its peers.
    fn note_probes(probed_by: &mut HashMap<String, BTreeSet<String>>, report: &AgentReport) {
        for p in &report.peers {
            if !probed_by
                .get(&p.site)
                .is_some_and(|s| s.contains(&report.site))
            {
                probed_by
                    .entry(p.site.clone())
                    .or_default()
                    .insert(report.site.clone());
            }
        }
    }

    /// The last report of `site` and when it was received.
    pub fn report(&self, site: &str) -> Option<&(Instant, AgentReport)> {
        self.reports.get(site)
    }

    /// Whether any agent has reported since start.
    pub fn has_reports(&self) -> bool {
        !self.reports.is_empty()
    }
}

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

/// The detector: per-site hysteresis across rounds.
#[derive(Debug)]
pub struct Detector {
    cfg: Detection,
    sites: HashMap<String, SiteTrack>,
    /// The keys of `sites`, in order (a round goes over them in parts).
    names: Arc<[String]>,
    isolated: bool,
    /// The targets have no agent of their own (the frontends of `hybrid`
    /// groups): rule 2 of DESIGN §3 is the only way down, a majority of the
    /// outside vantage points reaching the target is healthy, and isolation
    /// is left to the caller (it is judged on the sites).
    agentless: bool,
    /// Per site: its agent's report interval (see
    /// [`Detector::with_report_intervals`]: when an agent is *silent*).
    /// (A hash map: looked up for overdue agents several times a round.)
    report_intervals: HashMap<String, Duration>,
    /// The shortest report interval of any site, and whether every site
    /// has that one: then no scan or judgment looks a site's up (with
    /// every report late, each scan would otherwise look up all of them).
    shortest_interval: Duration,
    uniform_interval: bool,
}

impl Detector {
    pub fn new(cfg: Detection, sites: impl IntoIterator<Item = String>) -> Self {
        let names: BTreeSet<String> = sites.into_iter().collect();
        Detector {
            shortest_interval: cfg.interval,
            uniform_interval: true,
            cfg,
            sites: names
                .iter()
                .map(|s| (s.clone(), SiteTrack::default()))
                .collect(),
            names: names.into_iter().collect(),
            isolated: false,
            agentless: false,
            report_intervals: HashMap::default(),
        }
    }

    /// The sites' report intervals. An agent whose last report is one and a
    /// half of its intervals old is *silent*: a silent site that every
    /// outside vantage point sees failing is down for the round (the whole
    /// site is gone: no need to wait for `agent_timeout`). Its reports come
    /// on a fixed tick (a dead peer's probe never delays them), so half an
    /// interval of slack tells a lost report from a late one; a late report
    /// alone is never a disaster, since every outside view must fail too.
    /// A runbook asks for more before it counts an agent unreachable: two
    /// intervals ([`Detector::agent_heard`]). Without an entry: the
    /// detection interval.
    pub fn with_report_intervals(
        mut self,
        intervals: impl IntoIterator<Item = (String, Duration)>,
    ) -> Self {
        self.report_intervals = intervals.into_iter().collect();
        // Every site's: its own, or the detection interval without one.
        let all = || {
            self.names.iter().map(|s| {
                self.report_intervals
                    .get(s)
                    .copied()
                    .unwrap_or(self.cfg.interval)
            })
        };
        self.shortest_interval = all().min().unwrap_or(self.cfg.interval);
        self.uniform_interval = all().all(|i| i == self.shortest_interval);
        self
    }

    fn report_interval(&self, site: &str) -> Duration {
        if self.uniform_interval {
            return self.shortest_interval;
        }
        self.report_intervals
            .get(site)
            .copied()
            .unwrap_or(self.cfg.interval)
    }

    fn silent_after(&self, site: &str) -> Duration {
        let i = self.report_interval(site);
        i.saturating_add(i / 2).min(self.cfg.agent_timeout)
    }

    /// When the agent of `reporter` (a site probing the judged one) is
    /// silent: one and a half of its report intervals, as for a judged site
    /// (a detector without agents looks its reporters' intervals up: they
    /// are not among its targets).
    fn reporter_silent_after(&self, reporter: &str) -> Duration {
        if !self.agentless {
            return self.silent_after(reporter);
        }
        let i = self
            .report_intervals
            .get(reporter)
            .copied()
            .unwrap_or(self.cfg.interval);
        i.saturating_add(i / 2).min(self.cfg.agent_timeout)
    }

    /// A detector for targets without agents (see the `agentless` field):
    /// evidence is the orchestrator's probes (`external`) and the agents'
    /// peer probes naming the target.
    pub fn agentless(cfg: Detection, targets: impl IntoIterator<Item = String>) -> Self {
        Detector {
            agentless: true,
            ..Detector::new(cfg, targets)
        }
    }

    /// Whether `site` is confirmed down now (`fall` down rounds, not yet
    /// recovered).
    pub fn confirmed_down(&self, site: &str) -> bool {
        self.track(site).is_some_and(|t| t.confirmed_down)
    }

    pub fn track(&self, site: &str) -> Option<&SiteTrack> {
        self.sites.get(site)
    }

    pub fn is_isolated(&self) -> bool {
        self.isolated
    }

    /// Whether the agent of `site` reported within `agent_timeout`.
    pub fn agent_fresh(&self, ev: &Evidence, site: &str, now: Instant) -> bool {
        ev.reports
            .get(site)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) <= self.cfg.agent_timeout)
    }

    /// Whether the agent of `site` reported within two of its report
    /// intervals: what a runbook asks before it sends a command it will
    /// wait for.
    pub fn agent_heard(&self, ev: &Evidence, site: &str, now: Instant) -> bool {
        let within = self
            .report_interval(site)
            .saturating_mul(2)
            .min(self.cfg.agent_timeout);
        ev.reports
            .get(site)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) <= within)
    }

    /// Recovered: `rise` healthy rounds and `hold_down` of unbroken health, and not confirmed down.
    pub fn is_recovered(&self, site: &str, now: Instant) -> bool {
        self.sites.get(site).is_some_and(|t| {
            !t.confirmed_down
                && t.healthy_rounds >= self.cfg.rise
                && t.healthy_for(now).is_some_and(|h| h >= self.cfg.hold_down)
        })
    }

    /// How long until `site` may count as recovered (for status output).
    pub fn hold_down_left(&self, site: &str, now: Instant) -> Option<Duration> {
        let t = self.sites.get(site)?;
        Some(self.cfg.hold_down.saturating_sub(t.healthy_for(now)?))
    }

    /// Whether fresh bad evidence about `site` is worth a prompt round: it
    /// is not in a down streak already (a streak's later rounds keep the
    /// interval; see [`Detector::prompt_round`]).
    pub fn wants_prompt(&self, site: &str) -> bool {
        self.sites
            .get(site)
            .is_some_and(|t| t.down_rounds == 0 && !t.confirmed_down)
    }

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

#[path = "detector_judge.rs"]
mod judge;

#[cfg(test)]
#[path = "detector_tests/mod.rs"]
mod tests;
