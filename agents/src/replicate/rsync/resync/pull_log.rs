//! The log of a resync pull in progress: every itemized line rsync prints
//! is appended to `<manifest>.pulling` as it comes (one `write` per line,
//! no buffer in the process), and the file is removed once the pass has
//! stored its manifest. A pass that finds it was cut off before its
//! manifest (the agent killed — SIGKILL, the OOM killer, a reboot — in the
//! middle of a long pull): the next pass confirms first what the cut-off
//! pull settled ([`confirm`], as a pull that failed midway records), so a
//! file it fetched that the active site's users delete afterwards is
//! deleted here by that pass — not kept as a divergent write and pushed
//! back after the cut-over, undoing an acknowledged delete.
//!
//! Replayed lines are taken as rsync printed them, with one caution: an
//! item rsync names before its transfer ends is confirmed only when the
//! stat here shows it exactly as listed (kind, mtime *and* size), never
//! the size-tolerant match a finished pull allows — a pull only fetches
//! an item whose size or mtime differs here, so the version it replaced
//! cannot pass for it. A last line without its newline (cut by the kill)
//! is dropped. The file lives only as long as the page cache: a power
//! loss may lose it with the files the pull wrote (rsync does not sync
//! them either); a process kill loses nothing.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use tracing::{info, warn};

use super::{confirm, restamp_linked, Settled};
use crate::replicate::manifest::{unescape_name, Listing, Manifest, Stamps};
use crate::replicate::rsync::pull::parse_settled;
use crate::AgentError;

/// `<manifest>.pulling`: the log beside the pair manifest.
pub(super) fn path_of(manifest: &Path) -> PathBuf {
    let mut p = manifest.as_os_str().to_owned();
    p.push(".pulling");
    PathBuf::from(p)
}

/// The log being written by a pull.
pub(super) struct PullLog {
    path: PathBuf,
    /// `None` once a write failed (said once; the pull goes on: only a
    /// kill after it would cost what the log was for).
    file: Option<std::fs::File>,
    line: Vec<u8>,
}

impl PullLog {
    /// A new, empty log at `path` (mode 0600); `None` (with a warning)
    /// when it cannot be created.
    /// `kept`: the names the pull leaves alone (a pass's kept divergent
    /// items, its discards that wait), written after the start: their
    /// ctime may move during the pull (a hard link of a file it replaces)
    /// without the pull writing them ([`CutOff::unlogged`]).
    pub(super) fn create<'a>(path: PathBuf, kept: impl IntoIterator<Item = &'a String>) -> PullLog {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path);
        let file = match file.and_then(|mut f| {
            // When it began: what rsync left half-written during it is no older.
            writeln!(f, "{STARTED}{}", now_ns())?;
            for name in kept {
                // JSON: a name may hold a newline
                let quoted = serde_json::to_string(name).map_err(std::io::Error::other)?;
                writeln!(f, "{KEPT}{quoted}")?;
            }
            Ok(f)
        }) {
            Ok(f) => Some(f),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot write the resync pull's log: a kill during this pull would leave what it fetched unconfirmed");
                None
            }
        };
        PullLog {
            path,
            file,
            line: Vec::new(),
        }
    }

    /// Appends one itemized line (in one write).
    pub(super) fn append(&mut self, line: &str) {
        let Some(f) = self.file.as_mut() else {
            return;
        };
        self.line.clear();
        self.line.extend_from_slice(line.as_bytes());
        self.line.push(b'\n');
        if let Err(e) = f.write_all(&self.line) {
            warn!(path = %self.path.display(), error = %e, "cannot write the resync pull's log: a kill during this pull would leave what it fetched since unconfirmed");
            self.file = None;
        }
    }
}

/// The log's first line: when the pull began (unix ns).
const STARTED: &str = "# warden pull started at ";

/// A line after it for each name the pull leaves alone (a JSON string).
const KEPT: &str = "# kept ";

/// Now on the clock that stamps ctimes (the coarse wall clock: the fine
/// one runs up to a tick ahead of it, and a file created right after
/// would look older than this).
fn now_ns() -> i128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

/// What a pull cut off before its pass stored the manifest left.
pub(super) struct CutOff {
    /// When it began (unix ns; 0 when its log does not say).
    started_ns: i128,
    /// What it settled, in order, as rsync printed it.
    settled: Vec<Settled>,
    /// What it left alone ([`PullLog::create`]).
    kept: BTreeSet<String>,
}

/// The log at `path` of a pull cut off before its pass stored the
/// manifest; `None` when there is no log.
pub(super) fn cut_off(path: &Path) -> std::io::Result<Option<CutOff>> {
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines: Vec<&str> = body
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .collect();
    // After the last newline: empty, or a line the kill cut.
    lines.pop();
    let started_ns = lines
        .first()
        .and_then(|l| l.strip_prefix(STARTED))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let kept = lines
        .iter()
        .filter_map(|l| l.strip_prefix(KEPT))
        .filter_map(|q| serde_json::from_str::<String>(q).ok())
        .collect();
    let settled = lines.into_iter().filter_map(parse_settled).collect();
    Ok(Some(CutOff {
        started_ns,
        settled,
        kept,
    }))
}

impl CutOff {
    /// What it settled, every item as not fetched (see the module docs).
    fn settled(&self) -> Vec<Settled> {
        self.settled
            .iter()
            .map(|it| Settled {
                fetched: false,
                ..it.clone()
            })
            .collect()
    }

    /// Items here (`here`, `stamps`) written since the pull began (their
    /// ctime) that its log does not name and `confirmed` does not call
    /// unchanged. rsync names an item before it transfers it, but the
    /// agent reads the lines from a pipe: killed while lines sat unread
    /// (a loaded host, a pull of many small files), the items they named
    /// arrived unlogged — and so did the temporary file of one cut in the
    /// middle. A returning site serves no users while it resyncs, so such
    /// an item is taken for one the pull fetched from the peer; none when
    /// the log does not say when it began.
    fn unlogged(&self, confirmed: &Manifest, here: &Listing, stamps: &Stamps) -> BTreeSet<String> {
        if self.started_ns <= 0 {
            return BTreeSet::new();
        }
        let logged: BTreeSet<&str> = self.settled.iter().map(|s| s.name.as_str()).collect();
        here.iter()
            .filter(|(name, _)| !logged.contains(name.as_str()) && !self.kept.contains(*name))
            .filter(|(name, item)| {
                stamps.get(*name).is_some_and(|st| {
                    i128::from(st.ctime_ns) >= self.started_ns
                        && !confirmed.unchanged(name, item, Some(st))
                })
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Removes under `root` the temporary files rsync was writing when the
    /// pull was cut off (`.NAME.XXXXXX` beside an item it named for a
    /// transfer that is not here as listed, created since the pull began):
    /// a kill leaves them, and the pass would take one for a divergent
    /// write here — kept, and pushed to the active site after the cut-over.
    /// Returns what it removed.
    fn remove_half_written(&self, root: &Path) -> Vec<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let mut removed = Vec::new();
        for it in self
            .settled
            .iter()
            .filter(|it| it.fetched && it.kind == b'f')
        {
            let path = root.join(std::ffi::OsStr::from_bytes(&unescape_name(&it.name)));
            let arrived = path
                .symlink_metadata()
                .is_ok_and(|m| m.is_file() && m.len() == it.size && m.mtime() == it.mtime);
            let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
                continue;
            };
            if arrived {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                if !rsync_temp_of(name.as_bytes(), base.as_bytes()) {
                    continue;
                }
                let Ok(m) = e.path().symlink_metadata() else {
                    continue;
                };
                let ctime_ns = i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec());
                if m.is_file() && ctime_ns >= self.started_ns && self.started_ns > 0 {
                    match std::fs::remove_file(e.path()) {
                        Ok(()) => removed.push(e.path()),
                        Err(err) => {
                            warn!(path = %e.path().display(), error = %err, "cannot remove what a cut-off pull left half-written")
                        }
                    }
                }
            }
        }
        removed
    }
}

/// Whether `name` is the temporary name rsync gives the file `base` while
/// it arrives: `.` + `base` (cut to fit `NAME_MAX` with its suffix) + `.`
/// + six letters or digits (`mkstemp`'s).
fn rsync_temp_of(name: &[u8], base: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b".") else {
        return false;
    };
    if rest.len() < 8 {
        return false;
    }
    let (middle, suffix) = rest.split_at(rest.len() - 7);
    suffix[0] == b'.'
        && suffix[1..].iter().all(u8::is_ascii_alphanumeric)
        && (middle == base
            // rsync cut a long name (NAME_MAX − 8, less a broken character).
            || (base.len() + 8 > 255 && middle.len() >= 200 && base.starts_with(middle)))
}

/// Removes the log at `path` (gone already is fine).
pub(super) fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl super::RsyncResyncer {
    /// The log of this pair's pulls.
    fn pull_log_path(&self) -> PathBuf {
        path_of(self.manifest.path())
    }

    /// A new log for the pull about to run.
    pub(super) fn start_pull_log<'a>(&self, kept: impl IntoIterator<Item = &'a String>) -> PullLog {
        PullLog::create(self.pull_log_path(), kept)
    }

    /// Whether a pull was cut off before its pass ended (its log is there).
    pub(super) fn pull_cut_off(&self) -> bool {
        self.pull_log_path().exists()
    }

    /// Once the pass's manifest is stored: the log is done with.
    pub(super) async fn end_pull_log(&self) -> Result<(), AgentError> {
        let path = self.pull_log_path();
        tokio::task::spawn_blocking(move || remove(&path))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?
            .map_err(|e| AgentError::LocalTarget {
                path: self.pull_log_path().display().to_string(),
                reason: format!("cannot remove the finished pull's log: {e}"),
            })
    }

    /// The log of a pull cut off before its pass ended, if any, with what
    /// rsync left half-written when it was cut off removed (before the
    /// pass lists the tree).
    pub(super) async fn clear_cut_off(&self) -> Result<Option<CutOff>, AgentError> {
        let path = self.pull_log_path();
        let root = self.settings.source.clone();
        let read_from = path.clone();
        tokio::task::spawn_blocking(move || {
            let cut = cut_off(&read_from)?;
            if let Some(c) = &cut {
                for p in c.remove_half_written(&root) {
                    info!(path = %p.display(), "removed what rsync was writing when a resync pull was cut off");
                }
            }
            Ok::<_, std::io::Error>(cut)
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?
        .map_err(|e| AgentError::LocalTarget {
            path: path.display().to_string(),
            reason: format!("cannot read the log of a pull cut off before its end: {e}"),
        })
    }

    /// `manifest` (as loaded, with the local listing `here`/`stamps` taken
    /// beside it) with what the cut-off pull `cut` settled confirmed and
    /// stored; as it is without one. Also the items
    /// here the cut-off pull may have written without its log saying so
    /// ([`CutOff::unlogged`]).
    pub(super) async fn confirm_cut_off(
        &self,
        cut: Option<CutOff>,
        manifest: Manifest,
        here: &Listing,
        stamps: &Stamps,
    ) -> Result<(Manifest, BTreeSet<String>), AgentError> {
        let Some(cut) = cut else {
            return Ok((manifest, BTreeSet::new()));
        };
        let root = self.settings.source.clone();
        let (here, stamps) = (here.clone(), stamps.clone());
        let (next, lines) = tokio::task::spawn_blocking(move || {
            let settled = cut.settled();
            let (items, new_stamps, _) = confirm(&root, &settled, &manifest, &here, &stamps);
            let mut next = Manifest {
                stamps: new_stamps,
                ..Manifest::confirmed_escaped(items)
            };
            // What the cut-off pull fetched may be linked (`-H`) to names
            // here: those are stamped again, as a pass does.
            let touched: BTreeSet<u64> = settled
                .iter()
                .flat_map(|it| [stamps.get(&it.name), next.stamps.get(&it.name)])
                .flatten()
                .map(|st| st.ino)
                .collect();
            restamp_linked(&root, &mut next, &touched);
            let unlogged = cut.unlogged(&next, &here, &stamps);
            (next, (settled.len(), unlogged))
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?;
        let (lines, unlogged) = lines;
        if !unlogged.is_empty() {
            warn!(
                target = %self.settings.target(),
                items = unlogged.len(),
                "a resync pull was cut off with lines rsync had printed still unread: items written here since it began that its log does not name are taken for what it fetched (the peer lacking one now: moved to the quarantine)"
            );
        }
        info!(
            target = %self.settings.target(),
            settled = lines,
            confirmed = next.items.len(),
            "a resync pull was cut off before its pass ended (the agent stopped): what it settled is confirmed from its log"
        );
        // The log stays until this pass's own pull starts one anew (after
        // its divergent items are set aside): a pass that fails before
        // then leaves the next one what it said, `unlogged` included.
        self.store_manifest(next.clone()).await?;
        Ok((next, unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_gives_back_its_whole_lines_as_not_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_of(&dir.path().join("m.json"));
        assert!(cut_off(&path).unwrap().is_none(), "no log: none");
        let mut log = PullLog::create(path.clone(), &[]);
        log.append(">f+++++++++ 5 2026/12/07-18:00:00 one.txt");
        log.append(".f          3 2026/12/07-18:00:01 two.txt");
        drop(log);
        // A line the kill cut half-way: no newline.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b">f+++++++++ 7 2026/12/07-18:00:02 thr")
            .unwrap();
        let cut = cut_off(&path).unwrap().unwrap();
        assert!(cut.started_ns > 0);
        let got = cut.settled();
        let names: Vec<(&str, bool, u64)> = got
            .iter()
            .map(|s| (s.name.as_str(), s.fetched, s.size))
            .collect();
        assert_eq!(names, vec![("one.txt", false, 5), ("two.txt", false, 3)]);
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(cut_off(&path).unwrap().is_none());
    }

    #[test]
    fn rsync_temporary_names_are_told_from_others() {
        assert!(rsync_temp_of(b".04.dat.ipWUrS", b"04.dat"));
        assert!(!rsync_temp_of(b".04.dat.ipWUr", b"04.dat"));
        assert!(!rsync_temp_of(b".04.dat.ipW-rS", b"04.dat"));
        assert!(!rsync_temp_of(b".05.dat.ipWUrS", b"04.dat"));
        assert!(!rsync_temp_of(b"04.dat.ipWUrS", b"04.dat"));
        let long = vec![b'n'; 250];
        let mut tmp = b".".to_vec();
        tmp.extend_from_slice(&long[..246]);
        tmp.extend_from_slice(b".AbC123");
        assert!(rsync_temp_of(&tmp, &long));
    }

    /// Only beside an item that did not arrive, and only what was created
    /// since the pull began.
    #[test]
    fn only_what_the_cut_off_pull_was_writing_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("d")).unwrap();
        // Older than the pull: someone's file that looks like one.
        std::fs::write(root.join("d/.old.txt.AAAAAA"), b"keep").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let path = path_of(&dir.path().join("m.json"));
        let mut log = PullLog::create(path.clone(), &[]);
        log.append(">f+++++++++ 4 2026/12/07-18:00:00 d/old.txt");
        log.append(">f+++++++++ 9 2026/12/07-18:00:00 d/new.txt");
        drop(log);
        std::fs::write(root.join("d/.new.txt.Zx81Qp"), b"half").unwrap();
        std::fs::write(root.join("d/.other.Zx81Qp"), b"other").unwrap();
        let cut = cut_off(&path).unwrap().unwrap();
        let removed = cut.remove_half_written(&root);
        assert_eq!(removed, vec![root.join("d/.new.txt.Zx81Qp")]);
        assert!(root.join("d/.old.txt.AAAAAA").exists());
        assert!(root.join("d/.other.Zx81Qp").exists());
    }
}
