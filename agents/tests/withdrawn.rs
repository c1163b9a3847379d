//! An order taken back while it waits at the agent is not carried out.
//!
//! The agent runs commands one at a time: a promote handed out behind
//! another command's hooks waits in its queue. When the orchestrator takes
//! it back meanwhile (its runbook ended, the epoch moved on, a demote
//! superseded it), the answers list it as `withdrawn`; the agent must not
//! start it when its turn comes — it would act on a decision nobody stands
//! by any more — and reports it not run. A fake orchestrator on
//! 127.0.0.1:0 hands out two promotes in one answer (the first's hook takes
//! 2 s) and withdraws the second in its next answer.
//!
//! A withdrawal counts only from the leader term that handed the command
//! out, or a later one: when a new leader (term 9) hands the second promote
//! out again after a take-over, a deposed leader's (term 7) answer that
//! withdraws it, delayed in transit, does not stop it; and when the new
//! leader (term 9) withdraws it, a deposed leader's answer that still
//! lists it among the commands, delayed in transit, does not hand it out
//! again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_agents::run;
use warden_agents::wire::{
    AgentReport, Command, CommandKind, CommandOutcome, ReportResponse, Withdrawn,
};

#[path = "support/lone_site.rs"]
mod lone_site;

fn first() -> Command {
    Command::new("web", 7, CommandKind::Promote).to_site("a")
}

fn second() -> Command {
    Command::new("web", 8, CommandKind::Promote).to_site("a")
}

/// The scenario's state: how far the fake got, and every outcome it saw.
#[derive(Default)]
struct Fake {
    /// Play a take-over: term 9 hands the second promote out again, then
    /// only term 7's late answers withdraw it.
    take_over: bool,
    handed_again: bool,
    /// Play a late answer: term 9 hands the second promote out again and
    /// withdraws it, then term 7's answer from before the take-over lists
    /// it among the commands.
    late: bool,
    late_told: bool,
    handed: bool,
    withdrawn_told: bool,
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
        resp.term = 7;
        resp.commands = vec![first(), second()];
    } else if f.late && !f.handed_again {
        // The new leader resumes the runbook: it asks for the promote again.
        f.handed_again = true;
        resp.term = 9;
        resp.commands = vec![second()];
    } else if f.late && !f.withdrawn_told {
        // ... then the runbook ends: it takes the promote back.
        f.withdrawn_told = true;
        resp.term = 9;
        resp.withdrawn = vec![Withdrawn {
            id: second().id,
            why: "runbook 3 ended: rolled back".into(),
        }];
    } else if f.late {
        // Term 9 has no news (a stream answers only news); term 7's answer
        // arrives once, late.
        resp.term = 9;
        if !f.late_told {
            f.late_told = true;
            resp.term = 7;
            resp.commands = vec![second()];
        }
    } else if f.take_over && !f.handed_again {
        f.handed_again = true;
        resp.term = 9;
        resp.commands = vec![second()];
    } else {
        resp.term = 7;
        // Every later answer lists it, as the orchestrator's do for a while.
        f.withdrawn_told = true;
        resp.withdrawn = vec![Withdrawn {
            id: second().id,
            why: "runbook 3 ended: rolled back".into(),
        }];
    }
    Json(resp)
}

async fn poll() -> Json<ReportResponse> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    Json(ReportResponse::default())
}

/// Runs the agent against the fake until both promotes have an outcome;
/// returns the fake and the hook log (the epoch of every hook run).
async fn scenario(take_over: bool, late: bool) -> (Shared, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake: Shared = Arc::new(Mutex::new(Fake {
        take_over,
        late,
        ..Fake::default()
    }));
    let app = Router::new()
        .route("/v1/reports", post(report))
        .route("/v1/agents/commands", get(poll))
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tmp = tempfile::Builder::new()
        .prefix("warden-agent-test-")
        .tempdir()
        .unwrap();
    let hook_log = tmp.path().join("hook-log");
    let hook = format!("echo \"$WARDEN_EPOCH\" >> {}; sleep 2", hook_log.display());
    let settings = lone_site::settings(&format!("http://{addr}"), tmp.path(), &hook);
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if fake.lock().unwrap().outcomes.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both outcomes within 20 s: {:?}",
            fake.lock().unwrap().outcomes
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another report interval: a second run would have started by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
    let log = std::fs::read_to_string(&hook_log).unwrap();
    (fake, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_withdrawn_while_it_waits_is_not_started() {
    let (fake, log) = scenario(false, false).await;
    let f = fake.lock().unwrap();
    assert!(f.withdrawn_told);
    let of = |id: &str| f.outcomes.iter().find(|o| o.id == id).cloned().unwrap();
    let (done, withdrawn) = (of(&first().id), of(&second().id));
    assert!(done.ok, "the first promote ran: {done:?}");
    assert!(
        !withdrawn.ok,
        "the withdrawn promote is not done: {withdrawn:?}"
    );
    assert!(
        withdrawn.detail.contains("withdrawn by the orchestrator")
            && withdrawn.detail.contains("runbook 3 ended"),
        "it says why it was not run: {}",
        withdrawn.detail
    );
    assert!(
        withdrawn.hooks.is_empty(),
        "no hook of it ran: {withdrawn:?}"
    );
    assert_eq!(log, "7\n", "only the first promote's hook ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_late_withdrawal_does_not_stop_what_the_new_leader_handed_out() {
    let (fake, log) = scenario(true, false).await;
    let f = fake.lock().unwrap();
    assert!(f.handed_again && f.withdrawn_told);
    for o in &f.outcomes {
        assert!(o.ok, "both promotes ran: {:?}", f.outcomes);
    }
    assert_eq!(log, "7\n8\n", "both promotes' hooks ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_late_answer_does_not_hand_out_again_what_the_new_leader_withdrew() {
    let (fake, log) = scenario(false, true).await;
    let f = fake.lock().unwrap();
    assert!(
        f.handed_again && f.withdrawn_told && f.late_told,
        "the scenario played out"
    );
    let of = |id: &str| f.outcomes.iter().find(|o| o.id == id).cloned().unwrap();
    let (done, withdrawn) = (of(&first().id), of(&second().id));
    assert!(done.ok, "the first promote ran: {done:?}");
    assert!(
        !withdrawn.ok && withdrawn.detail.contains("withdrawn by the orchestrator"),
        "the promote term 9 withdrew is not run: {withdrawn:?}"
    );
    assert_eq!(log, "7\n", "only the first promote's hook ran");
}
