//! A demote on a full disk: the site's state directory takes no write
//! (the disk filled up — often the very trouble the site is failed away
//! for), the agent restarts (it starts with the state it reads), and the
//! orchestrator demotes the site at a new epoch. The demote
//! is the safe direction: its hooks run although the new epoch cannot be
//! written first, and its outcome says that the new state was not
//! written — and counts (the site is fenced). Asked again once the disk takes writes (the orchestrator
//! demotes a site that still reports itself active), the demote is
//! recorded with its epoch. Against a fake orchestrator on 127.0.0.1:0;
//! the agent runs in this process, so a directory in place of its next
//! temporary state file (`authority.json.tmp.PID`) makes every write fail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use tokio_util::sync::CancellationToken;
use warden_agents::run;
use warden_agents::wire::{AgentReport, Command, CommandKind, CommandOutcome, ReportResponse};

#[path = "support/fake_orchestrator.rs"]
#[allow(dead_code)] // `standby_of_web`: this site starts without an authority.
mod fake_orchestrator;

#[path = "support/lone_site.rs"]
mod lone_site;

/// What the fake saw, and the demote it hands out (none yet).
#[derive(Default)]
struct Fake {
    reports: u32,
    handing: Option<Command>,
    outcomes: Vec<CommandOutcome>,
}

type Shared = Arc<Mutex<Fake>>;

fn demote(id_suffix: &str) -> Command {
    let mut c = Command::new("web", 3, CommandKind::Demote).to_site("a");
    c.id.push_str(id_suffix);
    c
}

async fn report(State(fake): State<Shared>, Json(r): Json<AgentReport>) -> Json<ReportResponse> {
    let mut f = fake.lock().unwrap();
    f.reports += 1;
    let mut resp = ReportResponse::default();
    for o in r.outcomes {
        resp.acked.push(o.id.clone());
        if f.handing.as_ref().is_some_and(|c| c.id == o.id) {
            f.handing = None;
        }
        if !f.outcomes.iter().any(|seen| seen.id == o.id) {
            f.outcomes.push(o);
        }
    }
    resp.commands.extend(f.handing.clone());
    Json(resp)
}

async fn poll() -> Json<ReportResponse> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    Json(ReportResponse::default())
}

/// Waits (10 s at most) until `cond` holds on the fake.
async fn eventually(fake: &Shared, what: &str, cond: impl Fn(&Fake) -> bool) {
    fake_orchestrator::until(fake, what, Duration::from_secs(10), cond).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demote_runs_its_hooks_when_the_state_dir_takes_no_write() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake: Shared = Arc::default();
    let base = fake_orchestrator::serve(post(report), get(poll), fake.clone()).await;

    let tmp = fake_orchestrator::temp_dir();
    let hook_log = tmp.path().join("hook-log");
    let hook = format!(
        "echo \"$WARDEN_ACTION $WARDEN_EPOCH\" >> {}",
        hook_log.display()
    );
    let mut settings = lone_site::settings(&base, tmp.path(), &hook);
    settings.demote = settings.promote.clone();
    let state = settings.state_dir.clone();
    let first_run = CancellationToken::new();
    let agent = tokio::spawn(run(settings.clone(), first_run.clone()));

    // The agent has written its state at its start; from now on the disk
    // takes nothing, and the agent restarts (its unit restarted, the host
    // rebooted): it starts with the state it reads.
    eventually(&fake, "a first report", |f| f.reports > 0).await;
    first_run.cancel();
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .expect("the first run stops")
        .unwrap()
        .unwrap();
    let blocker = state.join(format!("authority.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&blocker).unwrap();
    let seen = fake.lock().unwrap().reports;
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));
    eventually(&fake, "a report of the restarted agent", |f| {
        f.reports > seen
    })
    .await;
    assert!(!agent.is_finished(), "{:?}", agent.await);
    fake.lock().unwrap().handing = Some(demote(""));
    eventually(&fake, "the demote's outcome", |f| !f.outcomes.is_empty()).await;
    let first = fake.lock().unwrap().outcomes[0].clone();
    let log = std::fs::read_to_string(&hook_log).unwrap_or_default();
    assert_eq!(
        log, "demote 3\n",
        "the demote's hooks ran on the full disk: {first:?}"
    );
    // Counted all the same: the site is fenced (its hooks ran), and a
    // failover under a required fence goes on.
    assert!(
        first.ok && first.detail.contains("could not be written"),
        "the outcome says the new state is not on disk: {first:?}"
    );
    let on_disk = warden_agents::authority::read(&state, "a").unwrap();
    assert_eq!(on_disk["web"].epoch, 0, "the file is as it was");

    // The disk takes writes again; the orchestrator asks once more.
    std::fs::remove_dir(&blocker).unwrap();
    fake.lock().unwrap().handing = Some(demote(":again-1"));
    eventually(&fake, "the second demote's outcome", |f| {
        f.outcomes.len() > 1
    })
    .await;
    let second = fake.lock().unwrap().outcomes[1].clone();
    assert!(second.ok, "{second:?}");
    let on_disk = warden_agents::authority::read(&state, "a").unwrap();
    let web = &on_disk["web"];
    assert_eq!(
        (web.epoch, web.role.as_str(), web.demoted_at),
        (3, "standby", Some(3)),
        "the demote recorded with its epoch: {web:?}"
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
}
