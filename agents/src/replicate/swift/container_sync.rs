//! The `swift-container-sync` plan ([`SwiftContainerSync`]): Swift's own
//! container sync does the copying; warden sets its direction and watches it.
//! And the `none` plan ([`NoReplication`]): a stretched cluster replicates
//! itself.
//!
//! `start` on the site that becomes active points its containers at the
//! peer: on the peer, `X-Container-Sync-Key` is set and
//! `X-Container-Sync-To` removed (nothing flows back); then here,
//! `X-Container-Sync-To: //REALM/PEER_CLUSTER/AUTH_acct/CONTAINER` and the
//! same key. So a failover or failback is `start` on the new active site: the
//! direction flips. `stop` removes `X-Container-Sync-To` here.
//!
//! Container sync fails silently (wrong keys or realm only show in the
//! source cluster's daemon log), so a task lists both sides every `poll` and
//! turns what is missing at the peer into [`Replicator::lag`]; `verify`
//! compares the listings by name and ETag. Container sync keeps X-Timestamp,
//! so both listings show the same timestamps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warden_config::Secret;

use super::client::{SwiftClient, SwiftSettings};
use super::{compare, copy_object, ensure_containers, list_pair, split_name, us_to_system};
use crate::replicate::{Difference, Progress, Replicator, ResyncReport};
use crate::AgentError;

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
    /// The `X-Container-Sync-Key` set on both sides (never logged).
    pub sync_key: Secret,
    /// The group's placement list.
    pub containers: Vec<String>,
    /// How often both listings are compared for the lag (default 1 s).
    pub poll: Duration,
    /// Longest retry delay for setting the headers (default 10 s).
    pub retry_max: Duration,
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
            containers,
            poll: Duration::from_secs(1),
            retry_max: Duration::from_secs(10),
        }
    }
}

struct Shared {
    settings: ContainerSyncSettings,
    local: SwiftClient,
    peer: SwiftClient,
    /// The oldest object here that the peer lacks (last poll).
    oldest_pending: Mutex<Option<SystemTime>>,
}

/// The `swift-container-sync` [`Replicator`]. See the module docs.
pub struct SwiftContainerSync {
    shared: Arc<Shared>,
    running: crate::replicate::task::TaskSlot,
}

impl SwiftContainerSync {
    /// Fails on settings that cannot work or when the HTTP client cannot be built.
    pub fn new(settings: ContainerSyncSettings) -> Result<Self, AgentError> {
        let bad = |key: &str, reason: &str| AgentError::InvalidSetting {
            key: key.into(),
            reason: reason.into(),
        };
        if settings.containers.is_empty() {
            return Err(bad("containers", "list at least one container to sync"));
        }
        for (key, v) in [
            ("realm", &settings.realm),
            ("local_cluster", &settings.local_cluster),
            ("peer_cluster", &settings.peer_cluster),
        ] {
            if v.is_empty() || v.contains('/') {
                return Err(bad(
                    key,
                    "must be a realm or cluster name from container-sync-realms.conf",
                ));
            }
        }
        if settings.sync_key.expose().is_empty() {
            return Err(bad("sync_key", "must not be empty"));
        }
        let local = SwiftClient::new(settings.local.clone())?;
        let peer = SwiftClient::new(settings.peer.clone())?;
        Ok(SwiftContainerSync {
            shared: Arc::new(Shared {
                settings,
                local,
                peer,
                oldest_pending: Mutex::new(None),
            }),
            running: Default::default(),
        })
    }

    /// The `X-Container-Sync-To` value this site sets on `container`.
    pub async fn sync_to(&self, container: &str) -> Result<String, AgentError> {
        let s = &self.shared.settings;
        let account = self.shared.peer.account().await?;
        Ok(format!(
            "//{}/{}/{account}/{container}",
            s.realm, s.peer_cluster
        ))
    }

    /// Sets the direction here → peer on every container (what `start` does first).
    pub async fn apply(&self) -> Result<(), AgentError> {
        self.shared.apply().await
    }
}

impl Shared {
    async fn apply(&self) -> Result<(), AgentError> {
        let s = &self.settings;
        ensure_containers(&self.local, &self.peer, &s.containers).await?;
        let account = self.peer.account().await?;
        for c in &s.containers {
            let mut peer_h = BTreeMap::new();
            peer_h.insert(
                "x-container-sync-key".to_string(),
                s.sync_key.expose().to_string(),
            );
            peer_h.insert("x-remove-container-sync-to".to_string(), "x".to_string());
            self.peer.post_container(c, &peer_h).await?;
            let mut here_h = BTreeMap::new();
            here_h.insert(
                "x-container-sync-key".to_string(),
                s.sync_key.expose().to_string(),
            );
            here_h.insert(
                "x-container-sync-to".to_string(),
                format!("//{}/{}/{account}/{c}", s.realm, s.peer_cluster),
            );
            self.local.post_container(c, &here_h).await?;
        }
        info!(
            realm = %s.realm,
            from = %s.local_cluster,
            to = %s.peer_cluster,
            containers = s.containers.len(),
            "swift container sync direction set"
        );
        Ok(())
    }

    /// Lists both sides; the oldest object here the peer lacks or holds older.
    async fn measure(&self) -> Result<Option<SystemTime>, AgentError> {
        let (a, b) = list_pair(&self.local, &self.peer, &self.settings.containers).await?;
        let oldest = a
            .iter()
            .filter(|(n, e)| match b.get(*n) {
                None => true,
                Some(f) => f.hash != e.hash && f.timestamp_us() < e.timestamp_us(),
            })
            .map(|(_, e)| e.timestamp_us())
            .min();
        Ok(oldest.map(us_to_system))
    }
}

/// Sets the headers until it works, then measures the lag every `poll`.
async fn watcher(shared: Arc<Shared>, mut applied: bool, cancel: CancellationToken) {
    let s = &shared.settings;
    let mut backoff = Duration::from_millis(200);
    loop {
        let pause = if !applied {
            match shared.apply().await {
                Ok(()) => {
                    applied = true;
                    backoff = Duration::from_millis(200);
                    s.poll
                }
                Err(e) => {
                    debug!(cause = %e, "setting container sync headers failed, retrying");
                    let p = backoff;
                    backoff = (backoff * 2).min(s.retry_max);
                    p
                }
            }
        } else {
            match shared.measure().await {
                Ok(oldest) => *shared.oldest_pending.lock().unwrap() = oldest,
                Err(e) => debug!(cause = %e, "container sync lag check failed"),
            }
            s.poll
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

impl Drop for SwiftContainerSync {
    fn drop(&mut self) {
        self.running.cancel_now();
    }
}

#[async_trait]
impl Replicator for SwiftContainerSync {
    async fn start(&self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let mut running = self.running.lock().await;
        if running.is_running() {
            return Ok(());
        }
        let applied = match self.shared.apply().await {
            Ok(()) => true,
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => {
                warn!(cause = %e, "cannot set container sync headers yet, retrying in the background");
                false
            }
        };
        let cancel = shutdown.child_token();
        let task = tokio::spawn(watcher(self.shared.clone(), applied, cancel.clone()));
        running.set(cancel, Some(task), ());
        Ok(())
    }

    async fn stop(&self) {
        self.running.stop().await;
        let mut h = BTreeMap::new();
        h.insert("x-remove-container-sync-to".to_string(), "x".to_string());
        for c in &self.shared.settings.containers {
            if let Err(e) = self.shared.local.post_container(c, &h).await {
                warn!(container = %c, cause = %e, "cannot remove X-Container-Sync-To here (site down?)");
            }
        }
        *self.shared.oldest_pending.lock().unwrap() = None;
    }

    /// Copies what the peer lacks (or holds older) through the API now,
    /// without waiting for the sync daemon.
    async fn resync(
        &self,
        cancel: CancellationToken,
        progress: Option<watch::Sender<Progress>>,
    ) -> Result<ResyncReport, AgentError> {
        let started = Instant::now();
        let s = &self.shared;
        let (a, b) = tokio::select! {
            r = list_pair(&s.local, &s.peer, &s.settings.containers) => r?,
            _ = cancel.cancelled() => return Err(AgentError::ReplicationCancelled),
        };
        let names: Vec<String> = a
            .iter()
            .filter(|(n, e)| match b.get(*n) {
                None => true,
                Some(f) => f.hash != e.hash && f.timestamp_us() < e.timestamp_us(),
            })
            .map(|(n, _)| n.clone())
            .collect();
        let mut results = futures::stream::iter(names)
            .map(|name| async move {
                let (c, o) = split_name(&name);
                copy_object(&s.local, &s.peer, c, o).await
            })
            .buffer_unordered(16);
        let mut done = Progress::default();
        loop {
            let next = tokio::select! {
                n = results.next() => n,
                _ = cancel.cancelled() => return Err(AgentError::ReplicationCancelled),
            };
            let Some(r) = next else { break };
            if let Some(item) = r? {
                done.items += 1;
                done.bytes += item.size;
                if let Some(tx) = &progress {
                    tx.send_replace(done);
                }
            }
        }
        Ok(ResyncReport {
            done,
            elapsed: started.elapsed(),
        })
    }

    fn lag(&self) -> Duration {
        self.shared
            .oldest_pending
            .lock()
            .unwrap()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default()
    }

    async fn verify(&self) -> Result<Vec<Difference>, AgentError> {
        let s = &self.shared;
        let (a, b) = list_pair(&s.local, &s.peer, &s.settings.containers).await?;
        Ok(compare(&a, &b))
    }
}

/// The `none` plan: a stretched cluster (one Swift cluster across sites)
/// replicates itself; nothing to do, lag 0, nothing differs.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReplication;

#[async_trait]
impl Replicator for NoReplication {
    async fn start(&self, _shutdown: CancellationToken) -> Result<(), AgentError> {
        Ok(())
    }

    async fn stop(&self) {}

    async fn resync(
        &self,
        _cancel: CancellationToken,
        _progress: Option<watch::Sender<Progress>>,
    ) -> Result<ResyncReport, AgentError> {
        Ok(ResyncReport {
            done: Progress::default(),
            elapsed: Duration::ZERO,
        })
    }

    fn lag(&self) -> Duration {
        Duration::ZERO
    }

    async fn verify(&self) -> Result<Vec<Difference>, AgentError> {
        Ok(Vec::new())
    }
}
