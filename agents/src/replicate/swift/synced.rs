//! What the `swift-container-sync` plan records of the objects both
//! clusters hold alike: the pair manifest ([`Manifest`]) the failback's
//! resync reads (`resync.rs`), as the `swift` plan's copier keeps it.
//!
//! Swift's daemon does the copying and tells nobody what it carried; the
//! plan's poll lists both sides anyway (the lag). Each poll's objects listed
//! on both sides with the same hash are written as the manifest when they
//! changed (`ETAG@TIMESTAMP`: container sync keeps X-Timestamp). Without it
//! the failback found in no manifest an object the active site deleted
//! during the failover, kept it here as divergent, and this site's
//! container sync pushed it back once active again: a delete acknowledged
//! at the active site undone. Only what both listings show alike is
//! recorded, the whole record rewritten each time: an object gone from
//! either side, or one a peer listing leaves out, is no longer in it (the
//! failback then keeps it as divergent rather than deleting it).

use std::path::PathBuf;
use std::sync::Mutex;

use tracing::warn;

use super::{version, Objects};
use crate::replicate::{Item, Listing, Manifest};
use crate::AgentError;

/// The record, and what was last written (`None`: nothing yet).
pub(super) struct Synced {
    path: PathBuf,
    last: Mutex<Option<Result<Listing, String>>>,
}

impl Synced {
    /// The record kept at `path` (the pair manifest).
    pub(super) fn new(path: PathBuf) -> Self {
        Synced {
            path,
            last: Mutex::new(None),
        }
    }

    /// Records what `local` and `peer` (listed by one poll) hold alike,
    /// when it differs from what was last written; a failure is said once
    /// (until a write works again).
    pub(super) fn record(&self, local: &Objects, peer: &Objects) {
        let items: Listing = local
            .iter()
            .filter(|(n, e)| peer.get(*n).is_some_and(|p| p.hash == e.hash))
            .map(|(n, e)| {
                let item = Item {
                    size: e.bytes,
                    version: version(&e.hash, e.timestamp_us()),
                };
                (n.clone(), item)
            })
            .collect();
        let mut last = self.last.lock().unwrap();
        if matches!(&*last, Some(Ok(l)) if *l == items) {
            return;
        }
        match self.save(items) {
            Ok(items) => *last = Some(Ok(items)),
            Err(e) => {
                let e = e.to_string();
                if !matches!(&*last, Some(Err(before)) if *before == e) {
                    warn!(manifest = %self.path.display(), cause = %e, "the swift-container-sync plan cannot record what both clusters hold alike: a failback may keep (as divergent) objects the active site deletes meanwhile");
                }
                *last = Some(Err(e));
            }
        }
    }

    fn save(&self, items: Listing) -> Result<Listing, AgentError> {
        let m = Manifest::confirmed(items);
        m.save(&self.path)?;
        Ok(m.items)
    }
}
