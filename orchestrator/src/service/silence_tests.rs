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
        s.accept_report(AgentReport {
            site: format!("s{i}"),
            seq: 1,
            started_unix_ms: 0,
            boot: String::new(),
            checks: vec![check(true)],
            peers: vec![PeerProbe {
                site: format!("s{}", i ^ 1),
                results: vec![check(true)],
                age_ms: 0,
            }],
            outcomes: vec![],
            replication: vec![],
            authority: vec![],
            taken_term: None,
            taken_cluster: None,
            left_clusters: vec![],
        });
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
