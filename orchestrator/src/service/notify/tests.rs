//! Tests of notifications: kinds, signature, retry classes, the queue,
//! the deadline, and who may tell.

use super::deliver::{signature, Failure};
use super::*;
use std::path::Path;

/// Every kind the config accepts is a kind the service records, and
/// the other way round: the two lists cannot drift apart.
#[test]
fn the_configs_event_kinds_are_the_services() {
    let all: Vec<String> = warden_config::EVENT_KINDS
        .iter()
        .map(|k| {
            let kind: EventKind = serde_json::from_value(serde_json::json!(k))
                .unwrap_or_else(|e| panic!("{k}: not an EventKind: {e}"));
            kind_name(kind)
        })
        .collect();
    assert_eq!(all, warden_config::EVENT_KINDS);
    // Every variant (the match fails to compile when one is added).
    let every = |k: EventKind| {
        use EventKind::*;
        match k {
            Started
            | SiteDown
            | SiteConfirmedDown
            | SiteRecovered
            | PathFault
            | DeadAgent
            | Unconfirmed
            | Isolated
            | IsolationEnded
            | PendingApproval
            | Approved
            | RunbookStarted
            | StepStarted
            | StepFinished
            | RunbookSucceeded
            | RunbookFailed
            | RunbookResumed
            | Reconciled
            | ReconcileFailed
            | Fencing
            | Maintenance
            | NoStandby
            | Alert
            | AlertCleared
            | FrontendDown
            | FrontendConfirmedDown
            | FrontendRecovered
            | FrontendMoved
            | Divergent
            | Replication
            | RpoExceeded
            | FailbackAborted
            | Adopted => kind_name(k),
            // Another version's kind, read back: never recorded here, not
            // a name the config takes.
            Other => unreachable!("no config name reads as another version's kind"),
        }
    };
    assert_eq!(
        warden_config::EVENT_KINDS.len(),
        33,
        "one name per variant (but `other`)"
    );
    assert!(!warden_config::EVENT_KINDS.contains(&"other"));
    for name in warden_config::EVENT_KINDS {
        let k: EventKind = serde_json::from_value(serde_json::json!(name)).unwrap();
        assert_eq!(every(k), *name);
    }
    for k in warden_config::DEFAULT_NOTIFY_KINDS {
        assert!(warden_config::EVENT_KINDS.contains(k), "{k}");
    }
}

/// The signature is GitHub's form: the HMAC-SHA256 of the body, hex.
#[test]
fn signature_is_the_bodys_hmac() {
    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    let s = signature(&Secret::new("Jefe"), b"what do ya want for nothing?");
    assert_eq!(
        s,
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

fn entry(url: Option<String>, command: Option<Vec<String>>) -> NotifyConfig {
    NotifyConfig {
        name: "t".into(),
        url,
        secret: None,
        command,
        kinds: None,
        timeout: Duration::from_secs(2),
        retry_for: Duration::from_secs(1),
    }
}

fn worker(cfg: NotifyConfig) -> Worker {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = Notify::new(
        std::slice::from_ref(&cfg),
        vec![None],
        Path::new("/srv/warden"),
    )
    .unwrap();
    n.workers().pop().unwrap()
}

fn event() -> Event {
    Event {
        id: 7,
        time_unix_ms: 1,
        kind: EventKind::RunbookFailed,
        group: Some("web".into()),
        site: Some("b".into()),
        message: "failover a → b failed".into(),
        evidence: vec![],
        runbook: Some(3),
        epoch: Some(4),
        term: 0,
    }
}

/// What is retried and what is given up at once: a redirect and a 404
/// are given up, a 503 and a refused connection retried; a command
/// that cannot start is given up, one that exits 1 retried.
#[tokio::test]
async fn failures_are_retried_or_given_up_by_what_they_are() {
    use axum::http::StatusCode;
    use axum::routing::post;
    let app = axum::Router::new()
        .route("/ok", post(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/moved",
            post(|| async { (StatusCode::FOUND, [("location", "/ok")]) }),
        )
        .route("/gone", post(|| async { StatusCode::NOT_FOUND }))
        .route("/busy", post(|| async { StatusCode::SERVICE_UNAVAILABLE }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let e = event();
    let body = serde_json::to_vec(&e).unwrap();
    let at = |p: &str| Some(format!("http://{addr}{p}"));
    assert!(worker(entry(at("/ok"), None))
        .deliver(&e, &body)
        .await
        .is_ok());
    for (p, again) in [("/moved", false), ("/gone", false), ("/busy", true)] {
        match worker(entry(at(p), None)).deliver(&e, &body).await {
            Err(Failure::Again(_)) if again => {}
            Err(Failure::GiveUp(why)) if !again => {
                assert!(!why.contains(&addr.to_string()), "no URL in {why}")
            }
            Err(Failure::Again(w)) | Err(Failure::GiveUp(w)) | Err(Failure::Later(w, _)) => {
                panic!("{p}: {w}")
            }
            Ok(()) => panic!("{p}: delivered"),
        }
    }
    // nothing listens there any more
    let closed = warden_testkit::net::refusing();
    let w = worker(entry(Some(format!("http://{closed}/x")), None));
    assert!(matches!(w.deliver(&e, &body).await, Err(Failure::Again(_))));
    let w = worker(entry(None, Some(vec!["/nonexistent/notify".into()])));
    assert!(matches!(
        w.deliver(&e, &body).await,
        Err(Failure::GiveUp(_))
    ));
    let w = worker(entry(
        None,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "cat >/dev/null; exit 1".into(),
        ]),
    ));
    assert!(matches!(w.deliver(&e, &body).await, Err(Failure::Again(_))));
    // What a failing command wrote is logged with its line breaks and
    // escapes escaped: it may echo the event's text, which a site's agent
    // reported, and must not forge a log line.
    let w = worker(entry(
        None,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "printf 'cannot post\\n2026-01-01T00:00:00Z  INFO forged\\033[2K' >&2; exit 1".into(),
        ]),
    ));
    match w.deliver(&e, &body).await {
        Err(Failure::Again(why)) => {
            assert!(
                why.contains("cannot post") && why.contains("forged"),
                "{why}"
            );
            assert!(!why.contains(['\n', '\u{1b}']), "{why:?}");
        }
        _ => panic!("a command that exits 1 is retried"),
    }
    let w = worker(entry(
        None,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "grep -q runbook_failed".into(),
        ]),
    ));
    assert!(w.deliver(&e, &body).await.is_ok(), "the event on stdin");
    // its mark is bound to the orchestrator's run directory: should the
    // orchestrator be killed while it runs, the next process ends it
    let w = worker(entry(
        None,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "case $WARDEN_RUN in notify-*@/srv/warden) exit 0;; *) echo \"$WARDEN_RUN\" >&2; exit 1;; esac".into(),
        ]),
    ));
    match w.deliver(&e, &body).await {
        Ok(()) => {}
        Err(Failure::Again(why) | Failure::GiveUp(why) | Failure::Later(why, _)) => {
            panic!("the notify command's mark is not bound: {why}")
        }
    }
}

/// A receiver that never answers fills the queue: new events are
/// dropped and counted, never waited for.
#[test]
fn a_full_queue_drops_and_counts() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = Notify::new(
        &[entry(Some("http://127.0.0.1:9/".into()), None)],
        vec![None],
        Path::new("/srv/warden"),
    )
    .unwrap();
    let metrics = Metrics::new();
    let e = event();
    for _ in 0..QUEUE + 5 {
        n.offer(&e, &metrics);
    }
    let failed = metrics
        .notify_failed
        .get_or_create(&vec![
            ("notify".to_string(), "t".to_string()),
            ("reason".to_string(), "queue_full".to_string()),
        ])
        .get();
    assert_eq!(failed, 5);
    // a kind it does not want is not queued at all
    let before = n.waiting("t");
    let mut step = event();
    step.kind = EventKind::StepStarted;
    n.offer(&step, &metrics);
    assert_eq!(n.waiting("t"), before);
}

/// A dead receiver holds its queue up for `retry_for` at most: the
/// first event is retried until then, the ones recorded with it are
/// by then as old and are tried once each — all three given up within
/// about `retry_for` (one at a time they would take three times it).
#[tokio::test]
async fn a_dead_receiver_holds_its_queue_up_for_retry_for_at_most() {
    let closed = warden_testkit::net::refusing();
    let dir = super::super::harness::test_dir(true, 5);
    let text = super::super::harness::config_text(&dir, true, 5, "")
        + &format!(
            "\n[[orchestrator.notify]]\nname = \"t\"\nurl = \"http://{closed}/x\"\nretry_for = \"2s\"\nkinds = [\"alert\"]\n"
        );
    let (s, _fake) =
        super::super::harness::start_from(&text, &dir, Arc::new(crate::store::MemStore::default()))
            .unwrap();
    let started = std::time::Instant::now();
    for i in 0..3 {
        s.event(
            EventKind::Alert,
            Some("web"),
            None,
            format!("e{i}"),
            vec![],
            None,
        );
    }
    for w in s.notify_workers() {
        tokio::spawn(w.run(s.clone(), CancellationToken::new()));
    }
    let exhausted = || {
        s.metrics
            .notify_failed
            .get_or_create(&vec![
                ("notify".to_string(), "t".to_string()),
                ("reason".to_string(), "retries_exhausted".to_string()),
            ])
            .get()
    };
    while exhausted() < 3 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(exhausted(), 3);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(4500),
        "three events given up in {took:?}: each waited its own retry_for"
    );
}

/// Only the licence holder tells. A follower's event is not queued;
/// once elected its events are delivered; when it steps down (a
/// deposed leader), what it still has queued — an event being retried
/// and one behind it — is dropped and counted `not_leader`, never sent
/// afterwards, and events it records then are not queued.
#[tokio::test]
async fn a_follower_tells_nothing_and_a_deposed_leader_stops_telling() {
    use crate::etcd::leader::{Leadership, Role};
    use axum::http::StatusCode;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let posts = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let bodies = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let (p, f, b) = (posts.clone(), failing.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/x",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (p, f, b) = (p.clone(), f.clone(), b.clone());
            async move {
                p.fetch_add(1, SeqCst);
                b.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                if f.load(SeqCst) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let dir = super::super::harness::test_dir(true, 5);
    let text = super::super::harness::config_text(&dir, true, 5, "")
        + &format!(
            "\n[[orchestrator.notify]]\nname = \"t\"\nurl = \"http://{addr}/x\"\nretry_for = \"1h\"\nkinds = [\"alert\"]\n"
        );
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = super::super::harness::start_routed_as(
        &text,
        &dir,
        Arc::new(crate::store::MemStore::default()),
        |_| Arc::new(super::super::harness::FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();
    for w in s.notify_workers() {
        tokio::spawn(w.run(s.clone(), CancellationToken::new()));
    }
    let alert = |m: &str| s.event(EventKind::Alert, Some("web"), None, m.into(), vec![], None);
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    let failed = |reason: &str| {
        s.metrics
            .notify_failed
            .get_or_create(&vec![
                ("notify".to_string(), "t".to_string()),
                ("reason".to_string(), reason.to_string()),
            ])
            .get()
    };

    alert("seen while following");
    settle().await;
    assert_eq!(s.notify.waiting("t"), 0);
    assert_eq!(posts.load(SeqCst), 0, "a follower tells nothing");

    HaRole(s.clone()).take_over(7, None).await.unwrap();
    alert("seen while leading");
    settle().await;
    assert_eq!(posts.load(SeqCst), 1, "the leader tells");
    // under its term (the leader key's revision), at the group's epoch:
    // a receiver can refuse what an older leader or epoch says later
    let told = bodies.lock().unwrap()[0].clone();
    assert_eq!(told["term"], 7, "{told}");
    assert_eq!(told["epoch"], s.lock().groups["web"].epoch, "{told}");
    assert!(told["epoch"].as_u64().is_some_and(|e| e > 0), "{told}");

    failing.store(true, SeqCst);
    alert("being retried when deposed");
    alert("queued behind it");
    settle().await;
    assert_eq!(posts.load(SeqCst), 2, "the first try of the retried event");
    HaRole(s.clone()).step_down("another node leads");
    alert("seen after the step-down");
    // the retry comes 1 s after the first try: it finds no licence
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(posts.load(SeqCst), 2, "a deposed leader sends nothing more");
    assert_eq!(
        failed("not_leader"),
        2,
        "the retried event and the one behind it"
    );
    assert_eq!(s.notify.waiting("t"), 0);
}

/// A receiver drops repeats by the delivery id, so the signature covers
/// it: the body sent names the `X-Warden-Delivery` it came under, and a
/// command gets the same body and `WARDEN_DELIVERY`. (With the id in an
/// unsigned header only, a captured body replayed under a fresh id would
/// pass as new for as long as `retry_for` lets a receiver take old events.)
#[tokio::test]
async fn the_signature_covers_the_delivery_id() {
    use axum::http::{HeaderMap, StatusCode};
    let got: Arc<Mutex<Vec<(HeaderMap, axum::body::Bytes)>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/x",
        axum::routing::post(move |h: HeaderMap, b: axum::body::Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((h, b));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let dir = super::super::harness::test_dir(true, 5);
    let secret_file = dir.join("hook.secret");
    std::fs::write(&secret_file, "hook-secret").unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let told = dir.join("told");
    let text = super::super::harness::config_text(&dir, true, 5, "")
        + &format!(
            "\n[[orchestrator.notify]]\nname = \"hook\"\nurl = \"http://{addr}/x\"\nsecret = {{ file = \"{}\" }}\nkinds = [\"alert\"]\n\
             \n[[orchestrator.notify]]\nname = \"cmd\"\ncommand = [\"/bin/sh\", \"-c\", \"{{ echo $WARDEN_DELIVERY; cat; }} > {}\"]\nkinds = [\"alert\"]\n",
            secret_file.display(),
            told.display()
        );
    let s = delivering(&text, &dir);
    s.event(
        EventKind::Alert,
        Some("web"),
        None,
        "an alert".into(),
        vec![],
        None,
    );
    let started = std::time::Instant::now();
    while (got.lock().unwrap().is_empty() || !told.exists())
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (headers, body) = got.lock().unwrap().pop().expect("the webhook was told");
    let header = headers["x-warden-delivery"].to_str().unwrap().to_string();
    assert_eq!(
        headers["x-warden-signature-256"].to_str().unwrap(),
        signature(&Secret::new("hook-secret"), &body),
        "signed as sent"
    );
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["kind"], "alert");
    assert_eq!(
        sent["delivery"], header,
        "the signed body names its delivery id"
    );
    assert!(header.ends_with(&format!("-{}", sent["id"])), "{header}");
    let mut out = String::new();
    while !(out.ends_with('\n') && out.lines().count() == 2)
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        out = std::fs::read_to_string(&told).unwrap_or_default();
    }
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(header.as_str()),
        "WARDEN_DELIVERY: {out}"
    );
    let stdin: serde_json::Value = serde_json::from_str(lines.next().unwrap_or_default()).unwrap();
    assert_eq!(stdin["delivery"], header, "{out}");
}

/// A receiver that answers 429 with `Retry-After: 3` (a chat service's
/// rate limit) is asked again after 3 s, not after the first back-off's
/// 1 s — retrying sooner only extends the limit — and gets the event then.
#[tokio::test]
async fn a_receivers_retry_after_is_kept() {
    let gap = gap_after_refusal(axum::http::StatusCode::TOO_MANY_REQUESTS, || {
        "3".to_string()
    })
    .await;
    assert!(
        gap >= Duration::from_millis(2900),
        "asked again after {gap:?}"
    );
}

/// The same pause asked for as an HTTP date (a 503 from a gateway in
/// maintenance): four seconds ahead on the wall clock, whole seconds, so
/// at least three. Read as a number only, the date was ignored and the
/// receiver asked again after the first back-off's 1 s.
#[tokio::test]
async fn a_retry_after_given_as_a_date_is_kept() {
    let gap = gap_after_refusal(axum::http::StatusCode::SERVICE_UNAVAILABLE, || {
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(4))
    })
    .await;
    assert!(
        gap >= Duration::from_millis(2900),
        "asked again after {gap:?}"
    );
}

#[test]
fn retry_after_reads_seconds_and_dates_and_nothing_else() {
    use super::deliver::retry_after;
    let date = "Sun, 06 Nov 1994 08:49:37 GMT";
    let at = httpdate::parse_http_date(date).unwrap();
    assert_eq!(retry_after(" 3 ", at), Some(Duration::from_secs(3)));
    assert_eq!(
        retry_after(date, at - Duration::from_secs(5)),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        retry_after(date, at + Duration::from_secs(5)),
        Some(Duration::ZERO),
        "a date passed asks for no pause"
    );
    assert_eq!(retry_after("soon", at), None);
    assert_eq!(retry_after("-1", at), None);
}

/// How long after a first answer of `status` with `Retry-After:
/// value()` a receiver was asked again (it takes the event then).
async fn gap_after_refusal(
    status: axum::http::StatusCode,
    value: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> Duration {
    use axum::response::IntoResponse;
    let at: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
    let a = at.clone();
    let app = axum::Router::new().route(
        "/x",
        axum::routing::post(move || {
            let a = a.clone();
            let value = value.clone();
            async move {
                let mut a = a.lock().unwrap();
                a.push(std::time::Instant::now());
                if a.len() == 1 {
                    (status, [("retry-after", value())]).into_response()
                } else {
                    axum::http::StatusCode::NO_CONTENT.into_response()
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let dir = super::super::harness::test_dir(true, 5);
    let text = super::super::harness::config_text(&dir, true, 5, "")
        + &format!(
            "\n[[orchestrator.notify]]\nname = \"t\"\nurl = \"http://{addr}/x\"\nretry_for = \"1h\"\nkinds = [\"alert\"]\n"
        );
    let s = delivering(&text, &dir);
    s.event(
        EventKind::Alert,
        Some("web"),
        None,
        "a".into(),
        vec![],
        None,
    );
    let sent = || {
        s.metrics
            .notify_sent
            .get_or_create(&vec![("notify".to_string(), "t".to_string())])
            .get()
    };
    let started = std::time::Instant::now();
    while sent() == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent(), 1, "delivered after the pause");
    let at = at.lock().unwrap();
    assert_eq!(at.len(), 2, "asked twice");
    at[1] - at[0]
}

/// An orchestrator started from `text` (in `dir`, events in memory) with
/// its notification workers running.
fn delivering(text: &str, dir: &std::path::Path) -> Arc<Shared> {
    let (s, _fake) =
        super::super::harness::start_from(text, dir, Arc::new(crate::store::MemStore::default()))
            .unwrap();
    for w in s.notify_workers() {
        tokio::spawn(w.run(s.clone(), CancellationToken::new()));
    }
    s
}
