//! A run's mark: the variable [`VAR`], with a value no other run has, in the
//! environment of a command warden runs (a hook, a command check, a fence or
//! notify command). Everything the command starts inherits it, also what it
//! moves out of its process group — a `setsid`, a daemon's double fork
//! re-parented to init — which a kill of the group misses. When the run is
//! cut off (its timeout, or dropped), [`RunMark::kill_marked`] finds those
//! by their environment (`/proc/PID/environ`) and kills them too
//! ([`crate::child::GroupKill::with_mark`]); a command that ends in time
//! keeps what it started, marked or not.
//!
//! Limits: a process that was started with another environment (`env -i`,
//! `sudo`, `systemd-run`, a service manager) or runs as another user (its
//! environment cannot be read) is not found; Linux only (`/proc`).
//! `PR_SET_CHILD_SUBREAPER` was not taken: every daemon a hook starts would
//! become the agent's child (to reap), and an orphan still could not be
//! told to belong to the run that was cut off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable that carries a run's mark.
pub const VAR: &str = "WARDEN_RUN";

/// How many times the processes are looked through for the mark: one that
/// forks while it is being killed leaves a new marked process.
const PASSES: usize = 5;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// One run's mark (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMark(String);

impl Default for RunMark {
    fn default() -> Self {
        Self::new()
    }
}

impl RunMark {
    /// A mark no other run of any process has: this process's id, a
    /// counter, and the time.
    pub fn new() -> RunMark {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        RunMark(format!(
            "{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// The mark of a run that had `value` (recorded by another process).
    pub fn of(value: &str) -> RunMark {
        RunMark(value.to_string())
    }

    /// The value of [`VAR`] in the run's environment.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// SIGKILL to every live process (not this one) whose environment holds
    /// this mark; how many were killed.
    pub fn kill_marked(&self) -> usize {
        // A process killed a moment ago may not have ended yet: found
        // again, it is not counted again.
        let mut killed = std::collections::BTreeSet::new();
        for _ in 0..PASSES {
            let mut found = 0;
            for pid in self.marked() {
                if signal(pid, rustix::process::Signal::KILL) && killed.insert(pid) {
                    found += 1;
                }
            }
            if found == 0 {
                break;
            }
        }
        let killed = killed.len();
        if killed > 0 {
            tracing::info!(
                killed,
                "killed what a cut-off command had moved out of its process group"
            );
        }
        killed
    }

    /// SIGTERM to every live process (not this one) whose environment
    /// holds this mark, once (a program that cleans up when asked: rsync
    /// removes the temporary file of the transfer it was in); how many
    /// were told.
    pub fn terminate_marked(&self) -> usize {
        self.marked()
            .into_iter()
            .filter(|&pid| signal(pid, rustix::process::Signal::TERM))
            .count()
    }

    /// The live processes (not this one; a zombie's environment reads
    /// empty) whose environment holds this mark.
    pub fn marked(&self) -> Vec<u32> {
        let entry = format!("{VAR}={}", self.0);
        let me = std::process::id();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&p| p != me)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == entry.as_bytes()))
            })
            .collect()
    }
}

/// `sig` to process `pid`; whether it was sent (one that ended meanwhile:
/// ESRCH).
fn signal(pid: u32, sig: rustix::process::Signal) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::kill_process(p, sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_differ() {
        assert_ne!(RunMark::new(), RunMark::new());
    }

    #[test]
    fn only_the_marked_process_is_killed() {
        let mark = RunMark::new();
        let spawn = |m: &RunMark| {
            std::process::Command::new("sleep")
                .arg("30")
                .env(VAR, m.value())
                .spawn()
                .unwrap()
        };
        let (mut marked, mut other) = (spawn(&mark), spawn(&RunMark::new()));
        // its environment is readable once it runs
        std::thread::sleep(std::time::Duration::from_millis(100));
        let killed = mark.kill_marked();
        let status = marked.wait().unwrap();
        let other_alive = other.try_wait().unwrap().is_none();
        let _ = other.kill();
        let _ = other.wait();
        assert_eq!(killed, 1);
        assert!(!status.success());
        assert!(other_alive, "a process of another run was killed");
    }
}
