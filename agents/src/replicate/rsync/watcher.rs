//! The inotify side of the rsync plan: a recursive watch on the source
//! (symlinks never followed) that only records what changed in the shared
//! [`State`]: relative paths, when removals happened, and when a full pass
//! is owed (a queue overflow, a watcher error, too many pending paths).
//!
//! inotify watches an inode, not a path: once the source path names another
//! directory (the old one renamed away and a new one put in its place,
//! removed and made again, a filesystem mounted or unmounted there, a
//! symlink on the way turned) the watch sees none of what is written there.
//! [`Watched`] knows which directory it watches and looks again whenever
//! the root itself is removed or moved and at least every
//! [`ROOT_CHECK_EVERY`] (a mount or unmount sends no event of its own); a
//! new directory is watched afresh and a full pass is owed.
//!
//! A recursive watch adds a watch per new directory as inotify reports
//! it: a directory whose creation was lost in a queue overflow, or that
//! inotify refused a watch (the watch limit, `ENOSPC`), sends no event
//! for anything written in it later — a full pass then is not enough. So
//! after an overflow or a watcher error the tree is watched afresh too;
//! while that fails, the tree is unwatched and a full pass is owed at
//! every check, so no change waits for an event that never comes, and the
//! status says why ([`Shared::unwatched`]).

use super::*;
use std::os::unix::fs::MetadataExt;

/// How often the worker makes sure the source path still names the watched directory.
pub const ROOT_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The watch on the source and the directory it is on.
pub(super) struct Watched {
    /// Dropped (the old watch ends) when another directory is watched.
    _watcher: Option<notify::RecommendedWatcher>,
    /// The watched directory's canonical path and `(st_dev, st_ino)`,
    /// taken before its watch began (a swap in between is seen next time).
    on: Option<RootId>,
    /// When the source path was last looked at (or a look last found running).
    checked: Instant,
    /// The look at the source path (and the new watch it sets up) runs off
    /// the runtime, one at a time: a hung filesystem (an NFS server gone)
    /// blocks it, never the worker.
    looking: Option<tokio::task::JoinHandle<Look>>,
}

/// A directory's canonical path and `(st_dev, st_ino)`.
type RootId = (PathBuf, (u64, u64));

/// What a look at the source path found.
enum Look {
    /// The directory watched.
    Same,
    /// Nothing (removed, or a path on the way is).
    Gone(std::io::Error),
    /// Another directory, and its watch (or why it could not be set up).
    Other(RootId, Result<notify::RecommendedWatcher, AgentError>),
}

/// The source's canonical path and `(st_dev, st_ino)` now.
fn root_id(source: &Path) -> std::io::Result<RootId> {
    let path = std::fs::canonicalize(source)?;
    let meta = std::fs::metadata(&path)?;
    Ok((path, (meta.dev(), meta.ino())))
}

/// Blocking: compares the directory the source path names with `on`, and
/// watches it when it is another.
fn look(shared: Arc<Shared>, on: Option<RootId>) -> Look {
    match root_id(&shared.settings.source) {
        Err(e) => Look::Gone(e),
        Ok(now) if on.as_ref() == Some(&now) => Look::Same,
        Ok(now) => {
            let w = watch_tree(shared, now.0.clone());
            Look::Other(now, w)
        }
    }
}

impl Watched {
    /// Watches the directory the source path names now.
    pub(super) fn start(shared: &Arc<Shared>) -> Result<Watched, AgentError> {
        let source = &shared.settings.source;
        let on = root_id(source).map_err(|e| AgentError::Watch {
            path: source.display().to_string(),
            reason: format!("{e}; create the directory or fix the replication source"),
        })?;
        let watcher = watch_tree(shared.clone(), on.0.clone())?;
        // watched whole now, whatever an earlier run of the replicator said
        shared.unwatched.lock().unwrap().take();
        Ok(Watched {
            _watcher: Some(watcher),
            on: Some(on),
            checked: Instant::now(),
            looking: None,
        })
    }

    /// When the next look at the source path is due.
    pub(super) fn next_check(&self) -> Instant {
        self.checked + ROOT_CHECK_EVERY
    }

    /// When due: whether the source path still names the watched directory
    /// (the same canonical path, device and inode). When it names another,
    /// or the watcher saw the root itself removed or moved, the directory
    /// there is watched afresh and a full pass is owed (what was written
    /// there before its watch began). A source that is gone is looked for
    /// again at the next check.
    pub(super) async fn recheck(&mut self, shared: &Arc<Shared>) {
        let now = Instant::now();
        let looking = match self.looking.take() {
            Some(h) => h,
            None => {
                let moved = std::mem::take(&mut shared.state.lock().unwrap().rewatch);
                if !moved && now < self.next_check() {
                    return;
                }
                // The watch saw its directory removed or moved, or it may
                // have missed directories (an overflow, the watch limit):
                // the tree is watched afresh whatever the path names now (a
                // directory made again at once may get the same inode
                // number). The old watch goes first: its watches count
                // against the limit the new one needs.
                let on = if moved {
                    self._watcher = None;
                    None
                } else {
                    self.on.clone()
                };
                let shared = shared.clone();
                tokio::task::spawn_blocking(move || look(shared, on))
            }
        };
        self.checked = now;
        if !looking.is_finished() {
            // a moment for the usual case (a stat); a hung one is asked for again later
            tokio::task::yield_now().await;
            if !looking.is_finished() {
                self.looking = Some(looking);
                return;
            }
        }
        let source = &shared.settings.source;
        match looking.await {
            Ok(Look::Same) => return,
            Ok(Look::Gone(e)) => {
                if self.on.take().is_some() {
                    warn!(source = %source.display(), cause = %e, "the replication source is gone; watching it again once it is back");
                }
                return;
            }
            Ok(Look::Other(id, Ok(w))) => {
                if shared.unwatched.lock().unwrap().take().is_some() {
                    info!(source = %source.display(), "the replication source is watched whole again, a full pass follows");
                } else {
                    info!(source = %source.display(), "the replication source is watched afresh (another directory, or a watch that missed changes), a full pass follows");
                }
                self._watcher = Some(w);
                self.on = Some(id);
            }
            Ok(Look::Other(_, Err(e))) => {
                // Retried at the next check; until then (and at every
                // check it fails again) a full pass stands in for inotify.
                let why = format!(
                    "the replication source {} cannot be watched whole with inotify ({e}): \
                     a full pass every {}s finds its changes instead",
                    source.display(),
                    ROOT_CHECK_EVERY.as_secs()
                );
                let mut unwatched = shared.unwatched.lock().unwrap();
                if unwatched.is_none() {
                    warn!(source = %source.display(), cause = %e, "cannot watch the replication source whole: full passes stand in for inotify until it can");
                }
                *unwatched = Some(why);
                drop(unwatched);
                self._watcher = None;
                self.on = None;
            }
            Err(e) => {
                warn!(cause = %e, "the look at the replication source failed");
                return;
            }
        }
        let mut st = shared.state.lock().unwrap();
        st.full_since = earliest(st.full_since, Some(Instant::now()));
        drop(st);
        shared.wake.notify_one();
    }
}

/// Starts a recursive inotify watch on `source` that records changes in `shared`.
fn watch_tree(
    shared: Arc<Shared>,
    source: PathBuf,
) -> Result<notify::RecommendedWatcher, AgentError> {
    let root = source.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        let now = Instant::now();
        let mut st = shared.state.lock().unwrap();
        match res {
            // A lost event may be a new directory's, and a new directory
            // refused a watch (the watch limit) sends none again: the tree
            // is watched afresh, then a full pass runs.
            Err(e) => {
                warn!(cause = %e, "inotify error, the tree is watched afresh and a full pass follows");
                st.full_since = earliest(st.full_since, Some(now));
                st.rewatch = true;
            }
            Ok(ev) if ev.need_rescan() => {
                warn!("inotify queue overflow, the tree is watched afresh and a full pass follows");
                st.full_since = earliest(st.full_since, Some(now));
                st.rewatch = true;
            }
            Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => return,
            Ok(ev) => {
                if matches!(
                    ev.kind,
                    notify::EventKind::Remove(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Name(
                            notify::event::RenameMode::From
                                | notify::event::RenameMode::Both
                                | notify::event::RenameMode::Any
                        ))
                ) {
                    st.last_remove = Some(now);
                }
                for p in &ev.paths {
                    if let Ok(rel) = p.strip_prefix(&root) {
                        if rel.as_os_str().is_empty() {
                            if matches!(
                                ev.kind,
                                notify::EventKind::Remove(_)
                                    | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
                            ) {
                                // removed or moved away: which directory does the source name now?
                                st.rewatch = true;
                            }
                            // The root itself (its mode, owner, xattrs): `.`
                            // is never listed to rsync, it asks for [`Shared::send_root`].
                            st.paths.insert(PathBuf::from(ROOT));
                        } else {
                            st.paths.insert(rel.to_path_buf());
                        }
                    }
                }
                if st.paths.is_empty() {
                    return;
                }
                st.pending_since = earliest(st.pending_since, Some(now));
                if st.paths.len() > shared.settings.max_pending {
                    st.paths.clear();
                    st.full_since = earliest(st.full_since, st.pending_since.take());
                }
            }
        }
        drop(st);
        shared.wake.notify_one();
    };
    let path = source.display().to_string();
    // Symlinks are replicated as links, never followed: a link to a
    // directory outside the tree (or `../..`) would otherwise be watched,
    // and its events sent as paths through it (turning it into a directory
    // at the peer).
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher =
        notify::RecommendedWatcher::new(handler, config).map_err(|e| AgentError::Watch {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    watcher
        .watch(&source, RecursiveMode::Recursive)
        .map_err(|e| AgentError::Watch {
            path,
            reason: format!("{e}; check the path and fs.inotify.max_user_watches"),
        })?;
    Ok(watcher)
}
