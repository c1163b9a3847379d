//! The proxy's own descriptor budget and idle limit, so that a flood of
//! users never takes what the control API needs: client connections (two
//! descriptors each: client and backend) are capped by [`ClientSlots`],
//! sized from the process's open-file limit minus the listening sockets and a
//! reserve for the control API and logs; a connection with no byte either way for
//! [`CLIENT_IDLE_TIMEOUT`] is closed ([`Activity`] counts the relay's moves,
//! and its idle timer looks at the count a few times per limit: no clock is
//! read per byte moved).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Descriptors kept for everything but client connections.
pub const RESERVED_FDS: u64 = 512;
/// Connections of the control API at most (its own cap, out of the reserve).
pub const CONTROL_CONNECTIONS: usize = 256;
/// A client connection silent both ways this long is closed.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Client connections the proxy may hold at once, over all groups.
#[derive(Clone)]
pub struct ClientSlots {
    /// Slots taken now.
    taken: Arc<AtomicUsize>,
    /// The cap (for logs).
    pub max: usize,
}

/// One client connection's slot, given back on drop.
pub struct Slot {
    taken: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Ordering::Release);
    }
}

/// Listening sockets per group: one per proxy worker while all of them
/// take at most a quarter of what the reserve leaves (the rest is for
/// clients), else one per group — a frontend of thousands of groups on a
/// 20,000-descriptor limit spreads its groups over the workers instead (see
/// [`crate::listener`]). `None`: even one socket per group leaves fewer
/// descriptors than 16 clients need.
pub fn sockets_per_group(fd_limit: u64, groups: usize, workers: usize) -> Option<usize> {
    let free = fd_limit.saturating_sub(RESERVED_FDS);
    let (groups, workers) = (groups as u64, workers.max(1) as u64);
    if groups.saturating_mul(workers) <= free / 4 {
        Some(workers as usize)
    } else if groups + 32 <= free {
        Some(1)
    } else {
        None
    }
}

impl ClientSlots {
    /// Slots for a process allowed `fd_limit` open descriptors, `listeners`
    /// of them taken by listening sockets.
    pub fn for_fd_limit(fd_limit: u64, listeners: u64) -> ClientSlots {
        let free = fd_limit
            .saturating_sub(RESERVED_FDS)
            .saturating_sub(listeners);
        let max = (free / 2).max(16) as usize;
        ClientSlots {
            taken: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot for one more client, or `None` at the cap.
    pub fn take(&self) -> Option<Slot> {
        self.taken
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot {
            taken: Arc::clone(&self.taken),
        })
    }
}

/// How many times bytes moved on a connection (both ways); only the
/// connection's own task touches it.
pub struct Activity {
    moves: AtomicU64,
}

/// Looks per idle limit at whether anything moved: a connection is closed
/// after between the limit and a quarter more of silence.
const IDLE_LOOKS: u32 = 4;

impl Activity {
    pub fn new() -> Activity {
        Activity {
            moves: AtomicU64::new(0),
        }
    }

    /// Bytes moved now.
    pub fn touch(&self) {
        // One writer (the connection's task): a plain store, no locked add.
        let n = self.moves.load(Ordering::Relaxed);
        self.moves.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle` (at most `idle / 4` more).
    pub async fn idle_for(&self, idle: Duration) {
        let look = (idle / IDLE_LOOKS).max(Duration::from_millis(1));
        let mut seen = self.moves.load(Ordering::Relaxed);
        let mut quiet = Duration::ZERO;
        while quiet < idle {
            tokio::time::sleep(look).await;
            let now = self.moves.load(Ordering::Relaxed);
            if now == seen {
                quiet += look;
            } else {
                (seen, quiet) = (now, Duration::ZERO);
            }
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_leave_the_reserve() {
        assert_eq!(ClientSlots::for_fd_limit(1024, 0).max, 256);
        assert_eq!(ClientSlots::for_fd_limit(100, 0).max, 16);
        let s = ClientSlots::for_fd_limit(0, 0);
        let held: Vec<_> = (0..16).map(|_| s.take().unwrap()).collect();
        assert!(s.take().is_none());
        drop(held);
        assert!(s.take().is_some());
        // Every slot comes back when dropped, and the cap holds again.
        let again: Vec<_> = (0..16).map(|_| s.take().unwrap()).collect();
        assert_eq!(again.len(), 16);
        assert!(s.take().is_none());
    }

    /// Listening sockets count against the limit: two clients' worth of
    /// descriptors fewer per socket.
    #[test]
    fn slots_leave_the_listeners() {
        assert_eq!(ClientSlots::for_fd_limit(20_000, 10_000).max, 4_744);
        assert_eq!(ClientSlots::for_fd_limit(20_000, 0).max, 9_744);
    }

    /// A socket per worker while they are few; one per group when many
    /// groups would take the descriptors clients need; none when even that
    /// does not fit.
    #[test]
    fn sockets_per_group_fit_the_limit() {
        assert_eq!(sockets_per_group(20_000, 100, 2), Some(2));
        assert_eq!(sockets_per_group(20_000, 10_000, 2), Some(1));
        assert_eq!(sockets_per_group(1024, 2, 4), Some(4));
        assert_eq!(sockets_per_group(1024, 400, 2), Some(1));
        assert_eq!(sockets_per_group(1024, 600, 2), None);
        assert_eq!(sockets_per_group(20_000, 1, 0), Some(1));
    }

    /// Bytes moved while the idle timer runs restart its count: closed
    /// after the limit of silence (and at most a quarter more), counted
    /// from the last byte.
    #[tokio::test(start_paused = true)]
    async fn idle_is_measured_from_the_last_byte() {
        let a = Activity::new();
        let t = tokio::time::Instant::now();
        let toucher = async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                a.touch();
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = a.idle_for(Duration::from_secs(5)) => {}
            _ = toucher => unreachable!(),
        }
        // The last byte at 9 s; silence from then on.
        let idle = t.elapsed();
        assert!(
            idle >= Duration::from_secs(14) && idle <= Duration::from_millis(15_250),
            "{idle:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_idle_after_the_limit() {
        let a = Activity::new();
        let t = tokio::time::Instant::now();
        a.idle_for(Duration::from_secs(8)).await;
        assert_eq!(t.elapsed(), Duration::from_secs(8));
    }
}
