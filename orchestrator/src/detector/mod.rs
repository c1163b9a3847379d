//! Detection (DESIGN §3): from the latest evidence per site and vantage point
//! to a verdict per round, hysteresis (fall/rise/hold_down) and the guards
//! (orchestrator isolation, path faults, dead agents).
//!
//! Pure logic over [`Evidence`] and a `now`: no I/O, no clock of its own, so
//! every rule is unit-tested on paused tokio time.
//!
//! This module owns the [`Evidence`] and the [`Detector`] (its settings,
//! per-site intervals and what it answers between rounds); `rounds.rs`
//! the rounds and the hysteresis they count, with what a round concludes;
//! `silence.rs` when an agent turns silent; `judge.rs` one site's verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use foldhash::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use warden_config::Detection;
use warden_proto::agent::{AgentReport, CheckResult};

mod judge;
mod rounds;
mod silence;

pub use rounds::{Round, SiteRound, SiteTrack, Transition, Verdict};

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
}

#[cfg(test)]
mod tests;
