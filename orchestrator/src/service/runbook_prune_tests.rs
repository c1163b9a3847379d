//! The runbook retention: what it keeps whatever the settings say, and a
//! pass on a store that held more than it keeps (the store and memory the
//! same after it, a restart numbering new runbooks after the highest).
use super::*;
use crate::model::RunbookKind;
use crate::service::harness::*;
use crate::store::{MemStore, Store};

fn ended(id: u64, group: &str, kind: RunbookKind, finished: u64, rto: Option<u64>) -> Runbook {
    let mut rb = Runbook::new(id, group, kind, "a", "b", id, "detector", 0, 0);
    rb.status = RunbookStatus::Succeeded;
    rb.finished_unix_ms = Some(finished);
    rb.rto_ms = rto;
    rb
}

/// Beyond the newest `keep` of a group, and ended before the age limit,
/// runbooks go — but never one that runs or rolls back, the one the
/// group's record names, the group's newest, nor the newest with an RTO of
/// a group and kind; oldest first, at most `max`.
#[test]
fn the_retention_keeps_what_is_in_force_and_the_newest() {
    let mut all: Vec<Runbook> = (1..=15)
        .map(|id| ended(id, "web", RunbookKind::Failover, 10_000, Some(900)))
        .collect();
    // 4: the group's only failback with an RTO (its gauge reads it).
    all[3] = ended(4, "web", RunbookKind::Failback, 10_000, Some(700));
    // 5: still running; 6: ended but rolling back its switch.
    all[4].status = RunbookStatus::Running;
    all[4].finished_unix_ms = None;
    all[5].rolling_back = true;
    // db: three, ended at 100, 200 and 300 (the age limit is 250).
    all.extend([
        ended(16, "db", RunbookKind::Failover, 100, None),
        ended(17, "db", RunbookKind::Switchover, 200, None),
        ended(18, "db", RunbookKind::Failover, 300, None),
    ]);
    let map: RunbookMap = all.into_iter().map(|r| (r.id, r)).collect();
    let mut web = GroupState::fresh("web", "b");
    web.runbook = Some(2);
    let groups: BTreeMap<String, GroupState> = [
        ("web".to_string(), web),
        ("db".to_string(), GroupState::fresh("db", "a")),
    ]
    .into_iter()
    .collect();

    // web has 15: the newest 10 (6..=15) stay by count; of 1..=5, the one
    // named by the record (2), the failback's RTO (4) and the running one
    // (5) stay. db's by age: 16 and 17 ended before 250, 18 is its newest.
    assert_eq!(doomed(&map, &groups, 10, 250, 1000), vec![1, 3, 16, 17]);
    assert_eq!(
        doomed(&map, &groups, 10, 250, 3),
        vec![1, 3, 16],
        "at most max"
    );
    // A keep of 1 and no age limit: every ended one but the newest and
    // those in force.
    let gone = doomed(&map, &groups, 1, 0, 1000);
    assert_eq!(gone, vec![1, 3, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17]);
    assert!(
        !gone.contains(&15),
        "web's newest (also its failover RTO's) stays"
    );
    // Everything past the age limit, a keep of 1000: the same.
    assert_eq!(doomed(&map, &groups, 1000, u64::MAX, 1000), gone);
    // Nothing past either: nothing goes.
    assert!(doomed(&map, &groups, 1000, 0, 1000).is_empty());
}

/// A leader whose store holds 25 ended runbooks of a group, and a
/// `runbooks_keep` of 10: a pass deletes the oldest 15 from the store and
/// from what the API shows; a restart on that store numbers its next
/// runbook after the highest kept, and a second pass deletes nothing more.
#[tokio::test]
async fn a_pass_deletes_the_runbooks_past_the_retention_from_the_store_and_memory() {
    let store = Arc::new(MemStore::default());
    let now = crate::service::Clock::new().now_ms();
    for id in 1..=25 {
        store
            .put_runbook(&ended(id, "web", RunbookKind::Failover, now - 1000, None))
            .unwrap();
    }
    let mut g = GroupState::fresh("web", "b");
    g.epoch = 25;
    g.runbook = Some(25);
    store.put_group(&g).unwrap();
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "runbooks_keep = 10\n");
    let (s, _fake) = start_from(&text, &dir, store.clone()).expect("config");
    assert_eq!(s.runbooks(Some("web")).len(), 25);

    s.prune_runbooks().await;
    let stored: Vec<u64> = store.runbooks().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(stored, (16..=25).collect::<Vec<_>>(), "the store");
    let shown: Vec<u64> = s.runbooks(Some("web")).iter().map(|r| r.id).collect();
    assert_eq!(shown, stored, "memory (what the API shows)");
    assert!(s.runbook(3).is_none());
    assert_eq!(s.lock().runbooks.newest_of("web").map(|r| r.id), Some(25));

    s.prune_runbooks().await;
    assert_eq!(store.runbooks().unwrap().len(), 10, "nothing more goes");

    let (again, _fake) = start_from(&text, &dir, store.clone()).expect("config");
    assert_eq!(again.runbooks(Some("web")).len(), 10);
    assert_eq!(
        again.lock().next_runbook,
        26,
        "numbered after the highest kept"
    );
}

/// The runbooks of the last year are kept by default, whatever their
/// number below 1000: nothing of a young store goes.
#[tokio::test]
async fn by_default_a_young_store_keeps_every_runbook() {
    let store = Arc::new(MemStore::default());
    let now = crate::service::Clock::new().now_ms();
    for id in 1..=40 {
        let kind = if id % 2 == 0 {
            RunbookKind::Failback
        } else {
            RunbookKind::Failover
        };
        store
            .put_runbook(&ended(id, "web", kind, now - 86_400_000, Some(500)))
            .unwrap();
    }
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let (s, _fake) = start_from(&text, &dir, store.clone()).expect("config");
    s.prune_runbooks().await;
    assert_eq!(store.runbooks().unwrap().len(), 40);
    assert_eq!(s.runbooks(None).len(), 40);
}

/// A leader whose clock runs 400 days ahead (a host booted with a wrong
/// clock) takes no runbook of yesterday for one older than
/// `runbooks_max_age` (365 days): age is counted back from the newest end
/// a runbook records when that is earlier. Before, every ended runbook but
/// the newest went at its first pass.
#[tokio::test]
async fn a_leader_clock_far_ahead_deletes_no_recent_runbook() {
    let store = Arc::new(MemStore::default());
    let now = crate::service::Clock::new().now_ms();
    for id in 1..=20 {
        store
            .put_runbook(&ended(
                id,
                "web",
                RunbookKind::Failover,
                now - 86_400_000 + id,
                None,
            ))
            .unwrap();
    }
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let s = start_clocked(
        &text,
        &dir,
        store.clone(),
        crate::service::Mode::Local,
        crate::service::Clock::new().ahead(400 * 86_400_000),
        |_, _| crate::routing::Routing::Single(Arc::new(FakeRoute::default())),
    )
    .expect("config");
    s.prune_runbooks().await;
    assert_eq!(store.runbooks().unwrap().len(), 20, "the store");
    assert_eq!(s.runbooks(Some("web")).len(), 20, "memory");
}

/// A process without the licence to act (a follower, a deposed leader, one
/// being stopped) deletes nothing: deleting history is an act, and a
/// deposed leader's delete could take what the new leader still shows.
#[tokio::test]
async fn no_runbook_is_deleted_without_the_licence() {
    let store = Arc::new(MemStore::default());
    let now = crate::service::Clock::new().now_ms();
    for id in 1..=25 {
        store
            .put_runbook(&ended(id, "web", RunbookKind::Failover, now - 1000, None))
            .unwrap();
    }
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "runbooks_keep = 10\n");
    let (s, _fake) = start_from(&text, &dir, store.clone()).expect("config");
    s.licence.revoke("test: deposed");
    s.prune_runbooks().await;
    assert_eq!(store.runbooks().unwrap().len(), 25, "the store");
    assert_eq!(s.runbooks(Some("web")).len(), 25, "memory");
}
