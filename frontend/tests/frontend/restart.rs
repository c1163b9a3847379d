//! Hold orders across a restart of the frontend (a crash, an upgrade, an
//! OOM kill mid-switch): what fences the next order — the place of the
//! newest order taken at the hold epoch, the withdrawal of an epoch's
//! order — is kept in `fence.json`, so a restarted frontend refuses the
//! late or deposed orders it refused before; the order in effect at the
//! restart is not resumed (only its giver's order again starts it).

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{assert_refused, echo, refusing, start_settings, Echo, Frontend};
use crate::hold::{closed_after, FAST};
use crate::kept::{stop, web_kept_in};

fn count(route: &Value, field: &str) -> u64 {
    route[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {route}"))
}

/// web: `a` refuses every connection (a site in trouble), `b` answers; a
/// frontend with a state directory under `dir`.
async fn web_with_dead_a(dir: &std::path::Path) -> (warden_frontend::FrontendSettings, Echo) {
    let dead = refusing().await;
    let b = echo("b").await;
    (web_kept_in(dir, &[("a", dead), ("b", b.addr)]), b)
}

/// A frontend started on `s` that routed `a` at 5 and then took the hold
/// order of `epoch` placed at `place` for 60 s (a cut-over when `pause`).
async fn routed_then_holding(
    s: &warden_frontend::FrontendSettings,
    epoch: u64,
    place: (u64, u64),
    pause: bool,
) -> Frontend {
    let fe = start_settings(s.clone()).await;
    assert_eq!(fe.put("web", "a", 5, "immediate").await.0, StatusCode::OK);
    let (status, body) = fe.hold_placed("web", epoch, place, 60_000, pause).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    fe
}

/// Leader term 2 announced a suspected `a` at epoch 5 (a plain hold,
/// placed (2, 200)); the frontend restarts; the orchestrator routes `a`
/// at 5 again. A deposed leader's (term 1) hold of epoch 5 lands late: it
/// is refused as before the restart — taken, it would hold every user
/// whose connect to `a` fails for `hold_connections` (2 s) instead of
/// failing at once, for as long as its ttl — and the route read back
/// still names the newest place (2, 200), which the orchestrator places
/// its later orders above. Before, the restarted frontend took it (200)
/// and held the next user, and the read-back named (1, 900).
#[tokio::test]
async fn a_restarted_frontend_still_refuses_a_hold_placed_before_the_newest_it_took() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, _b) = web_with_dead_a(dir.path()).await;
    let fe = routed_then_holding(&s, 5, (2, 200), false).await;
    stop(fe).await;

    let fe = start_settings(s.clone()).await;
    let route = fe.route("web").await;
    assert_eq!(
        count(&route, "hold_remaining_ms"),
        0,
        "not resumed: {route}"
    );
    assert_eq!(fe.put("web", "a", 5, "immediate").await.0, StatusCode::OK);
    let (status, body) = fe.hold_placed("web", 5, (1, 900), 60_000, false).await;
    let took = closed_after(&fe).await;
    assert!(
        took < FAST,
        "a user was held {took:?} under a deposed leader's order (answered {status}: {body})"
    );
    assert_refused(status, &body, "late copy");
    assert_eq!(
        (body["newest_term"].as_u64(), body["newest_seq"].as_u64()),
        (Some(2), Some(200)),
        "{body}"
    );
    let route = fe.route("web").await;
    assert_eq!(count(&route, "held_total"), 0, "{route}");
    assert_eq!(
        (count(&route, "hold_term"), count(&route, "hold_seq")),
        (2, 200),
        "{route}"
    );
    // The current leader's orders are taken: a newer one, or its own
    // order sent again (the same place).
    let (status, body) = fe.hold_placed("web", 5, (2, 200), 60_000, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    stop(fe).await;
}

/// A runbook at epoch 6 cut over (`pause`), failed before its switch and
/// withdrew its order (ttl 0); the frontend restarts. A late copy of the
/// cut-over lands: it is refused as before the restart (taken, it would
/// make every new user wait for a switch that is not coming). The
/// orchestrator's own cut-over given after the withdrawal (a leader that
/// resumed the runbook) is still taken. Before, the restarted frontend
/// took the late copy (200, `hold_remaining_ms` 60000).
#[tokio::test]
async fn a_restarted_frontend_still_refuses_a_cut_over_whose_order_was_withdrawn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, _b) = web_with_dead_a(dir.path()).await;
    let fe = routed_then_holding(&s, 6, (2, 300), true).await;
    let (status, body) = fe.hold_placed("web", 6, (2, 400), 0, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An older orchestrator's (unplaced) copies are fenced the same way.
    assert_eq!(fe.pause("web", 7, 60_000).await.0, StatusCode::OK);
    assert_eq!(fe.hold("web", 7, 0).await.0, StatusCode::OK);
    stop(fe).await;

    let fe = start_settings(s.clone()).await;
    let (status, body) = fe.pause("web", 7, 60_000).await;
    assert_refused(status, &body, "withdrawn");
    assert_eq!(count(&fe.route("web").await, "hold_remaining_ms"), 0);
    stop(fe).await;

    // Epoch 6's withdrawal, placed, outlives the restart too (a second
    // frontend's file: only epoch 6 was given there).
    let other = tempfile::tempdir().expect("tempdir");
    let (s, _b2) = web_with_dead_a(other.path()).await;
    let fe = start_settings(s.clone()).await;
    assert_eq!(
        fe.hold_placed("web", 6, (2, 300), 60_000, true).await.0,
        StatusCode::OK
    );
    assert_eq!(
        fe.hold_placed("web", 6, (2, 400), 0, false).await.0,
        StatusCode::OK
    );
    stop(fe).await;
    let fe = start_settings(s.clone()).await;
    let (status, body) = fe.hold_placed("web", 6, (2, 300), 60_000, true).await;
    assert_refused(status, &body, "late copy");
    let (status, body) = fe.pause("web", 6, 60_000).await;
    assert_refused(status, &body, "withdrawn");
    assert_eq!(count(&fe.route("web").await, "hold_remaining_ms"), 0);
    // Given after the withdrawal: a leader that resumed the runbook.
    let (status, body) = fe.hold_placed("web", 6, (3, 10), 60_000, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(count(&body, "hold_remaining_ms") > 50_000, "{body}");
    stop(fe).await;
}

/// A cut-over in effect when the frontend stops is not resumed by the
/// restarted one (the restart may come long after the order's time, and
/// the frontend has no route to hold users for until the orchestrator
/// routes it again); the orchestrator's order sent again is taken, and
/// the switch it announced ends it as before.
#[tokio::test]
async fn an_order_in_effect_at_a_restart_is_not_resumed_and_may_be_sent_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, _b) = web_with_dead_a(dir.path()).await;
    let fe = routed_then_holding(&s, 6, (2, 300), true).await;
    stop(fe).await;

    let fe = start_settings(s.clone()).await;
    let route = fe.route("web").await;
    assert_eq!(count(&route, "hold_remaining_ms"), 0, "{route}");
    assert_eq!(route["epoch"], 6, "{route}");
    let (status, body) = fe.hold_placed("web", 6, (2, 300), 60_000, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(count(&body, "hold_remaining_ms") > 50_000, "{body}");
    let (status, body) = fe.put("web", "b", 6, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count(&body, "hold_remaining_ms"), 0, "{body}");
    stop(fe).await;
}
