//! The rsync plan's scheduler: one worker task turns what the watcher
//! recorded into transfers — batches gathered for a window (deletions until
//! they settle), up to `max_transfers` at once and never two overlapping,
//! a full pass alone when one is owed, retries with backoff (batches go on
//! between the retries of a full pass that failed part way: rsync code 23)
//! — and saves the manifest as it goes.

use super::*;

/// The continuous loop, then a last manifest save.
pub(super) async fn worker(shared: Arc<Shared>, cancel: CancellationToken, mut watched: Watched) {
    work_loop(&shared, cancel, &mut watched).await;
    shared.save_manifest(true).await;
}

/// Wait for changes, gather batches, run up to `max_transfers` of them,
/// run a full pass when one is owed (alone), retry failures, and keep the
/// watch on the directory the source path names ([`Watched::recheck`]).
pub(super) async fn work_loop(
    shared: &Arc<Shared>,
    cancel: CancellationToken,
    watched: &mut Watched,
) {
    let s = &shared.settings;
    let mut backoff = s.retry_min;
    let mut failing = false;
    // A full pass that failed part way (rsync code 23: some items could not
    // be read, e.g. a directory without permission or a name too long; the
    // rest went, deletions were skipped) is retried at this instant; until
    // then batches run. One unreadable corner of the tree must not hold
    // every other change — nor every delete a batch carries — back.
    let mut full_retry_at: Option<Instant> = None;
    let mut running: tokio::task::JoinSet<Result<(), AgentError>> = tokio::task::JoinSet::new();
    loop {
        watched.recheck(shared).await;
        shared.audit_if_due();
        // behind for long, or in sync again: kept for the next start
        shared.note_behind().await;
        while let Some(done) = running.try_join_next() {
            if !shared.batch_done(done, &mut failing).await {
                return;
            }
        }
        let (full, pending, since, many, removed) = {
            let st = shared.state.lock().unwrap();
            (
                st.full_since.is_some() || st.audit_due,
                !st.paths.is_empty(),
                st.pending_since,
                st.paths.len() >= s.batch_max,
                st.last_remove,
            )
        };
        if !full {
            full_retry_at = None;
        }
        let full_due = full && full_retry_at.is_none_or(|t| Instant::now() >= t);
        if full_due {
            if let Some(done) = running.join_next().await {
                if !shared.batch_done(done, &mut failing).await {
                    return;
                }
                continue;
            }
            match shared.run_full(&cancel).await {
                Ok(()) => {
                    full_retry_at = None;
                    shared.failing.lock().unwrap().take();
                    shared.save_manifest(false).await;
                    if failing {
                        info!(target = %s.target(), "replication target reachable again, caught up with a full pass");
                    }
                    failing = false;
                    backoff = s.retry_min;
                }
                Err(AgentError::ReplicationCancelled) => return,
                Err(AgentError::DeleteGuard(why)) => {
                    if !failing {
                        warn!(target = %s.target(), reason = %why, "replication held by the mass-delete guard, nothing deleted; retrying");
                    }
                    failing = true;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = s.hold.released() => {}
                        _ = cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(s.retry_max);
                }
                Err(e @ AgentError::Rsync { code: 23, .. }) => {
                    *shared.failing.lock().unwrap() = Some(e.to_string());
                    if !failing {
                        warn!(target = %s.target(), cause = %e, "full pass incomplete (some items could not be read; it deleted nothing at the peer); changes go on in batches, the full pass is retried");
                    }
                    failing = true;
                    full_retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(s.retry_max);
                }
                Err(e) => {
                    *shared.failing.lock().unwrap() = Some(e.to_string());
                    if !failing {
                        warn!(target = %s.target(), cause = %e, "replication transfer failed, retrying with a full pass");
                    } else {
                        debug!(target = %s.target(), cause = %e, "replication still failing");
                    }
                    failing = true;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(s.retry_max);
                }
            }
            continue;
        }
        if pending && running.len() < s.max_transfers.max(1) {
            // Let the batch fill for one window from its oldest change, or
            // until it is large; while paths are being removed, until the
            // removals settle (bounded), so a mass delete is judged whole.
            let fill = since
                .map(|t| t + s.batch_window)
                .filter(|d| *d > Instant::now() && !many);
            let settle = since
                .zip(removed)
                .map(|(t, r)| (r + DELETE_SETTLE).min(t + DELETE_SETTLE_MAX));
            let deadline = earliest_some_max(fill, settle).filter(|d| *d > Instant::now());
            if let Some(deadline) = deadline {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                    _ = shared.wake.notified() => {}
                    _ = cancel.cancelled() => return,
                }
                continue;
            }
            if let Some((id, paths)) = shared.take_batch() {
                running.spawn(shared.clone().run_batch(id, paths, cancel.clone()));
                continue;
            }
            // Everything pending overlaps a running batch: wait for one to end.
        }
        // Due while batches still run too: confirmations of batches that
        // ended wait for no longer one (a 20 GB file's), else an agent
        // killed meanwhile leaves the failback a manifest without them
        // (an item deleted at the peer since would be kept as a write here).
        let save_in = shared.save_due_in();
        let retry_in = full_retry_at
            .filter(|_| full)
            .map(|t| t.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(retry_in.unwrap_or_default()), if retry_in.is_some() => {}
            _ = tokio::time::sleep_until(watched.next_check().into()) => {}
            Some(done) = running.join_next(), if !running.is_empty() => {
                if !shared.batch_done(done, &mut failing).await {
                    return;
                }
            }
            _ = tokio::time::sleep(save_in.unwrap_or_default()), if save_in.is_some() => {
                shared.save_manifest(false).await;
            }
            _ = cancel.cancelled() => return,
        }
    }
}

impl Shared {
    /// Owes an audit ([`super::audit`]) once `audit_every` passed since
    /// the last full pass, unless a full pass is owed or running anyway.
    fn audit_if_due(&self) {
        let Some(every) = self.settings.audit_every else {
            return;
        };
        let mut st = self.state.lock().unwrap();
        if st.full_since.is_none()
            && st.full_inflight_since.is_none()
            && st.last_full.is_some_and(|t| t.elapsed() >= every)
        {
            st.audit_due = true;
        }
    }

    /// Handles a finished batch; `false` when the worker must end (cancelled).
    pub(super) async fn batch_done(
        &self,
        done: Result<Result<(), AgentError>, tokio::task::JoinError>,
        failing: &mut bool,
    ) -> bool {
        match done {
            Ok(Ok(())) => {
                self.save_manifest(false).await;
                true
            }
            Ok(Err(AgentError::ReplicationCancelled)) => false,
            Ok(Err(AgentError::DeleteGuard(why))) => {
                warn!(target = %self.settings.target(), reason = %why, "replication batch not sent (mass-delete guard), a guarded full pass follows");
                true
            }
            Ok(Err(e)) => {
                *self.failing.lock().unwrap() = Some(e.to_string());
                if !*failing {
                    warn!(target = %self.settings.target(), cause = %e, "replication batch failed, a full pass follows");
                }
                *failing = true;
                true
            }
            Err(e) => {
                warn!(cause = %e, "replication batch task failed, a full pass follows");
                let mut st = self.state.lock().unwrap();
                st.full_since = earliest(st.full_since, Some(Instant::now()));
                true
            }
        }
    }

    /// Takes up to `batch_max` pending paths that overlap no running batch
    /// and marks them running.
    pub(super) fn take_batch(&self) -> Option<(u64, Vec<PathBuf>)> {
        let mut st = self.state.lock().unwrap();
        let since = st.pending_since?;
        let mut taken = Vec::new();
        let mut left = BTreeSet::new();
        for p in std::mem::take(&mut st.paths) {
            if taken.len() < self.settings.batch_max && !st.overlaps_running(&p) {
                // Overlaps within the batch are fine: one rsync sends them in order.
                taken.push(p);
            } else {
                left.insert(p);
            }
        }
        st.paths = left;
        if st.paths.is_empty() {
            st.pending_since = None;
        }
        if taken.is_empty() {
            return None;
        }
        let id = st.next_batch;
        st.next_batch += 1;
        st.batch_paths.extend(taken.iter().cloned());
        st.batches.insert(id, (since, taken.clone()));
        Some((id, taken))
    }

    /// Runs batch `id`; on failure a full pass is owed from its oldest change.
    pub(super) async fn run_batch(
        self: Arc<Self>,
        id: u64,
        paths: Vec<PathBuf>,
        cancel: CancellationToken,
    ) -> Result<(), AgentError> {
        let mut later = Vec::new();
        let (result, owe_full) = match self.send_batch(paths, &cancel, &mut later).await {
            Ok(sent) => (Ok(()), !sent),
            Err(e) => (Err(e), true),
        };
        let mut st = self.state.lock().unwrap();
        if let Some((since, paths)) = st.batches.remove(&id) {
            for p in &paths {
                st.batch_paths.remove(p);
            }
            if owe_full {
                st.full_since = earliest(st.full_since, Some(since));
            }
            if !later.is_empty() {
                // (what this batch did not send, pending since its change)
                st.paths.extend(later);
                st.pending_since = earliest(st.pending_since, Some(since));
            }
        }
        drop(st);
        self.wake.notify_one();
        result
    }
}
