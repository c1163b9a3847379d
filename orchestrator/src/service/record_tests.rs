//! A stored runbook to resume that this version would not run as it was
//! written (another version's steps, a damaged record) is a clear error at
//! start: nothing resumed, nothing written.
use super::harness::{test_config, test_dir};
use super::*;
use crate::store::{MemStore, Store};

/// Failback b → a at epoch 4, its demote done, with the switch before the
/// final pass and the promote (another version's order, or a damaged
/// record), and web running it at epoch 4: the group and the runbook.
fn reordered_failback(cfg: &warden_config::Config) -> (GroupState, Runbook) {
    let fresh = load_state(cfg, &MemStore::default()).unwrap().groups["web"].clone();
    let mut rb = Runbook::new(3, "web", RunbookKind::Failback, "b", "a", 4, "test", 0, 0);
    let at = |rb: &Runbook, n: StepName| rb.steps.iter().position(|s| s.name == n).unwrap();
    let switch = rb.steps.remove(at(&rb, StepName::Switch));
    let before = at(&rb, StepName::FinalSync);
    rb.steps.insert(before, switch);
    for s in &mut rb.steps[..3] {
        s.status = StepStatus::Done;
    }
    let group = GroupState {
        active: "b".into(),
        epoch: 4,
        phase: Phase::Running,
        runbook: Some(3),
        ..fresh
    };
    (group, rb)
}

/// [`reordered_failback`] on etcd, mid rolling upgrade: a node taking over
/// leaves web and the runbook as stored, and says so naming the runbook
/// and both lists — the other groups are acted on. Before, the take-over
/// was refused as a whole (no group acted on by this node).
#[test]
fn on_a_shared_store_a_runbook_whose_steps_this_version_does_not_run_sets_its_group_aside() {
    let dir = test_dir(true, 5);
    let cfg = test_config(&dir);
    let (group, rb) = reordered_failback(&cfg);
    let store = MemStore::shared();
    store.put_group(&group).unwrap();
    store.put_runbook(&rb).unwrap();

    let loaded = load_state(&cfg, &store).unwrap();
    assert!(!loaded.groups.contains_key("web"));
    assert!(loaded.to_write.is_empty(), "{:?}", loaded.to_write);
    let why = loaded.untouched.get("web").cloned().unwrap_or_default();
    assert!(
        why.starts_with("group web: ")
            && why.contains("runbook 3 of group web")
            && why.contains("decide, resync, demote, switch, final_sync, promote"),
        "{why}"
    );
}

/// [`reordered_failback`]: resumed as stored, its next step routed users
/// to a, whose data missed the final pass and which was not promoted. The
/// start is refused, naming the runbook and both lists; the store is as
/// it was.
#[tokio::test]
async fn a_runbook_whose_steps_this_version_does_not_run_is_refused_not_resumed() {
    let dir = test_dir(true, 5);
    let cfg = test_config(&dir);
    let (group, rb) = reordered_failback(&cfg);
    let store = MemStore::default();
    store.put_group(&group).unwrap();
    store.put_runbook(&rb).unwrap();

    let err = load_state(&cfg, &store)
        .map(|l| {
            let rb = &l.runbooks[&3];
            format!(
                "loaded: group {:?}, runbook resumed at step {:?}",
                l.groups["web"].phase,
                rb.next_step().map(|i| rb.steps[i].name)
            )
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("runbook 3 of group web")
            && err.contains("decide, resync, demote, switch, final_sync, promote")
            && err.contains("decide, resync, demote, final_sync, promote, switch"),
        "{err}"
    );
    assert_eq!(store.groups().unwrap(), vec![group]);
    assert_eq!(store.runbooks().unwrap(), vec![rb.clone()]);

    // Finished, the same record is history: read, not refused.
    let mut done = rb;
    done.status = RunbookStatus::Failed;
    store.put_runbook(&done).unwrap();
    store
        .put_group(&GroupState {
            phase: Phase::Failed,
            runbook: None,
            ..store.groups().unwrap()[0].clone()
        })
        .unwrap();
    assert!(load_state(&cfg, &store).is_ok());
}
