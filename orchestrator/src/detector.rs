//! Detection (DESIGN §3): from the latest evidence per site and vantage point
//! to a verdict per round, hysteresis (fall/rise/hold_down) and the guards
//! (orchestrator isolation, path faults, dead agents).
//!
//! Pure logic over [`Evidence`] and a `now`: no I/O, no clock of its own, so
//! every rule is unit-tested on paused tokio time.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;
use warden_config::Detection;
use warden_proto::agent::{AgentReport, CheckResult};

use crate::model::EvidenceRow;

/// Latest evidence, stamped with the time the orchestrator received it.
#[derive(Debug, Default, Clone)]
pub struct Evidence {
    /// Last report of each site's agent: private so every insert keeps `probed_by` in step.
    /// (Hash maps: looked up by key only, on every report and round.)
    reports: HashMap<String, (Instant, AgentReport)>,
    /// The orchestrator's own probes of each site's endpoints.
    pub external: BTreeMap<String, (Instant, Vec<CheckResult>)>,
    /// Which agents have reported probes of a site (probed site → reporters),
    /// so a round costs O(peer views), not O(sites²).
    probed_by: HashMap<String, std::collections::BTreeSet<String>>,
}

impl Evidence {
    /// Record a report received at `at`.
    pub fn insert_report(&mut self, at: Instant, report: AgentReport) {
        for p in &report.peers {
            if !self
                .probed_by
                .get(&p.site)
                .is_some_and(|s| s.contains(&report.site))
            {
                self.probed_by
                    .entry(p.site.clone())
                    .or_default()
                    .insert(report.site.clone());
            }
        }
        // Replace in place: no key allocation for a site already known.
        match self.reports.get_mut(&report.site) {
            Some(slot) => *slot = (at, report),
            None => {
                self.reports.insert(report.site.clone(), (at, report));
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
    pub evidence: Vec<EvidenceRow>,
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
    sites: BTreeMap<String, SiteTrack>,
    isolated: bool,
    /// The targets have no agent of their own (the frontends of `hybrid`
    /// groups): rule 2 of DESIGN §3 is the only way down, a majority of the
    /// outside vantage points reaching the target is healthy, and isolation
    /// is left to the caller (it is judged on the sites).
    agentless: bool,
    /// Per site: how long without a report makes its agent *silent* (two of
    /// its report intervals; see [`Detector::with_report_intervals`]).
    silence: BTreeMap<String, Duration>,
}

fn age_ms(now: Instant, at: Instant) -> u64 {
    now.saturating_duration_since(at).as_millis() as u64
}

fn summarize(results: &[CheckResult]) -> String {
    let bad: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{}: {}", r.name, r.detail))
        .collect();
    if bad.is_empty() {
        format!("{} ok", results.len())
    } else {
        bad.join("; ")
    }
}

impl Detector {
    pub fn new(cfg: Detection, sites: impl IntoIterator<Item = String>) -> Self {
        Detector {
            cfg,
            sites: sites
                .into_iter()
                .map(|s| (s, SiteTrack::default()))
                .collect(),
            isolated: false,
            agentless: false,
            silence: BTreeMap::new(),
        }
    }

    /// The sites' report intervals: an agent that has missed two reports is
    /// *silent*, and a silent site that every outside vantage point sees
    /// failing is down for the round (the whole site is gone: no need to
    /// wait for `agent_timeout`). Without an entry: the detection interval.
    pub fn with_report_intervals(
        mut self,
        intervals: impl IntoIterator<Item = (String, Duration)>,
    ) -> Self {
        self.silence = intervals
            .into_iter()
            .map(|(s, d)| (s, d.saturating_mul(2)))
            .collect();
        self
    }

    fn silent_after(&self, site: &str) -> Duration {
        self.silence
            .get(site)
            .copied()
            .unwrap_or(self.cfg.interval.saturating_mul(2))
            .min(self.cfg.agent_timeout)
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
    /// intervals (not silent): what a runbook asks before it sends a command
    /// it will wait for.
    pub fn agent_heard(&self, ev: &Evidence, site: &str, now: Instant) -> bool {
        ev.reports
            .get(site)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) <= self.silent_after(site))
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

    /// Evaluate one site without changing state; returns the verdict and the evidence table.
    pub fn evaluate(&self, ev: &Evidence, site: &str, now: Instant) -> (Verdict, Vec<EvidenceRow>) {
        let fresh_window = self.cfg.agent_timeout;
        let mut rows = Vec::new();
        let agent = ev.reports.get(site);
        let agent_fresh =
            agent.is_some_and(|(at, _)| now.saturating_duration_since(*at) <= fresh_window);
        let silent = !self.agentless
            && agent.is_some_and(|(at, _)| {
                now.saturating_duration_since(*at) > self.silent_after(site)
            });
        // Local view and heartbeat.
        let mut local_failing = false;
        match agent {
            Some((at, rep)) => {
                rows.push(EvidenceRow {
                    site: site.into(),
                    vantage: "heartbeat".into(),
                    status: match (agent_fresh, silent) {
                        (true, false) => "ok",
                        (true, true) => "silent",
                        (false, _) => "stale",
                    }
                    .into(),
                    detail: format!("last report seq {}", rep.seq),
                    age_ms: Some(age_ms(now, *at)),
                });
                if agent_fresh {
                    local_failing = rep.checks.iter().any(|c| c.critical && !c.ok);
                    rows.push(EvidenceRow {
                        site: site.into(),
                        vantage: "agent".into(),
                        status: if local_failing { "failing" } else { "ok" }.into(),
                        detail: summarize(&rep.checks),
                        age_ms: Some(age_ms(now, *at)),
                    });
                }
            }
            None if self.agentless => {}
            None => rows.push(EvidenceRow {
                site: site.into(),
                vantage: "heartbeat".into(),
                status: "none".into(),
                detail: "no report received yet".into(),
                age_ms: None,
            }),
        }
        // External view.
        let external = match ev.external.get(site) {
            Some((at, results))
                if now.saturating_duration_since(*at) <= fresh_window && !results.is_empty() =>
            {
                let failing = results.iter().any(|r| !r.ok);
                rows.push(EvidenceRow {
                    site: site.into(),
                    vantage: "orchestrator".into(),
                    status: if failing { "failing" } else { "ok" }.into(),
                    detail: summarize(results),
                    age_ms: Some(age_ms(now, *at)),
                });
                Some(failing)
            }
            Some((at, _)) => {
                rows.push(EvidenceRow {
                    site: site.into(),
                    vantage: "orchestrator".into(),
                    status: "stale".into(),
                    detail: "no recent probe result".into(),
                    age_ms: Some(age_ms(now, *at)),
                });
                None
            }
            None => None,
        };
        // Peer views: other sites' fresh agents that probed this site.
        let mut peers: Vec<bool> = Vec::new();
        for peer in ev.probed_by.get(site).into_iter().flatten() {
            let Some((at, rep)) = ev.reports.get(peer) else {
                continue;
            };
            if peer == site || now.saturating_duration_since(*at) > fresh_window {
                continue;
            }
            if let Some(p) = rep.peers.iter().find(|p| p.site == site) {
                let failing = p.failing();
                peers.push(failing);
                rows.push(EvidenceRow {
                    site: site.into(),
                    vantage: format!("peer:{peer}"),
                    status: if failing { "failing" } else { "ok" }.into(),
                    detail: summarize(&p.results),
                    age_ms: Some(age_ms(now, *at)),
                });
            }
        }
        let outside: Vec<bool> = external.into_iter().chain(peers.iter().copied()).collect();
        let outside_failing = outside.iter().filter(|f| **f).count();
        let answered = outside.len();
        let peers_ok = !peers.is_empty() && peers.iter().all(|f| !f);

        let verdict = if agent_fresh && silent && answered > 0 && outside_failing == answered {
            // The whole site is gone: its agent missed two reports and no
            // outside vantage point reaches its service.
            Verdict::Down(format!(
                "agent silent (no report for {} ms) and all {answered} outside vantage points see the service failing",
                agent.map(|(at, _)| age_ms(now, *at)).unwrap_or(0)
            ))
        } else if agent_fresh {
            if local_failing {
                if outside_failing >= 1 {
                    Verdict::Down(format!("critical check failing locally, confirmed by {outside_failing} of {answered} outside vantage points"))
                } else {
                    Verdict::Unconfirmed(format!("critical check failing locally but {answered} outside vantage points see the service answer"))
                }
            } else if external == Some(true) && (peers_ok || peers.is_empty()) {
                Verdict::PathFault(
                    "orchestrator probes fail while the site's agent (and peers) say healthy"
                        .into(),
                )
            } else if outside_failing * 2 > answered {
                Verdict::Unconfirmed(
                    "outside vantage points see failures while local checks pass".into(),
                )
            } else {
                Verdict::Healthy
            }
        } else if self.agentless && agent.is_none() {
            if answered == 0 {
                Verdict::Unknown("no vantage point answered".into())
            } else if outside_failing * 2 > answered {
                Verdict::Down(format!(
                    "{outside_failing} of {answered} vantage points cannot reach it"
                ))
            } else if external == Some(true) {
                Verdict::PathFault(format!(
                    "orchestrator probes fail but {} of {answered} vantage points reach it",
                    answered - outside_failing
                ))
            } else {
                Verdict::Healthy
            }
        } else if answered == 0 {
            Verdict::Unknown("agent stale and no outside vantage point answered".into())
        } else if outside_failing * 2 > answered {
            Verdict::Down(format!("agent stale and {outside_failing} of {answered} outside vantage points see the service failing"))
        } else if external == Some(true) && peers_ok {
            Verdict::PathFault(
                "agent unreachable and orchestrator probes fail, but peers reach the service"
                    .into(),
            )
        } else if agent.is_none() {
            // Nothing was ever heard from it (the orchestrator just started,
            // or the agent never did): say that, not that an agent died.
            Verdict::Unknown(format!(
                "no report from its agent yet; {} of {answered} outside vantage points reach the service",
                answered - outside_failing
            ))
        } else {
            Verdict::DeadAgent(format!(
                "agent stale while {} of {answered} outside vantage points reach the service",
                answered - outside_failing
            ))
        };
        (verdict, rows)
    }

    /// Run one detection round at `now`.
    pub fn round(&mut self, ev: &Evidence, now: Instant) -> Round {
        let names: Vec<String> = self.sites.keys().cloned().collect();
        // Isolation: no fresh agent and every external probe failing (or none).
        let any_agent = names.iter().any(|s| self.agent_fresh(ev, s, now));
        let any_probe_ok = names.iter().any(|s| {
            ev.external.get(s).is_some_and(|(at, r)| {
                now.saturating_duration_since(*at) <= self.cfg.agent_timeout
                    && !r.is_empty()
                    && r.iter().all(|c| c.ok)
            })
        });
        let isolated = !self.agentless && !any_agent && !any_probe_ok;
        let isolation_changed = (isolated != self.isolated).then_some(isolated);
        self.isolated = isolated;

        let mut sites = Vec::new();
        for name in names {
            let (verdict, evidence) = self.evaluate(ev, &name, now);
            let mut transitions = Vec::new();
            if isolated {
                // Decide nothing: counters frozen; health cannot be judged from here.
                sites.push(SiteRound {
                    site: name,
                    verdict,
                    transitions,
                    evidence,
                });
                continue;
            }
            let (fall, rise) = (self.cfg.fall, self.cfg.rise);
            let t = self.sites.get_mut(&name).expect("site tracked");
            if t.last.as_ref().map(|v| v.label()) != Some(verdict.label()) {
                transitions.push(Transition::Changed);
            }
            match &verdict {
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
                        .is_some_and(|s| now.saturating_duration_since(s) >= self.cfg.hold_down);
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
            sites.push(SiteRound {
                site: name,
                verdict,
                transitions,
                evidence,
            });
        }
        Round {
            isolated,
            isolation_changed,
            sites,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_proto::agent::PeerProbe;

    fn cfg() -> Detection {
        Detection {
            interval: Duration::from_millis(250),
            fall: 3,
            rise: 2,
            hold_down: Duration::from_secs(5),
            agent_timeout: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(200),
            max_failovers: 2,
            failover_window: Duration::from_secs(3600),
        }
    }

    fn check(ok: bool) -> CheckResult {
        CheckResult {
            name: "web".into(),
            ok,
            critical: true,
            detail: if ok {
                "status 200"
            } else {
                "connection refused"
            }
            .into(),
            elapsed_ms: 1,
        }
    }

    fn report(site: &str, local_ok: bool, peers: &[(&str, bool)]) -> AgentReport {
        AgentReport {
            site: site.into(),
            seq: 1,
            started_unix_ms: 0,
            boot: String::new(),
            checks: vec![check(local_ok)],
            peers: peers
                .iter()
                .map(|(s, ok)| PeerProbe {
                    site: (*s).into(),
                    results: vec![check(*ok)],
                })
                .collect(),
            replication: vec![],
            outcomes: vec![],
            authority: vec![],
        }
    }

    struct World {
        ev: Evidence,
        det: Detector,
    }

    impl World {
        fn new() -> Self {
            World {
                ev: Evidence::default(),
                det: Detector::new(cfg(), ["a".to_string(), "b".to_string()]),
            }
        }
        /// a's agent (local ok?), b's agent sees a (peer ok?), orchestrator sees a and b.
        fn feed(
            &mut self,
            a_agent: Option<bool>,
            peer_sees_a: bool,
            ext_a: Option<bool>,
            ext_b: bool,
            b_agent: bool,
        ) {
            let now = Instant::now();
            if let Some(ok) = a_agent {
                self.ev.insert_report(now, report("a", ok, &[("b", true)]));
            }
            if b_agent {
                self.ev
                    .insert_report(now, report("b", true, &[("a", peer_sees_a)]));
            }
            if let Some(ok) = ext_a {
                self.ev.external.insert("a".into(), (now, vec![check(ok)]));
            }
            self.ev
                .external
                .insert("b".into(), (now, vec![check(ext_b)]));
        }
        fn round(&mut self) -> Round {
            self.det.round(&self.ev, Instant::now())
        }
        /// Three rounds of a failing locally and from outside: confirmed down.
        async fn confirm_a_down(&mut self) {
            for _ in 0..3 {
                self.feed(Some(false), false, Some(false), true, true);
                self.round();
                tick().await;
            }
            assert!(self.det.track("a").unwrap().confirmed_down);
        }
        fn a(r: &Round) -> &SiteRound {
            r.sites.iter().find(|s| s.site == "a").unwrap()
        }
    }

    async fn tick() {
        tokio::time::advance(Duration::from_millis(250)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn rule1_local_failure_confirmed_from_outside_after_fall_rounds() {
        let mut w = World::new();
        for i in 1..=3 {
            w.feed(Some(false), false, Some(false), true, true);
            let r = w.round();
            let a = World::a(&r);
            assert!(
                matches!(a.verdict, Verdict::Down(_)),
                "round {i}: {:?}",
                a.verdict
            );
            assert_eq!(
                a.transitions.contains(&Transition::ConfirmedDown),
                i == 3,
                "round {i}"
            );
            tick().await;
        }
        assert!(w.det.track("a").unwrap().confirmed_down);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_streak_restarts_the_fall_count() {
        let mut w = World::new();
        for _ in 0..2 {
            w.feed(Some(false), false, Some(false), true, true);
            w.round();
            tick().await;
        }
        w.feed(Some(true), true, Some(true), true, true);
        w.round();
        tick().await;
        for _ in 0..2 {
            w.feed(Some(false), false, Some(false), true, true);
            let r = w.round();
            assert!(!World::a(&r)
                .transitions
                .contains(&Transition::ConfirmedDown));
            tick().await;
        }
        assert!(!w.det.track("a").unwrap().confirmed_down);
    }

    #[tokio::test(start_paused = true)]
    async fn local_failure_nobody_outside_agrees_is_unconfirmed() {
        let mut w = World::new();
        for _ in 0..5 {
            w.feed(Some(false), true, Some(true), true, true);
            let r = w.round();
            assert!(matches!(World::a(&r).verdict, Verdict::Unconfirmed(_)));
            tick().await;
        }
        assert!(!w.det.track("a").unwrap().confirmed_down);
    }

    #[tokio::test(start_paused = true)]
    async fn rule2_stale_agent_and_majority_failing_is_down() {
        let mut w = World::new();
        w.feed(Some(true), true, Some(true), true, true);
        w.round();
        tokio::time::advance(Duration::from_secs(2)).await; // a's agent goes stale
        for _ in 0..3 {
            w.feed(None, false, Some(false), true, true);
            let r = w.round();
            assert!(
                matches!(World::a(&r).verdict, Verdict::Down(_)),
                "{:?}",
                World::a(&r).verdict
            );
            tick().await;
        }
        assert!(w.det.track("a").unwrap().confirmed_down);
    }

    #[tokio::test(start_paused = true)]
    async fn path_fault_orchestrator_cut_from_primary_never_confirms() {
        let mut w = World::new();
        w.feed(Some(true), true, Some(true), true, true);
        w.round();
        tokio::time::advance(Duration::from_secs(2)).await;
        // a's reports no longer arrive, our probes of a fail, but b reaches a.
        for _ in 0..10 {
            w.feed(None, true, Some(false), true, true);
            let r = w.round();
            assert!(
                matches!(World::a(&r).verdict, Verdict::PathFault(_)),
                "{:?}",
                World::a(&r).verdict
            );
            tick().await;
        }
        assert!(!w.det.track("a").unwrap().confirmed_down);
        // Variant: agent still reports (another path), probes fail, peers ok.
        let mut w = World::new();
        for _ in 0..10 {
            w.feed(Some(true), true, Some(false), true, true);
            let r = w.round();
            assert!(matches!(World::a(&r).verdict, Verdict::PathFault(_)));
            tick().await;
        }
        assert!(!w.det.track("a").unwrap().confirmed_down);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_site_nobody_reaches_is_confirmed_before_agent_timeout() {
        // interval 250 ms: silent after 500 ms; agent_timeout 1 s.
        let mut w = World::new();
        w.feed(Some(true), true, Some(true), true, true);
        w.round();
        let mut confirmed = None;
        for i in 1..=8 {
            tick().await;
            // The whole site is gone: no report, every outside view fails.
            w.feed(None, false, Some(false), true, true);
            let r = w.round();
            let a = World::a(&r);
            if i == 3 {
                assert!(
                    matches!(&a.verdict, Verdict::Down(why) if why.contains("silent")),
                    "two missed reports and nobody reaches it: {:?}",
                    a.verdict
                );
                assert!(a.evidence.iter().any(|e| e.status == "silent"));
            }
            if a.transitions.contains(&Transition::ConfirmedDown) {
                confirmed = Some(i);
                break;
            }
        }
        // Without the silence rule: first down at 1.25 s, confirmed at 1.75 s.
        assert_eq!(confirmed, Some(5), "confirmed 1.25 s after the loss");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_agent_on_a_reachable_site_is_never_down() {
        let mut w = World::new();
        w.feed(Some(true), true, Some(true), true, true);
        w.round();
        for _ in 0..12 {
            tick().await;
            // The agent is gone; the service answers everyone outside.
            w.feed(None, true, Some(true), true, true);
            let r = w.round();
            assert!(
                !matches!(World::a(&r).verdict, Verdict::Down(_)),
                "{:?}",
                World::a(&r).verdict
            );
        }
        assert!(!w.det.track("a").unwrap().confirmed_down);
    }

    #[tokio::test(start_paused = true)]
    async fn a_site_never_heard_from_is_unknown_not_a_dead_agent() {
        // The orchestrator's first probes land before the agent's first report.
        let mut w = World::new();
        w.feed(None, true, Some(true), true, true);
        let r = w.round();
        assert!(
            matches!(&World::a(&r).verdict, Verdict::Unknown(why) if why.contains("no report")),
            "{:?}",
            World::a(&r).verdict
        );
        // Once it has reported and then stops, it is a dead agent.
        tick().await;
        w.feed(Some(true), true, Some(true), true, true);
        w.round();
        tokio::time::advance(Duration::from_secs(2)).await;
        w.feed(None, true, Some(true), true, true);
        let r = w.round();
        assert!(matches!(World::a(&r).verdict, Verdict::DeadAgent(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn dead_agent_with_healthy_service_is_not_a_disaster() {
        let mut w = World::new();
        w.feed(Some(true), true, Some(true), true, true);
        w.round();
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 0..10 {
            w.feed(None, true, Some(true), true, true);
            let r = w.round();
            assert!(
                matches!(World::a(&r).verdict, Verdict::DeadAgent(_)),
                "{:?}",
                World::a(&r).verdict
            );
            tick().await;
        }
        assert!(!w.det.track("a").unwrap().confirmed_down);
    }

    #[tokio::test(start_paused = true)]
    async fn isolated_orchestrator_decides_nothing() {
        let mut w = World::new();
        for _ in 0..2 {
            w.feed(Some(false), false, Some(false), true, true);
            w.round();
            tick().await;
        }
        let down_before = w.det.track("a").unwrap().down_rounds;
        tokio::time::advance(Duration::from_secs(2)).await; // every agent stale
        let mut changed = vec![];
        for _ in 0..10 {
            // every probe fails, no agent heard
            let now = Instant::now();
            w.ev.external.insert("a".into(), (now, vec![check(false)]));
            w.ev.external.insert("b".into(), (now, vec![check(false)]));
            let r = w.round();
            assert!(r.isolated);
            changed.extend(r.isolation_changed);
            assert!(r.sites.iter().all(|s| s.transitions.is_empty()));
            tick().await;
        }
        assert_eq!(changed, vec![true]);
        assert_eq!(w.det.track("a").unwrap().down_rounds, down_before);
        assert!(!w.det.track("a").unwrap().confirmed_down);
        assert!(!w.det.track("b").unwrap().confirmed_down);
    }

    #[tokio::test(start_paused = true)]
    async fn recovery_needs_rise_rounds_and_unbroken_hold_down() {
        let mut w = World::new();
        w.confirm_a_down().await;
        // Healthy for 4 s, then one bad round, then healthy again: the hold-down restarts.
        for _ in 0..16 {
            w.feed(Some(true), true, Some(true), true, true);
            let r = w.round();
            assert!(!World::a(&r).transitions.contains(&Transition::Recovered));
            tick().await;
        }
        w.feed(Some(false), false, Some(false), true, true);
        w.round();
        tick().await;
        let start = Instant::now();
        let mut recovered_at = None;
        for _ in 0..30 {
            w.feed(Some(true), true, Some(true), true, true);
            let r = w.round();
            if World::a(&r).transitions.contains(&Transition::Recovered) {
                recovered_at = Some(Instant::now());
                break;
            }
            tick().await;
        }
        let at = recovered_at.expect("recovers after hold_down");
        assert!(at.duration_since(start) >= Duration::from_secs(5));
        assert!(at.duration_since(start) < Duration::from_millis(5500));
        assert!(w.det.is_recovered("a", Instant::now()));
    }

    /// Issue 15: a returning primary behind a lossy path (every other of
    /// our probes lost: path-fault rounds between healthy ones) still
    /// recovers after `rise` healthy rounds and the hold-down — those rounds
    /// pause recovery, they do not restart it; a round its own agent calls
    /// unwell (`unconfirmed`) does restart it. And the same alternation of
    /// down and path-fault rounds never confirms a disaster.
    #[tokio::test(start_paused = true)]
    async fn rounds_that_cannot_judge_pause_recovery_and_never_add_up_to_down() {
        let mut w = World::new();
        w.confirm_a_down().await;
        let start = Instant::now();
        let mut recovered_at = None;
        for i in 0..60 {
            // Odd rounds: our probe of a is lost, the agent and b say healthy.
            let lost = i % 2 == 1;
            w.feed(Some(true), true, Some(!lost), true, true);
            let r = w.round();
            if lost {
                assert_eq!(World::a(&r).verdict.label(), "path_fault");
            }
            if World::a(&r).transitions.contains(&Transition::Recovered) {
                recovered_at = Some(Instant::now());
                break;
            }
            tick().await;
        }
        // Half the rounds judge it: 5 s of judged health take about 10 s.
        let at = recovered_at.expect("recovers behind a lossy path");
        let took = at.duration_since(start);
        assert!(
            took >= Duration::from_secs(9),
            "unjudged time does not count: {took:?}"
        );
        assert!(took < Duration::from_secs(11), "{took:?}");

        // Unconfirmed (its own critical check fails) starts recovery over.
        let mut w = World::new();
        w.confirm_a_down().await;
        for _ in 0..16 {
            w.feed(Some(true), true, Some(true), true, true);
            w.round();
            tick().await;
        }
        w.feed(Some(false), true, Some(true), true, true);
        assert_eq!(World::a(&w.round()).verdict.label(), "unconfirmed");
        tick().await;
        w.feed(Some(true), true, Some(true), true, true);
        let r = w.round();
        assert!(!World::a(&r).transitions.contains(&Transition::Recovered));
        assert!(
            !w.det.is_recovered("a", Instant::now()),
            "the hold-down starts over"
        );

        // Down rounds separated by path-fault rounds never confirm.
        let mut w = World::new();
        for i in 0..12 {
            if i % 2 == 0 {
                w.feed(Some(false), false, Some(false), true, true);
            } else {
                w.feed(Some(true), true, Some(false), true, true);
            }
            let r = w.round();
            let want = if i % 2 == 0 { "down" } else { "path_fault" };
            assert_eq!(World::a(&r).verdict.label(), want, "round {i}");
            tick().await;
        }
        assert!(!w.det.track("a").unwrap().confirmed_down);
    }

    /// Frontends of hybrid groups (no agent): down only when a majority of
    /// the vantage points that answered fail; the orchestrator's failing
    /// probe alone is a path fault; `fall` rounds confirm.
    #[tokio::test(start_paused = true)]
    async fn agentless_targets_follow_the_majority_of_vantage_points() {
        let mut det = Detector::agentless(cfg(), ["fe1".to_string()]);
        let mut ev = Evidence::default();
        let now = Instant::now();
        // Orchestrator fails, both agents reach it: path fault, never down.
        ev.external.insert("fe1".into(), (now, vec![check(false)]));
        ev.insert_report(now, report("a", true, &[("fe1", true)]));
        ev.insert_report(now, report("b", true, &[("fe1", true)]));
        for _ in 0..5 {
            let r = det.round(&ev, now);
            assert!(!r.isolated);
            assert_eq!(r.sites[0].verdict.label(), "path_fault");
        }
        assert!(!det.track("fe1").unwrap().confirmed_down);
        // Everyone reaches it: healthy (no heartbeat row, no dead agent).
        ev.external.insert("fe1".into(), (now, vec![check(true)]));
        let r = det.round(&ev, now);
        assert_eq!(r.sites[0].verdict, Verdict::Healthy);
        assert!(r.sites[0].evidence.iter().all(|e| e.vantage != "heartbeat"));
        // Orchestrator and one agent fail, the other agent is stale: 2 of 2 → down, confirmed after fall.
        let later = now + Duration::from_secs(2);
        ev.external
            .insert("fe1".into(), (later, vec![check(false)]));
        ev.insert_report(later, report("a", true, &[("fe1", false)]));
        let mut confirmed = 0;
        for i in 1..=3 {
            let r = det.round(&ev, later);
            assert_eq!(r.sites[0].verdict.label(), "down", "round {i}");
            if r.sites[0].transitions.contains(&Transition::ConfirmedDown) {
                confirmed = i;
            }
        }
        assert_eq!(confirmed, 3);
    }
}
