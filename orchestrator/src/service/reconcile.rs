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
        // Made after the snapshot: every route read in this pass (a
        // frontend's table is read once for all its groups) is at least as
        // new as the state it is compared with.
        let pass = warden_strategies::ReadPass::new();
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
            let observed = strategy.current_in(&pass).await;
            if let Ok(o) = &observed {
                if o.epoch > g.epoch {
                    // A move decided since the snapshot is not an epoch
                    // seen ahead: compare with the group as it is now.
                    let mut st = self.lock();
                    let now = st.groups.get(&g.name).cloned();
                    if let Some(now) =
                        now.filter(|x| o.epoch > x.epoch && x.phase != Phase::Running)
                    {
                        self.note_epoch_ahead_locked(&mut st, &now, o.epoch, "the routing layer");
                    }
                    continue;
                }
            }
            // Say exactly what was seen: a drift, or nothing at all (the
            // layer could not be read; re-applying is then a precaution,
            // not a correction).
            let blind = observed.is_err();
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
                        if blind {
                            format!(
                                "{drift}; re-applied {} at epoch {} as a precaution (no drift was seen)",
                                g.active, g.epoch
                            )
                        } else {
                            format!(
                                "routing drift corrected: {drift}; re-applied {} at epoch {}",
                                g.active, g.epoch
                            )
                        },
                        vec![],
                        None,
                    )
                }
                Err(e) => {
                    let what = if blind {
                        format!("{drift}, and re-applying {} failed", g.active)
                    } else {
                        format!("cannot correct routing drift ({drift})")
                    };
                    let (kind, msg) = if e.is_fencing() {
                        (EventKind::Fencing, format!("reconcile refused: {e}"))
                    } else if matches!(e, StrategyError::Blocked { .. }) {
                        (EventKind::Alert, format!("{what}: {e}"))
                    } else {
                        (EventKind::ReconcileFailed, format!("{what}: {e}"))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::tests::setup_with;
    use super::*;
    use crate::store::MemStore;

    fn last_reconcile_event(s: &Shared) -> String {
        s.lock()
            .recent
            .iter()
            .rev()
            .find(|e| matches!(e.kind, EventKind::Reconciled | EventKind::ReconcileFailed))
            .map(|e| e.message.clone())
            .unwrap_or_default()
    }

    /// An epoch above the group's is an alert (decisions held) only when
    /// it is above the group as it is when read: a move decided while the
    /// pass went on is not an epoch seen ahead.
    #[tokio::test(start_paused = true)]
    async fn an_epoch_ahead_is_judged_against_the_group_as_it_is_now() {
        let (s, fake, _dir) = setup_with(true, 3, "", Arc::new(MemStore::default()));
        let epoch = s.lock().groups["web"].epoch;
        // A move decided after the pass took its snapshot, before the read.
        let me = Arc::clone(&s);
        let route = Arc::clone(&fake);
        *fake.on_read.lock().unwrap() = Some(Box::new(move || {
            if let Some(g) = me.lock().groups.get_mut("web") {
                g.epoch = epoch + 1;
                g.active = "b".into();
            }
            *route.route.lock().unwrap() = (Some("b".into()), epoch + 1);
        }));
        s.reconcile_once().await;
        assert!(s.lock().epoch_ahead.is_empty(), "not an epoch seen ahead");
        assert!(s.lock().recent.iter().all(|e| e.kind != EventKind::Alert));

        // An epoch above the group as it is now: the alert.
        *fake.on_read.lock().unwrap() = None;
        *fake.route.lock().unwrap() = (Some("a".into()), epoch + 5);
        s.reconcile_once().await;
        assert_eq!(s.lock().epoch_ahead["web"].epoch, epoch + 5);
        assert!(s.lock().recent.iter().any(|e| e.kind == EventKind::Alert));
    }

    /// An event says what was observed: a layer that could not be read is
    /// not reported as a corrected drift; a real drift is.
    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_could_not_observe_says_so() {
        let (s, fake, _dir) = setup_with(true, 3, "", Arc::new(MemStore::default()));
        *fake.route.lock().unwrap() = (Some("a".into()), 1);
        fake.blind.store(true, Ordering::SeqCst);
        s.reconcile_once().await;
        let msg = last_reconcile_event(&s);
        assert!(msg.contains("cannot observe routing"), "{msg}");
        assert!(msg.contains("no drift was seen"), "{msg}");
        assert!(!msg.contains("drift corrected"), "{msg}");

        fake.blind.store(false, Ordering::SeqCst);
        *fake.route.lock().unwrap() = (Some("b".into()), 1);
        s.reconcile_once().await;
        let msg = last_reconcile_event(&s);
        assert!(msg.starts_with("routing drift corrected"), "{msg}");
        assert!(msg.contains("\"b\""), "the drift seen is named: {msg}");
        assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("a"));
    }
}
