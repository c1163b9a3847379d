//! The detector's rules on paused time: rounds, hysteresis, guards,
//! recovery; `silence.rs` the rounds about when evidence comes and goes.
use super::*;
use warden_proto::agent::PeerProbe;
// One check result, as the service's tests build it.
use crate::service::harness::check;

mod silence;

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
                age_ms: 0,
            })
            .collect(),
        replication: vec![],
        outcomes: vec![],
        authority: vec![],
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
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
    fn b(r: &Round) -> &SiteRound {
        r.sites.iter().find(|s| s.site == "b").unwrap()
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
    // interval 250 ms: silent after 375 ms; agent_timeout 1 s.
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
        if i == 2 {
            assert!(
                matches!(&a.verdict, Verdict::Down(why) if why.contains("silent")),
                "a missed report and nobody reaches it: {:?}",
                a.verdict
            );
            let rows = w.det.evidence(&w.ev, "a", Instant::now());
            assert!(rows.iter().any(|e| e.status == "silent"), "{rows:?}");
        }
        if a.transitions.contains(&Transition::ConfirmedDown) {
            confirmed = Some(i);
            break;
        }
    }
    // Without the silence rule: first down at 1.25 s, confirmed at 1.75 s.
    assert_eq!(confirmed, Some(4), "confirmed 1 s after the loss");
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

/// A site whose agent was never heard from (the orchestrator just
/// started) is judged on the outside views as a stale one — a site lost
/// before the orchestrator started is still confirmed down — but no
/// verdict says its agent is stale or unreachable: nothing was observed of
/// it. Before, a path fault to it said "agent unreachable" and its
/// confirmation "agent stale" (in the events an operator reads).
#[tokio::test(start_paused = true)]
async fn a_site_never_heard_from_is_never_said_to_have_a_stale_agent() {
    let mut w = World::new();
    let said = |v: &Verdict| {
        let r = v.reason();
        assert!(r.contains("no report from its agent yet"), "{v:?}");
        assert!(!r.contains("stale") && !r.contains("unreachable"), "{v:?}");
    };
    // The orchestrator's probe fails, b reaches a: a path fault.
    w.feed(None, true, Some(false), true, true);
    let r = w.round();
    assert!(matches!(World::a(&r).verdict, Verdict::PathFault(_)));
    said(&World::a(&r).verdict);
    // Nobody outside answers about a.
    w.ev.external.remove("a");
    w.feed(None, true, None, true, false);
    tokio::time::advance(Duration::from_secs(2)).await;
    let r = w.round();
    assert!(matches!(World::a(&r).verdict, Verdict::Unknown(_)));
    said(&World::a(&r).verdict);
    // a is lost, b sees it: down, and confirmed after `fall` rounds.
    for _ in 0..3 {
        w.feed(None, false, Some(false), true, true);
        let r = w.round();
        assert!(matches!(World::a(&r).verdict, Verdict::Down(_)));
        said(&World::a(&r).verdict);
        tick().await;
    }
    assert!(w.det.confirmed_down("a"));
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
    let rows = det.evidence(&ev, "fe1", now);
    assert!(!rows.is_empty() && rows.iter().all(|e| e.vantage != "heartbeat"));
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

/// a's agent has died; its critical endpoint `web` serves, its
/// non-critical `admin` endpoint is down (maintenance), as both the
/// orchestrator's probe and b's view see. A dead agent, never a site down:
/// a non-critical endpoint is only reported. Before, any failing endpoint
/// counted, and the two outside views agreed "failing": Down, and after
/// `fall` rounds a failover of a serving site.
#[tokio::test(start_paused = true)]
async fn a_failing_non_critical_endpoint_is_not_outside_agreement() {
    let mut w = World::new();
    w.feed(Some(true), true, Some(true), true, true);
    w.round();
    tokio::time::advance(Duration::from_secs(2)).await;
    let admin = CheckResult {
        critical: false,
        name: "admin".into(),
        ..check(false)
    };
    let seen = vec![check(true), admin];
    let now = Instant::now();
    let mut b = report("b", true, &[]);
    b.peers = vec![PeerProbe {
        site: "a".into(),
        results: seen.clone(),
        age_ms: 0,
    }];
    w.ev.insert_report(now, b);
    w.ev.external.insert("a".into(), (now, seen));
    w.ev.external.insert("b".into(), (now, vec![check(true)]));
    let r = w.round();
    assert!(
        matches!(World::a(&r).verdict, Verdict::DeadAgent(_)),
        "{:?}",
        World::a(&r).verdict
    );
}
