//! A round's plan ([`Shared::plan`]): both listings and the manifest
//! turned into the copies and deletes to make, the entries already in
//! sync, the oldest pending change and the listing timestamps to remember.

use super::*;

/// What [`Shared::plan`] decided: the copies and deletes, the entries in
/// sync, the oldest pending change, the listing timestamps of the objects
/// in sync.
pub(super) type Plan = (
    Vec<Op>,
    Listing,
    Option<SystemTime>,
    Vec<(String, seen::Stamps)>,
);

impl Shared {
    /// Decides the copies and deletes; returns them, the entries already in
    /// sync (the new manifest's base), the oldest pending change, and the
    /// listing timestamps of the objects in sync (remembered by the round
    /// once the guard let it go ahead).
    pub(super) async fn plan(
        &self,
        manifest: &Manifest,
        src: &BTreeMap<String, ObjectEntry>,
        dst: &BTreeMap<String, ObjectEntry>,
    ) -> Result<Plan, AgentError> {
        let seen = self.state.lock().unwrap().seen.clone();
        let mut ops = Vec::new();
        let mut confirmed = Listing::new();
        let mut oldest: Option<u64> = None;
        let mut note = |us: u64| oldest = Some(oldest.map_or(us, |o| o.min(us)));
        let mut in_sync_seen = Vec::new();
        let mut newer = Vec::new();
        for (name, e) in src {
            let m = manifest
                .items
                .get(name)
                .and_then(|i| parse_version(&i.version));
            let s_ts = match m {
                Some((etag, ts)) if etag == e.hash => ts,
                _ => e.timestamp_us(),
            };
            let copy = match dst.get(name) {
                None => true,
                Some(d) if d.hash == e.hash => {
                    let rewritten = seen.get(name).is_some_and(|t| t.here != e.timestamp_us());
                    if !rewritten {
                        let version = match m {
                            Some((etag, ts)) if etag == e.hash => version(etag, ts),
                            _ => version(&e.hash, s_ts),
                        };
                        confirmed.insert(
                            name.clone(),
                            Item {
                                size: e.bytes,
                                version,
                            },
                        );
                        in_sync_seen.push((
                            name.clone(),
                            seen::Stamps {
                                here: e.timestamp_us(),
                                peer: Some(d.timestamp_us()),
                            },
                        ));
                    }
                    rewritten
                }
                // The source's listing timestamp moved on since both were
                // last seen equal: the source changed since, and its version
                // is the newer one. Both timestamps are the source
                // cluster's, so no clock of the other site is compared (a
                // destination whose clock ran ahead, e.g. the standby that
                // served writes during a failover, would otherwise keep its
                // older version over every later write at the active site,
                // with the lag shown as 0).
                Some(_) if seen.get(name).is_some_and(|t| e.timestamp_us() > t.here) => true,
                Some(d) => {
                    let d_ts = match m {
                        Some((etag, ts)) if etag == d.hash => ts,
                        // the object itself (a link's own metadata, not its target's)
                        _ => {
                            let (c, o) = split_name(name);
                            match copy::stored_hash(&self.dst, c, o).await? {
                                Some((_, info)) => info.origin_us(),
                                None => 0,
                            }
                        }
                    };
                    // the same version in another form (a plain copy an
                    // older warden made of an SLO or symlink): the source's
                    if s_ts > d_ts || (s_ts == d_ts && e.needs_others() != d.needs_others()) {
                        true
                    } else {
                        debug!(object = %name, "destination holds a newer version, left as is");
                        newer.push(name.clone());
                        false
                    }
                }
            };
            if copy {
                note(e.timestamp_us());
                ops.push(Op::Copy(name.clone()));
            }
        }
        // the source cluster's clock: a delete's lag is counted in it
        let now_us = self.src.now_us();
        for (name, item) in &manifest.items {
            if src.contains_key(name) {
                continue;
            }
            let at_dst = match dst.get(name) {
                Some(d) => d.hash.clone(),
                None => {
                    // Copied by an earlier round, deleted at the source, and
                    // not (yet) in the destination's listing: a container
                    // update still pending there. Asked of the object
                    // servers, or the delete would be lost for good (the
                    // manifest forgets the name, and a copy the listing shows
                    // later is nobody's to delete). The object itself, as
                    // the listing would show it: a link, not its target (a
                    // dangling one answers 404 to a plain HEAD), a DLO
                    // manifest, not its segments.
                    let (c, o) = split_name(name);
                    match copy::stored_hash(&self.dst, c, o).await? {
                        Some((hash, _)) => hash,
                        None => continue,
                    }
                }
            };
            match parse_version(&item.version) {
                Some((etag, _)) if etag == at_dst => {
                    note(now_us);
                    ops.push(Op::Delete(name.clone()));
                }
                _ => {
                    debug!(object = %name, "deleted at the source but changed at the destination, left as is")
                }
            }
        }
        let mut st = self.state.lock().unwrap();
        // Said when what is seen changes, not every round.
        if !newer.is_empty() && newer != st.newer_at_destination {
            warn!(
                objects = newer.len(),
                example = %newer[0],
                "the destination holds newer versions than the source; left as they are"
            );
        }
        st.newer_at_destination = newer;
        drop(st);
        Ok((ops, confirmed, oldest.map(us_to_system), in_sync_seen))
    }
}
