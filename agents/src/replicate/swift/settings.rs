//! The `swift` plan's settings ([`SwiftReplicatorSettings`]): the two
//! clusters, the placement list, the pair manifest, the pace of rounds, the
//! mass-delete guard, the start order and the fence's re-reads; their
//! defaults and their checks.

use std::path::PathBuf;
use std::time::Duration;

use super::{check_containers, CopierOrder, DeleteGuard, SwiftSettings};
use crate::AgentError;

/// A round's copies and deletes read the destination's fence again before
/// this many more start ([`SwiftReplicatorSettings::fence_recheck_ops`]).
pub const FENCE_RECHECK_OPS: usize = 100;
/// ... and at least this often ([`SwiftReplicatorSettings::fence_recheck_every`]).
pub const FENCE_RECHECK_EVERY: Duration = Duration::from_secs(2);

/// The `swift` plan's settings. [`SwiftReplicatorSettings::new`] fills the defaults.
#[derive(Debug, Clone)]
pub struct SwiftReplicatorSettings {
    /// The cluster replicated from (this site).
    pub source: SwiftSettings,
    /// The cluster replicated to (the peer site).
    pub destination: SwiftSettings,
    /// The group's placement list: the containers kept on every site.
    pub containers: Vec<String>,
    /// The pair manifest (JSON), saved after each round that changed it.
    pub manifest: PathBuf,
    /// Pause after a round that found nothing to do (default 1 s); a round
    /// that copied or deleted something is followed by the next at once.
    pub interval: Duration,
    /// Copies and deletes in flight at once (default 16).
    pub concurrency: usize,
    /// First retry delay after a failed round (doubles up to `retry_max`; default 200 ms).
    pub retry_min: Duration,
    /// Longest retry delay (default 10 s).
    pub retry_max: Duration,
    /// The mass-delete guard's limits (default [`DeleteGuard::default`]).
    pub guard: DeleteGuard,
    /// The start order the copier runs for (default: no group or site,
    /// epoch 0): a destination fenced at a newer epoch ([`fence`](super::fence)) stops it.
    pub order: CopierOrder,
    /// The agent's authority over that order (`None`: not judged here):
    /// once this site knows a newer epoch or is no longer active, the
    /// copier writes nothing more — into any destination, fenced or not
    /// (a third site is marked by no promote).
    pub order_stands: Option<crate::replicate::OrderCheck>,
    /// While a round copies and deletes, the destination's fence is read
    /// again before at most this many more ops start (default 100)...
    pub fence_recheck_ops: usize,
    /// ... and at least this often (default 2 s), and before the first
    /// delete ([`fence`](super::fence)).
    pub fence_recheck_every: Duration,
}

impl SwiftReplicatorSettings {
    /// Settings with the defaults: interval 1 s, concurrency 16, retries 200 ms to 10 s.
    pub fn new(
        source: SwiftSettings,
        destination: SwiftSettings,
        containers: Vec<String>,
        manifest: impl Into<PathBuf>,
    ) -> Self {
        SwiftReplicatorSettings {
            source,
            destination,
            containers,
            manifest: manifest.into(),
            interval: Duration::from_secs(1),
            concurrency: 16,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            guard: DeleteGuard::default(),
            order: CopierOrder::default(),
            order_stands: None,
            fence_recheck_ops: FENCE_RECHECK_OPS,
            fence_recheck_every: FENCE_RECHECK_EVERY,
        }
    }

    /// The same settings for the start order of `group` at `epoch`, from
    /// `site` to `peer`: the copier stops at a destination fenced by a
    /// promote of that epoch or a newer one ([`fence`](super::fence)).
    pub fn order(
        mut self,
        group: impl Into<String>,
        site: impl Into<String>,
        peer: impl Into<String>,
        epoch: u64,
    ) -> Self {
        self.order = CopierOrder {
            group: group.into(),
            site: site.into(),
            peer: peer.into(),
            epoch,
        };
        self
    }

    pub(super) fn validate(&self) -> Result<(), AgentError> {
        let bad = |key: &str, reason: &str| {
            Err(AgentError::InvalidSetting {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if self.containers.is_empty() {
            return bad("containers", "list at least one container to replicate");
        }
        check_containers(&self.containers)?;
        if self.concurrency == 0 {
            return bad("concurrency", "must be at least 1");
        }
        if self.interval.is_zero() {
            return bad("interval", "must be more than zero");
        }
        if self.fence_recheck_ops == 0 {
            return bad("fence_recheck_ops", "must be at least 1");
        }
        if self.fence_recheck_every.is_zero() {
            return bad("fence_recheck_every", "must be more than zero");
        }
        Ok(())
    }
}
