//! One agent per state directory: [`StateLock`] holds an exclusive lock on
//! `STATE_DIR/agent.lock` for as long as the agent runs.
//!
//! Two agents of one site — a `warden agent` started by hand beside the
//! service's, a new container started before the old one stopped, a unit
//! copied under a second name — would each take every order the
//! orchestrator hands the site: the promote hooks run twice at once, two
//! replicators push from one tree, and each process writes its own memory
//! of the highest epochs into `authority.json`, so one's write can take
//! back an epoch the other raised. The second one therefore refuses to
//! start, naming the process that holds the directory.
//!
//! The lock is the kernel's ([`warden_config::dir_lock`]): it ends with the
//! agent however the agent ends, and a daemon a hook started does not keep
//! the directory locked after it.

use std::path::Path;

use warden_config::dir_lock::{DirLock, Refused};

use crate::error::AgentError;

/// The lock file's name in the site's `state_dir`.
const LOCK_NAME: &str = "agent.lock";

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct StateLock {
    _lock: DirLock,
}

impl StateLock {
    /// Lock `dir` (created if missing) for the agent of `site`; an error
    /// when another process holds it.
    pub(crate) fn acquire(dir: &Path, site: &str) -> Result<StateLock, AgentError> {
        match DirLock::acquire(dir, LOCK_NAME) {
            Ok(lock) => Ok(StateLock { _lock: lock }),
            Err(Refused::Held(holder)) => Err(AgentError::AlreadyRunning {
                site: site.to_string(),
                dir: dir.display().to_string(),
                holder,
            }),
            Err(Refused::Io(detail)) => Err(AgentError::State {
                path: dir.join(LOCK_NAME).display().to_string(),
                detail,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// The lock of `dir`, taken within a few seconds: a process another
    /// test forks holds a copy of every descriptor of this one until it
    /// execs (close-on-exec), a moment at most.
    fn acquire_soon(dir: &Path) -> Result<StateLock, AgentError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match StateLock::acquire(dir, "a") {
                Err(AgentError::AlreadyRunning { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                other => return other,
            }
        }
    }

    /// A second agent is refused while the first runs, naming it; once the
    /// first is gone an agent starts, even when a process it started (a
    /// hook's daemon) outlives it.
    #[test]
    fn a_second_agent_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire_soon(dir.path()).unwrap();
        let e = StateLock::acquire(dir.path(), "a").unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, AgentError::AlreadyRunning { .. })
                && text.contains(&format!("pid {}", std::process::id()))
                && text.contains(&dir.path().display().to_string()),
            "{text}"
        );
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        drop(first);
        let again = acquire_soon(dir.path());
        let _ = child.kill();
        let _ = child.wait();
        again.expect("free once the first is gone, whatever it started");
    }
}
