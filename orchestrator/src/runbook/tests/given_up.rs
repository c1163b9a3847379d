//! Moves that end before users move: a failback given up when the site
//! users are on goes down during its resync (never a failover, never past
//! the demote), and a resync in place into an agent that cannot say what it
//! kept.
use super::*;

/// The site users are on dies while a failback resyncs (a resync may be
/// allowed an hour): the failback is given up at once, before anything
/// was demoted or routed, so that the failover it needs is not held.
#[tokio::test(start_paused = true)]
async fn a_failback_is_given_up_when_the_site_users_are_on_goes_down_during_its_resync() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    *w.resync_takes.lock().unwrap() = Some(Duration::from_secs(3600));
    let start = tokio::time::Instant::now();
    *w.lost_at.lock().unwrap() = Some(start + Duration::from_secs(2));
    let mut p = policy(Fencing::BestEffort, None);
    p.resync_timeout = Duration::from_secs(3600);
    let rb = execute(failback_rb(), &w, &MemStore::default(), &p).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "given up when b was lost, not after the resync's hour: {:?}",
        start.elapsed()
    );
    assert_eq!(rb.status, RunbookStatus::Failed);
    assert!(rb.preempted && rb.aborted, "{rb:#?}");
    assert_eq!(
        statuses(&rb)[..3],
        [
            (StepName::Decide, StepStatus::Done),
            (StepName::Resync, StepStatus::Failed),
            (StepName::Demote, StepStatus::Pending),
        ]
    );
    let detail = &rb.steps[1].detail;
    assert!(
        detail.contains("b, where users are, was confirmed down"),
        "{detail}"
    );
    let sent = w.sent_kinds();
    assert!(
        !sent
            .iter()
            .any(|(_, k)| matches!(k, CommandKind::Demote | CommandKind::Promote)),
        "nothing demoted or promoted: {sent:?}"
    );
    assert_eq!(
        w.route.lock().unwrap().0.as_deref(),
        Some("b"),
        "nothing routed"
    );
}

/// From its demote on, a failback is a cut-over that runs to its end or
/// rolls back: the old active site going down then is what the cut-over
/// does, not a reason to give up.
#[tokio::test(start_paused = true)]
async fn a_failback_past_its_resync_is_not_given_up() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    // The journal and the resync take 300 ms each: lost during the demote.
    *w.lost_at.lock().unwrap() = Some(tokio::time::Instant::now() + Duration::from_millis(700));
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    assert!(!rb.preempted);
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("a"));
}

/// A failover is never given up that way (its old site is down by design).
#[tokio::test(start_paused = true)]
async fn a_failover_is_not_given_up_for_its_old_site_being_down() {
    let w = world_on("a", 1);
    *w.lost_at.lock().unwrap() = Some(tokio::time::Instant::now());
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    assert!(!rb.preempted);
}

/// `warden resync` at a standby whose agent does not say it left nothing
/// in place (older than the field): the runbook stops before replication
/// is started into it, saying why; users never moved.
#[tokio::test(start_paused = true)]
async fn a_resync_into_an_agent_that_cannot_say_what_it_kept_starts_no_replication() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    w.old_agent.store(true, Ordering::Relaxed);
    let rb = runbook(RunbookKind::Resync, "b", "a", 3);
    let rb = run(&w, rb).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    assert!(rb.aborted, "nothing moved: {rb:#?}");
    let detail = &rb.steps[1].detail;
    assert!(detail.contains("upgrade it first"), "{detail}");
    let sent = w.sent_kinds();
    assert_eq!(
        sent,
        [("a".to_string(), CommandKind::Resync)],
        "no start: {sent:?}"
    );
    assert_eq!(
        *w.route.lock().unwrap(),
        (Some("b".into()), 2, 0),
        "not routed"
    );
}
