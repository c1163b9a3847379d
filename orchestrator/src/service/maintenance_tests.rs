//! `warden maintenance`: an order names the maintenance change it was read
//! at, and one read before another operator's change is refused.
use super::harness::*;
use super::*;

/// Maintenance is on (change 1). Operator A reads it and asks for it off;
/// the request is delayed (a proxy's retry, a command re-run from shell
/// history). Meanwhile operator B turns it off and on again (changes 2
/// and 3) to work on site a, which then fails. A's order lands: refused,
/// naming the change it was read at and the one now, and maintenance
/// stays on — no automatic failover while B works. Asked again as read
/// now, it is taken. Setting what is already set changes nothing, and
/// names no new change.
#[tokio::test(start_paused = true)]
async fn a_maintenance_order_read_before_another_operators_change_is_refused() {
    let (s, _fake, _dir) = setup(true, 5);
    let seq = || group(&s).maintenance_seq;
    assert_eq!(seq(), 0);
    s.operator_maintenance_seen("web", true, Some(0), "operator")
        .unwrap();
    assert_eq!(seq(), 1);
    let read_by_a = seq();
    s.operator_maintenance_seen("web", false, Some(1), "operator b")
        .unwrap();
    s.operator_maintenance_seen("web", true, Some(2), "operator b")
        .unwrap();
    assert_eq!(seq(), 3);

    let e = s
        .operator_maintenance_seen("web", false, Some(read_by_a), "operator a")
        .unwrap_err();
    assert!(matches!(e, OrchestratorError::Conflict(_)), "{e}");
    let said = e.to_string();
    assert!(
        said.contains("change 1")
            && said.contains("now on, change 3")
            && said.contains("nothing was done"),
        "{said}"
    );
    assert!(group(&s).maintenance, "maintenance stays on");
    assert_eq!(seq(), 3);
    for _ in 0..8 {
        round(&s, false).await;
    }
    let g = group(&s);
    assert_eq!(
        (g.active.as_str(), g.runbook, g.pending.is_some()),
        ("a", None, false),
        "no decision while in maintenance: {g:#?}"
    );

    // What is already set: taken, no new change.
    s.operator_maintenance_seen("web", true, Some(3), "operator b")
        .unwrap();
    assert_eq!(seq(), 3);
    // As read now: taken.
    s.operator_maintenance_seen("web", false, Some(3), "operator a")
        .unwrap();
    assert!(!group(&s).maintenance);
    assert_eq!(seq(), 4);
    // The view shows it, for the CLI to name.
    let v = s.group_view("web").expect("a view");
    assert_eq!((v.maintenance, v.maintenance_seq), (false, 4));
}

/// `POST /v1/groups/web/maintenance` as the CLI sends it; the answer's
/// status and body.
async fn ask_maintenance(s: &Arc<Shared>, on: bool) -> (u16, String) {
    use tower::ServiceExt;
    let req = axum::extract::Request::post("/v1/groups/web/maintenance")
        .header("authorization", "Bearer operator-secret")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(format!("{{\"on\": {on}}}")))
        .unwrap();
    let r = crate::api::router(s.clone()).oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// An operator turns maintenance on (to work on site a) while the store
/// does not take writes (etcd without a majority), and this orchestrator's
/// licence ends before it does (its lease lapses): the change was never
/// stored, and the next leader has no maintenance. The operator is told
/// so, not 200: the answer waits until the change is stored. With the
/// store writing, the answer is 200 once it is stored. Before, 204 came
/// at once, and the operator took site a down believing no automatic
/// failover would follow.
#[tokio::test(start_paused = true)]
async fn maintenance_is_acknowledged_only_once_stored() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(super::store_fault_tests::FaultyStore::default());
    let (s, _fake, _dir) = setup_with(true, 5, "", store.clone());
    s.writer_settled().await;
    store.full.store(true, SeqCst);
    let asked = tokio::spawn({
        let s = s.clone();
        async move { ask_maintenance(&s, true).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.licence().revoke("test: the lease lapsed");
    let (status, body) = asked.await.unwrap();
    let stored = store.inner.groups().unwrap();
    assert!(
        !stored.iter().any(|g| g.name == "web" && g.maintenance),
        "nothing stored"
    );
    assert!(
        !(200..300).contains(&status) && body.contains("not stored"),
        "{status} {body}"
    );

    // A store that writes: 200 saying what is stored, and it is stored.
    let store = Arc::new(super::store_fault_tests::FaultyStore::default());
    let (s, _fake, _dir) = setup_with(true, 5, "", store.clone());
    let (status, body) = ask_maintenance(&s, true).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""maintenance":true"#), "{body}");
    let stored = store.inner.groups().unwrap();
    assert!(stored.iter().any(|g| g.name == "web" && g.maintenance));
}
