//! A returning site brought up to the active peer: the `resync` command's
//! passes until one is shorter than `resync_lag_max` (with the mass-delete
//! guard's hold waited out), the whole-tree checksum pre-check, and the
//! cut-over's `final_sync` (one more pass, of the names the peer journaled
//! when it can, and the verification of that pass's delta).

use super::*;

impl Replication {
    /// Stops any continuous replication from this site (a stale site must
    /// never push), builds the resyncer and enters the `resync` role.
    pub(super) async fn enter_resync(
        &self,
        g: &GroupRepl,
        cmd: &Command,
        peer: &str,
    ) -> Result<(String, Arc<dyn Resyncer>, watch::Sender<ResyncProgress>), String> {
        let stopped = self.stop(g, &cmd.group).await;
        let resyncer = plan::resyncer_held(
            &self.config,
            &cmd.group,
            &self.site,
            peer,
            Some(cmd.epoch),
            &g.hold,
        )
        .map_err(|e| e.to_string())?;
        let (tx, rx) = watch::channel(ResyncProgress::default());
        let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
        run.role = Role::Resync {
            peer: peer.to_string(),
            epoch: cmd.epoch,
            progress: rx,
        };
        Ok((stopped, resyncer, tx))
    }

    /// Resync passes until one takes less than `resync_lag_max`.
    pub(super) async fn catch_up(
        &self,
        g: &GroupRepl,
        cmd: &Command,
        shutdown: &CancellationToken,
    ) -> Result<String, String> {
        let peer = self.peer_of(cmd)?;
        let (stopped, resyncer, tx) = self.enter_resync(g, cmd, &peer).await?;
        // A new list for a resync of another epoch (another failback); the
        // same resync handed out again to this process (the one before was
        // killed while the orchestrator waited) adds to the list it kept —
        // cleared, its pages not all reported would be lost again.
        let same = self.divergent.epoch_of(&cmd.group) == Some(cmd.epoch);
        {
            let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
            run.passes = 0;
            if !same {
                run.divergent.clear();
            }
        }
        if !same {
            self.divergent.set(&cmd.group, cmd.epoch, &[]);
        }
        let policy = policy_for(g, cmd);
        let lag_max = g.cfg.resync_lag_max;
        let (mut fetched, mut bytes, mut deleted) = (0u64, 0u64, 0u64);
        let mut last = Duration::ZERO;
        for pass in 1..=MAX_PASSES {
            let report = guarded_pass(&*resyncer, &g.hold, policy, shutdown, &tx)
                .await
                .map_err(|e| format!("resync pass {pass} from {peer} failed: {e}"))?;
            fetched += report.fetched.items;
            bytes += report.fetched.bytes;
            deleted += report.deleted;
            last = report.elapsed;
            let list = {
                let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
                run.passes = pass;
                merge_divergent(&mut run.divergent, divergent_of(cmd, report.divergent));
                run.divergent.clone()
            };
            // On disk before anything reports it: a kill now leaves the
            // next process the list (`divergent_kept`).
            self.divergent.set(&cmd.group, cmd.epoch, &list);
            info!(group = %cmd.group, pass, fetched = report.fetched.items, deleted = report.deleted, elapsed_ms = report.elapsed.as_millis() as u64, "resync pass done");
            if report.elapsed < lag_max {
                let (div, kept) = {
                    let run = g.run.lock().unwrap_or_else(|p| p.into_inner());
                    (run.divergent.len(), kept_names(&run.divergent))
                };
                let checked = self.precheck(g, cmd, &peer, &kept).await;
                return Ok(format!(
                    "{stopped}; resync {} ← {peer}: {pass} passes, fetched {fetched} items ({bytes} bytes), deleted {deleted}, divergent {div}; last pass {} ms < resync_lag_max {} ms; {checked}",
                    self.site,
                    last.as_millis(),
                    lag_max.as_millis()
                ));
            }
        }
        warn!(group = %cmd.group, "resync never got under resync_lag_max");
        Err(format!(
            "resync {} ← {peer}: {MAX_PASSES} passes and the last still took {} ms (resync_lag_max {} ms): the active site changes faster than it can be copied",
            self.site,
            last.as_millis(),
            lag_max.as_millis()
        ))
    }

    /// The whole-tree checksum verification, run before the cut-over while
    /// writes still flow at the peer (so the cut-over's own verification
    /// only covers its final pass's delta): reads every item at both sides.
    /// Differences are expected where the peer is being written; content
    /// that differs where size and time agree (what no quick check sees)
    /// is reported in the outcome and the log.
    pub(super) async fn precheck(
        &self,
        g: &GroupRepl,
        cmd: &Command,
        peer: &str,
        kept: &[String],
    ) -> String {
        let fresh = match plan::resyncer_held(
            &self.config,
            &cmd.group,
            &self.site,
            peer,
            Some(cmd.epoch),
            &g.hold,
        ) {
            Ok(r) => r,
            Err(e) => return format!("checksum pre-check not run: {e}"),
        };
        let started = std::time::Instant::now();
        match fresh.verify(kept).await {
            Ok(v) => {
                let silent: Vec<String> = v
                    .differences
                    .iter()
                    .filter(|d| d.kind == crate::replicate::DifferenceKind::Changed)
                    .map(|d| d.path.display().to_string())
                    .collect();
                if !silent.is_empty() {
                    warn!(group = %cmd.group, items = silent.len(), first = %silent[0], "checksum pre-check: content differs from the peer (or is being written there)");
                }
                format!(
                    "checksum pre-check of {} items ({} bytes) in {} ms: {} differ (writes still flow at {peer})",
                    v.items,
                    v.bytes,
                    started.elapsed().as_millis(),
                    v.differences.len()
                )
            }
            Err(e) => format!("checksum pre-check failed to run: {e}"),
        }
    }

    /// The cut-over pass: one more pass, then verification of what it did.
    pub(super) async fn final_sync(
        &self,
        g: &GroupRepl,
        cmd: &Command,
        shutdown: &CancellationToken,
    ) -> Result<String, String> {
        let peer = self.peer_of(cmd)?;
        let (_, resyncer, tx) = self.enter_resync(g, cmd, &peer).await?;
        let policy = policy_for(g, cmd);
        let kept_before = kept_names(&lock(&g.run).divergent);
        let journaled = match &cmd.changed {
            Some(names) => match resyncer
                .pass_changed(names, &kept_before, cmd.replica, shutdown.clone())
                .await
            {
                Ok(Ok(r)) => Ok((r, format!("{} names journaled at {peer}", names.len()))),
                Ok(Err(why)) => Err(format!("full final pass: {why}")),
                Err(e) => {
                    return Err(format!(
                        "final pass of the names journaled at {peer} failed: {e}"
                    ))
                }
            },
            None => Err(format!("full final pass: no change journal from {peer}")),
        };
        let (report, how) = match journaled {
            Ok(done) => done,
            Err(how) => {
                info!(group = %cmd.group, "{how}");
                let r = guarded_pass(&*resyncer, &g.hold, policy, shutdown, &tx)
                    .await
                    .map_err(|e| format!("final resync pass from {peer} failed: {e}"))?;
                (r, how)
            }
        };
        let (kept, list) = {
            let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
            run.passes += 1;
            merge_divergent(
                &mut run.divergent,
                divergent_of(cmd, report.divergent.clone()),
            );
            (kept_names(&run.divergent), run.divergent.clone())
        };
        self.divergent.set(&cmd.group, cmd.epoch, &list);
        let v = resyncer
            .verify(&kept)
            .await
            .map_err(|e| format!("verification against {peer} failed to run: {e}"))?;
        if !v.differences.is_empty() {
            let shown: Vec<String> = v
                .differences
                .iter()
                .take(10)
                .map(|d| format!("{} ({:?})", d.path.display(), d.kind))
                .collect();
            return Err(format!(
                "verification failed: {} differ between {} and {peer}: {}{}",
                v.differences.len(),
                self.site,
                shown.join(", "),
                if v.differences.len() > 10 {
                    ", …"
                } else {
                    ""
                }
            ));
        }
        let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
        run.role = Role::Idle;
        Ok(format!(
            "final pass ({how}) fetched {} items ({} bytes), deleted {} in {} ms; verified {} holds what {peer} holds: {} items, {} bytes (the pass's delta by checksum), {} divergent kept",
            report.fetched.items,
            report.fetched.bytes,
            report.deleted,
            report.elapsed.as_millis(),
            self.site,
            v.items,
            v.bytes,
            v.excepted
        ))
    }
}

/// One resync pass; while the mass-delete guard holds it, waits (status
/// shows the guard) and tries again every [`GUARD_RETRY`] or as soon as the
/// operator releases it, until `cancel` (a stop, shutdown).
pub(super) async fn guarded_pass(
    resyncer: &dyn Resyncer,
    hold: &GuardHold,
    policy: DivergentPolicy,
    cancel: &CancellationToken,
    tx: &watch::Sender<ResyncProgress>,
) -> Result<PassReport, AgentError> {
    let mut warned = false;
    loop {
        match resyncer
            .pass(policy, cancel.child_token(), Some(tx.clone()))
            .await
        {
            Err(AgentError::DeleteGuard(why)) => {
                if !warned {
                    warn!(reason = %why, "resync pass held by the mass-delete guard, nothing deleted; waiting");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(GUARD_RETRY) => {}
                    _ = hold.released() => {}
                    _ = cancel.cancelled() => return Err(AgentError::ReplicationCancelled),
                }
            }
            r => return r,
        }
    }
}

/// The names the policy kept in place (not differences at verification).
pub(super) fn kept_names(divergent: &[DivergentItem]) -> Vec<String> {
    divergent
        .iter()
        .filter(|d| d.action == "kept")
        .map(|d| d.name.clone())
        .collect()
}

pub(super) fn merge_divergent(into: &mut Vec<DivergentItem>, new: Vec<DivergentItem>) {
    for d in new {
        if let Some(old) = into.iter_mut().find(|o| o.name == d.name) {
            *old = d;
        } else {
            into.push(d);
        }
    }
}
