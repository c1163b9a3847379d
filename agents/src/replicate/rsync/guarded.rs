//! What the mass-delete guard asks of the rsync plan before anything is
//! deleted at the peer: a source still mounted, a batch's deletions counted
//! (from the book when it knows them as files, else by a dry run at the
//! peer), and a full pass's dry run (deletes, items on each side).

use super::*;

impl Shared {
    /// The source was a mount point at start and is not one now: held
    /// (`Err`), unless the operator released it (`Ok(true)`, and the source
    /// as it is now becomes the baseline).
    pub(super) fn check_mount(&self) -> Result<bool, AgentError> {
        let s = &self.settings;
        if !*self.was_mount.lock().unwrap() {
            return Ok(false);
        }
        if is_mount_point(&s.source).unwrap_or(false) {
            return Ok(false);
        }
        let why = format!(
            "mass-delete guard: the replication source {} was a mount point when replication started \
             and is not one now (unmounted?); nothing was sent or deleted. Mount it again (replication \
             resumes by itself), or run `warden clear GROUP` if the data now lives there unmounted",
            s.source.display()
        );
        s.hold
            .trip(Trip::Unmounted, why)
            .map_err(AgentError::DeleteGuard)?;
        *self.was_mount.lock().unwrap() = false;
        Ok(true)
    }

    /// A batch that would delete too much (with the recent batches), or
    /// delete from a source that is now empty, is not sent (`Err`; the
    /// guarded full pass that follows holds with exact counts). `Ok`: the
    /// deletions it counted into the window at once (a batch running beside
    /// it sees them), to be taken back with
    /// [`RecentDeletes::undo`] if the batch is not sent.
    pub(super) async fn guard_batch(
        &self,
        paths: &[PathBuf],
        cancel: &CancellationToken,
    ) -> Result<(Instant, u64), AgentError> {
        let s = &self.settings;
        let (root, list) = (s.source.clone(), paths.to_vec());
        let (gone, empty) = tokio::task::spawn_blocking(move || {
            let gone: Vec<String> = list
                .iter()
                .filter(|p| {
                    matches!(root.join(p).symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                })
                .map(|p| escape_name(p.as_os_str().as_bytes()))
                .collect();
            let empty = std::fs::read_dir(&root)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            (gone, empty)
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?;
        if gone.is_empty() {
            return Ok((Instant::now(), 0));
        }
        // Items at the target these deletions take (a directory: its
        // subtree, once even when its entries are listed too).
        let gone: Vec<&String> = gone
            .iter()
            .filter(|n| {
                !gone.iter().any(|a| {
                    n.len() > a.len() && n.starts_with(a.as_str()) && n.as_bytes()[a.len()] == b'/'
                })
            })
            .collect();
        // The book counts exactly only names it knows as files: it is a
        // lower bound of the target (a pass keeps what changed while it ran
        // at its older entry, or none), so a gone directory or a name it
        // does not know is counted at the target itself.
        let (book_deletes, known_book, exact) = match self.book.lock().unwrap().as_ref() {
            Some(b) => (
                gone.iter()
                    .map(|n| count_under(&b.items, n).max(1))
                    .sum::<u64>(),
                Some(b.items.len() as u64),
                gone.iter().all(|n| {
                    b.items.get(n.as_str()).is_some_and(|i| !i.is_dir())
                        && count_under(&b.items, n) == 1
                }),
            ),
            None => (gone.len() as u64, None, false),
        };
        let deletes = if exact {
            book_deletes
        } else {
            book_deletes.max(self.batch_deletes(paths, cancel).await?)
        };
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        let recent = st.recent_deletes.total(now);
        let known = known_book.max(st.target_items).unwrap_or(0);
        if empty && known > 0 {
            return Err(AgentError::DeleteGuard(format!(
                "the source {} is empty while {} holds {known} items",
                s.source.display(),
                s.target()
            )));
        }
        s.guard
            .check(recent + deletes, known, &s.target())
            .map_err(AgentError::DeleteGuard)?;
        st.recent_deletes.add(now, deletes);
        Ok((now, deletes))
    }

    /// `rsync -n` of a batch: how many items at the target it would delete
    /// (a directory counts with everything under it).
    pub(super) async fn batch_deletes(
        &self,
        paths: &[PathBuf],
        cancel: &CancellationToken,
    ) -> Result<u64, AgentError> {
        let s = &self.settings;
        let mut list = Vec::new();
        for p in paths {
            list.extend_from_slice(p.as_os_str().as_encoded_bytes());
            list.push(0);
        }
        let args = vec![
            "-n".into(),
            "-a".into(),
            "-r".into(),
            "--files-from=-".into(),
            "--from0".into(),
            "--delete-missing-args".into(),
            "--force".into(),
            "-ii".into(),
            "--out-format=%i %n".into(),
            source_arg(&s.source),
            s.url().into(),
        ];
        let mut deletes = 0;
        self.rsync(args, Some(list), false, cancel, |line| {
            if line.starts_with("*deleting") {
                deletes += 1;
            }
        })
        .await?;
        Ok(deletes)
    }

    /// `rsync -n -a --delete -ii`: what a full pass would delete, and how
    /// many items the source and the target hold (the root not counted).
    pub(super) async fn dry_run(&self, cancel: &CancellationToken) -> Result<DryRun, AgentError> {
        let s = &self.settings;
        let args = vec![
            "-n".into(),
            "-a".into(),
            "--delete".into(),
            "-ii".into(),
            "--out-format=%i %n".into(),
            source_arg(&s.source),
            s.url().into(),
        ];
        let mut dry = DryRun::default();
        let ran = self
            .rsync(args, None, true, cancel, |line| {
                let Some((flags, name)) = line.split_at_checked(11) else {
                    return;
                };
                if name.trim_start() == "./" || name.is_empty() {
                    return;
                }
                if flags.starts_with("*deleting") {
                    dry.deletes += 1;
                    dry.target_items += 1;
                } else if flags.get(2..).is_some_and(|f| f.starts_with("+++++++")) {
                    dry.source_items += 1;
                } else if flags.starts_with(['<', '>', 'c', 'h', '.']) {
                    dry.source_items += 1;
                    dry.target_items += 1;
                }
            })
            .await;
        match ran {
            Ok(()) => {}
            // Part of the source could not be read: rsync listed the rest
            // and skipped every deletion ("IO error encountered").
            Err(AgentError::Rsync {
                code: 23, detail, ..
            }) => dry.incomplete = Some(detail),
            Err(e) => return Err(e),
        }
        Ok(dry)
    }
}
