//! The hold orders' part of a group's durable fence ([`HoldKept`]): the
//! epoch of the newest hold order taken, its place (term, seq, and the
//! etcd cluster of the term), and the
//! highest epoch whose order was withdrawn with that withdrawal's place —
//! what fences the *next* hold order (`route::hold`). Kept in
//! `fence.json` beside the group's epoch, as an optional `hold` object, so
//! that a restarted frontend still refuses a late copy, or a deposed
//! leader's order, that it refused before the restart. Not kept: the
//! order in effect (its ttl runs on this process's clock; a restarted
//! frontend has no route to hold users for, and its giver sends it again
//! if it still stands).
//!
//! Compatibility: a file without `hold` (an older frontend's) loads as no
//! hold fence; an older frontend reading a file with it ignores the field
//! (serde skips unknown fields) and drops it at its next write.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Kept;

/// What fences a group's next hold order (see the module docs); zeroes
/// are "none" (an unplaced order, no withdrawal) and are not written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HoldKept {
    /// The epoch of the newest hold order taken.
    pub(crate) epoch: u64,
    /// The place of the newest order taken at `epoch`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) term: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) seq: u64,
    /// The highest epoch whose order was withdrawn (`ttl_ms` 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) withdrawn: u64,
    /// The place of that withdrawal.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) withdrawn_term: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) withdrawn_seq: u64,
    /// The etcd clusters of those two places' terms (absent: none, or an
    /// older frontend's file): places are compared within one cluster
    /// ([`super::clusters`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cluster: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) withdrawn_cluster: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl HoldKept {
    /// Whether it fences anything beyond its epoch (which the group's kept
    /// epoch fences already): a placed order, or a withdrawal.
    pub(crate) fn fences(&self) -> bool {
        self.seq > 0 || self.withdrawn > 0
    }

    /// Why a hold fence read from the file cannot be the one a frontend
    /// wrote with the group's kept `epoch` (both of its epochs are at most
    /// that: every hold order raises the kept epoch first), if it cannot:
    /// kept, an epoch above the group's would refuse every later order.
    pub(crate) fn unlike(&self, epoch: u64) -> Option<String> {
        let highest = self.epoch.max(self.withdrawn);
        (highest > epoch).then(|| {
            format!("its hold orders' epoch {highest} is above the group's kept epoch {epoch}")
        })
    }
}

/// Take out of `groups` (read from `path`) every hold fence that cannot
/// be one a frontend wrote ([`HoldKept::unlike`]: above its group's epoch —
/// corrupt, or edited by hand), and say so: kept, it would refuse every
/// later hold order of the group. The group's epoch stands.
pub(super) fn drop_unlike(groups: &mut BTreeMap<String, Kept>, path: &Path) {
    for (group, k) in groups {
        let Some(why) = k.hold.and_then(|h| h.unlike(k.epoch)) else {
            continue;
        };
        k.hold = None;
        tracing::error!(
            path = %path.display(),
            group = %group,
            "fence.json holds a hold-order fence for this group that no frontend wrote ({why}): not kept; \
             the group's epoch is, so only late hold orders at that epoch are taken"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an older frontend's `Kept` is: it must read the new file.
    #[derive(Deserialize)]
    struct OlderKept {
        epoch: u64,
        site: Option<String>,
    }

    #[test]
    fn an_older_frontend_reads_a_group_with_a_hold_fence_and_a_newer_one_reads_without() {
        let new = r#"{"epoch": 6, "site": "b", "hold": {"epoch": 6, "term": 2, "seq": 300, "withdrawn": 6, "withdrawn_seq": 400}}"#;
        let older: OlderKept = serde_json::from_str(new).expect("an older frontend reads it");
        assert_eq!((older.epoch, older.site.as_deref()), (6, Some("b")));
        let kept: crate::fence::Kept = serde_json::from_str(new).expect("read");
        let hold = kept.hold.expect("hold fence");
        assert_eq!((hold.term, hold.seq, hold.withdrawn_term), (2, 300, 0));
        let old: crate::fence::Kept =
            serde_json::from_str(r#"{"epoch": 6}"#).expect("an older file");
        assert_eq!(old.hold, None);
    }

    #[test]
    fn a_hold_fence_above_the_groups_epoch_is_told() {
        let h = HoldKept {
            epoch: 6,
            withdrawn: 7,
            ..HoldKept::default()
        };
        assert!(h.unlike(7).is_none());
        assert!(h.unlike(6).expect("above").contains("epoch 7"));
        assert!(!HoldKept {
            epoch: 6,
            ..HoldKept::default()
        }
        .fences());
    }

    /// A hold fence is kept with its epoch and survives a reopen; the
    /// route naming its site at that epoch keeps it; a higher epoch (a
    /// route's) drops it (every order below that epoch is stale).
    #[tokio::test]
    async fn a_hold_fence_is_kept_with_its_epoch_until_a_higher_one() {
        use crate::fence::Fence;
        let dir = tempfile::tempdir().unwrap();
        let groups = vec!["web".to_string()];
        let h = HoldKept {
            epoch: 6,
            term: 2,
            seq: 300,
            withdrawn: 6,
            withdrawn_term: 2,
            withdrawn_seq: 400,
            cluster: None,
            withdrawn_cluster: None,
        };
        let f = Fence::open(dir.path(), "fe1", &groups).unwrap();
        f.keep("web", 6, None, Some(h)).await.unwrap();
        f.keep("web", 6, Some("a"), None).await.unwrap();
        drop(f);
        let f = Fence::open(dir.path(), "fe1", &groups).unwrap();
        let web = &f.kept()["web"];
        assert_eq!((web.site.as_deref(), web.hold), (Some("a"), Some(h)));
        f.keep("web", 7, Some("b"), None).await.unwrap();
        drop(f);
        let f = Fence::open(dir.path(), "fe1", &groups).unwrap();
        assert_eq!(f.kept()["web"].hold, None);

        // One no frontend wrote (above the group's epoch) is not kept.
        let file = serde_json::json!({
            "frontend": "fe1",
            "groups": { "web": { "epoch": 5, "hold": { "epoch": 9, "seq": 1 } } },
        });
        drop(f);
        std::fs::write(dir.path().join("fence.json"), file.to_string()).unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups).unwrap();
        assert_eq!(f.kept()["web"].epoch, 5);
        assert_eq!(f.kept()["web"].hold, None);
    }
}
