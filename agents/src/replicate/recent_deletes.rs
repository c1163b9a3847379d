//! The window of recent deletions the mass-delete guard counts with a
//! pass's own ([`DELETE_WINDOW`]), and where it is kept: a plan built with
//! a file keeps the window there too (wall-clock times, small JSON, written
//! whenever the window changes), so neither a restart of the agent nor a
//! plan rebuilt by the next `start` forgets the deletions of the last
//! minute — a source emptied a few files at a time across a crash loop of
//! the agent is held like one emptied under a running agent.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::guard::DELETE_WINDOW;

/// The deletions a replicator's recent passes carried, oldest first: what
/// counts with a pass's own deletions within [`DELETE_WINDOW`]. A plan
/// whose passes run one at a time records a pass once its deletions are
/// done ([`passed`](Self::passed)); the rsync push, whose batches run side
/// by side, records each at its check and takes back one not sent
/// ([`undo`](Self::undo)).
#[derive(Debug, Default)]
pub(crate) struct RecentDeletes {
    entries: VecDeque<(Instant, u64)>,
    /// Where the window is kept across restarts, if anywhere.
    file: Option<PathBuf>,
}

/// The file's form: when (ms since the Unix epoch) and how many.
#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    deleted: Vec<(u64, u64)>,
}

impl RecentDeletes {
    /// The `side`'s window kept beside the plan's `manifest`
    /// (`MANIFEST.push-deletes`, `MANIFEST.resync-deletes`).
    pub(crate) fn beside(manifest: &Path, side: Side) -> Self {
        Self::kept_in(beside(manifest, side))
    }

    /// The window kept in `file`: what it holds from the last
    /// [`DELETE_WINDOW`] is counted from now on. A file that cannot be read
    /// or parsed is reported (the window then starts empty, as before this
    /// file existed); a time in the future (the clock stepped back) counts
    /// as now.
    fn kept_in(file: PathBuf) -> Self {
        let mut r = RecentDeletes {
            entries: VecDeque::new(),
            file: None,
        };
        match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<Kept>(&bytes) {
                Ok(kept) => r.entries = restore(&kept, SystemTime::now(), Instant::now()),
                Err(e) => {
                    warn!(path = %file.display(), cause = %e, "the recent deletions' file is not what warden writes; the mass-delete guard's window starts empty")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %file.display(), cause = %e, "cannot read the recent deletions' file; the mass-delete guard's window starts empty")
            }
        }
        r.file = Some(file);
        r
    }

    /// The deletions of the [`DELETE_WINDOW`] before `now` (older ones are
    /// forgotten).
    pub(crate) fn total(&mut self, now: Instant) -> u64 {
        while self
            .entries
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > DELETE_WINDOW)
        {
            self.entries.pop_front();
        }
        self.entries.iter().map(|(_, n)| n).sum()
    }

    /// A pass checked at `now` deletes `n` items; if the operator
    /// `released` it (`warden clear`), the count starts after it instead.
    pub(crate) fn passed(&mut self, released: bool, now: Instant, n: u64) {
        if released {
            self.entries.clear();
            self.save();
        } else {
            self.add(now, n);
        }
    }

    /// A pass at `now` deleted `n` items.
    pub(crate) fn add(&mut self, now: Instant, n: u64) {
        if n > 0 {
            self.entries.push_back((now, n));
            self.save();
        }
    }

    /// Takes back what [`add`](Self::add) counted at `at` for a pass that
    /// then did not run.
    pub(crate) fn undo(&mut self, at: Instant, n: u64) {
        if let Some(i) = self.entries.iter().position(|&e| e == (at, n)) {
            self.entries.remove(i);
            self.save();
        }
    }

    /// Writes the window to its file (a new file, synced, renamed over the
    /// old one, the directory synced), if it has one: the manifest beside
    /// it is synced at every pass, so the deletions it records survive a
    /// crash of the machine, and the window that counted them must too
    /// (else a restart after a power loss would let the guard pass a
    /// second mass deletion within the window).
    fn save(&self) {
        let Some(file) = &self.file else { return };
        let kept = keep(&self.entries, SystemTime::now(), Instant::now());
        if let Err(e) = write(file, &kept) {
            warn!(path = %file.display(), cause = %e, "cannot keep the recent deletions; a restart of the agent would forget them");
        }
    }
}

/// `entries` in wall-clock time, as of (`wall`, `now`).
fn keep(entries: &VecDeque<(Instant, u64)>, wall: SystemTime, now: Instant) -> Kept {
    let base = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    Kept {
        deleted: entries
            .iter()
            .map(|&(t, n)| {
                let at = base.saturating_sub(now.saturating_duration_since(t));
                (u64::try_from(at.as_millis()).unwrap_or(u64::MAX), n)
            })
            .collect(),
    }
}

/// What `kept` holds from the [`DELETE_WINDOW`] before `wall`, as instants
/// relative to `now`.
fn restore(kept: &Kept, wall: SystemTime, now: Instant) -> VecDeque<(Instant, u64)> {
    let base = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    kept.deleted
        .iter()
        .filter_map(|&(ms, n)| {
            let age = base.saturating_sub(Duration::from_millis(ms));
            (age <= DELETE_WINDOW && n > 0).then(|| (now.checked_sub(age).unwrap_or(now), n))
        })
        .collect()
}

fn write(file: &Path, kept: &Kept) -> std::io::Result<()> {
    // Beside the manifest, whose directory may not be there yet (it is
    // made at the manifest's first save).
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    warden_config::durable::replace(file, &serde_json::to_vec(kept)?)
}

/// Which of a site's plans keeps the window: its push (or copier) deletes
/// at the peer, its resync here, so each keeps its own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    Push,
    Resync,
}

/// The file beside a plan's `manifest` where the `side`'s window is kept.
fn beside(manifest: &Path, side: Side) -> PathBuf {
    let mut p = manifest.as_os_str().to_owned();
    p.push(match side {
        Side::Push => ".push-deletes",
        Side::Resync => ".resync-deletes",
    });
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_deletes_expire_and_a_pass_not_run_is_taken_back() {
        let t0 = Instant::now();
        let mut r = RecentDeletes::default();
        r.add(t0, 3);
        r.add(t0 + Duration::from_secs(10), 0);
        r.add(t0 + Duration::from_secs(20), 2);
        assert_eq!(r.total(t0 + Duration::from_secs(30)), 5);
        r.undo(t0 + Duration::from_secs(20), 2);
        assert_eq!(r.total(t0 + Duration::from_secs(30)), 3, "taken back");
        r.undo(t0 + Duration::from_secs(20), 2);
        assert_eq!(r.total(t0 + Duration::from_secs(30)), 3, "only once");
        assert_eq!(r.total(t0 + DELETE_WINDOW + Duration::from_secs(1)), 0);
        r.passed(false, t0 + DELETE_WINDOW, 4);
        assert_eq!(r.total(t0 + DELETE_WINDOW), 4);
        r.passed(true, t0 + DELETE_WINDOW, 9);
        assert_eq!(
            r.total(t0 + DELETE_WINDOW),
            0,
            "released: counted from here"
        );
    }

    #[test]
    fn the_window_is_kept_in_its_file_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        // In a directory not made yet (the manifest's, before its first save).
        let file = beside(
            &dir.path().join("state/data.warden-manifest.json"),
            Side::Push,
        );
        assert!(file.ends_with("state/data.warden-manifest.json.push-deletes"));
        let now = Instant::now();
        let mut r = RecentDeletes::kept_in(file.clone());
        assert_eq!(r.total(now), 0, "no file yet: an empty window");
        r.add(now, 3);
        r.add(now, 2);
        drop(r);
        let mut again = RecentDeletes::kept_in(file.clone());
        assert_eq!(
            again.total(Instant::now()),
            5,
            "the restarted plan counts them"
        );
        let at = Instant::now();
        again.add(at, 4);
        again.undo(at, 4);
        assert_eq!(
            RecentDeletes::kept_in(file.clone()).total(Instant::now()),
            5
        );
        again.passed(true, Instant::now(), 7);
        assert_eq!(
            RecentDeletes::kept_in(file.clone()).total(Instant::now()),
            0,
            "the operator's release is kept too"
        );
    }

    #[test]
    fn a_kept_window_keeps_only_its_last_minute() {
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now = Instant::now();
        let ms = |secs_ago: u64| (1_800_000_000 - secs_ago) * 1000;
        let kept = Kept {
            deleted: vec![(ms(120), 50), (ms(59), 3), (ms(1), 2), (ms(0) + 30_000, 4)],
        };
        let mut r = RecentDeletes {
            entries: restore(&kept, wall, now),
            file: None,
        };
        // Two minutes old: gone; the one from the future (the clock stepped
        // back since) counts as now.
        assert_eq!(r.total(now), 9);
        assert_eq!(
            r.total(now + Duration::from_secs(2)),
            6,
            "the oldest expires"
        );
        // And back: the same wall-clock times.
        let round = keep(&r.entries, wall, now);
        assert_eq!(round.deleted, vec![(ms(1), 2), (ms(0), 4)]);
    }

    #[test]
    fn a_damaged_file_starts_an_empty_window_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w");
        std::fs::write(&file, b"{not json").unwrap();
        let mut r = RecentDeletes::kept_in(file.clone());
        assert_eq!(r.total(Instant::now()), 0);
        r.add(Instant::now(), 1);
        assert_eq!(RecentDeletes::kept_in(file).total(Instant::now()), 1);
    }
}
