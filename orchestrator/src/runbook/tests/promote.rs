//! The promote step: failed hooks, checks that never pass, and the fresh
//! checks an outcome carries (whose they are, and when they end the step).
use super::*;

#[tokio::test(start_paused = true)]
async fn failed_promote_never_switches() {
    let w = world_on("a", 1);
    w.failing_promote.lock().unwrap().push("b".into());
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    assert_eq!(p.status, StepStatus::Failed);
    assert!(p.detail.contains("promote failed"), "{}", p.detail);
    assert_eq!(w.route.lock().unwrap().2, 0);
    assert!(w
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|(k, _)| *k == EventKind::RunbookFailed));
}

#[tokio::test(start_paused = true)]
async fn promote_whose_checks_never_pass_times_out() {
    let w = world_on("a", 1);
    w.unhealthy.lock().unwrap().push("b".into());
    let t0 = tokio::time::Instant::now();
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    assert!(p.detail.contains("timed out"), "{}", p.detail);
    assert!(t0.elapsed() >= Duration::from_secs(5));
    assert_eq!(w.route.lock().unwrap().2, 0);
}

#[tokio::test(start_paused = true)]
async fn promote_whose_outcome_carries_passing_checks_does_not_wait_for_a_report() {
    let w = world_on("a", 1);
    // Reports would never show b healthy: only the outcome's checks can end the step.
    w.unhealthy.lock().unwrap().push("b".into());
    *w.fresh_checks.lock().unwrap() = Some(true);
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    assert!(
        p.detail.contains("checks run after the hooks pass"),
        "{}",
        p.detail
    );
    assert_eq!(w.waited.load(Ordering::Relaxed), 0, "no report waited for");
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("b"));
}

fn promote_step(rb: &Runbook) -> &crate::model::StepRecord {
    rb.steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn promote_whose_fresh_checks_fail_ends_on_a_later_passing_report() {
    // The outcome's checks fail (the service is still starting); a later
    // report shows them pass: the step ends then, through the reports.
    let w = world_on("a", 1);
    *w.fresh_checks.lock().unwrap() = Some(false);
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    let p = promote_step(&rb);
    assert!(p.detail.ends_with("; checks pass"), "{}", p.detail);
    assert_eq!(w.waited.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn fresh_checks_answering_another_command_or_epoch_do_not_end_the_promote() {
    // Passing checks in an outcome for an older epoch's promote, or for
    // another command of this epoch, say nothing about this promote.
    for other in ["web:1:promote", "web:2:promote_back", "db:2:promote"] {
        let w = world_on("a", 1);
        w.unhealthy.lock().unwrap().push("b".into());
        *w.fresh_checks.lock().unwrap() = Some(true);
        *w.answer_as.lock().unwrap() = Some(other.into());
        let t0 = tokio::time::Instant::now();
        let rb = failover(&w, policy(Fencing::Off, None)).await;
        assert_eq!(rb.status, RunbookStatus::Failed, "{other}");
        let p = promote_step(&rb);
        assert!(p.detail.contains("timed out"), "{other}: {}", p.detail);
        assert!(t0.elapsed() >= Duration::from_secs(5), "{other}");
        assert_eq!(w.waited.load(Ordering::Relaxed), 1, "{other}");
        assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("a"), "{other}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_older_agent_without_fresh_checks_is_promoted_through_the_reports() {
    // An agent older than `CommandOutcome::checks` sends none: the step
    // waits for a report, as it always did.
    let w = world_on("a", 1);
    assert!(w.fresh_checks.lock().unwrap().is_none());
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    let p = promote_step(&rb);
    assert!(p.detail.ends_with("; checks pass"), "{}", p.detail);
    assert_eq!(w.waited.load(Ordering::Relaxed), 1);
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn promote_whose_outcome_carries_failing_checks_waits_for_reports() {
    let w = world_on("a", 1);
    w.unhealthy.lock().unwrap().push("b".into());
    *w.fresh_checks.lock().unwrap() = Some(false);
    let t0 = tokio::time::Instant::now();
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    // It waited for a report to show them pass, until the step's timeout.
    assert!(p.detail.contains("timed out"), "{}", p.detail);
    assert!(t0.elapsed() >= Duration::from_secs(5));
}
