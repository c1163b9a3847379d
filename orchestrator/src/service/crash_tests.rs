//! The orchestrator killed mid-runbook and started again on the store it
//! left: what the restarted process finishes, and what it never resumes.
use super::harness::*;
use super::store_fault_tests::FaultyStore;
use super::*;
use crate::store::{MemStore, Store};

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
    assert_eq!(*fake2.route.lock().unwrap(), route, "no switch");
}
