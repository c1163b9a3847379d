//! Hold orders of one epoch in the order they were given: each carries its
//! place (`seq`), and one older than the newest the group took at its
//! epoch is refused and counted — the orchestrator sends its orders without
//! waiting for each other, so a slow one may land after the next. A
//! later leader's orders (a higher licence term) outrank its
//! predecessor's whatever the two hosts' clocks say.

use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{assert_refused, http_client, TOKEN};
use crate::hold::{closed_after, start_dead_a, FAST};

#[tokio::test]
async fn an_order_older_than_the_newest_of_its_epoch_is_refused() {
    let (fe, _b, _dead) = start_dead_a(Duration::from_secs(5)).await;
    let remaining = |v: &serde_json::Value| v["hold_remaining_ms"].as_u64().unwrap_or(u64::MAX);

    // The site is suspected (a hold, seq 10), then the order is withdrawn
    // at the same epoch (seq 11); the withdrawal lands first. The hold
    // landing after it is older: refused, and nothing is held — before, it
    // stood for its whole ttl, users held for a switch nobody announced.
    let (status, body) = fe.hold_seq("web", 1, 11, 0, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = fe.hold_seq("web", 1, 10, 60_000, false).await;
    assert_refused(status, &body, "older order");
    assert_eq!(remaining(&fe.route("web").await), 0);
    let took = closed_after(&fe).await;
    assert!(
        took < FAST,
        "a late hold held a user: closed after {took:?}"
    );

    // Two cut-over orders of one runbook (its epoch 2): the later one
    // (seq 21, a short window) lands first; the earlier one (seq 20) does
    // not replace it.
    let (status, body) = fe.hold_seq("web", 2, 21, 5_000, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = fe.hold_seq("web", 2, 20, 60_000, true).await;
    assert_refused(status, &body, "older order");
    let left = remaining(&fe.route("web").await);
    assert!(left <= 5_000, "the older order's window stands: {left} ms");

    // A newer order of the epoch is taken, and so is a repeat of the
    // newest; a higher epoch starts its own order.
    assert_eq!(fe.hold_seq("web", 2, 22, 0, true).await.0, StatusCode::OK);
    assert_eq!(fe.hold_seq("web", 2, 22, 0, true).await.0, StatusCode::OK);
    let (status, body) = fe.hold_seq("web", 3, 1, 60_000, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(remaining(&body) > 50_000, "{body}");
    // An order without its place (an older orchestrator) is judged by its
    // epoch alone, as before.
    assert_eq!(fe.hold("web", 3, 0).await.0, StatusCode::OK);

    // Each refusal is counted where an operator looks.
    let metrics = http_client()
        .get(fe.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    let line = "warden_frontend_refused_orders_total{group=\"web\",reason=\"late_copy\"} 2";
    assert!(
        metrics.lines().any(|l| l == line),
        "{line:?} not in:\n{metrics}"
    );
}

/// A runbook's step failed and its leader withdrew the cut-over, but the
/// store refused to record the failure (the leader was deposed): the next
/// leader resumes the step at the runbook's epoch and orders the cut-over
/// again, after the withdrawal. Its order is no late copy: taken, users
/// wait for the switch. One given before the withdrawal is still refused.
#[tokio::test]
async fn a_cut_over_given_after_the_withdrawal_of_its_epoch_is_taken() {
    let (fe, _b, _dead) = start_dead_a(Duration::from_secs(5)).await;
    let remaining = |v: &serde_json::Value| v["hold_remaining_ms"].as_u64().unwrap_or(0);

    assert_eq!(
        fe.hold_seq("web", 2, 10, 60_000, true).await.0,
        StatusCode::OK
    );
    assert_eq!(fe.hold_seq("web", 2, 11, 0, true).await.0, StatusCode::OK);
    let (status, body) = fe.hold_seq("web", 2, 10, 60_000, true).await;
    assert_refused(status, &body, "late copy");

    let (status, body) = fe.hold_seq("web", 2, 12, 60_000, true).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the resumed cut-over is refused: {body}"
    );
    assert!(remaining(&body) > 50_000, "{body}");
    // A new user waits for the switch instead of failing.
    let mut c = crate::harness::Conn::open(fe.listen("web")).await;
    c.send().await;
    crate::assert_eventually!(
        fe.route("web").await["held_now"].as_u64() == Some(1),
        Duration::from_secs(2),
        "the new user is not waiting: {}",
        fe.route("web").await
    );
    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    assert_eq!(c.answer().await.as_deref(), Some("b"));
}

/// Several orchestrators on etcd: the leader (term 5) is running a
/// runbook at epoch 2 and has ordered its cut-over. It is deposed; the new
/// leader (term 9) runs on a host whose clock is 60 s behind, so every
/// `seq` it gives is lower than its predecessor's. Its withdrawal of the
/// cut-over is taken (users are no longer made to wait for a switch that
/// is not coming), and so is the cut-over it orders when it resumes the
/// runbook at that epoch: new users wait for its switch. The deposed
/// leader's late copy — its clock ahead, its `seq` higher — is refused,
/// and the refusal, like the route, says which order is the newest taken.
/// Before, the frontend ordered by `seq` alone and refused the new
/// leader's orders as late copies for as long as the clocks stayed apart.
#[tokio::test]
async fn a_new_leader_with_a_clock_behind_outranks_its_predecessor() {
    let (fe, _b, _dead) = start_dead_a(Duration::from_secs(5)).await;
    let remaining = |v: &serde_json::Value| v["hold_remaining_ms"].as_u64().unwrap_or(0);
    let deposed = 1_796_540_980_000;
    let behind = deposed - 60_000;

    let (status, body) = fe.hold_placed("web", 2, (5, deposed), 60_000, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = fe.hold_placed("web", 2, (9, behind), 0, true).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the new leader's withdrawal was refused: {body}"
    );
    assert_eq!(
        remaining(&body),
        0,
        "the deposed leader's order still stands: {body}"
    );
    let (status, body) = fe
        .hold_placed("web", 2, (9, behind + 1), 60_000, true)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the new leader's resumed cut-over was refused: {body}"
    );
    assert!(remaining(&body) > 50_000, "{body}");
    assert_eq!(body["hold_term"], 9, "{body}");
    assert_eq!(body["hold_seq"], behind + 1, "{body}");

    // The deposed leader's withdrawal, given before it lost its lease,
    // lands now: a late copy, whatever its clock said.
    let (status, body) = fe.hold_placed("web", 2, (5, deposed + 1), 0, true).await;
    assert_refused(status, &body, "older order");
    assert_eq!(body["newest_term"], 9, "{body}");
    assert_eq!(body["newest_seq"], behind + 1, "{body}");
    let route = fe.route("web").await;
    assert!(
        remaining(&route) > 50_000,
        "the cut-over was withdrawn: {route}"
    );
    assert_eq!(
        (route["hold_term"].clone(), route["hold_seq"].clone()),
        (9.into(), (behind + 1).into()),
        "{route}"
    );

    // A new user waits for the new leader's switch instead of failing.
    let mut c = crate::harness::Conn::open(fe.listen("web")).await;
    c.send().await;
    crate::assert_eventually!(
        fe.route("web").await["held_now"].as_u64() == Some(1),
        Duration::from_secs(2),
        "the new user is not waiting: {}",
        fe.route("web").await
    );
    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    assert_eq!(c.answer().await.as_deref(), Some("b"));

    // A single orchestrator (no term) restarted with its clock stepped
    // back: its first order lands below the newest of the epoch and is
    // refused, the refusal telling the newest place for its next orders
    // to be placed above.
    assert_eq!(
        fe.hold_placed("web", 3, (0, deposed), 60_000, false)
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = fe.hold_placed("web", 3, (0, behind), 0, false).await;
    assert_refused(status, &body, "older order");
    assert_eq!(body["newest_seq"], deposed, "{body}");
    assert_eq!(body["newest_term"], 0, "{body}");
    assert_eq!(
        fe.hold_placed("web", 3, (0, deposed + 1), 0, false).await.0,
        StatusCode::OK
    );
}
