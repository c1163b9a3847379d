//! The mass-delete guard's state for one Swift replicator or resyncer: the
//! held message, the operator's one-time permit (`warden clear`), and the
//! deletions its recent rounds or passes let through, which count
//! together with a round's own against the limits.

use std::time::Instant;

use tracing::{info, warn};

use crate::replicate::guard::{DeleteGuard, RecentDeletes};
use crate::replicate::recent_deletes::Side;

/// Where the mass-delete guard stands for one replicator or resyncer.
#[derive(Debug, Default)]
pub(crate) struct GuardState {
    /// The message while a pass is held.
    pub held: Option<String>,
    /// Deletes the held pass would have made (with the recent ones); set by
    /// `clear` as a one-time permit for a pass deleting no more than that.
    held_deletes: u64,
    permit: Option<u64>,
    /// Deletions the recent rounds or passes let through (within
    /// [`DELETE_WINDOW`](crate::replicate::guard::DELETE_WINDOW)), oldest first.
    recent: RecentDeletes,
}

impl GuardState {
    /// A guard whose window of recent deletions is the `side`'s, kept
    /// beside the plan's `manifest` ([`RecentDeletes::beside`]).
    pub(crate) fn beside(manifest: &std::path::Path, side: Side) -> Self {
        GuardState {
            recent: RecentDeletes::beside(manifest, side),
            ..GuardState::default()
        }
    }

    /// Checks a pass that would delete `deletes` of `target_items`: `Ok` to
    /// go ahead — `Ok(true)` when the operator's clear let it go (the permit
    /// is used up) — else the held message. The deletions carried in the
    /// last [`DELETE_WINDOW`](crate::replicate::guard::DELETE_WINDOW)
    /// ([`carried`](Self::carried)) count too: a source emptied while rounds
    /// run is seen a few objects a round. After a cleared pass the count
    /// starts again.
    #[cfg(test)]
    pub(crate) fn check(
        &mut self,
        guard: &DeleteGuard,
        deletes: u64,
        target_items: u64,
        target: &str,
        now: Instant,
    ) -> Result<bool, String> {
        self.check_emptied(guard, deletes, target_items, target, now, None)
    }

    /// [`check`](Self::check), held whatever the counts when `emptied`
    /// says why (the side deleted from lists nothing at all: emptied, or
    /// the wrong account), released by the operator's clear the same way.
    pub(crate) fn check_emptied(
        &mut self,
        guard: &DeleteGuard,
        deletes: u64,
        target_items: u64,
        target: &str,
        now: Instant,
        emptied: Option<String>,
    ) -> Result<bool, String> {
        let recent = self.recent.total(now);
        let total = deletes + recent;
        let verdict = match emptied {
            Some(why) => Err(why),
            None => guard.check_window(deletes, recent, target_items, target),
        };
        match verdict {
            Ok(()) => {
                if self.held.take().is_some() {
                    info!(
                        target,
                        "mass-delete guard: the pass is within the limits again"
                    );
                }
                self.permit = None;
                Ok(false)
            }
            Err(msg) => {
                if let Some(n) = self.permit.take() {
                    if total <= n {
                        warn!(
                            target,
                            deletes, "mass-delete guard cleared by the operator: this pass deletes"
                        );
                        self.held = None;
                        return Ok(true);
                    }
                }
                if self.held.as_deref() != Some(msg.as_str()) {
                    warn!(target, deletes, recent, target_items, "{msg}");
                }
                self.held = Some(msg.clone());
                self.held_deletes = total;
                Err(msg)
            }
        }
    }

    /// The pass checked at `now` deleted `n` items (counted only when
    /// done, so a round retried after failed deletes does not count them
    /// twice); after a pass the operator `released`, the count starts anew.
    pub(crate) fn carried(&mut self, released: bool, now: Instant, n: u64) {
        self.recent.passed(released, now, n);
    }

    /// The operator's clear: the next pass may delete up to what was held.
    pub(crate) fn clear(&mut self) -> bool {
        if self.held.is_some() {
            self.permit = Some(self.held_deletes);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::guard::DELETE_WINDOW;
    use std::time::Duration;

    #[test]
    fn a_cleared_guard_lets_one_pass_delete_up_to_what_was_held() {
        let g = DeleteGuard {
            max_share: 0.5,
            max_count: 3,
        };
        let t0 = Instant::now();
        let mut st = GuardState::default();
        assert!(!st.clear(), "nothing held");
        assert!(st.check(&g, 8, 10, "b", t0).is_err());
        assert!(st.held.as_deref().is_some_and(|m| m.contains("8 of 10")));
        assert!(st.check(&g, 8, 10, "b", t0).is_err(), "held until cleared");
        assert!(st.clear());
        assert!(
            st.check(&g, 9, 10, "b", t0).is_err(),
            "more than the operator saw is held again"
        );
        assert!(st.clear());
        assert!(st.check(&g, 8, 10, "b", t0).is_ok());
        assert!(st.held.is_none());
        assert!(
            st.check(&g, 8, 10, "b", t0).is_err(),
            "the permit is used up"
        );
        assert!(st.check(&g, 1, 10, "b", t0).is_ok(), "within the limits");
        assert!(st.held.is_none() && !st.clear());
    }

    #[test]
    fn deletions_spread_over_rounds_count_together_within_the_window() {
        let g = DeleteGuard {
            max_share: 0.5,
            max_count: 3,
        };
        let t0 = Instant::now();
        let mut st = GuardState::default();
        // ten items at the target; the source loses one a round
        for (i, left) in (1..=5).zip((5..10).rev()) {
            let now = t0 + Duration::from_secs(i);
            let r = st.check(&g, 1, left + 1, "b", now);
            assert_eq!(r, Ok(false), "round {i}: {i} of 10 is within the limits");
            st.carried(false, now, 1);
        }
        let now = t0 + Duration::from_secs(6);
        let msg = st.check(&g, 1, 5, "b", now).unwrap_err();
        assert!(
            msg.contains("1 of 5 items") && msg.contains("6 of 10"),
            "{msg}"
        );
        assert!(st.check(&g, 1, 5, "b", now).is_err(), "held");
        // the same round long after: the old deletions have left the window
        let later = t0 + DELETE_WINDOW + Duration::from_secs(6);
        assert_eq!(st.check(&g, 1, 5, "b", later), Ok(false));
        assert!(st.held.is_none());

        // deletions that failed are not counted: a round retried after
        // its three deletes failed checks three again, not six
        let mut st = GuardState::default();
        assert_eq!(st.check(&g, 3, 10, "b", t0), Ok(false));
        st.carried(false, t0, 0);
        assert_eq!(st.check(&g, 3, 10, "b", t0), Ok(false));
        st.carried(false, t0, 3);
        assert!(st.check(&g, 3, 7, "b", t0).is_err(), "6 of 10");

        // a clear lets the held total go and starts the count again
        assert!(st.clear());
        assert_eq!(st.check(&g, 3, 7, "b", t0), Ok(true), "released");
        st.carried(true, t0, 3);
        assert_eq!(
            st.check(&g, 1, 4, "b", t0),
            Ok(false),
            "the cleared deletions no longer count"
        );
    }
}
