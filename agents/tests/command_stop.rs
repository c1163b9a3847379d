//! The `command` plan's `stop` runs when this agent holds no replicator of
//! the group: after a restart (what the old process's `start` launched — a
//! daemon, a unit started through `systemctl` — still pushes), and after a
//! demote cut a start short. Before, a site whose role was `idle` ran no
//! `stop`: the demote said "no replication was running" and the daemon
//! went on pushing into the newly promoted peer. Real commands (`sh`),
//! real processes.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_agents::replication::Replication;
use warden_agents::wire::{Command, CommandKind};

#[path = "support/web.rs"]
mod web;

const TOKEN_ENV: &str = "WARDEN_COMMAND_STOP_TEST_TOKEN";

/// Site a's replication of group web: `start` launches a pusher outside
/// its process group and without the run mark (as `systemctl start`
/// would), its pid in `dir/pid`; `stop` ends it and says so in `dir/log`.
fn replication(dir: &Path, start_extra: &str) -> Replication {
    std::env::set_var(TOKEN_ENV, "command-stop-test-token");
    let (pid, log) = (dir.join("pid"), dir.join("log"));
    let start = format!(
        "env -u WARDEN_RUN setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! > '{}'; {start_extra}",
        pid.display()
    );
    let stop = format!(
        "kill $(cat '{}') 2>/dev/null; echo stop $WARDEN_SITE $WARDEN_PEER >> '{}'",
        pid.display(),
        log.display()
    );
    let replication = format!(
        r#"plan = "command"
start = ["/bin/sh", "-c", {start:?}]
stop = ["/bin/sh", "-c", {stop:?}]
resync = ["/bin/true"]"#
    );
    let text = web::config_text(TOKEN_ENV, &format!("{}/state", dir.display()), &replication);
    let config = warden_config::parse(&text, Path::new("command-stop-test.conf")).expect("config");
    Replication::from_config(&config, "a").expect("group web replicates at a")
}

fn start_cmd() -> Command {
    let mut c = Command::new("web", 1, CommandKind::StartReplication).to_site("a");
    c.peer = Some("b".into());
    c.id = "web:1:start_replication".into();
    c
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false)
}

fn kill(pid: &str) {
    let _ = std::process::Command::new("kill").arg(pid).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agents_demote_runs_the_plans_stop() {
    let dir = tempfile::tempdir().unwrap();
    let before = replication(dir.path(), "");
    let started = before
        .run_checked(&start_cmd(), &CancellationToken::new(), &|_| Ok(()))
        .await;
    assert!(started.ok, "{started:?}");
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    let pid = pid.trim().to_string();
    assert!(alive(&pid), "the pusher {pid} runs");
    // The agent dies (nothing of it stops anything) and starts again.
    drop(before);
    let after = replication(dir.path(), "");
    let said = after.demoted("web").await;
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    let stopped = !alive(&pid);
    if !stopped {
        kill(&pid);
    }
    assert_eq!(
        log.trim(),
        "stop a b",
        "the plan's stop did not run: {said:?}"
    );
    assert!(stopped, "the pusher {pid} still runs after the demote");
    let said = said.expect("the demote says what it stopped");
    assert!(said.contains("its stop command run toward b"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_cut_short_by_a_demote_is_stopped_by_the_plans_stop() {
    let dir = tempfile::tempdir().unwrap();
    let r = std::sync::Arc::new(replication(dir.path(), "sleep 30"));
    let run = {
        let r = r.clone();
        tokio::spawn(async move {
            r.run_checked(&start_cmd(), &CancellationToken::new(), &|_| Ok(()))
                .await
        })
    };
    let pid_file = dir.path().join("pid");
    let mut pid = String::new();
    for _ in 0..100 {
        pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if !pid.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = pid.trim().to_string();
    assert!(!pid.is_empty() && alive(&pid), "the pusher runs");
    let said = r.demoted("web").await;
    let started = run.await.unwrap();
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    let stopped = !alive(&pid);
    if !stopped {
        kill(&pid);
    }
    assert!(!started.ok, "the start was cut short: {started:?}");
    assert_eq!(
        log.trim(),
        "stop a b",
        "the plan's stop did not run: {said:?}"
    );
    assert!(stopped, "the pusher {pid} still runs after the demote");
}
