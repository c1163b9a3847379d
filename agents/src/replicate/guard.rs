//! The mass-delete guard shared by every replication plan (issue 10): a pass
//! that would delete a large part of the peer's copy — an emptied or
//! unmounted source, an empty peer during a resync — stops and waits for the
//! operator instead of propagating the loss.

use warden_config::ReplicationConfig;

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
        if deletes <= self.max_count {
            return Ok(());
        }
        let share = if target_items == 0 {
            1.0
        } else {
            deletes as f64 / target_items as f64
        };
        if share <= self.max_share {
            return Ok(());
        }
        Err(format!(
            "mass-delete guard: this pass would delete {deletes} of {target_items} items at {target} \
             ({:.0} %, over the limits of {:.0} % and {} items); nothing was deleted. \
             Check the source (emptied, unmounted?), then run `warden clear GROUP` to let the pass go ahead",
            share * 100.0,
            self.max_share * 100.0,
            self.max_count
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
