//! A replication command taken back while it waits for its group's turn
//! is not carried out.
//!
//! Replication commands run in tasks of their own, one at a time per
//! group: a second resync handed out while a first one runs waits for the
//! group's lock. When the orchestrator takes it back meanwhile (its
//! runbook ended, the epoch moved on), the agent must not start it when its
//! turn comes, and reports it not run — as it does for a command withdrawn
//! before it started. A fake orchestrator on 127.0.0.1:0 hands out a
//! resync, a second one once the first runs, then withdraws the second; the
//! `command` plan's resync is a real `sh` that notes each run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use tokio_util::sync::CancellationToken;
use warden_agents::run;
use warden_agents::wire::{
    AgentReport, Command, CommandKind, CommandOutcome, ReportResponse, Withdrawn,
};

#[path = "support/fake_orchestrator.rs"]
#[allow(dead_code)] // `until`: this test waits with the outcomes in view.
mod fake_orchestrator;

#[path = "support/lone_site.rs"]
#[allow(dead_code)] // `settings` (no replication) is for other tests.
mod lone_site;

fn resync(id: &str) -> Command {
    let mut c = Command::new("web", 1, CommandKind::Resync).to_site("a");
    c.peer = Some("b".into());
    c.id = id.into();
    c
}

const FIRST: &str = "web:1:resync";
const SECOND: &str = "web:1:resync:2";

struct Fake {
    /// The resync's run log: a line `begin` when a resync command begins.
    log: std::path::PathBuf,
    handed: bool,
    second_handed: bool,
    told: bool,
    outcomes: Vec<CommandOutcome>,
}

type Shared = Arc<Mutex<Fake>>;

async fn report(State(fake): State<Shared>, Json(r): Json<AgentReport>) -> Json<ReportResponse> {
    let mut f = fake.lock().unwrap();
    let mut resp = ReportResponse::default();
    for o in r.outcomes {
        resp.acked.push(o.id.clone());
        if !f.outcomes.iter().any(|seen| seen.id == o.id) {
            f.outcomes.push(o);
        }
    }
    if !f.handed {
        f.handed = true;
        resp.commands = vec![resync(FIRST)];
    } else if f.told {
        // Listed for a while, as the orchestrator's answers do.
        resp.withdrawn = vec![Withdrawn {
            id: SECOND.into(),
            why: "the epoch moved on".into(),
        }];
    }
    Json(resp)
}

/// Once the first resync has begun: hands out the second (it waits for
/// the group's turn), then withdraws it; otherwise nothing after a while.
async fn poll(State(fake): State<Shared>) -> Json<ReportResponse> {
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        {
            let mut f = fake.lock().unwrap();
            let begun = std::fs::read_to_string(&f.log).unwrap_or_default();
            if !f.second_handed && begun.contains("begin") {
                f.second_handed = true;
                return Json(ReportResponse {
                    commands: vec![resync(SECOND)],
                    ..ReportResponse::default()
                });
            }
            if f.second_handed && !f.told {
                f.told = true;
                return Json(ReportResponse {
                    withdrawn: vec![Withdrawn {
                        id: SECOND.into(),
                        why: "the epoch moved on".into(),
                    }],
                    ..ReportResponse::default()
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Json(ReportResponse::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_withdrawn_while_it_waited_for_its_turn_is_not_run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = fake_orchestrator::temp_dir();
    let log = tmp.path().join("start-log");
    let fake: Shared = Arc::new(Mutex::new(Fake {
        log: log.clone(),
        handed: false,
        second_handed: false,
        told: false,
        outcomes: Vec::new(),
    }));
    let base = fake_orchestrator::serve(post(report), get(poll), fake.clone()).await;

    let script = format!(
        "echo begin >> '{0}'; sleep 1.5; echo end >> '{0}'",
        log.display()
    );
    let replication = format!(
        "[groups.web.replication]\nplan = \"command\"\n\
         start = [\"/bin/true\"]\nstop = [\"/bin/true\"]\nresync = [\"/bin/sh\", \"-c\", {script:?}]\n"
    );
    let settings = lone_site::settings_with(&base, tmp.path(), "true", &replication);
    // Site a is the standby (b active): a resync pulls into it.
    fake_orchestrator::standby_of_web(tmp.path());
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if fake.lock().unwrap().outcomes.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both outcomes within 30 s: {:?}",
            fake.lock().unwrap().outcomes
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A second resync would have begun by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
    let f = fake.lock().unwrap();
    assert!(f.told, "the scenario played out");
    let runs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        runs.lines().filter(|l| *l == "begin").count(),
        1,
        "the withdrawn resync ran: {runs:?}; {:?}",
        f.outcomes
    );
    let second = f
        .outcomes
        .iter()
        .find(|o| o.id == SECOND)
        .expect("its outcome");
    assert!(
        !second.ok
            && second
                .detail
                .contains("withdrawn by the orchestrator while it waited for its turn")
            && second.detail.contains("the epoch moved on"),
        "{second:?}"
    );
}
