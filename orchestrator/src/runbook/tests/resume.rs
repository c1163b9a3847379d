//! A runbook resumed after its orchestrator died in any step: each step
//! runs once more at most, hooks and switches exactly once.
use super::*;
use crate::store::Store;

async fn crash_and_resume(kind: RunbookKind, crash_in: StepName) {
    let (from, to, epoch0) = match kind {
        RunbookKind::Failover => ("a", "b", 1),
        RunbookKind::Failback | RunbookKind::Switchover | RunbookKind::Resync => ("b", "a", 2),
    };
    let w = world_on(from, epoch0);
    w.replication.store(true, Ordering::Relaxed);
    *w.journaled.lock().unwrap() = Some(vec!["x".into()]);
    let rb0 = Runbook::new(
        1,
        "web",
        kind,
        from,
        to,
        epoch0 + 1,
        "detector",
        1_000_000,
        1_000_000,
    );
    let store = CrashStore {
        crash_in: Some(crash_in),
        ..CrashStore::default()
    };
    let p = policy(Fencing::BestEffort, None);
    // The process dies: its runbook waits for a store that takes no more
    // writes, until it is gone.
    let died = tokio::time::timeout(Duration::from_secs(120), execute(rb0, &w, &store, &p)).await;
    assert!(
        died.as_ref()
            .is_err_and(|_| store.crashed.load(Ordering::SeqCst)),
        "crash injected in {crash_in:?}: {:?}",
        died.map(|rb| rb.status)
    );
    // The restarted process reads the store and resumes.
    let persisted = store.inner.runbooks().unwrap().pop().unwrap();
    let at = persisted.next_step().unwrap();
    assert_eq!(persisted.steps[at].name, crash_in);
    assert_eq!(persisted.steps[at].status, StepStatus::Running);
    let fresh = MemStore::default();
    let done = execute(persisted, &w, &fresh, &p).await;
    assert_eq!(
        done.status,
        RunbookStatus::Succeeded,
        "{kind:?} crash in {crash_in:?}: {done:#?}"
    );
    assert_eq!(done.steps[at].attempts, 2);
    let r = w.route.lock().unwrap().clone();
    assert_eq!(
        r,
        (
            Some(done.users_site().to_string()),
            epoch0 + 1,
            u64::from(kind != RunbookKind::Resync)
        ),
        "{kind:?} crash in {crash_in:?}: exactly one switch"
    );
    if kind == RunbookKind::Resync {
        // Users stay on the active site: nobody is demoted or promoted.
        for site in [from, to] {
            assert_eq!(w.runs(site, CommandKind::Promote), 0);
            assert_eq!(w.runs(site, CommandKind::Demote), 0);
        }
        return;
    }
    assert_eq!(
        w.runs(to, CommandKind::Promote),
        1,
        "promote hooks ran once"
    );
    assert!(w.runs(from, CommandKind::Demote) <= 1);
    if kind != RunbookKind::Failover {
        // The journal's mark and names live in the store across the crash.
        let sent = w.sent.lock().unwrap();
        let fin = sent
            .iter()
            .rev()
            .find(|(_, c)| c.kind == CommandKind::FinalSync)
            .expect("a final sync");
        assert_eq!(
            fin.1.changed,
            Some(vec!["x".to_string()]),
            "{kind:?} crash in {crash_in:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_in_every_failover_step() {
    for &step in StepName::for_kind(RunbookKind::Failover) {
        crash_and_resume(RunbookKind::Failover, step).await;
    }
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_in_every_resync_step() {
    for &step in StepName::for_kind(RunbookKind::Resync) {
        crash_and_resume(RunbookKind::Resync, step).await;
    }
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_in_every_failback_step() {
    for &step in StepName::for_kind(RunbookKind::Failback) {
        crash_and_resume(RunbookKind::Failback, step).await;
    }
}

/// A failback whose promote fails is rolled back (the old active site is
/// promoted again and users stay there); the orchestrator dies before the
/// runbook's end is written. The store already says failed, rolling back
/// — written before anything was undone — so a resume finishes the
/// rollback and never the cut-over past it: no switch to the new site,
/// whose data misses what users write at the old one from now on.
#[tokio::test(start_paused = true)]
async fn a_crash_during_a_rollback_never_resumes_the_cut_over() {
    let w = std::sync::Arc::new(world_on("b", 2));
    w.replication.store(true, Ordering::Relaxed);
    w.failing_promote.lock().unwrap().push("a".into());
    // The process dies once the rollback's promote of b was ordered.
    let seen = w.clone();
    let store = CrashStore {
        dies_when: Some(Box::new(move || {
            seen.sent
                .lock()
                .unwrap()
                .iter()
                .any(|(s, c)| s == "b" && c.kind == CommandKind::Promote)
        })),
        ..CrashStore::default()
    };
    let rb0 = Runbook::new(
        1,
        "web",
        RunbookKind::Failback,
        "b",
        "a",
        3,
        "detector",
        1_000_000,
        1_000_000,
    );
    let p = policy(Fencing::BestEffort, None);
    let died = execute(rb0, &*w, &store, &p).await;
    assert_eq!(died.status, RunbookStatus::Failed);
    assert_eq!(w.runs("b", CommandKind::Promote), 1, "rolled back");
    // What a restarted orchestrator finds: a runbook it must not resume.
    let persisted = store.inner.runbooks().unwrap().pop().unwrap();
    assert_eq!(
        persisted.status,
        RunbookStatus::Failed,
        "the failure was not recorded before the rollback: {persisted:#?}"
    );
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("b"));
    // Resumed, it finishes the rollback (the agents answer its orders
    // with what they did) and nothing of the cut-over.
    assert!(persisted.rolling_back, "{persisted:#?}");
    let switches = w.route.lock().unwrap().2;
    let done = execute(persisted, &*w, &MemStore::default(), &p).await;
    assert_eq!(done.status, RunbookStatus::Failed);
    assert!(done.aborted && !done.rolling_back, "{done:#?}");
    assert_eq!(w.runs("b", CommandKind::Promote), 1, "promoted back once");
    assert_eq!(
        w.runs("a", CommandKind::Promote),
        1,
        "a's promote not resumed"
    );
    assert_eq!(
        *w.route.lock().unwrap(),
        (Some("b".to_string()), 3, switches),
        "no switch (b routed again at the runbook's epoch, by the rollback)"
    );
}

/// A failback b → a whose switch reached none of the routing layer is
/// rolled back: the direction is recorded, then a demoted again and b
/// promoted again — and the process dies before the end is recorded. The resumed rollback finds the layer unreadable
/// now (a frontend restarted, or out of this node's reach): it finishes
/// going back — b promoted again, the runbook aborted — and never carries
/// the move forward. Before, the resumed rollback read the layer again
/// and, unable to read it, carried the move forward: a (demoted by the
/// first attempt) recorded as the active site, b left demoted, users on
/// no writable site.
#[tokio::test(start_paused = true)]
async fn a_resumed_rollback_is_not_carried_forward_when_the_layer_reads_differently() {
    let w = std::sync::Arc::new(world_on("b", 2));
    w.replication.store(true, Ordering::Relaxed);
    *w.switch_fault.lock().unwrap() = Some(SwitchFault::Nowhere);
    // The process dies once the rollback's demote of a was ordered.
    let seen = w.clone();
    let store = CrashStore {
        dies_when: Some(Box::new(move || {
            seen.sent
                .lock()
                .unwrap()
                .iter()
                .any(|(s, c)| s == "a" && c.kind == CommandKind::Demote)
        })),
        ..CrashStore::default()
    };
    let rb0 = Runbook::new(
        1,
        "web",
        RunbookKind::Failback,
        "b",
        "a",
        3,
        "detector",
        1_000_000,
        1_000_000,
    );
    let p = policy(Fencing::BestEffort, None);
    let died = execute(rb0, &*w, &store, &p).await;
    assert_eq!(died.status, RunbookStatus::Failed);
    let persisted = store.inner.runbooks().unwrap().pop().unwrap();
    assert!(
        persisted.rolling_back && persisted.rolling_back_to_old,
        "the direction was recorded before anything was undone: {persisted:#?}"
    );
    let promotes_of_b = || {
        w.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, c)| s == "b" && c.kind == CommandKind::Promote)
            .count()
    };
    let before = promotes_of_b();

    *w.switch_fault.lock().unwrap() = Some(SwitchFault::Unreadable);
    let done = execute(persisted, &*w, &MemStore::default(), &p).await;
    assert_eq!(done.status, RunbookStatus::Failed);
    assert!(
        !done.rolled_forward && done.aborted && !done.rolling_back,
        "{done:#?}"
    );
    assert!(
        promotes_of_b() > before,
        "the resumed rollback orders b promoted again"
    );
    let alerts: Vec<String> = w
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k == EventKind::Alert)
        .map(|(_, m)| m.clone())
        .collect();
    assert!(
        !alerts.iter().any(|a| a.contains("not rolled back")),
        "{alerts:#?}"
    );
}

/// A failback's demote of the active site gets no answer in time (its
/// agent runs it, slowly), and the store refuses the failure's record
/// (etcd electing a leader; then the process dies). Nothing is undone
/// while the store says the demote runs: a rollback from memory promoted
/// b again, and the next leader, resuming the demote from the record,
/// got the agent's first answer ("demoted") and went on to promote a
/// while b took writes again.
#[tokio::test(start_paused = true)]
async fn a_failure_the_store_refuses_to_record_is_not_rolled_back_unrecorded() {
    let w = std::sync::Arc::new(world_on("b", 2));
    w.replication.store(true, Ordering::Relaxed);
    *w.demote_takes.lock().unwrap() = Some(Duration::from_secs(60));
    // The store refuses every write once b's demote was sent.
    let seen = w.clone();
    let store = CrashStore {
        dies_when: Some(Box::new(move || {
            seen.sent
                .lock()
                .unwrap()
                .iter()
                .any(|(s, c)| s == "b" && c.kind == CommandKind::Demote)
        })),
        ..CrashStore::default()
    };
    let p = policy(Fencing::BestEffort, None);
    let died = tokio::time::timeout(
        Duration::from_secs(120),
        execute(failback_rb(), &*w, &store, &p),
    )
    .await;
    assert!(
        died.is_err(),
        "the runbook waits for the store to take its failure: {:?}",
        died.map(|rb| (rb.status, rb.aborted))
    );
    assert_eq!(
        w.runs("b", CommandKind::Promote),
        0,
        "b promoted again while the store says its demote runs"
    );
    assert_eq!(
        *w.route.lock().unwrap(),
        (Some("b".to_string()), 2, 0),
        "the routing layer untouched"
    );
    // The next leader resumes the demote, which b's agent answers now.
    let persisted = store.inner.runbooks().unwrap().pop().unwrap();
    let at = persisted.next_step().unwrap();
    assert_eq!(
        (persisted.steps[at].name, persisted.steps[at].status),
        (StepName::Demote, StepStatus::Running)
    );
    *w.demote_takes.lock().unwrap() = None;
    let done = execute(persisted, &*w, &MemStore::default(), &p).await;
    assert_eq!(done.status, RunbookStatus::Succeeded, "{done:#?}");
    assert_eq!(
        w.runs("b", CommandKind::Promote),
        0,
        "b never promoted again"
    );
    assert_eq!(
        *w.route.lock().unwrap(),
        (Some("a".to_string()), 3, 1),
        "one switch, to a"
    );
}
