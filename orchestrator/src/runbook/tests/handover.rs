//! The failback's hand-over: the old active site's change journal, the
//! names its demote hands to the final pass, and replicas.
use super::*;
use crate::wrapped_store::{Wrapped, Write};
use std::sync::atomic::AtomicBool;

/// A failback with replication: the old active site's journal starts
/// before the resync, its demote is asked for the names since that mark,
/// and the final sync gets them — or none when the journal could not say.
async fn failback_with_journal(names: Option<Vec<String>>) -> (Runbook, Vec<(String, Command)>) {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    *w.journaled.lock().unwrap() = names;
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let sent = w.sent.lock().unwrap().clone();
    (rb, sent)
}

fn first<'a>(sent: &'a [(String, Command)], site: &str, kind: CommandKind) -> (usize, &'a Command) {
    sent.iter()
        .enumerate()
        .find(|(_, (s, c))| s == site && c.kind == kind)
        .map(|(i, (_, c))| (i, c))
        .unwrap_or_else(|| panic!("no {kind:?} to {site} in {sent:#?}"))
}

#[tokio::test(start_paused = true)]
async fn a_failback_hands_the_names_journaled_at_the_old_site_to_the_final_pass() {
    let (rb, sent) = failback_with_journal(Some(vec!["docs/a.txt".into()])).await;
    let (j, _) = first(&sent, "b", CommandKind::Journal);
    let (r, _) = first(&sent, "a", CommandKind::Resync);
    assert!(j < r, "the journal starts before the resync: {sent:#?}");
    let (_, demote) = first(&sent, "b", CommandKind::Demote);
    assert_eq!(demote.journal_since, Some(JournalMark { id: 7, seq: 3 }));
    let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
    assert_eq!(fin.changed, Some(vec!["docs/a.txt".to_string()]));
    assert_eq!(rb.changed, Some(vec!["docs/a.txt".to_string()]));
    let d = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Demote)
        .unwrap();
    assert!(d.detail.contains("names 1 changed"), "{}", d.detail);
}

#[tokio::test(start_paused = true)]
async fn a_switchover_to_a_replica_says_so_to_its_resync_and_final_sync() {
    let w = world_on("a", 2);
    w.replication.store(true, Ordering::Relaxed);
    let mut rb = runbook(RunbookKind::Switchover, "a", "b", 3);
    rb.replica = true;
    let rb = run(&w, rb).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let sent = w.sent.lock().unwrap().clone();
    assert!(first(&sent, "b", CommandKind::Resync).1.replica);
    assert!(first(&sent, "b", CommandKind::FinalSync).1.replica);
    assert!(!first(&sent, "b", CommandKind::StartReplication).1.replica);
}

#[tokio::test(start_paused = true)]
async fn names_for_another_journal_are_not_taken() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    w.other_journal.store(true, Ordering::Relaxed);
    *w.journaled.lock().unwrap() = Some(vec!["only-this.txt".into()]);
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let sent = w.sent.lock().unwrap().clone();
    let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
    assert_eq!(
        fin.changed, None,
        "names of another journal: a full final pass"
    );
}

#[tokio::test(start_paused = true)]
async fn a_journal_that_cannot_say_means_a_full_final_pass() {
    let (rb, sent) = failback_with_journal(None).await;
    let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
    assert_eq!(fin.changed, None);
    let d = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Demote)
        .unwrap();
    assert!(
        d.detail.contains("cannot say what changed (overflow)"),
        "{}",
        d.detail
    );
}

/// A store that refuses a runbook record over etcd's request limit (1.5 MiB
/// by default: "etcdserver: request is too large"), as etcd does.
#[derive(Default)]
struct RequestLimit {
    inner: MemStore,
}

impl Wrapped for RequestLimit {
    fn inner(&self) -> &MemStore {
        &self.inner
    }
    fn before(&self, w: Write<'_>) -> Result<(), crate::OrchestratorError> {
        let size = w
            .runbook()
            .map_or(0, |rb| serde_json::to_vec(rb).map_or(0, |b| b.len()));
        if size > 1536 * 1024 {
            return Err(crate::OrchestratorError::store(
                "etcd: write a runbook",
                "etcdserver: request is too large",
            ));
        }
        Ok(())
    }
}

/// The old active site's journal names 50,000 changes (about 3 MiB of
/// names: a busy site, a long resync) — more than a runbook's record can
/// carry into etcd. The final pass is a full one, the names are not kept
/// in the runbook, and the failback ends on a. Before, the demote's record
/// carried every name: etcd refused it at every try, and the failback
/// failed there ("cannot persist step demote") with b demoted and nothing
/// rolled back — users on a site whose demote hooks had stopped it.
#[tokio::test(start_paused = true)]
async fn a_journal_too_long_for_the_runbooks_record_means_a_full_final_pass() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    let names: Vec<String> = (0..50_000)
        .map(|i| format!("projects/2026/reports/quarter-{i:06}.ods"))
        .collect();
    *w.journaled.lock().unwrap() = Some(names);
    let store = RequestLimit::default();
    let rb = execute(
        failback_rb(),
        &w,
        &store,
        &policy(Fencing::BestEffort, None),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{:#?}", statuses(&rb));
    assert_eq!(rb.changed, None);
    let sent = w.sent.lock().unwrap().clone();
    let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
    assert_eq!(fin.changed, None, "a full final pass");
    let d = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Demote)
        .unwrap();
    assert!(
        d.detail.contains("50000 changed") && d.detail.contains("a full final pass"),
        "{}",
        d.detail
    );
    let stored = store.inner.runbooks().unwrap();
    assert_eq!(stored[0].status, RunbookStatus::Succeeded);
}

/// A store (as etcd) that refuses every write of a record whose `step` is
/// done while `refusing` holds — not as a deposed leader's ("mvcc:
/// database space exceeded": etcd's space quota reached).
struct Refusing {
    inner: MemStore,
    step: StepName,
    refusing: AtomicBool,
    refused: std::sync::atomic::AtomicU32,
}

impl Wrapped for Refusing {
    fn inner(&self) -> &MemStore {
        &self.inner
    }
    fn before(&self, w: Write<'_>) -> Result<(), crate::OrchestratorError> {
        let done = w.runbook().is_some_and(|rb| {
            rb.steps
                .iter()
                .any(|s| s.name == self.step && s.status == StepStatus::Done)
        });
        if done && self.refusing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(crate::OrchestratorError::store(
                "etcd: write a runbook",
                "etcdserver: mvcc: database space exceeded",
            ));
        }
        Ok(())
    }
}

/// The store refuses the record of the failback's finished demote (etcd
/// out of space; the leader keeps its lease): the runbook waits, saying
/// so, and goes on once the store takes the record again — it ends on a.
/// Before, it gave up after five seconds: failed, with b demoted and
/// nothing rolled back (users on a site whose demote hooks had stopped
/// it), though nothing but the record had failed.
#[tokio::test(start_paused = true)]
async fn a_step_the_store_cannot_record_waits_for_the_store_not_fails() {
    let w = world_on("b", 2);
    let store = Refusing {
        inner: MemStore::default(),
        step: StepName::Demote,
        refusing: AtomicBool::new(true),
        refused: Default::default(),
    };
    let p = policy(Fencing::BestEffort, None);
    let run = execute(failback_rb(), &w, &store, &p);
    tokio::pin!(run);
    let early = tokio::select! {
        rb = &mut run => Some(rb),
        _ = tokio::time::sleep(Duration::from_secs(60)) => None,
    };
    assert!(
        early.is_none(),
        "the runbook ended while its record could not be written: {:#?}",
        early.map(|rb| (rb.status, statuses(&rb)))
    );
    assert!(store.refused.load(Ordering::SeqCst) > 1, "retried");
    assert_eq!(
        w.runs("a", CommandKind::Promote),
        0,
        "nothing done unrecorded"
    );
    assert!(
        w.events
            .lock()
            .unwrap()
            .iter()
            .any(|(k, m)| *k == EventKind::Alert && m.contains("database space exceeded")),
        "said: {:?}",
        w.events.lock().unwrap()
    );
    store.refusing.store(false, Ordering::SeqCst);
    let rb = run.await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{:#?}", statuses(&rb));
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("a"));
}
