//! [`KeptLists`]: each group's divergent list — what the returning site's
//! resync passes quarantined, discarded or kept — kept on disk as it
//! grows (`divergent.json` in the state directory: group → items), and
//! read back by the agent's next process. The list reaches the
//! orchestrator page by page, one per report; an agent killed after a pass
//! acted on items but before every page got through (SIGKILL, the OOM
//! killer, a reboot) left an empty list: no `divergent` event, and under
//! `discard` no trace of what was deleted but the agent's log. The next
//! process now reports the list as the one before would have, until a
//! resync of another epoch (another failback) starts a new one — the same
//! resync handed out again to the new process (the orchestrator still
//! waiting for it) adds to the list, never clears it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing::warn;

use super::lock;
use crate::replicate::DivergentItem;

/// The divergent list of each group that has one, kept on disk.
#[derive(Debug)]
pub(super) struct KeptLists {
    path: std::path::PathBuf,
    kept: Mutex<BTreeMap<String, Kept>>,
}

/// One group's list and the epoch of the resync that made it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Kept {
    epoch: u64,
    items: Vec<DivergentItem>,
}

impl KeptLists {
    /// What `state_dir` holds (nothing when the file is missing or
    /// unreadable: said at warn).
    pub(super) fn open(state_dir: &std::path::Path) -> Self {
        let path = state_dir.join("divergent.json");
        let kept = super::kept_file::load(&path, "the divergent lists");
        KeptLists {
            path,
            kept: Mutex::new(kept),
        }
    }

    /// `group`'s list as last kept.
    pub(super) fn get(&self, group: &str) -> Vec<DivergentItem> {
        lock(&self.kept)
            .get(group)
            .map(|k| k.items.clone())
            .unwrap_or_default()
    }

    /// The epoch of the resync that made `group`'s list, if it has one.
    pub(super) fn epoch_of(&self, group: &str) -> Option<u64> {
        lock(&self.kept).get(group).map(|k| k.epoch)
    }

    /// Keeps `items` as `group`'s list, made by a resync at `epoch` (none:
    /// forgotten), on disk before it returns.
    pub(super) fn set(&self, group: &str, epoch: u64, items: &[DivergentItem]) {
        let mut kept = lock(&self.kept);
        let changed = match kept.get(group) {
            Some(old) => old.epoch != epoch || old.items.as_slice() != items,
            None => !items.is_empty(),
        };
        if !changed {
            return;
        }
        if items.is_empty() {
            kept.remove(group);
        } else {
            kept.insert(
                group.to_string(),
                Kept {
                    epoch,
                    items: items.to_vec(),
                },
            );
        }
        let written = super::kept_file::save(&self.path, &*kept);
        if let Err(e) = written {
            warn!(path = %self.path.display(), cause = %e, "cannot keep the divergent lists on disk: an agent restarted now would report none");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::DivergentReason;

    fn item(name: &str, action: &str) -> DivergentItem {
        DivergentItem {
            name: name.into(),
            reason: DivergentReason::NotInManifest,
            action: action.into(),
            moved_to: None,
        }
    }

    #[test]
    fn a_list_kept_is_read_back_by_the_next_process_until_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let lists = KeptLists::open(dir.path());
        assert!(lists.get("web").is_empty());
        let items = vec![item("a.txt", "discarded"), item("b.txt", "quarantined")];
        lists.set("web", 7, &items);
        drop(lists);
        let next = KeptLists::open(dir.path());
        assert_eq!(next.get("web"), items, "the next process reports it");
        assert_eq!(next.epoch_of("web"), Some(7));
        assert!(next.get("db").is_empty());
        next.set("web", 7, &[]);
        assert!(
            !dir.path().join("divergent.json").exists(),
            "none left: no file"
        );
        assert!(KeptLists::open(dir.path()).get("web").is_empty());
    }
}
