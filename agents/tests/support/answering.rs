//! A fake orchestrator that answers every report of site b's agent with
//! what the test sets (a leader's answer, a deposed one's, a standby's),
//! and counts what the reports say; b's agent started and stopped around
//! it. Shared by `untold.rs`, `untold_deposed.rs` and `cluster_moved.rs`.

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
use warden_agents::wire::{Command, ReportResponse};
use warden_agents::{run, AgentSettings};

/// What it answers every report with (`None`: 503), how many reports it
/// answered so, the outcome ids reported, and the leader term (and its
/// etcd cluster, as the report wrote it) the last report said was taken.
#[derive(Default)]
pub(crate) struct Fake {
    answer: Mutex<Option<ReportResponse>>,
    answered: Mutex<u32>,
    /// Every report, answered or not.
    reports: Mutex<u32>,
    outcomes: Mutex<Vec<String>>,
    taken_term: Mutex<Option<u64>>,
    taken_cluster: Mutex<Option<serde_json::Value>>,
}

impl Fake {
    /// Answers from now on with `answer`; counts afresh.
    pub(crate) fn answer_with(&self, answer: ReportResponse) {
        *self.answer.lock().unwrap() = Some(answer);
        *self.answered.lock().unwrap() = 0;
    }

    pub(crate) fn answered(&self) -> u32 {
        *self.answered.lock().unwrap()
    }

    /// Reports received, answered or not (503 before any answer is set).
    pub(crate) fn reports(&self) -> u32 {
        *self.reports.lock().unwrap()
    }

    pub(crate) fn taken_term(&self) -> Option<u64> {
        *self.taken_term.lock().unwrap()
    }

    pub(crate) fn taken_cluster(&self) -> Option<serde_json::Value> {
        self.taken_cluster.lock().unwrap().clone()
    }

    /// Whether b reported an outcome of `order` (it ran it).
    pub(crate) fn ran(&self, order: &Command) -> bool {
        self.outcomes.lock().unwrap().contains(&order.id)
    }
}

async fn report(State(f): State<Arc<Fake>>, body: Bytes) -> Response {
    *f.reports.lock().unwrap() += 1;
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    *f.taken_term.lock().unwrap() = report["taken_term"].as_u64();
    *f.taken_cluster.lock().unwrap() = report.get("taken_cluster").cloned();
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

/// The fake on a loopback port: it and its base URL.
pub(crate) async fn serve() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/v1/reports", post(report))
        .route("/v1/agents/commands", get(poll))
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, base)
}

/// b's agent, running until the token is cancelled.
pub(crate) fn start(
    cfg: &warden_config::Config,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let settings = AgentSettings::from_config(cfg, "b").unwrap();
    let token = shutdown.clone();
    let agent = tokio::spawn(async move { run(settings, token).await.unwrap() });
    (shutdown, agent)
}

pub(crate) async fn stop((shutdown, agent): (CancellationToken, tokio::task::JoinHandle<()>)) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .expect("agent stops on shutdown")
        .unwrap();
}
