//! The rsync plan's transfers: a batch (`--files-from`, named directories
//! ending as the source's, its deletions counted first and bounded by
//! `--max-delete`), the root alone,
//! the guarded full pass (`--delete`), and the manifest bookkeeping each
//! confirms (what was stat'ed the same before and after it).

use super::skipped::{believed, not_created};
use super::*;
use tokio::sync::watch;

impl Shared {
    /// A batch's paths as rsync needs them: `Ok(false)` (nothing sent) when a
    /// full pass must send them instead, because `-H` only links names sent
    /// in the same transfer and a changed file has other names outside the
    /// batch. The root ([`ROOT`]) is never listed: a batch that names it or
    /// a top-level entry (whose creation, rewrite or deletion at the peer
    /// changes the peer root's mtime) ends with [`Shared::send_root`].
    /// A path reached through something that is no directory here any more
    /// (a directory replaced by a symlink while its old entries' events
    /// waited) is not listed: rsync would follow the link and send what is
    /// behind it, outside the tree even, as a directory at the peer in place
    /// of the link. The link itself is sent instead — by this batch when it
    /// names it, else it goes to `later`, for a batch of its own
    /// ([`through_non_dirs`]).
    pub(super) async fn send_batch(
        &self,
        paths: Vec<PathBuf>,
        cancel: &CancellationToken,
        later: &mut Vec<PathBuf>,
    ) -> Result<bool, AgentError> {
        let s = &self.settings;
        let (root, paths): (Vec<PathBuf>, Vec<PathBuf>) =
            paths.into_iter().partition(|p| p == Path::new(ROOT));
        let touches_root = !root.is_empty() || paths.iter().any(|p| p.components().count() == 1);
        let paths = if paths.is_empty() {
            paths
        } else {
            let source = s.source.clone();
            let (send, not_yet) =
                tokio::task::spawn_blocking(move || through_non_dirs(&source, paths))
                    .await
                    .map_err(|e| AgentError::Task(e.to_string()))?;
            if !not_yet.is_empty() {
                debug!(
                    paths = ?not_yet,
                    "batch paths reached through a symlink or a file here: the link or file is sent instead"
                );
            }
            *later = not_yet;
            send
        };
        if s.hard_links && !paths.is_empty() {
            let (root, list) = (s.source.clone(), paths.clone());
            let linked = tokio::task::spawn_blocking(move || links_outside(&root, &list))
                .await
                .map_err(|e| AgentError::Task(e.to_string()))?;
            if linked {
                debug!(
                    paths = paths.len(),
                    "batch changes hard-linked files with names outside it, a full pass sends it"
                );
                return Ok(false);
            }
        }
        if !paths.is_empty() {
            self.batch(paths, cancel).await?;
        }
        if touches_root {
            self.send_root(cancel).await?;
        }
        Ok(true)
    }

    /// `rsync -a -d --no-r --exclude=* SOURCE/ URL`: only the transfer root
    /// itself, with its mtime, mode, owner, xattrs and ACLs. A
    /// `--files-from` batch sends the implied directories of its paths but
    /// never `.`, while writing or deleting top-level names changes the
    /// peer root's mtime.
    pub(super) async fn send_root(&self, cancel: &CancellationToken) -> Result<(), AgentError> {
        let s = &self.settings;
        let args = vec![
            "-a".into(),
            "--no-r".into(),
            "-d".into(),
            "--exclude=*".into(),
            source_arg(&s.source),
            s.url().into(),
        ];
        self.rsync(args, None, false, cancel, |_| {}).await
    }

    /// [`check_symlinks`] until it passed once.
    pub(super) async fn check_module(&self, cancel: &CancellationToken) -> Result<(), AgentError> {
        use std::sync::atomic::Ordering;
        if self.module_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        check_symlinks(&self.settings, cancel).await?;
        self.module_checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Runs the owed full pass (it covers everything pending); on failure it
    /// stays owed. A pass that could not read part of the tree (code 23)
    /// deleted nothing: what was pending goes back to the batches, which run
    /// until its retry (a delete among them is carried by a batch).
    pub(super) async fn run_full(&self, cancel: &CancellationToken) -> Result<(), AgentError> {
        let (pending, pending_since, audit) = {
            let mut st = self.state.lock().unwrap();
            // An audit is a full pass owed to nothing here: one owed for a
            // cause (a failure, an overflow) may send anything.
            let audit = std::mem::take(&mut st.audit_due) && st.full_since.is_none();
            let pending_since = st.pending_since.take();
            let since = earliest(st.full_since.take(), pending_since);
            st.full_inflight_since = earliest(st.full_inflight_since, since);
            (std::mem::take(&mut st.paths), pending_since, audit)
        };
        let mut seen = audit.then(super::audit::Seen::default);
        let result = match self.check_module(cancel).await {
            Ok(()) => self
                .full_pass(cancel, None, seen.as_mut())
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let (Ok(()), Some(seen)) = (&result, &seen) {
            // What changed here while it ran is not the peer's doing.
            let mut changed: Vec<PathBuf> = pending.iter().cloned().collect();
            {
                let st = self.state.lock().unwrap();
                changed.extend(st.paths.iter().cloned());
                changed.extend(st.batch_paths.iter().cloned());
            }
            let drift = seen.drift(&changed, &self.settings.target());
            match &drift {
                Some(d) => warn!(target = %self.settings.target(), "{d}"),
                None => {
                    debug!(target = %self.settings.target(), "audit: the peer holds what replication put there")
                }
            }
            *self.drift.lock().unwrap() = drift;
        }
        let mut st = self.state.lock().unwrap();
        if result.is_ok() {
            st.last_full = Some(Instant::now());
        }
        if result.is_err() {
            st.full_since = earliest(st.full_since, st.full_inflight_since);
        }
        if matches!(result, Err(AgentError::Rsync { code: 23, .. })) && !pending.is_empty() {
            st.paths.extend(pending);
            st.pending_since = earliest(st.pending_since, pending_since);
        }
        st.full_inflight_since = None;
        result
    }

    /// One `--files-from` transfer of the listed relative paths, its
    /// deletions at the peer counted by the guard first.
    pub(super) async fn batch(
        &self,
        paths: Vec<PathBuf>,
        cancel: &CancellationToken,
    ) -> Result<(), AgentError> {
        self.check_mount()?;
        // The paths as they are here before the transfer: what the guard
        // compares with the book, and what the book confirms after it.
        let before = if self.keeps_manifest() {
            let (root, paths) = (self.settings.source.clone(), paths.clone());
            Some(
                tokio::task::spawn_blocking(move || stat_paths(&root, &paths))
                    .await
                    .map_err(|e| AgentError::Task(e.to_string()))?,
            )
        } else {
            None
        };
        let counted = self.guard_batch(&paths, before.as_deref(), cancel).await?;
        // On disk before anything leaves: a site lost from here until the
        // manifest confirms the batch leaves the failback its names.
        if before.is_some() {
            self.note_sending(&paths).await;
        }
        let mut deleted = 0;
        let sent = self
            .transfer_batch(paths, before, &counted, &mut deleted, cancel)
            .await;
        // not sent: the full pass it owes counts what it deletes itself
        self.settle_batch(&counted, deleted, sent.is_ok());
        sent
    }

    /// The transfer of a checked batch (`deleted`: rsync's deletions at the
    /// peer), and the book's update after it.
    async fn transfer_batch(
        &self,
        paths: Vec<PathBuf>,
        updates: Option<Vec<Update>>,
        counted: &BatchDeletes,
        deleted: &mut u64,
        cancel: &CancellationToken,
    ) -> Result<(), AgentError> {
        let s = &self.settings;
        let mut list = Vec::new();
        for p in &paths {
            list.extend_from_slice(p.as_os_str().as_encoded_bytes());
            list.push(0);
        }
        debug!(paths = paths.len(), "rsync batch");
        let mut args = batch_args();
        args.extend([
            // The guard's limits with the window, past what it counted:
            // the book is a lower bound of the peer.
            format!("--max-delete={}", counted.most).into(),
            "--out-format=%i %n".into(),
            // Listed because they changed: rsync's size+mtime quick check
            // would skip a same-size rewrite within the same second.
            "--ignore-times".into(),
            source_arg(&s.source),
            s.url().into(),
        ]);
        let mut said = Vec::new();
        let ran = self
            .rsync(args, Some(list), false, cancel, |line| {
                if let Some(name) = not_created(line) {
                    said.push(name);
                } else if line.starts_with("*deleting") {
                    *deleted += 1;
                }
            })
            .await;
        let skipped = believed(&s.source, &s.target(), said);
        self.not_at_peer(&skipped);
        if let Err(e) = ran {
            // rsync stopped deleting at `--max-delete` (code 25, or 23 when
            // a directory it could not empty was to be replaced)
            return Err(match e {
                AgentError::Rsync { code: 23 | 25, .. } if *deleted >= counted.most => {
                    AgentError::DeleteGuard(format!(
                        "mass-delete guard: a batch would have deleted more at {} than the {} counted \
                         before it ({} allowed with the last minute's deletions); it stopped at \
                         --max-delete, a guarded full pass counts the rest",
                        s.target(),
                        counted.counted,
                        counted.most
                    ))
                }
                e => e,
            });
        }
        if let Some(before) = updates {
            // What was sent is what was stat'ed before only if it still is.
            let root = s.source.clone();
            let after = tokio::task::spawn_blocking(move || stat_paths(&root, &paths))
                .await
                .map_err(|e| AgentError::Task(e.to_string()))?;
            if let Some(b) = self.book.lock().unwrap().as_mut() {
                after_batch(b, before, after, &skipped);
            }
        }
        Ok(())
    }

    /// `rsync -a --delete --force SOURCE/ URL`, counting what rsync reports.
    pub(super) async fn full_pass(
        &self,
        cancel: &CancellationToken,
        progress: Option<&watch::Sender<Progress>>,
        mut seen: Option<&mut super::audit::Seen>,
    ) -> Result<ResyncReport, AgentError> {
        let s = &self.settings;
        let started = Instant::now();
        let released_mount = self.check_mount()?;
        // The listing before the pass: what the pass is sure to have carried.
        let before = if self.keeps_manifest() {
            Some(self.list_source().await?)
        } else {
            None
        };
        // The guard: what would this pass delete, out of how many items at the target?
        let dry = self.dry_run(cancel).await?;
        let target = s.target();
        // with the deletions of the last batches and passes (a source
        // emptied a file at a time: the batch that tripped owes this pass)
        let now = Instant::now();
        let recent = self.state.lock().unwrap().recent_deletes.total(now);
        // a blank volume's lost+found is no data on either side
        let verdict = if dry.source_items == dry.source_fresh_dir
            && dry.target_items > dry.target_fresh_dir
        {
            s.hold.trip(Trip::EmptySource, format!(
                "mass-delete guard: the replication source {} is empty while {target} holds {} items; \
                 nothing was deleted. Check the source (emptied, unmounted?): replication resumes by itself \
                 once its files are back; run `warden clear GROUP --deletions SITE` only if the peer must really be emptied",
                s.source.display(),
                dry.target_items
            ))
        } else {
            s.hold
                .check(&s.guard, dry.deletes, recent, dry.target_items, &target)
        };
        let released = verdict.map_err(AgentError::DeleteGuard)? || released_mount;
        // counted at once, so a batch checked while this pass runs sees
        // them; taken back below if the pass fails
        self.state
            .lock()
            .unwrap()
            .recent_deletes
            .passed(released, now, dry.deletes);
        let mut args: Vec<OsString> = vec!["-a".into()];
        if dry.incomplete.is_none() {
            args.push("--delete".into());
        }
        args.extend(["--force".into(), "--out-format=%i %l %n".into()]);
        if !released && dry.incomplete.is_none() {
            // The source may empty between the dry run and the pass.
            let most = dry.deletes.max(s.guard.max_count).min(MAX_DELETE_ARG);
            args.push(format!("--max-delete={most}").into());
        }
        args.push(source_arg(&s.source));
        args.push(s.url().into());
        if self.keeps_manifest() {
            self.note_full_pass().await;
        }
        let mut done = Progress::default();
        // What rsync deleted at the peer, even if the pass then fails.
        let mut deleted = 0u64;
        // What the peer's receiver said it did not create (see [`believed`]).
        let mut said = Vec::new();
        let ran = self
            .rsync(args, None, true, cancel, |line| {
                if let Some(name) = not_created(line) {
                    said.push(name);
                    return;
                }
                done.items += 1;
                if line.starts_with("*deleting") {
                    deleted += 1;
                }
                if let Some(seen) = seen.as_deref_mut() {
                    seen.note(line);
                }
                if line.starts_with(['<', '>']) {
                    let len = line
                        .get(12..)
                        .and_then(|r| r.split(' ').next())
                        .and_then(|n| n.parse::<u64>().ok());
                    done.bytes += len.unwrap_or(0);
                }
                if let Some(tx) = progress {
                    tx.send_replace(done);
                }
            })
            .await;
        let skipped = believed(&s.source, &target, said);
        if let Err(e) = &ran {
            // code 25: rsync deleted up to --max-delete, they stay counted.
            // Another failure counts what rsync said it deleted before it
            // (a peer full or cut off mid-pass deletes first): a source
            // emptied a few items at a time while every pass fails would
            // otherwise be deleted whole, never counted in the window.
            if !released && !matches!(e, AgentError::Rsync { code: 25, .. }) {
                let mut st = self.state.lock().unwrap();
                st.recent_deletes.undo(now, dry.deletes);
                st.recent_deletes.add(Instant::now(), deleted);
            }
        }
        ran.map_err(|e| match e {
            AgentError::Rsync { code: 25, .. } => {
                let why = format!(
                    "mass-delete guard: the source {} changed during the pass and rsync stopped deleting \
                     at --max-delete (checked: {} of {} items at {target}). Check the source, then run \
                     `warden clear GROUP --deletions SITE` if the deletions are wanted",
                    s.source.display(),
                    dry.deletes,
                    dry.target_items
                );
                // A clear lets the next pass delete what this one was
                // checked for, no more.
                let _ = s
                    .hold
                    .trip(Trip::Deletes(dry.deletes.saturating_add(recent)), why.clone());
                AgentError::DeleteGuard(why)
            }
            e => e,
        })?;
        if let Some(detail) = dry.incomplete {
            // Everything readable went; nothing was deleted: still owed.
            return Err(AgentError::Rsync {
                target,
                code: 23,
                detail,
            });
        }
        s.hold.passed();
        self.state.lock().unwrap().target_items = Some(dry.source_items);
        debug!(
            items = done.items,
            bytes = done.bytes,
            "rsync full pass done"
        );
        if let Some((items, stamps)) = before {
            // Only what did not change while the pass ran is what it carried.
            let (_, after) = self.list_source().await?;
            if let Some(b) = self.book.lock().unwrap().as_mut() {
                after_pass(b, items, stamps, &after, &skipped);
            }
            self.full_pass_confirmed();
        }
        Ok(ResyncReport {
            done,
            elapsed: started.elapsed(),
        })
    }

    /// The source's items and stamps for the manifest (a blocking walk off the runtime).
    pub(super) async fn list_source(&self) -> Result<(Listing, Stamps), AgentError> {
        let s = &self.settings;
        let root = s.source.clone();
        tokio::task::spawn_blocking(move || list_local_stamped(&root))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?
            .map_err(|e| AgentError::Watch {
                path: s.source.display().to_string(),
                reason: format!("cannot list it for the manifest: {e}"),
            })
    }
}
