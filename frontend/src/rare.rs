//! How often a warning that users or unauthenticated peers can cause is
//! written (a backend connect that failed, a held connection let go, an
//! unauthorized control request): at the 1st, 2nd, 4th, 8th… occurrence,
//! and at least once a minute while they go on — never once per connection
//! (anyone could fill the log, and the disk the fence is on, at the rate it
//! opens them), yet the first of a later outage is said too, however many
//! came before. The counts themselves are the caller's (often on
//! `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest a run of occurrences goes unsaid.
const AT_LEAST_EVERY: Duration = Duration::from_secs(60);

/// When one kind of warning was last written.
#[derive(Default)]
pub(crate) struct Rare {
    /// Milliseconds from [`origin`] to the last warning written (0: none).
    last_ms: AtomicU64,
}

/// The clock's origin: the first time any warning was looked at.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Rare {
    /// Whether the `n`th occurrence (counted from 1) is to be written now.
    pub(crate) fn due(&self, n: u64) -> bool {
        let now = u64::try_from(origin().elapsed().as_millis()).unwrap_or(u64::MAX);
        self.due_at(n, now)
    }

    fn due_at(&self, n: u64, now_ms: u64) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        let quiet = Duration::from_millis(now_ms.saturating_sub(last)) >= AT_LEAST_EVERY;
        let due = n.is_power_of_two() || quiet;
        if due {
            // Two threads may both write at the minute: two lines, no harm.
            self.last_ms.store(now_ms.max(1), Ordering::Relaxed);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Powers of two, and the first occurrence after a minute without a
    /// line: the first failure of a later outage is said.
    #[test]
    fn said_at_powers_of_two_and_after_a_quiet_minute() {
        let r = Rare::default();
        let said: Vec<u64> = (1..=100).filter(|&n| r.due_at(n, 1_000)).collect();
        assert_eq!(said, vec![1, 2, 4, 8, 16, 32, 64]);
        assert!(!r.due_at(101, 30_000), "within the minute");
        assert!(r.due_at(102, 61_000), "a minute after the last line");
        assert!(!r.due_at(103, 61_500));
    }
}
