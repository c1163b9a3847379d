//! Ending what a killed process of warden's left running: every process
//! whose run mark is bound to that process's state directory
//! (`crate::run_mark`, `RUN@STATE_DIR`), found in `/proc` and ended —
//! SIGTERM, up to a grace, then SIGKILL, then up to [`KILL_WAIT`] for it to
//! be gone — before the new process acts. The agent (`STATE_DIR`: its
//! hooks, checks, replication commands, rsync) and the orchestrator (its
//! data directory: fence and notify commands) both call [`end_bound`] at
//! start, each with its own rules of what to spare and its own words for
//! what was ended. The steps themselves ([`end_in_steps`]) are shared with
//! the agent's ending of a recorded hook's process group.
//!
//! What SIGKILL does not end within [`KILL_WAIT`] (a process stuck in the
//! kernel, on a dead NFS mount) is named as still running ([`Swept::left`]),
//! never reported as killed.
//!
//! Only marks bound to *this* directory are touched: another agent's or
//! another orchestrator's (another directory on the same host) never are.
//! It blocks (for up to the grace and the kill wait): an async caller runs
//! it on a blocking thread.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::run_mark::{self, RunMark};

/// How long what SIGKILL was sent to gets to be gone (a process stuck in
/// the kernel, on a dead NFS mount, does not die at once).
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// How often what is left is looked for while the grace or the kill wait
/// runs.
const POLL: Duration = Duration::from_millis(50);

/// One process found and signalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub pid: u32,
    /// Its program (`/proc/PID/comm`, read before it was signalled; `?`
    /// when it could not be read).
    pub program: String,
    /// The mark it carried (its run says which command it was part of).
    pub mark: RunMark,
}

/// How a stepwise ending ([`end_in_steps`]) came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Gone within the grace after SIGTERM.
    OnTerm,
    /// Gone after SIGKILL, within the kill wait.
    Killed,
    /// Still there when the kill wait was over.
    Survived,
}

/// What [`end_bound`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Every process found at first, in pid order.
    pub ended: Vec<Ended>,
    /// How it ended.
    pub ending: Ending,
    /// What was still found when the kill wait was over (pids, in order):
    /// empty unless `ending` is [`Ending::Survived`].
    pub left: Vec<u32>,
    /// The kill wait it was given.
    pub kill_wait: Duration,
}

impl Swept {
    /// Some outlived the grace and were sent SIGKILL.
    pub fn killed(&self) -> bool {
        self.ending != Ending::OnTerm
    }

    /// "ended on SIGTERM", "killed (SIGKILL)", or "sent SIGKILL, and 1 of
    /// them (pid 42) still ran 10 s later".
    pub fn how(&self) -> String {
        match self.ending {
            Ending::OnTerm => "ended on SIGTERM".into(),
            Ending::Killed => "killed (SIGKILL)".into(),
            Ending::Survived => format!(
                "sent SIGKILL, and {} of them ({}) still ran {} s later",
                self.left.len(),
                pids(&self.left),
                self.kill_wait.as_secs()
            ),
        }
    }
}

/// "pid 4", "pids 4, 7".
fn pids(left: &[u32]) -> String {
    let list: Vec<String> = left.iter().map(u32::to_string).collect();
    match list.len() {
        1 => format!("pid {}", list[0]),
        _ => format!("pids {}", list.join(", ")),
    }
}

/// SIGTERM through `send`; once `term` passed and `gone` is not yet true,
/// SIGKILL, sent again at every look (a process forked while it was being
/// killed gets it too) until `gone` or `kill` passed. Blocks.
pub fn end_in_steps(
    send: impl Fn(Signal),
    gone: impl Fn() -> bool,
    term: Duration,
    kill: Duration,
) -> Ending {
    send(Signal::TERM);
    if gone_within(&gone, term, || {}) {
        return Ending::OnTerm;
    }
    send(Signal::KILL);
    if gone_within(&gone, kill, || send(Signal::KILL)) {
        return Ending::Killed;
    }
    Ending::Survived
}

/// Looks at `gone` every [`POLL`] for up to `within`, calling `between`
/// after each look that found it false; whether it came true.
fn gone_within(gone: impl Fn() -> bool, within: Duration, between: impl Fn()) -> bool {
    let until = Instant::now() + within;
    loop {
        if gone() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(POLL);
        between();
    }
}

/// Ends every live process (not this one) whose mark is bound to
/// `state_dir`, except those `spare` says to leave (module docs): SIGTERM,
/// up to `grace` for them to end, then SIGKILL to what is left and up to
/// [`KILL_WAIT`] for it to be gone; `None` when none was found.
pub fn end_bound(
    state_dir: &Path,
    spare: impl Fn(&RunMark) -> bool,
    grace: Duration,
) -> Option<Swept> {
    end_bound_with(state_dir, spare, grace, KILL_WAIT, |pid, sig| {
        run_mark::signal(pid, sig);
    })
}

/// [`end_bound`] with its kill wait and how a process is signalled (a
/// test's stand-in for a process that SIGKILL does not end).
fn end_bound_with(
    state_dir: &Path,
    spare: impl Fn(&RunMark) -> bool,
    grace: Duration,
    kill_wait: Duration,
    signal: fn(u32, Signal),
) -> Option<Swept> {
    let find = || -> Vec<u32> {
        let mut found: Vec<u32> = run_mark::bound_to(state_dir)
            .into_iter()
            .filter(|(_, m)| !spare(m))
            .map(|(pid, _)| pid)
            .collect();
        found.sort_unstable();
        found
    };
    let mut found: Vec<(u32, RunMark)> = run_mark::bound_to(state_dir)
        .into_iter()
        .filter(|(_, m)| !spare(m))
        .collect();
    if found.is_empty() {
        return None;
    }
    found.sort_by_key(|(pid, _)| *pid);
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
    let ending = end_in_steps(
        |sig| {
            for pid in find() {
                signal(pid, sig);
            }
        },
        || find().is_empty(),
        grace,
        kill_wait,
    );
    let left = match ending {
        Ending::Survived => find(),
        _ => vec![],
    };
    Some(Swept {
        ended,
        ending,
        left,
        kill_wait,
    })
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
        assert_eq!(
            swept.ending,
            Ending::Killed,
            "the one that ignores SIGTERM needed SIGKILL"
        );
        assert!(swept.left.is_empty(), "{swept:?}");
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

    /// A process that SIGKILL does not end (stuck in the kernel, on a dead
    /// NFS mount; here a stand-in that sends nothing) is named as still
    /// running, never reported killed. Before, the sweep sent SIGKILL a few
    /// times, returned "killed (SIGKILL)" and forgot it.
    #[test]
    fn what_sigkill_does_not_end_is_named_as_still_running() {
        let here = tempfile::tempdir().unwrap();
        let mark = RunMark::bound_named("fence-1", here.path());
        let mut stuck = spawn(&mark, "exec sleep 60");
        // Until it runs `sleep`: its environment is not read while it execs.
        let comm = || std::fs::read_to_string(format!("/proc/{}/comm", stuck.id()));
        for _ in 0..200 {
            if mark.marked() == [stuck.id()] && comm().is_ok_and(|c| c.trim() == "sleep") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let swept = end_bound_with(
            here.path(),
            |_| false,
            Duration::from_millis(100),
            Duration::from_millis(300),
            |_, _| {},
        );
        let alive = stuck.try_wait().unwrap().is_none();
        let _ = (stuck.kill(), stuck.wait());
        assert!(
            alive,
            "the stand-in signals nothing: the test proves nothing"
        );
        let swept = swept.expect("found nothing");
        assert_eq!(swept.ending, Ending::Survived);
        assert_eq!(swept.left, [stuck.id()]);
        assert_eq!(
            swept.how(),
            format!(
                "sent SIGKILL, and 1 of them (pid {}) still ran 0 s later",
                stuck.id()
            )
        );
    }

    /// The steps: SIGTERM first; SIGKILL only after the grace, sent again
    /// at each look while the kill wait runs.
    #[test]
    fn steps_send_sigkill_only_after_the_grace_and_again_while_waiting() {
        let sent = std::sync::Mutex::new(Vec::new());
        let ending = end_in_steps(
            |sig| sent.lock().unwrap().push(sig),
            || false,
            Duration::from_millis(120),
            Duration::from_millis(120),
        );
        assert_eq!(ending, Ending::Survived);
        let sent = sent.into_inner().unwrap();
        assert_eq!(sent[0], Signal::TERM);
        assert!(sent[1..].iter().all(|s| *s == Signal::KILL), "{sent:?}");
        assert!(
            sent.len() >= 3,
            "SIGKILL sent again while waiting: {sent:?}"
        );
        let gone = std::sync::atomic::AtomicBool::new(false);
        let ending = end_in_steps(
            |_| gone.store(true, std::sync::atomic::Ordering::SeqCst),
            || gone.load(std::sync::atomic::Ordering::SeqCst),
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        assert_eq!(ending, Ending::OnTerm);
    }
}
