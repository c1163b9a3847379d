//! Two answers of one leader arrive out of order across the channels: the
//! older one does not start what the newer one took back.
//!
//! A fake orchestrator on 127.0.0.1:0 answers the agent's first command
//! long-poll with a promote (its answer 1), but the answer travels slowly.
//! Meanwhile the runbook ends: the answer to a report (answer 2, on the
//! report stream or to a POST) withdraws the promote — which the agent
//! does not hold yet. Then answer 1 arrives. Made before the take-back,
//! it must not start the promote: the orchestrator no longer stands by it.
//! A later answer (3) hands out another promote; the agent runs commands
//! in arrival order, so once that one's outcome is in, a promote queued
//! from answer 1 would have run already.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_agents::run;
use warden_agents::wire::{
    AgentReport, AnswerOrder, Command, CommandKind, CommandOutcome, ReportResponse, StreamAnswer,
    Withdrawn, REPORT_STREAM_PATH,
};

#[path = "support/lone_site.rs"]
mod lone_site;

/// The promote handed out, then taken back.
fn withdrawn() -> Command {
    Command::new("web", 8, CommandKind::Promote).to_site("a")
}

/// The promote handed out after it.
fn next() -> Command {
    Command::new("web", 9, CommandKind::Promote).to_site("a")
}

fn placed(n: u64) -> Option<AnswerOrder> {
    Some(AnswerOrder {
        maker: "fake-orchestrator".into(),
        n,
    })
}

#[derive(Default)]
struct Fake {
    polls: u32,
    /// Answer 1 (the promote) was made for the first poll.
    offered: bool,
    /// Answer 2 (its withdrawal) was sent to a report.
    withdrew: bool,
    /// Reports after answer 2 (each one a sign it was taken).
    after_withdrawal: u32,
    /// Answer 1 was let go, late.
    late_sent: bool,
    /// The last place given.
    n: u64,
    outcomes: Vec<CommandOutcome>,
    streamed: u32,
}

type Shared = Arc<Mutex<Fake>>;

/// One report taken; `None`: nothing to tell (a stream then sends nothing).
fn take(f: &mut Fake, r: AgentReport) -> Option<ReportResponse> {
    let mut resp = ReportResponse::default();
    for o in r.outcomes {
        resp.acked.push(o.id.clone());
        if !f.outcomes.iter().any(|seen| seen.id == o.id) {
            f.outcomes.push(o);
        }
    }
    if f.offered && !f.withdrew {
        f.withdrew = true;
        f.n = 2;
        resp.order = placed(2);
        resp.withdrawn = vec![Withdrawn {
            id: withdrawn().id,
            why: "runbook 3 ended: rolled back".into(),
        }];
    } else if f.withdrew && !f.late_sent {
        f.after_withdrawal += 1;
    } else if f.late_sent && f.polls >= 2 && !f.outcomes.iter().any(|o| o.id == next().id) {
        // Answer 1 was taken (the agent polled again after it): the next
        // promote, listed in every answer until its outcome is in.
        f.n += 1;
        resp.order = placed(f.n);
        resp.commands = vec![next()];
    }
    let news = !resp.commands.is_empty() || !resp.acked.is_empty() || !resp.withdrawn.is_empty();
    news.then_some(resp)
}

async fn report(State(fake): State<Shared>, Json(r): Json<AgentReport>) -> Json<ReportResponse> {
    let mut f = fake.lock().unwrap();
    Json(take(&mut f, r).unwrap_or_default())
}

async fn report_stream(
    State(fake): State<Shared>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    ws.on_upgrade(move |socket| streamed(fake, socket))
}

async fn streamed(fake: Shared, mut socket: WebSocket) {
    while let Some(Ok(m)) = socket.recv().await {
        let Message::Text(t) = m else { continue };
        let r: AgentReport = serde_json::from_str(t.as_str()).unwrap();
        let seq = r.seq;
        let answer = {
            let mut f = fake.lock().unwrap();
            f.streamed += 1;
            take(&mut f, r)
        };
        if let Some(answer) = answer {
            let text = serde_json::to_string(&StreamAnswer::Answer { seq, answer }).unwrap();
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
    }
}

async fn poll(State(fake): State<Shared>) -> Json<ReportResponse> {
    let first = {
        let mut f = fake.lock().unwrap();
        f.polls += 1;
        let first = !f.offered;
        f.offered = true;
        first
    };
    if !first {
        tokio::time::sleep(Duration::from_millis(150)).await;
        return Json(ReportResponse::default());
    }
    // Answer 1, made now, let go only once the agent has taken answer 2
    // (two more reports after it: 200 ms at the agent's interval).
    let late = ReportResponse {
        commands: vec![withdrawn()],
        order: placed(1),
        ..ReportResponse::default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.lock().unwrap().after_withdrawal < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.lock().unwrap().late_sent = true;
    Json(late)
}

/// Runs the agent against the fake until the next promote's outcome is
/// in; returns the fake and the hook log (the epoch of every hook run).
async fn scenario(stream: bool) -> (Shared, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake: Shared = Arc::default();
    let mut app = Router::new()
        .route("/v1/reports", post(report))
        .route("/v1/agents/commands", get(poll));
    if stream {
        app = app.route(REPORT_STREAM_PATH, get(report_stream));
    }
    let app = app.with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tmp = tempfile::Builder::new()
        .prefix("warden-agent-test-")
        .tempdir()
        .unwrap();
    let hook_log = tmp.path().join("hook-log");
    let hook = format!("echo \"$WARDEN_EPOCH\" >> {}", hook_log.display());
    let settings = lone_site::settings(&format!("http://{addr}"), tmp.path(), &hook);
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));

    let deadline = Instant::now() + Duration::from_secs(30);
    while !fake
        .lock()
        .unwrap()
        .outcomes
        .iter()
        .any(|o| o.id == next().id)
    {
        let f = fake.lock().unwrap();
        assert!(
            Instant::now() < deadline,
            "the next promote's outcome within 30 s (polls {}, late answer sent {}): {:?}",
            f.polls,
            f.late_sent,
            f.outcomes
        );
        drop(f);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
    let log = std::fs::read_to_string(&hook_log).unwrap_or_default();
    (fake, log)
}

fn check(fake: &Shared, log: &str) {
    let f = fake.lock().unwrap();
    assert!(f.withdrew && f.late_sent, "the scenario played out");
    assert_eq!(
        log, "9\n",
        "only the next promote's hook ran, not the withdrawn one's: {:?}",
        f.outcomes
    );
    assert!(
        !f.outcomes.iter().any(|o| o.id == withdrawn().id),
        "the withdrawn promote has no outcome: {:?}",
        f.outcomes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_older_poll_answer_does_not_start_what_a_report_answer_withdrew() {
    let (fake, log) = scenario(false).await;
    check(&fake, &log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_older_poll_answer_does_not_start_what_a_stream_answer_withdrew() {
    let (fake, log) = scenario(true).await;
    assert!(
        fake.lock().unwrap().streamed > 0,
        "reports went on the stream"
    );
    check(&fake, &log);
}
