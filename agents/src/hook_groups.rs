//! The running hooks' process groups, recorded in the site's `state_dir`
//! (`running-hooks/PID.json`) for as long as each hook runs, and those an
//! agent's previous process left running, ended at start.
//!
//! A hook runs in its own process group: an agent killed with SIGKILL (the
//! OOM killer, `systemctl kill -s KILL`, a crash) leaves it running, and the
//! restarted agent — or the orchestrator asking again — could start the
//! opposite command (a demote) while the old promote hook still runs: two
//! hooks fighting over the site's role. So each running hook is recorded by
//! its process id (its group's id), its start time in `/proc/PID/stat` and
//! the boot id (a reused process id, or one of an earlier boot, is told
//! apart), and at start, before it takes any command, the agent ends every
//! hook group of its previous life still running: SIGTERM, up to
//! [`TERM_GRACE`] to end, then SIGKILL, and it waits (up to [`KILL_WAIT`])
//! until no process of the group is left ([`end_leftovers`]). A hook that
//! ended in the meantime (its leader gone) keeps what it started, as any
//! hook that ends does.
//!
//! What the hook moved out of its group (`setsid`, a double fork) is found
//! by its run's mark, recorded too (`warden_config::run_mark`), and killed
//! after the group.
//!
//! Limits: a hook is recorded just after it started (an agent killed in that
//! instant leaves it unrecorded); what left the group with another
//! environment is not found (see `run_mark`); Linux only (`/proc`),
//! elsewhere nothing is found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// The directory of the records in the site's `state_dir`.
const DIR: &str = "running-hooks";

/// How long a leftover hook group gets to end after SIGTERM.
pub const TERM_GRACE: Duration = Duration::from_secs(5);

/// How long the agent waits for a group to be gone after SIGKILL (a process
/// stuck in the kernel, on a dead NFS mount, does not die at once).
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// One running hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// Its process id, also its process group's id.
    pid: u32,
    /// Its start time (clock ticks after boot, `/proc/PID/stat` field 22).
    start: u64,
    /// `/proc/sys/kernel/random/boot_id` when it started.
    boot: String,
    /// Its run's mark (`warden_config::run_mark`): what it moved out of its
    /// group is found by it.
    #[serde(default)]
    mark: Option<String>,
    command: String,
    hook: String,
}

/// A hook's record, removed when dropped (the hook ended, or was killed
/// with its run).
#[derive(Debug)]
pub struct Recorded(PathBuf);

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(path = %self.0.display(), cause = %e, "cannot remove a finished hook's record");
            }
        }
    }
}

/// Record hook `hook` of `command`, process `pid`, as running in
/// `state_dir`. A record that cannot be written is logged and the hook runs
/// on: it only would not be found after an agent's crash.
pub fn record(
    state_dir: &Path,
    pid: u32,
    mark: &str,
    command: &str,
    hook: &str,
) -> Option<Recorded> {
    let Some(stat) = stat(pid) else {
        return None; // ended already
    };
    let dir = state_dir.join(DIR);
    let path = dir.join(format!("{pid}.json"));
    let r = Record {
        pid,
        start: stat.start,
        boot: boot_id(),
        mark: Some(mark.to_string()),
        command: command.to_string(),
        hook: hook.to_string(),
    };
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| serde_json::to_vec(&r).map_err(|e| e.to_string()))
        .and_then(|body| warden_config::durable::replace(&path, &body).map_err(|e| e.to_string()));
    match written {
        Ok(()) => Some(Recorded(path)),
        Err(e) => {
            warn!(path = %path.display(), cause = %e, hook, "cannot record a running hook: should this agent be killed while it runs, its next start will not end it");
            None
        }
    }
}

/// End the hook groups the agent's previous process left running (module
/// docs); one line per group ended, for the log and the next outcome.
pub async fn end_leftovers(state_dir: &Path) -> Vec<String> {
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
        match record {
            Some(r) if r.boot == boot && stat(r.pid).is_some_and(|s| s.start == r.start) => {
                said.push(end_group(&r).await);
            }
            Some(r) => {
                info!(command = %r.command, hook = %r.hook, pid = r.pid, "a hook of the agent's previous process ended on its own");
            }
            None => warn!(path = %path.display(), "an unreadable running-hook record: removed"),
        }
        let _ = std::fs::remove_file(&path);
    }
    said
}

/// SIGTERM to `r`'s group, SIGKILL after [`TERM_GRACE`], then wait until
/// it is gone; what was done.
async fn end_group(r: &Record) -> String {
    warn!(command = %r.command, hook = %r.hook, group = r.pid, "a hook of the agent's previous process still runs: ending its process group before taking any command");
    let mut group = warden_config::child::GroupKill::new(Some(r.pid));
    group.terminate();
    let mut how = "ended on SIGTERM";
    if !gone_within(r.pid, TERM_GRACE).await {
        group.kill_now();
        how = "killed (SIGKILL)";
        if !gone_within(r.pid, KILL_WAIT).await {
            how = "sent SIGKILL (some of it had not ended 10 s later)";
        }
    }
    group.disarm();
    // What it moved out of its group (`setsid`, a double fork) goes too.
    let strays = r
        .mark
        .as_deref()
        .map_or(0, |m| warden_config::run_mark::RunMark::of(m).kill_marked());
    let strays = match strays {
        0 => String::new(),
        1 => ", with 1 process it had moved out of its group,".into(),
        n => format!(", with {n} processes it had moved out of its group,"),
    };
    let line = format!(
        "{} hook {:?} of {}, left running by the agent's previous process \
         (process group {}), was {how}{strays} before this agent took any command",
        action(&r.command),
        r.hook,
        r.command,
        r.pid
    );
    warn!("{line}");
    line
}

/// `promote` of `web:3:promote`.
fn action(command: &str) -> &str {
    command.rsplit(':').next().unwrap_or(command)
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

    /// A hook still running from a previous life (its record left) is
    /// ended with its whole group; a record whose process is another one
    /// (a reused process id: another start time) ends nothing.
    #[tokio::test]
    async fn a_recorded_group_still_running_is_ended_and_a_reused_pid_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let spawn = || {
            use std::os::unix::process::CommandExt;
            std::process::Command::new("sh")
                .args(["-c", "trap '' TERM; sleep 60 & wait"])
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let (mut hook, mut other) = (spawn(), spawn());
        let kept = record(dir.path(), hook.id(), "m1", "web:3:promote", "db").unwrap();
        std::mem::forget(kept);
        let reused = record(dir.path(), other.id(), "m2", "web:2:demote", "db").unwrap();
        let path = reused.0.clone();
        std::mem::forget(reused);
        let mut r: Record = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        r.start += 1;
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
}
