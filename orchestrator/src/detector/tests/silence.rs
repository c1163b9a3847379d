//! The detector's rounds about when evidence comes and goes: prompt
//! rounds, agents falling silent, the age of peer views, a round judged in
//! parts.
use super::*;

impl World {
    /// A prompt round about a (the site bad evidence names) and b.
    fn prompt(&mut self) -> Round {
        let sites = ["a".to_string(), "b".to_string()];
        self.det.prompt_round(&self.ev, Instant::now(), &sites)
    }
}

#[tokio::test(start_paused = true)]
async fn a_prompt_round_starts_a_streak_at_once_and_only_that() {
    let mut w = World::new();
    w.feed(Some(true), true, Some(true), true, true);
    w.round();
    tokio::time::advance(Duration::from_millis(40)).await;
    // The service dies: a's failing report and the orchestrator's probe arrive mid-interval.
    w.feed(Some(false), true, Some(false), true, true);
    assert!(w.det.wants_prompt("a"));
    let r = w.prompt();
    let a = World::a(&r);
    assert!(a.counted, "the first down round counts at once");
    assert!(matches!(a.verdict, Verdict::Down(_)), "{:?}", a.verdict);
    assert_eq!(w.det.track("a").unwrap().down_rounds, 1);
    assert!(
        !World::b(&r).counted,
        "a prompt round counts nothing for the healthy site"
    );
    // In a streak: no more prompt rounds count, however many arrive.
    assert!(!w.det.wants_prompt("a"));
    for _ in 0..5 {
        tokio::time::advance(Duration::from_millis(10)).await;
        let r = w.prompt();
        assert!(!World::a(&r).counted);
    }
    assert_eq!(w.det.track("a").unwrap().down_rounds, 1);
    // The streak goes on in regular rounds, one interval apart (a's agent
    // reporting the failure on): fall = 3 is reached two intervals after
    // the prompt round.
    tick().await;
    w.feed(Some(false), true, Some(false), true, true);
    w.round();
    tick().await;
    w.feed(Some(false), true, Some(false), true, true);
    let r = w.round();
    assert!(World::a(&r)
        .transitions
        .contains(&Transition::ConfirmedDown));
}

#[tokio::test(start_paused = true)]
async fn a_prompt_round_never_counts_other_verdicts() {
    let mut w = World::new();
    for _ in 0..2 {
        w.feed(Some(true), true, Some(true), true, true);
        w.round();
        tick().await;
    }
    let healthy = w.det.track("a").unwrap().healthy_rounds;
    // Only the orchestrator's probe fails: a path fault, not a down round.
    w.feed(Some(true), true, Some(false), true, true);
    let r = w.prompt();
    let a = World::a(&r);
    assert!(
        matches!(a.verdict, Verdict::PathFault(_)),
        "{:?}",
        a.verdict
    );
    assert!(!a.counted && a.transitions.is_empty(), "no event, no count");
    // The agent's failing check before anyone outside agrees: unconfirmed, not counted.
    w.feed(Some(false), true, Some(true), true, true);
    let r = w.prompt();
    assert!(!World::a(&r).counted);
    let t = w.det.track("a").unwrap();
    assert_eq!(
        (t.healthy_rounds, t.down_rounds, t.last.clone()),
        (healthy, 0, Some(Verdict::Healthy)),
        "the track is as the last regular round left it"
    );
}

#[tokio::test(start_paused = true)]
async fn next_silence_is_one_and_a_half_report_intervals_after_the_last_report() {
    let mut w = World::new();
    w.feed(Some(true), true, Some(true), true, true);
    let heard = Instant::now();
    w.round();
    let judged = Instant::now();
    let next = |w: &World| w.det.next_silence(&w.ev, judged, Instant::now());
    assert_eq!(next(&w), None, "nobody is overdue");
    tokio::time::advance(Duration::from_millis(100)).await;
    w.ev.insert_report(Instant::now(), report("b", true, &[("a", true)]));
    // 270 ms: a's report is late, within jitter (an eighth of 250 ms).
    tokio::time::advance(Duration::from_millis(170)).await;
    assert_eq!(next(&w), None);
    // 290 ms: a missed its report; b did not.
    tokio::time::advance(Duration::from_millis(20)).await;
    let due = next(&w).unwrap();
    assert_eq!(due, heard + Duration::from_millis(376));
    assert!(
        w.det
            .silent_between(&w.ev, judged, Instant::now())
            .is_empty(),
        "not silent yet"
    );
    // The whole site is gone: at that moment every outside view fails.
    w.feed(None, false, Some(false), true, true);
    tokio::time::sleep_until(due).await;
    let silent = w.det.silent_between(&w.ev, judged, Instant::now());
    assert_eq!(silent, ["a"]);
    // A deadline passed and not judged yet is due at once.
    tokio::time::advance(Duration::from_millis(5)).await;
    assert_eq!(next(&w), Some(due), "still due: judged before it");
    let r = w.det.prompt_round(&w.ev, Instant::now(), &silent);
    let judged = Instant::now();
    assert_eq!(r.sites.len(), 1, "only the silent site is judged");
    let a = World::a(&r);
    assert!(
        a.counted && matches!(&a.verdict, Verdict::Down(why) if why.contains("silent")),
        "{:?}",
        a.verdict
    );
    // In a streak: its silence no longer wakes anyone; b is not overdue.
    assert_eq!(w.det.next_silence(&w.ev, judged, Instant::now()), None);
    tokio::time::advance(Duration::from_millis(200)).await;
    let due = w.det.next_silence(&w.ev, judged, Instant::now()).unwrap();
    tokio::time::sleep_until(due).await;
    assert_eq!(
        w.det.silent_between(&w.ev, judged, Instant::now()),
        ["b"],
        "b missed its report now"
    );
}

#[tokio::test(start_paused = true)]
async fn agents_falling_silent_together_are_judged_in_one_batch() {
    // 100 sites whose agents report a millisecond apart, then all stop:
    // one scan gives every agent silent by then, none twice.
    let names: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
    let det = Detector::new(cfg(), names.clone());
    let mut ev = Evidence::default();
    let start = Instant::now();
    for n in &names {
        ev.insert_report(Instant::now(), report(n, true, &[]));
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    let judged = Instant::now();
    // Nobody overdue yet (the last report 1 ms old, the first 100 ms).
    assert_eq!(det.next_silence(&ev, judged, Instant::now()), None);
    tokio::time::advance(Duration::from_millis(200)).await;
    // The first silence: the first agent's report 376 ms old.
    let first = det.next_silence(&ev, judged, Instant::now()).unwrap();
    assert_eq!(first, start + Duration::from_millis(376));
    tokio::time::sleep_until(first).await;
    // 31 ms later (an eighth of the interval apart): every agent silent by then.
    tokio::time::advance(Duration::from_millis(31)).await;
    let now = Instant::now();
    let batch = det.silent_between(&ev, judged, now);
    assert_eq!(batch.len(), 32, "s0 … s31: {batch:?}");
    let after = det.silent_between(&ev, now, now + Duration::from_millis(10));
    assert_eq!(after.len(), 10, "the next ten, not the batch again");
    assert!(after.iter().all(|s| !batch.contains(s)));
    assert_eq!(
        det.next_silence(&ev, now, now),
        Some(start + Duration::from_millis(376 + 32)),
        "the next deadline is the first one after the batch"
    );
}

#[tokio::test(start_paused = true)]
async fn an_isolated_orchestrator_counts_nothing_in_prompt_rounds() {
    let mut w = World::new();
    w.feed(Some(true), true, Some(true), true, true);
    w.round();
    tokio::time::advance(Duration::from_secs(2)).await;
    // Nothing heard, every probe failing: isolated.
    w.ev.external
        .insert("a".into(), (Instant::now(), vec![check(false)]));
    w.ev.external
        .insert("b".into(), (Instant::now(), vec![check(false)]));
    assert!(w.round().isolated);
    let r = w.prompt();
    assert!(r.isolated && r.sites.iter().all(|s| !s.counted));
    assert_eq!(w.det.track("a").unwrap().down_rounds, 0);
}

#[tokio::test(start_paused = true)]
async fn a_peer_view_is_dated_when_the_peer_took_it() {
    let mut w = World::new();
    w.feed(Some(false), false, None, true, false);
    // b's view of a, taken 900 ms before b's report: still fresh (1 s).
    let mut rep = report("b", true, &[("a", false)]);
    rep.peers[0].age_ms = 900;
    w.ev.insert_report(Instant::now(), rep.clone());
    let (v, rows) = w.det.evaluate(&w.ev, "a", Instant::now());
    assert!(matches!(v, Verdict::Down(_)), "{v:?}");
    let row = rows.iter().find(|r| r.vantage == "peer:b").unwrap();
    assert_eq!(row.age_ms, Some(900));
    // Taken 1.1 s before: older than agent_timeout, so not a vantage point;
    // nor is an age no clock can subtract (a lying or broken agent).
    for age in [1_100, u64::MAX] {
        rep.peers[0].age_ms = age;
        w.ev.insert_report(Instant::now(), rep.clone());
        let (v, rows) = w.det.evaluate(&w.ev, "a", Instant::now());
        assert!(
            rows.iter().all(|r| r.vantage != "peer:b"),
            "{age}: {rows:?}"
        );
        assert!(matches!(v, Verdict::Unconfirmed(_)), "{age}: {v:?}");
    }
}

/// A regular round judged in parts (what the service does for a large
/// deployment) counts exactly what one whole round counts: every site once,
/// a down site in a late part confirmed after `fall` rounds like any other.
#[tokio::test(start_paused = true)]
async fn a_round_in_parts_counts_what_a_whole_round_counts() {
    let names: Vec<String> = (0..2500).map(|i| format!("s{i:04}")).collect();
    let mut ev = Evidence::default();
    let mut whole = Detector::new(cfg(), names.clone());
    let mut parts = Detector::new(cfg(), names.clone());
    let down = "s2222";
    for round in 1..=3 {
        tick().await;
        let now = Instant::now();
        for (i, s) in names.iter().enumerate() {
            let peer = &names[i ^ 1];
            let ok = s != down;
            ev.insert_report(now, report(s, ok, &[(peer, peer != down)]));
            ev.external.insert(s.clone(), (now, vec![check(ok)]));
        }
        let w = whole.round(&ev, now);
        let (isolated, _) = parts.begin_round(&ev, now);
        assert!(!isolated && !w.isolated);
        let mut judged = Vec::new();
        for part in parts.site_names().chunks(1024) {
            judged.extend(parts.round_part(&ev, now, part));
        }
        assert_eq!(judged.len(), names.len());
        for (a, b) in w.sites.iter().zip(&judged) {
            assert_eq!(
                (&a.site, &a.verdict, &a.transitions, a.counted),
                (&b.site, &b.verdict, &b.transitions, b.counted)
            );
        }
        let t = parts.track(down).unwrap();
        assert_eq!(t.down_rounds, round);
        assert_eq!(t.confirmed_down, round == 3, "round {round}");
        assert_eq!(parts.track("s0000").unwrap().healthy_rounds, round);
    }
}

/// A report with the same peers as the agent's last one skips the
/// `probed_by` look-up; one with other peers must still be counted as a
/// view of each of them.
#[test]
fn an_agent_that_changes_its_peers_is_a_view_of_each() {
    let mut ev = Evidence::default();
    let now = Instant::now();
    ev.insert_report(now, report("c", true, &[("a", true)]));
    ev.insert_report(now, report("c", true, &[("a", true)]));
    ev.insert_report(now, report("c", true, &[("b", false)]));
    ev.insert_report(now, report("d", true, &[("b", true), ("a", true)]));
    ev.insert_report(now, report("d", true, &[("a", true), ("b", true)]));
    let by = |site: &str| -> Vec<String> {
        ev.probed_by
            .get(site)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(by("a"), ["c", "d"]);
    assert_eq!(by("b"), ["c", "d"]);
}

#[tokio::test(start_paused = true)]
async fn each_agent_falls_silent_after_its_own_report_interval() {
    // a reports every 250 ms (the detection interval), b every second:
    // each is silent one and a half of its own intervals after its last
    // report (bounded by agent_timeout, 1 s here); a site without an
    // interval of its own has the detection interval's.
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let det = Detector::new(cfg(), names.clone()).with_report_intervals([
        ("a".to_string(), Duration::from_millis(250)),
        ("b".to_string(), Duration::from_millis(600)),
    ]);
    assert_eq!(det.shortest_report_interval(), Duration::from_millis(250));
    let mut ev = Evidence::default();
    let start = Instant::now();
    for n in &names {
        ev.insert_report(start, report(n, true, &[]));
    }
    tokio::time::advance(Duration::from_millis(300)).await;
    // a and c overdue (their reports 300 ms old > 281 ms); b is not (675 ms).
    let due = det.next_silence(&ev, start, Instant::now()).unwrap();
    assert_eq!(due, start + Duration::from_millis(376));
    tokio::time::sleep_until(due).await;
    let mut silent = det.silent_between(&ev, start, Instant::now());
    silent.sort();
    assert_eq!(silent, ["a", "c"]);
    // b: 600 ms + 300 ms, + 1 ms.
    tokio::time::advance(Duration::from_millis(400)).await;
    let judged = Instant::now();
    assert_eq!(
        det.next_silence(&ev, due, judged),
        Some(start + Duration::from_millis(901))
    );
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(det.silent_between(&ev, due, Instant::now()), ["b"]);

    // Every site on one interval that is not the detection interval: the
    // same rule without a look-up per site.
    let det = Detector::new(cfg(), names.clone()).with_report_intervals(
        names
            .iter()
            .map(|n| (n.clone(), Duration::from_millis(600))),
    );
    assert_eq!(det.shortest_report_interval(), Duration::from_millis(600));
    assert_eq!(
        det.next_silence(&ev, start, Instant::now()),
        Some(start + Duration::from_millis(901)),
        "every agent's deadline is its 600 ms interval's"
    );
}

/// A peer that fell silent answers no round: its last view is not a
/// vantage point for `agent_timeout` more. Here b's last report (a view of
/// a failing, taken as b's own path went) is followed by silence, and a's
/// agent says a critical check fails while the orchestrator reaches a:
/// before, b's one view confirmed a down by rule 1 over three rounds; and
/// with both agents' reports lost at once (no probe of a from here), by
/// rule 3.
#[tokio::test(start_paused = true)]
async fn the_last_view_of_a_peer_that_fell_silent_confirms_nothing() {
    // Rule 1: a's agent fails a check, nobody but b's old view agrees.
    let mut w = World::new();
    for i in 0..8 {
        w.feed(Some(false), false, Some(true), true, i == 0);
        let r = w.round();
        assert!(
            !r.isolated,
            "a's agent and the probe of b are heard: not isolated"
        );
        if i == 0 {
            assert!(matches!(World::a(&r).verdict, Verdict::Down(_)));
        }
        tick().await;
    }
    assert!(
        !w.det.track("a").unwrap().confirmed_down,
        "confirmed by the last word of a peer silent since: {:?}",
        w.det.track("a")
    );

    // Rule 3: both agents silent at once, no probe of a from here.
    let mut w = World::new();
    w.feed(Some(true), false, None, true, true);
    w.round();
    for _ in 0..4 {
        tick().await;
        w.feed(None, false, None, true, false);
        let r = w.round();
        assert!(
            !matches!(World::a(&r).verdict, Verdict::Down(_)),
            "{:?}",
            World::a(&r).verdict
        );
    }
    assert!(!w.det.track("a").unwrap().confirmed_down);

    // A peer still reporting is a vantage point for its whole view, as before.
    let mut w = World::new();
    for _ in 0..3 {
        w.feed(Some(false), false, Some(true), true, true);
        w.round();
        tick().await;
    }
    assert!(w.det.track("a").unwrap().confirmed_down);
}

/// An agentless detector (hybrid frontends) hears its reporters on their
/// own report intervals: a site reporting every 600 ms is no silent peer
/// 500 ms after its report (its views of the frontend still count).
#[tokio::test(start_paused = true)]
async fn frontend_views_last_their_reporters_own_interval() {
    let det = Detector::agentless(cfg(), ["fe".to_string()])
        .with_report_intervals([("a".to_string(), Duration::from_millis(600))]);
    let mut ev = Evidence::default();
    ev.insert_report(Instant::now(), report("a", true, &[("fe", false)]));
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(matches!(
        det.verdict(&ev, "fe", Instant::now()),
        Verdict::Down(_)
    ));
    // Silent after 900 ms: then it answers no more.
    tokio::time::advance(Duration::from_millis(401)).await;
    assert!(matches!(
        det.verdict(&ev, "fe", Instant::now()),
        Verdict::Unknown(_)
    ));
}

/// The other side of the rule above: the orchestrator's own path lost
/// (every report stops, every probe from here fails). Each agent falls
/// silent in turn; the other's last view, reaching the site, still holds
/// the verdict back until the agents are stale and the orchestrator knows
/// it is cut off. Nothing is confirmed.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_that_last_reached_the_site_still_holds_it_back() {
    let mut ev = Evidence::default();
    let mut det = Detector::new(cfg(), ["a".to_string(), "b".to_string()]);
    let t0 = Instant::now();
    ev.insert_report(t0, report("b", true, &[("a", true)]));
    tokio::time::advance(Duration::from_millis(100)).await;
    ev.insert_report(Instant::now(), report("a", true, &[("b", true)]));
    for _ in 0..8 {
        tokio::time::advance(Duration::from_millis(125)).await;
        let now = Instant::now();
        for s in ["a", "b"] {
            ev.external.insert(s.into(), (now, vec![check(false)]));
        }
        let r = det.round(&ev, now);
        // Not even in the round where a's agent is still fresh and b's
        // view of it already stale: the probe from here alone is no down
        // round (see the test below).
        for s in &r.sites {
            assert!(
                !matches!(s.verdict, Verdict::Down(_)),
                "{} at {:?}: {:?}",
                s.site,
                now - t0,
                s.verdict
            );
        }
    }
    assert!(!det.confirmed_down("a") && !det.confirmed_down("b"));
}

/// The orchestrator's own network lost just after a's report: every
/// report stops, every probe from here fails. b reported 240 ms before a,
/// its view of a taken 450 ms before that (its probe round ran into a
/// slow endpoint): 500 ms after the loss that view is over a second old,
/// no longer a vantage point, while a's agent is still fresh (silent, not
/// stale until 1 s) and the orchestrator not yet isolated. Before, the orchestrator's failing
/// probe alone — with a's silence, its own observation too — made a down
/// in three rounds, 500 ms to 1 s after the loss, and confirmed it; then
/// any round on return in which a was not judged healthy (its agent's
/// first report late) failed a serving site over. Its stale agent with
/// only this probe answering is no down round either.
#[tokio::test(start_paused = true)]
async fn the_orchestrators_own_lost_path_confirms_nothing() {
    let mut ev = Evidence::default();
    let mut det = Detector::new(cfg(), ["a".to_string(), "b".to_string()]);
    let probes = |ev: &mut Evidence, ok: bool| {
        for s in ["a", "b"] {
            ev.external
                .insert(s.into(), (Instant::now(), vec![check(ok)]));
        }
    };
    let mut rep = report("b", true, &[("a", true)]);
    rep.peers[0].age_ms = 450;
    ev.insert_report(Instant::now(), rep);
    probes(&mut ev, true);
    tokio::time::advance(Duration::from_millis(240)).await;
    let t0 = Instant::now();
    ev.insert_report(t0, report("a", true, &[("b", true)]));
    det.round(&ev, t0);
    let mut downs = Vec::new();
    for _ in 0..12 {
        tick().await;
        let now = Instant::now();
        probes(&mut ev, false);
        for s in &det.round(&ev, now).sites {
            if matches!(s.verdict, Verdict::Down(_)) {
                downs.push(format!("{} at {:?}: {:?}", s.site, now - t0, s.verdict));
            }
        }
    }
    assert!(
        !det.confirmed_down("a") && !det.confirmed_down("b"),
        "confirmed down by the orchestrator's own lost path: {downs:#?}"
    );
    assert!(downs.is_empty(), "{downs:#?}");
    let (v, _) = det.evaluate(&ev, "a", Instant::now());
    assert_eq!(v.label(), "unknown", "{v:?}");
}

/// The same lost path seen from the frontends of `hybrid` groups: the
/// agents report every 500 ms, their views of fe1 700 ms old (a probe
/// round that ran into the timeout), the last report just before the
/// orchestrator's network went. From 300 ms on no agent's view of fe1
/// counts, while the agents stay fresh (the orchestrator is not isolated,
/// so its frontend rounds run) until 1 s: the orchestrator's failing probe
/// is the only vantage point. Before, it was a majority of one: fe1 down
/// at 500, 750 and 1000 ms, confirmed, and the DNS name moved off a
/// frontend that serves as soon as the other one answered again.
#[tokio::test(start_paused = true)]
async fn the_orchestrators_probe_alone_never_brings_a_frontend_down() {
    let intervals = ["a", "b"].map(|s| (s.to_string(), Duration::from_millis(500)));
    let mut det = Detector::agentless(cfg(), ["fe1".to_string()]).with_report_intervals(intervals);
    let mut ev = Evidence::default();
    let t0 = Instant::now();
    for site in ["a", "b"] {
        let mut rep = report(site, true, &[("fe1", true)]);
        rep.peers[0].age_ms = 700;
        ev.insert_report(t0, rep);
    }
    let mut downs = Vec::new();
    for _ in 0..4 {
        tick().await;
        let now = Instant::now();
        ev.external.insert("fe1".into(), (now, vec![check(false)]));
        let r = det.round(&ev, now);
        if let Verdict::Down(why) = &r.sites[0].verdict {
            downs.push(format!("{:?}: {why}", now - t0));
        }
    }
    assert!(
        !det.confirmed_down("fe1"),
        "confirmed down on the orchestrator's probe alone: {downs:#?}"
    );
    assert!(downs.is_empty(), "{downs:#?}");
    let (v, rows) = det.evaluate(&ev, "fe1", Instant::now());
    assert_eq!(v.label(), "path_fault", "{v:?}");
    assert!(rows.iter().all(|r| r.vantage == "orchestrator"), "{rows:?}");
    // An agent that reports again and cannot reach fe1 either: down.
    ev.insert_report(Instant::now(), report("a", true, &[("fe1", false)]));
    assert_eq!(det.verdict(&ev, "fe1", Instant::now()).label(), "down");
}

/// a's agent reported a critical check failing once, then fell silent (its
/// path to the orchestrator lost, say), while the orchestrator's probe of
/// a fails too (the same lost path) and b, reporting, still reaches a's
/// service. The agent's last word is no agreement once it is silent, as a
/// silent peer's last failing view is none: a is never confirmed down on
/// it. Before, rule 1 counted the last report for as long as it was fresh
/// (`agent_timeout`): down rounds enough for `fall`, and a serving site
/// failed over from.
#[tokio::test(start_paused = true)]
async fn a_silent_agents_last_failing_check_is_no_agreement_while_a_peer_reaches_the_service() {
    let mut w = World::new();
    w.feed(Some(true), true, Some(true), true, true);
    w.round();
    tick().await;
    // The last report of a: its check failing.
    w.feed(Some(false), true, Some(false), true, true);
    w.round();
    // No report from a from now on; the orchestrator's probe fails, b
    // reaches a. One interval on, a is not silent yet (its agent fresh:
    // rule 1); from one and a half on, it is, until `agent_timeout`.
    tick().await;
    w.feed(None, true, Some(false), true, true);
    w.round();
    for _ in 0..3 {
        tick().await;
        w.feed(None, true, Some(false), true, true);
        let r = w.round();
        let a = World::a(&r);
        assert!(
            matches!(&a.verdict, Verdict::Unconfirmed(why) if why.contains("silent")),
            "{:?}",
            a.verdict
        );
    }
    assert!(!w.det.confirmed_down("a"), "a serving site confirmed down");
    // The service really dies (b sees it failing too): down, by rule 3
    // while the agent is silent.
    for _ in 0..3 {
        tick().await;
        w.feed(None, false, Some(false), true, true);
        w.round();
    }
    assert!(w.det.confirmed_down("a"));
}
