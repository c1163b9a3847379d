//! The etcd clusters of the hold orders' terms, frontend-wide: the one the
//! frontend keeps and those it left ([`ClustersKept`], in `fence.json` as
//! "cluster" and "retired"), and the rule of [`warden_proto::cluster`]
//! applied to each hold order before its place is judged ([`Clusters`]).
//!
//! A hold order's place is (term, seq), its term an etcd revision: in a
//! new etcd cluster (rebuilt from scratch) the terms start over, and one
//! orchestrator alone has term 0. Judged by its place alone, every order
//! of the new leader at a group's current epoch would be refused as older
//! than the old cluster's ("late_copy") until the group's next epoch. So
//! each order says its term's cluster ([`crate::api::Hold::cluster`]):
//! - the kept cluster's orders are placed by (term, seq), as ever;
//! - an order of a cluster this frontend left is refused, whatever its
//!   term (409: "of etcd cluster X, which this frontend left for Y"): a
//!   leader of the old cluster still speaking after the orchestrators
//!   moved is deposed (a paused process, a copy delayed in transit); it
//!   carries the old id and cannot pass for the new cluster, and before
//!   the move its orders were placed by term as ever;
//! - an order of any other cluster (a new one) is the orchestrators' move: the
//!   frontend keeps that cluster and retires the one it kept, said once at
//!   warn, and the order is placed after every place of a cluster left
//!   (`route::hold`), so it is taken at the group's current epoch.
//!
//! Route orders state their term's cluster too, and are judged by the
//! same rule: one of a cluster left is refused, one of a new cluster is
//! the move (a route re-applied by the new cluster's leader with no hold
//! order before it), but a route order is placed by its epoch alone.
//!
//! The move is taken only with an order that is taken (one refused by its
//! epoch moves nothing), and written to `fence.json` before that order
//! takes effect (with the group's fence), so a restarted frontend still
//! refuses the old cluster's late orders. An order with no cluster (an
//! older orchestrator with etcd, or one orchestrator alone: term 0) is
//! placed by its term, as before — never a move; going back to a cluster once left is refused (see
//! [`warden_proto::cluster`]).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use warden_proto::cluster::{self, Judged};

/// The cluster kept and those left, as `fence.json` holds them (absent: a
/// first start, or an older frontend's file — none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClustersKept {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cluster: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) retired: Vec<u64>,
}

/// The clusters in memory (with or without a fence file).
#[derive(Debug, Default)]
pub(crate) struct Clusters {
    kept: Mutex<ClustersKept>,
}

impl Clusters {
    pub(crate) fn new(kept: ClustersKept) -> Clusters {
        Clusters {
            kept: Mutex::new(kept),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClustersKept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why an order of `cluster` is refused (a cluster this frontend
    /// left), if it is; nothing changes.
    pub(crate) fn refusal(&self, cluster: Option<u64>) -> Option<String> {
        let k = self.lock();
        match cluster::judge(k.cluster, &k.retired, cluster) {
            Judged::Retired { left_for } => Some(left(cluster, left_for)),
            Judged::Kept | Judged::Moved => None,
        }
    }

    /// An order of leader `term` of `cluster` is taken: when it is the
    /// orchestrators' move, the clusters to keep from now on (said at
    /// warn), handed to `keep` while this lock is held — so no other
    /// order is judged by the new clusters before the fence file holds
    /// them (a crash between the two would let the cluster left back in);
    /// `Err` when, since [`Clusters::refusal`], another order moved this
    /// frontend off `cluster`.
    pub(crate) fn take(
        &self,
        cluster: Option<u64>,
        term: u64,
        keep: impl FnOnce(ClustersKept),
    ) -> Result<(), String> {
        let mut k = self.lock();
        match cluster::judge(k.cluster, &k.retired, cluster) {
            Judged::Kept => Ok(()),
            Judged::Retired { left_for } => Err(left(cluster, left_for)),
            Judged::Moved => {
                let from = k.cluster;
                cluster::retire(&mut k.retired, from);
                k.cluster = cluster;
                if from.is_none() {
                    // Nothing left: a first start, an older file, or one
                    // orchestrator before etcd.
                    tracing::info!(
                        "the orchestrators' leader terms are of {}: followed from term {term}",
                        cluster::name(cluster)
                    );
                } else {
                    tracing::warn!(
                        "orchestrators moved from {} to {}: leader terms are of the new one from \
                         term {term} on",
                        cluster::name(from),
                        cluster::name(cluster)
                    );
                }
                keep(k.clone());
                Ok(())
            }
        }
    }
}

fn left(cluster: Option<u64>, left_for: Option<u64>) -> String {
    format!(
        "of {}, which this frontend left for {}: a deposed leader's order",
        cluster::name(cluster),
        cluster::name(left_for)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::Fence;

    /// The move is kept in `fence.json` with the next order's fence,
    /// even one that changes no group's fence, and read back at a
    /// restart: the cluster left is still refused. A file of an older
    /// frontend (neither field) keeps no cluster.
    #[tokio::test]
    async fn a_move_is_kept_with_the_next_fence_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let groups = vec!["web".to_string()];
        let f = Fence::open(dir.path(), "fe1", &groups).unwrap();
        f.raise("web", 2, Some("a")).await.unwrap();
        let c = Clusters::new(f.clusters());
        let first = ClustersKept {
            cluster: Some(0xa),
            retired: vec![],
        };
        let kept = std::cell::RefCell::new(None);
        let keep = |k: ClustersKept| *kept.borrow_mut() = Some(k);
        assert_eq!(c.take(Some(0xa), 17, keep), Ok(()));
        assert_eq!(kept.take(), Some(first), "a first cluster");
        c.take(Some(0xb), 3, |moved| f.moved(moved)).unwrap();
        f.raise("web", 2, Some("a")).await.unwrap();
        drop(f);
        let f = Fence::open(dir.path(), "fe1", &groups).unwrap();
        let c = Clusters::new(f.clusters());
        assert_eq!(
            c.refusal(Some(0xa)).as_deref(),
            Some("of etcd cluster a, which this frontend left for etcd cluster b: a deposed leader's order")
        );
        assert_eq!(c.take(Some(0xb), 3, |_| panic!("no move")), Ok(()));
        let older: super::super::file::File =
            serde_json::from_str(r#"{"frontend": "fe1", "groups": {}}"#).unwrap();
        assert_eq!(older.clusters, ClustersKept::default());
    }
}
