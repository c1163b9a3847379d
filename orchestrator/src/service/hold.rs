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
//!
//! Places never rely on two hosts' clocks agreeing: an order carries the
//! term of the licence it was given under (with etcd, the revision of the
//! leader key's creation: a later leader's orders outrank its
//! predecessor's, and a deposed leader's late copies stay refused,
//! whatever the clocks say), and its `seq` is placed above every `seq` a
//! frontend reported taken (a route read back, a refusal of an order
//! placed before the newest) — a single orchestrator restarted with its
//! clock stepped back places its orders after its former self's once it
//! has heard of them. A refused order is never sent again with a new
//! place: that would put an old order after newer ones (a withdrawal
//! after the cut-over given since).

use super::*;
use warden_strategies::HoldPlace;

/// How far ahead of this orchestrator's clock a `seq` reported taken may
/// be and still be placed after: clocks apart by up to a day (skew, a
/// predecessor whose clock was wrong) are survived; beyond, the report is
/// a fault, not a clock.
pub(crate) const TAKEN_AHEAD_MAX: Duration = Duration::from_secs(24 * 3600);

/// The longest a single orchestrator's start waits to read back the
/// routing of the groups whose runbooks it resumes
/// ([`Shared::learn_hold_places`]).
const HOLD_READ_TIMEOUT: Duration = Duration::from_secs(3);

impl Shared {
    /// Send a hold order (`ttl` zero: withdraw it) for `group` at `epoch` to
    /// its routing layer, in a task under the licence; never waited for.
    /// Placed now ([`Shared::next_hold_seq`]), as given, whenever it lands.
    pub(crate) fn order_hold(&self, group: &str, epoch: u64, ttl: Duration, pause: bool) {
        let Some(routing) = self.strategies.get(group).cloned() else {
            return;
        };
        let place = HoldPlace {
            term: self.hold_term(),
            seq: self.next_hold_seq(routing.hold_seq_taken()),
            cluster: self.hold_cluster(),
        };
        let group = group.to_string();
        let licence = self.licence.clone();
        self.licence.spawn(move |term| async move {
            tokio::select! {
                _ = term.cancelled() => {}
                r = licence.gated(&term, routing.hold(epoch, place, ttl, pause)) => match r {
                    None => {}
                    Some(Ok(())) => tracing::debug!(group = %group, epoch, ttl = ?ttl, "hold order sent"),
                    Some(Err(e)) => warn!(group = %group, epoch, cause = %e, "hold order not taken; a failing connection is closed at once there"),
                },
            }
        });
    }

    /// The term a hold order given now is placed in: with etcd, the
    /// revision at which this node's leader key was created (it grows with
    /// every election); alone on a local store, none (0).
    pub(crate) fn hold_term(&self) -> u64 {
        self.ha.as_ref().map_or(0, |h| h.term())
    }

    /// The etcd cluster of [`Shared::hold_term`] (none alone on a local
    /// store): a frontend compares the places of one cluster only.
    pub(crate) fn hold_cluster(&self) -> Option<u64> {
        self.ha.as_ref().and_then(|h| h.cluster())
    }

    /// The `seq` of a hold order given now: the time in Unix ms, strictly
    /// increasing within this process, and above `taken`, the highest
    /// `seq` the group's routing layer reported taken — so an orchestrator
    /// whose clock is behind its predecessor's (a restart after the clock
    /// was stepped back, a new leader on another host) places its orders
    /// after the ones the frontends hold. A report further ahead of this
    /// clock than [`TAKEN_AHEAD_MAX`] is not believed (a broken or forged
    /// answer would otherwise pin every later `seq` at the top).
    pub(crate) fn next_hold_seq(&self, taken: u64) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.clock.now_ms().max(1);
        let ahead = Duration::from_millis(taken.saturating_sub(now));
        let floor = if ahead > TAKEN_AHEAD_MAX {
            warn!(
                taken,
                ahead = ?ahead,
                "a frontend reported a hold order placed further ahead of this clock than any skew allowed for; not placing orders after it"
            );
            0
        } else {
            taken
        };
        let next = |last: u64| now.max(last.max(floor).saturating_add(1));
        match self
            .hold_seq
            .fetch_update(SeqCst, SeqCst, |last| Some(next(last)))
        {
            Ok(last) | Err(last) => next(last),
        }
    }

    /// Before a single orchestrator resumes its runbooks at start: read
    /// back the routing of each group whose runbook it resumes (all at
    /// once, for [`HOLD_READ_TIMEOUT`] at most), so that the cut-over it
    /// orders first is placed after the orders its former self gave —
    /// with a clock since stepped back. Steady groups are read by the
    /// first reconciliation (running ones are skipped there); a layer not
    /// read now is learned from the refusal of the first order.
    pub async fn learn_hold_places(&self) {
        let running: Vec<crate::routing::Routing> = {
            let st = self.lock();
            st.groups
                .values()
                .filter(|g| g.phase == Phase::Running)
                .filter_map(|g| self.strategies.get(&g.name).cloned())
                .collect()
        };
        let Some(term) = self.licence.token().filter(|_| !running.is_empty()) else {
            return;
        };
        // Under the licence's gate: a read may leave an order for later
        // (the end of an HAProxy drain it found unended).
        let reads = running
            .iter()
            .map(|r| self.licence.gated(&term, r.current()));
        let _ = tokio::time::timeout(HOLD_READ_TIMEOUT, futures::future::join_all(reads)).await;
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
