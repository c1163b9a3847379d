//! The versions a pass compares and remembers: both listings turned into
//! versioned [`Listing`]s (`ETAG@ORIGIN_TS`, from the manifest, the peer's
//! timestamp or the listing's; a legacy symlink entry still matched) and,
//! after a pass, the listing timestamps of what it made equal (`seen.rs`).

use super::*;

impl SwiftResyncer {
    /// After a pass: remember the listing timestamps of what it made equal
    /// (`seen.rs`): this site's as listed now, after the fetches; the
    /// peer's as compared (not listed again: a change there since is a
    /// change the next pass must see). Divergent items kept as they are and
    /// failed names keep what was remembered of them.
    pub(super) async fn remember(
        &self,
        before: &super::super::seen::Seen,
        equal: &[String],
        peer_raw: &BTreeMap<String, ObjectEntry>,
        divergent: &[DivergentItem],
        failed: &[String],
    ) -> Result<(), AgentError> {
        let s = &self.settings;
        // this site only: the peer's side is what the pass compared
        let here_now = super::super::list_one(&self.here, &s.containers).await?;
        let mut seen = super::super::seen::Seen::new();
        for name in equal {
            // a divergent item left as it is stays divergent
            let kept = divergent
                .iter()
                .any(|d| &d.name == name && d.action == "kept")
                || failed.contains(name);
            let now = match (here_now.get(name), peer_raw.get(name)) {
                (Some(h), Some(p)) if !kept && h.hash == p.hash => {
                    Some(super::super::seen::Stamps {
                        here: h.timestamp_us(),
                        peer: Some(p.timestamp_us()),
                    })
                }
                _ => before.get(name).copied(),
            };
            if let Some(stamps) = now {
                seen.insert(name.clone(), stamps);
            }
        }
        super::super::seen::save(
            &s.manifest,
            &cluster_label(&s.here),
            &cluster_label(&s.peer),
            &seen,
        )
    }
}

/// Listings → versioned [`Listing`]s that [`classify`] can compare (module docs).
pub(super) fn versions(
    manifest: &Manifest,
    here: &BTreeMap<String, ObjectEntry>,
    peer: &BTreeMap<String, ObjectEntry>,
    seen: &super::super::seen::Seen,
) -> (Listing, Listing) {
    let v = |name: &String, e: &ObjectEntry, at_peer: Option<&ObjectEntry>, moved: bool| {
        let recorded = manifest.items.get(name);
        let known =
            recorded.filter(|i| parse_version(&i.version).is_some_and(|(etag, _)| etag == e.hash));
        let legacy = recorded.filter(|i| {
            parse_version(&i.version).is_some_and(|(etag, ts)| legacy_link(etag, ts, e))
        });
        let version = match (known, at_peer, legacy) {
            // the same ETag, but listed later than when last confirmed
            // equal: changed on this side since (a metadata-only POST)
            (Some(_), _, _) if moved => version(&e.hash, e.timestamp_us()),
            (Some(i), _, _) => i.version.clone(),
            // the same content on both sides: the same version (the peer's
            // timestamp), whatever a legacy entry matches on one side only
            (None, Some(p), _) if p.hash == e.hash => version(&e.hash, p.timestamp_us()),
            (None, _, Some(i)) => i.version.clone(),
            (None, _, None) => version(&e.hash, e.timestamp_us()),
        };
        let item = Item {
            size: e.bytes,
            version,
        };
        (name.clone(), item)
    };
    let h = here
        .iter()
        .map(|(n, e)| {
            let moved = seen.get(n).is_some_and(|s| s.here != e.timestamp_us());
            v(n, e, peer.get(n), moved)
        })
        .collect();
    let p = peer
        .iter()
        .map(|(n, e)| {
            // No peer stamp yet (copied in the copier's last round, before a
            // round listed the peer again): a change there since cannot be
            // told from none, so it counts as one — at worst one fetch too
            // many; else a metadata POST or a new X-Delete-At acknowledged
            // at the peer would be lost at failback.
            let moved = seen
                .get(n)
                .is_some_and(|s| s.peer.is_none_or(|t| t != e.timestamp_us()));
            v(n, e, Some(e), moved)
        })
        .collect();
    (h, p)
}

/// A manifest entry written before a symlink's version named its target
/// (only the link's own ETag, the empty MD5 every link has): the same
/// link when nothing rewrote it since, i.e. its timestamp is the one
/// recorded. It then counts as unchanged here, and the peer's version is
/// fetched if it differs (once; the manifest is then rewritten).
fn legacy_link(etag: &str, ts: u64, e: &ObjectEntry) -> bool {
    e.symlink_path.is_some()
        && e.hash
            .split_once(";symlink=")
            .is_some_and(|(own, _)| own == etag)
        && ts == e.timestamp_us()
}
