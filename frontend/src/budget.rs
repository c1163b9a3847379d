//! The proxy's own descriptor budget and idle limit, so that a flood of
//! users never takes what the control API needs: client connections (two
//! descriptors each: client and backend) are capped by [`ClientSlots`],
//! sized from the process's open-file limit minus a reserve for the control
//! API, listeners and logs; a connection with no byte either way for
//! [`CLIENT_IDLE_TIMEOUT`] is closed ([`Activity`] watches it).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

impl ClientSlots {
    /// Slots for a process allowed `fd_limit` open descriptors.
    pub fn for_fd_limit(fd_limit: u64) -> ClientSlots {
        let max = (fd_limit.saturating_sub(RESERVED_FDS) / 2).max(16) as usize;
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

    fn touch(&self) {
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

    /// `io` with every read and write recorded here.
    pub fn watch<T>(&self, io: T) -> Watched<T> {
        Watched {
            io,
            activity: self.clone(),
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// A stream whose reads and writes touch an [`Activity`].
pub struct Watched<T> {
    io: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_leave_the_reserve() {
        assert_eq!(ClientSlots::for_fd_limit(1024).max, 256);
        assert_eq!(ClientSlots::for_fd_limit(100).max, 16);
        let s = ClientSlots::for_fd_limit(0);
        let held: Vec<_> = (0..16).map(|_| s.take().unwrap()).collect();
        assert!(s.take().is_none());
        drop(held);
        assert!(s.take().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_is_measured_from_the_last_byte() {
        let a = Activity::new();
        let (x, mut y) = tokio::io::duplex(64);
        let mut w = a.watch(x);
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::io::AsyncWriteExt::write_all(&mut w, b"hi")
            .await
            .unwrap();
        let mut buf = [0u8; 2];
        tokio::io::AsyncReadExt::read_exact(&mut y, &mut buf)
            .await
            .unwrap();
        let t = tokio::time::Instant::now();
        a.idle_for(Duration::from_secs(5)).await;
        assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    }
}
