//! A group of three (a, b, c): standby b's agent took epoch 5 from leader
//! L1 (term 7), and restarts. The first orchestrator to answer it then is
//! L0, a leader deposed at term 6 that still believes it leads (paused or
//! cut off past its lease), with the epoch it knew (5) and an order of
//! that epoch; then a standby orchestrator (no epochs, no term). Neither
//! ends b's `untold` wait — its rsync gate (read as the daemon's
//! `pre-xfer exec` does) still refuses deposed a's push stated at 5 —,
//! and b runs no order of L0's: no outcome of it is ever reported. L1's
//! answer (epoch 6: a failover b was not there for) ends the wait.
//! Every report of b's says the leader term it took (7, kept across the
//! restart), so that L0's refusal can be seen at the orchestrators.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_agents::gate::check;
use warden_agents::wire::{Command, CommandKind, ReportResponse};
use warden_agents::{run, AgentSettings};

#[path = "support/lone_site.rs"]
#[allow(dead_code)] // three_sites' secrets and tables; b's config is written there.
mod lone_site;
#[path = "support/three_sites.rs"]
mod three_sites;
use three_sites::{config, eventually, push};

/// The fake orchestrator: what it answers every report with (`None`:
/// 503), how many reports it answered so, the outcome ids reported and
/// the leader term the last report said was taken.
#[derive(Default)]
struct Fake {
    answer: Mutex<Option<ReportResponse>>,
    answered: Mutex<u32>,
    outcomes: Mutex<Vec<String>>,
    taken_term: Mutex<Option<u64>>,
}

impl Fake {
    /// Answers from now on with `answer`; counts afresh.
    fn answer_with(&self, answer: ReportResponse) {
        *self.answer.lock().unwrap() = Some(answer);
        *self.answered.lock().unwrap() = 0;
    }

    fn answered(&self) -> u32 {
        *self.answered.lock().unwrap()
    }

    fn taken_term(&self) -> Option<u64> {
        *self.taken_term.lock().unwrap()
    }
}

async fn report(State(f): State<Arc<Fake>>, body: Bytes) -> Response {
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    *f.taken_term.lock().unwrap() = report["taken_term"].as_u64();
    for o in report["outcomes"].as_array().into_iter().flatten() {
        f.outcomes
            .lock()
            .unwrap()
            .push(o["id"].as_str().unwrap_or_default().to_string());
    }
    let Some(answer) = f.answer.lock().unwrap().clone() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    *f.answered.lock().unwrap() += 1;
    Json(answer).into_response()
}

async fn poll() -> Json<ReportResponse> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Json(ReportResponse::default())
}

/// A leader's answer under `term`: group web at `epoch`, and `commands`.
fn leader(term: u64, epoch: u64, commands: Vec<Command>) -> ReportResponse {
    ReportResponse {
        epochs: BTreeMap::from([("web".to_string(), epoch)]),
        term,
        commands,
        ..ReportResponse::default()
    }
}

/// b's agent, running until the token is cancelled.
fn start(cfg: &warden_config::Config) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let settings = AgentSettings::from_config(cfg, "b").unwrap();
    let token = shutdown.clone();
    let agent = tokio::spawn(async move { run(settings, token).await.unwrap() });
    (shutdown, agent)
}

async fn stop((shutdown, agent): (CancellationToken, tokio::task::JoinHandle<()>)) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .expect("agent stops on shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_orchestrator_neither_ends_a_restarted_standbys_wait_nor_orders_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("warden-untold-deposed-")
        .tempdir()
        .unwrap();
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/v1/reports", post(report))
        .route("/v1/agents/commands", get(poll))
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cfg = config(&base, dir.path());

    // b's previous life: L1 (term 7) said epoch 5.
    fake.answer_with(leader(7, 5, vec![]));
    let agent = start(&cfg);
    eventually("b takes epoch 5 from L1", || {
        check(&cfg, "b", &push("c", 5)).is_ok()
    })
    .await;
    eventually("b reports the term it took from L1 (7)", || {
        fake.taken_term() == Some(7)
    })
    .await;
    stop(agent).await;

    // Restarted: deposed L0 (term 6) answers first, with an order.
    let order = Command::new("web", 5, CommandKind::Clear).to_site("b");
    fake.answer_with(leader(6, 5, vec![order.clone()]));
    let agent = start(&cfg);
    eventually("L0 answers b's reports", || fake.answered() >= 5).await;
    let waiting = "site b's agent has not heard from the orchestrator since it started";
    let e = check(&cfg, "b", &push("a", 5)).unwrap_err();
    assert!(e.contains(waiting), "after L0's answers: {e}");
    assert_eq!(
        fake.taken_term(),
        Some(7),
        "b's reports while L0 (term 6) answers: the term taken before the restart"
    );
    assert!(
        !fake.outcomes.lock().unwrap().contains(&order.id),
        "b ran L0's order {}",
        order.id
    );
    // A standby orchestrator's answer says nothing either.
    fake.answer_with(ReportResponse::default());
    eventually("the standby answers b's reports", || fake.answered() >= 5).await;
    let e = check(&cfg, "b", &push("a", 5)).unwrap_err();
    assert!(e.contains(waiting), "after the standby's answers: {e}");

    // L1 again, at epoch 6.
    fake.answer_with(leader(7, 6, vec![]));
    eventually("b takes epoch 6 from L1", || {
        check(&cfg, "b", &push("c", 6)).is_ok()
    })
    .await;
    let e = check(&cfg, "b", &push("a", 5)).unwrap_err();
    assert!(
        e.contains("a push of group web from site a at epoch 5, but site b knows epoch 6"),
        "{e}"
    );
    eventually("b reports again", || fake.answered() >= 3).await;
    assert!(
        !fake.outcomes.lock().unwrap().contains(&order.id),
        "b ran L0's order {}",
        order.id
    );
    stop(agent).await;
}
