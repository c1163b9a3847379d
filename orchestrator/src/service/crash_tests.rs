//! The orchestrator killed mid-runbook and started again on the store it
//! left: what the restarted process finishes, and what it never resumes.
use super::harness::*;
use super::store_fault_tests::FaultyStore;
use super::*;
use crate::store::{MemStore, Store};
use crate::wrapped_store::{Wrapped, Write};

/// A failback b → a whose promote of a times out (a's agent never
/// answers it): the failure is recorded, and the process dies right there,
/// before its rollback has promoted b again — b is demoted, and users are
/// routed to b. Started again on that store, the orchestrator finishes the
/// rollback (a demoted again, b promoted again: users stay on b, the group
/// steady) and never carries the cut-over forward. Before, it left the
/// group failed with b demoted: reconciliation routed users to a site
/// whose demote hooks had stopped it, until an operator acted.
#[tokio::test(start_paused = true)]
async fn a_rollback_cut_short_by_a_crash_is_finished_after_the_restart() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "").replace(
        "automatic = true",
        "automatic = true\nfailback = \"manual\"",
    );
    let store = Arc::new(FaultyStore::default());
    let (s, fake) = start_from(&text, &dir, store.clone()).expect("config");
    sites_rounds(&s, 8, (true, true), &answer_all).await;
    fail_over_to_b(&s).await;
    store.dies_at_failure.store(true, SeqCst);
    let mut started = Err(OrchestratorError::Conflict("not asked".into()));
    for _ in 0..60 {
        started = s.operator_failback("web", "operator");
        if started.is_ok() {
            break;
        }
        round_sites(&s, true, true, &answer_all).await;
    }
    let id = started.expect("failback once a has recovered");
    let a_promote = |c: &Command| c.kind == CommandKind::Promote && c.site == "a";
    let stored = |id: u64| {
        store
            .inner
            .runbooks()
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
    };
    for _ in 0..80 {
        if stored(id).is_some_and(|r| r.status == RunbookStatus::Failed) {
            break;
        }
        round_sites(&s, true, true, &a_promote).await;
    }
    // SIGKILL: nothing more of that process acts or is written.
    s.licence().revoke("test: the process is killed");
    let died = stored(id).expect("the failback is stored");
    assert_eq!(died.status, RunbookStatus::Failed, "{died:#?}");
    assert!(
        died.steps
            .iter()
            .any(|s| s.name == StepName::Demote && s.status == StepStatus::Done),
        "b was demoted: {died:#?}"
    );

    // Started again on the store as the killed process left it.
    let copy = MemStore::default();
    for g in store.inner.groups().unwrap() {
        copy.put_group(&g).unwrap();
    }
    for rb in store.inner.runbooks().unwrap() {
        copy.put_runbook(&rb).unwrap();
    }
    let (s2, fake2) = start_from(&text, &dir, Arc::new(copy)).expect("restart");
    let route = fake.route.lock().unwrap().clone();
    *fake2.route.lock().unwrap() = route.clone();
    s2.resume();
    let sent = sites_until(
        &s2,
        (true, true),
        &answer_all,
        40,
        "the failback's end",
        |g| g.phase != Phase::Running,
    )
    .await;
    let g = group(&s2);
    let rb = s2.lock().runbooks[&id].clone();
    assert_eq!(
        (g.phase, g.active.as_str()),
        (Phase::Steady, "b"),
        "b promoted again and users on it: {g:#?}\n{rb:#?}"
    );
    assert!(rb.aborted && !rb.rolling_back, "{rb:#?}");
    let told = |site: &str, id: &str| sent.iter().any(|(s, c)| s == site && c.id == id);
    assert!(
        told("a", &format!("web:{}:demote_back", rb.epoch))
            && told("b", &format!("web:{}:promote_back", rb.epoch)),
        "a demoted again, then b promoted again: {sent:#?}"
    );
    assert!(
        !sent
            .iter()
            .any(|(s, c)| s == "a" && c.kind == CommandKind::Promote),
        "the cut-over was resumed: {sent:#?}"
    );
    // No switch to a: b routed still — at the runbook's epoch when the
    // resumed rollback routed it back (the first process died recording
    // the rollback's direction, before its route back).
    let (site, epoch) = fake2.route.lock().unwrap().clone();
    assert_eq!(site, route.0, "no switch");
    assert!(epoch == route.1 || epoch == rb.epoch, "{epoch} {route:?}");
}

/// A store whose process dies after `writes_left` more writes: the later
/// ones are refused (and counted).
#[derive(Default)]
struct DiesAfter {
    inner: MemStore,
    writes_left: std::sync::atomic::AtomicI64,
    refused: std::sync::atomic::AtomicU64,
}

impl Wrapped for DiesAfter {
    fn inner(&self) -> &MemStore {
        &self.inner
    }
    fn before(&self, _w: Write<'_>) -> Result<(), OrchestratorError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.writes_left.fetch_sub(1, SeqCst) > 0 {
            return Ok(());
        }
        self.refused.fetch_add(1, SeqCst);
        Err(OrchestratorError::store(
            "write",
            std::io::Error::other("process killed"),
        ))
    }
}

/// A runbook ends and the group's next one is decided before the store
/// took the first end (a slow or full disk: the group writer's batch holds
/// both), and the process dies between the batch's writes. The store
/// never names a runbook it does not hold. Before, the group's newest
/// state (naming the new runbook) was written with the older runbook and
/// the new one after it: dead in between, the next start found the group
/// running a runbook the store lacked and failed it — no automatic
/// decision for the group until an operator moved it.
#[tokio::test(start_paused = true)]
async fn a_crash_inside_a_batch_of_writes_leaves_no_group_naming_a_missing_runbook() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(DiesAfter {
        writes_left: i64::MAX.into(),
        ..DiesAfter::default()
    });
    let (s, _fake, _dir) = setup_with(true, 5, "", store.clone());
    s.writer_settled().await;
    let g = group(&s);
    let mut ended = Runbook::new(
        7,
        "web",
        RunbookKind::Switchover,
        "a",
        "b",
        g.epoch + 1,
        "test",
        0,
        0,
    );
    ended.status = RunbookStatus::Failed;
    ended.aborted = true;
    let next = Runbook::new(
        8,
        "web",
        RunbookKind::Switchover,
        "a",
        "b",
        g.epoch + 2,
        "test",
        0,
        0,
    );
    store.writes_left.store(1, SeqCst);
    s.persist_decision(
        &GroupState {
            epoch: g.epoch + 1,
            ..g.clone()
        },
        &ended,
    );
    s.persist_decision(
        &GroupState {
            epoch: g.epoch + 2,
            phase: Phase::Running,
            runbook: Some(8),
            ..g.clone()
        },
        &next,
    );
    while store.refused.load(SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held: Vec<u64> = store
        .inner
        .runbooks()
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let stored = store.inner.groups().unwrap();
    let web = stored.iter().find(|g| g.name == "web").expect("web stored");
    assert!(
        web.runbook.is_none_or(|id| held.contains(&id)),
        "the group names runbook {:?}, the store holds {held:?}: {web:#?}",
        web.runbook
    );
    let loaded = load_state(s.config(), &store.inner).unwrap();
    assert_ne!(loaded.groups["web"].phase, Phase::Failed);
}

/// The disk is full when a failover a → b is decided: the decision (the
/// group's record with its runbook) is not written, and the runbook goes on
/// from memory; its own step records fit and are stored — a fenced, b's
/// promote running. The process dies before the decision's retry lands.
/// Started again on that store, the orchestrator resumes the failover (the
/// group runs its newest runbook, at that runbook's epoch) and it ends with
/// users on b. Before, the group's record said steady on a: the failover
/// was left half done — a fenced, nobody promoted, the runbook shown
/// running for ever — until an operator found it.
#[tokio::test(start_paused = true)]
async fn a_failover_whose_decision_was_never_stored_is_resumed_after_a_crash() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let store = Arc::new(FaultyStore::volatile());
    let (s, fake) = start_from(&text, &dir, store.clone()).expect("config");
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    store.decisions_full.store(true, SeqCst);
    // A slow disk too: the decision's refusal comes 20 ms later, in real
    // time, on the store thread (many rounds of a paused clock).
    store.decision_write_ms.store(20, SeqCst);
    let id = s.operator_failover("web", "b", "operator").unwrap();
    let stored = |id: u64| {
        store
            .inner
            .runbooks()
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
    };
    let promoting = |rb: &Runbook| {
        rb.steps
            .iter()
            .any(|st| st.name == StepName::Promote && st.status == StepStatus::Running)
    };
    let hung = |c: &Command| c.kind == CommandKind::Promote && c.site == "b";
    for _ in 0..40 {
        if stored(id).is_some_and(|r| promoting(&r)) {
            break;
        }
        round_sites_unsettled(&s, (true, true), &hung).await;
    }
    // SIGKILL: nothing more of that process acts or is written.
    s.licence().revoke("test: the process is killed");
    let died = stored(id).expect("the runbook's steps are stored");
    assert!(promoting(&died), "{died:#?}");
    let web = store.inner.groups().unwrap();
    assert_eq!(
        web.iter().find(|g| g.name == "web").map(|g| g.phase),
        Some(Phase::Steady),
        "the decision is not stored"
    );

    let copy = MemStore::default();
    for g in store.inner.groups().unwrap() {
        copy.put_group(&g).unwrap();
    }
    for rb in store.inner.runbooks().unwrap() {
        copy.put_runbook(&rb).unwrap();
    }
    let (s2, fake2) = start_from(&text, &dir, Arc::new(copy)).expect("restart");
    let route = fake.route.lock().unwrap().clone();
    *fake2.route.lock().unwrap() = route;
    s2.resume();
    sites_until(
        &s2,
        (true, true),
        &answer_all,
        60,
        "the failover resumed and ended on b",
        |g| g.phase == Phase::Steady && g.active == "b",
    )
    .await;
    assert_eq!(group(&s2).epoch, died.epoch);
    assert_eq!(s2.lock().runbooks[&id].status, RunbookStatus::Succeeded);
    assert_eq!(fake2.route.lock().unwrap().0.as_deref(), Some("b"));
}

/// The disk fills while a failover a → b runs: its end (the group steady
/// on b, with its last record) is not written — the engine's own last
/// record of the runbook is. The operator then moves users back to a
/// (`warden failover --to a`: a failback, a being the primary): that
/// decision is not written either and runs from memory, its step records
/// stored as it goes (b demoted, a's promote running). The process dies,
/// and is started again on the store it left: the group's record there is
/// still the first failover's decision (running runbook 1, active a); its
/// newest runbook, running at a later epoch, is the move in progress.
/// `a_promotes`: whether a's agent answers the resumed promote. The
/// restarted service's group after the move's end, the move's runbook and
/// where the routing layer sends users.
async fn resumed_after_an_unwritten_end(a_promotes: bool) -> (GroupState, Runbook, Option<String>) {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let store = Arc::new(FaultyStore::volatile());
    let (s, fake) = start_from(&text, &dir, store.clone()).expect("config");
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    let stored = |id: u64| {
        store
            .inner
            .runbooks()
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
    };
    let promoting = |rb: &Runbook| {
        rb.steps
            .iter()
            .any(|st| st.name == StepName::Promote && st.status == StepStatus::Running)
    };
    let first = s.operator_failover("web", "b", "operator").unwrap();
    let b_promote = |c: &Command| c.kind == CommandKind::Promote && c.site == "b";
    for _ in 0..40 {
        if stored(first).is_some_and(|r| promoting(&r)) {
            break;
        }
        round_sites(&s, true, true, &b_promote).await;
    }
    assert!(stored(first).is_some_and(|r| promoting(&r)));
    // The disk fills: the failover's end is not written.
    store.decisions_full.store(true, SeqCst);
    store.decision_write_ms.store(20, SeqCst);
    for _ in 0..40 {
        if group(&s).phase == Phase::Steady {
            break;
        }
        round_sites_unsettled(&s, (true, true), &answer_all).await;
    }
    assert_eq!(
        (group(&s).phase, group(&s).active.as_str()),
        (Phase::Steady, "b")
    );
    assert_eq!(
        stored(first).map(|r| r.status),
        Some(RunbookStatus::Succeeded)
    );
    // Back to a, decided on the full disk.
    let second = s.operator_failover("web", "a", "operator").unwrap();
    let a_promote = |c: &Command| c.kind == CommandKind::Promote && c.site == "a";
    for _ in 0..40 {
        if stored(second).is_some_and(|r| promoting(&r)) {
            break;
        }
        round_sites_unsettled(&s, (true, true), &a_promote).await;
    }
    // SIGKILL: nothing more of that process acts or is written.
    s.licence().revoke("test: the process is killed");
    let died = stored(second).expect("the second move's steps are stored");
    assert!(promoting(&died), "{died:#?}");
    let web = store.inner.groups().unwrap();
    let web = web.iter().find(|g| g.name == "web").expect("stored");
    assert_eq!(
        (web.phase, web.runbook, web.active.as_str()),
        (Phase::Running, Some(first), "a"),
        "the store holds the first failover's decision only"
    );

    let copy = MemStore::default();
    for g in store.inner.groups().unwrap() {
        copy.put_group(&g).unwrap();
    }
    for rb in store.inner.runbooks().unwrap() {
        copy.put_runbook(&rb).unwrap();
    }
    let (s2, fake2) = start_from(&text, &dir, Arc::new(copy)).expect("restart");
    let route = fake.route.lock().unwrap().clone();
    *fake2.route.lock().unwrap() = route;
    s2.resume();
    let held = |c: &Command| !a_promotes && a_promote(c);
    for _ in 0..80 {
        if group(&s2).phase != Phase::Running {
            break;
        }
        round_sites(&s2, true, true, &held).await;
    }
    let rb = s2.lock().runbooks[&second].clone();
    assert_eq!(rb.epoch, died.epoch);
    let routed = fake2.route.lock().unwrap().0.clone();
    (group(&s2), rb, routed)
}

/// [`resumed_after_an_unwritten_end`], a promoted: the move in progress
/// resumes and ends with users on a. Before, the group's record named the
/// finished failover, whose end was replayed: the group steady on b — b
/// demoted by the forgotten move — and that move shown running for ever.
#[tokio::test(start_paused = true)]
async fn a_move_decided_after_an_unwritten_end_is_resumed_after_a_crash() {
    let (g, rb, routed) = resumed_after_an_unwritten_end(true).await;
    assert_eq!(
        (g.phase, g.active.as_str(), g.epoch),
        (Phase::Steady, "a", rb.epoch),
        "the move in progress resumed and ended on a: {g:#?}\n{:?}",
        rb.status
    );
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    assert_eq!(routed.as_deref(), Some("a"));
}

/// [`resumed_after_an_unwritten_end`], a's promote never answered: the
/// resumed move back to a (a failback: a is the primary) is rolled back,
/// and the group stays steady on b, where the first failover put users
/// and where they still are. Before, the resumed runbook took the active
/// site from the stale record (a), and the group was left on a, whose
/// promote had just failed.
#[tokio::test(start_paused = true)]
async fn a_resumed_move_that_fails_leaves_the_group_where_users_are() {
    let (g, rb, routed) = resumed_after_an_unwritten_end(false).await;
    assert!(rb.status == RunbookStatus::Failed && rb.aborted, "{rb:#?}");
    assert_eq!(
        (g.phase, g.active.as_str(), g.epoch),
        (Phase::Steady, "b", rb.epoch),
        "{g:#?}"
    );
    assert_eq!(routed.as_deref(), Some("b"), "users were never moved");
}

/// The disk is full when a failover a → b is decided, and stays so while
/// it runs: neither the decision nor the group's end (steady on b) is
/// written — the runbook's own records are, its last one saying it
/// succeeded. The process dies. Started again on that store, the group
/// is where the failover left it: steady on b, at the failover's epoch.
/// Before, only a runbook still running was taken over from the store:
/// the group came back steady on a — the site the failover fenced, while
/// users are on b — at the failover's epoch (raised to its runbook's); a
/// site reporting itself active where another is the group's active site
/// is told to demote, and b is that site.
#[tokio::test(start_paused = true)]
async fn a_failover_that_ended_unrecorded_is_not_undone_by_a_restart() {
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let (s, fake, store, id) = failover_with_its_decisions_unwritten(&dir, &text).await;
    assert_eq!(
        (group(&s).phase, group(&s).active.as_str()),
        (Phase::Steady, "b")
    );
    // SIGKILL: nothing more of that process acts or is written.
    s.licence().revoke("test: the process is killed");
    let ended = store
        .inner
        .runbooks()
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .expect("the runbook's records are stored");
    assert_eq!(ended.status, RunbookStatus::Succeeded);
    let web = store.inner.groups().unwrap();
    let web = web.iter().find(|g| g.name == "web").expect("stored");
    assert_eq!(
        (web.phase, web.active.as_str()),
        (Phase::Steady, "a"),
        "neither the decision nor the end is stored"
    );

    let copy = MemStore::default();
    for g in store.inner.groups().unwrap() {
        copy.put_group(&g).unwrap();
    }
    for rb in store.inner.runbooks().unwrap() {
        copy.put_runbook(&rb).unwrap();
    }
    let (s2, fake2) = start_from(&text, &dir, Arc::new(copy)).expect("restart");
    let route = fake.route.lock().unwrap().clone();
    *fake2.route.lock().unwrap() = route;
    s2.resume();
    let sent = sites_rounds(&s2, 8, (true, true), &answer_all).await;
    let g = group(&s2);
    assert_eq!(
        (g.phase, g.active.as_str(), g.epoch),
        (Phase::Steady, "b", ended.epoch),
        "{g:#?}"
    );
    assert!(
        !sent
            .iter()
            .any(|(site, c)| site == "b" && c.kind == CommandKind::Demote),
        "b, where users are, was demoted: {sent:#?}"
    );
    assert_eq!(fake2.route.lock().unwrap().0.as_deref(), Some("b"));
}

/// The scenario of [`a_failover_that_ended_unrecorded_is_not_undone_by_a_restart`],
/// the disk still full when the orchestrator starts again: the state read
/// needs its correction written (the group at the failover's epoch, on
/// b), and the store cannot write it. The orchestrator starts all the
/// same — with the correction in memory, the store's alert raised, and
/// the write retried until there is room — as it acts on a full disk
/// while it runs. Before, it refused to start (every group without an
/// orchestrator until space was freed).
#[tokio::test(start_paused = true)]
async fn a_restart_on_a_full_disk_starts_with_its_corrections_unwritten() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let (s, _fake, store, id) = failover_with_its_decisions_unwritten(&dir, &text).await;
    s.licence().revoke("test: the process is killed");

    let full = Arc::new(FaultyStore::volatile());
    for g in store.inner.groups().unwrap() {
        full.inner.put_group(&g).unwrap();
    }
    for rb in store.inner.runbooks().unwrap() {
        full.inner.put_runbook(&rb).unwrap();
    }
    full.full.store(true, SeqCst);
    let (s2, _fake2) = start_from(&text, &dir, full.clone()).expect("restart");
    s2.resume();
    let epoch = s2.lock().runbooks[&id].epoch;
    let g = group(&s2);
    assert_eq!(
        (g.phase, g.active.as_str(), g.epoch),
        (Phase::Steady, "b", epoch),
        "{g:#?}"
    );
    assert!(
        s2.alerts("web")
            .iter()
            .any(|a| a.contains("cannot write group state")),
        "{:?}",
        s2.alerts("web")
    );
    // Room again: the correction is written.
    full.full.store(false, SeqCst);
    for _ in 0..20 {
        round_sites(&s2, true, true, &answer_all).await;
    }
    let stored = full.inner.groups().unwrap();
    let web = stored.iter().find(|g| g.name == "web").expect("stored");
    assert_eq!((web.active.as_str(), web.epoch), ("b", epoch));
    assert!(s2.alerts("web").is_empty(), "{:?}", s2.alerts("web"));
}

/// The disk is full from before a failover a → b until after the process
/// died: nothing of it is stored (neither the decision nor a step), but
/// it ran from memory — a demoted, b promoted at the failover's epoch;
/// the switch to b reached the routing layer (`switched`) or not (the
/// layer refused the writes: the failover is carried forward, users left
/// on a). Started again, the group's record says a at the epoch before;
/// b's agent holds the newer one (the epoch-ahead alert), and the
/// operator adopts it as docs/operations.md says. Then a few rounds of
/// reports: a says `standby` (fenced), b `active`. The restarted service,
/// and the failover's epoch.
async fn adopted_after_a_move_lost_with_its_process(switched: bool) -> (Arc<Shared>, u64) {
    use super::state_tests::role_report;
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let store = Arc::new(FaultyStore::volatile());
    let (s, fake) = start_from(&text, &dir, store.clone()).expect("config");
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    let before = group(&s).epoch;
    store.full.store(true, SeqCst);
    fake.refuse_writes.store(!switched, SeqCst);
    s.operator_failover("web", "b", "operator").unwrap();
    for _ in 0..80 {
        if group(&s).phase != Phase::Running {
            break;
        }
        round_sites_unsettled(&s, (true, true), &answer_all).await;
    }
    let epoch = group(&s).epoch;
    assert_eq!((group(&s).active.as_str(), epoch), ("b", before + 1));
    s.licence().revoke("test: the process is killed");
    assert!(store.inner.runbooks().unwrap().is_empty(), "nothing stored");
    let route = fake.route.lock().unwrap().clone();
    assert_eq!(route.1 == epoch, switched, "{route:?}");

    let copy = MemStore::default();
    for g in store.inner.groups().unwrap() {
        copy.put_group(&g).unwrap();
    }
    let (s2, fake2) = start_from(&text, &dir, Arc::new(copy)).expect("restart");
    *fake2.route.lock().unwrap() = route;
    // (Reconciliation's route back to a at the group's epoch is the
    // routing layer's to refuse — a frontend's fence takes one site per
    // epoch; this fake takes it: the roles are what is looked at.)
    fake2.refuse_writes.store(true, SeqCst);
    s2.resume();
    assert_eq!(
        (group(&s2).active.as_str(), group(&s2).epoch),
        ("a", before)
    );
    s2.accept_report(role_report("b", 1, epoch, "active", vec![]));
    s2.accept_report(role_report("a", 1, epoch, "standby", vec![]));
    s2.reconcile_once().await;
    assert_eq!(
        s2.operator_adopt_epoch("web", "operator").await.unwrap(),
        epoch
    );
    for seq in 2..6 {
        s2.accept_report(role_report("a", seq, epoch, "standby", vec![]));
        s2.accept_report(role_report("b", seq, epoch, "active", vec![]));
        s2.reconcile_once().await;
        tokio::time::advance(Duration::from_millis(250)).await;
    }
    (s2, epoch)
}

/// [`adopted_after_a_move_lost_with_its_process`], the switch never
/// reached the routing layer: the group's record names a, which reports
/// `standby`; b, reporting `active` at the group's epoch, is the only site
/// holding the role. It is not demoted, and an alert says the two
/// disagree. Before, b was told to demote at once: no site held the role.
#[tokio::test(start_paused = true)]
async fn the_only_active_site_is_not_demoted_when_the_record_names_a_fenced_one() {
    let (s2, _epoch) = adopted_after_a_move_lost_with_its_process(false).await;
    assert_eq!(group(&s2).active, "a");
    let told_b: Vec<_> = s2.commands_for("b");
    assert!(
        !told_b.iter().any(|c| c.kind == CommandKind::Demote),
        "b, the only site holding the role, was told to demote: {told_b:#?}"
    );
    assert!(
        s2.lock().recent.iter().any(|e| e.kind == EventKind::Alert
            && e.message.contains("b reports the active role")
            && e.message
                .contains("while the group's active site a reports standby")),
        "{:#?}",
        s2.lock().recent
    );
}

/// [`adopted_after_a_move_lost_with_its_process`], the switch reached the
/// routing layer: it routes users to b at the epoch adopted, and the
/// adoption takes b as the group's active site too (as a new store adopts
/// what the routing layer shows), with replication left to the operator:
/// the record says where users are, nothing tells b to demote and
/// reconciliation has nothing to route back. Before, the group stayed on
/// a — fenced, its service stopped — and reconciliation routed users back
/// to it wherever the routing layer takes a route at an epoch it already
/// holds (a dyndns2 provider keeps no epoch).
#[tokio::test(start_paused = true)]
async fn an_adopted_epoch_takes_the_site_the_routing_layer_routes_to_at_it() {
    let (s2, epoch) = adopted_after_a_move_lost_with_its_process(true).await;
    let g = group(&s2);
    assert_eq!(
        (g.active.as_str(), g.epoch, g.phase),
        ("b", epoch, Phase::Steady),
        "{g:#?}"
    );
    assert!(g.switched_over, "no automatic failback: {g:#?}");
    assert!(
        !s2.commands_for("b")
            .iter()
            .any(|c| c.kind == CommandKind::Demote),
        "{:#?}",
        s2.commands_for("b")
    );
    assert!(
        s2.lock()
            .recent
            .iter()
            .any(|e| e.kind == EventKind::Adopted && e.message.contains("routes users to b")),
        "{:#?}",
        s2.lock().recent
    );
}

/// The orchestrator of `text` (in `dir`) on a volatile store whose disk
/// fills for decisions before an operator's failover a → b, which then
/// runs from memory to its end: the service, its routing, the store and
/// the runbook's id.
async fn failover_with_its_decisions_unwritten(
    dir: &std::path::Path,
    text: &str,
) -> (Arc<Shared>, Arc<FakeRoute>, Arc<FaultyStore>, u64) {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(FaultyStore::volatile());
    let (s, fake) = start_from(text, dir, store.clone()).expect("config");
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    store.decisions_full.store(true, SeqCst);
    store.decision_write_ms.store(20, SeqCst);
    let id = s.operator_failover("web", "b", "operator").unwrap();
    for _ in 0..40 {
        if group(&s).phase == Phase::Steady {
            break;
        }
        round_sites_unsettled(&s, (true, true), &answer_all).await;
    }
    (s, fake, store, id)
}

/// A start that ends before it adopted a group new to the store (killed,
/// or deposed while it read the routing layer, which may take seconds):
/// the placeholder it stored (the primary at epoch 1) is not taken for
/// the group's state by the next start, which adopts what the routing
/// layer shows — users on b at epoch 7. Before, the placeholder was
/// loaded as the group's state: nothing adopted, b's epoch an alert
/// until `warden adopt-epoch`, and reconciliation routed users back to a.
#[tokio::test(start_paused = true)]
async fn a_start_that_ended_before_adopting_a_group_leaves_it_to_the_next() {
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let store = Arc::new(MemStore::default());
    let (s, _) = start_from(&text, &dir, store.clone()).expect("config");
    // Killed before its adoption: what it stored is a placeholder.
    s.licence().revoke("test: the process is killed");
    let stored = store.groups().unwrap();
    let web = stored.iter().find(|g| g.name == "web").expect("stored");
    assert!(web.adopting, "{web:#?}");
    assert_eq!((web.active.as_str(), web.epoch), ("a", 1));

    let (s2, fake2) = start_from(&text, &dir, store.clone()).expect("restart");
    *fake2.route.lock().unwrap() = (Some("b".into()), 7);
    // b's agent reports the epoch it holds before the adoption has read
    // the routing layer (a new leader's licence is granted first): seen
    // ahead of the placeholder, then adopted — no longer ahead.
    s2.accept_report(super::state_tests::role_report("b", 1, 7, "active", vec![]));
    assert!(
        s2.lock().epoch_ahead.contains_key("web"),
        "b's epoch 7 is seen ahead of 1"
    );
    s2.adopt_fresh_groups().await;
    assert!(
        !s2.lock().epoch_ahead.contains_key("web"),
        "the epoch adopted is still held ahead: {:?}",
        s2.lock().epoch_ahead.get("web")
    );
    let g = group(&s2);
    assert_eq!(
        (g.active.as_str(), g.epoch, g.adopting),
        ("b", 7, false),
        "the placeholder was taken for the group's state: {g:#?}"
    );
    assert!(
        s2.lock()
            .recent
            .iter()
            .any(|e| e.kind == EventKind::Adopted && e.message.contains("active b at epoch 7")),
        "{:#?}",
        s2.lock().recent
    );
    // Adopted and written so: a third start adopts nothing again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = store.groups().unwrap();
    let web = stored.iter().find(|g| g.name == "web").expect("stored");
    assert_eq!(
        (web.active.as_str(), web.epoch, web.adopting),
        ("b", 7, false)
    );
    let (s3, _) = start_from(&text, &dir, store.clone()).expect("restart");
    assert!(s3.lock().fresh.is_empty(), "{:?}", s3.lock().fresh);
}

/// A record marked `adopting` that moved since (a node of an earlier
/// version, which keeps the flag it does not know, decided on it) is the
/// group's state: not adopted again. And a placeholder the routing layer
/// routes as it says (the primary at epoch 1) is adopted without pausing
/// its replication.
#[tokio::test(start_paused = true)]
async fn only_a_placeholder_is_adopted_again_and_one_routed_as_it_says_changes_nothing() {
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let store = Arc::new(MemStore::default());
    let mut moved = GroupState::fresh("web", "a");
    moved.adopting = true;
    moved.epoch = 3;
    moved.active = "b".into();
    store.put_group(&moved).unwrap();
    let (s, _) = start_from(&text, &dir, store.clone()).expect("start");
    assert!(
        s.lock().fresh.is_empty(),
        "a moved record was adopted again"
    );
    assert_eq!((group(&s).active.as_str(), group(&s).epoch), ("b", 3));

    let store = Arc::new(MemStore::default());
    let mut placeholder = GroupState::fresh("web", "a");
    placeholder.adopting = true;
    store.put_group(&placeholder).unwrap();
    // (A replicated group: an adoption of a move pauses its replication.)
    let replicated = format!("{text}[groups.web.replication]\nplan = \"none\"\n");
    let (s, fake) = start_from(&replicated, &dir, store.clone()).expect("start");
    assert!(s.lock().fresh.contains("web"));
    *fake.route.lock().unwrap() = (Some("a".into()), 1);
    s.adopt_fresh_groups().await;
    let g = group(&s);
    assert_eq!((g.active.as_str(), g.epoch, g.adopting), ("a", 1, false));
    assert_eq!(g.replication_paused_since_unix_ms, None, "{g:#?}");
    assert!(
        s.lock()
            .recent
            .iter()
            .any(|e| e.kind == EventKind::Adopted && e.message.contains("as the record says")),
        "{:#?}",
        s.lock().recent
    );
}

/// `warden adopt-epoch` after a move lost with its process, the routing
/// layer unreadable and a (the record's site) silent — lost: b, whose
/// agent alone reports the active role at the adopted epoch, becomes the
/// group's active site, and is not told to demote. Before, the epoch was
/// adopted with a kept as the active site, and b's next report had it
/// demoted: the site users were on, down.
#[tokio::test(start_paused = true)]
async fn an_adopted_epoch_with_the_routing_layer_unread_takes_the_sole_active_site() {
    use super::state_tests::role_report;
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let (s, fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    let epoch = group(&s).epoch + 3;
    fake.blind.store(true, SeqCst);
    s.accept_report(role_report("b", 1, epoch, "active", vec![]));
    s.reconcile_once().await;
    assert!(s.lock().epoch_ahead.contains_key("web"));
    assert_eq!(
        s.operator_adopt_epoch("web", "operator").await.unwrap(),
        epoch
    );
    let g = group(&s);
    assert_eq!((g.active.as_str(), g.epoch), ("b", epoch), "{g:#?}");
    assert!(
        s.lock().recent.iter().any(|e| e.kind == EventKind::Adopted
            && e.message
                .contains("the routing layer could not tell, and b's agent is the only one")),
        "{:#?}",
        s.lock().recent
    );
    for seq in 2..6 {
        s.accept_report(role_report("b", seq, epoch, "active", vec![]));
        s.reconcile_once().await;
        tokio::time::advance(Duration::from_millis(250)).await;
    }
    assert!(
        !s.commands_for("b")
            .iter()
            .any(|c| c.kind == CommandKind::Demote),
        "b, where users are, was told to demote: {:#?}",
        s.commands_for("b")
    );
}
