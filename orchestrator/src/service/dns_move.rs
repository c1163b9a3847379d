//! The frontend layer's move of a hybrid group's DNS name: once the
//! decision is durable, the frontend the name moves to is given the route
//! to the active site at the group's epoch, then the name is pointed at it
//! (each under the leader's licence), and the outcome is an event.

use super::*;

impl Shared {
    /// Point a hybrid group's DNS name at `frontend` once the decision
    /// (change `seq` of the store writer) is durable — or, with a store that
    /// may act unwritten (the local file on a full disk), once its commit
    /// failed, under an alert; a failure here is retried by reconciliation.
    pub(crate) fn spawn_dns_move(
        self: &Arc<Self>,
        group: String,
        frontend: String,
        epoch: u64,
        seq: u64,
    ) {
        let me = self.clone();
        let g2 = group.clone();
        let started = self.licence.spawn(move |term| async move {
            let group = g2;
            let durable = me
                .durable_before_acting(seq, &term, &group, None, None, || {
                    format!("moving the DNS of group {group} to {frontend}")
                })
                .await;
            if !durable {
                me.lock().dns_moving.remove(&group);
                return;
            }
            let Some(strategy) = me.strategies.get(&group).cloned() else {
                return;
            };
            let Some(h) = strategy.hybrid() else {
                return;
            };
            // The frontend the name moves to routes the group's active
            // site at its epoch first: one that missed the last switch
            // (unreachable then, or restarted since) would send every
            // user to the site failed away from until reconciliation's
            // next pass. Its control API unreachable: its route is
            // unknown, not known wrong — the name moves as before (the
            // frontend it leaves is down).
            let decided = me.lock().groups.get(&group).cloned();
            if let Some(g) = decided {
                let route = SiteRoute {
                    site: g.active.clone(),
                    mode: SwitchMode::Immediate,
                };
                let set = tokio::select! {
                    r = me.licence.gated(&term, h.set_route(&frontend, &route, g.epoch)) => r,
                    _ = term.cancelled() => None,
                };
                match set {
                    None => {
                        me.lock().dns_moving.remove(&group);
                        return;
                    }
                    Some(Err(e)) if !e.is_transient() => {
                        me.lock().dns_moving.remove(&group);
                        me.event(
                            if e.is_fencing() { EventKind::Fencing } else { EventKind::ReconcileFailed },
                            Some(&group),
                            None,
                            format!(
                                "frontend layer: the name is not moved to {frontend}: it does not take the route to {} at epoch {} ({e}); \
                                 users would reach another site through it",
                                g.active, g.epoch
                            ),
                            vec![],
                            None,
                        );
                        return;
                    }
                    Some(_) => {}
                }
            }
            let started = Instant::now();
            // The wait for the store may have been long: the update asks
            // the term's gate as it leaves.
            let r = tokio::select! {
                r = me.licence.gated(&term, h.point_dns(&frontend, epoch)) => r,
                _ = term.cancelled() => None,
            };
            let Some(r) = r else {
                me.lock().dns_moving.remove(&group);
                return;
            };
            me.lock().dns_moving.remove(&group);
            me.sync_provider_stops(Some(&group));
            let (kind, msg) = match r {
                Ok(()) => (
                    EventKind::FrontendMoved,
                    format!(
                        "frontend layer: DNS of group {group} points at {frontend} (published at epoch {epoch} in {} ms)",
                        started.elapsed().as_millis()
                    ),
                ),
                Err(e) if e.is_fencing() => (
                    EventKind::Fencing,
                    format!("frontend layer: DNS move to {frontend} refused: {e}"),
                ),
                Err(e) => (
                    EventKind::ReconcileFailed,
                    format!("frontend layer: DNS move to {frontend} failed (reconciliation retries): {e}"),
                ),
            };
            me.event(kind, Some(&group), None, msg, vec![], None);
        });
        if !started {
            // Not ours to move any more; reconciliation of the holder redoes it.
            self.lock().dns_moving.remove(&group);
        }
    }
}
