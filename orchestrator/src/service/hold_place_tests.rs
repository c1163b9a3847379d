//! Hold orders placed across a change of authority: a new leader on etcd,
//! or a single orchestrator restarted, whose clock is behind the one that
//! gave the orders the frontends hold still has its orders taken — and a
//! deposed leader's late copy is still refused. The fake routing layer
//! fences hold orders as `warden frontend` does (see `FakeRoute::hold`).
use super::harness::*;
use super::*;
use crate::etcd::leader::{Leadership, Role};
use crate::routing::Routing;
use crate::store::MemStore;
use std::sync::atomic::Ordering::SeqCst;
use warden_strategies::{HoldPlace, Strategy};

/// Let the tasks that send the orders run.
async fn settle() {
    for _ in 0..40 {
        tokio::task::yield_now().await;
    }
}

/// The service on `text` over `store` telling the time by `clock`, group
/// web routed through `fake`.
fn on_fake(
    text: &str,
    dir: &std::path::Path,
    store: &Arc<MemStore>,
    fake: &Arc<FakeRoute>,
    mode: Mode,
    clock: Clock,
) -> Arc<Shared> {
    let web = fake.clone();
    start_clocked(text, dir, store.clone(), mode, clock, move |_, _| {
        Routing::Single(web.clone() as Arc<dyn Strategy>)
    })
    .expect("config")
}

/// Several orchestrators on etcd. The leader (term 5) orders a runbook's
/// cut-over at epoch 1 and is deposed; an order it gave just before, an
/// hour's seconds later by its clock, is still on its way. The new leader
/// (term 9) runs on a host whose clock is 60 s behind: its withdrawal of
/// the cut-over and the cut-over it orders when it resumes the runbook are
/// taken — before, both were refused as late copies (placed by its clock,
/// before its predecessor's orders), users were not held for its switch
/// and the old cut-over stood for its ttl. The deposed leader's late copy,
/// placed higher by its clock, lands last and is refused.
#[tokio::test(start_paused = true)]
async fn a_new_leader_with_a_clock_behind_has_its_hold_orders_taken() {
    let store = Arc::new(MemStore::default());
    let fake = Arc::new(FakeRoute::default());
    let ttl = Duration::from_secs(30);
    let node = |clock: Clock| {
        let dir = test_dir(false, 5);
        let text = config_text(&dir, false, 5, "");
        let (tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
        let s = on_fake(&text, &dir, &store, &fake, Mode::Elected(view), clock);
        (s, (tx, dir))
    };

    let (old, _old_keep) = node(Clock::new());
    HaRole(old.clone())
        .take_over(5, Some(0xe7c0))
        .await
        .unwrap();
    settle().await;
    old.order_hold("web", 1, ttl, true);
    settle().await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let late = HoldPlace {
        term: old.hold_term(),
        seq: old.next_hold_seq(0),
        cluster: old.hold_cluster(),
    };
    HaRole(old.clone()).step_down("test: lease lost");
    // Another process: its driver has heard of no place yet.
    fake.hold_reported.store(0, SeqCst);

    let (new, _new_keep) = node(Clock::new().behind(60_000));
    HaRole(new.clone())
        .take_over(9, Some(0xe7c0))
        .await
        .unwrap();
    settle().await;
    new.order_hold("web", 1, Duration::ZERO, true);
    settle().await;
    new.order_hold("web", 1, ttl, true);
    settle().await;
    let taken = fake.hold_taken.lock().unwrap().clone();
    assert_eq!(
        taken.iter().map(|t| t.1).collect::<Vec<_>>(),
        vec![true, true, true],
        "the new leader's withdrawal and cut-over must be taken: (term, taken) {taken:?}, seqs {:?}",
        fake.hold_seqs.lock().unwrap()
    );
    let newest = fake.hold_fence.lock().unwrap().1;
    assert!(
        late.seq > newest.seq,
        "the late copy is placed higher by its clock: {late:?} {newest:?}"
    );

    // The deposed leader's order lands now: a late copy, refused; the new
    // leader's cut-over stands.
    let landed = fake.hold(1, late, Duration::ZERO, true).await;
    assert!(
        landed.is_err(),
        "the deposed leader's late copy {late:?} was taken over the new leader's {newest:?}"
    );
    assert_eq!(fake.hold_fence.lock().unwrap().1, newest);
    assert_eq!(
        (late.term, newest.term),
        (5, 9),
        "each order carries its leader's term"
    );
    assert_eq!(
        (late.cluster, newest.cluster),
        (Some(0xe7c0), Some(0xe7c0)),
        "and the etcd cluster of that term"
    );
}

/// A single orchestrator on its local store (no term) restarted after its
/// clock was stepped back a minute (an NTP step): once its first
/// reconciliation has read the routes back, its hold and its withdrawal
/// are placed after its former self's orders and taken. Restarted again,
/// two minutes back, with no read yet: its first order is refused (placed
/// before the newest), the refusal names the newest taken, and the next
/// order is placed after it and taken — the refused one is not sent
/// again. Before, every order was refused until its clock caught up.
#[tokio::test(start_paused = true)]
async fn a_restart_with_the_clock_stepped_back_still_has_its_hold_orders_taken() {
    let store = Arc::new(MemStore::default());
    let fake = Arc::new(FakeRoute::default());
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let ttl = Duration::from_secs(30);
    let start = |clock: Clock| on_fake(&text, &dir, &store, &fake, Mode::Local, clock);

    let first = start(Clock::new());
    first.order_hold("web", 1, ttl, false);
    settle().await;
    first.licence.revoke("test: stopped");
    fake.hold_reported.store(0, SeqCst);

    let second = start(Clock::new().behind(60_000));
    second.reconcile_once().await;
    second.order_hold("web", 1, ttl, false);
    settle().await;
    second.order_hold("web", 1, Duration::ZERO, false);
    settle().await;
    assert_eq!(
        *fake.hold_taken.lock().unwrap(),
        vec![(0, true), (0, true), (0, true)],
        "the restarted orchestrator's hold and withdrawal must be taken: seqs {:?}",
        fake.hold_seqs.lock().unwrap()
    );
    second.licence.revoke("test: stopped");
    fake.hold_reported.store(0, SeqCst);

    let third = start(Clock::new().behind(120_000));
    third.order_hold("web", 1, ttl, false);
    settle().await;
    third.order_hold("web", 1, Duration::ZERO, false);
    settle().await;
    let taken = fake.hold_taken.lock().unwrap().clone();
    assert_eq!(
        taken[3..],
        [(0, false), (0, true)],
        "after one refusal, the next order is placed after the newest taken: seqs {:?}",
        fake.hold_seqs.lock().unwrap()
    );
    assert_eq!(
        fake.holds.lock().unwrap().len(),
        5,
        "the refused order was sent again"
    );
}

/// A single orchestrator killed mid-runbook and started again after its
/// clock was stepped back a minute: before it resumes the runbook it reads
/// the group's route back (reconciliation skips a running group), so the
/// cut-over it orders first is placed after its former self's and taken.
/// Before, it was refused as a late copy: users were not held for the
/// switch the resumed runbook was about to make.
#[tokio::test(start_paused = true)]
async fn a_runbook_resumed_after_a_clock_step_back_has_its_first_cut_over_taken() {
    let store = Arc::new(MemStore::default());
    let fake = Arc::new(FakeRoute::default());
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let ttl = Duration::from_secs(30);
    let start = |clock: Clock| on_fake(&text, &dir, &store, &fake, Mode::Local, clock);

    let killed = start(Clock::new());
    killed.order_hold("web", 2, ttl, true);
    settle().await;
    killed.licence.revoke("test: the process is killed");
    fake.hold_reported.store(0, SeqCst);

    let restarted = start(Clock::new().behind(60_000));
    // The runbook it resumes (its group running).
    restarted
        .lock()
        .groups
        .get_mut("web")
        .expect("group web")
        .phase = Phase::Running;
    restarted.learn_hold_places().await;
    restarted.order_hold("web", 2, ttl, true);
    settle().await;
    assert_eq!(
        *fake.hold_taken.lock().unwrap(),
        vec![(0, true), (0, true)],
        "the resumed runbook's cut-over must be taken: seqs {:?}",
        fake.hold_seqs.lock().unwrap()
    );
}

/// A frontend that reports a place two days ahead of this orchestrator's
/// clock (a broken frontend, or a forged answer) is not believed: placed
/// after it, every later order would be pinned at the top of `seq` — all
/// "repeats", none placed after another. Orders stay placed by the clock.
#[tokio::test(start_paused = true)]
async fn a_place_reported_far_ahead_of_the_clock_is_not_placed_after() {
    let (s, fake, _dir) = setup(true, 5);
    let now = s.clock.now_ms();
    let far = now + 2 * 86_400_000;
    fake.hold_reported.store(far, SeqCst);
    s.order_hold("web", 1, Duration::from_secs(30), false);
    settle().await;
    let seqs = fake.hold_seqs.lock().unwrap().clone();
    assert!(
        seqs.len() == 1 && seqs[0] < far && seqs[0] >= now,
        "placed after a report two days ahead: {seqs:?} (now {now})"
    );
}
