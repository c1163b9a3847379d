//! The `swift-container-sync` plan ([`SwiftContainerSync`]): Swift's own
//! container sync does the copying; warden sets its direction and watches it.
//! And the `none` plan ([`NoReplication`]): a stretched cluster replicates
//! itself.
//!
//! `start` on the site that becomes active points its containers at the
//! peer: first the sync key of this start's epoch is set here (the fence
//! below, needing nothing from the peer); then on the peer the same key is
//! set and `X-Container-Sync-To` removed (nothing flows back); then here,
//! `X-Container-Sync-To: //REALM/PEER_CLUSTER/AUTH_acct/CONTAINER`. So a
//! failover or failback is `start` on the new active site: the direction
//! flips. `stop` removes `X-Container-Sync-To` here.
//!
//! **The fence.** The `X-Container-Sync-Key` on the containers is not the
//! configured `sync_key` but [`epoch_key`]: the hex HMAC-SHA256, keyed with
//! `sync_key`, of `warden container-sync epoch=N group=G`, N the epoch of
//! the order that set it. Swift accepts a synced write only when the
//! sender's container key equals the receiver's, so a receiver keyed for a
//! newer epoch refuses the daemon of a site keyed for an older one — a
//! failed-away site whose containers still point at the peer (its agent
//! restarted and forgot it pushed, or its Swift was down when it was told
//! to stop) pushes nothing into the new active site. A promote sets its
//! epoch's key on the site's own containers ([`ContainerSyncSite::fence`]),
//! a start does it before anything else, so the fence holds even when the
//! peer cannot be reached. A demote or stop removes `X-Container-Sync-To`
//! here whatever the agent remembers ([`ContainerSyncSite::remove_sync_to`]).
//! A start whose headers cannot all be set at once (the peer unreachable)
//! retries in the background, asking before each attempt and each
//! container write whether its order still stands
//! ([`ContainerSyncSettings::order_stands`]: the agent's authority, this
//! site still active and no newer epoch known); once not, it gives up for
//! good and says why ([`Replicator::failing`]), so it never keys the peer
//! for a superseded epoch nor removes the new active site's Sync-To.
//! The derived key is a secret like `sync_key`: never logged.
//!
//! Container sync fails silently (wrong keys or realm only show in the
//! source cluster's daemon log), so a task lists both sides every `poll` and
//! turns what is missing at the peer into [`Replicator::lag`]; `verify`
//! compares the listings by name and ETag. Container sync keeps X-Timestamp,
//! so both listings show the same timestamps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warden_config::Secret;

use super::client::{SwiftClient, SwiftSettings};
use super::listing::Objects;
use super::synced::Synced;
use super::{
    cluster_label, compare, copy_object, ensure_containers, list_pair, split_name, us_to_system,
};
use crate::replicate::OrderCheck;
use crate::replicate::{Difference, Progress, Replicator, ResyncReport};
use crate::AgentError;

mod settings;
mod site;

pub use settings::ContainerSyncSettings;
pub use site::{epoch_key, ContainerSyncSite};
use site::{header, remove_sync_to, set_key};

struct Shared {
    settings: ContainerSyncSettings,
    /// The key set on both sides: [`epoch_key`] of the settings (never logged).
    key: Secret,
    local: SwiftClient,
    peer: SwiftClient,
    /// The oldest object here that the peer lacks (last poll).
    oldest_pending: Mutex<Option<SystemTime>>,
    /// Objects the peer holds in another version stamped later than this
    /// site's (last poll): Swift's sync daemon never replaces them.
    newer_at_peer: Mutex<Vec<String>>,
    /// Why the start was given up (its order superseded), reported as
    /// [`Replicator::failing`]; set once by the task that retried it.
    given_up: Mutex<Option<String>>,
    /// What both sides hold alike, recorded by each poll (`synced.rs`).
    synced: Option<Synced>,
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
        let key = epoch_key(&settings.sync_key, &settings.group, settings.epoch);
        let synced = settings.manifest.clone().map(Synced::new);
        Ok(SwiftContainerSync {
            shared: Arc::new(Shared {
                key,
                synced,
                settings,
                local,
                peer,
                oldest_pending: Mutex::new(None),
                newer_at_peer: Mutex::new(Vec::new()),
                given_up: Mutex::new(None),
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

    /// The `X-Container-Sync-Key` it sets on both sides ([`epoch_key`]).
    pub fn sync_key(&self) -> &Secret {
        &self.shared.key
    }

    /// Sets the direction here → peer on every container (what `start` does first).
    pub async fn apply(&self) -> Result<(), AgentError> {
        self.shared.apply().await
    }
}

impl Shared {
    /// [`AgentError::Fenced`] once the start order no longer stands at
    /// this site ([`ContainerSyncSettings::order_stands`]).
    fn stands(&self) -> Result<(), AgentError> {
        let s = &self.settings;
        match s.order_stands.as_ref().map(OrderCheck::stands) {
            Some(Err(why)) => Err(AgentError::Fenced(format!(
                "the container-sync start {} → {} for epoch {} of group {} is given up: {why}; \
                 no header is set for that epoch (a start at a newer epoch sets them)",
                s.local_cluster, s.peer_cluster, s.epoch, s.group
            ))),
            _ => Ok(()),
        }
    }

    async fn apply(&self) -> Result<(), AgentError> {
        let s = &self.settings;
        self.stands()?;
        // The fence first, here only: whatever happens with the peer, this
        // site's containers refuse pushes keyed for an older epoch.
        set_key(&self.local, &s.containers, &self.key).await?;
        // The peer's containers are written from here on: each write only
        // while the order stands (a retry that began before a newer epoch
        // was known must not land the old key, or remove the new active
        // site's Sync-To, after it).
        self.stands()?;
        ensure_containers(&self.local, &self.peer, &s.containers).await?;
        let account = self.peer.account().await?;
        for c in &s.containers {
            let mut peer_h = header("x-container-sync-key", self.key.expose());
            peer_h.insert("x-remove-container-sync-to".to_string(), "x".to_string());
            self.stands()?;
            self.peer.post_container(c, &peer_h).await?;
            let mut here_h = header("x-container-sync-key", self.key.expose());
            here_h.insert(
                "x-container-sync-to".to_string(),
                format!("//{}/{}/{account}/{c}", s.realm, s.peer_cluster),
            );
            self.stands()?;
            self.local.post_container(c, &here_h).await?;
        }
        info!(
            realm = %s.realm,
            from = %s.local_cluster,
            to = %s.peer_cluster,
            epoch = s.epoch,
            containers = s.containers.len(),
            "swift container sync direction set"
        );
        Ok(())
    }

    /// Lists both sides; the oldest object here the peer lacks or holds in
    /// another version, and the names the peer holds in another version
    /// stamped later than here. What both hold alike is recorded first
    /// (`synced.rs`).
    async fn measure(&self) -> Result<(Option<SystemTime>, Vec<String>), AgentError> {
        let (a, b) = list_pair(&self.local, &self.peer, &self.settings.containers).await?;
        if let Some(synced) = &self.synced {
            synced.record(&a, &b);
        }
        let (oldest, newer) = pending(&a, &b);
        Ok((oldest.map(us_to_system), newer))
    }
}

/// What the sync daemon still owes the peer, from the two listings: the
/// oldest stamp here of an object the peer lacks or holds in another
/// version — an older-stamped one (not carried yet) or a later-stamped one
/// (never carried: Swift keeps the later stamp, whatever the real order of
/// the writes) —, and the names of the later-stamped ones.
fn pending(here: &Objects, peer: &Objects) -> (Option<u64>, Vec<String>) {
    let mut oldest: Option<u64> = None;
    let mut newer = Vec::new();
    for (name, e) in here {
        let owed = match peer.get(name) {
            None => true,
            Some(f) if f.hash == e.hash => false,
            Some(f) => {
                if f.timestamp_us() >= e.timestamp_us() {
                    newer.push(name.clone());
                }
                true
            }
        };
        if owed {
            let ts = e.timestamp_us();
            oldest = Some(oldest.map_or(ts, |o| o.min(ts)));
        }
    }
    (oldest, newer)
}

/// Sets the headers until it works, then measures the lag every `poll`.
async fn watcher(shared: Arc<Shared>, mut applied: bool, cancel: CancellationToken) {
    let s = &shared.settings;
    let mut backoff = Duration::from_millis(200);
    loop {
        let pause = if !applied {
            // cancellable midway: a stop (a demote) does not wait for it
            let attempt = tokio::select! {
                r = shared.apply() => r,
                _ = cancel.cancelled() => return,
            };
            match attempt {
                Ok(()) => {
                    applied = true;
                    backoff = Duration::from_millis(200);
                    s.poll
                }
                Err(AgentError::Fenced(why)) => {
                    // superseded: no later attempt may land either
                    warn!(group = %s.group, epoch = s.epoch, "{why}");
                    *shared.given_up.lock().unwrap() = Some(why);
                    return;
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
                Ok((oldest, newer)) => {
                    *shared.oldest_pending.lock().unwrap() = oldest;
                    let mut was = shared.newer_at_peer.lock().unwrap();
                    if !newer.is_empty() && *was != newer {
                        warn!(
                            count = newer.len(),
                            first = %newer[0],
                            "container sync: the peer holds other versions stamped later than this site's; Swift's sync daemon will not replace them (a peer whose clock runs ahead, or a write there)"
                        );
                    }
                    *was = newer;
                }
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

    /// Stops the watcher, then removes `X-Container-Sync-To` here; a
    /// failure is only logged (each container's): the agent's stop and
    /// demote remove it again through [`ContainerSyncSite`] and say so.
    async fn stop(&self) {
        self.running.stop().await;
        let _ = remove_sync_to(&self.shared.local, &self.shared.settings.containers).await;
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

    fn failing(&self) -> Option<String> {
        self.shared.given_up.lock().unwrap().clone()
    }

    /// Objects the peer holds in another version stamped later than here:
    /// Swift's sync daemon never replaces an object with an older-stamped
    /// one, so the sites stay apart until an operator says which stands.
    fn drift(&self) -> Option<String> {
        let newer = self.shared.newer_at_peer.lock().unwrap();
        let first = newer.first()?;
        Some(format!(
            "swift container sync: {} object(s) at the peer {} are another version stamped later \
             than at {}, e.g. {first:?}: Swift's sync daemon will not replace them (the peer's \
             clock runs ahead, or they were written there). Counted in the lag until the sites \
             agree: write this site's version again once the peer's clock is right, or remove \
             the peer's",
            newer.len(),
            cluster_label(self.shared.peer.settings()),
            cluster_label(self.shared.local.settings()),
        ))
    }

    fn lag(&self) -> Duration {
        self.shared
            .oldest_pending
            .lock()
            .unwrap()
            // stamped by this site's cluster: aged on its clock
            .and_then(|t| self.shared.local.now().duration_since(t).ok())
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

#[cfg(test)]
mod tests {
    use super::super::client::ObjectEntry;
    use super::*;

    fn entry(name: &str, hash: &str, at: &str) -> (String, ObjectEntry) {
        let e: ObjectEntry = serde_json::from_value(serde_json::json!({
            "name": name, "hash": hash, "bytes": 1, "last_modified": at,
        }))
        .unwrap();
        (format!("c/{name}"), e)
    }

    /// A version at the peer stamped later than this site's (its proxies'
    /// clock ahead, or a write there) is never replaced by Swift's sync
    /// daemon: owed, in the lag, and named; an older-stamped one is owed
    /// (not carried yet); the same version is not.
    #[test]
    fn a_later_stamped_other_version_at_the_peer_is_owed_and_named() {
        let here: Objects = [
            entry("same", "h1", "2026-12-07T10:00:00.000000"),
            entry("behind", "h2", "2026-12-07T10:00:05.000000"),
            entry("ahead", "h3", "2026-12-07T10:00:03.000000"),
        ]
        .into_iter()
        .collect();
        let peer: Objects = [
            entry("same", "h1", "2026-12-07T10:00:00.000000"),
            entry("behind", "old", "2026-12-07T09:00:00.000000"),
            entry("ahead", "theirs", "2026-12-07T11:00:00.000000"),
        ]
        .into_iter()
        .collect();
        let (oldest, newer) = pending(&here, &peer);
        assert_eq!(newer, vec!["c/ahead".to_string()]);
        assert_eq!(oldest, Some(here["c/ahead"].timestamp_us()));
        let (oldest, newer) = pending(&here, &here);
        assert_eq!((oldest, newer), (None, vec![]));
    }

    #[test]
    fn the_epoch_key_is_the_hmac_operators_can_compute_with_openssl() {
        // printf 'warden container-sync epoch=%s group=%s' 7 web \
        //   | openssl dgst -sha256 -hmac sync-key-123
        let k = epoch_key(&Secret::new("sync-key-123"), "web", 7);
        assert_eq!(
            k.expose(),
            "a7a5d6eda8ef857287c8564cfe25afa94606b2d7729416417d3e49d384f69ff5"
        );
        assert_eq!(format!("{k:?} {k}"), "Secret(****) ****");
    }

    #[test]
    fn every_epoch_group_and_configured_key_has_its_own_key() {
        let key = Secret::new("sync-key-123");
        let k = |s: &Secret, g: &str, e: u64| epoch_key(s, g, e).expose().to_string();
        let base = k(&key, "web", 1);
        assert_eq!(base, k(&key, "web", 1), "the same order, the same key");
        assert_ne!(base, k(&key, "web", 2));
        assert_ne!(base, k(&key, "db", 1));
        assert_ne!(base, k(&Secret::new("sync-key-124"), "web", 1));
        assert!(!base.contains("sync-key-123"));
    }

    #[test]
    fn a_replicator_sets_the_key_of_its_start_order() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let swift = |port| {
            SwiftSettings::new(
                format!("http://127.0.0.1:{port}/auth/v1.0"),
                "test:tester",
                Secret::new("testing"),
            )
        };
        let s = ContainerSyncSettings::new(
            swift(1),
            swift(2),
            "realm1",
            "clustera",
            "clusterb",
            Secret::new("sync-key-123"),
            vec!["c".into()],
        )
        .at_epoch("web", 7);
        let r = SwiftContainerSync::new(s).unwrap();
        assert_eq!(
            r.sync_key().expose(),
            epoch_key(&Secret::new("sync-key-123"), "web", 7).expose()
        );
    }
}
