//! Promote and demote hooks: run a site's [`HookSpec`] list in order and turn
//! it into one [`CommandOutcome`].
//!
//! Each hook is an argv run without a shell, with stdin closed, its own
//! timeout (the child is killed when it runs over), a clean environment
//! (`warden_config::child::clean_env`: PATH, HOME, LANG and the like, the
//! site's `pass_env`, never a secret) and four variables telling it what it
//! serves: `WARDEN_GROUP`, `WARDEN_EPOCH`, `WARDEN_SITE`, `WARDEN_ACTION`
//! (`promote` / `demote`). The list stops at the first hook that fails;
//! later hooks are not run. The last 2 KiB of the failing hook's stdout and
//! stderr, every loaded secret masked, go into the outcome's `detail`.
//!
//! A hook that ends keeps what it started (a service it launched), even
//! one still writing to the hook's stdout or stderr: those are drained,
//! never closed under it (`warden_checks::child`).
//!
//! Dropping a running [`run_hooks`] future kills the current hook
//! (`kill_on_drop`). Hooks must be idempotent: the orchestrator may ask again
//! after an agent restart. While a hook runs it is recorded in the
//! `state_dir` ([`HookContext::state_dir`]), so that the agent's next process
//! ends it should this one be killed outright ([`crate::hook_groups`]).

use std::path::PathBuf;
use std::time::Instant;

use tracing::{info, warn};
use warden_checks::child;
use warden_config::HookSpec;

use crate::checks::{describe_exit, elapsed_ms, timed_out};
use crate::wire::{CommandKind, CommandOutcome, HookOutcome};

/// Most bytes of a hook's combined stdout and stderr kept for the outcome
/// (the shared runner's, `warden_checks::child`).
pub use warden_checks::child::OUTPUT_TAIL_BYTES;

/// What the hooks are told about the command they serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    /// `WARDEN_GROUP`.
    pub group: String,
    /// `WARDEN_EPOCH`.
    pub epoch: u64,
    /// `WARDEN_SITE`: the site this agent runs for.
    pub site: String,
    /// `WARDEN_ACTION`: [`CommandKind::as_str`] of the command.
    pub action: CommandKind,
    /// The site's `state_dir`, where each running hook is recorded so that
    /// the agent's next process ends it should this one die meanwhile
    /// ([`crate::hook_groups`]); `None`: not recorded.
    pub state_dir: Option<PathBuf>,
}

/// One hook run: the outcome sent to the orchestrator, plus its output tail.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRun {
    pub outcome: HookOutcome,
    /// The last [`OUTPUT_TAIL_BYTES`] of stdout and stderr (interleaved as
    /// they arrived), lossily decoded and trimmed.
    pub output: String,
}

/// Run `hooks` in order for command `command_id`, stopping at the first failure.
///
/// An empty list succeeds ("no promote hooks configured").
pub async fn run_hooks(command_id: &str, hooks: &[HookSpec], cx: &HookContext) -> CommandOutcome {
    let action = cx.action.as_str();
    let mut outcomes = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let run = run_recorded(hook, cx, command_id).await;
        if run.outcome.ok {
            info!(command = %command_id, hook = %hook.name, elapsed_ms = run.outcome.elapsed_ms, "hook succeeded");
            outcomes.push(run.outcome);
            continue;
        }
        warn!(command = %command_id, hook = %hook.name, cause = %run.outcome.detail, output = %run.output, "hook failed");
        let mut detail = format!(
            "{action} hook {:?} failed: {}",
            hook.name, run.outcome.detail
        );
        if !run.output.is_empty() {
            detail.push_str("; output: ");
            detail.push_str(&run.output);
        }
        outcomes.push(run.outcome);
        return CommandOutcome {
            id: command_id.to_string(),
            ok: false,
            detail,
            hooks: outcomes,
            checks: None,
            journal: None,
            kept_in_place: None,
        };
    }
    let detail = match outcomes.len() {
        0 => format!("no {action} hooks configured"),
        1 => format!("1 {action} hook succeeded"),
        n => format!("{n} {action} hooks succeeded"),
    };
    CommandOutcome {
        id: command_id.to_string(),
        ok: true,
        detail,
        checks: None,
        journal: None,
        hooks: outcomes,
        kept_in_place: None,
    }
}

/// Run one hook with its timeout; never fails, the outcome says what happened.
pub async fn run_hook(hook: &HookSpec, cx: &HookContext) -> HookRun {
    run_recorded(hook, cx, "").await
}

/// [`run_hook`] for `command_id`, recorded in `cx.state_dir` while it runs.
async fn run_recorded(hook: &HookSpec, cx: &HookContext, command_id: &str) -> HookRun {
    let started = Instant::now();
    // Recorded before it starts (its mark), then with its process once it
    // runs; dropped with this run (the hook ended, or was killed with the
    // run): the record goes with it.
    // Bound to the state directory: what it leaves behind after it ended
    // in time is kept across a restart, what it leaves by the agent's
    // death is ended (`crate::leftovers`).
    let mark = match cx.state_dir.as_deref() {
        Some(dir) => warden_config::run_mark::RunMark::bound(dir),
        None => warden_config::run_mark::RunMark::new(),
    };
    let recorded = cx
        .state_dir
        .as_deref()
        .and_then(|dir| crate::hook_groups::intend(dir, &mark, &cx.group, command_id, &hook.name));
    let record = |pid: u32, _mark: &str| {
        if let Some(r) = &recorded {
            r.started(pid);
        }
    };
    let fail = |detail: String, started: Instant| HookRun {
        outcome: HookOutcome {
            name: hook.name.clone(),
            ok: false,
            exit_code: None,
            detail,
            elapsed_ms: elapsed_ms(started),
        },
        output: String::new(),
    };
    let env = [
        ("WARDEN_GROUP", cx.group.clone()),
        ("WARDEN_EPOCH", cx.epoch.to_string()),
        ("WARDEN_SITE", cx.site.clone()),
        ("WARDEN_ACTION", cx.action.as_str().to_string()),
    ];
    let run = child::run(child::Command {
        argv: hook.argv(),
        env: &env,
        stdin: None,
        timeout: hook.timeout,
        output: child::Output::Both,
        started: Some(&record),
        mark: Some(mark),
        keep_left: true,
    })
    .await;
    drop(recorded);
    let (ok, exit_code, detail, output) = match run {
        Ok(f) => (
            f.status.success(),
            f.status.code(),
            describe_exit(f.status),
            f.output,
        ),
        Err(child::Failure::NotStarted { why, .. }) => return fail(why, started),
        Err(child::Failure::Wait(why)) => (false, None, why, String::new()),
        Err(child::Failure::TimedOut { output }) => (false, None, timed_out(hook.timeout), output),
    };
    HookRun {
        outcome: HookOutcome {
            name: hook.name.clone(),
            ok,
            exit_code,
            detail,
            elapsed_ms: elapsed_ms(started),
        },
        output,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cx() -> HookContext {
        HookContext {
            group: "swift".into(),
            epoch: 7,
            site: "ca".into(),
            action: CommandKind::Promote,
            state_dir: None,
        }
    }

    fn hook(name: &str, argv: &[&str], timeout: &str) -> HookSpec {
        let argv: Vec<String> = argv.iter().map(|s| format!("{s:?}")).collect();
        toml::from_str(&format!(
            "name = {name:?}\ncommand = [{}]\ntimeout = {timeout:?}",
            argv.join(", ")
        ))
        .unwrap()
    }

    fn temp_file(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("warden-hooks-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[tokio::test]
    async fn a_timed_out_hook_is_killed_with_what_it_started() {
        let pid = temp_file("group-pid");
        let script = format!("sleep 30 & echo $! > {}; sleep 30", pid.display());
        let run = run_hook(&hook("slow", &["sh", "-c", &script], "500ms"), &cx()).await;
        assert!(
            !run.outcome.ok && run.outcome.detail.contains("timed out"),
            "{run:?}"
        );
        let left = std::fs::read_to_string(&pid).unwrap();
        let stat = format!("/proc/{}/stat", left.trim());
        // gone, or a zombie its new parent has not reaped yet
        let gone = || {
            std::fs::read_to_string(&stat)
                .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
                .unwrap_or(true)
        };
        for _ in 0..50 {
            if gone() {
                let _ = std::fs::remove_file(&pid);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the hook's background process {} outlived it", left.trim());
    }

    #[tokio::test]
    async fn a_hook_that_ends_keeps_what_it_started_in_the_background() {
        let pid = temp_file("bg-pid");
        let script = format!("sleep 30 > /dev/null 2>&1 & echo $! > {}", pid.display());
        let run = run_hook(&hook("starts", &["sh", "-c", &script], "5s"), &cx()).await;
        assert!(run.outcome.ok, "{run:?}");
        let left = std::fs::read_to_string(&pid).unwrap();
        let alive = std::path::Path::new(&format!("/proc/{}", left.trim())).exists();
        let _ = std::process::Command::new("kill").arg(left.trim()).status();
        let _ = std::fs::remove_file(&pid);
        assert!(
            alive,
            "a service a hook started was killed when the hook ended"
        );
    }

    /// A service a hook starts without sending its output elsewhere
    /// (`app &`, `nohup app &` under a pipe) writes to the hook's pipes
    /// for as long as it runs: it must not be killed by a closed pipe
    /// (SIGPIPE) once the hook has ended and its output was taken.
    #[tokio::test]
    async fn a_service_a_hook_started_may_write_to_its_pipes_after_the_hook_ended() {
        let marker = temp_file("still-writing");
        let pid = temp_file("writer-pid");
        let script = format!(
            "(sleep 1; echo still running; echo to stderr >&2; touch {}; sleep 30) & echo $! > {}; echo started",
            marker.display(),
            pid.display()
        );
        let run = run_hook(&hook("starts", &["sh", "-c", &script], "5s"), &cx()).await;
        assert!(run.outcome.ok, "{run:?}");
        assert!(run.output.contains("started"), "{run:?}");
        let mut wrote = false;
        for _ in 0..50 {
            if marker.exists() {
                wrote = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let left = std::fs::read_to_string(&pid).unwrap_or_default();
        let _ = std::process::Command::new("kill").arg(left.trim()).status();
        let _ = std::fs::remove_file(&pid);
        let _ = std::fs::remove_file(&marker);
        assert!(
            wrote,
            "the service the hook started died writing to its output after the hook ended"
        );
    }

    #[tokio::test]
    async fn runs_in_order_with_environment() {
        let log = temp_file("order");
        let script = format!(
            "echo \"$0 $WARDEN_ACTION $WARDEN_GROUP $WARDEN_EPOCH $WARDEN_SITE\" >> {}",
            log.display()
        );
        let hooks = [
            hook("first", &["sh", "-c", &script, "first"], "5s"),
            hook("second", &["sh", "-c", &script, "second"], "5s"),
        ];
        let out = run_hooks("swift:7:promote", &hooks, &cx()).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.id, "swift:7:promote");
        assert_eq!(out.detail, "2 promote hooks succeeded");
        assert_eq!(
            out.hooks
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>(),
            ["first", "second"]
        );
        assert!(out
            .hooks
            .iter()
            .all(|h| h.exit_code == Some(0) && h.detail == "exit 0"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text,
            "first promote swift 7 ca\nsecond promote swift 7 ca\n"
        );
        let _ = std::fs::remove_file(&log);
    }

    #[tokio::test]
    async fn stops_at_first_failure_with_output_tail() {
        let log = temp_file("stop");
        let hooks = [
            hook("ok", &["true"], "5s"),
            hook(
                "broken",
                &["sh", "-c", "echo to-stdout; echo 'disk full' >&2; exit 2"],
                "5s",
            ),
            hook(
                "never",
                &["sh", "-c", &format!("touch {}", log.display())],
                "5s",
            ),
        ];
        let out = run_hooks("g:1:demote", &hooks, &cx()).await;
        assert!(!out.ok);
        assert_eq!(out.hooks.len(), 2);
        assert!(out.hooks[0].ok);
        assert!(!out.hooks[1].ok);
        assert_eq!(out.hooks[1].exit_code, Some(2));
        assert_eq!(out.hooks[1].detail, "exit 2");
        assert!(
            out.detail
                .starts_with("promote hook \"broken\" failed: exit 2; output: "),
            "{}",
            out.detail
        );
        assert!(
            out.detail.contains("disk full") && out.detail.contains("to-stdout"),
            "{}",
            out.detail
        );
        assert!(!log.exists(), "a hook after the failure ran");
    }

    #[tokio::test]
    async fn timeout_kills_the_hook() {
        let hooks = [
            hook("slow", &["sleep", "10"], "200ms"),
            hook("after", &["true"], "5s"),
        ];
        let started = Instant::now();
        let out = run_hooks("g:1:promote", &hooks, &cx()).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(!out.ok);
        assert_eq!(out.hooks.len(), 1);
        assert_eq!(out.hooks[0].detail, "timed out after 200ms");
        assert_eq!(out.hooks[0].exit_code, None);
    }

    #[tokio::test]
    async fn missing_program_and_empty_list() {
        let out = run_hooks(
            "g:1:promote",
            &[hook("x", &["/nonexistent/warden-hook"], "1s")],
            &cx(),
        )
        .await;
        assert!(!out.ok);
        assert_eq!(
            out.hooks[0].detail,
            "cannot start: No such file or directory"
        );

        let out = run_hooks("g:1:promote", &[], &cx()).await;
        assert!(out.ok);
        assert_eq!(out.detail, "no promote hooks configured");
    }

    #[tokio::test]
    async fn output_tail_is_bounded() {
        let h = hook(
            "loud",
            &[
                "sh",
                "-c",
                "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done; exit 1",
            ],
            "5s",
        );
        let run = run_hook(&h, &cx()).await;
        assert!(run.output.len() <= OUTPUT_TAIL_BYTES);
        assert!(run.output.ends_with("line-499"), "{}", run.output);
        assert!(!run.output.contains("line-0\n"));
    }
}
