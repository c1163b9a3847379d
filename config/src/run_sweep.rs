//! Ending what a killed process of warden's left running: every process
//! whose run mark is bound to that process's state directory
//! (`crate::run_mark`, `RUN@STATE_DIR`), found in `/proc` and ended —
//! SIGTERM, up to a grace, then SIGKILL — before the new process acts.
//! The agent (`STATE_DIR`: its hooks, checks, replication commands, rsync)
//! and the orchestrator (its data directory: fence and notify commands)
//! both call [`end_bound`] at start, each with its own rules of what to
//! spare and its own words for what was ended.
//!
//! Only marks bound to *this* directory are touched: another agent's or
//! another orchestrator's (another directory on the same host) never are.
//! It blocks (for up to the grace and a few SIGKILL passes): an async
//! caller runs it on a blocking thread.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::run_mark::{self, RunMark};

/// How many times SIGKILL goes to what is still found (a process that
/// forks while it is being killed leaves a new one).
const KILL_PASSES: usize = 5;

/// How often what is left is looked for while the grace runs.
const POLL: Duration = Duration::from_millis(50);

/// One process that was ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub pid: u32,
    /// Its program (`/proc/PID/comm`, read before it was signalled; `?`
    /// when it could not be read).
    pub program: String,
    /// The mark it carried (its run says which command it was part of).
    pub mark: RunMark,
}

/// What [`end_bound`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Every process found at first, in pid order.
    pub ended: Vec<Ended>,
    /// Some outlived the grace and were killed with SIGKILL.
    pub killed: bool,
}

impl Swept {
    /// "ended on SIGTERM" or "killed (SIGKILL)".
    pub fn how(&self) -> &'static str {
        if self.killed {
            "killed (SIGKILL)"
        } else {
            "ended on SIGTERM"
        }
    }
}

/// Ends every live process (not this one) whose mark is bound to
/// `state_dir`, except those `spare` says to leave (module docs): SIGTERM,
/// up to `grace` for them to end, then SIGKILL to what is left; `None`
/// when none was found.
pub fn end_bound(
    state_dir: &Path,
    spare: impl Fn(&RunMark) -> bool,
    grace: Duration,
) -> Option<Swept> {
    let find = || -> Vec<(u32, RunMark)> {
        let mut found: Vec<_> = run_mark::bound_to(state_dir)
            .into_iter()
            .filter(|(_, m)| !spare(m))
            .collect();
        found.sort_by_key(|(pid, _)| *pid);
        found
    };
    let found = find();
    if found.is_empty() {
        return None;
    }
    let ended: Vec<Ended> = found
        .into_iter()
        .map(|(pid, mark)| Ended {
            pid,
            program: std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_else(|_| "?".into()),
            mark,
        })
        .collect();
    for e in &ended {
        run_mark::signal(e.pid, rustix::process::Signal::TERM);
    }
    let until = Instant::now() + grace;
    let mut killed = false;
    while !find().is_empty() {
        if Instant::now() >= until {
            for _ in 0..KILL_PASSES {
                let left = find();
                if left.is_empty() {
                    break;
                }
                for (pid, _) in left {
                    run_mark::signal(pid, rustix::process::Signal::KILL);
                }
                std::thread::sleep(POLL);
            }
            killed = true;
            break;
        }
        std::thread::sleep(POLL);
    }
    Some(Swept { ended, killed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(mark: &RunMark, program: &str) -> std::process::Child {
        std::process::Command::new("sh")
            .args(["-c", program])
            .env(run_mark::VAR, mark.value())
            .spawn()
            .unwrap()
    }

    /// What is bound to this directory is ended, SIGKILL for one that
    /// ignores SIGTERM; what is spared and what another directory's are
    /// left alone; each ended process is named with its mark.
    #[test]
    fn only_this_directorys_unspared_processes_are_ended() {
        let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let fence = RunMark::bound_named("fence-1", here.path());
        let stubborn = RunMark::bound_named("notify-1", here.path());
        let spared = RunMark::bound_named("daemon-1", here.path());
        let mut a = spawn(&fence, "exec sleep 60");
        let mut b = spawn(&stubborn, "trap '' TERM; sleep 60 & wait");
        let mut c = spawn(&spared, "exec sleep 60");
        let other = RunMark::bound_named("fence-1", there.path());
        let mut d = spawn(&other, "exec sleep 60");
        // Until each runs what it will run: a shell carries the mark
        // before it execs `sleep` (and b's background child before its
        // own exec), and is named by what it runs at the sweep.
        let programs = |m: &RunMark| {
            let mut p: Vec<String> = m
                .marked()
                .into_iter()
                .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
                .map(|c| c.trim().to_string())
                .collect();
            p.sort();
            p
        };
        let sleep = vec!["sleep".to_string()];
        let sh_sleep = vec!["sh".to_string(), "sleep".to_string()];
        for _ in 0..200 {
            if programs(&fence) == sleep
                && programs(&stubborn) == sh_sleep
                && programs(&spared) == sleep
                && programs(&other) == sleep
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let swept = end_bound(
            here.path(),
            |m| m.parts().0 == "daemon-1",
            Duration::from_millis(500),
        );
        let alive = |ch: &mut std::process::Child| ch.try_wait().unwrap().is_none();
        let states = [alive(&mut a), alive(&mut b), alive(&mut c), alive(&mut d)];
        for ch in [&mut a, &mut b, &mut c, &mut d] {
            let _ = (ch.kill(), ch.wait());
        }
        assert_eq!(states, [false, false, true, true], "a, b gone; c, d alive");
        let swept = swept.expect("found nothing");
        assert!(swept.killed, "the one that ignores SIGTERM needed SIGKILL");
        let mut named: Vec<(String, String)> = swept
            .ended
            .iter()
            .map(|e| (e.mark.parts().0.to_string(), e.program.clone()))
            .collect();
        named.sort();
        assert_eq!(
            named,
            [
                ("fence-1".to_string(), "sleep".to_string()),
                ("notify-1".to_string(), "sh".to_string()),
                ("notify-1".to_string(), "sleep".to_string()),
            ]
        );
    }
}
