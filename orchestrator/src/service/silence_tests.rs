//! The detection loop when many agents fall silent together (a large site
//! lost, or every report delayed by an overloaded path): a few prompt
//! rounds, each taking every agent silent by then — not a wake, a scan and
//! a round per agent, which made an orchestrator of 20,000 sites spend a
//! core on its own loop and fall further behind (BENCHMARKS.md, "Load").

use super::harness::{check, many_groups_text, start_from, test_dir};
use super::*;
use crate::store::MemStore;
use warden_proto::agent::PeerProbe;

const GROUPS: usize = 100;

/// `GROUPS` groups of two sites (s0, s1, …), each site with its own agent token.
fn service() -> (Arc<Shared>, super::harness::TestDir) {
    let dir = test_dir(false, 1);
    let text = many_groups_text(&dir, GROUPS);
    let (shared, _) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    (shared, dir)
}

/// Site `s{i}`'s report number `seq`: its own check `own`, its peer's
/// (`s{i ^ 1}`) as it sees it `peer`.
fn site_report(i: usize, own: bool, peer: bool, seq: u64) -> AgentReport {
    AgentReport {
        site: format!("s{i}"),
        seq,
        started_unix_ms: 0,
        boot: String::new(),
        checks: vec![check(own)],
        peers: vec![PeerProbe {
            site: format!("s{}", i ^ 1),
            results: vec![check(peer)],
            age_ms: 0,
        }],
        outcomes: vec![],
        replication: vec![],
        authority: vec![],
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
    }
}

async fn step(ms: u64) {
    tokio::time::advance(Duration::from_millis(ms)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn agents_falling_silent_together_cost_a_few_prompt_rounds_not_one_each() {
    let (s, _dir) = service();
    let stop = CancellationToken::new();
    let detection = tokio::spawn(s.clone().detection_loop(stop.clone()));
    // Every agent reports once, a millisecond apart (each sees its peer
    // healthy), then none reports again: their silences come a
    // millisecond apart too, 376 ms after each report.
    for i in 0..2 * GROUPS {
        s.accept_report(site_report(i, true, true, 1));
        step(1).await;
    }
    let before = s.metrics().prompt_rounds.get();
    // Past every agent's silence: 200 deadlines over 200 ms.
    for _ in 0..400 {
        step(1).await;
    }
    let prompt = s.metrics().prompt_rounds.get() - before;
    assert!(
        prompt >= 1,
        "the silences were noticed between the regular rounds"
    );
    // One silence wake per eighth of the 250 ms interval at most: about
    // 200 / 31 over the deadlines' 200 ms.
    assert!(
        prompt <= 12,
        "{prompt} prompt rounds for {} agents falling silent within 200 ms",
        2 * GROUPS
    );
    stop.cancel();
    detection.await.unwrap();
}

/// s0 is lost (its own critical check fails, s1 and the orchestrator's
/// probe see it failing) while, every 200 ms, another site starts a down
/// streak (a prompt round counts its first down round) and heals. s0 is
/// confirmed down within a few intervals. Before, every prompt round that
/// counted restarted the shared tick: with a streak started every 200 ms
/// (interval 250 ms) no regular round ever came, and s0 stayed at its
/// first down round for as long as the cascade lasted.
#[tokio::test(start_paused = true)]
async fn a_cascade_of_prompt_rounds_does_not_hold_off_a_sites_confirmation() {
    let (s, _dir) = service();
    let stop = CancellationToken::new();
    let detection = tokio::spawn(s.clone().detection_loop(stop.clone()));
    // Site `i` says its own check and its peer's are `own` and `peer`;
    // the orchestrator's probe of it says `own` too.
    let report = |i: usize, own: bool, peer: bool, seq: u64| {
        s.lock()
            .evidence
            .external
            .insert(format!("s{i}"), (Instant::now(), vec![check(own)]));
        s.accept_report(site_report(i, own, peer, seq));
    };
    // Every site healthy first, heard by the orchestrator.
    for i in 0..2 * GROUPS {
        report(i, true, true, 1);
    }
    step(600).await;
    let start = Instant::now();
    let mut confirmed = None;
    let mut streaking: Option<usize> = None;
    let mut next = 2;
    for tick in 0..60u64 {
        let seq = tick + 2;
        report(0, false, true, seq);
        report(1, true, false, seq);
        if tick % 4 == 0 && next + 1 < 2 * GROUPS {
            // Another site's streak starts (a prompt round counts it) ...
            report(next, false, true, seq);
            report(next + 1, true, false, seq);
            streaking = Some(next);
            next += 2;
        } else if let Some(i) = streaking.take() {
            // ... and ends.
            report(i, true, true, seq);
            report(i + 1, true, true, seq);
        }
        for i in (2..next).filter(|i| streaking.is_none_or(|k| *i != k && *i != k + 1)) {
            report(i, true, true, seq);
        }
        step(50).await;
        if confirmed.is_none() && s.lock().detector.confirmed_down("s0") {
            confirmed = Some(start.elapsed());
        }
    }
    let track = s.lock().detector.track("s0").cloned();
    assert!(
        confirmed.is_some_and(|t| t <= Duration::from_millis(1500)),
        "s0 confirmed down after {confirmed:?} (interval 250 ms, fall 3): {track:?}"
    );
    stop.cancel();
    detection.await.unwrap();
}
