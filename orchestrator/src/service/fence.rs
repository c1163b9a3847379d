//! The group's fence command, run by the orchestrator at a runbook's fence
//! step: told in its environment which site to fence ([`FenceOrder`]),
//! bounded by the step's timeout, and killed with every process it started
//! (its own process group) when it overruns. It is judged by its exit, not
//! by its pipes: a background process it leaves holding stderr does not
//! make a fence that exited 0 look timed out. The run itself is the one
//! every command of warden's gets (`warden_checks::child`).

use std::path::Path;
use std::time::Duration;

use warden_checks::child;

use crate::runbook::FenceOrder;

/// How much of stderr (its end) is kept for the step's note.
const STDERR_KEEP: usize = 300;

/// Runs the fence command `argv` for `order`, its mark bound to `run_dir`
/// (found and ended by the next process should this one be killed while
/// it runs: `super::leftovers`).
pub(super) async fn run(
    argv: &[String],
    order: &FenceOrder<'_>,
    timeout: Duration,
    run_dir: &Path,
) -> Result<String, String> {
    let env = [
        ("WARDEN_GROUP", order.group.to_string()),
        ("WARDEN_EPOCH", order.epoch.to_string()),
        ("WARDEN_SITE", order.site.to_string()),
        ("WARDEN_TARGET", order.target.to_string()),
        ("WARDEN_ACTION", "fence".to_string()),
    ];
    let run = child::run(child::Command {
        argv,
        env: &env,
        stdin: None,
        timeout,
        output: child::Output::Stderr,
        started: None,
        mark: Some(super::leftovers::mark(super::leftovers::FENCE, run_dir)),
        keep_left: false,
    })
    .await;
    match run {
        Ok(f) if f.status.success() => Ok("exit 0".into()),
        Ok(f) => Err(format!("{}: {}", f.status, tail(&f.output))),
        Err(child::Failure::NotStarted { why, .. }) | Err(child::Failure::Wait(why)) => Err(why),
        Err(child::Failure::TimedOut { .. }) => Err(format!(
            "timed out after {:.1}s (killed with what it started)",
            timeout.as_secs_f64()
        )),
    }
}

/// The end of what it wrote, as much as a step's note takes.
fn tail(output: &str) -> &str {
    let mut start = output.len().saturating_sub(STDERR_KEEP);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    output[start..].trim()
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
        let r = run(&argv, &order(), Duration::from_secs(10), dir.path()).await;
        assert_eq!(r, Ok("exit 0".to_string()));
        assert!(t0.elapsed() < Duration::from_secs(5), "waited for the pipe");
        let told = std::fs::read_to_string(&env).unwrap();
        // and its run's mark, by which what it moves out of its process
        // group is found should it overrun (`warden_config::run_mark`),
        // bound to the orchestrator's run directory: should the
        // orchestrator be killed while it runs, its next process ends it
        // (`super::leftovers`)
        let (marks, told): (Vec<&str>, Vec<&str>) =
            told.lines().partition(|l| l.starts_with("WARDEN_RUN="));
        assert_eq!(
            told,
            [
                "WARDEN_ACTION=fence",
                "WARDEN_EPOCH=7",
                "WARDEN_GROUP=web",
                "WARDEN_SITE=a",
                "WARDEN_TARGET=b"
            ]
        );
        assert_eq!(marks.len(), 1, "{marks:?}");
        let bound = format!("@{}", std::path::absolute(dir.path()).unwrap().display());
        assert!(
            marks[0].starts_with("WARDEN_RUN=fence-") && marks[0].ends_with(&bound),
            "{marks:?} not bound to {bound}"
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
        let r = run(&argv, &order(), Duration::from_millis(500), dir.path()).await;
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
        let r = run(&argv, &order(), Duration::from_secs(10), Path::new("/d")).await;
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
        let r = run(&argv, &order(), Duration::from_secs(20), Path::new("/d")).await;
        assert_eq!(r, Ok("exit 0".to_string()));
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "i=0; while [ $i -lt 3000 ]; do echo \"polling the PDU, attempt $i\" >&2; i=$((i+1)); done; \
             echo 'PDU busy' >&2; exit 1"
                .to_string(),
        ];
        let r = run(&argv, &order(), Duration::from_secs(20), Path::new("/d")).await;
        assert!(
            r.as_ref()
                .is_err_and(|e| e.starts_with("exit status: 1:") && e.ends_with("PDU busy")),
            "{r:?}"
        );
    }
}
