//! The agent loop against a fake orchestrator on 127.0.0.1:0: reports carry
//! the bearer token, checks and peer probes; a command delivered through both
//! the report response and the long-poll runs its hook once; its outcome is
//! resent until acked, and again when the command is asked for again. The
//! same with a fake that offers the report stream (a WebSocket; it closes
//! each stream after a few reports): every report then goes on a stream,
//! none by POST, and a closed stream is opened again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_agents::wire::{AgentReport, Command, CommandKind, ReportResponse, StreamAnswer};
use warden_agents::{run, AgentError, AgentSettings};

#[path = "support/lone_site.rs"]
#[allow(dead_code)] // its `settings` are site a's; ca's config is written here.
mod lone_site;

const TOKEN: &str = "agent-token-ca-0123456789";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A test's own directory, removed with everything in it when dropped (also
/// when the test panics): the hook log, and the token file and state
/// directory [`config_marked`] puts beside it.
fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("warden-agent-test-")
        .tempdir()
        .unwrap()
}

/// A two-site config (ca, tx in group "swift") whose orchestrator is at `base`.
fn config(
    base: &str,
    tcp_check: &str,
    hook_log: &std::path::Path,
    tag: &str,
) -> warden_config::Config {
    config_marked(base, tcp_check, hook_log, tag, None)
}

/// [`config`]; with `marker`, ca's promote hook creates that file at its end
/// and a critical check `marker` passes only once it exists.
fn config_marked(
    base: &str,
    tcp_check: &str,
    hook_log: &std::path::Path,
    tag: &str,
    marker: Option<&std::path::Path>,
) -> warden_config::Config {
    let (marker_check, touch) = match marker {
        Some(m) => (
            format!(
                r#"  {{ name = "marker", kind = "command", command = ["test", "-f", "{m}"] }},"#,
                m = m.display()
            ),
            format!("; touch {}", m.display()),
        ),
        None => (String::new(), String::new()),
    };
    let dir = hook_log
        .parent()
        .expect("the hook log is in a test directory");
    let token_file = dir.join(format!("{tag}-token"));
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // Each test's agent keeps its authority state (highest epochs) apart.
    let state_dir = dir.join(format!("{tag}-state"));
    let orchestrator =
        lone_site::orchestrator_tables(base, std::path::Path::new("/tmp/warden-agent-test"));
    let text = format!(
        r#"{orchestrator}
[sites.ca]
agent_token = {{ file = "{token}" }}
state_dir = "{state}"
checks = [
  {{ name = "api", kind = "tcp", address = "{tcp_check}" }},
  {{ name = "optional", kind = "command", command = ["false"], critical = false }},
{marker_check}
]
promote = [
  {{ name = "mark", command = ["sh", "-c", "echo \"$WARDEN_ACTION $WARDEN_GROUP $WARDEN_EPOCH $WARDEN_SITE\" >> {log}; sleep 0.5{touch}"] }},
]

[sites.tx]
agent_token = {{ env = "WARDEN_TEST_TX_TOKEN_UNUSED" }}
endpoints = [
  {{ name = "web", kind = "http", url = "{base}/health", body_contains = "ok" }},
]

[sites.ny]
agent_token = {{ env = "WARDEN_TEST_NY_TOKEN_UNUSED" }}

[groups.swift]
sites = ["ca", "tx", "ny"]
scheme = "dns"

[groups.swift.dns]
provider = "noip"
name = "swift.example.org"
credentials = {{ env = "WARDEN_TEST_DNS_CREDENTIALS_UNUSED" }}
addresses = {{ ca = "10.77.2.1", tx = "10.77.2.2", ny = "10.77.2.3" }}
"#,
        token = token_file.display(),
        log = hook_log.display(),
        state = state_dir.display(),
    );
    warden_config::parse(&text, std::path::Path::new("test.conf")).unwrap()
}

/// What the fake orchestrator saw, and where it is in the scenario.
#[derive(Default)]
struct Fake {
    /// Every report, in arrival order.
    reports: Vec<AgentReport>,
    /// The Authorization header of every request (reports and polls).
    auth: Vec<Option<String>>,
    /// The `wait_ms` query of every poll.
    waits: Vec<Option<String>>,
    /// Deliveries of the command through report responses / polls.
    via_report: u32,
    via_poll: u32,
    /// Reports that carried the outcome before the first ack.
    outcome_reports: u32,
    /// Seq of the report whose answer acked the outcome the first time.
    acked_at: Option<u64>,
    /// Reports after the first ack (and before the redelivery).
    after_ack: u32,
    /// Those of them that still carried the outcome (must stay 0).
    after_ack_with_outcome: u32,
    /// The command was handed out again after the ack.
    redelivered: bool,
    /// The agent answered the redelivery with the stored outcome.
    resent: bool,
    /// Reports that came by POST, and on streams.
    posted: u32,
    streamed: u32,
    /// Streams opened.
    streams: u32,
}

type Shared = Arc<Mutex<Fake>>;

fn command() -> Command {
    Command::new("swift", 7, CommandKind::Promote).to_site("ca")
}

async fn report(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Json(r): Json<AgentReport>,
) -> Json<ReportResponse> {
    let mut f = fake.lock().unwrap();
    f.auth.push(auth(&headers));
    f.posted += 1;
    Json(take(&mut f, r))
}

/// Reports on a stream after this many (and the outcome's ack) are followed
/// by a close from the fake.
const CLOSE_AFTER: u32 = 4;

async fn report_stream(
    State(fake): State<Shared>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    {
        let mut f = fake.lock().unwrap();
        f.auth.push(auth(&headers));
        f.streams += 1;
    }
    ws.on_upgrade(move |socket| streamed(fake, socket))
}

/// One stream: each report taken like a POST; an answer only with news.
async fn streamed(fake: Shared, mut socket: WebSocket) {
    let mut taken = 0;
    while let Some(Ok(m)) = socket.recv().await {
        let Message::Text(t) = m else { continue };
        let r: AgentReport = serde_json::from_str(t.as_str()).unwrap();
        let seq = r.seq;
        let answer = {
            let mut f = fake.lock().unwrap();
            f.streamed += 1;
            take(&mut f, r)
        };
        if !answer.commands.is_empty() || !answer.acked.is_empty() {
            let text = serde_json::to_string(&StreamAnswer::Answer { seq, answer }).unwrap();
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        taken += 1;
        // Not before the outcome is acked: a report the agent wrote on a
        // stream the fake then closed is lost with the promote's fresh
        // checks, which only the first copy carries (by design) — the
        // test would see a later copy without them.
        let acked = fake.lock().unwrap().acked_at.is_some();
        if taken >= CLOSE_AFTER && acked {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    }
}

fn take(f: &mut Fake, r: AgentReport) -> ReportResponse {
    let id = command().id;
    let carries = r.outcomes.iter().any(|o| o.id == id);
    let mut resp = ReportResponse::default();
    if f.acked_at.is_none() {
        if carries {
            f.outcome_reports += 1;
            // Ack only the second report carrying it, to see it resent.
            if f.outcome_reports >= 2 {
                f.acked_at = Some(r.seq);
                resp.acked.push(id.clone());
            }
        } else {
            f.via_report += 1;
            resp.commands.push(command());
        }
    } else if !f.redelivered {
        f.after_ack += 1;
        if carries {
            f.after_ack_with_outcome += 1;
        }
    } else if carries && !f.resent {
        f.resent = true;
        resp.acked.push(id);
    }
    f.reports.push(r);
    resp
}

async fn poll(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<ReportResponse> {
    {
        let mut f = fake.lock().unwrap();
        f.auth.push(auth(&headers));
        f.waits.push(q.get("wait_ms").cloned());
        let mut resp = ReportResponse::default();
        if f.outcome_reports == 0 {
            f.via_poll += 1;
            resp.commands.push(command());
            return Json(resp);
        }
        if f.after_ack >= 3 && !f.redelivered {
            f.redelivered = true;
            resp.commands.push(command());
            return Json(resp);
        }
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    Json(ReportResponse::default())
}

fn auth(h: &HeaderMap) -> Option<String> {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn fake_orchestrator() -> (String, std::net::SocketAddr, Shared) {
    fake_orchestrator_with(false).await
}

/// The fake, with the report stream or without (an orchestrator from
/// before streams: 404).
async fn fake_orchestrator_with(stream: bool) -> (String, std::net::SocketAddr, Shared) {
    let fake: Shared = Arc::default();
    let mut app = Router::new();
    if stream {
        app = app.route("/v1/reports/stream", get(report_stream));
    }
    let app = app
        .route("/v1/reports", post(report))
        .route("/v1/agents/commands", get(poll))
        .route("/health", get(|| async { "ok" }))
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), addr, fake)
}

/// Wait until `cond` holds on the fake's state, failing after 10s.
async fn eventually(fake: &Shared, what: &str, cond: impl Fn(&Fake) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cond(&fake.lock().unwrap()) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn settings_from_config() {
    let tmp = temp_dir();
    let log = tmp.path().join("settings-log");
    let cfg = config("http://127.0.0.1:4000", "127.0.0.1:1", &log, "settings");
    let s = AgentSettings::from_config(&cfg, "ca").unwrap();
    assert_eq!(s.site, "ca");
    assert_eq!(s.token.expose(), TOKEN);
    assert_eq!(
        s.orchestrator_urls,
        vec!["http://127.0.0.1:4000".to_string()]
    );
    assert_eq!(s.interval, Duration::from_millis(100));
    assert_eq!(s.long_poll, Duration::from_millis(300));
    assert_eq!(
        s.checks.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["api", "optional"]
    );
    assert_eq!(s.promote.len(), 1);
    assert!(s.demote.is_empty());
    // ny has no endpoints: not probed (an empty probe would read as "failing").
    assert_eq!(s.peers.len(), 1);
    assert_eq!(s.peers[0].site, "tx");
    assert_eq!(
        s.peers[0].endpoints[0].timeout,
        Duration::from_millis(300),
        "capped by probe_timeout"
    );

    let err = AgentSettings::from_config(&cfg, "nowhere").unwrap_err();
    assert!(matches!(err, AgentError::Config(_)), "{err:?}");
    // tx's token variable is unset: a config error that does not leak anything.
    let err = AgentSettings::from_config(&cfg, "tx").unwrap_err();
    assert!(
        err.to_string().contains("WARDEN_TEST_TX_TOKEN_UNUSED"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_and_runs_a_command_once() {
    runs_a_command_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_a_stream_and_runs_a_command_once() {
    runs_a_command_once(true).await;
}

async fn runs_a_command_once(stream: bool) {
    install_crypto();
    let (base, addr, fake) = fake_orchestrator_with(stream).await;
    let tag = if stream { "stream" } else { "loop" };
    let tmp = temp_dir();
    let hook_log = tmp.path().join("hook-log");
    let cfg = config(&base, &addr.to_string(), &hook_log, tag);
    let settings = AgentSettings::from_config(&cfg, "ca").unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));

    eventually(&fake, "the outcome acked", |f| f.acked_at.is_some()).await;
    eventually(&fake, "the stored outcome resent after redelivery", |f| {
        f.resent
    })
    .await;
    let stop = Instant::now();
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .expect("agent stops on shutdown");
    result.unwrap().unwrap();
    assert!(stop.elapsed() < Duration::from_secs(2));

    let f = fake.lock().unwrap();
    // Every request carries the bearer token; polls ask for the configured wait.
    assert!(
        f.auth
            .iter()
            .all(|a| a.as_deref() == Some(&format!("Bearer {TOKEN}"))),
        "{:?}",
        f.auth
    );
    assert!(
        f.waits.iter().all(|w| w.as_deref() == Some("300")),
        "{:?}",
        f.waits
    );

    // Where the reports went: all on streams when there are streams (each
    // closed after a few reports and opened again), else all by POST.
    if stream {
        assert_eq!(f.posted, 0, "{} reports by POST", f.posted);
        assert!(f.streams >= 2, "{} streams opened", f.streams);
        assert!(f.streamed > CLOSE_AFTER, "{} streamed", f.streamed);
    } else {
        assert_eq!((f.streamed, f.streams), (0, 0));
        assert!(f.posted > 0);
    }

    // Reports: the site, increasing seqs (a report is never sent twice; one
    // written into a stream the fake was closing is lost, as one older than
    // the latest is skipped), one start time, the checks and the peer view.
    let first = &f.reports[0];
    assert_eq!(first.site, "ca");
    assert!(first.started_unix_ms > 0);
    for (i, r) in f.reports.iter().enumerate() {
        if i > 0 {
            assert!(
                r.seq > f.reports[i - 1].seq,
                "seq {} after {}",
                r.seq,
                f.reports[i - 1].seq
            );
        }
        assert_eq!(r.started_unix_ms, first.started_unix_ms);
    }
    // Numbered from 1. The first may be skipped: a courier that is behind
    // (a stream still opening on a loaded machine when the next report
    // is ready, 100 ms later) sends only the newest.
    assert!(
        (1..=10).contains(&first.seq),
        "the first report received has seq {}",
        first.seq
    );
    let checks: Vec<_> = first
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.ok, c.critical))
        .collect();
    assert_eq!(checks, [("api", true, true), ("optional", false, false)]);
    assert_eq!(first.checks[1].detail, "exit 1");
    // The peers are probed on their own schedule: the view travels with
    // the next report once the first probe is done, dated by its age.
    let viewed = f
        .reports
        .iter()
        .find(|r| !r.peers.is_empty())
        .expect("a report carries the peer view");
    assert_eq!(viewed.peers.len(), 1);
    assert_eq!(viewed.peers[0].site, "tx");
    assert_eq!(viewed.peers[0].results[0].name, "web");
    assert!(viewed.peers[0].results[0].ok, "{:?}", viewed.peers[0]);
    assert!(
        f.reports
            .iter()
            .flat_map(|r| &r.peers)
            .all(|p| p.age_ms < 1_000),
        "every view is recent: {:?}",
        f.reports.iter().map(|r| &r.peers).collect::<Vec<_>>()
    );

    // Delivered through both channels, several times, while running: one run.
    assert!(
        f.via_report >= 1 && f.via_poll >= 1,
        "report {} poll {}",
        f.via_report,
        f.via_poll
    );
    assert!(f.via_report + f.via_poll >= 3);
    let runs = std::fs::read_to_string(&hook_log).unwrap();
    assert_eq!(runs, "promote swift 7 ca\n");

    // The outcome: resent until acked, then no more, then again when asked again.
    let outcome = f
        .reports
        .iter()
        .find_map(|r| r.outcomes.first())
        .expect("an outcome was reported");
    assert_eq!(outcome.id, "swift:7:promote");
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.hooks.len(), 1);
    assert_eq!(outcome.hooks[0].name, "mark");
    // The promote's checks, run after its hooks, travel with the outcome.
    let fresh: Vec<_> = outcome
        .checks
        .as_ref()
        .expect("a promote outcome carries checks")
        .iter()
        .map(|c| (c.name.as_str(), c.ok, c.critical))
        .collect();
    assert_eq!(fresh, [("api", true, true), ("optional", false, false)]);
    assert_eq!(f.outcome_reports, 2);
    assert!(f.after_ack >= 3);
    assert_eq!(
        f.after_ack_with_outcome, 0,
        "outcome resent after it was acked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotes_outcome_carries_checks_taken_after_its_hooks() {
    install_crypto();
    let (base, addr, fake) = fake_orchestrator().await;
    let tmp = temp_dir();
    let hook_log = tmp.path().join("marker-log");
    let marker = tmp.path().join("marker");
    let cfg = config_marked(&base, &addr.to_string(), &hook_log, "marker", Some(&marker));
    let settings = AgentSettings::from_config(&cfg, "ca").unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));
    eventually(&fake, "the outcome acked", |f| f.acked_at.is_some()).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;

    let f = fake.lock().unwrap();
    let marker_check = |checks: &[warden_agents::wire::CheckResult]| {
        checks
            .iter()
            .find(|c| c.name == "marker")
            .map(|c| (c.ok, c.critical))
    };
    // Before the promote the file is not there: the check fails in reports.
    assert_eq!(marker_check(&f.reports[0].checks), Some((false, true)));
    // The outcome's checks were taken after the hook created it.
    let carrying: Vec<_> = f
        .reports
        .iter()
        .filter_map(|r| r.outcomes.iter().find(|o| o.id == command().id))
        .collect();
    assert!(
        carrying.len() >= 2,
        "resent before the ack: {}",
        carrying.len()
    );
    let fresh = carrying[0]
        .checks
        .as_deref()
        .expect("the first report of the outcome carries its checks");
    assert_eq!(marker_check(fresh), Some((true, true)), "{fresh:?}");
    // Only the first: a resend is no longer fresh.
    assert_eq!(carrying[1].checks, None);
}

#[tokio::test]
async fn keeps_going_without_an_orchestrator_and_stops_promptly() {
    install_crypto();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let tmp = temp_dir();
    let hook_log = tmp.path().join("down-log");
    let cfg = config(
        &format!("http://{closed}"),
        &closed.to_string(),
        &hook_log,
        "down",
    );
    let settings = AgentSettings::from_config(&cfg, "ca").unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!agent.is_finished(), "the agent gave up");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), agent)
        .await
        .expect("agent stops on shutdown")
        .unwrap()
        .unwrap();
}
