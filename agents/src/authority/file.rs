//! The authority's state file, `authority.json` in the site's `state_dir`,
//! and the `agent.site` marker beside it: reading it checked (it must name
//! this site), [`read`] for another process of the site, [`Authority::open`]
//! (a lost file told from a first start) and the whole-file write.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Authority, Clusters, GroupAuthority, Role};
use crate::error::AgentError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    site: String,
    groups: BTreeMap<String, GroupAuthority>,
    /// The highest leader term heard in an answer whose epochs were taken
    /// (`told.rs`). Absent (a first start, an older agent's file): 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    term: u64,
    /// The etcd cluster of `term` (`told.rs`). Absent (no cluster, or an
    /// older agent's file): `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<u64>,
    /// The etcd clusters this site left, oldest first: their answers are
    /// a deposed leader's. Absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retired: Vec<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The state file's name in the site's `state_dir`.
const FILE_NAME: &str = "authority.json";

/// Written beside the state file at the first start and never removed: a
/// directory that has it but no state file lost that file (its roles are
/// forgotten), while an empty one is a first start.
const MARKER_NAME: &str = "agent.site";

fn state_error(path: &Path, detail: String) -> AgentError {
    AgentError::State {
        path: path.display().to_string(),
        detail,
    }
}

/// The state file of `site` at `path`, checked; `None` when there is none.
fn read_file(path: &Path, site: &str) -> Result<Option<File>, AgentError> {
    let fail = |detail: String| state_error(path, detail);
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let file = serde_json::from_slice::<File>(&bytes).map_err(|e| {
        fail(format!(
            "unreadable ({e}); move it aside only if you know this site's role"
        ))
    })?;
    // Every file this agent writes names its site.
    if file.site.is_empty() {
        return Err(fail(
            "it names no site (edited by hand?): it cannot be known to be this \
             site's; move it aside only if you know this site's role"
                .into(),
        ));
    }
    if file.site != site {
        return Err(fail(format!(
            "it belongs to site {:?}, not {site:?}: give every site its own state_dir",
            file.site
        )));
    }
    // Kept by an older agent, which took such an order: with it, every
    // later order of the group would be refused as older, for good.
    if let Some((group, _)) = file
        .groups
        .iter()
        .find(|(_, a)| a.epoch > super::rules::FINAL_EPOCH)
    {
        return Err(fail(format!(
            "it holds an epoch for group {group} within 2^32 of the largest there is, which no \
             leader can have issued: set that group's epoch to the one `warden status` shows"
        )));
    }
    Ok(Some(file))
}

/// What the agent of `site` remembers, per group, as its state file in
/// `dir` says now: read only, for another process of the site (the rsync
/// daemon's gate). No file is an error: that state is unknown.
pub fn read(dir: &Path, site: &str) -> Result<BTreeMap<String, GroupAuthority>, AgentError> {
    let path = dir.join(FILE_NAME);
    match read_file(&path, site)? {
        Some(file) => Ok(file.groups),
        None => Err(state_error(
            &path,
            "there is none: the agent of this site has never started with this state_dir".into(),
        )),
    }
}

impl Authority {
    /// Load (or start) the state of `site` in `dir`. `groups` are the site's
    /// groups with their primary site: a group never seen before starts at
    /// epoch 0, `active` at its primary and `standby` elsewhere.
    pub fn open(dir: &Path, site: &str, groups: &[(String, String)]) -> Result<Self, AgentError> {
        let path = dir.join(FILE_NAME);
        std::fs::create_dir_all(dir)
            .map_err(|e| state_error(&path, format!("cannot create it: {e}")))?;
        // Without the state file, the marker tells a lost file (roles
        // forgotten) from a first start. Other files prove nothing: a
        // volume's lost+found, a packager's placeholder, a shared
        // directory.
        let mut forgotten = false;
        let read = read_file(&path, site)?;
        let as_read = read.as_ref().map(|f| f.groups.clone());
        let mut file = match read {
            Some(file) => file,
            None => {
                forgotten = dir.join(MARKER_NAME).exists();
                if forgotten {
                    tracing::warn!(path = %path.display(), "authority.json is missing from a state directory that is in use: this site's roles are unknown until the orchestrator says them again (a promote where it is active, a demote elsewhere); until then the rsync gate refuses pushes into it");
                }
                File::default()
            }
        };
        for (group, primary) in groups {
            file.groups
                .entry(group.clone())
                .or_insert_with(|| GroupAuthority {
                    epoch: 0,
                    role: if forgotten {
                        Role::Unknown
                    } else if primary == site {
                        Role::Active
                    } else {
                        Role::Standby
                    },
                    demoted_at: None,
                    resynced_at: None,
                    last_demote: None,
                });
        }
        let a = Authority {
            site: site.to_string(),
            path,
            groups: Mutex::new(file.groups),
            configured: groups.iter().map(|(g, _)| g.clone()).collect(),
            untold: Default::default(),
            term: AtomicU64::new(file.term),
            refused: Default::default(),
            clusters: Mutex::new(Clusters {
                cluster: file.cluster,
                retired: file.retired,
            }),
            left_cluster: Default::default(),
        };
        let saved = a.save(&a.lock());
        match saved {
            Ok(()) => {}
            // Nothing new to write (a restart): it starts with the state it
            // read, so that a site whose disk is full — often why it is
            // failed away from — can still be demoted.
            Err(e) if as_read.as_ref() == Some(&*a.lock()) => {
                warn!(path = %a.path.display(), cause = %e, "cannot rewrite the authority state: starting with the state read; orders that raise an epoch are refused until it can be written (a demote still runs)");
            }
            Err(detail) => return Err(state_error(&a.path, detail)),
        }
        let marker = dir.join(MARKER_NAME);
        warden_config::durable::mark(&marker, format!("{site}\n").as_bytes())
            .map_err(|e| state_error(&marker, format!("cannot write it: {e}")))?;
        Ok(a)
    }

    /// Writes `groups` with the term known now (the caller holds the
    /// groups' lock, under which the term changes).
    pub(super) fn save(&self, groups: &BTreeMap<String, GroupAuthority>) -> Result<(), String> {
        self.save_with(groups, self.term.load(Ordering::SeqCst), &self.clusters())
    }

    /// Writes `groups`, `term` and its `clusters` (a term raised with
    /// them, a move to another etcd cluster: `told.rs`).
    pub(super) fn save_with(
        &self,
        groups: &BTreeMap<String, GroupAuthority>,
        term: u64,
        clusters: &Clusters,
    ) -> Result<(), String> {
        let file = File {
            site: self.site.clone(),
            groups: groups.clone(),
            term,
            cluster: clusters.cluster,
            retired: clusters.retired.clone(),
        };
        let body = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        warden_config::durable::replace(&self.path, &body).map_err(|e| e.to_string())
    }
}
