//! The failback's hand-over: the old active site's change journal, the
//! names its demote hands to the final pass, and replicas.
use super::*;

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
