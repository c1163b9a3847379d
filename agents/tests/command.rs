//! The `command` replication plan with real shell commands: the phases and
//! their environment, lag from the lag command, errors with the stderr tail,
//! and a timeout or cancel that kills the command with its children.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    CommandLine, CommandPlan, CommandSettings, DivergentPolicy, Replicator, Resyncer,
};
use warden_agents::AgentError;

fn sh(s: &str) -> CommandLine {
    CommandLine::Shell(s.to_string())
}

/// Every phase appends `PHASE GROUP PEER [extra]` to `log`.
fn logging_settings(log: &Path) -> CommandSettings {
    let line = |extra: &str| {
        sh(&format!(
            "echo \"$WARDEN_PHASE $WARDEN_GROUP $WARDEN_PEER{extra}\" >> '{}'",
            log.display()
        ))
    };
    let mut s = CommandSettings::new(
        "db",
        "site-b",
        line(""),
        line(""),
        line(" $WARDEN_DIVERGENT_POLICY"),
        line(" $(echo \"$WARDEN_EXCEPT\" | tr '\\n' ,)"),
    );
    s.timeout = Duration::from_secs(10);
    s
}

fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A lag the plan cannot tell is no lag of 0: without a lag command, and
/// once the lag command fails or prints no number (not its last value,
/// frozen), the lag is unknown and the plan says why — an unknown lag
/// holds an automatic failover for approval, a 0 let it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lag_the_plan_cannot_tell_is_unknown_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let plan = CommandPlan::new(logging_settings(&log));
    let shutdown = CancellationToken::new();
    plan.start(shutdown.clone()).await.unwrap();
    assert!(!plan.lag_known(), "no lag command: unknown");
    plan.stop().await;

    let flag = dir.path().join("broken");
    let mut s = logging_settings(&log);
    s.lag = Some(CommandLine::Argv(vec![
        "sh".into(),
        "-c".into(),
        format!(
            "if [ -e {} ]; then echo oops; else echo 250; fi",
            flag.display()
        ),
    ]));
    s.lag_interval = Duration::from_millis(50);
    let plan = CommandPlan::new(s);
    plan.start(shutdown.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !plan.lag_known() {
        assert!(
            Instant::now() < deadline,
            "the lag command's 250 never taken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(plan.lag(), Duration::from_millis(250));
    std::fs::write(&flag, "").unwrap();
    while plan.lag_known() {
        assert!(
            Instant::now() < deadline,
            "a lag command printing no number left the lag known"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let why = plan.failing().unwrap_or_default();
    assert!(why.contains("\"oops\"") && why.contains("unknown"), "{why}");
    plan.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_each_phase_with_its_environment_and_reports_lag() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut s = logging_settings(&log);
    s.lag = Some(CommandLine::Argv(vec![
        "sh".into(),
        "-c".into(),
        "echo 1234".into(),
    ]));
    s.lag_interval = Duration::from_millis(50);
    let plan = CommandPlan::new(s);
    assert!(!plan.lag_known(), "no lag before the lag command answered");

    let shutdown = CancellationToken::new();
    plan.start(shutdown.clone()).await.unwrap();
    plan.start(shutdown.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !plan.lag_known() || plan.lag() != Duration::from_millis(1234) {
        assert!(Instant::now() < deadline, "lag stays {:?}", plan.lag());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Replicator::resync(&plan, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(Replicator::verify(&plan).await.unwrap(), vec![]);
    plan.stop().await;
    assert!(!plan.lag_known(), "stopped: no lag known");

    let report = plan
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(report.divergent.is_empty());
    let v = Resyncer::verify(&plan, &["a.txt".into(), "b/c".into()])
        .await
        .unwrap();
    assert_eq!((v.differences.len(), v.excepted), (0, 2));

    assert_eq!(
        log_lines(&log),
        vec![
            "start db site-b",
            "resync db site-b ",
            "verify db site-b ,",
            "stop db site-b",
            "resync db site-b quarantine",
            "verify db site-b a.txt,b/c,",
        ],
        "start runs once even when called twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_is_an_error_with_its_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = logging_settings(&dir.path().join("log"));
    s.resync = sh("echo noise-$((1+1)); echo 'replica lsn mismatch: 0/16B3740' >&2; exit 3");
    s.verify = CommandLine::Argv(vec!["false".into()]);
    s.start = CommandLine::Argv(vec!["/nonexistent/warden-start".into()]);
    let plan = CommandPlan::new(s);

    let err = plan
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, AgentError::ReplicationCommand { .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("resync") && msg.contains("exit 3") && msg.contains("lsn mismatch"),
        "{msg}"
    );
    assert!(!msg.contains("noise-2"), "stdout is not quoted: {msg}");

    let err = Resyncer::verify(&plan, &[]).await.unwrap_err();
    assert!(err.to_string().contains("verify") && err.to_string().contains("exit 1"));
    assert!(Replicator::verify(&plan).await.is_err());

    let err = plan.start(CancellationToken::new()).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot start") && err.to_string().contains("warden-start"),
        "{err}"
    );
}

/// Whether `pid` is gone (or a zombie waiting for init).
fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

async fn wait_dead(pid: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dead(pid) {
        assert!(Instant::now() < deadline, "process {pid} survived the kill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn read_pid(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(p) = std::fs::read_to_string(path) {
            if p.ends_with('\n') {
                return p.trim().to_string();
            }
        }
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_or_cancel_kills_the_command_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut s = logging_settings(&dir.path().join("log"));
    s.resync = sh(&format!(
        "echo started >&2; sleep 30 & echo $! > '{}'; wait",
        pidfile.display()
    ));
    s.timeout = Duration::from_millis(500);
    let plan = CommandPlan::new(s.clone());

    let t0 = Instant::now();
    let err = Replicator::resync(&plan, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let msg = err.to_string();
    assert!(
        msg.contains("timed out after 500ms") && msg.contains("started"),
        "{msg}"
    );
    wait_dead(&read_pid(&pidfile).await).await;

    std::fs::remove_file(&pidfile).unwrap();
    s.timeout = Duration::from_secs(60);
    let plan = CommandPlan::new(s);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let p = pidfile.clone();
    tokio::spawn(async move {
        let _ = read_pid(&p).await;
        c.cancel();
    });
    let t0 = Instant::now();
    let err = plan
        .pass(DivergentPolicy::Keep, cancel, None)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::ReplicationCancelled), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    wait_dead(&read_pid(&pidfile).await).await;
}

/// What a plan's command moves out of its process group (`setsid`, as a
/// script that starts a helper daemon does) is killed with it when the
/// run is cut off: before, the group kill missed it and it ran on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_command_is_killed_with_what_left_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut s = logging_settings(&dir.path().join("log"));
    s.resync = sh(&format!(
        "setsid sh -c 'echo $$ > \"{0}.tmp\"; mv \"{0}.tmp\" \"{0}\"; exec sleep 30' & sleep 30",
        pidfile.display()
    ));
    s.timeout = Duration::from_millis(500);
    let plan = CommandPlan::new(s);
    let err = Replicator::resync(&plan, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out after 500ms"), "{err}");
    let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
    let pid = pid.trim();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dead(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let survived = !dead(pid);
    if survived {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status();
    }
    assert!(
        !pid.is_empty() && !survived,
        "the process the command moved out of its group ({pid:?}) outlived it"
    );
}
