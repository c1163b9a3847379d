//! The live service when its store fails: a full disk, a store that must
//! not act unwritten, writes refused as a deposed leader's, bounded events,
//! and epochs told to agents only once stored. [`FaultyStore`] is the
//! store these and other tests break on purpose.
use super::harness::*;
use super::*;
use crate::store::MemStore;

/// A store broken on purpose: writes fail while `full` is set (a full
/// disk) or are refused as a deposed leader's while `deposed` is; once
/// `armed`, the next `groups()` read takes its snapshot and then waits
/// until [`FaultyStore::release`] (a read caught in flight); once
/// `write_armed`, the next decision's write waits until
/// [`FaultyStore::release_write`] before it is judged (a write in flight).
#[derive(Default)]
pub(super) struct FaultyStore {
    pub(super) inner: MemStore,
    pub(super) full: std::sync::atomic::AtomicBool,
    /// Acts when it cannot write, as the local file store does.
    pub(super) volatile: bool,
    /// Writes are refused as etcd refuses a deposed leader's.
    pub(super) deposed: std::sync::atomic::AtomicBool,
    pub(super) armed: std::sync::atomic::AtomicBool,
    /// The armed read has its snapshot and waits.
    pub(super) entered: std::sync::atomic::AtomicBool,
    released: (Mutex<bool>, std::sync::Condvar),
    pub(super) write_armed: std::sync::atomic::AtomicBool,
    /// The armed write waits.
    pub(super) write_entered: std::sync::atomic::AtomicBool,
    /// The armed write has been judged.
    pub(super) write_done: std::sync::atomic::AtomicBool,
    /// The armed write is refused as a deposed leader's (and only it).
    pub(super) write_deposed: std::sync::atomic::AtomicBool,
    write_released: (Mutex<bool>, std::sync::Condvar),
    /// The process dies once a failed runbook is written: that write is
    /// stored, every later one refused (as `full`).
    pub(super) dies_at_failure: std::sync::atomic::AtomicBool,
    /// Only a decision's write (a group with its runbook) fails, as on a
    /// full disk: the group's record is the larger one.
    pub(super) decisions_full: std::sync::atomic::AtomicBool,
    /// A decision's write takes this many milliseconds of real time (a slow
    /// disk): the store thread works while a test's paused clock stands.
    pub(super) decision_write_ms: std::sync::atomic::AtomicU64,
}

impl FaultyStore {
    /// One that acts when it cannot write, as the local file store does.
    pub(super) fn volatile() -> Self {
        FaultyStore {
            volatile: true,
            ..FaultyStore::default()
        }
    }

    /// Lets the armed read return its (older) snapshot.
    pub(super) fn release(&self) {
        *self.released.0.lock().unwrap() = true;
        self.released.1.notify_all();
    }

    /// Lets the armed write go on (to be judged by `full` and `deposed` then).
    pub(super) fn release_write(&self) {
        *self.write_released.0.lock().unwrap() = true;
        self.write_released.1.notify_all();
    }

    fn check(&self) -> Result<(), crate::OrchestratorError> {
        if self.deposed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::OrchestratorError::Deposed(
                "group state refused by etcd: the leader key is no longer this node's".into(),
            ));
        }
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::OrchestratorError::store(
                "write",
                std::io::Error::other("No space left on device (os error 28)"),
            ));
        }
        Ok(())
    }
}

impl crate::store::Store for FaultyStore {
    fn may_act_unwritten(&self) -> bool {
        self.volatile
    }
    fn groups(&self) -> Result<Vec<GroupState>, crate::OrchestratorError> {
        let snapshot = self.inner.groups();
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.entered
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let mut go = self.released.0.lock().unwrap();
            while !*go {
                go = self.released.1.wait(go).unwrap();
            }
        }
        snapshot
    }
    fn put_group(&self, g: &GroupState) -> Result<(), crate::OrchestratorError> {
        self.check()?;
        self.inner.put_group(g)
    }
    fn put_group_and_runbook(
        &self,
        g: &GroupState,
        rb: &Runbook,
    ) -> Result<(), crate::OrchestratorError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.write_armed.swap(false, SeqCst) {
            self.write_entered.store(true, SeqCst);
            let mut go = self.write_released.0.lock().unwrap();
            while !*go {
                go = self.write_released.1.wait(go).unwrap();
            }
            drop(go);
            let judged = if self.write_deposed.load(SeqCst) {
                Err(crate::OrchestratorError::Deposed(
                    "write a decision refused by etcd: the leader key is no longer this node's"
                        .into(),
                ))
            } else {
                self.check()
            };
            self.write_done.store(true, SeqCst);
            judged?;
        }
        std::thread::sleep(Duration::from_millis(self.decision_write_ms.load(SeqCst)));
        if self.decisions_full.load(SeqCst) {
            return Err(crate::OrchestratorError::store(
                "write",
                std::io::Error::other("No space left on device (os error 28)"),
            ));
        }
        self.check()?;
        self.inner.put_group_and_runbook(g, rb)
    }
    fn put_runbook(&self, rb: &Runbook) -> Result<(), crate::OrchestratorError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.check()?;
        self.inner.put_runbook(rb)?;
        if rb.status == RunbookStatus::Failed && self.dies_at_failure.load(SeqCst) {
            self.full.store(true, SeqCst);
        }
        Ok(())
    }
    fn runbooks(&self) -> Result<Vec<Runbook>, crate::OrchestratorError> {
        self.inner.runbooks()
    }
    fn delete_runbooks(&self, ids: &[u64]) -> Result<(), crate::OrchestratorError> {
        self.check()?;
        self.inner.delete_runbooks(ids)
    }
    fn put_event(&self, e: &Event) -> Result<(), crate::OrchestratorError> {
        self.check()?;
        self.inner.put_event(e)
    }
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, crate::OrchestratorError> {
        self.inner.events(after, limit)
    }
    fn last_event_id(&self) -> Result<u64, crate::OrchestratorError> {
        self.inner.last_event_id()
    }
    fn prune_events(
        &self,
        keep: usize,
        before: u64,
        max: usize,
    ) -> Result<usize, crate::OrchestratorError> {
        self.check()?;
        self.inner.prune_events(keep, before, max)
    }
}

/// A write the store refuses because another orchestrator leads ends this
/// node's licence at once (not a third of a lease later, when the election
/// loop reads the key): nothing more is ordered from here.
#[tokio::test]
async fn a_write_refused_as_deposed_revokes_the_licence_at_once() {
    let store = Arc::new(FaultyStore::default());
    let (s, _fake, _dir) = setup_with(false, 1, "", store.clone());
    assert!(s.licence.is_held());
    store
        .deposed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    s.operator_maintenance("web", true, "operator")
        .expect("maintenance");
    for _ in 0..500 {
        if !s.licence.is_held() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !s.licence.is_held(),
        "the licence is still held 5 s after a refused write"
    );
    assert!(s.commands_for("a").is_empty() && s.commands_for("b").is_empty());
}

#[tokio::test]
async fn events_are_kept_by_count_and_a_failing_store_is_an_alert() {
    let store = Arc::new(FaultyStore::default());
    let (s, _fake, _dir) = setup_with(false, 1, "events_keep = 100", store.clone());
    let stop = CancellationToken::new();
    tokio::spawn(s.clone().write_events(stop.clone()));
    for i in 0..300 {
        s.event(
            EventKind::Maintenance,
            Some("web"),
            None,
            format!("e{i}"),
            vec![],
            None,
        );
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let newest = s.lock().next_event - 1;
    let mut kept = Vec::new();
    for _ in 0..100 {
        kept = store.inner.events(0, 10_000).unwrap();
        if kept.last().map(|e| e.id) == Some(newest) && kept.len() <= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kept.len(), 100, "the newest 100 are kept");
    assert_eq!(kept.last().map(|e| e.id), Some(newest));
    assert!(s.alerts("web").is_empty(), "{:?}", s.alerts("web"));

    // The disk fills: an alert on the group, saying what and where.
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    s.event(
        EventKind::Maintenance,
        Some("web"),
        None,
        "one more".into(),
        vec![],
        None,
    );
    let mut alerts = Vec::new();
    for _ in 0..100 {
        alerts = s.alerts("web");
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("cannot write events") && a.contains("No space left")),
        "{alerts:?}"
    );
    // Space again: the alert ends with the next write.
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    s.event(
        EventKind::Maintenance,
        Some("web"),
        None,
        "and one more".into(),
        vec![],
        None,
    );
    for _ in 0..100 {
        if s.alerts("web").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(s.alerts("web").is_empty(), "{:?}", s.alerts("web"));
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_is_an_alert_and_the_failover_still_routes_users() {
    let store = Arc::new(FaultyStore {
        volatile: true,
        ..FaultyStore::default()
    });
    let (s, fake, _dir) = setup_with(true, 5, "", store.clone());
    for _ in 0..4 {
        round(&s, true).await;
    }
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    // A slow disk too: the decision's refusal comes 20 ms later, in real
    // time, on the store thread (many rounds of a paused clock).
    store
        .decision_write_ms
        .store(20, std::sync::atomic::Ordering::SeqCst);
    let mut moved = false;
    for _ in 0..60 {
        round_inner(&s, false, false).await;
        let g = group(&s);
        if g.phase == Phase::Steady && g.active == "b" {
            moved = true;
            break;
        }
    }
    assert!(moved, "failover despite the full disk: {:#?}", group(&s));
    assert_eq!(
        *fake.route.lock().unwrap(),
        (Some("b".into()), 2),
        "users routed to b"
    );
    let alerts = s.alerts("web");
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("cannot write group state") && a.contains("No space left")),
        "{alerts:?}"
    );
    assert!(
        s.lock()
            .recent
            .iter()
            .any(|e| e.kind == EventKind::Alert && e.message.contains("from memory")),
        "the event says the runbook ran from memory"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_that_must_not_act_unwritten_holds_the_failover() {
    // As with etcd: an unwritable store is no licence to act.
    let store = Arc::new(FaultyStore::default());
    let (s, fake, _dir) = setup_with(true, 5, "", store.clone());
    for _ in 0..4 {
        round(&s, true).await;
    }
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..40 {
        round_inner(&s, false, false).await;
    }
    // The disaster was confirmed and decided; the runbook waits for the
    // decision to be written, and routes nothing.
    let g = group(&s);
    assert_eq!(g.phase, Phase::Running, "a decision was made: {g:#?}");
    assert_eq!(fake.route.lock().unwrap().0, None, "nothing routed");
}

/// An epoch is told to agents only once the store holds it: a failover
/// whose decision the store cannot write yet (etcd without quorum, a full
/// disk) moves the group to the next epoch in memory, but reports are
/// answered with the stored one — an agent that raised its floor to an
/// epoch then lost with a step-down would be ahead of every leader, and
/// every move would wait for `warden adopt-epoch`. Once written, it is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_is_told_to_agents_only_once_it_is_stored() {
    let store = Arc::new(FaultyStore::default());
    let (s, _fake, _dir) = setup_with(false, 1, "", store.clone());
    let before = s.lock().groups["web"].epoch;
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    s.operator_failover("web", "b", "operator")
        .expect("failover");
    assert_eq!(
        s.lock().groups["web"].epoch,
        before + 1,
        "decided in memory"
    );
    let answer = s.accept_report(super::fresh_checks_tests::report("a", 1, vec![]));
    assert_eq!(
        answer.epochs.get("web"),
        Some(&before),
        "an epoch the store does not hold was told"
    );
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    s.writer_settled().await;
    let answer = s.accept_report(super::fresh_checks_tests::report("a", 2, vec![]));
    assert_eq!(answer.epochs.get("web"), Some(&(before + 1)));
}

/// A decision's write is in flight (etcd out of reach, retried) when the
/// node steps down; the node wins the lease again and loads the state;
/// then the write fails. Its changes belong to the term that ended: they
/// are not written under the new one. Before, the writer put them back in
/// its queue after the step-down had emptied it, and wrote them with the
/// new term's guard a second later — over the state the take-over had
/// loaded: the old term's decision (a failover the step-down abandoned)
/// stored as running, for the next leader to resume, while this leader's
/// memory knew nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_at_a_step_down_is_not_made_in_the_next_term() {
    use crate::etcd::leader::{Leadership, Role};
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let store = Arc::new(FaultyStore::default());
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_routed_as(
        &text,
        &dir,
        store.clone(),
        |_| Arc::new(FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();
    let role = HaRole(s.clone());
    role.take_over(1, None).await.unwrap();
    s.writer_settled().await;
    let before = group(&s).epoch;

    store.write_armed.store(true, SeqCst);
    s.operator_failover("web", "b", "operator")
        .expect("failover");
    for _ in 0..500 {
        if store.write_entered.load(SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        store.write_entered.load(SeqCst),
        "the decision is being written"
    );

    role.step_down("the lease could not be renewed before its deadline");
    role.take_over(2, None).await.unwrap();
    assert_eq!(
        group(&s).epoch,
        before,
        "the take-over loaded the stored state"
    );

    // The write in flight fails (etcd still out of reach for it).
    store.full.store(true, SeqCst);
    store.release_write();
    for _ in 0..500 {
        if store.write_done.load(SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.full.store(false, SeqCst);
    // The new term changes the group and waits until that is stored (the
    // writer retries what it kept a second after the failure).
    s.operator_maintenance("web", true, "operator")
        .expect("maintenance");
    s.writer_settled().await;

    let stored = store.inner.groups().unwrap();
    let web = stored.iter().find(|g| g.name == "web").expect("web stored");
    assert_eq!(
        (web.epoch, web.phase, web.runbook, web.maintenance),
        (before, Phase::Steady, None, true),
        "the ended term's decision was written in the next one"
    );
    assert!(
        store.inner.runbooks().unwrap().is_empty(),
        "the ended term's runbook was stored in the next one: {:#?}",
        store.inner.runbooks().unwrap()
    );
    assert_eq!(group(&s).epoch, web.epoch, "memory and store agree");
}

/// The same write in flight, refused once it reaches etcd again — as the
/// ended term's, after this node has won the lease again and taken over.
/// The refusal ends the term it was made under, not the new one. Before,
/// it revoked the new term's licence: the node held the leader key and
/// renewed its lease, and nobody acted (no failover, no order) until the
/// lease was lost some other way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_an_ended_term_refused_in_the_next_does_not_end_it() {
    use crate::etcd::leader::{Leadership, Role};
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let store = Arc::new(FaultyStore::default());
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_routed_as(
        &text,
        &dir,
        store.clone(),
        |_| Arc::new(FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();
    let role = HaRole(s.clone());
    role.take_over(1, None).await.unwrap();
    s.writer_settled().await;

    store.write_armed.store(true, SeqCst);
    s.operator_failover("web", "b", "operator")
        .expect("failover");
    for _ in 0..500 {
        if store.write_entered.load(SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        store.write_entered.load(SeqCst),
        "the decision is being written"
    );
    role.step_down("the lease could not be renewed before its deadline");
    role.take_over(2, None).await.unwrap();

    // The new term changes the group; the old write is refused meanwhile.
    s.operator_maintenance("web", true, "operator")
        .expect("maintenance");
    store.write_deposed.store(true, SeqCst);
    store.release_write();
    s.writer_settled().await;
    assert!(
        s.licence.is_held(),
        "the refusal of the ended term's write ended the new term"
    );
    let stored = store.inner.groups().unwrap();
    assert!(stored.iter().any(|g| g.name == "web" && g.maintenance));
}

/// The disk is full when a failover is decided: the decision's write
/// fails, and the runbook goes on from memory; its own step records fit
/// and are stored as it goes (its promote of b is running, b's agent has
/// not answered yet). Then the group writer's retry of the decision lands.
/// It must not put the runbook's initial record (every step pending) over
/// the newer one: a crash then would resume the failover from its first
/// step, and a failback's `rolling_back` record overwritten so would be
/// resumed as its cut-over. Before, the retry wrote the initial record.
#[tokio::test(start_paused = true)]
async fn a_retried_decision_never_puts_its_runbook_back_to_the_initial_record() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(FaultyStore {
        volatile: true,
        ..FaultyStore::default()
    });
    let (s, _fake, _dir) = setup_with(false, 5, "", store.clone());
    for _ in 0..4 {
        round(&s, true).await;
    }
    store.decisions_full.store(true, SeqCst);
    // A slow disk too: the decision's refusal comes 20 ms later, in real
    // time, on the store thread (many rounds of a paused clock).
    store.decision_write_ms.store(20, SeqCst);
    let id = s.operator_failover("web", "b", "operator").unwrap();
    let stored = || {
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
        if stored().is_some_and(|r| promoting(&r)) {
            break;
        }
        round_sites_unsettled(&s, (true, true), &hung).await;
    }
    assert!(
        stored().is_some_and(|r| promoting(&r)),
        "the runbook's step records are stored: {:#?}",
        stored()
    );
    assert_eq!(group(&s).phase, Phase::Running);
    // Room on the disk again: the writer's retry of the decision lands.
    store.decisions_full.store(false, SeqCst);
    s.writer_settled().await;
    let rb = stored().expect("stored");
    assert!(
        promoting(&rb),
        "the retried decision put the runbook's initial record over its newer one: {:#?}",
        rb.steps
    );
    assert_eq!(rb, s.lock().runbooks[&id], "memory and store agree");
}

/// The same for the orders a report's answer carries: the group's epoch
/// raised in memory (a split mended at the next one) while the store
/// cannot write it, b reports the active role it should not hold — it is
/// not ordered to demote at the epoch the store does not hold; once
/// written, it is. Before, the refence demote was built from the epoch in
/// memory and handed out at once: an agent holding an epoch lost with a
/// deposed leader's write holds every later leader's moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_carries_only_an_epoch_the_store_holds() {
    use warden_proto::agent::AuthorityWire;
    let store = Arc::new(FaultyStore::default());
    let (s, _fake, _dir) = setup_with(false, 1, "", store.clone());
    s.writer_settled().await;
    let before = s.lock().groups["web"].epoch;
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    {
        let mut st = s.lock();
        let mut g = st.groups["web"].clone();
        assert_eq!((g.active.as_str(), g.phase), ("a", Phase::Steady));
        g.epoch = before + 1;
        s.put_group_locked(&mut st, g);
    }
    let b_active = |seq| {
        let mut r = super::fresh_checks_tests::report("b", seq, vec![]);
        r.authority = vec![AuthorityWire {
            group: "web".into(),
            epoch: before,
            role: "active".into(),
            ..AuthorityWire::default()
        }];
        s.accept_report(r)
    };
    let answer = b_active(1);
    assert!(
        answer.commands.iter().all(|c| c.epoch <= before),
        "an order at an epoch the store does not hold: {:?}",
        answer.commands
    );
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    s.writer_settled().await;
    let answer = b_active(2);
    assert!(
        answer
            .commands
            .iter()
            .any(|c| c.kind == CommandKind::Demote && c.epoch == before + 1),
        "{:?}",
        answer.commands
    );
}

/// Runbooks 1..=12 of group web, ended a second ago, in `store`; now.
fn twelve_ended(store: &FaultyStore) -> u64 {
    use crate::model::RunbookKind;
    let now = Clock::new().now_ms();
    for id in 1..=12 {
        let mut rb = Runbook::new(id, "web", RunbookKind::Failover, "a", "b", id, "op", 0, 0);
        rb.status = RunbookStatus::Succeeded;
        rb.finished_unix_ms = Some(now - 1000);
        store.inner.put_runbook(&rb).unwrap();
    }
    now
}

/// The runbook retention on a store that refuses the delete (a full disk,
/// a deposed leader's write): memory keeps what the store keeps — nothing
/// is shown gone that a restart would bring back — and the next pass,
/// once the store takes writes, deletes them.
#[tokio::test]
async fn a_refused_runbook_delete_leaves_memory_as_the_store() {
    let store = Arc::new(FaultyStore::default());
    twelve_ended(&store);
    let (s, _fake, _dir) = setup_with(false, 1, "runbooks_keep = 10", store.clone());
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    s.prune_runbooks().await;
    assert_eq!(store.inner.runbooks().unwrap().len(), 12);
    assert_eq!(s.runbooks(Some("web")).len(), 12, "memory as the store");
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    s.prune_runbooks().await;
    let ids: Vec<u64> = s.runbooks(Some("web")).iter().map(|r| r.id).collect();
    assert_eq!(ids, (3..=12).collect::<Vec<_>>());
    assert_eq!(store.inner.runbooks().unwrap().len(), 10);
}

/// No retention pass while a group's change waits to be written (the
/// local store on a nearly full disk: a decision's write refused while
/// smaller writes and deletes still land): the store's group record may
/// name a runbook memory moved past, which a restart then reads. Once the
/// writer has caught up, the pass runs.
#[tokio::test]
async fn no_runbook_is_deleted_while_a_group_change_waits_to_be_written() {
    use crate::model::RunbookKind;
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(FaultyStore::default());
    let now = twelve_ended(&store);
    let (s, _fake, _dir) = setup_with(false, 1, "runbooks_keep = 10", store.clone());
    let stop = CancellationToken::new();
    tokio::spawn(s.clone().write_groups(stop.clone()));
    store.decisions_full.store(true, SeqCst);
    let g = s.lock().groups["web"].clone();
    let rb = Runbook::new(
        13,
        "web",
        RunbookKind::Failback,
        "b",
        "a",
        13,
        "op",
        now,
        now,
    );
    let seq = s.writer.queue(&g, Some(&rb));
    let failed = s.writer.durable_or_failed(seq, true, &stop).await;
    assert_eq!(failed, Some(false), "the decision's write was refused");
    s.prune_runbooks().await;
    assert_eq!(
        store.inner.runbooks().unwrap().len(),
        12,
        "deleted while a decision waited to be written"
    );
    store.decisions_full.store(false, SeqCst);
    let written = s.writer.durable_or_failed(seq, false, &stop).await;
    assert_eq!(written, Some(true), "written at the retry");
    s.prune_runbooks().await;
    let ids: Vec<u64> = store
        .inner
        .runbooks()
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert!(!ids.contains(&1) && !ids.contains(&2), "{ids:?}");
    stop.cancel();
}
