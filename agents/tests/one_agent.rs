//! One agent per site's state directory: a second agent started with the
//! same `state_dir` while the first runs (a unit started twice, a new
//! container before the old one stopped) refuses to start and names the
//! one that runs, instead of taking every order a second time; once the
//! first has stopped — however it ended — an agent starts again there.
//! Against a fake orchestrator on 127.0.0.1:0 that hands the site's
//! promote to every answer, as the real one does until its outcome arrives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use tokio_util::sync::CancellationToken;
use warden_agents::wire::{AgentReport, Command, CommandKind, ReportResponse};
use warden_agents::{run, AgentError, AgentSettings};

#[path = "support/fake_orchestrator.rs"]
#[allow(dead_code)] // `temp_dir`, `standby_of_web`: for other tests.
mod fake_orchestrator;

#[path = "support/lone_site.rs"]
mod lone_site;

/// What the fake saw.
#[derive(Default)]
struct Fake {
    reports: u32,
    /// The promote's outcome arrived.
    done: bool,
}

type Shared = Arc<Mutex<Fake>>;

fn promote() -> Command {
    Command::new("web", 3, CommandKind::Promote).to_site("a")
}

fn answer(f: &mut Fake, outcomes: &[warden_agents::wire::CommandOutcome]) -> ReportResponse {
    let id = promote().id;
    let mut resp = ReportResponse::default();
    if outcomes.iter().any(|o| o.id == id) {
        f.done = true;
        resp.acked.push(id);
    } else if !f.done {
        resp.commands.push(promote());
    }
    resp
}

async fn report(State(fake): State<Shared>, Json(r): Json<AgentReport>) -> Json<ReportResponse> {
    let mut f = fake.lock().unwrap();
    f.reports += 1;
    Json(answer(&mut f, &r.outcomes))
}

async fn poll(State(fake): State<Shared>) -> Json<ReportResponse> {
    let resp = answer(&mut fake.lock().unwrap(), &[]);
    if resp.commands.is_empty() {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Json(resp)
}

async fn fake_orchestrator() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let base = fake_orchestrator::serve(post(report), get(poll), fake.clone()).await;
    (base, fake)
}

/// Site a of group web (a and b), its promote hook appending a line to `log`.
fn settings(base: &str, dir: &std::path::Path, log: &std::path::Path) -> AgentSettings {
    let hook = format!(
        "echo \"$WARDEN_ACTION $WARDEN_EPOCH $$\" >> {}; sleep 0.5",
        log.display()
    );
    lone_site::settings(base, dir, &hook)
}

async fn eventually(fake: &Shared, what: &str, cond: impl Fn(&Fake) -> bool) {
    fake_orchestrator::until(fake, what, Duration::from_secs(10), cond).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_of_the_site_refuses_to_start() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (base, fake) = fake_orchestrator().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook-log");
    let first_stop = CancellationToken::new();
    let first = tokio::spawn(run(settings(&base, dir.path(), &log), first_stop.clone()));
    eventually(&fake, "the first agent reports", |f| f.reports > 0).await;

    // The same site, the same state_dir, while the first runs.
    let second_stop = CancellationToken::new();
    let second = tokio::spawn(run(settings(&base, dir.path(), &log), second_stop.clone()));
    let refused = tokio::time::timeout(Duration::from_secs(5), second).await;
    second_stop.cancel();
    let Ok(ended) = refused else {
        first_stop.cancel();
        panic!("a second agent of site a runs beside the first (each takes every order)");
    };
    let e = ended.unwrap().expect_err("the second agent must not run");
    assert!(matches!(e, AgentError::AlreadyRunning { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("another agent of site a")
            && text.contains(&dir.path().join("state").display().to_string())
            && text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );

    // The order runs once, in the agent that runs.
    eventually(&fake, "the promote's outcome", |f| f.done).await;
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(runs.lines().count(), 1, "{runs}");
    first_stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("the first agent stops")
        .unwrap()
        .unwrap();

    // Gone: an agent starts there again (and keeps what the first did).
    let again_stop = CancellationToken::new();
    let again = tokio::spawn(run(settings(&base, dir.path(), &log), again_stop.clone()));
    let reports = fake.lock().unwrap().reports;
    eventually(&fake, "the restarted agent reports", |f| {
        f.reports > reports
    })
    .await;
    assert!(!again.is_finished(), "the restarted agent gave up");
    again_stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), again)
        .await
        .expect("the restarted agent stops")
        .unwrap()
        .unwrap();
    let state = warden_agents::authority::read(&dir.path().join("state"), "a").unwrap();
    assert_eq!(state["web"].epoch, 3);
}
