//! The inotify side of the rsync plan: a recursive watch on the source
//! (symlinks never followed) that only records what changed in the shared
//! [`State`]: relative paths, when removals happened, and when a full pass
//! is owed (a queue overflow, a watcher error, too many pending paths).

use super::*;

/// Starts a recursive inotify watch on `source` that records changes in `shared`.
pub(super) fn watch_tree(
    shared: Arc<Shared>,
    source: PathBuf,
) -> Result<notify::RecommendedWatcher, AgentError> {
    let root = source.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        let now = Instant::now();
        let mut st = shared.state.lock().unwrap();
        match res {
            Err(e) => {
                warn!(cause = %e, "inotify error, a full pass follows");
                st.full_since = earliest(st.full_since, Some(now));
            }
            Ok(ev) if ev.need_rescan() => {
                warn!("inotify queue overflow, a full pass follows");
                st.full_since = earliest(st.full_since, Some(now));
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
