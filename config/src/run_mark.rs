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
//! A mark may be *bound* to the state directory of the agent that made it
//! ([`RunMark::bound`], [`RunMark::bound_named`]): `RUN@STATE_DIR` (the
//! directory made absolute; `RUN` never holds an `@`). Every process an
//! agent runs carries such a mark — hooks, command checks, replication
//! commands, rsync — so that its next process, should it be killed
//! outright, finds all it left running ([`bound_to`]) and no other agent's:
//! two agents of different sites on one host have different state
//! directories. A bound run that ends in time and leaves processes behind
//! (a daemon a promote hook started, on purpose) has them recorded as
//! kept ([`RunMark::keep_what_is_left`], `STATE_DIR/kept-runs/RUN`): the
//! next process leaves those alone. The orchestrator binds the marks of
//! its fence and notify commands the same way, to its own run directory
//! (its `data_dir`; with etcd, its node's name in it). The sweep at start
//! of what is bound to a directory is [`crate::run_sweep`]'s.
//!
//! Limits: a process that was started with another environment (`env -i`,
//! `sudo`, `systemd-run`, a service manager) or runs as another user (its
//! environment cannot be read) is not found; Linux only (`/proc`).
//! `PR_SET_CHILD_SUBREAPER` was not taken: every daemon a hook starts would
//! become the agent's child (to reap), and an orphan still could not be
//! told to belong to the run that was cut off.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable that carries a run's mark.
pub const VAR: &str = "WARDEN_RUN";

/// Between a bound mark's run and its state directory.
const BOUND: char = '@';

/// The directory, in a state directory, of the runs that ended in time
/// and left processes behind (kept: not ended by the next agent process).
pub const KEPT_DIR: &str = "kept-runs";

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

    /// A new mark bound to the agent whose state directory is `state_dir`
    /// (module docs).
    pub fn bound(state_dir: &Path) -> RunMark {
        Self::bound_named(&Self::new().0, state_dir)
    }

    /// The mark `run@STATE_DIR`, for runs that need no part of their own
    /// (every rsync of the agent: none is ever kept). `run` holds no `@`.
    pub fn bound_named(run: &str, state_dir: &Path) -> RunMark {
        RunMark(format!("{run}{BOUND}{}", absolute(state_dir).display()))
    }

    /// Its run, and the state directory it is bound to (`None`: unbound).
    pub fn parts(&self) -> (&str, Option<&str>) {
        match self.0.split_once(BOUND) {
            Some((run, dir)) => (run, Some(dir)),
            None => (&self.0, None),
        }
    }

    /// The run ended in time: when it is bound and processes carrying its
    /// mark still live (a daemon it started), it is recorded as kept in
    /// its state directory, so that the agent's next process does not end
    /// them (module docs). A record that cannot be written is logged.
    pub fn keep_what_is_left(&self) {
        let (run, Some(dir)) = self.parts() else {
            return;
        };
        let mut left = self.marked();
        // A daemon in the middle of its `exec` (a hook's `setsid sh -c
        // '… exec sleep'`) shows no environment for that moment: looked
        // at again, briefly, before nothing is taken as left. (Hooks end
        // rarely; a check's end does not come here.)
        for _ in 0..5 {
            if !left.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            left = self.marked();
        }
        if left.is_empty() {
            return;
        }
        let kept = Path::new(dir).join(KEPT_DIR);
        let written = std::fs::create_dir_all(&kept)
            .and_then(|()| std::fs::write(kept.join(run), self.0.as_bytes()));
        match written {
            Ok(()) => tracing::info!(
                run,
                processes = left.len(),
                "a command ended and left processes running (a daemon it started): kept, \
                 also across a restart of the agent"
            ),
            Err(e) => tracing::warn!(
                run,
                cause = %e,
                "cannot record the processes a command left running as kept: should the \
                 agent be killed, its next start would end them"
            ),
        }
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
        others_marks()
            .filter(|(_, value)| value.as_slice() == self.0.as_bytes())
            .map(|(pid, _)| pid)
            .collect()
    }
}

/// Every live process but this one whose environment holds a mark, with
/// the mark's value (as in the environment: bytes). A process that ends
/// meanwhile, or whose environment cannot be read, is passed over.
fn others_marks() -> impl Iterator<Item = (u32, Vec<u8>)> {
    let prefix = format!("{VAR}=");
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(move |&p| p != me)
        .filter_map(move |pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let value = env
                .split(|b| *b == 0)
                .find_map(|e| e.strip_prefix(prefix.as_bytes()))?
                .to_vec();
            Some((pid, value))
        })
}

/// `path` made absolute (not resolved: the same spelling across restarts).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Every live process (not this one) whose mark is bound to `state_dir`,
/// with its mark.
pub fn bound_to(state_dir: &Path) -> Vec<(u32, RunMark)> {
    let dir = absolute(state_dir).display().to_string();
    others_marks()
        .filter_map(|(pid, value)| {
            let mark = RunMark(String::from_utf8_lossy(&value).into_owned());
            (mark.parts().1 == Some(dir.as_str())).then_some((pid, mark))
        })
        .collect()
}

/// The runs of `state_dir` recorded as kept ([`RunMark::keep_what_is_left`]).
pub fn kept(state_dir: &Path) -> Vec<String> {
    std::fs::read_dir(state_dir.join(KEPT_DIR))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Forgets that `run` of `state_dir` is kept (none of its processes lives).
pub fn forget_kept(state_dir: &Path, run: &str) {
    let _ = std::fs::remove_file(state_dir.join(KEPT_DIR).join(run));
}

/// `sig` to process `pid`; whether it was sent (one that ended meanwhile:
/// ESRCH).
pub(crate) fn signal(pid: u32, sig: rustix::process::Signal) -> bool {
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
    fn a_bound_mark_names_its_run_and_its_state_directory() {
        let m = RunMark::bound(Path::new("/var/lib/a@b"));
        let (run, dir) = m.parts();
        assert!(!run.is_empty() && !run.contains('@'), "{run}");
        assert_eq!(dir, Some("/var/lib/a@b"));
        assert_eq!(RunMark::new().parts().1, None);
        assert_eq!(
            RunMark::bound_named("rsync", Path::new("/s")).value(),
            "rsync@/s"
        );
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
