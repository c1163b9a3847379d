//! Wall-clock times the store holds from a clock ahead of this process's
//! (another node of the cluster, or this host before its clock was set
//! right): they hold decisions back only as long as they could have.
use super::harness::*;
use super::*;
use crate::store::{MemStore, Store};
use std::time::{SystemTime, UNIX_EPOCH};

/// Ten years from now, by the system clock.
fn years_ahead() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        + 10 * 365 * 86_400_000
}

/// The service on the test config (automatic, at most `max_failovers`
/// moves an hour) over a store holding group web as `stored` makes it.
fn started_on(
    max_failovers: u32,
    stored: impl FnOnce(GroupState) -> GroupState,
) -> (Arc<Shared>, TestDir) {
    let dir = test_dir(true, max_failovers);
    let text = config_text(&dir, true, max_failovers, "");
    let cfg = warden_config::parse(&text, &dir.join("failover.conf")).expect("config");
    let fresh = load_state(&cfg, &MemStore::default()).unwrap().groups["web"].clone();
    let store = MemStore::default();
    store
        .put_group(&stored(GroupState {
            hold: None,
            epoch: 2,
            ..fresh
        }))
        .unwrap();
    let (s, _fake) = start_from(&text, &dir, Arc::new(store)).expect("config");
    (s, dir)
}

/// An automatic move recorded ten years ahead counts toward the failover
/// budget (one move an hour) for one window from now at most: an hour
/// later, a's loss is failed over automatically. Before, the move counted
/// for ten years: every failover waited for an operator's approval
/// ("failover budget exhausted").
#[tokio::test(start_paused = true)]
async fn a_move_recorded_by_a_clock_ahead_counts_for_one_window_at_most() {
    let (s, _dir) = started_on(1, |g| GroupState {
        moves_unix_ms: vec![years_ahead()],
        ..g
    });
    for _ in 0..4 {
        round(&s, true).await;
    }
    tokio::time::advance(Duration::from_secs(3_601)).await;
    for _ in 0..4 {
        round(&s, true).await;
    }
    rounds_until(&s, false, 40, "an automatic failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
}

/// A failback retry set ten years ahead (after an aborted failback) waits
/// the longest back-off at most: then a, recovered, is failed back to
/// automatically. Before, automatic failback never came.
#[tokio::test(start_paused = true)]
async fn a_failback_retry_set_by_a_clock_ahead_waits_the_longest_back_off_at_most() {
    let (s, _dir) = started_on(5, |g| GroupState {
        active: "b".into(),
        failback_retry_unix_ms: Some(years_ahead()),
        failback_aborts: 1,
        ..g
    });
    for _ in 0..20 {
        round(&s, true).await;
    }
    assert_eq!(group(&s).active, "b", "the retry waits its back-off");
    tokio::time::advance(crate::retry::BACKOFF_MAX + Duration::from_secs(1)).await;
    rounds_until(&s, true, 80, "an automatic failback", |g| {
        g.phase == Phase::Steady && g.active == "a"
    })
    .await;
}
