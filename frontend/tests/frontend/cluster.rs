//! Hold orders across a move of the orchestrators to a new etcd cluster,
//! whose revisions — the leaders' terms — start over: the new cluster's
//! orders are taken at the group's current epoch, the old cluster's are
//! refused from then on, after a restart too (`fence.json`).

use reqwest::StatusCode;

use crate::harness::{assert_refused, start_settings};
use crate::kept::{echo_web_kept_in, stop};

/// Cluster a's leader (term 17) placed a hold order at epoch 2; the
/// orchestrators are moved to a new etcd cluster b, whose leader is at
/// term 3. Its orders at epoch 2 are taken (before: refused as older
/// than term 17's — "older order" — until the group's next epoch); a
/// late order of cluster a, whatever its term, is refused and says so,
/// also once the frontend restarted; b's own orders are placed by term
/// among themselves. One orchestrator (no cluster, term 0) after b is no
/// move: placed by its term, below b's (a lone orchestrator left running
/// must not take the frontend off the etcd cluster), it is refused and b's
/// next order is taken.
#[tokio::test]
async fn a_new_etcd_clusters_hold_orders_are_taken_and_the_old_clusters_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _a, _b) = echo_web_kept_in(dir.path()).await;
    let fe = start_settings(s.clone()).await;
    assert_eq!(fe.put("web", "a", 2, "immediate").await.0, StatusCode::OK);
    let seq = 1_796_540_980_000;
    let (a, b) = (Some(0xa), Some(0xb));
    let (status, body) = fe.hold_of(2, (a, 17, seq), 60_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = fe.hold_of(2, (b, 3, seq + 1), 60_000).await;
    assert_eq!(status, StatusCode::OK, "the new cluster's order: {body}");
    assert_eq!(body["hold_term"], 3, "{body}");
    let (status, body) = fe.hold_of(2, (a, 40, seq + 2), 0).await;
    assert_refused(
        status,
        &body,
        "of etcd cluster a, which this frontend left for etcd cluster b",
    );
    stop(fe).await;

    let kept = std::fs::read_to_string(dir.path().join("fe-test/fence.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(
        (kept["cluster"].clone(), kept["retired"].clone()),
        (11.into(), serde_json::json!([10])),
        "{kept}"
    );
    let fe = start_settings(s.clone()).await;
    let (status, body) = fe.hold_of(2, (a, 17, seq + 3), 0).await;
    assert_refused(status, &body, "which this frontend left for etcd cluster b");
    let (status, body) = fe.hold_of(2, (b, 2, seq + 4), 0).await;
    assert_refused(status, &body, "older order");
    let (status, body) = fe.hold_of(2, (b, 3, seq + 1), 60_000).await;
    assert_eq!(status, StatusCode::OK, "a repeat of b's order: {body}");

    let (status, body) = fe.hold_of(2, (None, 0, seq + 5), 0).await;
    assert_refused(status, &body, "older order");
    let (status, body) = fe.hold_of(2, (b, 4, seq + 6), 0).await;
    assert_eq!(status, StatusCode::OK, "b's next order: {body}");
    assert_eq!(body["hold_term"], 4, "{body}");
}

/// A route order of a cluster this frontend left — a leader of the old
/// cluster still licensed there (its etcd kept a majority) after the
/// orchestrators moved to cluster b — is refused whatever its epoch, and
/// the route stays; after a restart too. Before, a route order stated no
/// cluster and was judged by its epoch alone: the old leader's rollback
/// route at a new epoch was taken, the new cluster's leader saw an epoch
/// ahead it never decided, and its next moves were refused. The new
/// cluster's own route orders (and an order stating no cluster) are
/// judged by their epoch as ever.
#[tokio::test]
async fn a_route_order_of_a_cluster_the_frontend_left_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _a, _b) = echo_web_kept_in(dir.path()).await;
    let fe = start_settings(s.clone()).await;
    assert_eq!(fe.put("web", "b", 5, "immediate").await.0, StatusCode::OK);
    let seq = 1_796_540_980_000;
    let (a, b) = (0xa_u64, 0xb_u64);
    // Cluster a's leader placed a hold order; the orchestrators move to
    // cluster b: its first hold order.
    let (status, body) = fe.hold_of(5, (Some(a), 40, seq - 10), 0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = fe.hold_of(5, (Some(b), 3, seq), 60_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let old = |epoch: u64, site: &str| {
        serde_json::json!({ "site": site, "epoch": epoch, "mode": "immediate", "term": 40, "cluster": a })
            .to_string()
    };
    let (status, body) = fe
        .put_raw("web", old(6, "b"), Some(crate::harness::TOKEN))
        .await;
    assert_refused(
        status,
        &body,
        "route order refused: of etcd cluster a, which this frontend left for etcd cluster b",
    );
    let route = fe.route("web").await;
    assert_eq!(
        (route["site"].clone(), route["epoch"].clone()),
        ("b".into(), 5.into()),
        "{route}"
    );
    stop(fe).await;

    let fe = start_settings(s.clone()).await;
    let (status, body) = fe
        .put_raw("web", old(7, "a"), Some(crate::harness::TOKEN))
        .await;
    assert_refused(status, &body, "which this frontend left for etcd cluster b");
    // (A restarted frontend routes nothing until told; its fence is kept.)
    let route = fe.route("web").await;
    assert_eq!(
        (route["site"].clone(), route["epoch"].clone()),
        (serde_json::Value::Null, 5.into()),
        "{route}"
    );
    // Cluster b's leader routes at 6: taken.
    let new = serde_json::json!({ "site": "a", "epoch": 6, "mode": "immediate", "term": 3, "cluster": b });
    let (status, body) = fe
        .put_raw("web", new.to_string(), Some(crate::harness::TOKEN))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(fe.put("web", "a", 7, "immediate").await.0, StatusCode::OK);
}

/// A route order of a new cluster is the orchestrators' move as a hold
/// order is: with no hold order of cluster b before it (b's leader
/// re-applies the route by reconciliation), the frontend keeps b from
/// then on — a later route order of cluster a, the deposed leader's
/// rollback at a higher epoch, is refused, after a restart too. Before,
/// only a hold order moved the frontend, and a's order was judged by its
/// epoch alone: taken. A route order refused by its epoch moves nothing.
#[tokio::test]
async fn a_route_order_of_a_new_cluster_moves_the_frontend() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _a, _b) = echo_web_kept_in(dir.path()).await;
    let fe = start_settings(s.clone()).await;
    let (a, b, c) = (0xa_u64, 0xb_u64, 0xc_u64);
    let order = |epoch: u64, site: &str, term: u64, cluster: u64| {
        serde_json::json!({ "site": site, "epoch": epoch, "mode": "immediate", "term": term, "cluster": cluster })
            .to_string()
    };
    let token = Some(crate::harness::TOKEN);
    let (status, body) = fe.put_raw("web", order(5, "a", 40, a), token).await;
    assert_eq!(status, StatusCode::OK, "cluster a's route: {body}");
    // Cluster c's order below the epoch: refused by its epoch, no move.
    let (status, body) = fe.put_raw("web", order(4, "b", 2, c), token).await;
    assert_refused(status, &body, "stale epoch 4 < 5");
    // Cluster b's leader re-applies the route at the same epoch: the move.
    let (status, body) = fe.put_raw("web", order(5, "a", 3, b), token).await;
    assert_eq!(status, StatusCode::OK, "cluster b's route: {body}");
    let (status, body) = fe.put_raw("web", order(6, "b", 41, a), token).await;
    assert_refused(
        status,
        &body,
        "route order refused: of etcd cluster a, which this frontend left for etcd cluster b",
    );
    let route = fe.route("web").await;
    assert_eq!(
        (route["site"].clone(), route["epoch"].clone()),
        ("a".into(), 5.into()),
        "{route}"
    );
    stop(fe).await;

    let kept = std::fs::read_to_string(dir.path().join("fe-test/fence.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(
        (kept["cluster"].clone(), kept["retired"].clone()),
        (11.into(), serde_json::json!([10])),
        "cluster c's refused order moved nothing: {kept}"
    );
    let fe = start_settings(s).await;
    let (status, body) = fe.put_raw("web", order(7, "b", 42, a), token).await;
    assert_refused(status, &body, "which this frontend left for etcd cluster b");
    let (status, body) = fe.put_raw("web", order(6, "b", 3, b), token).await;
    assert_eq!(status, StatusCode::OK, "cluster b's next route: {body}");
}
