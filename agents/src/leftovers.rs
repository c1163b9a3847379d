//! Everything an agent's previous process left running, found and ended
//! at start — besides the hooks it had recorded (`crate::hook_groups`,
//! which runs first and keeps its own rules).
//!
//! Every process the agent runs carries a mark bound to its state
//! directory (`warden_config::run_mark`: `WARDEN_RUN=RUN@STATE_DIR`), and
//! so does every process that one starts: a hook, a command check, a
//! replication command of the `command` plan (its scripts), every rsync
//! (a push, a pull, a listing, a quarantine's copy: [`rsync_mark`]). An
//! agent killed outright (SIGKILL, the OOM killer, a crash) leaves those
//! running — each runs in its own process group, so that a stop ends what
//! it forked too — and nothing stops them when the orders change: an
//! operator's replication script or a push goes on into the peer, which
//! may meanwhile be promoted; a resync's pull goes on writing into this
//! site; a check command goes on with no agent to judge it. So at start,
//! before it takes any command or runs any check, the agent ends every
//! process bound to its state directory ([`end_leftovers`]): SIGTERM
//! (rsync removes the temporary file of the transfer it was in), up to
//! [`TERM_GRACE`], then SIGKILL (what SIGKILL does not end within
//! `run_sweep::KILL_WAIT` is named as still running, not as ended). Said in the log and in the outcome of
//! the first command it finishes.
//!
//! Not ended: what a run that *ended in time* left behind on purpose (a
//! daemon a finished promote hook started). When such a run ends and
//! processes still carry its mark, its run is recorded as kept
//! (`STATE_DIR/kept-runs/RUN`, `RunMark::keep_what_is_left`); the sweep
//! leaves kept runs alone and forgets a kept run none of whose processes
//! lives. Nor a hook group `crate::hook_groups` holds (SIGKILL did not end
//! it): it is that module's. Another agent's processes (another site on
//! the same host) carry another state directory: never touched.
//!
//! `PR_SET_PDEATHSIG` was not taken: it is sent when the *thread* that
//! spawned the child ends, not the process; a spawn from a tokio blocking
//! thread (which ends when idle) would see its child killed mid-way; it
//! reaches only the direct child, not what it forks; and it is cleared by
//! a set-user-id exec. The sweep at start covers them all, once the agent
//! is restarted (its service manager's job).
//!
//! Limits: a process started with another environment (`env -i`, `sudo`,
//! `systemd-run`, an `rsync_path` wrapper that clears it) or as another
//! user is not found; an agent killed between a run's end and its kept
//! record has that run's daemon ended at its next start; Linux only
//! (`/proc`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use tracing::warn;
use warden_config::run_mark::{self, RunMark};
use warden_config::run_sweep;

/// How long the leftover processes get to end after SIGTERM.
pub const TERM_GRACE: Duration = Duration::from_secs(3);

/// The mark of every rsync run of the agent whose state directory is
/// `state_dir`: no part of its own (no rsync is ever kept).
pub fn rsync_mark(state_dir: &Path) -> RunMark {
    RunMark::bound_named("rsync", state_dir)
}

/// Ends what the agent's previous process left running (module docs),
/// except the marks in `held` (hook groups `crate::hook_groups` keeps);
/// what was done, `None` when nothing was found. The sweep itself is
/// `warden_config::run_sweep`'s (the orchestrator's too).
pub async fn end_leftovers(state_dir: &Path, held: &[String]) -> Option<String> {
    let kept: BTreeSet<String> = run_mark::kept(state_dir).into_iter().collect();
    let all = run_mark::bound_to(state_dir);
    // A kept run none of whose processes lives is forgotten.
    for run in &kept {
        if !all.iter().any(|(_, m)| m.parts().0 == run) {
            run_mark::forget_kept(state_dir, run);
        }
    }
    let dir = state_dir.to_path_buf();
    let held = held.to_vec();
    let spare =
        move |m: &RunMark| kept.contains(m.parts().0) || held.iter().any(|h| h == m.value());
    let swept = tokio::task::spawn_blocking(move || run_sweep::end_bound(&dir, spare, TERM_GRACE))
        .await
        .ok()
        .flatten()?;
    let names = names(swept.ended.iter().map(|e| e.program.as_str()));
    let n = swept.ended.len();
    let line = format!(
        "{n} process{} ({names}) left running by the agent's previous process (a push or pull \
         of its replication, a replication command, a check command, or what they started) \
         {} {} before this agent took any command",
        if n == 1 { "" } else { "es" },
        if n == 1 { "was" } else { "were" },
        swept.how(),
    );
    // Named, not said to be ended (stuck in the kernel, on a dead mount).
    let line = match swept.ending {
        run_sweep::Ending::Survived => format!(
            "{line}: a push, pull or replication command started now may run beside it (end \
             it, or restart the host)"
        ),
        _ => line,
    };
    warn!("{line}");
    Some(line)
}

/// "rsync ×2, sh": the programs, counted.
fn names<'a>(programs: impl Iterator<Item = &'a str>) -> String {
    let mut counted = BTreeMap::<&str, usize>::new();
    for name in programs {
        *counted.entry(name).or_default() += 1;
    }
    counted
        .into_iter()
        .map(|(name, n)| match n {
            1 => name.to_string(),
            n => format!("{name} ×{n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(mark: &RunMark) -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("60")
            .env(run_mark::VAR, mark.value())
            .spawn()
            .unwrap()
    }

    /// A process bound to this state directory is ended; one of another
    /// agent's (another state directory), one of a run kept (a daemon a
    /// finished hook started) and one of a held hook group are not.
    #[tokio::test]
    async fn only_this_agents_unkept_runs_are_ended() {
        let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (kept, held) = (RunMark::bound(here.path()), RunMark::bound(here.path()));
        let mut mine = spawn(&rsync_mark(here.path()));
        let mut script = spawn(&RunMark::bound(here.path()));
        let mut other = spawn(&RunMark::bound(there.path()));
        let mut daemon = spawn(&kept);
        let mut stuck = spawn(&held);
        // its environment is readable once it runs
        tokio::time::sleep(Duration::from_millis(200)).await;
        kept.keep_what_is_left();
        let said = end_leftovers(here.path(), &[held.value().to_string()]).await;
        let alive = |c: &mut std::process::Child| c.try_wait().unwrap().is_none();
        let (mine_alive, script_alive) = (alive(&mut mine), alive(&mut script));
        let (other_alive, daemon_alive, stuck_alive) =
            (alive(&mut other), alive(&mut daemon), alive(&mut stuck));
        for c in [&mut mine, &mut script, &mut other, &mut daemon, &mut stuck] {
            let _ = (c.kill(), c.wait());
        }
        assert_eq!(
            said.as_deref(),
            Some(
                "2 processes (sleep ×2) left running by the agent's previous process (a \
                 push or pull of its replication, a replication command, a check command, \
                 or what they started) were ended on SIGTERM before this agent took any \
                 command"
            )
        );
        assert!(
            !mine_alive && !script_alive,
            "the previous process's runs still run"
        );
        assert!(other_alive, "another agent's run was ended");
        assert!(daemon_alive, "a daemon a finished run left was ended");
        assert!(stuck_alive, "a held hook group was ended");
        // the kept daemon gone, its record is forgotten at the next start
        assert_eq!(end_leftovers(here.path(), &[]).await, None);
        assert!(run_mark::kept(here.path()).is_empty());
    }
}
