//! A routing layer split at the group's own epoch: one element routes the
//! active site at the group's epoch, another a different site at that very
//! epoch (a late switch landed on one frontend while a rollback's route
//! back landed on another). Each element refuses the other site at the
//! epoch it holds, so no order at that epoch mends it: reconciliation
//! takes the group's next epoch — stored before any order carries it, so
//! no element is told an epoch this orchestrator did not decide — and
//! routes the active site at it everywhere.

use super::*;

impl Shared {
    /// Reconciliation's re-apply of `g`'s route was refused by an element
    /// that holds another site at `g.epoch` (`seen` says what): route the
    /// active site at a new epoch, when the active site's agent says it is
    /// active for the group (never everyone at a new epoch to a site that
    /// does not say it holds the role: a move left to the operator, its
    /// active site demoted, stays as it is). `key` is the group's
    /// reconciliation condition, for what is said once. `None` when the
    /// licence ended (the pass stops).
    pub(crate) async fn mend_split(
        &self,
        g: &GroupState,
        strategy: &dyn warden_strategies::Strategy,
        term: &CancellationToken,
        key: &str,
        seen: &str,
    ) -> Option<()> {
        let (epoch, seq) = {
            let mut st = self.lock();
            let Some(now) = st.groups.get(&g.name).cloned() else {
                return Some(());
            };
            if now.phase == Phase::Running || now.epoch != g.epoch || now.active != g.active {
                return Some(());
            }
            if !self.licence.holds(term) {
                return None;
            }
            let said = format!(
                "the routing layer is split at epoch {}: {seen}; only a newer epoch moves that element",
                g.epoch
            );
            if !self.reports_active_locked(&st, &g.active, &g.name) {
                let msg = format!(
                    "{said}, and {}'s agent does not report itself active for group {} now: not re-routed \
                     at a new epoch (users are not all sent to a site that may not take writes); \
                     `warden failover {} --to SITE` decides",
                    g.active, g.name, g.name
                );
                if st.recorded.observe(key, Some(&msg)) {
                    self.event_locked(
                        &mut st,
                        EventKind::Fencing,
                        Some(&g.name),
                        Some(&g.active),
                        msg,
                        vec![],
                        None,
                    );
                }
                return Some(());
            }
            let epoch = match self.next_epoch_locked(&st, &g.name) {
                Ok(e) => e,
                Err(e) => {
                    let msg = format!("{said}; no new epoch can be taken: {e}");
                    if st.recorded.observe(key, Some(&msg)) {
                        self.event_locked(
                            &mut st,
                            EventKind::Fencing,
                            Some(&g.name),
                            Some(&g.active),
                            msg,
                            vec![],
                            None,
                        );
                    }
                    return Some(());
                }
            };
            let mut ng = now;
            ng.epoch = epoch;
            let seq = self.persist(&ng);
            st.groups.insert(g.name.clone(), ng);
            let withdrawn = st.ledger.withdraw_below(
                &g.name,
                epoch,
                &format!("epoch {epoch}: the routing layer re-routed"),
            );
            st.recorded.observe(key, None);
            self.event_locked(
                &mut st,
                EventKind::Fencing,
                Some(&g.name),
                Some(&g.active),
                format!(
                    "{said}: {} ({}'s agent reports it active) is routed at epoch {epoch}, the group's next; \
                     {} queued command(s) withdrawn",
                    g.active,
                    g.active,
                    withdrawn.len()
                ),
                vec![],
                None,
            );
            (epoch, seq)
        };
        let durable = self
            .durable_before_acting(seq, term, &g.name, Some(&g.active), None, || {
                format!(
                    "re-routing group {} to {} at epoch {epoch}",
                    g.name, g.active
                )
            })
            .await;
        if !durable {
            return None;
        }
        let route = SiteRoute {
            site: g.active.clone(),
            mode: SwitchMode::Immediate,
        };
        let applied = self
            .licence
            .gated(term, strategy.activate(&route, epoch))
            .await?;
        self.sync_provider_stops(Some(&g.name));
        let (kind, msg) = match applied {
            Ok(()) => (
                EventKind::Reconciled,
                format!(
                    "routing split mended: every element routes to {} at epoch {epoch}",
                    g.active
                ),
            ),
            Err(e) if e.is_fencing() => (
                EventKind::Fencing,
                format!("re-routing {} at epoch {epoch} refused: {e}", g.active),
            ),
            Err(e) => (
                EventKind::ReconcileFailed,
                format!(
                    "re-routing {} at epoch {epoch} did not reach every element ({e}); reconciliation goes on at epoch {epoch}",
                    g.active
                ),
            ),
        };
        self.event(kind, Some(&g.name), Some(&g.active), msg, vec![], None);
        Some(())
    }
}
