//! Reconciliation: the routing layer is compared with what was decided and
//! re-applied on drift; an epoch seen above the group's is recorded, never
//! silently taken.

use super::*;

impl Shared {
    /// Compare decided routing with what each strategy observes; re-apply on
    /// drift. Runs under the licence's term: a node that loses the licence
    /// stops mid-way (a re-apply in flight is abandoned, not finished late).
    pub async fn reconcile_once(&self) {
        let Some(term) = self.licence.token() else {
            return;
        };
        tokio::select! {
            _ = term.cancelled() => {
                info!("licence ended during reconciliation: stopped");
            }
            _ = self.reconcile_groups() => {}
        }
    }

    async fn reconcile_groups(&self) {
        let groups: Vec<GroupState> = self.lock().groups.values().cloned().collect();
        for g in groups {
            if g.phase == Phase::Running {
                continue;
            }
            let Some(strategy) = self.strategies.get(&g.name) else {
                continue;
            };
            if let Some(h) = strategy.hybrid() {
                self.reconcile_hybrid(&g, h).await;
                continue;
            }
            let observed = strategy.current().await;
            if let Ok(o) = &observed {
                if o.epoch > g.epoch {
                    let mut st = self.lock();
                    self.note_epoch_ahead_locked(&mut st, &g, o.epoch, "the routing layer");
                    continue;
                }
            }
            let drift = match &observed {
                Ok(o)
                    if o.site.as_deref() == Some(g.active.as_str())
                        && o.drift.is_empty()
                        && o.epoch == g.epoch =>
                {
                    None
                }
                Ok(o) => Some(format!(
                    "routing layer reports {:?} at epoch {}{}",
                    o.site,
                    o.epoch,
                    if o.drift.is_empty() {
                        String::new()
                    } else {
                        format!(" (drift: {})", o.drift.join("; "))
                    }
                )),
                Err(e) => Some(format!("cannot observe routing: {e}")),
            };
            let Some(drift) = drift else { continue };
            // Re-check that nothing started meanwhile.
            {
                let st = self.lock();
                if st
                    .groups
                    .get(&g.name)
                    .is_none_or(|x| x.phase == Phase::Running || x.epoch != g.epoch)
                {
                    continue;
                }
            }
            let route = SiteRoute {
                site: g.active.clone(),
                mode: SwitchMode::Immediate,
            };
            let key = format!("reconcile/{}", g.name);
            match strategy.activate(&route, g.epoch).await {
                Ok(()) => {
                    self.level_cleared(&key);
                    self.event(
                        EventKind::Reconciled,
                        Some(&g.name),
                        Some(&g.active),
                        format!(
                            "routing drift corrected: {drift}; re-applied {} at epoch {}",
                            g.active, g.epoch
                        ),
                        vec![],
                        None,
                    )
                }
                Err(e) => {
                    let (kind, msg) = if e.is_fencing() {
                        (EventKind::Fencing, format!("reconcile refused: {e}"))
                    } else if matches!(e, StrategyError::Blocked { .. }) {
                        (
                            EventKind::Alert,
                            format!("cannot correct routing drift ({drift}): {e}"),
                        )
                    } else {
                        (
                            EventKind::ReconcileFailed,
                            format!("cannot correct routing drift ({drift}): {e}"),
                        )
                    };
                    // Recorded when the cause changes, not every cycle.
                    self.event_level(&key, kind, &g.name, None, msg);
                }
            }
        }
    }

    /// Whether `g` is still the decided state (nothing started meanwhile).
    pub(crate) fn unchanged(&self, g: &GroupState) -> bool {
        self.lock().groups.get(&g.name).is_some_and(|x| {
            x.phase != Phase::Running && x.epoch == g.epoch && x.frontend == g.frontend
        })
    }
}
