//! A group of three (a, b, c): standby b's agent took epoch 5 from the
//! leader of etcd cluster a (term 17). The orchestrators are moved to a
//! new etcd cluster b, whose revisions started over: its leader answers
//! at term 3, at the same epoch 5, with an order. b runs it (before, b
//! took it as a deposed leader's answer — term 3 below 17 — and ran
//! nothing until the group's next epoch), and reports term 3 of cluster
//! b. Restarted, b refuses a late answer of cluster a (term 17, an order
//! of epoch 5): its `untold` wait goes on, the order never runs.

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
/// the leader term (and its etcd cluster) the last report said was taken.
#[derive(Default)]
struct Fake {
    answer: Mutex<Option<ReportResponse>>,
    answered: Mutex<u32>,
    outcomes: Mutex<Vec<String>>,
    taken_term: Mutex<Option<u64>>,
    taken_cluster: Mutex<Option<serde_json::Value>>,
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

/// A leader's answer under `term` of etcd cluster `cluster`: group web
/// at `epoch`, and `commands`.
fn leader(cluster: u64, term: u64, epoch: u64, commands: Vec<Command>) -> ReportResponse {
    ReportResponse {
        epochs: BTreeMap::from([("web".to_string(), epoch)]),
        term,
        cluster: Some(cluster),
        commands,
        ..ReportResponse::default()
    }
}

fn ran(fake: &Fake, order: &Command) -> bool {
    fake.outcomes.lock().unwrap().contains(&order.id)
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
async fn a_new_etcd_clusters_leader_is_followed_at_the_current_epoch() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("warden-cluster-moved-")
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
    let (a, b) = (0xa, 0xb);

    fake.answer_with(leader(a, 17, 5, vec![]));
    let agent = start(&cfg);
    eventually("b takes epoch 5 from cluster a's leader", || {
        check(&cfg, "b", &push("c", 5)).is_ok()
    })
    .await;
    eventually("b reports term 17 of cluster a", || {
        fake.taken_term() == Some(17)
    })
    .await;

    // The new cluster's leader, term 3, same epoch, with an order.
    let order = Command::new("web", 5, CommandKind::Clear).to_site("b");
    fake.answer_with(leader(b, 3, 5, vec![order.clone()]));
    eventually("b runs the new cluster's order", || ran(&fake, &order)).await;
    eventually("b reports term 3 of cluster b", || {
        fake.taken_term() == Some(3)
            && *fake.taken_cluster.lock().unwrap() == Some(serde_json::json!(b))
    })
    .await;
    stop(agent).await;

    // Restarted: a late answer of cluster a, with an order of epoch 5.
    let late = Command::new("web", 5, CommandKind::Journal).to_site("b");
    fake.answer_with(leader(a, 17, 5, vec![late.clone()]));
    let agent = start(&cfg);
    eventually("cluster a's answers reach b", || fake.answered() >= 5).await;
    let waiting = "site b's agent has not heard from the orchestrator since it started";
    let e = check(&cfg, "b", &push("a", 5)).unwrap_err();
    assert!(e.contains(waiting), "after cluster a's answers: {e}");
    assert!(!ran(&fake, &late), "b ran cluster a's order {}", late.id);
    assert_eq!(
        fake.taken_term(),
        Some(3),
        "the term kept across the restart"
    );

    // Cluster b's leader again: the wait ends.
    fake.answer_with(leader(b, 3, 5, vec![]));
    eventually("b takes cluster b's answer after the restart", || {
        check(&cfg, "b", &push("c", 5)).is_ok()
    })
    .await;
    assert!(!ran(&fake, &late), "b ran cluster a's order {}", late.id);
    stop(agent).await;
}
