//! The hooks an agent's previous process left running, ended at start
//! ([`end_leftovers`]), before the agent takes any command: SIGTERM to a
//! recorded hook's group, up to [`TERM_GRACE`] to end, then SIGKILL, and
//! it waits (up to [`KILL_WAIT`]) until no process of the group is left;
//! what the hook moved out of its group (`setsid`, a double fork) is found
//! by its mark and killed after the group. A hook whose process was not
//! recorded yet (the agent killed in the instant after its start) is found
//! by its mark alone. A hook that ended in the meantime (its leader gone)
//! keeps what it started, as any hook that ends does. A group (or, for a
//! hook found by its mark alone, a marked process) still there [`KILL_WAIT`]
//! after SIGKILL keeps its record (`super::held`).

use std::path::Path;
use std::time::Duration;

use tracing::{info, warn};
use warden_config::run_mark::RunMark;
use warden_config::run_sweep::{self, Ending};

use rustix::process::Signal;

use super::procfs::{boot_id, group_alive, stat};
use super::{action, records, Record};

/// How long a leftover hook group gets to end after SIGTERM.
pub const TERM_GRACE: Duration = Duration::from_secs(5);

/// How long the agent waits for a group to be gone after SIGKILL (a process
/// stuck in the kernel, on a dead NFS mount, does not die at once).
pub const KILL_WAIT: Duration = run_sweep::KILL_WAIT;

/// End the hooks the agent's previous process left running (module docs);
/// one line per hook ended, for the log and the next outcome.
pub async fn end_leftovers(state_dir: &Path) -> Vec<String> {
    end_leftovers_with(state_dir, &Patience::DEFAULT).await
}

/// How long [`end_leftovers`] waits, and how it signals (a test's stand-in
/// for processes that SIGKILL does not end).
pub(super) struct Patience {
    pub(super) term: Duration,
    pub(super) kill: Duration,
    /// To a process group.
    pub(super) signal: fn(u32, Signal),
    /// To every process carrying a run's mark.
    pub(super) signal_marked: fn(&RunMark, Signal),
}

impl Patience {
    const DEFAULT: Patience = Patience {
        term: TERM_GRACE,
        kill: KILL_WAIT,
        signal: signal_group,
        signal_marked,
    };

    /// A test's stand-in for processes that neither SIGTERM nor SIGKILL
    /// ends (stuck in the kernel): nothing is sent, waits are short.
    #[cfg(test)]
    pub(super) const STUCK: Patience = Patience {
        term: Duration::from_millis(200),
        kill: Duration::from_millis(300),
        signal: |_, _| {},
        signal_marked: |_, _| {},
    };
}

pub(super) async fn end_leftovers_with(state_dir: &Path, patience: &Patience) -> Vec<String> {
    let boot = boot_id();
    let mut said = vec![];
    for (path, record) in records(state_dir) {
        let mut keep = false;
        match record {
            Some(r) if r.boot == boot && r.pid.is_some_and(|p| alive(&r, p)) => {
                let (line, gone) = end_group(&r, patience).await;
                said.push(line);
                keep = !gone;
            }
            Some(r) if r.boot == boot && r.pid.is_none() => {
                if let Some((line, gone)) = end_marked(&r, patience).await {
                    said.push(line);
                    keep = !gone;
                }
            }
            Some(r) => {
                info!(command = %r.command, hook = %r.hook, pid = ?r.pid, "a hook of the agent's previous process ended on its own");
                // It ended: what it started is kept, as for any hook that
                // ends (`crate::leftovers` leaves it alone).
                if let Some(m) = &r.mark {
                    RunMark::of(m).keep_what_is_left();
                }
            }
            None => warn!(path = %path.display(), "an unreadable running-hook record: removed"),
        }
        if !keep {
            let _ = std::fs::remove_file(&path);
        }
    }
    said
}

/// Whether `r`'s process `pid` is the one recorded.
fn alive(r: &Record, pid: u32) -> bool {
    stat(pid).is_some_and(|s| Some(s.start) == r.start)
}

/// SIGTERM to `r`'s group, SIGKILL after [`TERM_GRACE`], then wait until
/// it is gone; what was done, and whether it is gone.
async fn end_group(r: &Record, patience: &Patience) -> (String, bool) {
    let pgid = r.pid.unwrap_or_default();
    warn!(command = %r.command, hook = %r.hook, group = pgid, "a hook of the agent's previous process still runs: ending its process group before taking any command");
    let signal = patience.signal;
    let (how, gone) = end_in_steps(
        r,
        patience,
        move |sig| signal(pgid, sig),
        move || !group_alive(pgid),
    )
    .await;
    // What it moved out of its group (`setsid`, a double fork) goes too.
    let strays = r
        .mark
        .as_deref()
        .map_or(0, |m| RunMark::of(m).kill_marked());
    let strays = match strays {
        0 => String::new(),
        1 => ", with 1 process it had moved out of its group,".into(),
        n => format!(", with {n} processes it had moved out of its group,"),
    };
    let line = format!(
        "{} hook {:?} of {}, left running by the agent's previous process \
         (process group {pgid}), was {how}{strays} before this agent took any command",
        action(&r.command),
        r.hook,
        r.command,
    );
    warn!("{line}");
    (line, gone)
}

/// A hook whose process was not recorded (the agent killed in the instant
/// after its start, or before it): its processes, found by its mark, get
/// SIGTERM, SIGKILL after [`TERM_GRACE`], then it waits until they are
/// gone; what was done and whether they are gone, `None` when none was
/// found (it never started).
async fn end_marked(r: &Record, patience: &Patience) -> Option<(String, bool)> {
    let mark = RunMark::of(r.mark.as_deref()?);
    let found = mark.marked().len();
    if found == 0 {
        info!(command = %r.command, hook = %r.hook, "a hook the agent's previous process was about to start never ran, or ended");
        return None;
    }
    let (signal, to, seen) = (patience.signal_marked, mark.clone(), mark.clone());
    let (how, gone) = end_in_steps(
        r,
        patience,
        move |sig| signal(&to, sig),
        move || seen.marked().is_empty(),
    )
    .await;
    let line = format!(
        "{} hook {:?} of {}, started by the agent's previous process just before it was \
         killed (its process not recorded yet; {found} process{} found by its run's mark), \
         was {how} before this agent took any command",
        action(&r.command),
        r.hook,
        r.command,
        if found == 1 { "" } else { "es" },
    );
    warn!("{line}");
    Some((line, gone))
}

/// SIGTERM through `send`, SIGKILL once `patience.term` passed and `gone`
/// is not yet true, then up to `patience.kill` for `gone`
/// (`warden_config::run_sweep::end_in_steps`, on a blocking thread): how
/// it ended (the words of the outcome), and whether it is gone.
async fn end_in_steps(
    r: &Record,
    patience: &Patience,
    send: impl Fn(Signal) + Send + 'static,
    gone: impl Fn() -> bool + Send + 'static,
) -> (String, bool) {
    let (term, kill) = (patience.term, patience.kill);
    let ending =
        tokio::task::spawn_blocking(move || run_sweep::end_in_steps(send, gone, term, kill))
            .await
            .unwrap_or(Ending::Survived);
    match ending {
        Ending::OnTerm => ("ended on SIGTERM".into(), true),
        Ending::Killed => ("killed (SIGKILL)".into(), true),
        Ending::Survived => (
            format!(
                "sent SIGKILL, and some of it still ran {} s later: no promote or demote \
                 of group {} runs here while it does",
                patience.kill.as_secs(),
                r.group()
            ),
            false,
        ),
    }
}

/// `sig` to every process carrying `mark`.
fn signal_marked(mark: &RunMark, sig: Signal) {
    if sig == Signal::KILL {
        mark.kill_marked();
    } else {
        mark.terminate_marked();
    }
}

/// `sig` to process group `pgid`.
pub(super) fn signal_group(pgid: u32, sig: Signal) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, sig) {
        if e != rustix::io::Errno::SRCH {
            warn!(group = pgid, cause = %e, "cannot signal a leftover hook's process group");
        }
    }
}

/// Waits until `gone` is true, up to `within`; whether it is.
#[cfg(test)]
pub(super) async fn gone_within(gone: impl Fn() -> bool, within: Duration) -> bool {
    let until = tokio::time::Instant::now() + within;
    loop {
        if gone() {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook_groups::{intend, spawn_group, DIR, KILLED_AFTER_START};

    /// A hook still running from a previous life (its record left) is
    /// ended with its whole group; a record whose process is another one
    /// (a reused process id: another start time) ends nothing.
    #[tokio::test]
    async fn a_recorded_group_still_running_is_ended_and_a_reused_pid_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let spawn = || spawn_group("trap '' TERM; sleep 60 & wait");
        let (mut hook, mut other) = (spawn(), spawn());
        let kept = intend(dir.path(), &RunMark::of("m1"), "web", "web:3:promote", "db").unwrap();
        kept.started(hook.id());
        std::mem::forget(kept);
        let reused = intend(dir.path(), &RunMark::of("m2"), "web", "web:2:demote", "db").unwrap();
        reused.started(other.id());
        let path = reused.path.clone();
        std::mem::forget(reused);
        let mut r: Record = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        r.start = r.start.map(|s| s + 1);
        std::fs::write(&path, serde_json::to_vec(&r).unwrap()).unwrap();

        let said = end_leftovers(dir.path()).await;
        let ended = hook.try_wait().unwrap();
        let other_alive = other.try_wait().unwrap().is_none() && group_alive(other.id());
        let _ = other.kill();
        let _ = other.wait();
        let _ = hook.kill();
        let _ = hook.wait();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("promote hook \"db\" of web:3:promote")
                && said[0].contains("killed (SIGKILL)"),
            "{said:?}"
        );
        assert!(ended.is_some(), "the leftover hook still runs");
        assert!(!group_alive(hook.id()), "its group still runs");
        assert!(
            other_alive,
            "a process that reused a recorded id was killed"
        );
        assert_eq!(std::fs::read_dir(dir.path().join(DIR)).unwrap().count(), 0);
    }

    /// The agent killed in the instant after a hook started, before its
    /// process was recorded (a failpoint skips that record; the run is
    /// leaked, nothing of it dropped, as when the agent dies): the next
    /// start finds the hook by its run's mark, recorded before it started,
    /// and ends it. Before, nothing was recorded and the hook ran on.
    #[tokio::test]
    async fn a_hook_started_just_before_the_agent_was_killed_is_found_by_its_mark() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("hook.pid");
        let hook: warden_config::HookSpec = toml::from_str(&format!(
            "name = \"slow\"\ncommand = [\"sh\", \"-c\", \"echo $$ > {p}.tmp; mv {p}.tmp {p}; sleep 60\"]\n\
             timeout = \"2m\"",
            p = pid_file.display()
        ))
        .unwrap();
        let cx = crate::hooks::HookContext {
            group: "web".into(),
            epoch: 3,
            site: "a".into(),
            action: crate::wire::CommandKind::Promote,
            state_dir: Some(dir.path().to_path_buf()),
        };
        KILLED_AFTER_START.with(|k| k.set(true));
        let hooks = [hook];
        let mut run = Box::pin(crate::hooks::run_hooks("web:3:promote", &hooks, &cx));
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while !pid_file.exists() && std::time::Instant::now() < until {
            tokio::select! {
                o = &mut run => panic!("the hook ended: {o:?}"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        // The agent is gone: nothing of the run is dropped.
        std::mem::forget(run);
        KILLED_AFTER_START.with(|k| k.set(false));
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let ran = stat(pid).is_some_and(|s| s.state != 'Z');

        let said = end_leftovers(dir.path()).await;
        let left = stat(pid).is_some_and(|s| s.state != 'Z');
        if left {
            signal_group(pid, rustix::process::Signal::KILL);
        }
        assert!(ran, "the hook never ran (the test proves nothing)");
        assert!(
            !left,
            "the hook started just before the agent's death still runs: {said:?}"
        );
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with(
                "promote hook \"slow\" of web:3:promote, started by the agent's previous \
                 process just before it was killed (its process not recorded yet; "
            ) && said[0].contains("found by its run's mark), was ended on SIGTERM"),
            "{said:?}"
        );
    }
}
