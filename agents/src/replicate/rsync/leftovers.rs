//! The rsync runs an agent's previous process left running, found and
//! ended at start.
//!
//! Every rsync the agent runs (a push, a pull, a listing) carries the mark
//! of the site's state directory in its environment ([`mark`]:
//! `WARDEN_RUN=rsync:STATE_DIR`), and so does every process it forks: its
//! receiver and generator, and ssh for the ssh transport. An agent killed
//! outright (SIGKILL, the OOM killer, a crash) leaves them running — each
//! rsync is its own process group, so that a stop ends its forks too — and
//! nothing stops them when the orders change: a push goes on into the
//! peer, which may meanwhile be promoted; a resync's pull goes on writing
//! into this site, which the orchestrator may promote as soon as the agent
//! is back; and the restarted agent's own passes run beside them. So at
//! start, before it takes any command or runs any rsync, the agent ends
//! every process that carries the mark ([`end_leftovers`]): SIGTERM (rsync
//! removes the temporary file of the transfer it was in, which killed
//! outright it would leave in the tree), up to [`TERM_GRACE`], then
//! SIGKILL. Said in the log and in the outcome of the first command it
//! finishes.
//!
//! No process of a transfer outlives it on purpose, so a mark per agent
//! (not per run, as for hooks) finds them all with no record to write per
//! transfer; it is never used to stop one run (the run's process group is).
//!
//! `PR_SET_PDEATHSIG` was not taken: it is sent when the *thread* that
//! spawned the child ends, not the process; a spawn from a tokio blocking
//! thread (which ends when idle) would see its transfer killed mid-way; it
//! reaches only the direct child, not rsync's forks nor ssh; and it is
//! cleared by the set-user-id exec of a wrapper. The sweep at start covers
//! them all, once the agent is restarted (its service manager's job).
//!
//! Limits: a process started with another environment (an `rsync_path`
//! wrapper that clears it, `sudo`) or as another user is not found; Linux
//! only (`/proc`).

use std::path::Path;
use std::time::Duration;

use tracing::warn;
use warden_config::run_mark::RunMark;

/// How long the leftover rsync processes get to end after SIGTERM.
pub const TERM_GRACE: Duration = Duration::from_secs(3);

/// The mark of the rsync runs of the agent whose state directory is
/// `state_dir` (made absolute: a restarted agent finds its previous
/// process's runs from another working directory too).
pub fn mark(state_dir: &Path) -> RunMark {
    let dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    RunMark::of(&format!("rsync:{}", dir.display()))
}

/// Ends the rsync processes the agent's previous process left running
/// (module docs); what was done, `None` when none was found.
pub async fn end_leftovers(state_dir: &Path) -> Option<String> {
    let mark = mark(state_dir);
    let found = mark.marked();
    if found.is_empty() {
        return None;
    }
    warn!(processes = found.len(), "rsync processes of the agent's previous process still run: ending them before taking any command");
    mark.terminate_marked();
    let until = tokio::time::Instant::now() + TERM_GRACE;
    let mut how = "ended on SIGTERM";
    while !mark.marked().is_empty() {
        if tokio::time::Instant::now() >= until {
            mark.kill_marked();
            how = "killed (SIGKILL)";
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = found.len();
    let line = format!(
        "{n} rsync process{} left running by the agent's previous process (a push or pull of \
         its replication, with what it forked) {} {how} before this agent took any command",
        if n == 1 { "" } else { "es" },
        if n == 1 { "was" } else { "were" },
    );
    warn!("{line}");
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process carrying the mark of this state directory is ended; one
    /// carrying another agent's is not.
    #[tokio::test]
    async fn only_this_agents_rsync_runs_are_ended() {
        let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let spawn = |dir: &Path| {
            std::process::Command::new("sleep")
                .arg("60")
                .env(warden_config::run_mark::VAR, mark(dir).value())
                .spawn()
                .unwrap()
        };
        let (mut mine, mut other) = (spawn(here.path()), spawn(there.path()));
        // its environment is readable once it runs
        tokio::time::sleep(Duration::from_millis(200)).await;
        let said = end_leftovers(here.path()).await;
        let mine_ended = mine.try_wait().unwrap().is_some();
        let other_alive = other.try_wait().unwrap().is_none();
        let _ = (mine.kill(), other.kill(), mine.wait(), other.wait());
        assert_eq!(
            said.as_deref(),
            Some(
                "1 rsync process left running by the agent's previous process (a push or \
                 pull of its replication, with what it forked) was ended on SIGTERM before \
                 this agent took any command"
            )
        );
        assert!(mine_ended, "the previous process's rsync still runs");
        assert!(other_alive, "another agent's rsync was ended");
        assert_eq!(end_leftovers(here.path()).await, None);
    }
}
