//! [`PendingChanges`]: the container header change of each group that has
//! not landed yet (a promote's fence, a demote's removal of
//! `X-Container-Sync-To`), kept on disk so the agent's next process
//! retries it (`container_sync.rs`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing::warn;

use super::container_sync::Change;
use super::lock;

/// The header change of each group not landed yet, kept on disk
/// (`headers-pending.json` in the state directory: group → change).
#[derive(Debug)]
pub(super) struct PendingChanges {
    path: std::path::PathBuf,
    kept: Mutex<BTreeMap<String, Change>>,
}

impl PendingChanges {
    /// What `state_dir` holds (nothing when the file is missing or
    /// unreadable: said at warn).
    pub(super) fn open(state_dir: &std::path::Path) -> Self {
        let path = state_dir.join("headers-pending.json");
        let kept = super::kept_file::load(&path, "container header changes not landed");
        PendingChanges {
            path,
            kept: Mutex::new(kept),
        }
    }

    pub(super) fn all(&self) -> Vec<(String, Change)> {
        lock(&self.kept)
            .iter()
            .map(|(g, c)| (g.clone(), *c))
            .collect()
    }

    pub(super) fn keep(&self, group: &str, change: Change) {
        let mut kept = lock(&self.kept);
        kept.insert(group.to_string(), change);
        self.save(&kept);
    }

    pub(super) fn forget(&self, group: &str) {
        let mut kept = lock(&self.kept);
        if kept.remove(group).is_some() {
            self.save(&kept);
        }
    }

    /// Forgets `group`'s change if it is still `change` (a newer one kept
    /// meanwhile stays).
    pub(super) fn forget_if(&self, group: &str, change: Change) {
        let mut kept = lock(&self.kept);
        if kept.get(group) == Some(&change) {
            kept.remove(group);
            self.save(&kept);
        }
    }

    fn save(&self, kept: &BTreeMap<String, Change>) {
        if let Err(e) = super::kept_file::save(&self.path, kept) {
            warn!(path = %self.path.display(), cause = %e, "cannot keep the container header changes not landed: a restart of this agent would not retry them");
        }
    }
}
