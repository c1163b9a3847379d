//! The manifest a Swift resync pass has earned so far: saved about every
//! second while its copies and deletes run, and when they stop early (a
//! cancel, an error), not only at the pass's end. An agent killed in the
//! middle of a long pass (SIGKILL, the OOM killer, a reboot) otherwise
//! left the manifest of the pass before: every object the pass had
//! fetched was unknown to it, and one the active site's users deleted
//! afterwards was taken by the next pass for a write here never
//! replicated — kept (the default `divergent`) and pushed back after the
//! cut-over, undoing an acknowledged delete. Each save first forgets the
//! listing timestamps remembered (`seen`) of the names it settles: a
//! fetched copy is listed here at its PUT's time, and the old stamp beside
//! the new entry would make it a change here at the next pass.

use std::collections::BTreeSet;

use crate::replicate::manifest::Listing;

/// How often a pass's manifest so far is saved while it runs.
pub(super) const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The manifest after part of a pass: the peer's entry of every name the
/// pass has settled or had nothing to do for (as the pass's end records),
/// and the old entry of every name whose copy or delete is not done or
/// failed (`unsettled`) — it still says what was last equal on both sides.
pub(super) fn so_far(old: &Listing, peer: &Listing, unsettled: &BTreeSet<&str>) -> Listing {
    let mut items: Listing = peer
        .iter()
        .filter(|(n, _)| !unsettled.contains(n.as_str()))
        .map(|(n, i)| (n.clone(), i.clone()))
        .collect();
    for n in unsettled {
        if let Some(i) = old.get(*n) {
            items.insert(n.to_string(), i.clone());
        }
    }
    items
}

/// The listing timestamps remembered beside the manifest (`seen`), less
/// those of the names among `ops` the pass has settled (not `unsettled`):
/// saved with a manifest so far, so an object fetched is compared by its
/// manifest entry alone until the pass's end records its new stamps.
pub(super) fn seen_without(
    seen: &crate::replicate::swift::seen::Seen,
    ops: &BTreeSet<&str>,
    unsettled: &BTreeSet<&str>,
) -> crate::replicate::swift::seen::Seen {
    seen.iter()
        .filter(|(n, _)| !ops.contains(n.as_str()) || unsettled.contains(n.as_str()))
        .map(|(n, s)| (n.clone(), *s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::manifest::Item;

    fn item(v: &str) -> Item {
        Item {
            size: 1,
            version: v.into(),
        }
    }

    #[test]
    fn settled_names_take_the_peers_entry_the_others_keep_theirs() {
        let old: Listing = [("c/a", "1"), ("c/b", "1"), ("c/gone", "1")]
            .into_iter()
            .map(|(n, v)| (n.to_string(), item(v)))
            .collect();
        let peer: Listing = [("c/a", "2"), ("c/b", "2"), ("c/new", "2")]
            .into_iter()
            .map(|(n, v)| (n.to_string(), item(v)))
            .collect();
        // a copied, b still to copy, new still to copy, gone still to delete
        let unsettled: BTreeSet<&str> = ["c/b", "c/new", "c/gone"].into_iter().collect();
        let got = so_far(&old, &peer, &unsettled);
        let got: Vec<(&str, &str)> = got
            .iter()
            .map(|(n, i)| (n.as_str(), i.version.as_str()))
            .collect();
        assert_eq!(got, vec![("c/a", "2"), ("c/b", "1"), ("c/gone", "1")]);
    }
}
