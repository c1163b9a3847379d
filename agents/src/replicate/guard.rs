//! The mass-delete guard shared by every replication plan (issue 10): a pass
//! that would delete a large part of the peer's copy — an emptied or
//! unmounted source, an empty peer during a resync — stops and waits for the
//! operator instead of propagating the loss.
//!
//! [`DeleteGuard`] holds the thresholds; [`GuardHold`] is what one group's
//! plan and the agent's replication role share: what the guard holds now
//! (reported in `ReplicationStatus.guard`) and the operator's one-time
//! release (`warden clear GROUP --deletions SITE`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use warden_config::ReplicationConfig;

/// Deletions within this window count together against the guard (an
/// emptying source is seen by several batches or rounds, not one).
pub const DELETE_WINDOW: Duration = Duration::from_secs(60);

/// Thresholds of the guard: a pass trips it when it would delete more than
/// `max_share` of the target's items *and* more than `max_count` items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteGuard {
    pub max_share: f64,
    pub max_count: u64,
}

impl Default for DeleteGuard {
    fn default() -> Self {
        DeleteGuard {
            max_share: 0.10,
            max_count: 100,
        }
    }
}

impl DeleteGuard {
    pub fn from_config(cfg: &ReplicationConfig) -> Self {
        DeleteGuard {
            max_share: cfg.max_delete_share,
            max_count: cfg.max_delete_count,
        }
    }

    /// `Err(message)` when deleting `deletes` of the `target_items` items at
    /// `target` (a site name or path, for the message) is too much.
    pub fn check(&self, deletes: u64, target_items: u64, target: &str) -> Result<(), String> {
        self.check_window(deletes, 0, target_items, target)
    }

    /// The most deletions (with those of the window) that
    /// [`check`](Self::check) lets through at a target of `target_items`
    /// items: what rsync's `--max-delete` may let a transfer delete when its
    /// own count could be short.
    pub fn allowance(&self, target_items: u64) -> u64 {
        let passes = |n: u64| self.check(n, target_items, "").is_ok();
        let by_share = (self.max_share * target_items as f64).floor();
        let mut most = if by_share.is_finite() && by_share > 0.0 {
            self.max_count.max(by_share.min(u64::MAX as f64) as u64)
        } else {
            self.max_count
        };
        // float rounding at the edge: at most a step or two either way
        while most > self.max_count && !passes(most) {
            most -= 1;
        }
        while most < u64::MAX && passes(most + 1) && most < self.max_count.max(target_items) {
            most += 1;
        }
        most
    }

    /// [`check`](Self::check) of a pass that follows `recent` deletions
    /// carried at the target within [`DELETE_WINDOW`] (gone from its
    /// `target_items` already): their total against the items before them,
    /// so a source emptied slowly, a few items a round, trips it too.
    pub fn check_window(
        &self,
        deletes: u64,
        recent: u64,
        target_items: u64,
        target: &str,
    ) -> Result<(), String> {
        let (total, before) = (deletes + recent, target_items + recent);
        if total <= self.max_count {
            return Ok(());
        }
        let share = if before == 0 {
            1.0
        } else {
            total as f64 / before as f64
        };
        if share <= self.max_share {
            return Ok(());
        }
        let what = if recent == 0 {
            format!("this pass would delete {deletes} of {target_items} items at {target}")
        } else {
            format!(
                "this pass would delete {deletes} of {target_items} items at {target}, after {recent} \
                 deleted there in the last {}: {total} of {before}",
                humantime::format_duration(DELETE_WINDOW)
            )
        };
        Err(format!(
            "mass-delete guard: {what} ({:.0} %, over the limits of {:.0} % and {} items); \
             this pass deleted nothing. Check the source (emptied, unmounted?), then run \
             `warden clear GROUP --deletions SITE` to let the pass go ahead",
            share * 100.0,
            self.max_share * 100.0,
            self.max_count
        ))
    }
}

pub(crate) use super::recent_deletes::RecentDeletes;

/// What the guard holds for one group, shared by its plan and the agent's
/// replication role. Cheap to clone (one shared state).
#[derive(Debug, Clone, Default)]
pub struct GuardHold(Arc<HoldInner>);

#[derive(Debug, Default)]
struct HoldInner {
    state: Mutex<HoldState>,
    /// Wakes a held pass waiting for its retry when the operator releases it.
    released: Notify,
}

#[derive(Debug, Default)]
struct HoldState {
    /// Why replication is held (what was seen, what to do); `None` when nothing is held.
    held: Option<String>,
    /// What the held pass tripped on.
    held_trip: Option<Trip>,
    /// The operator released the held pass: the next pass that trips on
    /// what was held (no more deletions) goes ahead, once.
    release: Option<Trip>,
}

/// What a pass tripped the guard on: what an operator's clear lets through.
/// A clear answers the hold the operator saw, not whatever trips next: a
/// clear of "500 of 1000 deleted" does not let through a source emptied
/// since, nor a clear of an unmounted source a mass delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    /// The source was a mount point and is not one now.
    Unmounted,
    /// The source is empty while the target holds items.
    EmptySource,
    /// The peer is empty while the manifest says it holds the group's data.
    EmptyPeer,
    /// Deletions over the limits: how many, with the recent ones.
    Deletes(u64),
}

impl Trip {
    /// Does a release of `permit` let this trip through?
    fn within(self, permit: Trip) -> bool {
        match (self, permit) {
            (Trip::Deletes(n), Trip::Deletes(m)) => n <= m,
            (a, b) => a == b,
        }
    }
}

/// Whether `seen` — a hold's message as the operator read it, through
/// the orchestrator, which cuts a long one to its first bytes and `…` —
/// is the message `held`.
pub fn same_hold(held: &str, seen: &str) -> bool {
    held == seen
        || seen.strip_suffix('…').is_some_and(|head| {
            !head.is_empty() && held.len() > head.len() && held.starts_with(head)
        })
}

impl GuardHold {
    /// A hold with nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HoldState> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why replication is held now, if it is.
    pub fn held(&self) -> Option<String> {
        self.state().held.clone()
    }

    /// A pass found `reason` (`what`: a tripped [`DeleteGuard::check`], an
    /// empty or unmounted source): `Ok(true)` when the operator released a
    /// hold of the same kind that deleted no fewer (it goes ahead, once),
    /// else the pass is held: `Err(reason)`. A release for another kind of
    /// hold, or for fewer deletions, is used up without letting it through.
    pub fn trip(&self, what: Trip, reason: String) -> Result<bool, String> {
        let mut st = self.state();
        if let Some(permit) = st.release.take() {
            if what.within(permit) {
                st.held = None;
                st.held_trip = None;
                return Ok(true);
            }
        }
        st.held = Some(reason.clone());
        st.held_trip = Some(what);
        Err(reason)
    }

    /// Runs `check`'s verdict through [`GuardHold::trip`]: `Ok(false)` when
    /// within the limits, `Ok(true)` when released by the operator.
    /// `recent`: the deletions of the last [`DELETE_WINDOW`] that count with
    /// the pass's own ([`DeleteGuard::check_window`]).
    pub fn check(
        &self,
        guard: &DeleteGuard,
        deletes: u64,
        recent: u64,
        target_items: u64,
        target: &str,
    ) -> Result<bool, String> {
        match guard.check_window(deletes, recent, target_items, target) {
            Ok(()) => Ok(false),
            Err(reason) => self.trip(Trip::Deletes(deletes.saturating_add(recent)), reason),
        }
    }

    /// A pass went through: nothing is held any more.
    pub fn passed(&self) {
        let mut st = self.state();
        st.held = None;
        st.held_trip = None;
        st.release = None;
    }

    /// The operator checked and lets the held pass go ahead once (`warden
    /// clear`): the next pass that trips on the same kind of hold, deleting
    /// no more than was held. Returns what was held; `None` (and nothing
    /// released) when nothing was held, so a clear never pre-authorises a
    /// later mass delete.
    pub fn release(&self) -> Option<String> {
        let held = {
            let mut st = self.state();
            let held = st.held.clone();
            st.release = if held.is_some() { st.held_trip } else { None };
            held
        };
        if held.is_some() {
            self.0.released.notify_one();
        }
        held
    }

    /// [`GuardHold::release`] of the hold the operator read (`seen`, its
    /// message) only: `Err` with what is held now (`None`: nothing) when
    /// that is not it — a clear replayed, or late, after the hold changed.
    pub fn release_seen(&self, seen: &str) -> Result<String, Option<String>> {
        let held = {
            let mut st = self.state();
            match st.held.clone() {
                Some(held) if same_hold(&held, seen) => {
                    st.release = st.held_trip;
                    held
                }
                other => return Err(other),
            }
        };
        self.0.released.notify_one();
        Ok(held)
    }

    /// Resolves when the operator releases the hold (for a held pass waiting to retry).
    pub async fn released(&self) {
        self.0.released.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A release that names the hold it was read as lets only that one go:
    /// a hold tripped since (other counts) stays, and nothing is released
    /// where nothing is held; the message as the orchestrator cut it still
    /// names its hold.
    #[test]
    fn a_release_names_the_hold_it_lets_go() {
        let h = GuardHold::new();
        assert_eq!(h.release_seen("anything"), Err(None));
        let now = "mass-delete guard: a pass would delete 700 of 1000 items at b";
        h.trip(Trip::Deletes(700), now.into()).unwrap_err();
        let read = "mass-delete guard: a pass would delete 500 of 1000 items at b";
        assert_eq!(h.release_seen(read), Err(Some(now.to_string())));
        assert_eq!(h.trip(Trip::Deletes(700), now.into()), Err(now.to_string()));
        let cut = format!("{}…", &now[..20]);
        assert_eq!(h.release_seen(&cut), Ok(now.to_string()));
        assert_eq!(h.trip(Trip::Deletes(700), now.into()), Ok(true));
        assert!(!same_hold(now, "…") && !same_hold("short", "shorter…"));
    }

    #[test]
    fn a_hold_is_released_once_and_only_when_held() {
        let h = GuardHold::new();
        let g = DeleteGuard::default();
        assert_eq!(h.release(), None, "nothing held, nothing released");
        assert_eq!(h.check(&g, 5, 0, 10, "b"), Ok(false));
        let e = h.check(&g, 500, 0, 1000, "b").unwrap_err();
        assert_eq!(h.held().as_deref(), Some(e.as_str()));
        assert!(h.release().is_some());
        assert_eq!(h.check(&g, 500, 0, 1000, "b"), Ok(true), "released once");
        assert_eq!(h.held(), None);
        assert!(h.check(&g, 500, 0, 1000, "b").is_err(), "only once");
        h.passed();
        assert_eq!(h.held(), None);
    }

    /// A clear lets through the hold the operator saw, not the next thing
    /// that trips: a source emptied since, an unmounted one, or more
    /// deletions than were held are held again (and need a clear of their
    /// own); fewer deletions of the same kind go ahead.
    #[test]
    fn a_release_answers_only_the_hold_it_was_given_for() {
        let g = DeleteGuard::default();
        let h = GuardHold::new();
        h.check(&g, 500, 0, 1000, "b").unwrap_err();
        h.release().unwrap();
        let e = h
            .trip(Trip::EmptySource, "the source is empty".into())
            .unwrap_err();
        assert_eq!(h.held().as_deref(), Some(e.as_str()), "held again");
        assert!(
            h.check(&g, 500, 0, 1000, "b").is_err(),
            "the release was used up by the other hold"
        );

        h.release().unwrap();
        assert!(
            h.check(&g, 900, 0, 1000, "b").is_err(),
            "more than was held"
        );
        h.release().unwrap();
        assert_eq!(h.check(&g, 800, 100, 1000, "b"), Ok(true), "900 as held");

        h.trip(Trip::Unmounted, "unmounted".into()).unwrap_err();
        h.release().unwrap();
        assert!(h.check(&g, 500, 0, 1000, "b").is_err(), "not a mass delete");
        h.trip(Trip::Unmounted, "unmounted".into()).unwrap_err();
        h.release().unwrap();
        assert_eq!(h.trip(Trip::Unmounted, "unmounted".into()), Ok(true));
    }

    #[test]
    fn trips_only_over_both_limits() {
        let g = DeleteGuard::default();
        assert!(g.check(100, 100, "b").is_ok(), "100 items is not over 100");
        assert!(g.check(101, 10_000, "b").is_ok(), "1 % is not over 10 %");
        let e = g.check(500, 1000, "b").unwrap_err();
        assert!(
            e.contains("500 of 1000") && e.contains("warden clear"),
            "{e}"
        );
        assert!(g.check(101, 0, "b").is_err());
    }

    #[test]
    fn the_allowance_is_the_most_a_check_lets_through() {
        for (share, count) in [(0.10, 100), (0.25, 10), (0.5, 3), (0.0, 0), (0.3, 7)] {
            let g = DeleteGuard {
                max_share: share,
                max_count: count,
            };
            for items in [0, 1, 9, 10, 99, 100, 1000, 1001, 12_345] {
                let most = g.allowance(items);
                assert!(
                    g.check(most, items, "b").is_ok(),
                    "{share} {count} {items}: {most}"
                );
                assert!(
                    g.check(most + 1, items, "b").is_err(),
                    "{share} {count} {items}: {most}"
                );
            }
        }
    }
}
