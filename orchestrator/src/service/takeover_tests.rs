//! Around a take-over: its own work (adopting groups new to the store,
//! resuming the runbooks it loaded, the first reconciliation) belongs to
//! the term it was won for — once that term ends, none of it goes on under
//! a later one the node has won since; and what the node recorded while it
//! followed is never written as the leader's record. At a take-over and at
//! a single orchestrator's start alike, the runbooks found running resume
//! before groups new to the store are adopted.
use super::harness::*;
use super::*;
use crate::etcd::leader::{Leadership, Role};
use crate::store::{MemStore, Store};

/// A node elected on a store holding group g1 mid-switchover (runbook 1,
/// to be resumed) and nothing of g0 (new: adopted from its routing layer,
/// which does not answer yet). The node loses its first term while the
/// take-over still waits for g0's layer, and wins a second one, whose
/// take-over waits there too. When the layer answers, runbook 1 has been
/// resumed once under the second term. Before, the first term's take-over
/// went on under the second (it looked at the licence, held again, not at
/// its own term) and resumed runbook 1 too: two tasks running one runbook
/// (its fence command and hooks ordered twice, its end recorded twice).
/// (Runbooks now resume before any adoption; what follows the adoption —
/// the first reconciliation — still stops with its term.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_over_cut_short_by_the_end_of_its_term_resumes_nothing_under_the_next() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let dir = test_dir(false, 5);
    let text = many_groups_text(&dir, 2);
    let store = mid_switchover(&dir, &text);

    // g0's routing layer: every read waits until released.
    let (release, stalled) = watch::channel(true);
    let reads = Arc::new(AtomicUsize::new(0));
    let g0 = Arc::new(FakeRoute::default());
    *g0.stalled.lock().unwrap() = Some(stalled);
    let counted = reads.clone();
    *g0.on_read.lock().unwrap() = Some(Box::new(move || {
        counted.fetch_add(1, SeqCst);
    }));
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_routed_as(
        &text,
        &dir,
        store.clone(),
        move |name| {
            if name == "g0" {
                g0.clone()
            } else {
                Arc::new(FakeRoute::default())
            }
        },
        Mode::Elected(view),
    )
    .unwrap();
    let role = HaRole(s.clone());
    let reads_reach = |n: usize| {
        let reads = reads.clone();
        async move {
            for _ in 0..500 {
                if reads.load(SeqCst) >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!(
                "g0's routing layer was read {} times, not {n}",
                reads.load(SeqCst)
            );
        }
    };

    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(7, None).await.unwrap();
    reads_reach(1).await;
    // The lease is lost while the take-over waits for g0's layer ...
    role.step_down("test: the lease was lost");
    // ... and won again: this term's take-over waits there too.
    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(9, None).await.unwrap();
    reads_reach(2).await;
    release.send_replace(false);

    let resumed = || {
        s.lock()
            .recent
            .iter()
            .filter(|e| e.kind == EventKind::RunbookResumed && e.runbook == Some(1))
            .map(|e| (e.term, e.message.clone()))
            .collect::<Vec<_>>()
    };
    let under = |term: u64| resumed().into_iter().filter(|r| r.0 == term).count();
    for _ in 0..500 {
        if under(9) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Whatever else would resume it comes at once: given a generous while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Once per term at most (term 7's task, if it ran, was cancelled with
    // its term); under term 9, once.
    assert!(under(7) <= 1, "{:?}", resumed());
    assert_eq!(
        under(9),
        1,
        "runbook 1 resumed {} times under term 9: {:?}",
        under(9),
        resumed()
    );
    s.licence().revoke("test: end");
}

/// A node's events while it follows are its own log lines, numbered from
/// where the store was when it started — the leader has used those ids
/// since. From the moment the node wins the leader key, the store takes
/// its writes (etcd's guard is its term) while its take-over still loads
/// the state; the events its detector recorded meanwhile (a site going
/// down with the old leader: just then) were written under the leader's
/// ids, over the leader's events. Here the store takes writes throughout
/// (a memory store), standing for that window. None of the follower's
/// events is written; the leader's event 6 stays. Before: replaced by
/// the follower's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_events_never_overwrite_the_leaders() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let event = |id: u64, message: &str| Event {
        id,
        time_unix_ms: now + id,
        kind: EventKind::Started,
        group: None,
        site: None,
        message: message.to_string(),
        evidence: vec![],
        runbook: None,
        epoch: None,
        term: 3,
    };
    let store = Arc::new(MemStore::default());
    let old: Vec<Event> = (1..=5).map(|id| event(id, "the leader's")).collect();
    store.put_events(&old).unwrap();
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_routed_as(
        &text,
        &dir,
        store.clone(),
        |_| Arc::new(FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let writer = tokio::spawn(s.clone().write_events(stop.clone()));
    // The leader goes on recording: ids 6 to 8.
    let newer: Vec<Event> = (6..=8).map(|id| event(id, "the leader's")).collect();
    store.put_events(&newer).unwrap();
    // This node, following, records an observation of its own.
    s.event(
        EventKind::SiteDown,
        None,
        Some("a"),
        "seen by the follower".into(),
        vec![],
        None,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    writer.await.unwrap();
    let stored = store.events(0, 100).unwrap();
    let messages: Vec<(u64, &str)> = stored.iter().map(|e| (e.id, e.message.as_str())).collect();
    assert!(
        stored.iter().all(|e| e.message == "the leader's") && stored.len() == 8,
        "the follower's event was written over the leader's: {messages:?}"
    );
}

/// A new leader resumes the runbooks it loaded before it adopts the
/// groups new to the store: g1's switchover (users may be down mid-move)
/// does not wait for g0's routing layer, which does not answer (the
/// adoption waits for it up to its timeout, 5 s a group, and the DNS name
/// of a hybrid one as long again). Before, every new group's adoption came
/// first, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_resumes_runbooks_before_adopting_new_groups() {
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let order = resumed_or_adopted_first(Mode::Elected(view), |s| async move {
        let role = HaRole(s.clone());
        assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
        role.take_over(7, None).await.unwrap();
    })
    .await;
    assert_eq!(
        order,
        vec![EventKind::RunbookResumed, EventKind::Adopted],
        "g1's runbook waited for g0's adoption"
    );
}

/// The same at a single orchestrator's start (`Shared::start_alone`, what
/// `run` does without etcd): runbook 1 resumes while g0's adoption still
/// waits for its routing layer. Before, the start adopted first, every
/// new group one after the other, and only then resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_orchestrator_resumes_runbooks_before_adopting_new_groups() {
    let order = resumed_or_adopted_first(Mode::Local, |s| async move {
        tokio::spawn(async move { s.start_alone().await });
    })
    .await;
    assert_eq!(
        order,
        vec![EventKind::RunbookResumed, EventKind::Adopted],
        "g1's runbook waited for g0's adoption"
    );
}

/// A store holding g1 mid-switchover (runbook 1) and nothing of g0, whose
/// routing layer answers only after a second; `start` starts the service
/// in `mode`: the order in which runbook 1 resumed and g0 was adopted.
async fn resumed_or_adopted_first<F, Fut>(mode: Mode, start: F) -> Vec<EventKind>
where
    F: FnOnce(Arc<Shared>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = test_dir(false, 5);
    let text = many_groups_text(&dir, 2);
    let store = mid_switchover(&dir, &text);
    // g0's routing layer answers only once released.
    let (release, stalled) = watch::channel(true);
    let g0 = Arc::new(FakeRoute::default());
    *g0.stalled.lock().unwrap() = Some(stalled);
    let s = start_routed_as(
        &text,
        &dir,
        store.clone(),
        move |name| {
            if name == "g0" {
                g0.clone()
            } else {
                Arc::new(FakeRoute::default())
            }
        },
        mode,
    )
    .unwrap();
    start(s.clone()).await;
    let order = || {
        s.lock()
            .recent
            .iter()
            .filter(|e| {
                (e.kind == EventKind::RunbookResumed && e.runbook == Some(1))
                    || (e.kind == EventKind::Adopted && e.group.as_deref() == Some("g0"))
            })
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    };
    // Well within g0's adoption timeout: whatever was not held up by it
    // has happened by then.
    tokio::time::sleep(Duration::from_secs(1)).await;
    release.send_replace(false);
    for _ in 0..500 {
        if order().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = order();
    s.licence().revoke("test: end");
    seen
}

/// A store for `text` (in `dir`) holding g1 mid-switchover s2 → s3 at
/// epoch 2 (runbook 1, running) and nothing of g0.
fn mid_switchover(dir: &std::path::Path, text: &str) -> Arc<MemStore> {
    let store = Arc::new(MemStore::default());
    let cfg = warden_config::parse(text, &dir.join("failover.conf")).unwrap();
    let mut g1 = load_state(&cfg, store.as_ref()).unwrap().groups["g1"].clone();
    let rb = Runbook::new(
        1,
        "g1",
        RunbookKind::Switchover,
        "s2",
        "s3",
        2,
        "operator",
        1,
        1,
    );
    g1.epoch = 2;
    g1.phase = Phase::Running;
    g1.runbook = Some(1);
    g1.hold = None;
    store.put_group_and_runbook(&g1, &rb).unwrap();
    store
}

/// Every term this node wins makes each group's routing layer forget
/// what it remembers of an earlier term (`Strategy::term_began`: a DNS
/// provider's confirmed names, which other leaders may have changed since)
/// before the term orders anything. Before, a node leading again trusted
/// its first term's memory: a switch to what it remembered sent nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_term_won_makes_the_routing_layers_forget_an_earlier_terms_memory() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = test_dir(false, 5);
    let text = many_groups_text(&dir, 2);
    let store = mid_switchover(&dir, &text);
    let layers: Arc<Mutex<Vec<Arc<FakeRoute>>>> = Arc::default();
    let made = layers.clone();
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_routed_as(
        &text,
        &dir,
        store.clone(),
        move |_| {
            let layer = Arc::new(FakeRoute::default());
            made.lock().unwrap().push(layer.clone());
            layer
        },
        Mode::Elected(view),
    )
    .unwrap();
    let began = || {
        layers
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.terms_began.load(SeqCst))
            .collect::<Vec<_>>()
    };
    assert_eq!(began(), vec![0, 0], "a follower forgets nothing");
    let role = HaRole(s.clone());
    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(7, None).await.unwrap();
    assert_eq!(began(), vec![1, 1]);
    role.step_down("test: the lease was lost");
    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(9, Some(0xb)).await.unwrap();
    assert_eq!(
        began(),
        vec![2, 2],
        "the second term trusted the first's memory"
    );
    // Each layer is told the term and cluster its route orders state (a
    // frontend that left a cluster refuses that cluster's leader's routes).
    for l in layers.lock().unwrap().iter() {
        assert_eq!(*l.leads.lock().unwrap(), vec![(7, None), (9, Some(0xb))]);
    }
    role.step_down("test: done");
}
