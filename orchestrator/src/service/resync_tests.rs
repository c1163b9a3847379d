//! `warden resync`: replication paused since a failover resumes without
//! moving users: the standby is resynced from the active site, which then
//! replicates to it, vouching that its peer was resynced from it.
use super::harness::*;
use super::*;

/// Failed over to b (failback manual): replication from b is paused; a is
/// back and healthy. `warden resync` resyncs a from b and restarts
/// replication b → a; users stay on b throughout, routed again at the
/// runbook's epoch.
#[tokio::test(start_paused = true)]
async fn a_resync_resumes_paused_replication_without_moving_users() {
    let (s, fake, _dir) = replicated("manual", 5, "").await;
    let e = s.operator_resync("web", "operator").unwrap_err();
    assert!(e.to_string().contains("is not paused"), "{e}");
    fail_over_to_b(&s).await;
    assert!(group(&s).replication_paused_since_unix_ms.is_some());
    sites_rounds(&s, 16, (true, true), &answer_all).await;
    assert_eq!(group(&s).active, "b", "failback is manual");
    let routed_before = fake.activations.load(std::sync::atomic::Ordering::SeqCst);
    // An automatic failback stopped earlier stays stopped: a resync moves
    // nobody and ends nothing but the pause.
    s.lock().groups.get_mut("web").unwrap().failback_blocked = Some("stopped".into());

    let id = s.operator_resync("web", "operator").expect("resync");
    let e = s.operator_resync("web", "operator").unwrap_err();
    assert!(e.to_string().contains("is running"), "{e}");
    let sent = sites_until(&s, (true, true), &answer_all, 40, "the resync", |g| {
        g.phase == Phase::Steady && g.runbook.is_none()
    })
    .await;
    let g = group(&s);
    let rb = s.lock().runbooks[&id].clone();
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    assert_eq!(
        (rb.kind, rb.from.as_str(), rb.to.as_str()),
        (RunbookKind::Resync, "b", "a")
    );
    assert_eq!(g.active, "b", "users stay on b");
    assert_eq!(g.failback_blocked.as_deref(), Some("stopped"));
    assert!(g.replication_paused_since_unix_ms.is_none(), "{g:#?}");
    // a fetched from b; then b replicates toward a, saying a was resynced.
    let resync = sent
        .iter()
        .find(|(_, c)| c.kind == CommandKind::Resync)
        .expect("a resync order");
    assert_eq!(
        (resync.0.as_str(), resync.1.peer.as_deref()),
        ("a", Some("b"))
    );
    assert!(
        resync.1.stays_target,
        "a stays b's target: nothing kept in place"
    );
    let start = sent
        .iter()
        .find(|(_, c)| c.kind == CommandKind::StartReplication && c.epoch == rb.epoch)
        .expect("a start order");
    assert_eq!(
        (start.0.as_str(), start.1.peer.as_deref()),
        ("b", Some("a"))
    );
    assert!(start.1.peer_resynced);
    assert!(!sent
        .iter()
        .any(|(_, c)| matches!(c.kind, CommandKind::Demote | CommandKind::Promote)));
    // The route: b again, at the runbook's epoch (older orders void there).
    assert_eq!(
        *fake.route.lock().unwrap(),
        (Some("b".to_string()), rb.epoch)
    );
    assert_eq!(
        fake.activations.load(std::sync::atomic::Ordering::SeqCst),
        routed_before + 1
    );
    let e = s.operator_resync("web", "operator").unwrap_err();
    assert!(e.to_string().contains("is not paused"), "{e}");

    // b now replicates into a: a failback finds a replica at a (its
    // differences are b's older versions, not writes of its own).
    s.accept_report(AgentReport {
        site: "b".into(),
        seq: 2,
        started_unix_ms: 0,
        boot: String::new(),
        checks: vec![check(true)],
        peers: vec![],
        outcomes: vec![],
        replication: vec![ReplicationStatus {
            group: "web".into(),
            role: "source".into(),
            peer: Some("a".into()),
            epoch: rb.epoch,
            lag_ms: Some(100),
            ..ReplicationStatus::default()
        }],
        authority: vec![],
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
    });
    let fb = s.operator_failback("web", "operator").expect("failback");
    assert!(s.lock().runbooks[&fb].replica, "a was b's replica");
}

/// A failback straight after a failover (replication paused: the
/// returning primary may hold writes of its own) is no replica's.
#[tokio::test(start_paused = true)]
async fn a_failback_after_a_failover_is_not_to_a_replica() {
    let (s, _fake, _dir) = replicated("manual", 5, "").await;
    fail_over_to_b(&s).await;
    sites_rounds(&s, 16, (true, true), &answer_all).await;
    let fb = s.operator_failback("web", "operator").expect("failback");
    assert!(!s.lock().runbooks[&fb].replica);
}

/// A node that lost the licence to act (a deposed leader) starts no
/// resync: nothing is ordered, replication stays paused.
#[tokio::test(start_paused = true)]
async fn a_deposed_node_starts_no_resync() {
    let (s, _fake, _dir) = replicated("manual", 5, "").await;
    fail_over_to_b(&s).await;
    sites_rounds(&s, 16, (true, true), &answer_all).await;
    s.licence.revoke("test: deposed");
    assert!(s.operator_resync("web", "operator").is_err());
    let sent = sites_rounds(&s, 8, (true, true), &answer_all).await;
    assert!(sent.is_empty(), "a deposed node ordered: {sent:?}");
    assert!(!s
        .lock()
        .runbooks
        .values()
        .any(|r| r.kind == RunbookKind::Resync));
    assert!(group(&s).replication_paused_since_unix_ms.is_some());
}

/// A group without a replication plan has nothing to resync.
#[tokio::test(start_paused = true)]
async fn a_resync_without_a_replication_plan_is_refused() {
    let (s, _fake, _dir) = setup(true, 5);
    let e = s.operator_resync("web", "operator").unwrap_err();
    assert!(e.to_string().contains("no replication plan"), "{e}");
}

/// A resync carries the group as the operator saw it (its active site,
/// its epoch), as a move does: asked before the group moved and landing
/// after (a proxy's retry, a command re-run from shell history), it would
/// bring the other site in line — one whose own writes the operator never
/// looked at. It is refused and nothing starts; one for the group as it is
/// now is taken. Before, the resync's body was refused whole (`warden
/// resync` sent none) and a late resync ran whatever the group had become.
#[tokio::test(start_paused = true)]
async fn a_resync_asked_of_a_group_that_moved_on_is_refused() {
    let (s, _fake, _dir) = replicated("manual", 5, "").await;
    let looked = group(&s);
    fail_over_to_b(&s).await;
    sites_rounds(&s, 16, (true, true), &answer_all).await;
    let now = group(&s);
    assert_eq!(now.active, "b");
    assert!(now.replication_paused_since_unix_ms.is_some());
    let seen = |from: &str, epoch: u64| SeenGroup {
        from: Some(from.into()),
        epoch: Some(epoch),
    };
    let runbooks = s.lock().runbooks.len();
    for stale in [
        seen("a", looked.epoch),
        seen("a", now.epoch),
        seen("b", looked.epoch),
    ] {
        let e = s
            .operator_resync_seen("web", "operator", &stale)
            .unwrap_err();
        assert!(
            matches!(e, OrchestratorError::Conflict(_))
                && e.to_string().contains("resync")
                && e.to_string()
                    .contains(&format!("it now runs on b at epoch {}", now.epoch)),
            "{stale:?}: {e}"
        );
    }
    assert_eq!(s.lock().runbooks.len(), runbooks, "nothing started");
    assert!(group(&s).replication_paused_since_unix_ms.is_some());
    let id = s
        .operator_resync_seen("web", "operator", &seen("b", now.epoch))
        .expect("as seen");
    let rb = s.lock().runbooks[&id].clone();
    assert_eq!(
        (rb.kind, rb.from.as_str(), rb.to.as_str()),
        (RunbookKind::Resync, "b", "a")
    );
}
