//! One process per state directory: [`DirLock`] holds an exclusive lock on
//! a file in the directory for as long as the process runs (the agent's
//! `STATE_DIR/agent.lock`, the orchestrator's `DATA_DIR/orchestrator.lock`).
//!
//! The lock is the kernel's (`flock`), not a pid file: it ends with its
//! process however that process ends (a crash, SIGKILL, a power loss), so
//! no stale pid ever keeps a process from starting, and a pid reused by
//! another program is never mistaken for the holder. The file is opened
//! close-on-exec: a daemon a hook started does not inherit it and keep the
//! directory locked after its process ends. The pid written into it only
//! names the holder to the process refused.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Why a directory could not be locked.
#[derive(Debug)]
pub enum Refused {
    /// Another process holds it: "pid N" (or "another process").
    Held(String),
    /// The directory or the lock file cannot be made or locked.
    Io(String),
}

impl DirLock {
    /// Lock `dir` (created if missing) through its file `name`.
    pub fn acquire(dir: &Path, name: &str) -> Result<DirLock, Refused> {
        let path = dir.join(name);
        std::fs::create_dir_all(dir).map_err(|e| Refused::Io(format!("cannot create it: {e}")))?;
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Refused::Io(format!("cannot open {}: {e}", path.display())))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(Refused::Held(holder(&mut file))),
            Err(e) => return Err(Refused::Io(format!("cannot lock {}: {e}", path.display()))),
        }
        // Best effort: the pid only names the holder to a second process.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        Ok(DirLock { _file: file })
    }
}

/// Who holds the lock, as its file says ("pid N"), or "another process".
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.take(32).read_to_string(&mut text);
    match text.trim().parse::<u32>() {
        Ok(pid) => format!("pid {pid}"),
        Err(_) => "another process".to_string(),
    }
}
