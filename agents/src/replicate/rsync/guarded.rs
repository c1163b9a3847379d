//! What the mass-delete guard asks of the rsync plan before anything is
//! deleted at the peer: a source still mounted, a batch's deletions counted
//! (gone names, names whose kind changed, what `--delete` removes inside
//! the directories it names: from the book when it knows them, else by a
//! dry run at the peer) and bounded (`--max-delete`), and a full pass's dry
//! run (deletes, items on each side).

use super::*;

impl Shared {
    /// Whether the config declares the source a mount point.
    pub(super) fn declared_mount(&self) -> bool {
        self.settings.volume.as_ref().is_some_and(|v| v.declared)
    }

    /// Whether this site's record of its volumes (`volumes.json`) holds the
    /// source as a mount point: seen mounted by an earlier run of the
    /// agent, so a start while it is not mounted (a boot whose mount
    /// failed) holds like a declared one.
    pub(super) fn recorded_mount(&self) -> bool {
        self.settings.volume.as_ref().is_some_and(|v| {
            crate::volumes::recorded(&v.state_dir, &v.group, &self.settings.source)
        })
    }

    /// The source was a mount point at start (or is declared one) and is
    /// not one now: held (`Err`), unless the operator released it
    /// (`Ok(true)`, and the source as it is now becomes the baseline).
    pub(super) fn check_mount(&self) -> Result<bool, AgentError> {
        let s = &self.settings;
        if !*self.was_mount.lock().unwrap() {
            return Ok(false);
        }
        if is_mount_point(&s.source).unwrap_or(false) {
            return Ok(false);
        }
        let was = if self.declared_mount() {
            "is declared a mount point (mount_point = true)"
        } else if self.recorded_mount() {
            "was seen a mount point (recorded in the agent's volumes.json)"
        } else {
            "was a mount point when replication started"
        };
        let why = format!(
            "mass-delete guard: the replication source {} {was} \
             and is not one now (unmounted?); nothing was sent or deleted. Mount it again (replication \
             resumes by itself), or run `warden clear GROUP --deletions SITE` if the data now lives there unmounted",
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
    /// guarded full pass that follows holds with exact counts). A batch
    /// deletes at the peer what it names that is gone here, everything
    /// under a name that is no longer a directory here (`--force`), and,
    /// inside a directory it names, whatever is not in that directory here
    /// (`--delete`). The book counts these; where it cannot tell them
    /// exactly and a deletion is to be expected (a gone name it does not
    /// know as a file, a directory here whose confirmed entries are not all
    /// there any more, a name whose kind changed — or, without a book, any
    /// gone name or directory here), a dry run at the peer counts them. A
    /// batch of changed files the book knows, or of new ones, needs none:
    /// what nobody foresaw is bounded by [`BatchDeletes::most`]
    /// (`--max-delete`). `Ok`: what it counted into the window at once (a
    /// batch running beside it sees them), settled by
    /// [`Shared::settle_batch`] once the transfer ends.
    pub(super) async fn guard_batch(
        &self,
        paths: &[PathBuf],
        here: Option<&[Update]>,
        cancel: &CancellationToken,
    ) -> Result<BatchDeletes, AgentError> {
        let s = &self.settings;
        let (root, list) = (s.source.clone(), paths.to_vec());
        let (kinds, empty) = tokio::task::spawn_blocking(move || {
            let kinds: Vec<Here> = list
                .iter()
                .map(|p| match root.join(p).symlink_metadata() {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Here::Gone,
                    Ok(m) if m.is_dir() => Here::Dir,
                    _ => Here::Other,
                })
                .collect();
            let empty = holds_no_data(&root);
            (kinds, empty)
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?;
        let names: Vec<String> = paths
            .iter()
            .map(|p| escape_name(p.as_os_str().as_bytes()))
            .collect();
        // A name under a gone name or a directory of the batch is counted
        // with it (a directory: its subtree, once even when its entries are
        // listed too).
        let covers: BTreeSet<&str> = names
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k != Here::Other)
            .map(|(n, _)| n.as_str())
            .collect();
        let covered = |n: &str| {
            let mut up = n;
            while let Some((parent, _)) = up.rsplit_once('/') {
                if covers.contains(parent) {
                    return true;
                }
                up = parent;
            }
            false
        };
        let any_gone = kinds.contains(&Here::Gone);
        let (book_deletes, known_book, dry) = match self.book.lock().unwrap().as_ref() {
            Some(b) => {
                let mut deletes = 0u64;
                let mut dry = false;
                for (i, (n, kind)) in names.iter().zip(&kinds).enumerate() {
                    if covered(n) {
                        continue;
                    }
                    let known_file = b.items.get(n.as_str()).is_some_and(|i| !i.is_dir());
                    let under = count_under(&b.items, n) - u64::from(b.items.contains_key(n));
                    match kind {
                        // The book counts exactly only names it knows as
                        // files: it is a lower bound of the target (a pass
                        // keeps what changed while it ran at its older
                        // entry, or none).
                        Here::Gone => {
                            deletes += count_under(&b.items, n).max(1);
                            dry |= !(known_file && under == 0);
                        }
                        Here::Other => {
                            if under > 0 || b.items.get(n.as_str()).is_some_and(Item::is_dir) {
                                deletes += count_under(&b.items, n);
                                dry = true;
                            }
                        }
                        Here::Dir => {
                            let lost = here
                                .and_then(|h| h.get(i))
                                .map(|u| lost_under(&b.items, n, u))
                                .unwrap_or(0);
                            if lost > 0 {
                                deletes += lost;
                                dry = true;
                            }
                        }
                    }
                }
                (deletes, Some(b.items.len() as u64), dry)
            }
            None => (
                kinds.iter().filter(|k| **k == Here::Gone).count() as u64,
                None,
                kinds.iter().any(|k| *k != Here::Other),
            ),
        };
        let deletes = if dry {
            book_deletes.max(self.batch_deletes(paths, cancel).await?)
        } else {
            book_deletes
        };
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        let recent = st.recent_deletes.total(now);
        let known = known_book.max(st.target_items).unwrap_or(0);
        if any_gone && empty && known > 0 {
            return Err(AgentError::DeleteGuard(format!(
                "the source {} is empty while {} holds {known} items",
                s.source.display(),
                s.target()
            )));
        }
        if deletes > 0 {
            s.guard
                .check(recent + deletes, known, &s.target())
                .map_err(AgentError::DeleteGuard)?;
            st.recent_deletes.add(now, deletes);
        }
        Ok(BatchDeletes {
            at: now,
            counted: deletes,
            most: s
                .guard
                .allowance(known)
                .saturating_sub(recent)
                .max(deletes)
                .min(MAX_DELETE_ARG),
        })
    }

    /// After a batch's transfer, the window holds what it deleted at the
    /// peer (`deleted`: rsync's `*deleting` lines): what it counted
    /// beforehand, or more when the peer held more than the count said
    /// (within [`BatchDeletes::most`]); a batch that failed takes back what
    /// it counted and did not delete.
    pub(super) fn settle_batch(&self, counted: &BatchDeletes, deleted: u64, sent: bool) {
        let mut st = self.state.lock().unwrap();
        if deleted > counted.counted {
            st.recent_deletes
                .add(Instant::now(), deleted - counted.counted);
        } else if !sent && counted.counted > 0 {
            st.recent_deletes.undo(counted.at, counted.counted);
            st.recent_deletes.add(Instant::now(), deleted);
        }
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
        let mut args: Vec<OsString> = vec!["-n".into()];
        args.extend(batch_args());
        args.extend([
            "-ii".into(),
            "--out-format=%i %n".into(),
            source_arg(&s.source),
            s.url().into(),
        ]);
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
                let fresh = u64::from(only_fresh_volume_dir([name.trim_start()]));
                if flags.starts_with("*deleting") {
                    dry.deletes += 1;
                    dry.target_items += 1;
                    dry.target_fresh_dir += fresh;
                } else if flags.get(2..).is_some_and(|f| f.starts_with("+++++++")) {
                    dry.source_items += 1;
                    dry.source_fresh_dir += fresh;
                } else if flags.starts_with(['<', '>', 'c', 'h', '.']) {
                    dry.source_items += 1;
                    dry.target_items += 1;
                    dry.source_fresh_dir += fresh;
                    dry.target_fresh_dir += fresh;
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

/// The largest `--max-delete` rsync takes (a C `int`).
pub(super) const MAX_DELETE_ARG: u64 = i32::MAX as u64;

/// What a batch's path is here, before its transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Here {
    Gone,
    Dir,
    Other,
}

/// What [`Shared::guard_batch`] counted for one batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchDeletes {
    /// When it was counted into the window.
    pub(super) at: Instant,
    /// The deletions counted (and checked) before the transfer.
    pub(super) counted: u64,
    /// The transfer's `--max-delete`: what the guard's limits still allow
    /// with the window (at least `counted`), so deletions no count foresaw
    /// (the book is a lower bound of the peer) cannot go past them either.
    pub(super) most: u64,
}

/// The rsync options of a batch (and of its dry run): the listed paths,
/// directories with their subtrees, each ending as it is here — a gone name
/// deleted, a changed kind replaced, a directory's entries that are not
/// here any more deleted (`--delete` acts only inside named directories).
pub(super) fn batch_args() -> Vec<OsString> {
    [
        "-a",
        "-r",
        "--files-from=-",
        "--from0",
        "--delete-missing-args",
        "--delete",
        "--force",
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// Entries the book confirms at or under the directory `name` that its
/// listing here (`here`: the batch's [`Update`] for it, taken before the
/// transfer) no longer holds: what `--delete` or `--force` removes at the
/// peer, as far as the book knows.
fn lost_under(items: &Listing, name: &str, here: &Update) -> u64 {
    let prefix = format!("{name}/");
    // An empty directory here (a `Set`) lists nothing under it.
    let listed = match here {
        Update::Subtree(n, l, _) if n == name => Some(l),
        _ => None,
    };
    let lost = items
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(k, _)| !listed.is_some_and(|l| l.contains_key(*k)))
        .count() as u64;
    // A file or symlink the directory replaces.
    lost + u64::from(items.get(name).is_some_and(|i| !i.is_dir()))
}
