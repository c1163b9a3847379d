//! The Swift plans: OpenStack Swift clusters kept in step through the Swift
//! API (DESIGN.md §6).
//!
//! - [`client`]: [`SwiftClient`], tempauth v1, paged listings, containers and
//!   objects with their metadata; `body`: request and answer bodies
//!   (streams, bounded reads).
//! - `copy`: one object copied as what it is (streamed plain object, SLO or
//!   DLO manifest, symlink), for the copier and the resyncer; `large`: how
//!   SLO/DLO manifests and symlinks are recognised and written again.
//! - This module: the `swift` plan, [`SwiftReplicator`]: a poll loop (every
//!   `interval`) that copies a source cluster's placement containers to a
//!   destination cluster; `copier`: its rounds; `settings`: its settings.
//! - `containers`: the placement containers on both clusters (checked,
//!   HEADed, made to exist with the replicated headers); `listing`: both
//!   clusters' listings and their comparison (for every plan).
//! - [`fence`]: the copier's fence: a promote marks its own cluster's
//!   containers active at its epoch ([`ActiveFence`]), and a copier built
//!   for an older start order writes nothing into a cluster so marked.
//! - [`resync`]: [`SwiftResyncer`], the stale cluster brought to the active one.
//! - [`container_sync`]: the `swift-container-sync` plan
//!   ([`SwiftContainerSync`], Swift's own container sync, direction set by
//!   `start`, the sync key derived from the order's epoch so a site keyed
//!   for an older epoch cannot push; [`ContainerSyncSite`], what a demote,
//!   stop or promote does to one site's containers), and the `none` plan
//!   ([`NoReplication`], a stretched cluster); `synced`: what the
//!   `swift-container-sync` poll records of the objects both sides hold
//!   alike (the pair manifest its failback reads).
//!
//! **Timestamps.** Swift's rule is "the newer X-Timestamp wins". A client
//! cannot set X-Timestamp on a PUT: the proxy's gatekeeper moves it aside
//! and only the container-sync middleware restores it, for requests signed
//! with the realm and container keys (checked in Swift 2.30; tempauth's
//! `.reseller_admin` does not change that). So every copy warden writes
//! carries the version's origin timestamp in [`ORIGIN_TS_HEADER`]
//! (`X-Object-Meta-Warden-Ts`, the source's own X-Timestamp, or its
//! `Warden-Ts` if the source object is itself a copy), and an object's
//! version is `ETAG@ORIGIN_TS` ([`Item::version`], the pair manifest). The
//! listing only shows the local X-Timestamp (`last_modified`), so the poll
//! loop reads origins from the manifest (same ETag = same version) and HEADs
//! an object only when the destination holds a version the manifest does not
//! know.
//!
//! **One round** of [`SwiftReplicator`]:
//! Rounds follow each other at once while they find work; `interval` is the
//! pause after a round that found nothing.
//!
//! 0. the destination's containers are read (HEAD) and their fence checked
//!    ([`fence`]): a promote there at this copier's epoch or a newer one
//!    ends the round, and the copier, with nothing written;
//! 1. every placement container exists on both clusters, with the source's
//!    `X-Container-Meta-*`, `X-Container-Read` and `X-Container-Write` at the
//!    destination (a container found only at the destination is created at
//!    the source too: one namespace across sites); never the fence, each
//!    site's own;
//! 2. both listings (paged); an object is copied when missing at the
//!    destination, when its ETag differs and the source version is newer,
//!    or when the source rewrote it since the last round (same ETag, new
//!    timestamp: metadata or content type may have changed);
//! 3. names in the manifest that are gone at the source are deleted at the
//!    destination (listings do not show deletions), unless the destination
//!    changed them since, and only once a HEAD at the source answers 404:
//!    a listing may lag behind the objects (a container replica that
//!    missed a row), and a delete on its word alone would undo a write the
//!    source acknowledged ([`copy::delete_if_gone`]; the failback's resync
//!    asks the peer the same way);
//! 4. the destination's fence is read again (a HEAD per container on each side), then
//!    copies (GET streamed into the PUT, with `Content-Type`,
//!    `X-Object-Meta-*`, the other headers a client sets and Swift keeps
//!    (`Cache-Control`, `Content-Language`, `Expires`, ...:
//!    [`client::OBJECT_HEADERS`]), `Content-Length` and the source's ETag) and deletes
//!    run `concurrency` at a time, SLO manifests and symlinks after the plain
//!    objects (their segments and targets first), the destination's fence
//!    read again while they run (before the first delete, every
//!    `fence_recheck_ops` ops and every `fence_recheck_every`: a promote
//!    there ends the round at once, [`fence`]); the manifest is saved when
//!    it changed (also after a round the fence ended: what it did is kept).
//!
//! **Refused names** ([`names`]): objects whose names a URL would rewrite
//! (`.`/`..` segments) or that hold control characters are left out of both
//! listings: never copied, never deleted, never in the manifest; each round
//! lists them ([`Replicator::refused`]) and logs each new one once.
//!
//! **Mass-delete guard** ([`DeleteGuard`]): a round that would delete more
//! than `max_delete_share` of the destination's objects *and* more than
//! `max_delete_count` of them (an emptied or wrongly mounted source), or
//! any deletion at all while the source lists no object in any placement
//! container (emptied, the wrong account: a small group's few objects are
//! below the counts), stops before copying or deleting anything; [`Replicator::guard`] says why. The
//! deletions the rounds of the last [`DELETE_WINDOW`](super::guard::DELETE_WINDOW)
//! carried count with a round's own (an emptying source is seen a few
//! objects a round). The next round checks again (a restored source goes on by itself);
//! [`Replicator::clear_guard`] lets the next round delete up to what was held.
//!
//! **Large objects and symlinks** (`copy`, `large`): an object is read as
//! stored (`?multipart-manifest=get&format=raw&symlink=get`), so an SLO or
//! DLO manifest or a symlink is copied as itself, never as the content it
//! stands for; the segments are objects of their own, replicated when their
//! container is in the placement list. An SLO whose segments are not at the
//! destination is refused by Swift and tried again next round (the round's
//! error says why). Listings compare an SLO by its `slo_etag` (the stored
//! manifest's MD5, the listing's `hash`, differs per cluster), a DLO
//! manifest by the MD5 of its own body (usually empty; streamed like a
//! plain object's), a symlink by its ETag, target and static target ETag
//! (every link's own ETag is the zero-byte MD5, as an empty object's: a
//! retargeted link is a new version), so none is copied again every round
//! and none is missed. Plain objects are streamed: memory stays a few
//! chunks whatever the size. Quarantine writes a divergent SLO manifest or
//! symlink again naming its segments or target where the same pass moved
//! them (`resync`).

mod body;
pub mod client;
pub mod container_sync;
mod containers;
mod copier;
mod copy;
pub mod fence;
mod guard_state;
mod large;
mod listing;
pub mod names;
pub mod resync;
pub(crate) mod seen;
mod settings;
mod synced;
mod url;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::guard::DeleteGuard;
use super::recent_deletes::Side;
use super::{
    Difference, DifferenceKind, Item, Listing, Manifest, Progress, Replicator, ResyncReport,
};
use crate::AgentError;

pub(crate) use containers::{
    check_containers, ensure_containers, follow_containers, head_containers, reconcile_containers,
    ContainerHeads,
};
use copier::*;
pub(crate) use copy::{apply, copy_object, copy_renamed, Done, Op, Pace};
use guard_state::GuardState;
pub(crate) use listing::{
    compare, list_one, list_pair, list_pair_refused, note_broken, note_refused, split_name, Objects,
};

pub use client::{ContainerInfo, ObjectEntry, ObjectInfo, SwiftClient, SwiftSettings};
pub use container_sync::{
    epoch_key, ContainerSyncSettings, ContainerSyncSite, NoReplication, SwiftContainerSync,
};
pub use fence::{fence_container, ActiveFence, ActiveMark, CopierOrder, ACTIVE_HEADER};
pub use resync::{SwiftResyncer, SwiftResyncerSettings};
pub use settings::{SwiftReplicatorSettings, FENCE_RECHECK_EVERY, FENCE_RECHECK_OPS};

/// The metadata header carrying a copy's origin timestamp (lower case, as sent).
pub const ORIGIN_TS_HEADER: &str = "x-object-meta-warden-ts";

/// The side container a quarantined object goes to, on the stale cluster.
pub fn quarantine_container(container: &str) -> String {
    format!("{container}.warden-quarantine")
}

/// The longest object name Swift takes by default (`max_object_name_length`
/// in `[swift-constraints]`, bytes by its docs; Swift 2.30 under Python 3
/// counts characters, never more than bytes: a name within this many bytes
/// is taken by both).
pub const MAX_OBJECT_NAME_BYTES: usize = 1024;

/// The name a divergent `object`, listed here at `ts_us`, gets in the
/// quarantine container: `OBJECT@TIMESTAMP`. When that is longer than
/// Swift takes ([`MAX_OBJECT_NAME_BYTES`]: an object whose own name is near
/// the limit), the name is cut at a character and the cut marked with a
/// digest of the whole name, `START~DIGEST@TIMESTAMP`: still one name per
/// object and version, and never one Swift refuses (the quarantine, and so
/// the whole failback, would fail on it every pass). The report's
/// `moved_to` says where each item went.
pub fn quarantine_object(object: &str, ts_us: u64) -> String {
    let stamp = format!("@{}", client::format_x_timestamp(ts_us));
    if object.len() + stamp.len() <= MAX_OBJECT_NAME_BYTES {
        return format!("{object}{stamp}");
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, object.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mark = format!("~{hex}{stamp}");
    let mut keep = MAX_OBJECT_NAME_BYTES.saturating_sub(mark.len());
    while !object.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{mark}", &object[..keep])
}

/// `ETAG@ORIGIN_TS`, the [`Item::version`] of a Swift object.
pub fn version(etag: &str, origin_us: u64) -> String {
    format!("{etag}@{}", client::format_x_timestamp(origin_us))
}

/// `ETAG@TS` → (ETag, µs).
pub fn parse_version(v: &str) -> Option<(&str, u64)> {
    let (etag, ts) = v.rsplit_once('@')?;
    Some((etag, client::parse_x_timestamp(ts)?))
}

/// A cluster named for messages: its auth URL's scheme, host and port (no
/// user info, path or query).
pub(crate) fn cluster_label(settings: &SwiftSettings) -> String {
    let origin = |url: &str| {
        reqwest::Url::parse(url)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    match &settings.auth {
        warden_openstack::SwiftAuth::Tempauth { auth_url, .. } => match origin(auth_url) {
            Some(o) => format!("the Swift cluster at {o}"),
            None => "the Swift cluster".into(),
        },
        warden_openstack::SwiftAuth::Keystone(k) => match (&k.region, origin(&k.auth_url)) {
            (Some(r), _) => format!("the Swift cluster of region {r}"),
            (None, Some(o)) => format!("the Swift cluster in the catalog of {o}"),
            (None, None) => "the Swift cluster".into(),
        },
    }
}

pub(crate) fn us_to_system(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// Mutable state of the poll loop.
#[derive(Debug, Default)]
struct State {
    /// The manifest as last saved (loaded on the first round).
    manifest: Option<Manifest>,
    /// `container/object` → the source's listing timestamp when last confirmed
    /// (a rewrite with the same ETag shows as a new timestamp); loaded with
    /// the manifest, saved beside it (`seen.rs`) when `seen_changed`.
    seen: seen::Seen,
    seen_changed: bool,
    /// The oldest source change known not to be at the destination yet.
    oldest_pending: Option<SystemTime>,
    /// When the last successful round started (µs): later source
    /// timestamps are changes not confirmed at the destination.
    last_ok_start_us: Option<u64>,
    /// The names the last listing refused.
    refused: Vec<String>,
    /// Static links broken at the source, refused by the last round
    /// ([`AgentError::SwiftBrokenLink`]'s entries).
    broken: Vec<String>,
    /// Names the source no longer lists but still holds (not deleted at
    /// the destination): said once each, while it lasts.
    unlisted: BTreeSet<String>,
    /// The mass-delete guard.
    guard: GuardState,
    /// Why the copier stopped for good: a newer active site's fence at the
    /// destination ([`fence`]); reported as [`Replicator::failing`].
    fenced: Option<String>,
    /// Objects the destination holds in a newer version than the
    /// source's, found by the last round's plan and left as they are:
    /// written there, not by replication (a write at the standby after a
    /// failback's cut-over, a hand edit). Reported as
    /// [`Replicator::drift`] while any is seen.
    newer_at_destination: Vec<String>,
}

struct Shared {
    settings: SwiftReplicatorSettings,
    src: SwiftClient,
    dst: SwiftClient,
    state: Mutex<State>,
    /// One round at a time (the poll loop, `resync`).
    round: tokio::sync::Mutex<()>,
}

/// The `swift` [`Replicator`]. See the module docs.
pub struct SwiftReplicator {
    shared: Arc<Shared>,
    running: crate::replicate::task::TaskSlot,
}

impl SwiftReplicator {
    /// A stopped replicator. Fails on invalid settings or when the HTTP
    /// client cannot be built; nothing is sent until [`Replicator::start`].
    pub fn new(settings: SwiftReplicatorSettings) -> Result<Self, AgentError> {
        settings.validate()?;
        let src = SwiftClient::new(settings.source.clone())?;
        let dst = SwiftClient::new(settings.destination.clone())?;
        // The guard's window kept beside the manifest.
        let guard = GuardState::beside(&settings.manifest, Side::Push);
        Ok(SwiftReplicator {
            shared: Arc::new(Shared {
                settings,
                src,
                dst,
                state: Mutex::new(State {
                    guard,
                    ..State::default()
                }),
                round: tokio::sync::Mutex::new(()),
            }),
            running: Default::default(),
        })
    }

    pub fn settings(&self) -> &SwiftReplicatorSettings {
        &self.shared.settings
    }

    /// The source cluster's client.
    pub fn source(&self) -> &SwiftClient {
        &self.shared.src
    }

    /// The destination cluster's client.
    pub fn destination(&self) -> &SwiftClient {
        &self.shared.dst
    }
}

impl Drop for SwiftReplicator {
    fn drop(&mut self) {
        self.running.cancel_now();
    }
}

#[async_trait]
impl Replicator for SwiftReplicator {
    async fn start(&self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let mut running = self.running.lock().await;
        if running.is_running() {
            return Ok(());
        }
        let s = &self.shared;
        {
            // Read again from the files at the first round: a resync of
            // this site may have rewritten them since this plan last ran.
            let mut st = s.state.lock().unwrap();
            st.manifest = None;
            st.seen.clear();
            st.seen_changed = false;
        }
        for client in [&s.src, &s.dst] {
            match client.authenticate().await {
                Ok(()) => {}
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => {
                    warn!(cause = %e, "swift cluster not reachable yet, replication retries in the background")
                }
            }
        }
        let cancel = shutdown.child_token();
        let task = tokio::spawn(worker(s.clone(), cancel.clone()));
        info!(
            source = %cluster_label(&s.settings.source),
            destination = %cluster_label(&s.settings.destination),
            containers = s.settings.containers.len(),
            "swift replication running"
        );
        running.set(cancel, Some(task), ());
        Ok(())
    }

    async fn stop(&self) {
        if self.running.stop().await {
            info!(destination = %cluster_label(&self.shared.settings.destination), "swift replication stopped");
        }
    }

    async fn resync(
        &self,
        cancel: CancellationToken,
        progress: Option<watch::Sender<Progress>>,
    ) -> Result<ResyncReport, AgentError> {
        let started = Instant::now();
        let done = self.shared.round(&cancel, progress.as_ref()).await?;
        Ok(ResyncReport {
            done,
            elapsed: started.elapsed(),
        })
    }

    fn lag(&self) -> Duration {
        let st = self.shared.state.lock().unwrap();
        // the oldest pending change's stamp is the source cluster's: its
        // age is counted on that cluster's clock, not this host's
        st.oldest_pending
            .and_then(|t| self.shared.src.now().duration_since(t).ok())
            .unwrap_or_default()
    }

    async fn verify(&self) -> Result<Vec<Difference>, AgentError> {
        let s = &self.shared;
        let (a, b) = list_pair(&s.src, &s.dst, &s.settings.containers).await?;
        Ok(compare(&a, &b))
    }

    fn refused(&self) -> Vec<String> {
        let st = self.shared.state.lock().unwrap();
        st.refused.iter().chain(&st.broken).cloned().collect()
    }

    fn guard(&self) -> Option<String> {
        self.shared.state.lock().unwrap().guard.held.clone()
    }

    /// Objects newer at the destination than here, left as they are: the
    /// sites differ, and only an operator can say which version stands.
    fn drift(&self) -> Option<String> {
        let st = self.shared.state.lock().unwrap();
        let newer = &st.newer_at_destination;
        let first = newer.first()?;
        Some(format!(
            "swift replication: {} object(s) at {} are newer than at {} and were left as they \
             are, e.g. {first:?}: written there, not by replication (after a cut-over, or by \
             hand)? The sites differ until the newer version is written here again or removed \
             there",
            newer.len(),
            cluster_label(&self.shared.settings.destination),
            cluster_label(&self.shared.settings.source),
        ))
    }

    /// Only the fence's refusal: the copier stopped ([`fence`]).
    fn failing(&self) -> Option<String> {
        self.shared.state.lock().unwrap().fenced.clone()
    }

    fn clear_guard(&self) -> bool {
        self.shared.state.lock().unwrap().guard.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_lists_with_unusable_names_are_refused() {
        for bad in ["..", ".", "a/b", "", "c\n"] {
            assert!(check_containers(&[bad.to_string()]).is_err(), "{bad:?}");
        }
        assert!(check_containers(&["c".into(), "d.e".into()]).is_ok());
        // its quarantine container (`NAME.warden-quarantine`) must fit too
        assert!(check_containers(&["c".repeat(238)]).is_ok());
        let e = check_containers(&["c".repeat(239)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than the 256 bytes"), "{e}");
    }

    /// `OBJECT@TIMESTAMP`, or for a name near Swift's limit the name cut
    /// at a character and marked with a digest of the whole: never longer
    /// than Swift takes, one per name and version.
    #[test]
    fn quarantined_names_fit_within_swifts_limit() {
        let ts = 1_795_307_425_606_510;
        assert_eq!(quarantine_object("a/b c", ts), "a/b c@1795307425.60651");
        let fits = "x".repeat(MAX_OBJECT_NAME_BYTES - 17);
        assert_eq!(
            quarantine_object(&fits, ts),
            format!("{fits}@1795307425.60651")
        );
        let long = |end: &str| format!("d/{}{end}", "ü".repeat(510));
        let (one, two) = (long("1"), long("2"));
        assert_eq!(one.len(), 1023);
        let (q1, q2) = (quarantine_object(&one, ts), quarantine_object(&two, ts));
        for q in [&q1, &q2] {
            assert!(q.len() <= MAX_OBJECT_NAME_BYTES, "{}", q.len());
            assert!(
                q.starts_with("d/üü") && q.ends_with("@1795307425.60651"),
                "{q}"
            );
            assert!(names::object_problem(q).is_none(), "{q}");
        }
        assert_ne!(q1, q2, "names that differ past the cut stay apart");
        assert_ne!(quarantine_object(&one, ts + 10), q1, "and versions");
        assert_eq!(quarantine_object(&one, ts), q1, "the same every pass");
    }

    #[test]
    fn cluster_labels_carry_no_credentials() {
        let s = SwiftSettings::new(
            "http://user:pw@127.0.0.1:9080/auth/v1.0?k=v",
            "test:tester",
            warden_config::Secret::new("k3y"),
        );
        assert_eq!(
            cluster_label(&s),
            "the Swift cluster at http://127.0.0.1:9080"
        );
    }
}
