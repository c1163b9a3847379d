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
//!
//! A promote that waits before its hooks (here: a push still receiving
//! into the site, which ignores SIGTERM and is killed after the grace) is
//! stopped there by a withdrawal, or a newer epoch, that came meanwhile.

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

/// The promote-that-waits scenario: what the fake tells once the promote
/// is in its wait (the stand-in push got its SIGTERM), and what it saw.
struct Waiting {
    /// Tell a newer epoch instead of withdrawing the promote.
    epoch: bool,
    /// Written by the stand-in push when it is asked to end.
    mark: std::path::PathBuf,
    handed: bool,
    told: bool,
    outcomes: Vec<CommandOutcome>,
}

type WaitShared = Arc<Mutex<Waiting>>;

async fn waiting_report(
    State(fake): State<WaitShared>,
    Json(r): Json<AgentReport>,
) -> Json<ReportResponse> {
    let mut f = fake.lock().unwrap();
    let mut resp = ReportResponse::default();
    for o in r.outcomes {
        resp.acked.push(o.id.clone());
        f.outcomes.push(o);
    }
    if !f.handed {
        f.handed = true;
        resp.commands = vec![second()];
    }
    Json(resp)
}

/// Answers at once when the promote is in its wait: the withdrawal (or
/// epoch 9); otherwise nothing after a while.
async fn waiting_poll(State(fake): State<WaitShared>) -> Json<ReportResponse> {
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        {
            let mut f = fake.lock().unwrap();
            if !f.told && f.mark.exists() {
                f.told = true;
                let mut resp = ReportResponse::default();
                if f.epoch {
                    resp.epochs.insert("web".into(), 9);
                } else {
                    resp.withdrawn = vec![Withdrawn {
                        id: second().id,
                        why: "runbook 3 ended: rolled back".into(),
                    }];
                }
                return Json(resp);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Json(ReportResponse::default())
}

/// The stand-in push, killed however the test ends.
struct StandIn(std::process::Child);

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the agent (site a, rsync replication) against the fake until the
/// promote has an outcome; returns it and the hook log.
async fn promote_that_waits(epoch: bool) -> (CommandOutcome, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::Builder::new()
        .prefix("warden-agent-test-")
        .tempdir()
        .unwrap();
    let data = tmp.path().join("a-data");
    std::fs::create_dir_all(&data).unwrap();
    let fake: WaitShared = Arc::new(Mutex::new(Waiting {
        epoch,
        mark: tmp.path().join("asked-to-end"),
        handed: false,
        told: false,
        outcomes: Vec::new(),
    }));
    let app = Router::new()
        .route("/v1/reports", post(waiting_report))
        .route("/v1/agents/commands", get(waiting_poll))
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let hook_log = tmp.path().join("hook-log");
    let hook = format!("echo \"$WARDEN_EPOCH\" >> {}", hook_log.display());
    let password = tmp.path().join("rsync-password");
    std::fs::write(&password, "unused-rsync-password\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let site = |path: &std::path::Path| {
        format!(
            "path = \"{}\"\nmodule = \"127.0.0.1:9/drdata\"\nuser = \"drsync\"\n\
             password = {{ file = \"{}\" }}\n",
            path.display(),
            password.display()
        )
    };
    let replication = format!(
        "[groups.web.replication]\nplan = \"rsync\"\n\n\
         [groups.web.replication.sites.a]\n{}\n\
         [groups.web.replication.sites.b]\n{}",
        site(&data),
        site(&tmp.path().join("b-data"))
    );
    let settings =
        lone_site::settings_with(&format!("http://{addr}"), tmp.path(), &hook, &replication);
    // A push still receiving into the site, as the promote finds one in
    // /proc: a process named rsync, run as `rsync --server`, in the
    // group's directory. It ignores SIGTERM (noting it), so the promote
    // waits the grace out before it kills it.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/sh", bin.join("rsync")).unwrap();
    let script = format!(
        "trap 'echo term >> {}' TERM; while :; do sleep 0.05; done",
        fake.lock().unwrap().mark.display()
    );
    // The copy was open for writing a moment ago: a child another test
    // thread forked meanwhile may still hold it open (exec then says "text
    // file busy", ETXTBSY) until that child execs — tried again a moment later.
    let spawn = || {
        std::process::Command::new(bin.join("rsync"))
            .args(["-c", &script, "rsync", "--server", "."])
            .current_dir(&data)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    let mut spawned = spawn();
    for _ in 0..100 {
        match &spawned {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(20));
                spawned = spawn();
            }
            _ => break,
        }
    }
    let _push = StandIn(spawned.unwrap());
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));

    let deadline = Instant::now() + Duration::from_secs(30);
    let outcome = loop {
        if let Some(o) = fake.lock().unwrap().outcomes.first().cloned() {
            break o;
        }
        assert!(
            Instant::now() < deadline,
            "the promote's outcome within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
    assert!(fake.lock().unwrap().told, "the scenario played out");
    let log = std::fs::read_to_string(&hook_log).unwrap_or_default();
    (outcome, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_withdrawn_while_it_waited_for_the_handover_runs_no_hook() {
    let (outcome, log) = promote_that_waits(false).await;
    assert_eq!(log, "", "the withdrawn promote's hooks ran: {outcome:?}");
    assert!(
        !outcome.ok
            && outcome
                .detail
                .contains("withdrawn by the orchestrator before its hooks ran")
            && outcome.detail.contains("runbook 3 ended"),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_overtaken_by_a_newer_epoch_while_it_waited_runs_no_hook() {
    let (outcome, log) = promote_that_waits(true).await;
    assert_eq!(log, "", "the outdated promote's hooks ran: {outcome:?}");
    assert!(
        !outcome.ok && outcome.detail.contains("older than epoch 9"),
        "{outcome:?}"
    );
}
