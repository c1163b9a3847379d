//! [`ContainerSyncSettings`]: what a [`SwiftContainerSync`] points where
//! (both clusters, realm, sync key, the order's group and epoch, the
//! placement containers) and how it polls and retries.

use super::*;

/// Settings of a [`SwiftContainerSync`]. [`ContainerSyncSettings::new`] fills the defaults.
#[derive(Debug, Clone)]
pub struct ContainerSyncSettings {
    /// This site's cluster (the sync source once started).
    pub local: SwiftSettings,
    /// The peer site's cluster.
    pub peer: SwiftSettings,
    /// The realm in both clusters' `container-sync-realms.conf`, e.g. `realm1`.
    pub realm: String,
    /// This cluster's name in the realm, e.g. `clustera`.
    pub local_cluster: String,
    /// The peer's name in the realm, e.g. `clusterb`.
    pub peer_cluster: String,
    /// The configured `sync_key` (never logged). The key set on the
    /// containers is derived from it, `group` and `epoch` ([`epoch_key`]).
    pub sync_key: Secret,
    /// The group (part of the derived key; default empty).
    pub group: String,
    /// The epoch of the start order (part of the derived key; default 0).
    pub epoch: u64,
    /// The group's placement list.
    pub containers: Vec<String>,
    /// How often both listings are compared for the lag (default 1 s).
    pub poll: Duration,
    /// Longest retry delay for setting the headers (default 10 s).
    pub retry_max: Duration,
    /// Whether the start order still stands at this site (default: not
    /// asked): asked before every attempt to set the headers and before
    /// each write to the peer's, so a start retried in the background
    /// never keys the peer for an epoch a newer one superseded.
    pub order_stands: Option<OrderCheck>,
    /// The pair manifest: what both sides hold alike, written by each poll
    /// that saw it change, read by this site's failback resync (default:
    /// none kept; `synced.rs`).
    pub manifest: Option<PathBuf>,
}

impl ContainerSyncSettings {
    /// Settings with the defaults: poll 1 s, retries up to 10 s.
    pub fn new(
        local: SwiftSettings,
        peer: SwiftSettings,
        realm: impl Into<String>,
        local_cluster: impl Into<String>,
        peer_cluster: impl Into<String>,
        sync_key: Secret,
        containers: Vec<String>,
    ) -> Self {
        ContainerSyncSettings {
            local,
            peer,
            realm: realm.into(),
            local_cluster: local_cluster.into(),
            peer_cluster: peer_cluster.into(),
            sync_key,
            group: String::new(),
            epoch: 0,
            containers,
            poll: Duration::from_secs(1),
            retry_max: Duration::from_secs(10),
            order_stands: None,
            manifest: None,
        }
    }

    /// The same settings for the start order of `group` at `epoch`.
    pub fn at_epoch(mut self, group: impl Into<String>, epoch: u64) -> Self {
        self.group = group.into();
        self.epoch = epoch;
        self
    }
}
