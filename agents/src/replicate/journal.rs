//! The change journal of a site's data directory: a recursive inotify watch
//! that records which names changed, in order, from the moment it started.
//! The active site keeps one during a failback (the orchestrator's `journal`
//! command) so the cut-over's final pass at the returning site can cover
//! only what changed since the resync began, not the whole tree.
//!
//! What it promises: every change made in the tree after [`ChangeJournal::mark`]
//! and before [`ChangeJournal::since`] is called is among the names `since`
//! returns — or `since` says it cannot tell (an inotify queue overflow or
//! error, more names than it keeps, another journal's mark). Before it
//! answers, `since` flushes the inotify queue with a barrier: a file created
//! in a private directory watched by the same inotify instance, whose event
//! comes after every event queued before it (one inotify queue is FIFO), so
//! a write acknowledged before the demote's hooks ended is never missed.
//! Directories created after the mark are named themselves (the final pass
//! sends their subtree), so inotify's gap between a new directory and its
//! watch does not matter.
//!
//! Some changes send no event into the tree at all: a write through a shared
//! mapping (`mmap`; inotify(7)), or through a hard link outside the tree.
//! The kernel moves the file's ctime all the same (no user can set it), so
//! `since` also names every regular file whose ctime is not older than the
//! mark, read on the clock file timestamps take (`CLOCK_REALTIME_COARSE`):
//! a stat of each file, at the cut-over, far less than a full pass's walk of
//! both sites and their listing.
//!
//! inotify watches the directory, not its path: once the path names
//! another directory (the data directory removed or renamed away and
//! another put in its place, a filesystem mounted or unmounted there, a
//! symlink on the way turned), nothing written there is seen. The journal
//! then cannot tell: an event on the root itself that removes or moves it
//! breaks it, and `since` compares the path's directory with the one
//! watched (a mount or a symlink turned sends no event to the watch).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::clock_set::ClockSet;
use crate::wire::JournalMark;
use crate::AgentError;

/// Names kept before the journal gives up (it then says it cannot tell).
pub const MAX_NAMES: usize = 200_000;

/// How long [`ChangeJournal::since`] waits for its barrier event.
const BARRIER_WAIT: Duration = Duration::from_secs(5);

/// `.` in a journal: the root directory itself (its own attributes).
pub const ROOT: &str = ".";

#[derive(Default)]
struct State {
    seq: u64,
    /// Relative name → the seq of its latest change.
    names: HashMap<PathBuf, u64>,
    /// Why the journal can no longer say what changed.
    broken: Option<String>,
    /// Barrier files whose event arrived.
    barriers: HashSet<OsString>,
    /// Each mark's seq → when it was first handed out: ns on the clock of
    /// file timestamps, and on the monotonic clock (how long ago, whatever
    /// the wall clock did since); and a watch that tells whether the wall
    /// clock was set since (`None`: the kernel gave none).
    marked: HashMap<u64, (i128, std::time::Instant, Option<ClockSet>)>,
}

/// Now on the clock the kernel stamps file times with (ns since the epoch).
fn coarse_now() -> i128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

/// One tick of the coarse clock file times are stamped with (its
/// resolution: 4 ms at HZ=250), and a nanosecond.
fn coarse_tick_ns() -> i128 {
    let t = rustix::time::clock_getres(rustix::time::ClockId::RealtimeCoarse);
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec) + 1
}

/// How long [`ChangeJournal::since`] may look through the tree for changes
/// without events: longer, and it cannot tell (a full final pass; the
/// demote waiting on it must end well within its step).
const SCAN_BUDGET: Duration = Duration::from_secs(10);

/// The regular files under `root` (symlinks not followed) whose ctime is at
/// or after `since` (ns): changed, whether or not inotify said so. Gives up
/// after `budget`.
fn changed_since(root: &Path, since: i128, budget: Duration) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let deadline = std::time::Instant::now() + budget;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        if std::time::Instant::now() >= deadline {
            return Err(std::io::Error::other(format!(
                "the tree took more than {} s to look through",
                budget.as_secs()
            )));
        }
        let entries = match std::fs::read_dir(root.join(&rel)) {
            Ok(e) => e,
            // Removed meanwhile: its removal is an event.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => {
                continue
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = rel.join(entry.file_name());
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                stack.push(name);
            } else if meta.is_file()
                && i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()) >= since
            {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// A running journal; dropping it stops the watch and removes its barrier
/// directory.
pub struct ChangeJournal {
    id: u64,
    root: PathBuf,
    barrier_dir: PathBuf,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    /// The watched directory: its canonical path and `(st_dev, st_ino)`,
    /// taken before the watch began.
    watched: (PathBuf, (u64, u64)),
    _watcher: notify::RecommendedWatcher,
}

/// The canonical path and `(st_dev, st_ino)` of the directory `path` names now.
fn dir_id(path: &Path) -> std::io::Result<(PathBuf, (u64, u64))> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&real)?;
    Ok((real, (meta.dev(), meta.ino())))
}

impl std::fmt::Debug for ChangeJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeJournal")
            .field("id", &self.id)
            .finish()
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChangeJournal {
    /// Watches `root` (recursively, symlinks not followed) and
    /// `barrier_dir` (made here, private, outside `root`). Blocking: the
    /// recursive watch visits every directory; run it off the async threads.
    pub fn start(root: &Path, barrier_dir: &Path) -> Result<ChangeJournal, AgentError> {
        let watch_err = |path: &Path, e: String| AgentError::Watch {
            path: path.display().to_string(),
            reason: e,
        };
        if barrier_dir.starts_with(root) {
            return Err(watch_err(
                barrier_dir,
                "the journal's barrier directory must be outside the data directory".into(),
            ));
        }
        let _ = std::fs::remove_dir_all(barrier_dir);
        std::fs::create_dir_all(barrier_dir).map_err(|e| watch_err(barrier_dir, e.to_string()))?;
        let _ = std::fs::set_permissions(
            barrier_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        );
        let watched = dir_id(root).map_err(|e| watch_err(root, e.to_string()))?;
        let state = Arc::new(Mutex::new(State::default()));
        let arrived = Arc::new(Notify::new());
        let handler = {
            let (state, arrived) = (state.clone(), arrived.clone());
            let (root, barriers) = (root.to_path_buf(), barrier_dir.to_path_buf());
            move |res: notify::Result<notify::Event>| {
                let mut st = lock(&state);
                match res {
                    Err(e) => {
                        if st.broken.is_none() {
                            warn!(cause = %e, "change journal: inotify error; it can no longer tell what changed");
                            st.broken = Some(format!("inotify error: {e}"));
                        }
                    }
                    Ok(ev) if ev.need_rescan() => {
                        if st.broken.is_none() {
                            warn!("change journal: inotify queue overflow; it can no longer tell what changed");
                            st.broken = Some("the inotify queue overflowed".into());
                        }
                    }
                    Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => {}
                    Ok(ev) => {
                        for p in &ev.paths {
                            if let Ok(rel) = p.strip_prefix(&barriers) {
                                st.barriers.insert(rel.as_os_str().to_owned());
                                arrived.notify_waiters();
                            } else if let Ok(rel) = p.strip_prefix(&root) {
                                if st.broken.is_some() {
                                    continue;
                                }
                                st.seq += 1;
                                let seq = st.seq;
                                let name = if rel.as_os_str().is_empty() {
                                    if matches!(
                                        ev.kind,
                                        notify::EventKind::Remove(_)
                                            | notify::EventKind::Modify(
                                                notify::event::ModifyKind::Name(_)
                                            )
                                    ) {
                                        warn!("change journal: the data directory itself was removed or moved away; it can no longer tell what changed");
                                        st.names.clear();
                                        st.broken = Some(
                                            "the data directory itself was removed or moved away"
                                                .into(),
                                        );
                                        continue;
                                    }
                                    PathBuf::from(ROOT)
                                } else {
                                    rel.to_path_buf()
                                };
                                st.names.insert(name, seq);
                                if st.names.len() > MAX_NAMES {
                                    st.names.clear();
                                    st.broken =
                                        Some(format!("more than {MAX_NAMES} names changed"));
                                }
                            }
                        }
                    }
                }
            }
        };
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = notify::RecommendedWatcher::new(handler, config)
            .map_err(|e| watch_err(root, e.to_string()))?;
        watcher
            .watch(barrier_dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_err(barrier_dir, e.to_string()))?;
        watcher.watch(root, RecursiveMode::Recursive).map_err(|e| {
            watch_err(
                root,
                format!("{e}; check the path and fs.inotify.max_user_watches"),
            )
        })?;
        let id = journal_id();
        debug!(id, root = %root.display(), "change journal started");
        Ok(ChangeJournal {
            id,
            root: root.to_path_buf(),
            barrier_dir: barrier_dir.to_path_buf(),
            state,
            arrived,
            watched,
            _watcher: watcher,
        })
    }

    /// The directory it watches.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the journal stands now.
    pub fn mark(&self) -> JournalMark {
        let mut st = lock(&self.state);
        let seq = st.seq;
        st.marked.entry(seq).or_insert_with(|| {
            // Armed before the wall time is read: a set in between is seen.
            let clock = match ClockSet::arm() {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!(cause = %e, "change journal: no timerfd to see the wall clock set; a clock set back and forward again after this mark goes unseen");
                    None
                }
            };
            (coarse_now(), std::time::Instant::now(), clock)
        });
        JournalMark { id: self.id, seq }
    }

    /// [`ChangeJournal::mark`] after a flush: changes made before the call
    /// are before the mark (without the flush they may land after it, which
    /// only names them once more).
    pub async fn mark_flushed(&self) -> Result<JournalMark, String> {
        self.flush().await?;
        Ok(self.mark())
    }

    /// Every name changed after `mark`, sorted, once the inotify queue was
    /// flushed; `Err` says why the journal cannot tell.
    pub async fn since(&self, mark: JournalMark) -> Result<Vec<PathBuf>, String> {
        if mark.id != self.id {
            return Err(format!(
                "the mark is of journal {:x}, this site keeps journal {:x} (its agent restarted or another journal began)",
                mark.id, self.id
            ));
        }
        self.flush().await?;
        if let Some(why) = &lock(&self.state).broken {
            return Err(why.clone());
        }
        match dir_id(&self.root) {
            Ok(now) if now == self.watched => {}
            Ok(_) => {
                return Err(format!(
                    "{} is no longer the directory journaled (replaced, a filesystem mounted or \
                     unmounted there, or a symlink on the way turned)",
                    self.root.display()
                ))
            }
            Err(e) => return Err(format!("{}: {e}", self.root.display())),
        }
        let (mut names, since) = {
            let st = lock(&self.state);
            if mark.seq > st.seq {
                return Err(format!(
                    "the mark ({}) is ahead of the journal ({})",
                    mark.seq, st.seq
                ));
            }
            let Some((wall, at, clock)) = st.marked.get(&mark.seq) else {
                return Err(format!("the mark ({}) was never handed out", mark.seq));
            };
            let (wall, at) = (*wall, *at);
            // Set since the mark (back and forward again, or any step): a
            // file changed without an event meanwhile may be stamped before
            // any cut-off this could take.
            if clock.as_ref().is_some_and(ClockSet::was_set) {
                return Err(
                    "the wall clock was set since the mark: a change that sent no event \
                     (a shared mapping, a hard link outside the tree) cannot be told by its \
                     ctime"
                        .into(),
                );
            }
            // The wall clock set back since the mark (an NTP step): a file
            // changed since is stamped before the mark's wall time. Counted
            // back from now by the time really passed, the cut-off is as
            // far back as the clock went (naming more is only safe).
            // Less one tick of the coarse clock: a file changed in the
            // mark's own tick is stamped with that tick's start, before
            // the exact time passed says.
            let passed = i128::try_from(at.elapsed().as_nanos()).unwrap_or(i128::MAX);
            let since = wall.min(
                coarse_now()
                    .saturating_sub(passed)
                    .saturating_sub(coarse_tick_ns()),
            );
            let names: HashSet<PathBuf> = st
                .names
                .iter()
                .filter(|(_, seq)| **seq > mark.seq)
                .map(|(n, _)| n.clone())
                .collect();
            (names, since)
        };
        // What changed without an event (a shared mapping, a link outside).
        let root = self.root.clone();
        let silent = tokio::task::spawn_blocking(move || changed_since(&root, since, SCAN_BUDGET))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot look for changes without events: {e}"))?;
        names.extend(silent);
        if names.len() > MAX_NAMES {
            return Err(format!("more than {MAX_NAMES} names changed"));
        }
        // A name reached through what is no directory now (a directory
        // replaced by a symlink after its entries changed): that link or
        // file is named instead. The returning site's pull of the name
        // would have the daemon follow the link and make it a directory
        // there holding what is behind it; and a name under another one
        // adds nothing to its pull (`-r`) but that.
        let root = self.root.clone();
        let names = tokio::task::spawn_blocking(move || {
            let names = names
                .into_iter()
                .map(|n| crate::replicate::rsync::non_dir_ancestor(&root, &n).unwrap_or(n))
                .collect();
            crate::replicate::rsync::without_nested(names)
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(names)
    }

    /// Creates a barrier file and waits for its event: every event queued
    /// before it has then been recorded.
    async fn flush(&self) -> Result<(), String> {
        let name = OsString::from(format!("barrier-{}", next_barrier()));
        let path = self.barrier_dir.join(&name);
        let arrived = self.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        std::fs::write(&path, b"")
            .map_err(|e| format!("cannot write the journal's barrier {}: {e}", path.display()))?;
        let deadline = tokio::time::Instant::now() + BARRIER_WAIT;
        let result = loop {
            if lock(&self.state).barriers.remove(&name) {
                break Ok(());
            }
            if tokio::time::timeout_at(deadline, arrived.as_mut())
                .await
                .is_err()
            {
                break Err(format!(
                    "the journal's barrier event did not arrive within {} s",
                    BARRIER_WAIT.as_secs()
                ));
            }
            arrived.set(self.arrived.notified());
            arrived.as_mut().enable();
        };
        let _ = std::fs::remove_file(&path);
        result
    }
}

impl Drop for ChangeJournal {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.barrier_dir);
    }
}

/// A journal id unlikely to repeat across agent restarts: time and pid.
fn journal_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ (u64::from(std::process::id()) << 48) ^ next_barrier().rotate_left(32)
}

fn next_barrier() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wall_clock_set_back_after_the_mark_still_names_a_silent_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("f.txt"), "v1").unwrap();
        let outside = dir.path().join("outside-link");
        std::fs::hard_link(root.join("f.txt"), &outside).unwrap();
        let j = ChangeJournal::start(&root, &dir.path().join("barrier")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mark = j.mark_flushed().await.unwrap();
        // The mark as if taken on a wall clock set back 60 s since (an NTP
        // step): its wall time is 60 s ahead of the file times stamped now.
        lock(&j.state).marked.get_mut(&mark.seq).unwrap().0 += 60_000_000_000;
        // (No real step of the clock here: its watch would say "cannot
        // tell". `tests/journal_clock.rs` steps it.)
        // A write that sends no event: through a link outside the tree.
        std::fs::write(&outside, "v2, through a link outside the tree").unwrap();
        let names = j.since(mark).await.unwrap();
        assert!(names.contains(&PathBuf::from("f.txt")), "{names:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn names_what_changed_after_the_mark_and_nothing_before() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("old/deep")).unwrap();
        std::fs::write(root.join("old/deep/kept.txt"), "x").unwrap();
        let j = ChangeJournal::start(&root, &dir.path().join("barrier")).unwrap();
        std::fs::write(root.join("before.txt"), "before the mark").unwrap();
        // Past the clock tick of that write and the one kept for it: a
        // file changed within a tick or two of the mark is named too, as
        // its ctime cannot tell.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mark = j.mark_flushed().await.unwrap();
        let empty = j.since(mark).await.unwrap();
        assert!(empty.is_empty(), "{empty:?}");
        std::fs::write(root.join("top.txt"), "new").unwrap();
        std::fs::write(root.join("old/deep/kept.txt"), "rewritten").unwrap();
        std::fs::create_dir_all(root.join("new/a/b")).unwrap();
        std::fs::write(root.join("new/a/b/f.txt"), "in a new dir").unwrap();
        std::fs::rename(root.join("before.txt"), root.join("renamed.txt")).unwrap();
        std::fs::remove_dir_all(root.join("old/deep")).unwrap();
        // Right before asking: the barrier makes it count.
        std::fs::write(root.join("last.txt"), "last").unwrap();
        let names = j.since(mark).await.unwrap();
        for want in [
            "top.txt",
            "old/deep",
            "new",
            "before.txt",
            "renamed.txt",
            "last.txt",
        ] {
            assert!(
                names.contains(&PathBuf::from(want)),
                "{want} missing from {names:?}"
            );
        }
        // Under a named directory (gone, or new): pulled with it.
        for under in ["old/deep/kept.txt", "new/a", "new/a/b/f.txt"] {
            assert!(
                !names.contains(&PathBuf::from(under)),
                "{under} in {names:?}"
            );
        }
    }

    /// A directory replaced by a symlink (or a file) after its entries
    /// changed: the link is named, not the entries reached through it (a
    /// pull of those would have the peer follow the link and make it a
    /// directory at the returning site).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn names_through_a_link_are_named_by_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("d/sub")).unwrap();
        std::fs::create_dir_all(root.join("e")).unwrap();
        std::fs::create_dir_all(root.join("keep")).unwrap();
        std::fs::write(root.join("d/sub/f.txt"), "x").unwrap();
        std::fs::write(root.join("e/f.txt"), "x").unwrap();
        let j = ChangeJournal::start(&root, &dir.path().join("barrier")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mark = j.mark_flushed().await.unwrap();
        std::fs::write(root.join("d/sub/f.txt"), "changed").unwrap();
        std::fs::write(root.join("e/f.txt"), "changed").unwrap();
        std::fs::write(root.join("keep/f.txt"), "new").unwrap();
        std::fs::remove_dir_all(root.join("d")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("d")).unwrap();
        std::fs::remove_dir_all(root.join("e")).unwrap();
        std::fs::write(root.join("e"), "a file now").unwrap();
        let names = j.since(mark).await.unwrap();
        let want: Vec<PathBuf> = ["d", "e", "keep/f.txt"].iter().map(PathBuf::from).collect();
        assert_eq!(names, want);
    }

    /// The data directory replaced after the mark: what is written in the
    /// new one was never seen, so the journal cannot tell (a final pass
    /// limited to its names would leave those writes behind).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_data_directory_replaced_after_the_mark_cannot_be_told() {
        let dir = tempfile::tempdir().unwrap();
        // renamed away, another renamed in
        let root = dir.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        let j = ChangeJournal::start(&root, &dir.path().join("barrier")).unwrap();
        let mark = j.mark_flushed().await.unwrap();
        let next = dir.path().join("data.new");
        std::fs::create_dir_all(&next).unwrap();
        std::fs::write(next.join("written.txt"), "in the new directory").unwrap();
        std::fs::rename(&root, dir.path().join("data.old")).unwrap();
        std::fs::rename(&next, &root).unwrap();
        std::fs::write(root.join("later.txt"), "after the swap").unwrap();
        let e = j.since(mark).await.unwrap_err();
        assert!(e.contains("removed or moved"), "{e}");
        drop(j);

        // a symlink on the way turned (`current -> v1` to `v2`): no event at all
        let (v1, v2) = (dir.path().join("v1"), dir.path().join("v2"));
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::create_dir_all(&v2).unwrap();
        let current = dir.path().join("current");
        std::os::unix::fs::symlink(&v1, &current).unwrap();
        let j = ChangeJournal::start(&current, &dir.path().join("barrier")).unwrap();
        let mark = j.mark_flushed().await.unwrap();
        std::fs::write(v2.join("written.txt"), "in v2").unwrap();
        let turned = dir.path().join("current.next");
        std::os::unix::fs::symlink(&v2, &turned).unwrap();
        std::fs::rename(&turned, &current).unwrap();
        let e = j.since(mark).await.unwrap_err();
        assert!(e.contains("no longer the directory journaled"), "{e}");
    }

    #[test]
    fn the_look_for_changes_without_events_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let found = changed_since(dir.path(), 0, Duration::from_secs(60)).unwrap();
        assert_eq!(found, vec![PathBuf::from("f")]);
        let e = changed_since(dir.path(), 0, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("to look through"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_foreign_mark_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        let j = ChangeJournal::start(&root, &dir.path().join("barrier")).unwrap();
        let mut m = j.mark();
        m.id ^= 1;
        let e = j.since(m).await.unwrap_err();
        assert!(e.contains("agent restarted"), "{e}");
        let inside = ChangeJournal::start(&root, &root.join("barrier")).unwrap_err();
        assert!(inside.to_string().contains("outside"), "{inside}");
    }
}
