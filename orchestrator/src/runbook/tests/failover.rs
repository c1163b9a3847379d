//! A failover's steps in order, fencing as configured, hold orders around
//! the cut-over, and a stale epoch at the switch.
use super::*;

#[tokio::test(start_paused = true)]
async fn failover_runs_every_step_in_order_and_switches_once() {
    let w = world_on("a", 1);
    let store = MemStore::default();
    let rb = execute(
        failover_rb(),
        &w,
        &store,
        &policy(Fencing::BestEffort, None),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    use StepName::*;
    use StepStatus::*;
    assert_eq!(
        statuses(&rb),
        vec![
            (Decide, Done),
            (Fence, Done),
            (StopReplication, Skipped),
            (Promote, Done),
            (Switch, Done),
            (Verify, Done)
        ]
    );
    assert_eq!(*w.route.lock().unwrap(), (Some("b".into()), 2, 1));
    assert_eq!(w.runs("a", CommandKind::Demote), 1);
    assert_eq!(w.runs("b", CommandKind::Promote), 1);
    assert!(
        rb.rto_ms.unwrap() >= 1000,
        "RTO counts from the incident start"
    );
    // persisted copy equals the returned one
    assert_eq!(store.runbooks().unwrap()[0], rb);
}

#[tokio::test(start_paused = true)]
async fn best_effort_fencing_goes_on_when_the_old_site_is_unreachable() {
    let w = world_on("a", 1);
    w.stale.lock().unwrap().push("a".into());
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    assert!(
        rb.steps[1].detail.contains("unreachable"),
        "{}",
        rb.steps[1].detail
    );
    assert_eq!(w.runs("a", CommandKind::Demote), 0);
}

/// A site whose agent missed two reports but is not stale: an automatic
/// failover queues its demote without waiting (a whole-site loss must not
/// wait on it); an operator's failover sends it and waits for the answer —
/// a late report must not leave the site it leaves active (CI: a loaded
/// host's report 0.6 s late, the demote never sent).
#[tokio::test(start_paused = true)]
async fn a_silent_but_fresh_site_is_sent_its_demote_awaited_only_when_ordered_by_hand() {
    let w = world_on("a", 1);
    w.silent.lock().unwrap().push("a".into());
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let fence = &rb.steps[1];
    assert!(
        fence
            .detail
            .contains("demote queued for it, not waited for"),
        "{}",
        fence.detail
    );
    let sent = w.sent.lock().unwrap().clone();
    assert!(
        sent.iter()
            .any(|(s, c)| s == "a" && c.kind == CommandKind::Demote && c.epoch == 2),
        "the demote is queued for a at the runbook's epoch: {sent:?}"
    );
    // Not waited for: its hooks' answer never came within the step.
    assert_eq!(w.runs("a", CommandKind::Demote), 0);

    let w = world_on("a", 1);
    w.silent.lock().unwrap().push("a".into());
    let mut rb = failover_rb();
    rb.trigger = "operator".into();
    let rb = execute(
        rb,
        &w,
        &MemStore::default(),
        &policy(Fencing::BestEffort, None),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    assert!(
        rb.steps[1].detail.starts_with("a demoted"),
        "{}",
        rb.steps[1].detail
    );
    assert_eq!(w.runs("a", CommandKind::Demote), 1);
}

#[tokio::test(start_paused = true)]
async fn required_fencing_stops_the_runbook_before_any_switch() {
    let w = world_on("a", 1);
    w.stale.lock().unwrap().push("a".into());
    let rb = execute(
        failover_rb(),
        &w,
        &MemStore::default(),
        &policy(Fencing::Required, Some(vec!["false".into()])),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    assert_eq!(rb.steps[1].status, StepStatus::Failed);
    assert!(rb.steps[1].detail.contains("required"));
    assert_eq!(
        *w.route.lock().unwrap(),
        (Some("a".into()), 1, 0),
        "traffic untouched"
    );
    assert_eq!(w.runs("b", CommandKind::Promote), 0);
    // ...and a working fence command satisfies it.
    let rb = execute(
        failover_rb(),
        &w,
        &MemStore::default(),
        &policy(Fencing::Required, Some(vec!["true".into()])),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    // the command is told which site to fence: the one users leave, never
    // the one being promoted, at the runbook's epoch
    let fenced = w.fenced.lock().unwrap().clone();
    assert_eq!(fenced.len(), 2, "{fenced:?}");
    for (site, target, epoch) in &fenced {
        assert_eq!((site.as_str(), target.as_str()), ("a", "b"));
        assert_eq!(*epoch, rb.epoch);
    }
}

/// A fence command with an agent that is fresh but never answers its
/// demote (hooks hung): the demote waits half the step at most, so the
/// command (a PDU's power-off) has time to run within it. Required fencing
/// waited the whole step before (the step timed out before the command
/// ran); best-effort waited its own 10 s cap, more than half of this 5 s
/// step.
#[tokio::test(start_paused = true)]
async fn a_demote_that_never_answers_leaves_the_fence_command_its_turn() {
    for fencing in [Fencing::Required, Fencing::BestEffort] {
        let w = world_on("a", 1);
        *w.demote_takes.lock().unwrap() = Some(Duration::from_secs(3600));
        let rb = execute(
            failover_rb(),
            &w,
            &MemStore::default(),
            &policy(fencing, Some(vec!["true".into()])),
        )
        .await;
        assert_eq!(rb.status, RunbookStatus::Succeeded, "{fencing:?}: {rb:#?}");
        let fence = &rb.steps[1];
        assert!(
            fence.detail.contains("fence command: exit 0"),
            "{fencing:?}: {}",
            fence.detail
        );
        assert_eq!(w.fenced.lock().unwrap().len(), 1, "{fencing:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_hold_is_ordered_before_the_old_site_is_touched_and_withdrawn_when_no_switch_comes() {
    // Failover: before the fence (the first command), for the steps up to the switch.
    let w = world_on("a", 1);
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    // Fence, stop_replication, promote, switch: 4 × 5 s, plus 1 s.
    assert_eq!(
        *w.holds.lock().unwrap(),
        vec![(2, Duration::from_secs(21), 0)],
        "one order, at the new epoch, before any command"
    );

    // Switchover: before the demote, not during the resync.
    let w = world_on("a", 1);
    let mut so = failover_rb();
    so.kind = RunbookKind::Switchover;
    so.steps = Runbook::new(1, "web", RunbookKind::Switchover, "a", "b", 2, "op", 0, 0).steps;
    let rb = execute(so, &w, &MemStore::default(), &policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let holds = w.holds.lock().unwrap().clone();
    let sent = w.sent.lock().unwrap().clone();
    assert_eq!(holds.len(), 1, "{holds:?}");
    let (_, cmd) = &sent[holds[0].2];
    assert_eq!(
        cmd.kind,
        CommandKind::Demote,
        "the hold comes right before the demote"
    );

    // A failover that fails before its switch withdraws the order.
    let w = world_on("a", 1);
    w.failing_promote.lock().unwrap().push("b".into());
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let holds = w.holds.lock().unwrap().clone();
    assert_eq!(holds.len(), 2, "{holds:?}");
    assert!(
        holds[0].1 > Duration::ZERO && holds[1].1 == Duration::ZERO,
        "{holds:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_epoch_at_the_switch_is_a_fencing_event_not_a_retry_loop() {
    let w = world_on("a", 7); // a newer decision already reached the frontend
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let s = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Switch)
        .unwrap();
    assert_eq!(s.attempts, 1);
    assert!(
        s.detail.contains("epoch 2 is older than the 7"),
        "{}",
        s.detail
    );
    assert!(w
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|(k, _)| *k == EventKind::Fencing));
    assert_eq!(*w.route.lock().unwrap(), (Some("a".into()), 7, 0));
}
