//! `fence.json` itself, in the frontend's state directory: its form (the
//! frontend it belongs to, each group's [`Kept`] fence), its load at start
//! — a file unreadable or of another frontend refused, one lost where the
//! `fence.kept` marker says it was kept, a group fenced beyond any
//! orchestrator's epoch forgotten — and the thread of its own that writes
//! it (the latest fence handed each time, the marker with it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{hold, ClustersKept, Kept};
use crate::FrontendError;

/// The file's name in the frontend's state directory.
pub(super) const FILE_NAME: &str = "fence.json";

/// Written beside the file with its first write (and with any later one
/// that finds it gone: a wiped directory), never removed: the file missing
/// where the marker is means the fence was lost (not a first start).
const MARKER_NAME: &str = "fence.kept";

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct File {
    /// The `[frontends.NAME]` it belongs to.
    pub(super) frontend: String,
    /// Highest epoch accepted, per group.
    pub(super) groups: BTreeMap<String, Kept>,
    /// The etcd cluster of the hold orders' terms, and those left
    /// ([`super::clusters`]): "cluster" and "retired" beside the groups.
    #[serde(flatten)]
    pub(super) clusters: ClustersKept,
}

/// The next fence to write (the latest version of it: one write covers
/// every earlier version), handed from [`super::Fence::keep`] to the writer thread.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) next: Mutex<Next>,
    pub(super) ready: Condvar,
}

#[derive(Default)]
pub(super) struct Next {
    /// The version and its body, until the writer takes it.
    pub(super) body: Option<(u64, Vec<u8>)>,
    /// The fence is dropped: the writer thread ends.
    pub(super) closed: bool,
}

/// The writer thread's last write: of which version, and its error.
#[derive(Debug, Clone, Default)]
pub(super) struct Saved {
    pub(super) version: u64,
    pub(super) error: Option<String>,
}

/// Load the fence of frontend `name`, serving `groups`, from `dir` (made
/// when missing): the file's path, the fence kept there, and the groups
/// whose fence was lost (see [`super::Fence::lost`]).
pub(super) fn load<'a>(
    dir: &Path,
    name: &str,
    groups: impl IntoIterator<Item = &'a String>,
) -> Result<(PathBuf, File, BTreeSet<String>), FrontendError> {
    let path = dir.join(FILE_NAME);
    let fail = |detail: String| FrontendError::State {
        path: path.clone(),
        detail,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let mut file = match std::fs::read(&path) {
        Ok(bytes) => {
            let f: File = serde_json::from_slice(&bytes).map_err(|e| {
                fail(format!(
                    "unreadable ({e}); it holds the highest epoch this frontend accepted per group: \
                     restore it, or remove it only when no orchestrator older than the current one can reach this frontend"
                ))
            })?;
            if f.frontend != name {
                return Err(fail(format!(
                    "it belongs to frontend {:?}, not {name:?}: give every frontend its own state_dir",
                    f.frontend
                )));
            }
            f
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => File {
            frontend: name.to_string(),
            groups: BTreeMap::new(),
            clusters: ClustersKept::default(),
        },
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
    };
    let groups: BTreeSet<String> = groups.into_iter().cloned().collect();
    let gone = dir.join(MARKER_NAME).exists() && !path.exists();
    let mut lost: BTreeSet<String> = if gone {
        groups.clone()
    } else {
        BTreeSet::new()
    };
    if gone && !lost.is_empty() {
        tracing::error!(path = %path.display(), groups = ?lost, "fence.json is gone from a state_dir that held it: the highest epochs this frontend accepted are forgotten, so the first route of any epoch is taken (a deposed orchestrator's late one too) until the orchestrator routes again; warden_frontend_fence_lost is 1 until an order is kept for every group");
    }
    hold::drop_unlike(&mut file.groups, &path);
    lost.extend(
        beyond_reach(&mut file, &path)
            .into_iter()
            .filter(|g| groups.contains(g)),
    );
    Ok((path, file, lost))
}

/// Take out of `file` (read from `path`) every group fenced above
/// [`warden_proto::EPOCH_CEILING`], and name them. No orchestrator decides
/// such an epoch (the control API refuses an order at one, 400), so the
/// entry is forged, corrupt, or an older frontend's that took such an
/// order; kept, it would refuse every later order of the group as stale
/// until someone edited the file. What the group had accepted before it
/// is gone (the entry holds one epoch), so the group is as if its fence
/// were lost: nothing refused until the orchestrator routes it again, and
/// said so. The site it names, named at that epoch by no orchestrator,
/// goes with it. The file keeps the entry until the next write.
fn beyond_reach(file: &mut File, path: &Path) -> Vec<String> {
    let beyond: Vec<(String, u64)> = file
        .groups
        .iter()
        .filter(|(_, k)| k.epoch > warden_proto::EPOCH_CEILING)
        .map(|(g, k)| (g.clone(), k.epoch))
        .collect();
    for (group, epoch) in &beyond {
        file.groups.remove(group);
        tracing::error!(
            path = %path.display(),
            group = %group,
            epoch,
            "fence.json holds an epoch for this group that no orchestrator decides (within 2^32 of the largest there is: \
             forged, corrupt, or kept by an older frontend): not kept, or every later order of the group would be refused as stale; \
             the group's fence is forgotten as if fence.json were lost, so the first route of any epoch is taken until the orchestrator \
             routes it again; warden_frontend_fence_lost is 1 until an order is kept for it"
        );
    }
    beyond.into_iter().map(|(g, _)| g).collect()
}

/// The writer thread: write the latest fence handed to it, one write at a
/// time, and say how it went, until the fence is dropped. A write that
/// hangs holds this thread only.
pub(super) fn write_loop(queue: &Queue, path: &Path, saved: &watch::Sender<Saved>) {
    loop {
        let (version, body) = {
            let mut next = queue.next.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(b) = next.body.take() {
                    break b;
                }
                if next.closed {
                    return;
                }
                next = queue.ready.wait(next).unwrap_or_else(|p| p.into_inner());
            }
        };
        let error = write(path, &body).err().map(|e| e.to_string());
        saved.send_replace(Saved { version, error });
    }
}

/// Write the fence, then the marker unless it is there: every time, not
/// only the first — a directory wiped while the frontend runs is made
/// again with both, so a fence.json lost later is still told from a
/// first start (the marker's check is one `stat`).
fn write(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    warden_config::durable::replace(path, body)?;
    warden_config::durable::mark(&path.with_file_name(MARKER_NAME), b"")
}

#[cfg(test)]
mod tests {
    use super::super::tests::groups;
    use super::super::Fence;
    use super::*;

    /// A first start (no marker) is not a loss; a fence file gone where
    /// one was kept is, until the next order is kept.
    #[tokio::test]
    async fn a_lost_fence_file_is_told_from_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(!f.lost(), "a first start");
        drop(f);
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(!f.lost(), "no order kept yet: nothing to lose");
        f.raise("web", 3, Some("a")).await.unwrap();
        drop(f);
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        let f = Fence::open(dir.path(), "fe1", &groups()).unwrap();
        assert!(f.lost());
        assert!(f.kept().is_empty(), "nothing to refuse with");
        f.raise("web", 4, Some("b")).await.unwrap();
        assert!(f.lost(), "db's epochs are still forgotten");
        f.raise("db", 2, None).await.unwrap();
        assert!(!f.lost(), "kept again for every group");
    }

    /// A state_dir wiped while the frontend runs (fence and marker gone)
    /// gets both back with the next write: a fence.json lost after that
    /// is still told from a first start. Before, only the file came back,
    /// and a later loss of it was taken for a first start — every epoch
    /// forgotten, and nothing said.
    #[tokio::test]
    async fn a_marker_wiped_with_its_directory_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("fe");
        let f = Fence::open(&sub, "fe1", &groups()).unwrap();
        f.raise("web", 3, Some("a")).await.unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
        f.raise("web", 4, Some("b")).await.unwrap();
        drop(f);
        std::fs::remove_file(sub.join(FILE_NAME)).unwrap();
        let f = Fence::open(&sub, "fe1", &groups()).unwrap();
        assert!(f.lost(), "fence.json was kept, then lost");
    }

    #[test]
    fn a_garbage_or_foreign_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"{\"frontend\": \"fe1\", \"groups\": {\"web\": 6").unwrap();
        let e = Fence::open(dir.path(), "fe1", &groups())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("unreadable"), "{e}");
        assert!(path.exists(), "kept for the operator");
        Fence::open(dir.path(), "fe2", &groups())
            .err()
            .expect("refused");
        std::fs::write(&path, b"{\"frontend\": \"fe2\", \"groups\": {}}").unwrap();
        let e = Fence::open(dir.path(), "fe1", &groups())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("belongs to frontend \"fe2\""), "{e}");
    }
}
