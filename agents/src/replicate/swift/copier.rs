//! The `swift` copier's rounds: read the destination's fence (`fence.rs`),
//! list both clusters' placement containers, compare, read the fence
//! again, copy the newer version, delete what vanished (under the
//! mass-delete guard), and the worker task that runs rounds until stopped
//! (or fenced: then for good).

use futures::future::BoxFuture;

use super::*;
use copy::{Pace, Recheck};

mod book;
mod plan;

/// The poll loop: a round every `interval`, failures retried with backoff.
pub(super) async fn worker(shared: Arc<Shared>, cancel: CancellationToken) {
    let s = &shared.settings;
    let mut backoff = s.retry_min;
    let mut failing = false;
    loop {
        let pause = match shared.round(&cancel, None).await {
            Err(AgentError::Fenced(why)) => {
                // A newer active site owns the destination: this order is
                // stale, and no later round of it may write there.
                warn!(destination = %cluster_label(&s.destination), "{why}");
                return;
            }
            Ok(done) => {
                if failing {
                    info!(destination = %cluster_label(&s.destination), "swift replication recovered");
                }
                if done.items > 0 {
                    debug!(items = done.items, bytes = done.bytes, "swift round");
                }
                failing = false;
                backoff = s.retry_min;
                // a round that found work is followed by another at once: a
                // burst is usually still arriving
                if done.items > 0 {
                    Duration::ZERO
                } else {
                    s.interval
                }
            }
            Err(AgentError::ReplicationCancelled) => return,
            Err(AgentError::DeleteGuard(_)) => {
                // held (logged by the guard once per message): the source
                // alone tells the lag; the next round checks again
                tokio::select! {
                    _ = shared.note_unconfirmed() => {}
                    _ = cancel.cancelled() => return,
                }
                failing = false;
                backoff = s.retry_min;
                s.interval
            }
            Err(e) => {
                tokio::select! {
                    _ = shared.note_unconfirmed() => {}
                    _ = cancel.cancelled() => return,
                }
                if !failing {
                    warn!(destination = %cluster_label(&s.destination), cause = %e, "swift replication round failed, retrying");
                } else {
                    debug!(cause = %e, "swift replication still failing");
                }
                failing = true;
                let pause = backoff;
                backoff = (backoff * 2).min(s.retry_max);
                pause
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

impl Shared {
    /// One HEAD on each side of every placement container, then of the
    /// group's fence container ([`fence_container`]): the fence is read
    /// from all of them, the placement containers are the first
    /// `containers.len()`.
    async fn fence_heads(&self) -> Result<ContainerHeads, AgentError> {
        let s = &self.settings;
        let mut names = s.containers.clone();
        names.extend(fence_container(&s.order.group));
        head_containers(&self.src, &self.dst, &names).await
    }

    /// [`AgentError::Fenced`] when one of the destination's containers
    /// (`None`: missing) carries a fence this copier's order must respect
    /// (`fence.rs`), remembered for [`Replicator::failing`].
    /// Before that, this site's own word: an order it knows is stale (a
    /// newer epoch heard, no longer active) writes nothing either.
    fn check_fence(&self, heads: &ContainerHeads) -> Result<(), AgentError> {
        let s = &self.settings;
        let dest = cluster_label(&s.destination);
        let stale = s.order_stands.as_ref().and_then(|o| o.stands().err());
        let why = stale
            .map(|why| {
                format!(
                    "swift replication of group {} at epoch {} → {dest} stopped, nothing more written: {why}",
                    s.order.group, s.order.epoch
                )
            })
            .or_else(|| {
                heads
                    .iter()
                    .filter_map(|(c, own, d)| {
                        s.order.refusal(c, d.as_ref()?, own.as_ref(), &dest)
                    })
                    .next()
            });
        match why {
            Some(why) => {
                self.state.lock().unwrap().fenced = Some(why.clone());
                Err(AgentError::Fenced(why))
            }
            None => Ok(()),
        }
    }

    /// One round (module docs); progress counts copies and deletes done.
    pub(super) async fn round(
        &self,
        cancel: &CancellationToken,
        progress: Option<&watch::Sender<Progress>>,
    ) -> Result<Progress, AgentError> {
        let _one = self.round.lock().await;
        let s = &self.settings;
        // When the round began, in the source cluster's clock (its objects'
        // timestamps are compared with it): taken at the end, once its
        // answers have told that clock.
        let round_started = Instant::now();
        let work = async {
            // The HEADs that tell which containers to create or update
            // there also carry its fence: read before anything is written.
            let mut heads = self.fence_heads().await?;
            self.check_fence(&heads)?;
            heads.truncate(s.containers.len());
            reconcile_containers(&self.src, &self.dst, heads).await?;
            let manifest = self.manifest()?;
            let (src, dst, refused) =
                list_pair_refused(&self.src, &self.dst, &s.containers).await?;
            {
                let mut st = self.state.lock().unwrap();
                st.refused = note_refused(&st.refused, refused, "swift replication");
            }
            self.plan(&manifest, &src, &dst)
                .await
                .map(|p| (manifest, src, dst, p))
        };
        let (manifest, src, dst, (ops, mut confirmed, mut oldest, in_sync)) = tokio::select! {
            r = work => r?,
            _ = cancel.cancelled() => return Err(AgentError::ReplicationCancelled),
        };
        // Listings and plan may have taken a while: a promote meanwhile
        // stops the copies and deletes too (a HEAD per container and side).
        let again = async {
            let heads = self.fence_heads().await?;
            self.check_fence(&heads)?;
            Ok::<_, AgentError>(heads)
        };
        let heads = tokio::select! {
            r = again => r?,
            _ = cancel.cancelled() => return Err(AgentError::ReplicationCancelled),
        };
        // And while they run: the destination's containers read again
        // (a HEAD each, this site's own as just read) before the first
        // delete, every `fence_recheck_ops` ops and every
        // `fence_recheck_every`; a promote seen there ends the round at
        // once (`fence.rs`).
        let own: Vec<(String, Option<ContainerInfo>)> =
            heads.into_iter().map(|(c, own, _)| (c, own)).collect();
        let recheck_fence = || -> BoxFuture<'_, Result<(), AgentError>> {
            Box::pin(async {
                let mut heads = Vec::with_capacity(own.len());
                for (c, mine) in &own {
                    heads.push((c.clone(), mine.clone(), self.dst.head_container(c).await?));
                }
                self.check_fence(&heads).map_err(|e| match e {
                    AgentError::Fenced(why) => {
                        let why = format!(
                            "{why} (seen while a round was copying and deleting: no copy or \
                             delete started after it, those in flight were abandoned)"
                        );
                        self.state.lock().unwrap().fenced = Some(why.clone());
                        AgentError::Fenced(why)
                    }
                    e => e,
                })
            })
        };
        let recheck = Recheck {
            ops: s.fence_recheck_ops,
            every: s.fence_recheck_every,
            check: &recheck_fence,
        };
        // listed again (the listing caught up): said anew if it recurs
        self.state
            .lock()
            .unwrap()
            .unlisted
            .retain(|n| !src.contains_key(n));
        let deletes = ops.iter().filter(|o| matches!(o, Op::Delete(_))).count() as u64;
        let target = cluster_label(&s.destination);
        let checked_at = Instant::now();
        // A source that lists nothing at all (emptied, the wrong account
        // or region, its containers lost) is held whatever the counts, as
        // the rsync plan holds an empty source: a few objects are all of
        // a small group.
        let emptied = (deletes > 0 && src.is_empty()).then(|| {
            format!(
                "mass-delete guard: {} lists no object in any placement container while this round \
                 would delete {deletes} of {} objects at {target}; nothing was copied or deleted. \
                 Check the source (emptied, wrong account or region, containers lost?): replication \
                 resumes by itself once its objects are back; run `warden clear GROUP --deletions SITE` only if the \
                 peer must really be emptied",
                cluster_label(&s.source),
                dst.len()
            )
        });
        let held = self.state.lock().unwrap().guard.check_emptied(
            &s.guard,
            deletes,
            dst.len() as u64,
            &target,
            checked_at,
            emptied,
        );
        let released = match held {
            Ok(released) => released,
            // nothing copied or deleted: the source may be the one in trouble
            // (and its listing not one to remember either)
            Err(msg) => return Err(AgentError::DeleteGuard(msg)),
        };
        {
            let mut st = self.state.lock().unwrap();
            for (n, stamps) in in_sync {
                if st.seen.insert(n, stamps) != Some(stamps) {
                    st.seen_changed = true;
                }
            }
            // Names the source no longer lists: nothing to remember.
            let before = st.seen.len();
            st.seen.retain(|n, _| src.contains_key(n));
            if st.seen.len() != before {
                st.seen_changed = true;
            }
        }
        if ops.is_empty() {
            self.state.lock().unwrap().oldest_pending = None;
        } else {
            let mut st = self.state.lock().unwrap();
            oldest = match (st.oldest_pending, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            st.oldest_pending = oldest;
        }
        let mut done = Progress::default();
        let mut first_err = None;
        let mut broken = Vec::new();
        // Deletes of objects the destination does not list yet: their
        // entries stay until the delete is done.
        let deleting: BTreeSet<String> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Delete(n) if !dst.contains_key(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let mut deleted: BTreeSet<String> = BTreeSet::new();
        // What is confirmed so far is saved every MANIFEST_SAVE_EVERY of a
        // long round too, not only at its end: an agent killed in the
        // middle (a power loss) must not leave the failback a manifest
        // without the objects it copied — deleted at the peer by its users
        // since, they would be taken for writes here never replicated, and
        // kept.
        let mut saved_at = Instant::now();
        let mut last_saved: Option<Listing> = None;
        let each = |name: String, r: Result<Done, AgentError>| {
            match r {
                Ok(Done::Copied(Some(item))) => {
                    done.items += 1;
                    done.bytes += item.size;
                    if let Some(e) = src.get(&name) {
                        // the copy's own listing timestamp: at the next round
                        let stamps = seen::Stamps {
                            here: e.timestamp_us(),
                            peer: None,
                        };
                        let mut st = self.state.lock().unwrap();
                        if st.seen.insert(name.clone(), stamps) != Some(stamps) {
                            st.seen_changed = true;
                        }
                    }
                    confirmed.insert(name, item);
                }
                // a copy whose source vanished meanwhile: the next round deletes it
                Ok(Done::Copied(None)) => {}
                Ok(Done::Deleted) => {
                    done.items += 1;
                    let mut st = self.state.lock().unwrap();
                    if st.seen.remove(&name).is_some() {
                        st.seen_changed = true;
                    }
                    st.unlisted.remove(&name);
                    deleted.insert(name);
                }
                // not listed at the source but still there: its entry
                // stays, and the destination's copy
                Ok(Done::Kept) => {
                    if self.state.lock().unwrap().unlisted.insert(name.clone()) {
                        warn!(
                            object = %name,
                            source = %cluster_label(&s.source),
                            "the source's listing no longer shows this object but the source still holds it (a listing that lags behind): not deleted at the destination"
                        );
                    }
                }
                // can never be copied as it is: listed, not a failed round
                Err(AgentError::SwiftBrokenLink { entry }) => broken.push(entry),
                Err(e) => {
                    debug!(object = %name, cause = %e, "swift copy/delete failed");
                    first_err.get_or_insert(e);
                }
            }
            if let Some(tx) = progress {
                tx.send_replace(done);
            }
            if saved_at.elapsed() >= MANIFEST_SAVE_EVERY {
                saved_at = Instant::now();
                let items = booked(
                    &manifest.items,
                    &confirmed,
                    &deleted,
                    &src,
                    &dst,
                    &deleting,
                    &s.containers,
                );
                if items != manifest.items && last_saved.as_ref() != Some(&items) {
                    match Manifest::confirmed(items.clone()).save(&s.manifest) {
                        Ok(()) => {
                            last_saved = Some(items);
                            crate::replicate::sent::settle_beside(&s.manifest, |n| {
                                confirmed.contains_key(n)
                            });
                        }
                        Err(e) => {
                            warn!(cause = %e, "cannot save the swift manifest in the middle of a round; saved at its end")
                        }
                    }
                }
            }
        };
        // On disk before a copy starts: a site lost from here until the
        // manifest confirms a copy leaves the failback its name.
        let announce = |part: &[Op]| {
            crate::replicate::sent::note_beside(
                &s.manifest,
                part.iter().filter_map(|o| match o {
                    Op::Copy(n) => Some(n.as_str()),
                    Op::Delete(_) => None,
                }),
            )
        };
        let applied = apply(
            &self.src,
            &self.dst,
            ops,
            &src,
            Pace {
                concurrency: s.concurrency,
                cancel,
                recheck: Some(&recheck),
                announce: Some(&announce),
            },
            each,
        )
        .await;
        // Cancelled (a stop, a demote), stopped by the fence (or a fence
        // it could not read): what was done until then is kept below — the
        // failback's resync reads this manifest, and an object copied but
        // not in it, then deleted at the peer by its users, would be taken
        // for a write here that never reached the peer, and kept.
        if applied.is_ok() {
            let mut st = self.state.lock().unwrap();
            st.broken = note_broken(&st.broken, broken, "swift replication");
        }
        self.state
            .lock()
            .unwrap()
            .guard
            .carried(released, checked_at, deleted.len() as u64);
        // Old entries of names whose copy or delete failed or was skipped
        // stay: they still describe what was last equal on both sides.
        let items = booked(
            &manifest.items,
            &confirmed,
            &deleted,
            &src,
            &dst,
            &deleting,
            &s.containers,
        );
        if items != manifest.items {
            let m = Manifest::confirmed(items);
            m.save(&s.manifest)?;
            self.state.lock().unwrap().manifest = Some(m);
        }
        if applied.is_ok() && first_err.is_none() {
            // Every copy and delete the round owed is done: the pair is
            // settled, nothing it or an earlier round sent is in doubt.
            crate::replicate::sent::end_beside(&s.manifest);
        } else {
            // Confirmed by the manifest on disk, or gone here: settled.
            crate::replicate::sent::settle_beside(&s.manifest, |n| {
                confirmed.contains_key(n) || !src.contains_key(n)
            });
        }
        self.save_seen()?;
        applied?;
        match first_err {
            Some(e) => Err(e),
            None => {
                let mut st = self.state.lock().unwrap();
                st.oldest_pending = None;
                // the earliest the round can have begun: the cluster's
                // clock is known to a second (`Date`), and a cut-off too
                // late would take a write made just after the listing for
                // one this round carried
                let took = u64::try_from(round_started.elapsed().as_micros()).unwrap_or(u64::MAX);
                st.last_ok_start_us = Some(
                    self.src
                        .now_us()
                        .saturating_sub(took)
                        .saturating_sub(1_000_000),
                );
                st.fenced = None;
                Ok(done)
            }
        }
    }
}

/// How often a round's confirmations so far are saved while it runs.
const MANIFEST_SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The manifest after a round's work so far: the round's old entries of
/// names neither confirmed nor deleted since (and still listed on a side,
/// or being deleted), the confirmed ones, within the placement list.
fn booked<A, B>(
    old: &Listing,
    confirmed: &Listing,
    deleted: &BTreeSet<String>,
    src: &BTreeMap<String, A>,
    dst: &BTreeMap<String, B>,
    deleting: &BTreeSet<String>,
    containers: &[String],
) -> Listing {
    let mut items: Listing = old
        .iter()
        .filter(|(n, _)| {
            !confirmed.contains_key(*n)
                && !deleted.contains(*n)
                && (src.contains_key(*n) || dst.contains_key(*n) || deleting.contains(*n))
        })
        .map(|(n, i)| (n.clone(), i.clone()))
        .collect();
    items.extend(confirmed.iter().map(|(n, i)| (n.clone(), i.clone())));
    items.retain(|n, _| containers.iter().any(|c| split_name(n).0 == c));
    items
}
