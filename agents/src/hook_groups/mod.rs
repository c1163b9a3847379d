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
//! reused process id, or one of an earlier boot, is told apart). This
//! module owns that record: written before the hook starts, completed once
//! it runs, removed when it ends. A hook's mark is bound to the `state_dir`.
//!
//! What reads the records has a room of its own:
//! - `startup`: at start, before it takes any command, the agent ends every
//!   hook of its previous life still running ([`end_leftovers`]);
//! - `held`: a group still there after SIGKILL keeps its record and holds
//!   its group's promotes and demotes while it lives ([`blocking`]); it is
//!   not `crate::leftovers`'s to end ([`held_marks`]);
//! - `procfs`: what `/proc` says of a process and its group.
//!
//! Limits: what left the group with another environment is not found (see
//! `run_mark`); a hook that ended on its own before its process was
//! recorded has what it started ended too; Linux only (`/proc`),
//! elsewhere nothing is found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;
use warden_config::run_mark::RunMark;

mod held;
mod procfs;
mod startup;

pub use held::{blocking, held_marks};

pub use startup::{end_leftovers, KILL_WAIT, TERM_GRACE};

use procfs::{boot_id, stat};

/// The directory of the records in the site's `state_dir`.
const DIR: &str = "running-hooks";

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

/// Every record in `state_dir` with its path; `None` for one that cannot
/// be read or parsed.
fn records(state_dir: &Path) -> Vec<(PathBuf, Option<Record>)> {
    let Ok(entries) = std::fs::read_dir(state_dir.join(DIR)) else {
        return vec![];
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            let record = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
            (path, record)
        })
        .collect()
}

/// `promote` of `web:3:promote`.
fn action(command: &str) -> &str {
    command.rsplit(':').next().unwrap_or(command)
}

/// A shell script run in a process group of its own, as a hook is.
#[cfg(test)]
fn spawn_group(script: &str) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    std::process::Command::new("sh")
        .args(["-c", script])
        .process_group(0)
        .spawn()
        .unwrap()
}
