//! The etcd store and the leader lease against a real etcd (Debian's
//! `etcd-server`, one member on loopback, started and killed by each test):
//! writes are guarded by leadership (a deposed leader's write is refused by
//! etcd itself), events page and prune like the local store's, and a leader
//! whose etcd stops answering steps down within the lease TTL.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warden_config::EtcdConfig;
use warden_orchestrator::etcd::leader::{Election, Leadership, Role};
use warden_orchestrator::etcd::EtcdStore;
use warden_orchestrator::model::{Event, EventKind, GroupState, Phase};
use warden_orchestrator::store::Store;
use warden_orchestrator::OrchestratorError;

/// One etcd member on loopback, killed on drop.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn etcd() -> Option<Etcd> {
    etcd_with(&[], "http")
}

/// etcd with extra flags (TLS), its URLs in `scheme`.
fn etcd_with(flags: &[String], scheme: &str) -> Option<Etcd> {
    let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let Some(bin) = bin else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "etcd is needed (apt-get install etcd-server)");
        eprintln!("skipped: etcd not installed");
        return None;
    };
    // Ports picked here are free when picked, not when etcd binds them (a
    // test beside this one may take one first): an etcd that exits at
    // start, or stops answering right after it listened, is started again
    // on other ports.
    for attempt in 1..=5 {
        if let Some(e) = start_etcd(&bin, flags, scheme) {
            return Some(e);
        }
        eprintln!("etcd did not stay up (attempt {attempt}); again on other ports");
    }
    panic!("etcd did not start in 5 attempts");
}

/// One etcd start on fresh ports; `None` when it exited or stopped
/// listening within its first moments.
fn start_etcd(bin: &std::path::Path, flags: &[String], scheme: &str) -> Option<Etcd> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, pp) = (free_port(), free_port());
    let url = format!("{scheme}://127.0.0.1:{cp}");
    let peer = format!("http://127.0.0.1:{pp}");
    let child = Command::new(bin)
        .args(flags)
        .args(["--name", "t1", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("t1={peer}")])
        .args(["--logger", "zap", "--log-outputs"])
        .arg(dir.path().join("etcd.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd starts");
    let mut e = Etcd {
        child,
        url,
        _dir: dir,
    };
    let addr = e.url.split("://").nth(1).unwrap_or_default().to_string();
    let t = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if e.child.try_wait().ok().flatten().is_some() {
            return None;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "etcd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still up, and still answering, a moment later.
    std::thread::sleep(Duration::from_millis(300));
    if e.child.try_wait().ok().flatten().is_some() || std::net::TcpStream::connect(&addr).is_err() {
        return None;
    }
    Some(e)
}

fn cfg(url: &str, prefix: &str) -> EtcdConfig {
    EtcdConfig {
        endpoints: vec![url.to_string()],
        prefix: prefix.to_string(),
        lease_ttl: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        tls: None,
    }
}

fn group(name: &str, epoch: u64) -> GroupState {
    serde_json::from_value(serde_json::json!({
        "name": name, "active": "a", "epoch": epoch, "phase": "steady",
    }))
    .expect("a group state")
}

/// Take the leader key for `store` (as the election does) with a fresh lease.
async fn take_key(url: &str, store: &EtcdStore, node: &str) -> (i64, i64) {
    use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
    let mut c = etcd_client::Client::connect([url], None).await.unwrap();
    let lease = c.lease_grant(5, None).await.unwrap().id();
    let key = store.leader_key();
    let r = c
        .txn(
            Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key,
                    node,
                    Some(PutOptions::new().with_lease(lease)),
                )]),
        )
        .await
        .unwrap();
    assert!(r.succeeded(), "the key was free");
    (r.header().unwrap().revision(), lease)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_writes_are_refused_by_etcd() {
    let Some(e) = etcd() else { return };
    let old = EtcdStore::connect(&cfg(&e.url, "/t1/")).unwrap();
    let new = EtcdStore::connect(&cfg(&e.url, "/t1/")).unwrap();

    assert!(
        matches!(
            old.put_group(&group("web", 1)),
            Err(OrchestratorError::Deposed(_))
        ),
        "a node that never led writes nothing"
    );
    let (term, lease) = take_key(&e.url, &old, "old").await;
    old.set_guard(Some(term));
    old.put_group(&group("web", 2)).expect("the leader writes");

    // Its lease ends (expired or revoked): another node takes the key.
    let mut c = etcd_client::Client::connect([e.url.as_str()], None)
        .await
        .unwrap();
    c.lease_revoke(lease).await.unwrap();
    let (term2, _) = take_key(&e.url, &new, "new").await;
    new.set_guard(Some(term2));
    assert_ne!(term, term2);

    // The old leader still believes it leads: etcd refuses its write.
    let late = old.put_group(&group("web", 7));
    assert!(
        matches!(late, Err(OrchestratorError::Deposed(_))),
        "late write: {late:?}"
    );
    new.put_group(&group("web", 3))
        .expect("the new leader writes");
    let groups = new.groups().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].epoch, 3, "the deposed write left no trace");
    assert_eq!(groups[0].phase, Phase::Steady);
    assert_eq!(new.leader_now().unwrap().as_deref(), Some("new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_page_and_prune_in_etcd() {
    let Some(e) = etcd() else { return };
    let s = EtcdStore::connect(&cfg(&e.url, "/t2/")).unwrap();
    let (term, _) = take_key(&e.url, &s, "n").await;
    s.set_guard(Some(term));
    assert_eq!(s.last_event_id().unwrap(), 0);
    // More than one transaction's worth (etcd allows 128 operations).
    let events: Vec<Event> = (1..=250)
        .map(|id| Event {
            id,
            time_unix_ms: id * 10,
            kind: EventKind::Started,
            group: None,
            site: None,
            message: format!("event {id}"),
            evidence: vec![],
            runbook: None,
        })
        .collect();
    s.put_events(&events).unwrap();
    assert_eq!(s.last_event_id().unwrap(), 250);
    let page = s.events(100, 20).unwrap();
    assert_eq!(page.len(), 20);
    assert_eq!(page[0].id, 101);
    assert_eq!(page[19].id, 120);
    // Keep the newest 200 and nothing recorded before t = 600 ms (id 60).
    let pruned = s.prune_events(200, 600, 10_000).unwrap();
    assert_eq!(
        pruned, 59,
        "ids 1..=59 go (the oldest 50 by count, 59 by age)"
    );
    let rest = s.events(0, 1000).unwrap();
    assert_eq!(rest.first().map(|e| e.id), Some(60));
    assert_eq!(rest.len(), 191);
}

/// Keys written by hand: a stray key under events/ never makes the last
/// event id read as 0 (new events would be numbered over old ones), and a
/// group or runbook record under another record's key is refused, naming
/// the key, instead of standing in for the real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_written_by_hand_neither_renumber_events_nor_replace_records() {
    let Some(e) = etcd() else { return };
    let s = EtcdStore::connect(&cfg(&e.url, "/t5/")).unwrap();
    let (term, _) = take_key(&e.url, &s, "n").await;
    s.set_guard(Some(term));
    let event = |id: u64| Event {
        id,
        time_unix_ms: id,
        kind: EventKind::Started,
        group: None,
        site: None,
        message: format!("event {id}"),
        evidence: vec![],
        runbook: None,
    };
    s.put_events(&(1..=35).map(event).collect::<Vec<_>>())
        .unwrap();
    let mut c = etcd_client::Client::connect([e.url.as_str()], None)
        .await
        .unwrap();
    let json = serde_json::to_string(&event(1)).unwrap();
    for stray in [
        "/t5/events/zzz",
        "/t5/events/9abc",
        "/t5/events/99999999999999999999999",
    ] {
        c.put(stray, json.clone(), None).await.unwrap();
    }
    assert_eq!(s.last_event_id().unwrap(), 35, "the highest event id");
    // Only strays among the highest keys: an error, never 0.
    let t6 = EtcdStore::connect(&cfg(&e.url, "/t6/")).unwrap();
    c.put("/t6/events/9abc", json.clone(), None).await.unwrap();
    let err = t6.last_event_id().unwrap_err().to_string();
    assert!(err.contains("9abc"), "{err}");

    s.put_group(&group("web", 8)).unwrap();
    let copy = serde_json::to_string(&group("web", 2)).unwrap();
    c.put("/t5/groups/zzz", copy, None).await.unwrap();
    let err = s.groups().unwrap_err().to_string();
    assert!(
        err.contains("groups/zzz") && err.contains("\"web\""),
        "{err}"
    );
    c.delete("/t5/groups/zzz", None).await.unwrap();
    assert_eq!(s.groups().unwrap()[0].epoch, 8, "the real record stands");
}

/// A table read in pages (one etcd answer is capped at 4 MiB, and
/// runbooks are never pruned): every record comes back, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_longer_than_one_answer_is_read_whole() {
    use warden_orchestrator::model::{Runbook, RunbookKind};
    let Some(e) = etcd() else { return };
    let s = EtcdStore::connect(&cfg(&e.url, "/t7/")).unwrap();
    let (term, _) = take_key(&e.url, &s, "n").await;
    s.set_guard(Some(term));
    for id in 1..=300u64 {
        let rb = Runbook::new(
            id,
            "web",
            RunbookKind::Failover,
            "a",
            "b",
            id + 1,
            "test",
            0,
            0,
        );
        s.put_runbook(&rb).unwrap();
    }
    let all = s.runbooks().unwrap();
    assert_eq!(all.len(), 300);
    assert!(all.iter().map(|r| r.id).eq(1..=300), "each once, in order");
}

/// Records what the election asked of the service.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<(Instant, String)>>,
}

#[async_trait]
impl Role for Recorder {
    async fn take_over(&self, term: i64) -> Result<(), String> {
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
    let store = EtcdStore::connect(&cfg(&e.url, "/t3/")).unwrap();
    let ttl = Duration::from_secs(2);
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

/// A CA, etcd's server certificate for 127.0.0.1, a client certificate of
/// that CA and one of another CA, made with openssl in `$1`.
const CERTS: &str = r#"
set -eu
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca() { key "$1"; openssl req -x509 -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" 2>/dev/null; }
leaf() {
  key "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 -out "$1.pem" -extfile "$1.ext" 2>/dev/null
}
ca ca
ca other
leaf server "IP:127.0.0.1" ca
leaf client "DNS:orchestrator" ca
leaf rogue "DNS:orchestrator" other
chmod 600 ./*.key
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_etcd_with_a_client_certificate() {
    let pki = tempfile::tempdir().unwrap();
    let script = pki.path().join("certs.sh");
    std::fs::write(&script, CERTS).unwrap();
    let ok = Command::new("bash")
        .arg(&script)
        .arg(pki.path())
        .status()
        .expect("bash and openssl");
    assert!(ok.success(), "certificates made");
    let f = |n: &str| pki.path().join(n);
    let flags: Vec<String> = vec![
        "--cert-file".into(),
        f("server.pem").display().to_string(),
        "--key-file".into(),
        f("server.key").display().to_string(),
        "--trusted-ca-file".into(),
        f("ca.pem").display().to_string(),
        "--client-cert-auth".into(),
    ];
    let Some(e) = etcd_with(&flags, "https") else {
        return;
    };
    let tls = |cert: &str| warden_config::EtcdTls {
        ca: f("ca.pem"),
        cert: Some(f(&format!("{cert}.pem"))),
        key: Some(f(&format!("{cert}.key"))),
    };
    let mut c = cfg(&e.url, "/tls/");
    c.tls = Some(tls("client"));
    let s = EtcdStore::connect(&c).expect("connects over TLS");
    assert_eq!(s.leader_now().expect("a read over mTLS"), None);
    let (term, _) = {
        // Take the key over TLS too, through the store's own client.
        use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
        let mut client = s.client();
        let lease = client.lease_grant(5, None).await.unwrap().id();
        let key = s.leader_key();
        let r = client
            .txn(
                Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key,
                        "n",
                        Some(PutOptions::new().with_lease(lease)),
                    )]),
            )
            .await
            .unwrap();
        (r.header().unwrap().revision(), lease)
    };
    s.set_guard(Some(term));
    s.put_group(&group("web", 4))
        .expect("a guarded write over TLS");
    assert_eq!(s.groups().unwrap()[0].epoch, 4);

    // A certificate from another CA is refused by etcd.
    let mut rogue = cfg(&e.url, "/tls/");
    rogue.tls = Some(tls("rogue"));
    let r = EtcdStore::connect(&rogue).and_then(|s| s.leader_now());
    assert!(
        r.is_err(),
        "a foreign client certificate reads nothing: {r:?}"
    );

    // A private key every user can read is refused before any connection.
    std::fs::set_permissions(
        f("client.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let err = EtcdStore::connect(&c).err().expect("refused");
    assert!(err.to_string().contains("readable by every user"), "{err}");
}

/// A node that wins the lease but cannot load the state gives the lease
/// back and waits longer after each failure in a row (not many wins and
/// failures a second), and says why in its view for `warden status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_take_over_backs_off_and_says_why() {
    struct Broken(Mutex<u32>);
    #[async_trait]
    impl Role for Broken {
        async fn take_over(&self, _term: i64) -> Result<(), String> {
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

/// etcd refuses a request over `--max-request-bytes` (1.5 MiB by
/// default). A group whose divergent list is longer than one record can
/// hold is stored with the list cut to fit and the count of the rest; many
/// large records are written in several transactions; a decision (group and
/// runbook) still goes in one. Before, such a write was refused for ever and
/// held every later decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_larger_than_an_etcd_request_are_cut_or_split_not_refused() {
    use warden_orchestrator::model::{Runbook, RunbookKind};
    use warden_proto::agent::DivergentWire;
    let Some(e) = etcd() else { return };
    let s = EtcdStore::connect(&cfg(&e.url, "/t9/")).unwrap();
    let (term, _) = take_key(&e.url, &s, "n").await;
    s.set_guard(Some(term));
    let item = |i: usize| -> DivergentWire {
        serde_json::from_value(serde_json::json!({
            "name": format!("data/some/deep/directory/file-{i:06}.bin"),
            "reason": "changed here after the last sync",
            "action": "kept",
        }))
        .expect("a divergent item")
    };
    // 20,000 items: about 2 MiB as JSON.
    let mut big = group("big", 3);
    big.divergent = (0..20_000).map(item).collect();
    s.put_group(&big).expect("written, cut to fit");
    let stored = s
        .groups()
        .unwrap()
        .into_iter()
        .find(|g| g.name == "big")
        .expect("stored");
    let kept = stored.divergent.len();
    assert!(kept > 1_000 && kept < 20_000, "kept {kept}");
    assert_eq!(
        stored.divergent[..],
        big.divergent[..kept],
        "the first items, in order"
    );
    assert_eq!(stored.divergent_not_stored, (20_000 - kept) as u64);

    // Thirty groups of about 400 KiB each: 12 MiB in one write.
    let many: Vec<GroupState> = (0..30)
        .map(|n| {
            let mut g = group(&format!("g{n}"), 2);
            g.divergent = (0..4_000).map(item).collect();
            g
        })
        .collect();
    s.put_groups(&many).expect("written in parts");
    let stored = s.groups().unwrap();
    for g in &many {
        let back = stored.iter().find(|x| x.name == g.name).expect("stored");
        assert_eq!(back.divergent, g.divergent, "{} whole", g.name);
        assert_eq!(back.divergent_not_stored, 0);
    }

    // A decision with the big group: one transaction, taken.
    let rb = Runbook::new(7, "big", RunbookKind::Failover, "a", "b", 4, "test", 0, 0);
    s.put_group_and_runbook(&big, &rb)
        .expect("the decision is written");
    assert!(s.runbooks().unwrap().iter().any(|r| r.id == 7));
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
    async fn take_over(&self, _term: i64) -> Result<(), String> {
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
