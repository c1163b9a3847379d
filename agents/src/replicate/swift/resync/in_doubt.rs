//! The objects a failback pass of the `swift` plan holds in doubt: what
//! this site's copier sent and never saw confirmed ([`Sent`], beside the
//! manifest) that the peer lacks now — it may have been deleted there after
//! it arrived, so it is quarantined even under `keep` (`sent_unconfirmed`).
//! Not while an SLO or DLO manifest or a symlink stays in place under
//! `keep`: one of them may be its segment or target, and moving it aside
//! would leave that object broken (a DLO reading short, with no error).

use std::collections::BTreeMap;

use tracing::warn;

use super::super::client::ObjectEntry;
use super::super::listing::split_name;
use super::SwiftResyncer;
use crate::replicate::sent::Sent;
use crate::replicate::{DivergentPolicy, DivergentReason};

/// How many empty objects kept in place a pass asks whether they are DLO
/// manifests ([`SwiftResyncer::keeps_a_link`]).
const DLO_ASK: usize = 1000;

impl SwiftResyncer {
    /// Marks the divergent items in doubt `sent_unconfirmed` (see the
    /// module docs); the record read.
    pub(super) async fn mark_in_doubt(
        &self,
        divergent: &mut [(String, DivergentReason, bool)],
        policy: DivergentPolicy,
        here_raw: &BTreeMap<String, ObjectEntry>,
    ) -> Sent {
        let sent = Sent::load(&Sent::beside(&self.settings.manifest));
        let in_doubt: Vec<usize> = divergent
            .iter()
            .enumerate()
            .filter(|(_, (name, _, peer_has))| !*peer_has && sent.covers_object(name))
            .map(|(i, _)| i)
            .collect();
        if in_doubt.is_empty() {
            return sent;
        }
        if policy == DivergentPolicy::Keep
            && self.keeps_a_link(divergent, &in_doubt, here_raw).await
        {
            warn!(
                objects = in_doubt.len(),
                "objects a copy round of this site sent and never saw confirmed are kept in place (not quarantined): an SLO or DLO manifest or symlink kept here may name them"
            );
            return sent;
        }
        for i in in_doubt {
            divergent[i].1 = DivergentReason::SentUnconfirmed;
        }
        sent
    }

    /// Whether a divergent item kept in place (the peer lacks it, not
    /// among `in_doubt`) is an SLO manifest or a symlink (its listing
    /// says so) or a DLO manifest (a listing does not show it: each empty
    /// one is asked, at most [`DLO_ASK`]; more, or an answer that fails,
    /// count as one).
    async fn keeps_a_link(
        &self,
        divergent: &[(String, DivergentReason, bool)],
        in_doubt: &[usize],
        here_raw: &BTreeMap<String, ObjectEntry>,
    ) -> bool {
        let kept: Vec<(&String, &ObjectEntry)> = divergent
            .iter()
            .enumerate()
            .filter(|(i, (_, _, peer_has))| !*peer_has && in_doubt.binary_search(i).is_err())
            .filter_map(|(_, (name, _, _))| here_raw.get(name).map(|e| (name, e)))
            .collect();
        if kept.iter().any(|(_, e)| e.needs_others()) {
            return true;
        }
        let empty: Vec<&String> = kept
            .iter()
            .filter(|(_, e)| e.bytes == 0)
            .map(|(n, _)| *n)
            .collect();
        if empty.len() > DLO_ASK {
            return true;
        }
        for name in empty {
            let (c, o) = split_name(name);
            match self.here.head_with_headers(c, o, &[]).await {
                Ok(Some((_, h))) if h.contains_key("x-object-manifest") => return true,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
        false
    }
}
