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

/// A command a resync at the returning site keeps running (long).
fn resync_runs(c: &Command) -> bool {
    c.kind == CommandKind::Resync
}

/// Rounds with both sites up until the automatic failback's resync runs
/// (held running at a).
async fn failback_resyncing(s: &Arc<Shared>) {
    sites_until(
        s,
        (true, true),
        &resync_runs,
        60,
        "the failback's resync runs",
        |_| resyncing(s),
    )
    .await;
}

/// Failed over to b, a returns and the automatic failback starts its
/// resync at a (which takes long); then b's service dies. Users are on b:
/// the failback is given up at once and the failover to a follows, within
/// a few rounds instead of the resync's hour.
#[tokio::test(start_paused = true)]
async fn the_site_users_are_on_dying_during_a_failback_resync_is_failed_over_at_once() {
    let (s, fake, _dir) = replicated("auto", 2, "").await;
    fail_over_to_b(&s).await;
    // a returns; the automatic failback begins and its resync runs on.
    failback_resyncing(&s).await;
    let failback = group(&s).runbook.expect("the failback's id");
    // b's service dies while a is still resyncing.
    sites_until(
        &s,
        (true, false),
        &resync_runs,
        30,
        "users are still on the dead b",
        |g| g.active == "a" && g.phase == Phase::Steady,
    )
    .await;
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
    let (s, _fake, _dir) = replicated("manual", 1, "").await;
    fail_over_to_b(&s).await;
    sites_rounds(&s, 16, (true, true), &answer_all).await;
    // b's service dies; the budget (1) is spent: the failover waits.
    sites_rounds(&s, 12, (true, false), &answer_all).await;
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
    sites_until(&s, (true, false), &answer_all, 20, "the failover", |g| {
        g.phase == Phase::Steady
    })
    .await;
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
    let (s, fake, _dir) = replicated("auto", 5, "max_lag_on_failover = \"30s\"\n").await;
    // a's failure: b's lag is unknown too, so this failover is approved.
    sites_rounds(&s, 12, (false, true), &answer_all).await;
    s.operator_approve("web", "operator")
        .expect("approve the failover to b");
    fail_over_to_b(&s).await;
    failback_resyncing(&s).await;
    sites_until(&s, (true, false), &resync_runs, 20, "pending", |g| {
        g.phase == Phase::PendingApproval
    })
    .await;
    let g = group(&s);
    assert_eq!(g.phase, Phase::PendingApproval, "{g:#?}");
    let reason = g.pending.expect("pending").reason;
    assert!(
        reason.contains("unknown") && reason.contains("max_lag_on_failover"),
        "{reason}"
    );
    assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("b"));
    s.operator_approve("web", "operator").expect("approve");
    sites_until(
        &s,
        (true, false),
        &resync_runs,
        20,
        "the approved failover",
        |g| g.active == "a" && g.phase == Phase::Steady,
    )
    .await;
    assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("a"));
}
