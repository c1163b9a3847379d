//! Operator approvals of pending decisions: refused when the decision
//! was replaced, when its target is down, or when the active site is not
//! confirmed down now (it serves again, or recovered in maintenance).
use super::harness::*;
use super::*;
use crate::store::MemStore;

/// Manual mode, a healthy then down until a failover to b is pending
/// (rounds of a's service alone).
async fn pending_by_rounds() -> (Arc<Shared>, Arc<FakeRoute>, TestDir) {
    let (s, fake, dir) = setup(false, 5);
    for _ in 0..4 {
        round(&s, true).await;
    }
    rounds_until(&s, false, 40, "pending failover", |g| {
        g.phase == Phase::PendingApproval
    })
    .await;
    (s, fake, dir)
}

/// The same through rounds of both sites, every command answered: the
/// failover to b pending.
async fn pending_by_site_rounds() -> (Arc<Shared>, Arc<FakeRoute>, TestDir) {
    let (s, fake, dir) = setup(false, 5);
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    sites_rounds(&s, 10, (false, true), &answer_all).await;
    let p = group(&s).pending.expect("pending failover");
    assert_eq!((p.kind, p.to.as_str()), (RunbookKind::Failover, "b"));
    (s, fake, dir)
}

/// An approval is of the decision as it stands now: a pending failover to
/// b is refused once b is confirmed down (starting it would fence a and
/// then fail), and nothing is recorded.
#[tokio::test(start_paused = true)]
async fn approving_a_failover_to_a_site_now_down_is_refused() {
    let (s, _fake, _dir) = pending_by_rounds().await;
    assert_eq!(group(&s).pending.unwrap().to, "b");
    // Now b dies too (a stays down: the failover stays pending).
    sites_rounds(&s, 12, (false, false), &answer_all).await;
    assert!(s.lock().detector.confirmed_down("b"));
    let approvals = |s: &Shared| {
        s.lock()
            .recent
            .iter()
            .filter(|e| e.kind == EventKind::Approved)
            .count()
    };
    let before = approvals(&s);
    let e = s.operator_approve("web", "operator").unwrap_err();
    assert!(e.to_string().contains("confirmed down now"), "{e}");
    assert!(s.lock().runbooks.is_empty(), "nothing started");
    assert_eq!(approvals(&s), before, "a refused approval recorded");
}

/// An approval names the decision the operator saw: once that one was
/// withdrawn (a recovered) and a new one made (a down again), a late or
/// replayed approval of the first is refused and changes nothing; one
/// naming the decision pending now (or another kind or target) is
/// judged the same way.
#[tokio::test(start_paused = true)]
async fn an_approval_of_a_decision_since_replaced_is_refused() {
    let (s, _fake, _dir) = pending_by_rounds().await;
    let first = group(&s).pending.expect("pending");
    let seen = SeenPending {
        kind: Some(first.kind),
        to: Some(first.to.clone()),
        since_unix_ms: Some(first.since_unix_ms),
    };
    // a recovers: the pending failover is withdrawn; a goes down again: a
    // new one waits.
    rounds_until(&s, true, 40, "withdrawn", |g| g.phase == Phase::Steady).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    rounds_until(&s, false, 40, "pending again", |g| {
        g.phase == Phase::PendingApproval
    })
    .await;
    let second = group(&s).pending.expect("pending");
    assert_ne!(second.since_unix_ms, first.since_unix_ms);
    let approvals = |s: &Shared| {
        s.lock()
            .recent
            .iter()
            .filter(|e| e.kind == EventKind::Approved)
            .count()
    };
    let before = approvals(&s);
    let e = s
        .operator_approve_seen("web", "operator", &seen)
        .unwrap_err();
    assert!(matches!(e, OrchestratorError::Conflict(_)), "{e}");
    assert!(e.to_string().contains("nothing approved"), "{e}");
    for wrong in [
        SeenPending {
            kind: Some(RunbookKind::Failback),
            ..Default::default()
        },
        SeenPending {
            to: Some("a".into()),
            ..Default::default()
        },
    ] {
        let e = s
            .operator_approve_seen("web", "operator", &wrong)
            .unwrap_err();
        assert!(e.to_string().contains("nothing approved"), "{e}");
    }
    let g = group(&s);
    assert_eq!(
        (g.phase, g.pending),
        (Phase::PendingApproval, Some(second.clone()))
    );
    assert!(s.lock().runbooks.is_empty(), "nothing started");
    assert_eq!(approvals(&s), before, "a refused approval recorded");
    // The decision pending now, named as it is: approved.
    s.operator_approve_seen(
        "web",
        "operator",
        &SeenPending {
            kind: Some(second.kind),
            to: Some(second.to.clone()),
            since_unix_ms: Some(second.since_unix_ms),
        },
    )
    .expect("approve");
    assert_eq!(approvals(&s), before + 1);
}

/// A failover pending approval (manual mode) while a is down, approved
/// once a serves again — still confirmed down, not yet recovered: refused,
/// nothing moves. Before, the approval moved users off a serving a. After
/// a down round the same approval runs the failover.
#[tokio::test(start_paused = true)]
async fn a_pending_failover_is_not_approved_while_the_active_site_serves_again() {
    let (s, fake, _dir) = pending_by_site_rounds().await;
    // a serves again.
    sites_rounds(&s, 2, (true, true), &answer_all).await;
    assert!(s.lock().detector.confirmed_down("a"));
    let e = s.operator_approve("web", "operator").unwrap_err();
    assert!(
        matches!(e, OrchestratorError::Conflict(_)) && e.to_string().contains("serves again"),
        "{e}"
    );
    assert!(
        s.lock().runbooks.is_empty(),
        "users moved off a, which serves them"
    );
    assert_eq!(group(&s).phase, Phase::PendingApproval);
    // a is lost again: the decision stands, and the approval runs it.
    round_sites(&s, false, true, &answer_all).await;
    s.operator_approve("web", "operator").expect("approve");
    sites_until(
        &s,
        (false, true),
        &answer_all,
        40,
        "failover after approval",
        |g| g.phase == Phase::Steady && g.active == "b",
    )
    .await;
    assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("b"));
}

/// A failover pending approval (manual mode) while a is down, approved
/// after a round that could not judge a — a path fault: a's agent and b
/// reach it, the orchestrator's own probe fails. a is still confirmed
/// down (a path fault neither counts nor erases), but an approved
/// failover runs after a down round, as an automatic one: refused, saying
/// what the last round judged, and nothing moves. Before, only a healthy
/// last round refused, and the approval demoted an a that served its
/// users. After a down round the same approval runs the failover.
#[tokio::test(start_paused = true)]
async fn a_pending_failover_is_not_approved_after_a_round_that_could_not_judge_the_site() {
    let (s, fake, _dir) = pending_by_site_rounds().await;
    path_fault_to_a(&s).await;
    assert!(s.lock().detector.confirmed_down("a"));
    let e = s.operator_approve("web", "operator").unwrap_err();
    assert!(
        matches!(e, OrchestratorError::Conflict(_))
            && e.to_string().contains("did not judge a down (path_fault"),
        "{e}"
    );
    assert!(s.lock().runbooks.is_empty(), "users moved off a");
    assert_eq!(group(&s).phase, Phase::PendingApproval);
    round_sites(&s, false, true, &answer_all).await;
    s.operator_approve("web", "operator").expect("approve");
    sites_until(
        &s,
        (false, true),
        &answer_all,
        40,
        "failover after approval",
        |g| g.phase == Phase::Steady && g.active == "b",
    )
    .await;
    assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("b"));
}

/// A failover pending approval is in the store; its process stops and a
/// new one starts on that store while a is still down. Its first rounds
/// judge a down but not yet confirmed (that takes `fall` rounds): the
/// pending failover stands — no "withdrawn" event, which would say a
/// recovered when nobody saw it serve — and once a is confirmed down
/// again, the approval runs it. Before, the first round withdrew every
/// pending failover ("… is no longer confirmed down") and the decision came
/// back under a new stamp. It is withdrawn when a is judged recovered.
#[tokio::test(start_paused = true)]
async fn a_pending_failover_is_kept_by_a_process_that_has_not_judged_the_site_yet() {
    let store = Arc::new(MemStore::default());
    let (s, _fake, dir) = setup_with(false, 5, "", store.clone());
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    sites_rounds(&s, 10, (false, true), &answer_all).await;
    let decided = group(&s).pending.expect("pending failover");
    s.licence().revoke("test: the process stops");

    let text = config_text(&dir, false, 5, "");
    let (s2, fake2) = start_from(&text, &dir, store).expect("restart");
    s2.resume();
    let withdrawn = |s: &Shared| {
        s.lock()
            .recent
            .iter()
            .filter(|e| e.kind == EventKind::PendingApproval && e.message.contains("withdrawn"))
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    };
    round_sites(&s2, false, true, &answer_all).await;
    assert!(!s2.lock().detector.confirmed_down("a"));
    let g = group(&s2);
    assert_eq!(g.phase, Phase::PendingApproval, "{g:#?}");
    assert_eq!(g.pending.as_ref(), Some(&decided), "the same decision");
    assert_eq!(withdrawn(&s2), Vec::<String>::new());
    sites_rounds(&s2, 6, (false, true), &answer_all).await;
    assert!(s2.lock().detector.confirmed_down("a"));
    assert_eq!(group(&s2).pending.as_ref(), Some(&decided));
    s2.operator_approve("web", "operator").expect("approve");
    sites_until(
        &s2,
        (false, true),
        &answer_all,
        40,
        "failover after approval",
        |g| g.phase == Phase::Steady && g.active == "b",
    )
    .await;
    assert_eq!(fake2.route.lock().unwrap().0.as_deref(), Some("b"));
    assert_eq!(withdrawn(&s2), Vec::<String>::new());
}

/// A failover pending approval (manual mode) while a is down; the
/// operator puts the group in maintenance (no decision withdraws the
/// pending one then) and a recovers (rise rounds and the hold-down). The
/// approval is refused, saying a is not confirmed down, and nothing
/// moves. Before, it ran the failover: users moved off a recovered a, with
/// no final pass of its data.
#[tokio::test(start_paused = true)]
async fn a_pending_failover_is_not_approved_once_the_active_site_recovered_in_maintenance() {
    let (s, fake, _dir) = pending_by_site_rounds().await;
    s.operator_maintenance("web", true, "operator").unwrap();
    for _ in 0..40 {
        round_sites(&s, true, true, &answer_all).await;
        tokio::time::advance(Duration::from_millis(250)).await;
        if !s.lock().detector.confirmed_down("a") {
            break;
        }
    }
    assert!(!s.lock().detector.confirmed_down("a"), "a never recovered");
    assert!(group(&s).pending.is_some(), "withdrawn in maintenance");
    let e = s.operator_approve("web", "operator").unwrap_err();
    assert!(
        matches!(e, OrchestratorError::Conflict(_))
            && e.to_string()
                .contains("a is not confirmed down now (it recovered)"),
        "{e}"
    );
    assert!(
        s.lock().runbooks.is_empty(),
        "users moved off a, which recovered"
    );
    assert_ne!(fake.route.lock().unwrap().0.as_deref(), Some("b"));
}

/// `POST /v1/groups/web/approve` through the router.
async fn ask_approve(s: &Arc<Shared>) -> (u16, String) {
    use tower::ServiceExt;
    let req = axum::extract::Request::post("/v1/groups/web/approve")
        .header("authorization", "Bearer operator-secret")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = crate::api::router(s.clone()).oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A failover waits for approval; the store stops taking writes (etcd
/// without a majority) and the operator approves; this orchestrator's
/// licence ends before the store takes the decision. The approval was
/// never stored — the next leader has the failover still pending — and the
/// operator is told so, not "runbook N started". Before, 202 came at once
/// and the approval was lost with the step-down, users left on the lost
/// site. With the store writing, the answer is 202 once it is stored.
#[tokio::test(start_paused = true)]
async fn an_approval_is_acknowledged_only_once_its_decision_is_stored() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(super::store_fault_tests::FaultyStore::default());
    let (s, _fake, _dir) = setup_with(false, 5, "", store.clone());
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    sites_rounds(&s, 10, (false, true), &answer_all).await;
    assert_eq!(group(&s).phase, Phase::PendingApproval);
    s.writer_settled().await;
    store.full.store(true, SeqCst);
    let asked = tokio::spawn({
        let s = s.clone();
        async move { ask_approve(&s).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.licence().revoke("test: the lease lapsed");
    let (status, body) = asked.await.unwrap();
    assert!(
        !(200..300).contains(&status) && body.contains("not stored"),
        "{status} {body}"
    );
    let stored = store.inner.groups().unwrap();
    let web = stored.iter().find(|g| g.name == "web").expect("web stored");
    assert_eq!(web.phase, Phase::PendingApproval, "{web:#?}");
    assert!(
        store.inner.runbooks().unwrap().is_empty(),
        "no runbook stored"
    );
}
