//! The leader lease against a real etcd (Debian's `etcd-server`, one
//! member on loopback, started and killed by each test): one leader, which
//! steps down within the lease TTL when etcd stops answering; a node that
//! cannot take over backs off; a slow take-over still holds the lease it
//! won, and one longer than the lease renews it meanwhile; the licence to act lapses at the lease's deadline even when the
//! loop does not run.

mod member;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use member::{cfg, etcd, Etcd};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warden_orchestrator::etcd::leader::{Election, Leadership, Role};
use warden_orchestrator::etcd::EtcdStore;
use warden_orchestrator::licence::Licence;

/// Records what the election asked of the service.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<(Instant, String)>>,
    /// The etcd cluster the last take-over was handed with its term.
    cluster: Mutex<Option<Option<u64>>>,
}

#[async_trait]
impl Role for Recorder {
    async fn take_over(&self, term: i64, cluster: Option<u64>) -> Result<(), String> {
        *self.cluster.lock().unwrap() = Some(cluster);
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), format!("lead {term}")));
        Ok(())
    }
    fn step_down(&self, why: &str) {
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), format!("down {why}")));
    }
    fn etcd_health(&self, _trouble: Option<&str>) {}
}

fn election(e: &Etcd, node: &str, role: Arc<dyn Role>) -> (Election, watch::Receiver<Leadership>) {
    election_for(e, node, role, Duration::from_secs(2))
}

/// [`election`] with a lease of `ttl`.
fn election_for(
    e: &Etcd,
    node: &str,
    role: Arc<dyn Role>,
    ttl: Duration,
) -> (Election, watch::Receiver<Leadership>) {
    let store = EtcdStore::connect(&cfg(&e.url, "/t3/")).unwrap();
    let (view, seen) = watch::channel(Leadership::new(node, ttl));
    (
        Election {
            store,
            node: node.into(),
            ttl,
            timeout: Duration::from_millis(500),
            role,
            view,
        },
        seen,
    )
}

/// The term is handed to the service with the identity of the etcd data
/// it is a revision of (`PREFIX identity`, made by the first campaign):
/// answers and hold orders carry it, and receivers compare terms within
/// one cluster only (`warden_proto::cluster`). A second node reads the
/// same. etcd rebuilt empty on the same URLs keeps etcd's own
/// `cluster_id` (a hash of its members' peer URLs and token) — which is
/// why it is not used: receivers that left the old data would refuse the
/// new leader for good — but has a new identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_won_term_comes_with_its_etcd_datas_identity() {
    let Some(e) = etcd() else { return };
    let identity = |url: String| async move {
        let mut client = etcd_client::Client::connect([url.as_str()], None)
            .await
            .unwrap();
        let etcd_id = client
            .status()
            .await
            .unwrap()
            .header()
            .unwrap()
            .cluster_id();
        let kv = client.get("/t3/identity", None).await.unwrap();
        let text = String::from_utf8(kv.kvs()[0].value().to_vec()).unwrap();
        (etcd_id, u64::from_str_radix(&text, 16).unwrap())
    };
    let lead = |e: &Etcd, node: &str| {
        let r = Arc::new(Recorder::default());
        let (el, v) = election(e, node, r.clone());
        (el, v, r)
    };
    let won = |v: watch::Receiver<Leadership>| async move {
        let since = Instant::now();
        while !v.borrow().is_leader {
            assert!(since.elapsed() < Duration::from_secs(10), "not elected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        v
    };
    let stop = CancellationToken::new();
    let (el, v, r) = lead(&e, "n1");
    let t = tokio::spawn(el.run(stop.clone()));
    let v = won(v).await;
    let (etcd_id, id) = identity(e.url.clone()).await;
    assert_eq!(*r.cluster.lock().unwrap(), Some(Some(id)));
    assert_eq!(
        v.borrow().cluster,
        Some(id),
        "the leader's view (/v1/leader, warden status) names it"
    );
    stop.cancel();
    t.await.unwrap();

    // Another node, later: the same identity.
    let stop = CancellationToken::new();
    let (el, v, r) = lead(&e, "n2");
    let t = tokio::spawn(el.run(stop.clone()));
    won(v).await;
    assert_eq!(*r.cluster.lock().unwrap(), Some(Some(id)), "n2 reads n1's");
    stop.cancel();
    t.await.unwrap();

    // etcd rebuilt empty on the same URLs: etcd's id repeats, ours not.
    let e = e.wiped();
    let stop = CancellationToken::new();
    let (el, v, r) = lead(&e, "n1");
    let t = tokio::spawn(el.run(stop.clone()));
    won(v).await;
    let (etcd_again, again) = identity(e.url.clone()).await;
    assert_eq!(etcd_again, etcd_id, "etcd's own cluster_id repeats");
    assert_ne!(again, id, "a new identity for the new data");
    assert_eq!(*r.cluster.lock().unwrap(), Some(Some(again)));
    stop.cancel();
    t.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_it_steps_down_within_the_ttl_when_etcd_stops_answering() {
    let Some(e) = etcd() else { return };
    let stop = CancellationToken::new();
    let (r1, r2) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let (e1, v1) = election(&e, "n1", r1.clone());
    let (e2, v2) = election(&e, "n2", r2.clone());
    let t1 = tokio::spawn(e1.run(stop.clone()));
    let t2 = tokio::spawn(e2.run(stop.clone()));
    let t = Instant::now();
    while !(v1.borrow().is_leader || v2.borrow().is_leader) {
        assert!(t.elapsed() < Duration::from_secs(10), "nobody was elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        v1.borrow().is_leader != v2.borrow().is_leader,
        "exactly one leader"
    );
    let (leader, role) = if v1.borrow().is_leader {
        (&v1, &r1)
    } else {
        (&v2, &r2)
    };
    assert_eq!(role.log.lock().unwrap().len(), 1, "one take-over");

    // etcd stops answering (paused): the leader steps down within the TTL.
    let pid = e.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let paused = Instant::now();
    while leader.borrow().is_leader {
        assert!(
            paused.elapsed() < Duration::from_secs(3),
            "still leading {:?} after etcd stopped answering",
            paused.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = role
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|(_, what)| what.starts_with("down"))
        .map(|(at, _)| at.duration_since(paused))
        .expect("a step-down");
    assert!(
        down <= Duration::from_secs(2),
        "stepped down {down:?} after etcd stopped (TTL 2 s)"
    );
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    while !(v1.borrow().is_leader || v2.borrow().is_leader) {
        // Typically 0.2 s. It was once over 15 s and often forever: a
        // campaign applied by etcd while its answer was lost left the key on
        // the campaigner's own lease, which it kept alive while "waiting for
        // it to expire" (fixed in leader.rs; about 1 run in 3 failed here).
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no leader {:?} after etcd returned: {:?} / {:?}",
            t.elapsed(),
            *v1.borrow(),
            *v2.borrow()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("a leader again {:?} after etcd returned", t.elapsed());
    stop.cancel();
    let _ = tokio::join!(t1, t2);
}

/// A node that wins the lease but cannot load the state gives the lease
/// back and waits longer after each failure in a row (not many wins and
/// failures a second), and says why in its view for `warden status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_take_over_backs_off_and_says_why() {
    struct Broken(Mutex<u32>);
    #[async_trait]
    impl Role for Broken {
        async fn take_over(&self, _term: i64, _cluster: Option<u64>) -> Result<(), String> {
            *self.0.lock().unwrap() += 1;
            Err("decode groups/web: expected value at line 1".into())
        }
        fn step_down(&self, _why: &str) {}
        fn etcd_health(&self, _trouble: Option<&str>) {}
    }
    let Some(e) = etcd() else { return };
    let role = Arc::new(Broken(Mutex::new(0)));
    let store = EtcdStore::connect(&cfg(&e.url, "/t8/")).unwrap();
    let ttl = Duration::from_secs(2);
    let (view, seen) = watch::channel(Leadership::new("n1", ttl));
    let election = Election {
        store,
        node: "n1".into(),
        ttl,
        timeout: Duration::from_millis(500),
        role: role.clone(),
        view,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(election.run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.cancel();
    let _ = task.await;
    let tries = *role.0.lock().unwrap();
    // Pauses of 0.2 s, then 2, 4 s: three tries in 6 s (a 0.2 s pause
    // after each failure made about 25).
    assert!((2..=4).contains(&tries), "{tries} take-overs in 6 s");
    let v = seen.borrow().clone();
    assert!(!v.is_leader);
    assert!(
        v.take_over_failed
            .as_deref()
            .is_some_and(|w| w.contains("decode groups/web")),
        "{v:?}"
    );
}

/// A take-over that takes most of the lease TTL (1.5 s of 2 s), then says
/// whether the leader key — on the lease it won — still names this node.
struct SlowTakeOver {
    url: String,
    key: Vec<u8>,
    node: String,
    held_at_end: Mutex<Option<bool>>,
}

#[async_trait]
impl Role for SlowTakeOver {
    async fn take_over(&self, _term: i64, _cluster: Option<u64>) -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut c = etcd_client::Client::connect([self.url.as_str()], None)
            .await
            .map_err(|e| e.to_string())?;
        let r = c
            .get(self.key.clone(), None)
            .await
            .map_err(|e| e.to_string())?;
        let held = r
            .kvs()
            .first()
            .is_some_and(|kv| kv.value() == self.node.as_bytes());
        *self.held_at_end.lock().unwrap() = Some(held);
        Ok(())
    }
    fn step_down(&self, _why: &str) {}
    fn etcd_health(&self, _trouble: Option<&str>) {}
}

/// Putting the leader key on a lease does not renew the lease: it runs from
/// its last renewal, which a follower makes every third of the TTL. A node
/// that wins after following for a while renews at once, so its first term
/// (and the take-over inside it) counts from a renewal sent then — before,
/// it counted from the winning write, and a take-over of 1.5 s could outlive
/// the 2 s lease while the node believed it led. Several rounds, the old
/// leader resigning at different moments of the follower's renewals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_take_over_still_holds_the_lease_it_won() {
    let Some(e) = etcd() else { return };
    for round in 0..4u64 {
        let first = Arc::new(Recorder::default());
        let (e1, v1) = election(&e, "n1", first);
        let key = e1.store.leader_key();
        let slow = Arc::new(SlowTakeOver {
            url: e.url.clone(),
            key,
            node: "n2".into(),
            held_at_end: Mutex::new(None),
        });
        let (e2, v2) = election(&e, "n2", slow.clone());
        let (stop1, stop2) = (CancellationToken::new(), CancellationToken::new());
        let t1 = tokio::spawn(e1.run(stop1.clone()));
        let t = Instant::now();
        while !v1.borrow().is_leader {
            assert!(t.elapsed() < Duration::from_secs(10), "n1 was not elected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t2 = tokio::spawn(e2.run(stop2.clone()));
        // n2 follows, renewing its own lease every 2/3 s; n1 resigns at
        // another point of that cycle each round.
        tokio::time::sleep(Duration::from_millis(900 + round * 230)).await;
        stop1.cancel();
        t1.await.unwrap();
        let t = Instant::now();
        while slow.held_at_end.lock().unwrap().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "n2 did not take over: {:?}",
                *v2.borrow()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            *slow.held_at_end.lock().unwrap(),
            Some(true),
            "round {round}: the lease expired during the take-over"
        );
        stop2.cancel();
        t2.await.unwrap();
    }
}

/// A node's service as far as the licence to act goes: granted at the
/// take-over, bound to the lease's deadline, revoked at the step-down.
/// `stall` makes the next `etcd_health` block the election loop that
/// long (a process paused, a starved runtime) while the test runs on.
struct Licensed {
    licence: Licence,
    stall: Mutex<Option<Duration>>,
    downs: Mutex<Vec<String>>,
}

impl Licensed {
    fn new(shutdown: &CancellationToken) -> Arc<Licensed> {
        Arc::new(Licensed {
            licence: Licence::new(shutdown),
            stall: Mutex::new(None),
            downs: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Role for Licensed {
    async fn take_over(&self, _term: i64, _cluster: Option<u64>) -> Result<(), String> {
        self.licence.grant();
        Ok(())
    }
    fn step_down(&self, why: &str) {
        self.licence.revoke(why);
        self.downs.lock().unwrap().push(why.to_string());
    }
    fn lease_until(&self, deadline: warden_orchestrator::licence::Deadline) -> bool {
        self.licence.lapse_at(deadline)
    }
    fn etcd_health(&self, _trouble: Option<&str>) {
        let stall = self.stall.lock().unwrap().take();
        if let Some(d) = stall {
            std::thread::sleep(d);
        }
    }
}

/// Waits (up to 10 s) until `what` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The leader's election loop stops running for longer than the lease
/// (the process paused, its runtime starved) while the rest of it runs:
/// its licence lapses at its own deadline, before another node can win —
/// not when the loop next runs and steps down. Before, the other node led
/// while this one still held its licence: two leaders.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_leader_whose_election_loop_stalls_past_its_lease_holds_no_licence_once_another_leads() {
    let Some(e) = etcd() else { return };
    let stop = CancellationToken::new();
    let (r1, r2) = (Licensed::new(&stop), Licensed::new(&stop));
    let (e1, _v1) = election(&e, "n1", r1.clone());
    let (e2, v2) = election(&e, "n2", r2.clone());
    let t1 = tokio::spawn(e1.run(stop.clone()));
    until("n1 was not elected", || r1.licence.is_held()).await;
    let t2 = tokio::spawn(e2.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    *r1.stall.lock().unwrap() = Some(Duration::from_secs(4));
    until("n2 did not take over while n1's loop stalled", || {
        v2.borrow().is_leader
    })
    .await;
    assert!(r2.licence.is_held());
    assert!(
        !r1.licence.is_held(),
        "n1 still holds its licence while n2 leads"
    );
    stop.cancel();
    let _ = tokio::join!(t1, t2);
}

/// The licence lapsed (the loop stalled past the old deadline) but the
/// renewal in flight came back, with a deadline still ahead: the term
/// ends and a new one is won, by this node or another. Before, the loop
/// went on leading with a licence that had lapsed: the key held, the lease
/// renewed, and nobody acting, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_licence_that_lapsed_before_a_late_renewal_ends_the_term_and_someone_leads_again() {
    let Some(e) = etcd() else { return };
    let stop = CancellationToken::new();
    let (r1, r2) = (Licensed::new(&stop), Licensed::new(&stop));
    let (e1, _v1) = election(&e, "n1", r1.clone());
    let (e2, _v2) = election(&e, "n2", r2.clone());
    let t1 = tokio::spawn(e1.run(stop.clone()));
    until("n1 was not elected", || r1.licence.is_held()).await;
    let t2 = tokio::spawn(e2.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Renewals every 2/3 s, deadline 1.8 s after each: stalled 1.4 s after
    // a renewal, the last deadline passes, the new one does not.
    *r1.stall.lock().unwrap() = Some(Duration::from_millis(1400));
    until("n1's licence did not lapse", || !r1.licence.is_held()).await;
    until("nobody holds the licence after n1's lapsed", || {
        r1.licence.is_held() || r2.licence.is_held()
    })
    .await;
    assert!(
        r1.downs
            .lock()
            .unwrap()
            .iter()
            .any(|w| w.contains("lapsed") || w.contains("deadline")),
        "{:?}",
        r1.downs.lock().unwrap()
    );
    stop.cancel();
    let _ = tokio::join!(t1, t2);
}

/// An operator deletes the leader key (or revokes its lease, which deletes
/// it): the leader steps down at once, seen by its watch on the key — not
/// at its next renewal, a third of the TTL (here 10 s) later, meanwhile
/// handing out orders and re-applying routes as if it still led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_key_is_deleted_steps_down_at_once() {
    let Some(e) = etcd() else { return };
    let stop = CancellationToken::new();
    let r1 = Arc::new(Recorder::default());
    let (e1, v1) = election_for(&e, "n1", r1.clone(), Duration::from_secs(30));
    let t1 = tokio::spawn(e1.run(stop.clone()));
    until("n1 leads", || v1.borrow().is_leader).await;
    // Past the renewal made right after the take-over: the next one is
    // about 10 s away.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut c = etcd_client::Client::connect([e.url.as_str()], None)
        .await
        .expect("connect");
    let deleted = Instant::now();
    c.delete("/t3/leader", None).await.expect("delete the key");
    until("n1 stepped down", || {
        r1.log
            .lock()
            .unwrap()
            .iter()
            .any(|(_, m)| m.starts_with("down"))
    })
    .await;
    let took = deleted.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stepped down {took:?} after its key was deleted: at the next renewal, not at once"
    );
    assert!(!v1.borrow().is_leader, "n1 still says it leads");
    stop.cancel();
    let _ = t1.await;
}

/// A take-over that lasts three lease TTLs (a large state read page by
/// page from members across sites) keeps the lease it won: the lease is
/// renewed while it runs, the leader key still names this node at its
/// end, the node leads, and a second node campaigning meanwhile never
/// wins. Before, the take-over was bounded by the lease it won (no renewal
/// until it ended): cut at 1.8 s, the lease given back, and again at every
/// win — a state that took longer than one lease to load could never be
/// led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_over_longer_than_the_lease_renews_it_meanwhile() {
    /// Takes `took`, then says whether the leader key still names `node`.
    struct Long {
        url: String,
        key: Vec<u8>,
        node: String,
        took: Duration,
        held_at_end: Mutex<Option<bool>>,
        licence: Licence,
    }
    #[async_trait]
    impl Role for Long {
        async fn take_over(&self, _term: i64, _cluster: Option<u64>) -> Result<(), String> {
            tokio::time::sleep(self.took).await;
            let mut c = etcd_client::Client::connect([self.url.as_str()], None)
                .await
                .map_err(|e| e.to_string())?;
            let r = c
                .get(self.key.clone(), None)
                .await
                .map_err(|e| e.to_string())?;
            let held = r
                .kvs()
                .first()
                .is_some_and(|kv| kv.value() == self.node.as_bytes());
            *self.held_at_end.lock().unwrap() = Some(held);
            self.licence.grant();
            Ok(())
        }
        fn step_down(&self, why: &str) {
            self.licence.revoke(why);
        }
        fn lease_until(&self, deadline: warden_orchestrator::licence::Deadline) -> bool {
            self.licence.lapse_at(deadline)
        }
        fn etcd_health(&self, _trouble: Option<&str>) {}
    }
    let Some(e) = etcd() else { return };
    let shutdown = CancellationToken::new();
    let ttl = Duration::from_secs(2);
    let store = EtcdStore::connect(&cfg(&e.url, "/t12/")).unwrap();
    let long = Arc::new(Long {
        url: e.url.clone(),
        key: store.leader_key(),
        node: "n1".into(),
        took: ttl * 3,
        held_at_end: Mutex::new(None),
        licence: Licence::new(&shutdown),
    });
    let (view, v1) = watch::channel(Leadership::new("n1", ttl));
    let e1 = Election {
        store,
        node: "n1".into(),
        ttl,
        timeout: Duration::from_millis(500),
        role: long.clone(),
        view,
    };
    let stop = CancellationToken::new();
    let t1 = tokio::spawn(e1.run(stop.clone()));
    // n1 has won (its key is on its lease) and is taking over: n2 campaigns.
    let t = Instant::now();
    while v1.borrow().term.is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "n1 was not elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = Arc::new(Recorder::default());
    let (view2, _v2) = watch::channel(Leadership::new("n2", ttl));
    let e2 = Election {
        store: EtcdStore::connect(&cfg(&e.url, "/t12/")).unwrap(),
        node: "n2".into(),
        ttl,
        timeout: Duration::from_millis(500),
        role: other.clone(),
        view: view2,
    };
    let t2 = tokio::spawn(e2.run(stop.clone()));
    let t = Instant::now();
    while long.held_at_end.lock().unwrap().is_none() || !v1.borrow().is_leader {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "n1 did not take over: {:?}",
            *v1.borrow()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *long.held_at_end.lock().unwrap(),
        Some(true),
        "the lease expired during the take-over"
    );
    assert!(long.licence.is_held(), "n1 acts once it has taken over");
    // Well within the lease after the take-over: n1 still leads, n2 never did.
    tokio::time::sleep(ttl).await;
    assert!(v1.borrow().is_leader && long.licence.is_held());
    let leads: Vec<String> = other
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.clone())
        .filter(|l| l.starts_with("lead"))
        .collect();
    assert!(leads.is_empty(), "n2 won while n1 took over: {leads:?}");
    stop.cancel();
    t1.await.unwrap();
    t2.await.unwrap();
}
