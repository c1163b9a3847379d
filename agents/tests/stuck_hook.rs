//! A hook of the agent's previous process that SIGKILL did not end (a
//! process stuck in the kernel) holds its group's promotes and demotes
//! for as long as it lives: a promote's hooks must not run beside the old
//! demote's. A fake orchestrator on 127.0.0.1:0 hands out a promote once
//! the agent reports; the leftover is a `sleep` in a process group of its
//! own, recorded in `state_dir/running-hooks/` as the agent's start leaves
//! a group it could not end (written once the agent runs: its start would
//! end a killable one).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use tokio_util::sync::CancellationToken;
use warden_agents::run;
use warden_agents::wire::{AgentReport, Command, CommandKind, CommandOutcome, ReportResponse};

#[path = "support/fake_orchestrator.rs"]
mod fake_orchestrator;

#[path = "support/lone_site.rs"]
#[allow(dead_code)]
mod lone_site;

#[derive(Default)]
struct Fake {
    reports: usize,
    /// Commands to hand out with the next answer.
    next: Vec<Command>,
    outcomes: Vec<CommandOutcome>,
}

type Shared = Arc<Mutex<Fake>>;

async fn report(State(fake): State<Shared>, Json(r): Json<AgentReport>) -> Json<ReportResponse> {
    let mut f = fake.lock().unwrap();
    f.reports += 1;
    let mut resp = ReportResponse::default();
    for o in r.outcomes {
        resp.acked.push(o.id.clone());
        if !f.outcomes.iter().any(|seen| seen.id == o.id) {
            f.outcomes.push(o);
        }
    }
    resp.commands = std::mem::take(&mut f.next);
    Json(resp)
}

async fn poll() -> Json<ReportResponse> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    Json(ReportResponse::default())
}

fn promote(id: &str) -> Command {
    let mut c = Command::new("web", 2, CommandKind::Promote).to_site("a");
    c.id = id.into();
    c
}

async fn until(fake: &Shared, what: &str, cond: impl Fn(&Fake) -> bool) {
    fake_orchestrator::until(fake, what, Duration::from_secs(30), cond).await
}

/// A promote while the leftover lives is refused, its hook not run, with
/// what still runs and how to end it; the next promote once it is gone
/// runs. Before, the promote's hook ran beside the leftover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_hook_sigkill_did_not_end_holds_its_groups_promote() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = fake_orchestrator::temp_dir();
    let fake: Shared = Arc::default();
    let base = fake_orchestrator::serve(post(report), get(poll), fake.clone()).await;

    let ran = tmp.path().join("promote-ran");
    let settings = lone_site::settings(
        &base,
        tmp.path(),
        &format!("echo ran >> '{}'", ran.display()),
    );
    fake_orchestrator::standby_of_web(tmp.path());
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));
    until(&fake, "a first report", |f| f.reports > 0).await;

    // The leftover: as the agent's start leaves a group SIGKILL did not end.
    let mut stuck = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let pgid = stuck.id();
    let stat = std::fs::read_to_string(format!("/proc/{pgid}/stat")).unwrap();
    let start: u64 = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let dir = tmp.path().join("state/running-hooks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("old.json"),
        serde_json::json!({
            "pid": pgid, "start": start, "boot": boot.trim(), "mark": "old-run",
            "agent": 1, "group": "web", "command": "web:1:demote", "hook": "old",
        })
        .to_string(),
    )
    .unwrap();

    fake.lock().unwrap().next = vec![promote("web:2:promote")];
    until(&fake, "the promote's outcome", |f| {
        f.outcomes.iter().any(|o| o.id == "web:2:promote")
    })
    .await;
    let ran_beside = std::fs::read_to_string(&ran).unwrap_or_default();
    let _ = stuck.kill();
    let _ = stuck.wait();
    fake.lock().unwrap().next = vec![promote("web:2:promote:2")];
    until(&fake, "the second promote's outcome", |f| {
        f.outcomes.iter().any(|o| o.id == "web:2:promote:2")
    })
    .await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;

    let f = fake.lock().unwrap();
    let first = f.outcomes.iter().find(|o| o.id == "web:2:promote").unwrap();
    assert!(
        ran_beside.is_empty(),
        "the promote's hook ran beside the previous process's demote hook: {first:?}"
    );
    assert!(
        !first.ok
            && first.detail.starts_with(&format!(
                "not run: demote hook \"old\" of web:1:demote, left running by the agent's \
                 previous process (process group {pgid}), still runs after SIGKILL"
            ))
            && first
                .detail
                .contains(&format!("end it (kill -KILL -- -{pgid})")),
        "{first:?}"
    );
    let second = f
        .outcomes
        .iter()
        .find(|o| o.id == "web:2:promote:2")
        .unwrap();
    assert!(second.ok, "{second:?}");
    assert_eq!(std::fs::read_to_string(&ran).unwrap_or_default(), "ran\n");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "the leftover's record stays"
    );
}
