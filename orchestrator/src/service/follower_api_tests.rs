//! What a node that does not lead answers: an operator's action acts on
//! nothing and says who leads; its reads say when its copy of the state
//! cannot be kept current.
use super::harness::*;
use super::*;
use crate::etcd::leader::Leadership;
use crate::store::{MemStore, Store};
use tower::ServiceExt;

/// A follower n1 (etcd answers; the leader key names `leader`) asked for a
/// failover of web to b: it answers 503; the node, the answer's body and
/// the node's directory (removed when dropped).
async fn failover_asked_of_follower_n1_while(
    leader: &str,
) -> (Arc<Shared>, serde_json::Value, TestDir) {
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let mut seen = Leadership::new("n1", Duration::from_secs(3));
    seen.leader = Some(leader.into());
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
    (s, body, dir)
}

/// The nodes' configs differ (one restarted with a new file): the leader
/// `n9` is a node this follower's config does not name, so it cannot
/// redirect there. It refuses the action (503, nothing started) naming
/// the leader. Before, it said "no orchestrator leads now; actions wait
/// for a leader" while n9 led and acted.
#[tokio::test]
async fn a_follower_names_a_leader_its_config_does_not_know() {
    let (s, body, _dir) = failover_asked_of_follower_n1_while("n9").await;
    assert_eq!(body["leader"], "n9", "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the leader is n9") && !error.contains("no orchestrator leads"),
        "{body}"
    );
    assert!(s.lock().runbooks.is_empty(), "a follower started a runbook");
}

/// The same node name on two hosts (one etcd): the leader key names n1,
/// held by the other host's n1, which leads and acts. This n1 does not
/// hold the lease: it refuses the action (503, nothing started), names
/// the leader and says why it can be its own name. Before, it said "no
/// orchestrator leads now; actions wait for a leader".
#[tokio::test]
async fn a_follower_named_like_the_leader_says_another_process_holds_its_name() {
    let (s, body, _dir) = failover_asked_of_follower_n1_while("n1").await;
    assert_eq!(body["leader"], "n1", "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("another process started as n1") && !error.contains("no orchestrator leads"),
        "{body}"
    );
    assert!(!error.contains("  "), "runs of spaces in {error:?}");
    assert!(s.lock().runbooks.is_empty(), "a follower started a runbook");
}

/// A memory store whose groups stop being readable (a record written by a
/// newer version, say) once `broken` is set.
#[derive(Default)]
struct Unreadable {
    inner: MemStore,
    broken: std::sync::atomic::AtomicBool,
}

impl Store for Unreadable {
    fn groups(&self) -> Result<Vec<GroupState>, OrchestratorError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(OrchestratorError::store(
                "decode /warden/groups/web",
                "unknown variant `draining`",
            ));
        }
        self.inner.groups()
    }
    fn put_group(&self, g: &GroupState) -> Result<(), OrchestratorError> {
        self.inner.put_group(g)
    }
    fn put_group_and_runbook(&self, g: &GroupState, rb: &Runbook) -> Result<(), OrchestratorError> {
        self.inner.put_group_and_runbook(g, rb)
    }
    fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError> {
        self.inner.put_runbook(rb)
    }
    fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError> {
        self.inner.runbooks()
    }
    fn delete_runbooks(&self, ids: &[u64]) -> Result<(), OrchestratorError> {
        self.inner.delete_runbooks(ids)
    }
    fn put_event(&self, e: &Event) -> Result<(), OrchestratorError> {
        self.inner.put_event(e)
    }
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError> {
        self.inner.events(after, limit)
    }
    fn last_event_id(&self) -> Result<u64, OrchestratorError> {
        self.inner.last_event_id()
    }
    fn prune_events(
        &self,
        keep: usize,
        before: u64,
        max: usize,
    ) -> Result<usize, OrchestratorError> {
        self.inner.prune_events(keep, before, max)
    }
}

/// A follower whose mirror of the store fails (a group record it cannot
/// read) says so in every group's alerts — what it shows may be older
/// than the leader's — and the alert ends once it reads the store again.
/// Before, the failure was silent: the follower served its last copy
/// (status, groups, runbooks) as if current, for good.
#[tokio::test]
async fn a_follower_that_cannot_mirror_the_store_says_its_view_may_be_stale() {
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let store = Arc::new(Unreadable::default());
    let s = start_routed_as(
        &text,
        &dir,
        store.clone(),
        |_| Arc::new(FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();
    let stale = |s: &Shared| {
        s.alerts("web")
            .into_iter()
            .filter(|a| a.contains("may be older than the leader's"))
            .collect::<Vec<_>>()
    };
    s.mirror_store().await;
    assert!(stale(&s).is_empty(), "{:?}", s.alerts("web"));
    store
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    s.mirror_store().await;
    let said = stale(&s);
    assert!(
        said.len() == 1 && said[0].contains("unknown variant `draining`"),
        "a follower whose copy of the state went stale said nothing: {:?}",
        s.alerts("web")
    );
    store
        .broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    s.mirror_store().await;
    assert!(stale(&s).is_empty(), "{:?}", s.alerts("web"));
}
