//! Hold orders ([`Hold`]): a group's notice that a switch may be coming.
//! While one stands (until its ttl, or the next switch), a new connection
//! whose backend refuses or times out is held for at most the group's
//! `hold_connections` and retried on the new backend when the route
//! switches (the `switched` channel) — held only while an order stands: a
//! held connection that fails again once the order was withdrawn, lapsed
//! or ended by its switch is let go, as one arriving then; a cut-over
//! order (`pause`) makes new connections wait for the switch without
//! trying the current backend — those already held, retrying or
//! connecting when it comes too. The order is fenced by epoch like a route.
//!
//! Owns the orders' state ([`Holds`], kept with the route under the group's
//! lock), [`GroupRoute::set_hold`] and its refusals ([`HoldRefused`]), what
//! the proxy asks of an order (`hold_until`, `paused`, `hold_disabled`) and
//! the counts of held connections ([`HeldCounts`]). The route ([`super`])
//! ends the order in effect when it switches, and fences routes by the
//! orders' epoch too. What fences the next order (the epoch, the newest
//! place, the withdrawal) is also kept on disk ([`HoldKept`], written by
//! the control API before the order takes effect) and restored at start;
//! the order in effect is not.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{GroupRoute, Inner};
use crate::api::{Hold, RouteState, MAX_HOLD_TTL_MS};
use crate::fence::HoldKept;
use crate::rare::Rare;

/// The hold orders of one group: part of its route's state ([`Inner`]).
#[derive(Default)]
pub(super) struct Holds {
    /// The hold order in effect, if any (see the module docs).
    order: Option<HoldOrder>,
    /// Highest epoch of an accepted hold order (fences older orders).
    pub(super) epoch: u64,
    /// The highest place of an order taken at `epoch`: an order of that
    /// epoch placed lower was given before it and is refused.
    place: Place,
    /// Highest epoch whose hold order was withdrawn (`ttl_ms` 0): the
    /// switch that order announced is not coming, and a cut-over at that
    /// epoch arriving later is a late copy, not a new announcement.
    withdrawn: u64,
    /// The place of that withdrawal (`seq` 0: unplaced): a cut-over at
    /// its epoch placed after it was given later — a leader that resumed
    /// the runbook — and is no late copy.
    withdrawn_place: Place,
}

/// An order's place among the orders of its epoch: its giver's licence
/// term first, then its `seq` ([`crate::api::Hold`]). A later leader's
/// term is higher, so its orders outrank its predecessor's whatever the
/// two hosts' clocks say; within a term the giver's `seq` orders them.
/// Terms are compared within one etcd cluster (`cluster`) only: an order
/// of another cluster than a place's was given after it — the
/// orchestrators moved, and the frontend refused it before it got here
/// if its cluster is one it left ([`crate::fence::Clusters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) term: u64,
    pub(crate) seq: u64,
    pub(crate) cluster: Option<u64>,
}

impl Place {
    fn of(req: &Hold) -> Place {
        Place {
            term: req.term,
            seq: req.seq,
            cluster: req.cluster,
        }
    }

    /// Whether this order was given before the one at `other`: by
    /// (term, seq) in one etcd cluster, or when either says no cluster
    /// (an older orchestrator with etcd, or one orchestrator alone: by
    /// term, as before — never a move, `warden_proto::cluster`; an order
    /// of a cluster after a place of no cluster may be of that very
    /// cluster: a deposed upgraded leader of a rolling upgrade is placed
    /// by its term); never when both say clusters and they differ (the
    /// move came after).
    fn before(&self, other: &Place) -> bool {
        let comparable =
            self.cluster == other.cluster || self.cluster.is_none() || other.cluster.is_none();
        comparable && (self.term, self.seq) < (other.term, other.seq)
    }

    /// Whether this order was given after the one at `other`.
    fn after(&self, other: &Place) -> bool {
        !self.before(other) && self != other
    }

    /// The later of this order's place and `other`.
    fn later(self, other: Place) -> Place {
        if self.before(&other) {
            other
        } else {
            self
        }
    }

    /// Whether the order is placed at all (`seq` 0: an older orchestrator).
    fn placed(&self) -> bool {
        self.seq > 0
    }
}

/// An accepted hold order; the next switch removes it (see [`GroupRoute::set`]).
struct HoldOrder {
    /// When it lapses on its own.
    until: Instant,
    /// A cut-over: new connections wait for the switch without trying the
    /// current backend (see [`crate::api::Hold::pause`]).
    pause: bool,
}

/// Counters of held connections.
#[derive(Default)]
pub(crate) struct HeldCounts {
    /// Held right now.
    pub(crate) now: AtomicU64,
    /// Held since start.
    pub(crate) total: AtomicU64,
    /// Connected after being held: to a new site after a route change, or
    /// to the routed site once it answered again.
    pub(crate) rescued: AtomicU64,
    /// Closed when their hold time was over.
    pub(crate) timed_out: AtomicU64,
    /// Refused without a hold order and tried again (`connect_retry`).
    pub(crate) retried: AtomicU64,
    /// Closed, not held, because their backend failed (for the warning
    /// that says so: users may open them as fast as they like).
    pub(crate) failed: AtomicU64,
    /// When a failed connect was last warned about ([`crate::rare`]).
    pub(crate) failed_said: Rare,
    /// When a held connection let go was last warned about.
    pub(crate) timed_out_said: Rare,
}

/// Why a [`GroupRoute::set_hold`] was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HoldRefused {
    /// A higher epoch was already accepted (a route or a hold order).
    Stale { seen: u64 },
    /// An order of this epoch given after it (placed higher: a higher
    /// term, or a higher `seq` in the same term) was already taken: this
    /// one landed late. `newest` is that order's place.
    Older {
        epoch: u64,
        place: Place,
        newest: Place,
    },
    /// A cut-over (`pause`) at an epoch whose hold order was withdrawn:
    /// its switch is not coming.
    Withdrawn { epoch: u64 },
    /// A cut-over (`pause`) at an epoch the group is already routed at:
    /// the switch it announced has come (it ends every hold order).
    Switched { epoch: u64 },
}

impl Holds {
    /// A restarted frontend's hold orders: fenced as `kept` says (none
    /// kept: nothing beyond the group's epoch), no order in effect — the
    /// one standing at the stop is not resumed (its giver sends it again
    /// if it still stands: the same place is taken again).
    pub(super) fn restored(kept: Option<&HoldKept>) -> Holds {
        let Some(k) = kept else {
            return Holds::default();
        };
        Holds {
            order: None,
            epoch: k.epoch,
            place: Place {
                term: k.term,
                seq: k.seq,
                cluster: k.cluster,
            },
            withdrawn: k.withdrawn,
            withdrawn_place: Place {
                term: k.withdrawn_term,
                seq: k.withdrawn_seq,
                cluster: k.withdrawn_cluster,
            },
        }
    }

    /// The switch the order announced has come: held connections go to the
    /// new site.
    pub(super) fn end(&mut self) {
        self.order = None;
    }

    /// A route at `epoch` to the site already routed: the switch an order
    /// at `epoch` or below announced has come, to the same site (a failed
    /// group's failover back to its own active site, a rollback's route to
    /// the old site at its move's epoch). The order ends as with any
    /// switch; whether there was one to end.
    pub(super) fn end_at(&mut self, epoch: u64) -> bool {
        if self.order.is_some() && epoch >= self.epoch {
            self.order = None;
            return true;
        }
        false
    }

    /// The place of the newest order taken at the highest hold epoch, as
    /// [`RouteState`] reports it (`hold_term`, `hold_seq`): none placed,
    /// `None`s.
    pub(super) fn newest(&self) -> (Option<u64>, Option<u64>) {
        let p = self.place;
        (
            (p.placed() && p.term > 0).then_some(p.term),
            p.placed().then_some(p.seq),
        )
    }

    /// What is left of the order in effect, in milliseconds (0: none).
    pub(super) fn remaining_ms(&self) -> u64 {
        self.order.as_ref().map_or(0, |o| {
            let left = o.until.saturating_duration_since(Instant::now());
            u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
        })
    }
}

impl GroupRoute {
    /// When a connection held from now would be let go, if a hold order
    /// stands (not lapsed, no switch since) and holding is on.
    pub(crate) fn hold_until(&self) -> Option<Instant> {
        self.hold_of(&self.lock())
    }

    pub(super) fn hold_of(&self, inner: &Inner) -> Option<Instant> {
        let order = inner.holds.order.as_ref()?;
        let now = Instant::now();
        (!self.hold_max.is_zero() && order.until > now).then(|| now + self.hold_max)
    }

    /// Apply a hold order, fenced by its epoch (see [`crate::api::Hold`]).
    ///
    /// Refused when older than the epoch already seen, or at the epoch of
    /// the newest order taken and placed before it (a lower [`Place`]: a
    /// lower term — a deposed leader's —, or a lower `seq` in the same
    /// term: given earlier, landed later — a hold landing after its
    /// withdrawal would hold users for its whole ttl), and also at that
    /// epoch when the order can only be a late copy — the orchestrator
    /// sends its orders without waiting for each other, so they may arrive
    /// out of order: a cut-over (`pause`) after the withdrawal of the
    /// order of its epoch (a runbook that failed before its switch
    /// withdraws at the epoch it held at) — unless both are placed and it
    /// was given after the withdrawal (a leader that resumed the runbook
    /// at its epoch, the deposed one's withdrawal landing first) —, or
    /// after the switch it announced
    /// (the route is already at its epoch). Either would keep new users off
    /// a healthy site, waiting for a switch that never comes. A plain hold
    /// (no `pause`) at such an epoch stays allowed: it is how a suspected
    /// active site is announced (at the group's epoch, which a failed
    /// runbook leaves at the one it withdrew), and it only holds
    /// connections whose backend fails.
    pub(crate) fn set_hold(&self, req: &Hold) -> Result<RouteState, HoldRefused> {
        let mut inner = self.lock();
        let next = judge(&inner, req)?;
        let h = &mut inner.holds;
        h.epoch = next.epoch;
        h.place = Place {
            term: next.term,
            seq: next.seq,
            cluster: next.cluster,
        };
        h.withdrawn = next.withdrawn;
        h.withdrawn_place = Place {
            term: next.withdrawn_term,
            seq: next.withdrawn_seq,
            cluster: next.withdrawn_cluster,
        };
        h.order = (req.ttl_ms > 0).then(|| HoldOrder {
            until: Instant::now() + Duration::from_millis(req.ttl_ms.min(MAX_HOLD_TTL_MS)),
            pause: req.pause,
        });
        self.orders.send_modify(|n| *n += 1);
        Ok(self.state_of(&inner))
    }

    /// What would fence the next order once `req` is taken, when there is
    /// more to keep on disk than its epoch ([`HoldKept::fences`]); `Err`
    /// when it would be refused. Asked before [`GroupRoute::set_hold`]
    /// under the group's `ordering` lock, so nothing changes between.
    pub(crate) fn hold_fence_after(&self, req: &Hold) -> Result<Option<HoldKept>, HoldRefused> {
        judge(&self.lock(), req).map(|k| Some(k).filter(HoldKept::fences))
    }

    /// Whether a cut-over order stands (holding on, not lapsed, no switch
    /// since): new connections wait for the switch without trying the
    /// current backend.
    pub(crate) fn paused(&self) -> bool {
        let inner = self.lock();
        !self.hold_max.is_zero()
            && inner
                .holds
                .order
                .as_ref()
                .is_some_and(|o| o.pause && o.until > Instant::now())
    }

    /// A receiver of the count of accepted hold orders, marked seen.
    pub(crate) fn orders(&self) -> watch::Receiver<u64> {
        let mut rx = self.orders.subscribe();
        rx.borrow_and_update();
        rx
    }

    /// When the order in effect lapses on its own, if one stands.
    pub(crate) fn order_lapses(&self) -> Option<Instant> {
        self.lock().holds.order.as_ref().map(|o| o.until)
    }

    /// Whether holding is turned off for this group (`hold_connections = "0s"`).
    pub(crate) fn hold_disabled(&self) -> bool {
        self.hold_max.is_zero()
    }
}

/// Whether `req` is taken (see [`GroupRoute::set_hold`] for when it is
/// not), and what fences the next order once it is.
fn judge(inner: &Inner, req: &Hold) -> Result<HoldKept, HoldRefused> {
    let h = &inner.holds;
    let seen = inner.epoch.max(h.epoch);
    if req.epoch < seen {
        return Err(HoldRefused::Stale { seen });
    }
    let same_epoch = req.epoch == h.epoch;
    let place = Place::of(req);
    if place.placed() && same_epoch && place.before(&h.place) {
        return Err(HoldRefused::Older {
            epoch: req.epoch,
            place,
            newest: h.place,
        });
    }
    let (mut withdrawn, mut withdrawn_place) = (h.withdrawn, h.withdrawn_place);
    if req.ttl_ms > 0 && req.pause {
        let after_withdrawal = place.placed()
            && req.epoch == withdrawn
            && withdrawn_place.placed()
            && place.after(&withdrawn_place);
        if req.epoch <= withdrawn && !after_withdrawal {
            return Err(HoldRefused::Withdrawn { epoch: req.epoch });
        }
        if inner.current.is_some() && req.epoch <= inner.epoch {
            return Err(HoldRefused::Switched { epoch: req.epoch });
        }
    } else if req.ttl_ms == 0 {
        withdrawn_place = match req.epoch.cmp(&withdrawn) {
            std::cmp::Ordering::Greater => place,
            std::cmp::Ordering::Equal => place.later(withdrawn_place),
            std::cmp::Ordering::Less => withdrawn_place,
        };
        withdrawn = withdrawn.max(req.epoch);
    }
    let newest = if same_epoch {
        place.later(h.place)
    } else {
        place
    };
    Ok(HoldKept {
        epoch: req.epoch,
        term: newest.term,
        seq: newest.seq,
        withdrawn,
        withdrawn_term: withdrawn_place.term,
        withdrawn_seq: withdrawn_place.seq,
        cluster: newest.cluster,
        withdrawn_cluster: withdrawn_place.cluster,
    })
}

#[cfg(test)]
mod tests {
    use super::Place;

    fn at(term: u64, seq: u64, cluster: Option<u64>) -> Place {
        Place { term, seq, cluster }
    }

    /// Places compare by (term, seq) within one cluster and whenever one
    /// says no cluster; an order of another cluster than the place's
    /// comes after it (the orchestrators' move).
    #[test]
    fn places_compare_by_term_unless_both_say_different_clusters() {
        let (a, b) = (Some(0xa), Some(0xb));
        assert!(at(16, 9, a).before(&at(17, 1, a)));
        assert!(!at(3, 1, b).before(&at(17, 9, a)), "a new cluster: after");
        assert!(
            at(0, 9, None).before(&at(3, 1, b)),
            "one orchestrator: by term"
        );
        // A rolling upgrade on one etcd cluster: the place is an older
        // orchestrator's (no cluster, term 19); an upgraded leader deposed
        // before it (term 18) is placed before it, its successor after.
        assert!(at(18, 9, a).before(&at(19, 1, None)));
        assert!(!at(20, 1, a).before(&at(19, 9, None)));
    }
}
