//! Durable small files for every process's own state (the agent's
//! authority, the frontend's fence, the replicators' delete windows): the
//! whole file written to a temporary file of this process, synced, renamed
//! into place, and the directory synced, so that a crash leaves the old
//! file or the new one, never a mix, and a write that returned survives a
//! power loss. A marker file (created once, never changed) the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name of `path` for this process: `NAME.tmp.PID` beside
/// it (two processes wrongly sharing a directory never rename each
/// other's half-written file).
pub fn temporary(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    PathBuf::from(tmp)
}

/// Replace `path` with `body`, durably (see the module docs). The
/// directory must exist.
pub fn replace(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = temporary(path);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Create `path` with `body` unless it exists, durably.
pub fn mark(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut f = std::fs::File::create(path)?;
    f.write_all(body)?;
    f.sync_all()?;
    sync_dir(path)
}

/// Remove `path` durably (the directory synced); a file already gone is
/// removed too.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_whole_and_marks_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        super::replace(&p, b"one").unwrap();
        super::replace(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!super::temporary(&p).exists(), "no temporary left");
        let m = dir.path().join("marker");
        super::mark(&m, b"a\n").unwrap();
        super::mark(&m, b"b\n").unwrap();
        assert_eq!(std::fs::read(&m).unwrap(), b"a\n", "written once");
    }
}
