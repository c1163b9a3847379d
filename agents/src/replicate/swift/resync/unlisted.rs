//! Changes this site holds that its own listing does not show: before a
//! pass overwrites (fetches) or deletes a name here, this site's object
//! servers are asked what they hold ([`stored_hash`], a HEAD as stored).
//! A version that is neither the one listed here, nor the peer's, nor the
//! one last confirmed equal (the manifest's) was written here and the
//! listing has not caught up with it — a container update left pending
//! while the site's container servers were down, as in the failure that
//! caused the failover. It is divergent like any change made here, set
//! aside (or kept, or discarded) by the policy, never overwritten or
//! deleted unseen.

use std::collections::BTreeSet;

use futures::StreamExt;

use super::*;
use crate::replicate::swift::copy::stored_hash;
use crate::replicate::{Classification, DivergentReason};

impl SwiftResyncer {
    /// `plan` with every name it fetches or deletes that this site holds
    /// in a version its listing does not show made divergent (module docs),
    /// and the X-Timestamp here of each (µs; its quarantine name).
    pub(super) async fn unlisted_changes(
        &self,
        mut plan: Classification,
        manifest: &Manifest,
        here_raw: &BTreeMap<String, ObjectEntry>,
        peer_raw: &BTreeMap<String, ObjectEntry>,
    ) -> Result<(Classification, BTreeMap<String, u64>), AgentError> {
        let known: BTreeSet<&String> = plan.divergent.iter().map(|(n, _, _)| n).collect();
        let asked: Vec<String> = plan
            .fetch
            .iter()
            .chain(&plan.delete)
            .filter(|n| !known.contains(n))
            .cloned()
            .collect();
        let here = &self.here;
        let mut answers = futures::stream::iter(asked)
            .map(|name| async move {
                let (c, o) = split_name(&name);
                let stored = stored_hash(here, c, o).await;
                (name, stored)
            })
            .buffer_unordered(self.settings.concurrency);
        let mut changed = BTreeMap::new();
        while let Some((name, stored)) = answers.next().await {
            let Some((hash, info)) = stored? else {
                continue;
            };
            let recorded = manifest
                .items
                .get(&name)
                .and_then(|i| parse_version(&i.version))
                .map(|(etag, _)| etag);
            let expected = [
                here_raw.get(&name).map(|e| e.hash.as_str()),
                peer_raw.get(&name).map(|e| e.hash.as_str()),
                recorded,
            ];
            if !expected.contains(&Some(hash.as_str())) {
                changed.insert(name, info.timestamp_us);
            }
        }
        for name in changed.keys() {
            warn!(object = %name, here = %cluster_label(&self.settings.here), "this site holds a version of the object its listing does not show (a container update still pending): divergent, not overwritten or deleted unseen");
            let reason = if manifest.items.contains_key(name) {
                DivergentReason::ChangedSinceSync
            } else {
                DivergentReason::NotInManifest
            };
            let peer_has = peer_raw.contains_key(name);
            // the peer's version is still fetched once it is set aside
            plan.delete.retain(|n| n != name);
            plan.divergent.push((name.clone(), reason, peer_has));
        }
        Ok((plan, changed))
    }
}
