//! Hold orders: telling a group's frontends that a switch may be coming, so
//! that users' new connections wait for the new route instead of failing.
//! Sent for a steady group whose active site is suspected — at the first
//! sign (a report with a critical check failing, a peer's or the
//! orchestrator's probe failing: as it arrives, not a round later) and on
//! every down round until confirmed — and by runbooks before they touch the
//! active site (see [`crate::runbook::RunbookEnv::hold`]). Best effort: a
//! frontend that misses an order only fails connections fast, as without
//! it; an order lapses on its own, so a deposed or crashed orchestrator
//! cannot leave a frontend holding. Orders are sent by tasks of their own,
//! never waiting for each other, so each carries its place among the
//! orders of its epoch (`seq`): a frontend refuses one placed before the
//! newest it took — a suspicion's hold landing after the withdrawal that
//! followed it no longer holds users for its whole ttl.

use super::*;

impl Shared {
    /// Send a hold order (`ttl` zero: withdraw it) for `group` at `epoch` to
    /// its routing layer, in a task under the licence; never waited for.
    /// Placed now ([`Shared::next_hold_seq`]), as given, whenever it lands.
    pub(crate) fn order_hold(&self, group: &str, epoch: u64, ttl: Duration, pause: bool) {
        let Some(routing) = self.strategies.get(group).cloned() else {
            return;
        };
        let seq = self.next_hold_seq();
        let group = group.to_string();
        let licence = self.licence.clone();
        self.licence.spawn(move |term| async move {
            tokio::select! {
                _ = term.cancelled() => {}
                r = licence.gated(&term, routing.hold(epoch, seq, ttl, pause)) => match r {
                    None => {}
                    Some(Ok(())) => tracing::debug!(group = %group, epoch, ttl = ?ttl, "hold order sent"),
                    Some(Err(e)) => warn!(group = %group, epoch, cause = %e, "hold order not taken; a failing connection is closed at once there"),
                },
            }
        });
    }

    /// The place of a hold order given now: the time in Unix ms, strictly
    /// increasing within this process — so a leader that takes over a
    /// runbook at its epoch places its orders after its predecessor's
    /// (clocks apart by less than the lease).
    pub(crate) fn next_hold_seq(&self) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.clock.now_ms().max(1);
        let next = |last: u64| now.max(last.saturating_add(1));
        match self
            .hold_seq
            .fetch_update(SeqCst, SeqCst, |last| Some(next(last)))
        {
            Ok(last) | Err(last) => next(last),
        }
    }

    /// `site` looks down from one vantage point: hold for every steady
    /// group whose active site it is (state lock held). Renewed at most
    /// every half ttl per group, so a site that keeps failing costs one
    /// order per group per half ttl, not one per report.
    pub(crate) fn suspect_locked(&self, st: &mut State, site: &str, now: Instant) {
        if !self.licence.is_held() {
            return;
        }
        let ttl = self.suspect_hold_ttl();
        // Only the site's own groups (a report path: not a scan of all groups).
        let groups: Vec<(&String, u64)> = self
            .site_groups
            .get(site)
            .into_iter()
            .flatten()
            .filter_map(|name| {
                let g = st.groups.get(name)?;
                (g.active == site && g.phase == Phase::Steady && !g.maintenance)
                    .then_some((name, g.epoch))
            })
            .collect();
        for (group, epoch) in groups {
            let fresh = st
                .suspect_holds
                .get(group)
                .is_some_and(|t| now.saturating_duration_since(*t) < ttl / 2);
            if fresh {
                continue;
            }
            st.suspect_holds.insert(group.clone(), now);
            // Suspected only: users still try the site first.
            self.order_hold(group, epoch, ttl, false);
        }
    }

    /// How long a hold order for a suspected site stands: until the
    /// detector could have confirmed it, and a round more (each down round
    /// renews it; the runbook sends its own).
    pub(crate) fn suspect_hold_ttl(&self) -> Duration {
        let d = &self.cfg.detection;
        d.interval.saturating_mul(d.fall.saturating_add(2))
    }
}
