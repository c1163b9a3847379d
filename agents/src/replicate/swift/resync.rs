//! [`SwiftResyncer`]: the returning (stale) Swift cluster ("here") brought
//! to exactly the active peer cluster's content, for the placement
//! containers (DESIGN §4 failback 2–3).
//!
//! A pass lists both clusters, gives every object its version
//! (`ETAG@ORIGIN_TS`: the manifest's version when the ETag matches it, else
//! the same string on both sides when the ETags agree, else the listing's
//! timestamp), runs [`classify`], asks this site's object servers about
//! every name it would fetch or delete (a version here that the listing
//! does not show yet, its container update still pending, is divergent
//! too: `unlisted.rs`), then in this order: divergent items per
//! the [`DivergentPolicy`] (quarantine = server-side copy into
//! `<container>.warden-quarantine` here, named `object@TS`, then delete;
//! an SLO manifest or symlink last, written again naming its segments or
//! target where this pass quarantined them, so it still reads whole;
//! discard = delete; keep = leave, but a conflict is quarantined first),
//! fetches (GET at the peer streamed into the PUT here, with the origin
//! timestamp; SLO/DLO manifests and symlinks as themselves, SLOs and
//! symlinks after the plain objects: `super::copy`), deletes, and finally
//! saves the manifest (what is now equal on both sides).
//!
//! A pass writes only here, never at the active peer: a placement
//! container the peer lacks (its users deleted it) is listed as empty
//! there, not created again with this site's stale headers.
//!
//! An object listed on either side but gone there (past its
//! `X-Delete-At`: Swift answers 404 at once, its listing shows the object
//! until the object-expirer reaps it, minutes later or never where none
//! runs) has nothing to set aside and is no difference for
//! [`Resyncer::verify`] (a HEAD as stored of each listed difference asks).
//!
//! Names a URL would rewrite or with control characters ([`super::names`])
//! are left out of both listings: never fetched, deleted, quarantined or
//! discarded, listed by [`Resyncer::refused`]. A pass that would delete (or
//! discard) more than the [`DeleteGuard`] allows here fails with
//! [`AgentError::DeleteGuard`] before touching anything (the deletions of
//! the passes of the last minute count with its own: a peer emptied while
//! the passes run is held too), and so does a pass that would delete here
//! while the peer lists no object at all, whatever the counts (emptied, the
//! wrong account); [`Resyncer::clear_guard`] lets the next pass go ahead.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::replicate::DivergentReason;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::client::{ObjectEntry, SwiftClient, SwiftSettings};
use super::{
    apply, check_containers, cluster_label, copy_renamed, follow_containers, list_pair,
    list_pair_refused, note_broken, note_refused, parse_version, quarantine_container,
    quarantine_object, split_name, version, Done, GuardState, Op, Pace,
};
use crate::replicate::guard::DeleteGuard;
use crate::replicate::recent_deletes::Side;
use crate::replicate::{
    classify, Difference, DifferenceKind, DivergentItem, DivergentPolicy, Item, Listing, Manifest,
    PassReport, Progress, ResyncProgress, Resyncer, VerifyReport,
};
use crate::AgentError;

mod booked;
mod in_doubt;
mod settings;
mod unlisted;
mod verify;
mod versions;

pub use settings::SwiftResyncerSettings;
use versions::versions;

/// The Swift [`Resyncer`]. See the module docs.
pub struct SwiftResyncer {
    settings: SwiftResyncerSettings,
    here: SwiftClient,
    peer: SwiftClient,
    /// Names the last listing refused.
    refused: Mutex<Vec<String>>,
    /// Static links broken at the peer that the last pass could not
    /// create here: name → entry ([`AgentError::SwiftBrokenLink`]).
    broken: Mutex<BTreeMap<String, String>>,
    guard: Mutex<GuardState>,
}

impl SwiftResyncer {
    /// Fails when the HTTP client cannot be built or a setting cannot work.
    pub fn new(settings: SwiftResyncerSettings) -> Result<Self, AgentError> {
        if settings.containers.is_empty() {
            return Err(AgentError::InvalidSetting {
                key: "containers".into(),
                reason: "list at least one container to resync".into(),
            });
        }
        if settings.concurrency == 0 {
            return Err(AgentError::InvalidSetting {
                key: "concurrency".into(),
                reason: "must be at least 1".into(),
            });
        }
        check_containers(&settings.containers)?;
        let here = SwiftClient::new(settings.here.clone())?;
        let peer = SwiftClient::new(settings.peer.clone())?;
        // The guard's window kept beside the manifest.
        let guard = GuardState::beside(&settings.manifest, Side::Resync);
        Ok(SwiftResyncer {
            settings,
            here,
            peer,
            refused: Mutex::new(Vec::new()),
            broken: Mutex::new(BTreeMap::new()),
            guard: Mutex::new(guard),
        })
    }
}

#[async_trait]
impl Resyncer for SwiftResyncer {
    async fn pass(
        &self,
        policy: DivergentPolicy,
        cancel: CancellationToken,
        progress: Option<watch::Sender<ResyncProgress>>,
    ) -> Result<PassReport, AgentError> {
        let started = Instant::now();
        let s = &self.settings;
        let prepare = async {
            // here only: the peer is the active site
            follow_containers(&self.peer, &self.here, &s.containers).await?;
            let manifest = Manifest::load(&s.manifest)?;
            let (peer_raw, here_raw, refused) =
                list_pair_refused(&self.peer, &self.here, &s.containers).await?;
            Ok::<_, AgentError>((manifest, peer_raw, here_raw, refused))
        };
        let (manifest, peer_raw, here_raw, refused) = tokio::select! {
            r = prepare => r?,
            _ = cancel.cancelled() => return Err(AgentError::ReplicationCancelled),
        };
        {
            let mut r = self.refused.lock().unwrap();
            *r = note_refused(&r, refused, "swift resync");
        }
        let seen = super::seen::load(
            &s.manifest,
            &cluster_label(&s.here),
            &cluster_label(&s.peer),
        );
        let (here, peer) = versions(&manifest, &here_raw, &peer_raw, &seen);
        let plan = classify(&manifest, &here, &peer);
        // what this site holds but does not list yet: not overwritten unseen
        let (plan, unlisted) = tokio::select! {
            r = self.unlisted_changes(plan, &manifest, &here_raw, &peer_raw) => r?,
            _ = cancel.cancelled() => return Err(AgentError::ReplicationCancelled),
        };
        // What this site's copier sent and never saw confirmed (`in_doubt`).
        let mut plan = plan;
        let sent = self
            .mark_in_doubt(&mut plan.divergent, policy, &here_raw)
            .await;
        // deletes here: what the peer deleted, and what the policy discards
        let discards = match policy {
            DivergentPolicy::Discard => plan.divergent.iter().filter(|(_, _, p)| !p).count(),
            _ => 0,
        };
        let deletes = (plan.delete.len() + discards) as u64;
        let checked_at = Instant::now();
        // A peer that lists nothing at all while this pass would remove
        // objects here — the manifest says they are in sync with it, or
        // the policy discards what the peer lacks (a switchover's replica
        // pass always does; a site that was never a source has no
        // manifest): emptied, the wrong account or region. Held whatever
        // the counts, as the rsync plan holds an empty peer.
        let emptied = (deletes > 0 && peer_raw.is_empty()).then(|| {
            format!(
                "mass-delete guard: the peer {} lists no object in any placement container while \
                 this pass would remove {deletes} of the {} objects at {} ({} the manifest says are \
                 in sync with it, {discards} the peer lacks that the divergent policy discards); \
                 nothing was removed here. Check the peer (emptied, wrong account or region, \
                 containers lost?): the resync goes on by itself once its objects are back; run \
                 `warden clear GROUP --deletions SITE` only if the peer's objects were really deleted",
                cluster_label(&s.peer),
                here.len(),
                cluster_label(&s.here),
                plan.delete.len(),
            )
        });
        let released = self
            .guard
            .lock()
            .unwrap()
            .check_emptied(
                &s.guard,
                deletes,
                here.len() as u64,
                &cluster_label(&s.here),
                checked_at,
                emptied,
            )
            .map_err(AgentError::DeleteGuard)?;
        let state = Mutex::new(ResyncProgress {
            items_left: (plan.fetch.len() + plan.delete.len() + plan.divergent.len()) as u64,
            bytes_left: plan.fetch_bytes,
            ..Default::default()
        });
        let report_progress = |items: u64, bytes: u64| {
            let mut p = state.lock().unwrap();
            p.items_done += items;
            p.items_left = p.items_left.saturating_sub(items);
            p.bytes_done += bytes;
            p.bytes_left = p.bytes_left.saturating_sub(bytes);
            if let Some(tx) = &progress {
                tx.send_replace(*p);
            }
        };
        report_progress(0, 0);

        // 1. divergent items, before anything here is overwritten
        // Kept in place only what never reached the peer: a version the
        // peer has or may have deleted after it arrived is moved aside.
        let quarantined = |reason: DivergentReason, peer_has: bool| match policy {
            DivergentPolicy::Quarantine => true,
            DivergentPolicy::Keep => peer_has || reason.peer_may_have_had(),
            DivergentPolicy::Discard => false,
        };
        // where each quarantined item goes: `object@TS` in the side container
        let moved: BTreeMap<&str, (String, String)> = plan
            .divergent
            .iter()
            .filter(|(_, reason, peer_has)| quarantined(*reason, *peer_has))
            .map(|(name, _, _)| {
                let (c, o) = split_name(name);
                let ts = unlisted
                    .get(name)
                    .copied()
                    .or_else(|| here_raw.get(name).map(|e| e.timestamp_us()))
                    .unwrap_or(0);
                (
                    name.as_str(),
                    (quarantine_container(c), quarantine_object(o, ts)),
                )
            })
            .collect();
        let rename = |name: &str| moved.get(name).cloned();
        // SLO manifests, then symlinks, after everything else: each is
        // written again naming its segments and target where they went
        let mut order: Vec<_> = plan.divergent.iter().collect();
        order.sort_by_key(|(name, _, _)| match here_raw.get(name) {
            Some(e) if e.slo_etag.is_some() => 1,
            Some(e) if e.symlink_path.is_some() => 2,
            _ => 0,
        });
        let mut divergent = Vec::new();
        for (name, reason, peer_has) in order {
            if cancel.is_cancelled() {
                return Err(AgentError::ReplicationCancelled);
            }
            let (c, o) = split_name(name);
            let quarantine = quarantined(*reason, *peer_has);
            let mut item = DivergentItem {
                name: name.clone(),
                reason: *reason,
                action: String::new(),
                moved_to: None,
            };
            let fail = |action: &str, e: AgentError| AgentError::Divergent {
                action: action.into(),
                name: name.clone(),
                reason: e.to_string(),
            };
            if let (true, Some((qc, qo))) = (quarantine, moved.get(name.as_str())) {
                if self
                    .here
                    .head_container(qc)
                    .await
                    .map_err(|e| fail("quarantine", e))?
                    .is_none()
                {
                    self.here
                        .put_container(qc, &BTreeMap::new())
                        .await
                        .map_err(|e| fail("quarantine", e))?;
                }
                let copied = if here_raw.get(name).is_some_and(ObjectEntry::needs_others) {
                    copy_renamed(&self.here, &self.here, (c, o), (qc, qo), &rename)
                        .await
                        .map_err(|e| fail("quarantine", e))?
                        .is_some()
                } else {
                    match self.here.copy_object(c, o, qc, qo).await {
                        Ok(()) => true,
                        Err(AgentError::SwiftStatus { status: 404, .. }) => false,
                        Err(e) => return Err(fail("quarantine", e)),
                    }
                };
                if !copied {
                    // Listed but gone here (past its X-Delete-At: listed
                    // until the object-expirer reaps it; or deleted
                    // meanwhile): nothing to set aside, and the copy's 404
                    // must not fail every pass.
                    warn!(object = %name, "divergent Swift object listed here but answering 404 (past its X-Delete-At and not reaped yet, deleted meanwhile, or its object servers do not serve it): nothing to set aside");
                    report_progress(1, 0);
                    continue;
                }
                self.here
                    .delete_object(c, o)
                    .await
                    .map_err(|e| fail("quarantine", e))?;
                item.action = "quarantined".into();
                item.moved_to = Some(format!("{qc}/{qo}"));
            } else if policy == DivergentPolicy::Discard {
                if !peer_has {
                    self.here
                        .delete_object(c, o)
                        .await
                        .map_err(|e| fail("discard", e))?;
                }
                item.action = "discarded".into();
            } else {
                item.action = "kept".into();
            }
            info!(object = %name, action = %item.action, reason = ?reason, "divergent Swift object");
            report_progress(1, 0);
            divergent.push(item);
        }

        // 2. fetches and deletes, `concurrency` at a time
        let ops: Vec<Op> = plan
            .fetch
            .iter()
            .cloned()
            .map(Op::Copy)
            .chain(plan.delete.iter().cloned().map(Op::Delete))
            .collect();
        let mut fetched = Progress::default();
        let mut deleted = 0u64;
        let mut first_err = None;
        let mut failed = Vec::new();
        let mut broken = BTreeMap::new();
        // Names whose copy or delete has not answered yet: the manifest so
        // far keeps their old entries (`booked`), saved as the pass runs.
        let ops_names: std::collections::BTreeSet<&str> = plan
            .fetch
            .iter()
            .chain(plan.delete.iter())
            .map(String::as_str)
            .collect();
        let mut waiting = ops_names.clone();
        let mut saved_at = Instant::now();
        let mut last_saved: Option<Listing> = None;
        let (here_label, peer_label) = (cluster_label(&s.here), cluster_label(&s.peer));
        let mut save_so_far = |waiting: &std::collections::BTreeSet<&str>, failed: &[String]| {
            let mut unsettled = waiting.clone();
            unsettled.extend(failed.iter().map(String::as_str));
            let items = booked::so_far(&manifest.items, &peer, &unsettled);
            if items == manifest.items || last_saved.as_ref() == Some(&items) {
                return;
            }
            // First, the listing timestamps remembered of what the pass
            // settled are forgotten: a fetched copy is listed here at its
            // PUT's time, and the old stamp beside the new entry would make
            // it a change here — a false divergent item at the next pass.
            let stale = booked::seen_without(&seen, &ops_names, &unsettled);
            let saved = super::seen::save(&s.manifest, &here_label, &peer_label, &stale)
                .and_then(|()| Manifest::confirmed(items.clone()).save(&s.manifest));
            match saved {
                Ok(()) => last_saved = Some(items),
                Err(e) => {
                    warn!(cause = %e, "cannot save the swift manifest in the middle of a resync pass")
                }
            }
        };
        let each = |name: String, r: Result<Done, AgentError>| {
            waiting.remove(name.as_str());
            match r {
                Ok(Done::Copied(Some(item))) => {
                    fetched.items += 1;
                    fetched.bytes += item.size;
                    report_progress(1, item.size);
                }
                // gone at the peer meanwhile: the next pass deletes it
                // here; its entry stays what it was
                Ok(Done::Copied(None)) => {
                    failed.push(name);
                    report_progress(1, 0);
                }
                // not listed at the peer but still there: kept here,
                // its entry too
                Ok(Done::Kept) => {
                    warn!(object = %name, "the peer's listing no longer shows this object but the peer still holds it (a listing that lags behind): not deleted here");
                    failed.push(name);
                    report_progress(1, 0);
                }
                Ok(Done::Deleted) => {
                    deleted += 1;
                    report_progress(1, 0);
                }
                // broken at the peer, never created here: listed, its
                // entry stays, the pass goes on
                Err(AgentError::SwiftBrokenLink { entry }) => {
                    failed.push(name.clone());
                    broken.insert(name, entry);
                    report_progress(1, 0);
                }
                Err(e) => {
                    failed.push(name);
                    first_err.get_or_insert(e);
                }
            }
            if saved_at.elapsed() >= booked::SAVE_EVERY {
                saved_at = Instant::now();
                save_so_far(&waiting, &failed);
            }
        };
        let applied = apply(
            &self.peer,
            &self.here,
            ops,
            &peer_raw,
            Pace {
                concurrency: s.concurrency,
                cancel: &cancel,
                recheck: None,
                announce: None,
            },
            each,
        )
        .await;
        if let Err(e) = applied {
            // Cancelled or stopped: what was done until then is kept.
            save_so_far(&waiting, &failed);
            return Err(e);
        }
        let discarded = divergent.iter().filter(|d| d.action == "discarded").count() as u64;
        self.guard
            .lock()
            .unwrap()
            .carried(released, checked_at, deleted + discarded);

        // 3. the manifest: what the peer holds and is now equal here
        let unsettled = failed.iter().map(String::as_str).collect();
        let items = booked::so_far(&manifest.items, &peer, &unsettled);
        let equal: Vec<String> = items.keys().cloned().collect();
        Manifest::confirmed(items).save(&s.manifest)?;
        self.remember(&seen, &equal, &peer_raw, &divergent, &failed)
            .await?;
        {
            let mut b = self.broken.lock().unwrap();
            let before: Vec<String> = b.values().cloned().collect();
            note_broken(&before, broken.values().cloned().collect(), "swift resync");
            *b = broken;
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // Settled with the peer: what the copier once sent is decided.
        if !sent.is_empty() {
            crate::replicate::sent::end_beside(&s.manifest);
        }
        info!(
            fetched = fetched.items,
            bytes = fetched.bytes,
            deleted,
            divergent = divergent.len(),
            "swift resync pass done"
        );
        Ok(PassReport {
            fetched,
            deleted,
            divergent,
            peer_items: peer.len() as u64,
            elapsed: started.elapsed(),
        })
    }

    async fn verify(&self, except: &[String]) -> Result<VerifyReport, AgentError> {
        self.verify_listings(except).await
    }

    fn refused(&self) -> Vec<String> {
        let mut all = self.refused.lock().unwrap().clone();
        all.extend(self.broken.lock().unwrap().values().cloned());
        all
    }

    fn guard(&self) -> Option<String> {
        self.guard.lock().unwrap().held.clone()
    }

    fn clear_guard(&self) -> bool {
        self.guard.lock().unwrap().clear()
    }
}

#[cfg(test)]
mod tests {
    use super::super::seen::{Seen, Stamps};
    use super::*;

    fn link(target: &str, last_modified: &str) -> ObjectEntry {
        let empty = "d41d8cd98f00b204e9800998ecf8427e";
        ObjectEntry {
            name: "l".into(),
            hash: crate::replicate::swift::large::symlink_hash(empty, target, None),
            bytes: 0,
            content_type: "text/plain".into(),
            last_modified: last_modified.into(),
            slo_etag: None,
            symlink_path: Some(format!("/v1/AUTH_t/{target}")),
            symlink_etag: None,
        }
    }

    /// A link recorded by an older agent (its version only the empty MD5)
    /// is unchanged here while its timestamp is the recorded one, so a
    /// failback fetches the peer's link instead of calling it divergent;
    /// rewritten since (a new timestamp), it is a change of this site.
    #[test]
    fn a_link_recorded_before_links_named_their_target_is_not_divergent() {
        let here = link("c/t1", "2026-12-04T10:00:00.000010");
        let ts = here.timestamp_us();
        let legacy = Item {
            size: 0,
            version: version("d41d8cd98f00b204e9800998ecf8427e", ts),
        };
        let manifest = Manifest::confirmed(Listing::from([("c/l".to_string(), legacy.clone())]));
        let peer = link("c/t2", "2026-12-04T11:00:00.000000");
        let (h, p) = versions(
            &manifest,
            &BTreeMap::from([("c/l".to_string(), here)]),
            &BTreeMap::from([("c/l".to_string(), peer)]),
            &Seen::new(),
        );
        assert_eq!(h["c/l"], legacy, "unchanged since it was confirmed");
        let plan = classify(&manifest, &h, &p);
        assert!(plan.divergent.is_empty(), "{:?}", plan.divergent);
        assert_eq!(plan.fetch.len(), 1, "the peer's link is fetched");
        // Rewritten here since: no longer the recorded link.
        let moved = link("c/t3", "2026-12-04T12:00:00.000000");
        let (h, _) = versions(
            &manifest,
            &BTreeMap::from([("c/l".to_string(), moved)]),
            &BTreeMap::new(),
            &Seen::new(),
        );
        assert_ne!(h["c/l"], legacy);
    }

    /// A legacy entry that recorded the *peer's* timestamp (written by an
    /// older agent's resync pass, which records the peer's versions): the
    /// peer's link, unchanged since, matches it; this site's link is the
    /// copy that pass fetched (the same target, its own timestamp). Both
    /// sides hold the same link: nothing to fetch, nothing divergent.
    #[test]
    fn the_same_link_on_both_sides_is_in_sync_whatever_the_legacy_entry_says() {
        let peer = link("c/t1", "2026-12-04T10:00:00.000010");
        let legacy = Item {
            size: 0,
            version: version("d41d8cd98f00b204e9800998ecf8427e", peer.timestamp_us()),
        };
        let manifest = Manifest::confirmed(Listing::from([("c/l".to_string(), legacy)]));
        let here = link("c/t1", "2026-12-04T10:00:05.000000");
        let (h, p) = versions(
            &manifest,
            &BTreeMap::from([("c/l".to_string(), here)]),
            &BTreeMap::from([("c/l".to_string(), peer)]),
            &Seen::new(),
        );
        let plan = classify(&manifest, &h, &p);
        assert!(plan.divergent.is_empty(), "{:?}", plan.divergent);
        assert!(plan.fetch.is_empty() && plan.delete.is_empty(), "{plan:?}");
    }

    fn plain(ts: &str) -> ObjectEntry {
        ObjectEntry {
            name: "o".into(),
            hash: "5d41402abc4b2a76b9719d911017c592".into(),
            bytes: 5,
            content_type: "text/plain".into(),
            last_modified: ts.into(),
            slo_etag: None,
            symlink_path: None,
            symlink_etag: None,
        }
    }

    /// Same ETag on both sides and the recorded version: the listing
    /// timestamps remembered when the two were last equal tell a change
    /// that kept the ETag (a metadata-only POST). Moved at the peer: a new
    /// version there, fetched; moved here: divergent; both: a conflict;
    /// neither (or nothing remembered): in sync.
    #[test]
    fn a_same_etag_change_is_told_by_the_remembered_timestamps() {
        let here = plain("2026-12-04T10:00:00.000000");
        let peer = plain("2026-12-04T10:00:05.000000");
        let recorded = Item {
            size: 5,
            version: version(&here.hash, here.timestamp_us()),
        };
        let manifest = Manifest::confirmed(Listing::from([("c/o".to_string(), recorded.clone())]));
        let stamps = |h: &ObjectEntry, p: &ObjectEntry| {
            Seen::from([(
                "c/o".to_string(),
                Stamps {
                    here: h.timestamp_us(),
                    peer: Some(p.timestamp_us()),
                },
            )])
        };
        let plan_of = |h: &ObjectEntry, p: &ObjectEntry, seen: &Seen| {
            let (hv, pv) = versions(
                &manifest,
                &BTreeMap::from([("c/o".to_string(), h.clone())]),
                &BTreeMap::from([("c/o".to_string(), p.clone())]),
                seen,
            );
            classify(&manifest, &hv, &pv)
        };
        let posted_at_peer = plain("2026-12-04T11:00:00.000000");
        let posted_here = plain("2026-12-04T11:30:00.000000");
        let remembered = stamps(&here, &peer);

        let plan = plan_of(&here, &peer, &remembered);
        assert!(
            plan.fetch.is_empty() && plan.divergent.is_empty(),
            "{plan:?}"
        );
        let plan = plan_of(&here, &posted_at_peer, &remembered);
        assert_eq!(plan.fetch, vec!["c/o".to_string()], "{plan:?}");
        assert!(plan.divergent.is_empty(), "{plan:?}");
        // changed here: divergent (the policy keeps or moves it aside),
        // and the peer's version is what this site gets
        let plan = plan_of(&posted_here, &peer, &remembered);
        assert_eq!(plan.divergent.len(), 1, "changed here: {plan:?}");
        let plan = plan_of(&posted_here, &posted_at_peer, &remembered);
        assert_eq!(plan.divergent.len(), 1, "changed on both sides: {plan:?}");
        // Copied in the copier's last round: the peer's stamp not known yet
        // (no round listed the peer since). A POST at the peer since cannot
        // be told from none: the peer's version is fetched. Before, with no
        // peer stamp the peer counted as unmoved, and the POST was lost.
        let copied_last = Seen::from([(
            "c/o".to_string(),
            Stamps {
                here: here.timestamp_us(),
                peer: None,
            },
        )]);
        let plan = plan_of(&here, &posted_at_peer, &copied_last);
        assert_eq!(plan.fetch, vec!["c/o".to_string()], "{plan:?}");
        assert!(plan.divergent.is_empty(), "{plan:?}");
        // Nothing remembered (an agent from before): as before, in sync.
        let plan = plan_of(&here, &posted_at_peer, &Seen::new());
        assert!(
            plan.fetch.is_empty() && plan.divergent.is_empty(),
            "{plan:?}"
        );
    }
}
