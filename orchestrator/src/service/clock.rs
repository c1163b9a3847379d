//! The service's wall clock ([`Clock`]): Unix ms derived from tokio's
//! clock, so paused-time tests move it too.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Unix-ms clock derived from tokio's clock, so paused-time tests move it too.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_unix_ms: u64,
    base: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            base_unix_ms,
            base: Instant::now(),
        }
    }
    pub fn now_ms(&self) -> u64 {
        self.base_unix_ms + self.base.elapsed().as_millis() as u64
    }
    /// This clock set `ms` back (a host whose clock is behind another's,
    /// or was stepped back).
    #[cfg(test)]
    pub(crate) fn behind(self, ms: u64) -> Clock {
        Clock {
            base_unix_ms: self.base_unix_ms.saturating_sub(ms),
            ..self
        }
    }
    /// This clock set `ms` ahead (a host booted with its clock wrong).
    #[cfg(test)]
    pub(crate) fn ahead(self, ms: u64) -> Clock {
        Clock {
            base_unix_ms: self.base_unix_ms.saturating_add(ms),
            ..self
        }
    }
    pub fn to_ms(&self, at: Instant) -> u64 {
        let off = at.saturating_duration_since(self.base).as_millis() as u64;
        self.base_unix_ms + off
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
