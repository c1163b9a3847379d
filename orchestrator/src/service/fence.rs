//! The group's fence command, run by the orchestrator at a runbook's fence
//! step: told in its environment which site to fence ([`FenceOrder`]),
//! bounded by the step's timeout, and killed with every process it started
//! (its own process group) when it overruns. It is judged by its exit, not
//! by its pipes: a background process it leaves holding stderr does not
//! make a fence that exited 0 look timed out. [`run_with`] is the same run
//! for any command of the orchestrator's (the notify commands too).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_util::task::AbortOnDropHandle;
use warden_config::child::GroupKill;

use crate::runbook::FenceOrder;

/// How long stderr is read after the command exited.
const PIPE_GRACE: Duration = Duration::from_millis(500);
/// How much of stderr (its end) is kept for the step's note.
const STDERR_KEEP: usize = 300;

pub(super) async fn run(
    argv: &[String],
    order: &FenceOrder<'_>,
    timeout: Duration,
) -> Result<String, String> {
    let env = [
        ("WARDEN_GROUP", order.group.to_string()),
        ("WARDEN_EPOCH", order.epoch.to_string()),
        ("WARDEN_SITE", order.site.to_string()),
        ("WARDEN_TARGET", order.target.to_string()),
        ("WARDEN_ACTION", "fence".to_string()),
    ];
    match run_with(argv, &env, None, timeout).await {
        Err(Run::NotStarted(e, _)) => Err(e),
        Err(Run::Failed(e)) => Err(e),
        Ok(s) => Ok(s),
    }
}

/// How a run of [`run_with`] went wrong.
#[derive(Debug)]
pub(super) enum Run {
    /// The program could not be started; true when that may pass (busy,
    /// out of memory or processes), false when it will not (missing, not
    /// executable, a bad argument).
    NotStarted(String, bool),
    /// It ran and failed: its exit and the end of its stderr, or a timeout.
    Failed(String),
}

/// Run `argv` with a clean environment plus `env`, `stdin` written to it
/// (then closed; none: /dev/null), bounded by `timeout` (killed with its
/// process group). Ok on exit 0.
pub(super) async fn run_with(
    argv: &[String],
    env: &[(&str, String)],
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<String, Run> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(Run::NotStarted("empty command".into(), false));
    };
    let spawned = tokio::process::Command::new(prog)
        .args(args)
        .env_clear()
        .envs(warden_config::child::clean_env())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            use std::io::ErrorKind::{
                ArgumentListTooLong, InvalidInput, NotFound, PermissionDenied,
            };
            // ENOEXEC (not a program this system runs) has no kind of its own
            let lasting = matches!(
                e.kind(),
                NotFound | PermissionDenied | InvalidInput | ArgumentListTooLong
            ) || e.raw_os_error() == Some(8);
            return Err(Run::NotStarted(
                format!("cannot start {prog}: {e}"),
                !lasting,
            ));
        }
    };
    // What it is given, written while it runs (a command that does not read
    // it all gets a closed pipe, not a stuck orchestrator).
    let _writer = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => Some(AbortOnDropHandle::new(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(&bytes).await;
            let _ = pipe.shutdown().await;
        }))),
        _ => None,
    };
    // armed until it exits: an overrun (or this step dropped) kills the group
    let mut group = GroupKill::new(child.id());
    // stderr read to its end (a command never dies of a closed pipe), the
    // last STDERR_KEEP bytes kept where the step can take them at any time
    let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let reader = child.stderr.take().map(|mut pipe| {
        let tail = tail.clone();
        AbortOnDropHandle::new(tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.extend_from_slice(&buf[..n]);
                let excess = t.len().saturating_sub(STDERR_KEEP);
                t.drain(..excess);
            }
        }))
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) => {
            group.disarm();
            s
        }
        Ok(Err(e)) => {
            group.disarm();
            return Err(Run::Failed(format!("cannot wait for {prog}: {e}")));
        }
        Err(_) => {
            group.kill_now();
            let _ = child.kill().await;
            return Err(Run::Failed(format!(
                "timed out after {:.1}s (killed with what it started)",
                timeout.as_secs_f64()
            )));
        }
    };
    if status.success() {
        return Ok("exit 0".into());
    }
    // what it wrote; a process it left holding stderr does not hold this up
    if let Some(r) = reader {
        let _ = tokio::time::timeout(PIPE_GRACE, r).await;
    }
    let said = tail.lock().map(|t| t.clone()).unwrap_or_default();
    let said = warden_config::child::scrub(&String::from_utf8_lossy(&said));
    Err(Run::Failed(format!("{status}: {}", said.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `pid` is gone (or a zombie waiting to be reaped).
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    fn order() -> FenceOrder<'static> {
        FenceOrder {
            group: "web",
            epoch: 7,
            site: "a",
            target: "b",
        }
    }

    #[tokio::test]
    async fn told_which_site_and_judged_by_its_exit_not_its_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        let pid = dir.path().join("pid");
        // records what it was told, and leaves a process holding stderr
        let script = format!(
            "env | grep ^WARDEN_ | sort > {}; sleep 30 & echo $! > {}; exit 0",
            env.display(),
            pid.display()
        );
        let argv = vec!["/bin/sh".to_string(), "-c".to_string(), script];
        let t0 = std::time::Instant::now();
        let r = run(&argv, &order(), Duration::from_secs(10)).await;
        assert_eq!(r, Ok("exit 0".to_string()));
        assert!(t0.elapsed() < Duration::from_secs(5), "waited for the pipe");
        let told = std::fs::read_to_string(&env).unwrap();
        assert_eq!(
            told,
            "WARDEN_ACTION=fence\nWARDEN_EPOCH=7\nWARDEN_GROUP=web\nWARDEN_SITE=a\nWARDEN_TARGET=b\n"
        );
        let left = std::fs::read_to_string(&pid).unwrap();
        let _ = std::process::Command::new("kill").arg(left.trim()).status();
    }

    #[tokio::test]
    async fn an_overrun_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; sleep 30", pid.display());
        let argv = vec!["/bin/sh".to_string(), "-c".to_string(), script];
        let r = run(&argv, &order(), Duration::from_millis(500)).await;
        assert!(r.as_ref().is_err_and(|e| e.contains("timed out")), "{r:?}");
        let left = std::fs::read_to_string(&pid).unwrap();
        let left = left.trim();
        for _ in 0..50 {
            if gone(left) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the fence command's background process {left} outlived it");
    }

    #[tokio::test]
    async fn a_failure_says_what_it_wrote() {
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "echo \"PDU refused: rack $WARDEN_SITE locked\" >&2; exit 3".to_string(),
        ];
        let r = run(&argv, &order(), Duration::from_secs(10)).await;
        assert_eq!(
            r,
            Err("exit status: 3: PDU refused: rack a locked".to_string())
        );
    }

    /// A chatty command (`set -x`, `curl -v`) is read to the end: it does
    /// not die of a closed pipe, and its last words are what is said.
    #[tokio::test]
    async fn a_verbose_fence_is_read_to_its_end() {
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "i=0; while [ $i -lt 3000 ]; do echo \"polling the PDU, attempt $i of 3000\" >&2; i=$((i+1)); done; \
             echo 'rack powered off' >&2; exit 0"
                .to_string(),
        ];
        let r = run(&argv, &order(), Duration::from_secs(20)).await;
        assert_eq!(r, Ok("exit 0".to_string()));
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "i=0; while [ $i -lt 3000 ]; do echo \"polling the PDU, attempt $i\" >&2; i=$((i+1)); done; \
             echo 'PDU busy' >&2; exit 1"
                .to_string(),
        ];
        let r = run(&argv, &order(), Duration::from_secs(20)).await;
        assert!(
            r.as_ref()
                .is_err_and(|e| e.starts_with("exit status: 1:") && e.ends_with("PDU busy")),
            "{r:?}"
        );
    }
}
