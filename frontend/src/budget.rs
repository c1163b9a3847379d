//! The proxy's own descriptor budget and idle limit, so that a flood of
//! users never takes what the control API needs: client connections (two
//! descriptors each: client and backend) are capped by [`ClientSlots`],
//! sized from the process's open-file limit minus the listening sockets and a
//! reserve for the control API and logs; a connection with no byte either way for
//! [`CLIENT_IDLE_TIMEOUT`] is closed ([`Activity`] keeps the time of the
//! last byte; the relay touches it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept for everything but client connections.
pub const RESERVED_FDS: u64 = 512;
/// Connections of the control API at most (its own cap, out of the reserve).
pub const CONTROL_CONNECTIONS: usize = 256;
/// A client connection silent both ways this long is closed.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Client connections the proxy may hold at once, over all groups.
#[derive(Clone)]
pub struct ClientSlots {
    slots: Arc<Semaphore>,
    /// The cap (for logs).
    pub max: usize,
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
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot for one more client, or `None` at the cap.
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }
}

/// When bytes last moved on a connection (shared by its two streams).
#[derive(Clone)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes moved now.
    pub fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
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

    #[tokio::test(start_paused = true)]
    async fn idle_is_measured_from_the_last_byte() {
        let a = Activity::new();
        tokio::time::sleep(Duration::from_secs(3)).await;
        a.touch();
        let t = tokio::time::Instant::now();
        a.idle_for(Duration::from_secs(5)).await;
        assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    }
}
