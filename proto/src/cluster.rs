//! The etcd cluster a leader term belongs to, and the one rule every
//! receiver of a leader's word (an agent for answers, a frontend for hold
//! orders) applies to it before comparing terms ([`judge`]).
//!
//! A leader term is an etcd revision (the create revision of the leader
//! key): it only grows within one etcd cluster, and starts over at 1 in a
//! new one (a cluster rebuilt from scratch after a disaster); one
//! orchestrator alone has no cluster and term 0. So the term alone cannot
//! tell a deposed leader (lower term, same cluster) from the leader of a
//! new cluster (lower term, other cluster). Each term is therefore sent
//! with its cluster's id (the identity of the orchestrators' data in etcd: a
//! random id the first orchestrator writes under the prefix, gone with the
//! data — not etcd's own `cluster_id`, which a cluster rebuilt on the same
//! hosts and flags repeats; `None`: no cluster — a single orchestrator, or an
//! older orchestrator that does not say it), and each receiver keeps the
//! cluster of the term it keeps, plus the clusters it has left
//! (`retired`, the last [`RETIRED_KEPT`]):
//!
//! - the kept cluster's word is judged by its term, as ever;
//! - a retired cluster's is refused, whatever its term: the orchestrators
//!   moved away from that cluster, so any leader of it still speaking is
//!   deposed (a paused process, an answer delayed in transit, one the
//!   operator forgot to stop) — it carries the old id, so it cannot pass
//!   for the new cluster, and before the move it was ordinary term order;
//! - any other cluster (one never heard) is where the orchestrators
//!   moved: taken, whatever its term; the receiver keeps it and its term,
//!   and retires the cluster it kept (never `None`).
//!
//! A word without a cluster is judged by its term against the kept one,
//! as before clusters — never a move: an older orchestrator with etcd,
//! which does not say its cluster (a rolling upgrade: else a deposed
//! older leader would move the receiver off its cluster and retire it),
//! and one orchestrator alone (term 0). A lone orchestrator holds no
//! lease and proves nothing: one left running after the move to etcd,
//! or its answer delayed in transit across that move, must not take the
//! receivers back from the cluster and retire it. So one orchestrator
//! after several is refused at the groups' current epochs (its term 0 is
//! below the kept one) until a group's next epoch, which it states above
//! the receiver's (the rule of the deposed in `told.rs` and the
//! frontends' epoch fence), or a reset by hand — the leader says so in
//! an alert (`term_seen`).
//!
//! Going back to a cluster once left is refused like any retired one (its
//! leaders cannot be told from its deposed ones by a site that stopped
//! following it); the way back is a new cluster, or the id taken out of
//! the receiver's `retired` list while it is stopped. A receiver that
//! keeps no cluster yet (`None`: a first start, or a file of an older
//! version) takes the first cluster it hears as a move, retiring nothing —
//! except that a term kept of no cluster (from an orchestrator older than
//! clusters, with etcd) is compared with that first cluster's by term
//! (the agent: `told.rs`; the frontend: a hold place of no cluster): in a
//! rolling upgrade on one etcd cluster, an upgraded leader deposed before
//! an older one must not pass as a move.

/// How many clusters left a receiver remembers: a cluster that falls off
/// (after that many moves) would be taken again as a new one.
pub const RETIRED_KEPT: usize = 8;

/// Where a word of `cluster` stands for a receiver ([`judge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// Of the kept cluster: judged by its term.
    Kept,
    /// Of a cluster this receiver left for `left_for` (its kept one):
    /// refused as a deposed leader's.
    Retired { left_for: Option<u64> },
    /// Of a cluster neither kept nor left: the orchestrators moved there.
    Moved,
}

/// The rule (see the module docs): a word of `cluster` for a receiver
/// that keeps `kept` and left `retired` (its term is compared by the
/// receiver when [`Judged::Kept`]).
pub fn judge(kept: Option<u64>, retired: &[u64], cluster: Option<u64>) -> Judged {
    if cluster == kept || cluster.is_none() {
        Judged::Kept
    } else if cluster.is_some_and(|c| retired.contains(&c)) {
        Judged::Retired { left_for: kept }
    } else {
        Judged::Moved
    }
}

/// Retire `left` (the cluster kept before a move; `None` is never
/// retired) into `retired`, keeping the last [`RETIRED_KEPT`].
pub fn retire(retired: &mut Vec<u64>, left: Option<u64>) {
    let Some(left) = left else { return };
    retired.retain(|&c| c != left);
    retired.push(left);
    let over = retired.len().saturating_sub(RETIRED_KEPT);
    retired.drain(..over);
}

/// How a cluster is named in logs and refusals: `etcd cluster 1c2f…` (hex,
/// as etcd logs it) or, for `None`, `no etcd cluster (one orchestrator)`.
pub fn name(cluster: Option<u64>) -> String {
    match cluster {
        Some(c) => format!("etcd cluster {c:x}"),
        None => "no etcd cluster (one orchestrator)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_retired_and_moved() {
        assert_eq!(judge(Some(1), &[], Some(1)), Judged::Kept);
        assert_eq!(judge(None, &[1], None), Judged::Kept);
        assert_eq!(
            judge(Some(2), &[1], Some(1)),
            Judged::Retired { left_for: Some(2) }
        );
        assert_eq!(judge(Some(2), &[1], Some(3)), Judged::Moved);
        assert_eq!(
            judge(Some(2), &[1], None),
            Judged::Kept,
            "one orchestrator after several: by its term, never a move"
        );
        assert_eq!(
            judge(Some(2), &[1], None),
            Judged::Kept,
            "an older orchestrator with etcd: by its term"
        );
        assert_eq!(judge(None, &[], Some(2)), Judged::Moved, "a first cluster");
    }

    #[test]
    fn the_last_clusters_left_are_kept_none_never() {
        let mut r = Vec::new();
        retire(&mut r, None);
        assert!(r.is_empty());
        for c in 1..=10 {
            retire(&mut r, Some(c));
        }
        retire(&mut r, Some(5));
        assert_eq!(r, vec![3, 4, 6, 7, 8, 9, 10, 5]);
        retire(&mut r, Some(11));
        assert_eq!(r.len(), RETIRED_KEPT);
        assert_eq!(name(Some(0x1c2f)), "etcd cluster 1c2f");
    }
}
