//! What an orchestrator says right after it starts: the RPO watch does
//! not judge an active site that has not reported to this process yet
//! until `agent_timeout` has passed (before, every start raised "RPO
//! unknown … is over rpo_max", then "back under" a second later); and the
//! last RTOs are those of the stored runbooks, not 0.
use super::harness::*;
use super::*;
use crate::store::{MemStore, Store};

fn rpo_events(s: &Shared) -> Vec<String> {
    s.lock()
        .recent
        .iter()
        .filter(|e| e.kind == EventKind::RpoExceeded)
        .map(|e| e.message.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn no_rpo_alert_before_the_active_site_could_have_reported() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "")
        + "[groups.web.replication]\nplan = \"none\"\nrpo_max = \"5s\"\n";
    // A restart: the group is in the store already (a group new to the
    // store is held until every site has reported, and not watched).
    let store = Arc::new(MemStore::default());
    store.put_group(&GroupState::fresh("web", "a")).unwrap();
    let (s, _fake) = start_from(&text, &dir, store).expect("config");
    assert!(s.lock().groups["web"].hold.is_none(), "not held");
    let round = |s: &Shared| {
        let mut st = s.lock();
        s.replication_round_locked(&mut st);
    };
    round(&s);
    tokio::time::advance(Duration::from_millis(900)).await;
    round(&s);
    assert_eq!(
        rpo_events(&s),
        Vec::<String>::new(),
        "judged before a could have reported to this process"
    );
    // agent_timeout (1 s) after the start, a never heard: its RPO is unknown.
    tokio::time::advance(Duration::from_millis(200)).await;
    round(&s);
    let ev = rpo_events(&s);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(
        ev[0].contains("unknown") && ev[0].contains("over rpo_max"),
        "{ev:?}"
    );
}

/// A restarted orchestrator (or a follower) shows the last RTOs its
/// store holds; before, `warden_last_rto_seconds` read 0 until a runbook
/// ended in this process, and the group's gauge was missing.
#[tokio::test(start_paused = true)]
async fn the_last_rto_is_read_from_the_stored_runbooks_after_a_restart() {
    let store = Arc::new(MemStore::default());
    for (id, rto) in [(1, 2_500), (2, 1_250)] {
        let mut rb = Runbook::new(
            id,
            "web",
            RunbookKind::Failover,
            "a",
            "b",
            id + 1,
            "detector",
            1_000_000 * id,
            1_000_000 * id,
        );
        rb.status = RunbookStatus::Succeeded;
        rb.finished_unix_ms = Some(1_000_000 * id + rto);
        rb.rto_ms = Some(rto);
        store.put_runbook(&rb).unwrap();
    }
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let (s, _fake) = start_from(&text, &dir, store).expect("config");
    let m = s.metrics_text(false);
    let value = |series: &str| -> Option<f64> {
        m.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    assert_eq!(value("warden_last_rto_seconds"), Some(1.25), "{m}");
    assert_eq!(
        value(r#"warden_group_last_rto_seconds{group="web",kind="failover"}"#),
        Some(1.25),
        "{m}"
    );
}
