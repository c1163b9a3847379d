//! A failback or switchover whose users' site goes down before its
//! cut-over is given up, so that the failover is not held for as long as
//! its resync may take (`resync_timeout`, an hour by default).
use super::harness::*;
use super::*;

/// The resync step of the group's running runbook is under way.
fn resyncing(s: &Shared) -> bool {
    let st = s.lock();
    st.groups["web"]
        .runbook
        .and_then(|id| st.runbooks.get(&id))
        .is_some_and(|rb| {
            rb.steps
                .iter()
                .any(|x| x.name == StepName::Resync && x.status == StepStatus::Running)
        })
}

/// Failed over to b, a returns and the automatic failback starts its
/// resync at a (which takes long); then b's service dies. Users are on b:
/// the failback is given up at once and the failover to a follows, within
/// a few rounds instead of the resync's hour.
#[tokio::test(start_paused = true)]
async fn the_site_users_are_on_dying_during_a_failback_resync_is_failed_over_at_once() {
    let (s, fake, _dir) = start_replicated("auto", 2);
    let answer_all = |_: &Command| false;
    let resync_runs = |c: &Command| c.kind == CommandKind::Resync;
    for _ in 0..8 {
        round_sites(&s, true, true, &answer_all).await;
    }
    fail_over_to_b(&s).await;
    // a returns; the automatic failback begins and its resync runs on.
    for _ in 0..60 {
        if resyncing(&s) {
            break;
        }
        round_sites(&s, true, true, &resync_runs).await;
    }
    assert!(
        resyncing(&s),
        "the failback's resync runs: {:#?}",
        group(&s)
    );
    let failback = group(&s).runbook.expect("the failback's id");
    // b's service dies while a is still resyncing.
    let mut rounds = 0;
    while !(group(&s).active == "a" && group(&s).phase == Phase::Steady) {
        rounds += 1;
        assert!(
            rounds <= 30,
            "users are still on the dead b after 30 rounds: {:#?}",
            group(&s)
        );
        round_sites(&s, true, false, &resync_runs).await;
    }
    let st = s.lock();
    let rb = &st.runbooks[&failback];
    assert_eq!(rb.kind, RunbookKind::Failback);
    assert!(rb.preempted && rb.aborted, "{rb:#?}");
    let failover = st
        .runbooks
        .values()
        .filter(|r| r.id > failback)
        .find(|r| r.kind == RunbookKind::Failover && r.to == "a")
        .expect("a failover to a followed");
    assert_eq!(failover.status, RunbookStatus::Succeeded);
    assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("a"));
    let events: Vec<String> = st.recent.iter().map(|e| e.message.clone()).collect();
    assert!(
        events
            .iter()
            .any(|m| m.contains("given up before its cut-over: b was confirmed down")),
        "{events:#?}"
    );
    // Not counted as a failed failback (nothing blocked or backed off), nor
    // as an automatic move: with a budget of 2 the failover still went.
    let g = &st.groups["web"];
    assert_eq!(
        (g.failback_aborts, g.failback_blocked.as_deref()),
        (0, None)
    );
    assert_eq!(g.moves_unix_ms.len(), 2, "the two failovers");
    drop(st);
    let m = s.metrics_text(false);
    assert!(
        m.contains(r#"warden_runbooks_finished_total{kind="failback",status="given_up"} 1"#),
        "{m}"
    );
}

/// The active site confirmed down: a switchover or failback (both resync
/// from it) is refused with what to do instead, and an operator's failover
/// to the primary is a failover, not a failback given up at once.
#[tokio::test(start_paused = true)]
async fn moves_that_resync_from_a_site_confirmed_down_are_refused() {
    let (s, _fake, _dir) = start_replicated("manual", 1);
    let none = |_: &Command| false;
    for _ in 0..8 {
        round_sites(&s, true, true, &none).await;
    }
    fail_over_to_b(&s).await;
    for _ in 0..16 {
        round_sites(&s, true, true, &none).await;
    }
    // b's service dies; the budget (1) is spent: the failover waits.
    for _ in 0..12 {
        round_sites(&s, true, false, &none).await;
    }
    assert_eq!(group(&s).phase, Phase::PendingApproval, "{:#?}", group(&s));
    let e = s.operator_switchover("web", "a", "operator").unwrap_err();
    assert!(
        e.to_string()
            .contains("b is confirmed down: a switchover resyncs from it"),
        "{e}"
    );
    let e = s.operator_failback("web", "operator").unwrap_err();
    assert!(
        e.to_string()
            .contains("b is confirmed down: a failback resyncs from it"),
        "{e}"
    );
    let id = s
        .operator_failover("web", "a", "operator")
        .expect("failover");
    assert_eq!(s.lock().runbooks[&id].kind, RunbookKind::Failover);
    for _ in 0..20 {
        if group(&s).phase == Phase::Steady {
            break;
        }
        round_sites(&s, true, false, &none).await;
    }
    assert_eq!(
        (group(&s).active.as_str(), group(&s).phase),
        ("a", Phase::Steady)
    );
}

/// With `max_lag_on_failover`, the failover after a given-up failback
/// waits for approval: the returning site was mid-resync, its lag unknown.
/// The operator's approval moves users.
#[tokio::test(start_paused = true)]
async fn after_a_given_up_failback_a_lag_bound_holds_the_failover_for_approval() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "")
        + "[groups.web.replication]\nplan = \"none\"\nmax_lag_on_failover = \"30s\"\n";
    let (s, fake) =
        start_from(&text, &dir, Arc::new(crate::store::MemStore::default())).expect("config");
    let none = |_: &Command| false;
    let resync_runs = |c: &Command| c.kind == CommandKind::Resync;
    for _ in 0..8 {
        round_sites(&s, true, true, &none).await;
    }
    // a's failure: b's lag is unknown too, so this failover is approved.
    for _ in 0..12 {
        round_sites(&s, false, true, &none).await;
    }
    s.operator_approve("web", "operator")
        .expect("approve the failover to b");
    fail_over_to_b(&s).await;
    for _ in 0..60 {
        if resyncing(&s) {
            break;
        }
        round_sites(&s, true, true, &resync_runs).await;
    }
    assert!(
        resyncing(&s),
        "the failback's resync runs: {:#?}",
        group(&s)
    );
    for _ in 0..20 {
        if group(&s).phase == Phase::PendingApproval {
            break;
        }
        round_sites(&s, true, false, &resync_runs).await;
    }
    let g = group(&s);
    assert_eq!(g.phase, Phase::PendingApproval, "{g:#?}");
    let reason = g.pending.expect("pending").reason;
    assert!(
        reason.contains("unknown") && reason.contains("max_lag_on_failover"),
        "{reason}"
    );
    assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("b"));
    s.operator_approve("web", "operator").expect("approve");
    for _ in 0..20 {
        if group(&s).active == "a" && group(&s).phase == Phase::Steady {
            break;
        }
        round_sites(&s, true, false, &resync_runs).await;
    }
    assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("a"));
}
