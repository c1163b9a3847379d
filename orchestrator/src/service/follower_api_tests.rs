//! An operator's action sent to a node that does not lead: it acts on
//! nothing and says who leads.
use super::harness::*;
use super::*;
use crate::etcd::leader::Leadership;
use crate::store::MemStore;
use tower::ServiceExt;

/// The nodes' configs differ (one restarted with a new file): the leader
/// `n9` is a node this follower's config does not name, so it cannot
/// redirect there. It refuses the action (503, nothing started) naming
/// the leader. Before, it said "no orchestrator leads now; actions wait
/// for a leader" while n9 led and acted.
#[tokio::test]
async fn a_follower_names_a_leader_its_config_does_not_know() {
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let mut seen = Leadership::new("n1", Duration::from_secs(3));
    seen.leader = Some("n9".into());
    seen.etcd_ok = true;
    seen.etcd_trouble = None;
    let (_tx, view) = watch::channel(seen);
    let s = start_routed_as(
        &text,
        &dir,
        Arc::new(MemStore::default()),
        |_| Arc::new(FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();
    let req = axum::http::Request::post("/v1/groups/web/failover")
        .header("authorization", "Bearer operator-secret")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"to":"b"}"#))
        .unwrap();
    let r = crate::api::router(s.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        status,
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "{body}"
    );
    assert_eq!(body["leader"], "n9", "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the leader is n9") && !error.contains("no orchestrator leads"),
        "{body}"
    );
    assert!(s.lock().runbooks.is_empty(), "a follower started a runbook");
}
