//! The running hooks' process groups, recorded in the site's `state_dir`
//! (`running-hooks/MARK.json`) for as long as each hook runs, and those an
//! agent's previous process left running, ended at start.
//!
//! A hook runs in its own process group: an agent killed with SIGKILL (the
//! OOM killer, `systemctl kill -s KILL`, a crash) leaves it running, and the
//! restarted agent — or the orchestrator asking again — could start the
//! opposite command (a demote) while the old promote hook still runs: two
//! hooks fighting over the site's role. So each hook is recorded by its
//! run's mark (`warden_config::run_mark`) before it is started ([`intend`]),
//! then by its process id (its group's id), its start time in
//! `/proc/PID/stat` and the boot id once it runs ([`Recorded::started`]: a
//! reused process id, or one of an earlier boot, is told apart). At start,
//! before it takes any command, the agent ends every hook of its previous
//! life still running ([`end_leftovers`]): SIGTERM to its group, up to
//! [`TERM_GRACE`] to end, then SIGKILL, and it waits (up to [`KILL_WAIT`])
//! until no process of the group is left; what the hook moved out of its
//! group (`setsid`, a double fork) is found by its mark and killed after
//! the group. A hook whose process was not recorded yet (the agent killed
//! in the instant after its start) is found by its mark alone. A hook that
//! ended in the meantime (its leader gone) keeps what it started, as any
//! hook that ends does.
//!
//! A group still there [`KILL_WAIT`] after SIGKILL (a process stuck in the
//! kernel, on a dead NFS mount) keeps its record, and while it lives no
//! promote or demote of its group runs here ([`blocking`]): each is
//! refused with what still runs and how to end it; the first one after it
//! ended runs.
//!
//! Everything else the previous process left running is
//! `crate::leftovers`'s, which runs after [`end_leftovers`] and leaves the
//! groups this module holds ([`held_marks`]) and what a hook that ended
//! kept alone. A hook's mark is bound to the `state_dir`.
//!
//! Limits: what left the group with another environment is not found (see
//! `run_mark`); a hook that ended on its own before its process was
//! recorded has what it started ended too; Linux only (`/proc`),
//! elsewhere nothing is found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use warden_config::run_mark::RunMark;

/// The directory of the records in the site's `state_dir`.
const DIR: &str = "running-hooks";

/// How long a leftover hook group gets to end after SIGTERM.
pub const TERM_GRACE: Duration = Duration::from_secs(5);

/// How long the agent waits for a group to be gone after SIGKILL (a process
/// stuck in the kernel, on a dead NFS mount, does not die at once).
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// One hook, about to start or running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// Its process id, also its process group's id; `None`: not started
    /// yet, or not recorded yet.
    #[serde(default)]
    pid: Option<u32>,
    /// Its start time (clock ticks after boot, `/proc/PID/stat` field 22).
    #[serde(default)]
    start: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id` when it was recorded.
    boot: String,
    /// Its run's mark (`warden_config::run_mark`): what it moved out of its
    /// group, or all of it when its process was not recorded, is found by it.
    #[serde(default)]
    mark: Option<String>,
    /// The agent process that ran it.
    #[serde(default)]
    agent: Option<u32>,
    /// Its command's group.
    #[serde(default)]
    group: Option<String>,
    command: String,
    hook: String,
}

impl Record {
    /// Its command's group (recorded, or the first field of `group:epoch:kind`).
    fn group(&self) -> &str {
        self.group
            .as_deref()
            .unwrap_or_else(|| self.command.split(':').next().unwrap_or_default())
    }
}

/// A hook's record, removed when dropped (the hook ended, or was killed
/// with its run).
#[derive(Debug)]
pub struct Recorded {
    path: PathBuf,
    record: Record,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(path = %self.path.display(), cause = %e, "cannot remove a finished hook's record");
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// A failpoint: the agent "killed" in the instant after a hook's start,
    /// before its process is recorded ([`Recorded::started`] writes nothing).
    pub(crate) static KILLED_AFTER_START: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Record that hook `hook` of `command` (of group `group`) is about to be
/// started with run mark `mark`, in `state_dir`: before it starts, so that
/// an agent killed in the instant after finds it by its mark. A record that
/// cannot be written is logged and the hook runs on: it only would not be
/// found after an agent's crash.
pub fn intend(
    state_dir: &Path,
    mark: &RunMark,
    group: &str,
    command: &str,
    hook: &str,
) -> Option<Recorded> {
    let dir = state_dir.join(DIR);
    let recorded = Recorded {
        // its run: a mark bound to the state directory holds its path too
        path: dir.join(format!("{}.json", mark.parts().0)),
        record: Record {
            pid: None,
            start: None,
            boot: boot_id(),
            mark: Some(mark.value().to_string()),
            agent: Some(std::process::id()),
            group: Some(group.to_string()),
            command: command.to_string(),
            hook: hook.to_string(),
        },
    };
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| recorded.write());
    match written {
        Ok(()) => Some(recorded),
        Err(e) => {
            warn!(path = %recorded.path.display(), cause = %e, hook, "cannot record a running hook: should this agent be killed while it runs, its next start will not end it");
            std::mem::forget(recorded);
            None
        }
    }
}

impl Recorded {
    /// The hook started as process `pid`: recorded with its start time.
    /// One not written is logged: its mark still finds it.
    pub fn started(&self, pid: u32) {
        #[cfg(test)]
        if KILLED_AFTER_START.with(|k| k.get()) {
            return;
        }
        let Some(stat) = stat(pid) else {
            return; // ended already
        };
        let mut running = Recorded {
            path: self.path.clone(),
            record: self.record.clone(),
        };
        running.record.pid = Some(pid);
        running.record.start = Some(stat.start);
        if let Err(e) = running.write() {
            warn!(path = %self.path.display(), cause = %e, hook = %self.record.hook, "cannot record a running hook's process: its mark will find it");
        }
        std::mem::forget(running);
    }

    fn write(&self) -> Result<(), String> {
        let body = serde_json::to_vec(&self.record).map_err(|e| e.to_string())?;
        warden_config::durable::replace(&self.path, &body).map_err(|e| e.to_string())
    }
}

/// End the hooks the agent's previous process left running (module docs);
/// one line per hook ended, for the log and the next outcome.
pub async fn end_leftovers(state_dir: &Path) -> Vec<String> {
    end_leftovers_with(state_dir, &Patience::DEFAULT).await
}

/// How long [`end_leftovers`] waits, and how it signals (a test's stand-in
/// for a group that SIGKILL does not end).
struct Patience {
    term: Duration,
    kill: Duration,
    signal: fn(u32, rustix::process::Signal),
}

impl Patience {
    const DEFAULT: Patience = Patience {
        term: TERM_GRACE,
        kill: KILL_WAIT,
        signal: signal_group,
    };
}

async fn end_leftovers_with(state_dir: &Path, patience: &Patience) -> Vec<String> {
    let dir = state_dir.join(DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let boot = boot_id();
    let mut said = vec![];
    for entry in entries.flatten() {
        let path = entry.path();
        let record = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        let mut keep = false;
        match record {
            Some(r) if r.boot == boot && r.pid.is_some_and(|p| alive(&r, p)) => {
                let (line, gone) = end_group(&r, patience).await;
                said.push(line);
                keep = !gone;
            }
            Some(r) if r.boot == boot && r.pid.is_none() => {
                if let Some(line) = end_marked(&r, patience).await {
                    said.push(line);
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

/// The marks of the hooks whose records [`end_leftovers`] kept (groups
/// SIGKILL did not end): theirs, not `crate::leftovers`'s to end.
pub fn held_marks(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir.join(DIR)) else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Record>(&b).ok()?.mark)
        .collect()
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
    (patience.signal)(pgid, rustix::process::Signal::TERM);
    let mut how = "ended on SIGTERM".to_string();
    let mut gone = true;
    if !gone_within(pgid, patience.term).await {
        (patience.signal)(pgid, rustix::process::Signal::KILL);
        how = "killed (SIGKILL)".into();
        if !gone_within(pgid, patience.kill).await {
            gone = false;
            how = format!(
                "sent SIGKILL, and some of it still ran {} s later: no promote or demote \
                 of group {} runs here while it does",
                patience.kill.as_secs(),
                r.group()
            );
        }
    }
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
/// SIGTERM, and SIGKILL after [`TERM_GRACE`]; what was done, `None` when
/// none was found (it never started).
async fn end_marked(r: &Record, patience: &Patience) -> Option<String> {
    let mark = RunMark::of(r.mark.as_deref()?);
    let found = mark.marked().len();
    if found == 0 {
        info!(command = %r.command, hook = %r.hook, "a hook the agent's previous process was about to start never ran, or ended");
        return None;
    }
    mark.terminate_marked();
    let until = tokio::time::Instant::now() + patience.term;
    let mut how = "ended on SIGTERM";
    while !mark.marked().is_empty() {
        if tokio::time::Instant::now() >= until {
            mark.kill_marked();
            how = "killed (SIGKILL)";
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    Some(line)
}

/// Why no promote or demote of `group` may run now: a hook of the agent's
/// previous process that SIGKILL did not end at start ([`end_leftovers`]
/// kept its record) still runs. `None` once none does (their records are
/// then removed).
pub fn blocking(state_dir: &Path, group: &str) -> Option<String> {
    let dir = state_dir.join(DIR);
    let entries = std::fs::read_dir(&dir).ok()?;
    let (boot, me) = (boot_id(), std::process::id());
    let mut why = None;
    for path in entries.flatten().map(|e| e.path()) {
        let Some(r) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
        else {
            continue;
        };
        if r.agent == Some(me) || r.group() != group {
            continue;
        }
        let Some(pgid) = r.pid.filter(|&p| r.boot == boot && group_alive(p)) else {
            info!(command = %r.command, hook = %r.hook, "a hook of the agent's previous process that SIGKILL had not ended is gone");
            let _ = std::fs::remove_file(&path);
            continue;
        };
        why.get_or_insert(format!(
            "not run: {} hook {:?} of {}, left running by the agent's previous process \
             (process group {pgid}), still runs after SIGKILL (a process stuck in the \
             kernel: a dead NFS mount, a failing disk), and no hook of group {group} runs \
             beside it; end it (kill -KILL -- -{pgid}) or restart the host, then ask again",
            action(&r.command),
            r.hook,
            r.command,
        ));
    }
    why
}

/// `promote` of `web:3:promote`.
fn action(command: &str) -> &str {
    command.rsplit(':').next().unwrap_or(command)
}

/// `sig` to process group `pgid`.
fn signal_group(pgid: u32, sig: rustix::process::Signal) {
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

/// Waits until no live process is left in group `pgid`, up to `within`.
async fn gone_within(pgid: u32, within: Duration) -> bool {
    let until = tokio::time::Instant::now() + within;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A process of group `pgid` that is not a zombie.
fn group_alive(pgid: u32) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .any(|s| s.pgrp == pgid && s.state != 'Z')
}

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    pgrp: u32,
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `PID (COMM) STATE PPID PGRP … STARTTIME …`; COMM may hold anything,
/// spaces and parentheses too: the fields start after its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_an_odd_command_name() {
        let text = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 2506752 180 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                state: 'S',
                pgrp: 4242,
                start: 987654
            })
        );
        assert_eq!(parse_stat("4242 (cut"), None);
    }

    fn spawn_group(script: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sh")
            .args(["-c", script])
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// The record at `path` as another agent process's (the previous one).
    fn of_a_previous_process(path: &Path) {
        let mut r: Record = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        r.agent = None;
        std::fs::write(path, serde_json::to_vec(&r).unwrap()).unwrap();
    }

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

    /// A hook group that SIGKILL does not end (a stand-in signal sends
    /// nothing: a process stuck in the kernel) keeps its record, and no
    /// promote or demote of its group may run while it lives — said with
    /// how to end it; another group's may. Once it is gone, they may
    /// again and the record is removed. Before, the record was removed at
    /// start and the next command of the group ran its hooks beside it.
    #[tokio::test]
    async fn a_group_sigkill_does_not_end_holds_its_groups_hooks_while_it_lives() {
        let dir = tempfile::tempdir().unwrap();
        let mut stuck = spawn_group("sleep 60");
        let r = intend(dir.path(), &RunMark::new(), "web", "web:3:promote", "db").unwrap();
        r.started(stuck.id());
        of_a_previous_process(&r.path);
        std::mem::forget(r);
        let patience = Patience {
            term: Duration::from_millis(200),
            kill: Duration::from_millis(300),
            signal: |_, _| {},
        };
        let said = end_leftovers_with(dir.path(), &patience).await;
        let refused = blocking(dir.path(), "web");
        let other_group = blocking(dir.path(), "db");
        signal_group(stuck.id(), rustix::process::Signal::KILL);
        let _ = stuck.wait();
        assert!(gone_within(stuck.id(), Duration::from_secs(10)).await);
        let after = blocking(dir.path(), "web");
        assert!(
            said.len() == 1
                && said[0].contains(
                    "was sent SIGKILL, and some of it still ran 0 s later: no promote or \
                     demote of group web runs here while it does"
                ),
            "{said:?}"
        );
        let pgid = stuck.id();
        assert_eq!(
            refused,
            Some(format!(
                "not run: promote hook \"db\" of web:3:promote, left running by the agent's \
                 previous process (process group {pgid}), still runs after SIGKILL (a process \
                 stuck in the kernel: a dead NFS mount, a failing disk), and no hook of group \
                 web runs beside it; end it (kill -KILL -- -{pgid}) or restart the host, then \
                 ask again"
            ))
        );
        assert_eq!(other_group, None);
        assert_eq!(after, None, "still refused once it ended");
        assert_eq!(std::fs::read_dir(dir.path().join(DIR)).unwrap().count(), 0);
    }
}
