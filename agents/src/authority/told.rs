//! Whether this site's agent has heard the orchestrator's epochs since it
//! started: the `untold` marker in the site's `state_dir`, written at the
//! agent's start ([`Authority::untold`]) and removed once a leader's answer
//! carrying the group epochs was taken and its epochs are on disk
//! ([`Authority::observe`]); [`untold`] for the rsync gate.
//!
//! With three or more sites a standby that was down or cut off during a
//! failover still holds the old epoch when it comes back, and a deposed
//! site whose replication still runs (it never heard its demote) states
//! that very epoch in its push: judged by the epoch alone, the push would
//! land. While the marker is there the gate refuses every push into the
//! site; the orchestrator's first answer (within a report interval when it
//! is reachable) raises the epochs and removes it. Nothing a pusher states
//! raises an epoch or removes the marker: only the orchestrator's answers
//! do, as they are authenticated today.
//!
//! A marker that cannot be written at start is said in the log and the
//! agent starts all the same (the gate then judges by the epoch on disk,
//! as before); one that cannot be removed keeps pushes refused (the safe
//! side) until a later answer removes it.

use std::path::Path;
use std::sync::atomic::Ordering;

use tracing::{info, warn};

use super::Authority;

/// The marker's name in the site's `state_dir`.
const UNTOLD_NAME: &str = "untold";

/// Does the agent of the site whose `state_dir` is `dir` still wait for the
/// orchestrator's first answer since it started? (The rsync gate.)
pub fn untold(dir: &Path) -> bool {
    dir.join(UNTOLD_NAME).exists()
}

impl Authority {
    fn untold_path(&self) -> std::path::PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(UNTOLD_NAME)
    }

    /// At the agent's start: pushes into this site are refused until the
    /// orchestrator has said the groups' epochs (see the module docs).
    pub fn untold(&self) {
        let path = self.untold_path();
        let body = format!("{}\n", self.site);
        match warden_config::durable::mark(&path, body.as_bytes()) {
            Ok(()) => self.untold.store(true, Ordering::SeqCst),
            Err(e) => {
                warn!(path = %path.display(), cause = %e, "cannot write the marker that keeps pushes into this site refused until the orchestrator has said the groups' epochs; the rsync gate judges by the epochs on disk meanwhile")
            }
        }
    }

    /// The orchestrator's epochs are on disk (or were not newer): the
    /// marker goes, and the gate judges pushes by them again.
    pub(super) fn told(&self) {
        if !self.untold.load(Ordering::SeqCst) {
            return;
        }
        let path = self.untold_path();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %path.display(), cause = %e, "cannot remove the marker: pushes into this site stay refused");
                return;
            }
        }
        self.untold.store(false, Ordering::SeqCst);
        info!("the orchestrator's epochs are on disk: pushes into this site are judged by them");
    }
}
