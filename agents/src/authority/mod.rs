//! The agent's memory of authority (DESIGN §10): per group, the highest epoch
//! it has seen, its last role and whether it may push replicated data, kept
//! on disk so that a restart forgets nothing.
//!
//! Rules, applied before any command runs:
//! - a command for another site, or for a group this site is not in, is refused;
//! - a command below the highest epoch seen is refused (the outcome says so);
//!   the highest epoch is raised, and written to disk, *before* a command runs,
//!   so a replayed older id is refused even after a crash mid-command;
//! - a demote at the highest epoch or above always runs, even when its epoch
//!   cannot be written first (a full disk): its epoch is then written with
//!   its record, when it succeeded;
//! - a site that was demoted (failed away from) never pushes data again until
//!   a resync for a newer epoch than that demote has completed here
//!   (`start_replication` is refused until then).
//!
//! The state file is written whole to a temporary file, fsync'd, and renamed.
//! An agent that cannot write it refuses to start when it has something new
//! to write (a first start, a group added, roles forgotten); a restart with
//! nothing new (a full disk) starts with the state it read, so that the
//! site can still be demoted.
//! A lost state file is told from a first start by the agent's `agent.site`
//! marker, written beside it at the first start and never removed: with the
//! marker and without the file, every group's role starts as
//! [`Role::Unknown`], never as the configured one.
//!
//! Here: the remembered state ([`Role`], [`GroupAuthority`]) and
//! [`Authority`] with its reads; `file.rs` the state file, its marker and
//! [`read`]; `rules.rs` the rules applied before and after commands;
//! `told.rs` whether the orchestrator has said the epochs since the agent
//! started ([`untold`]: the rsync gate takes no push until it has), and
//! the highest leader term heard, below which an answer is a deposed
//! orchestrator's ([`Authority::answered`]), with its etcd cluster and
//! the clusters this site left ([`Clusters`]).

mod file;
mod rules;
#[cfg(test)]
mod tests;
mod told;

pub use file::read;
pub use told::{untold, Heard};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::wire::AuthorityWire;

/// A site's last role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Active,
    Standby,
    /// Forgotten: the state file was lost from a state directory in use
    /// (a restored disk, a file removed by hand). The site may have been
    /// made active or failed away from since the config was written, so
    /// the configured role proves nothing: the gate refuses pushes into
    /// it, and the orchestrator says again what it is (a promote where it
    /// is the active site, a demote elsewhere).
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
            Role::Unknown => "unknown",
        }
    }
}

/// What the agent remembers of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAuthority {
    pub epoch: u64,
    pub role: Role,
    /// Epoch of the last successful demote.
    #[serde(default)]
    pub demoted_at: Option<u64>,
    /// Epoch of the last completed resync (final sync) at this site.
    #[serde(default)]
    pub resynced_at: Option<u64>,
    /// The last demote, undoable: a promote at its very epoch is a runbook
    /// rolled back before its switch (`promote_back`), when no other site
    /// took users' writes, and restores what the demote replaced. Absent
    /// (a file of an older agent): nothing is restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_demote: Option<DemoteMark>,
}

/// A demote at `epoch`, and the `demoted_at` it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoteMark {
    pub epoch: u64,
    pub replaced: Option<u64>,
}

impl GroupAuthority {
    /// A known role, and no demote since the last resync for a newer epoch.
    pub fn may_push(&self) -> bool {
        if self.role == Role::Unknown {
            return false;
        }
        match self.demoted_at {
            None => true,
            Some(d) => self.resynced_at.is_some_and(|r| r > d),
        }
    }
}

/// The agent's authority state, shared by its tasks.
#[derive(Debug)]
pub struct Authority {
    site: String,
    path: PathBuf,
    groups: Mutex<BTreeMap<String, GroupAuthority>>,
    /// The groups this site is in by its config now. `groups` also keeps
    /// those it was taken out of (their epochs stay remembered, should it
    /// be put back), but commands for them are refused.
    configured: BTreeSet<String>,
    /// This process wrote the `untold` marker and has not removed it yet
    /// (`told.rs`).
    untold: AtomicBool,
    /// The highest leader term heard in an answer whose epochs were taken,
    /// as on disk (`told.rs`); changed only under the `groups` lock.
    term: AtomicU64,
    /// The last refusal said at warn level (`told.rs`): the same one
    /// again, every report interval, goes to debug.
    refused: Mutex<Option<String>>,
    /// The etcd cluster of `term`, and the clusters left, as on disk
    /// (`told.rs`); changed only under the `groups` lock.
    clusters: Mutex<Clusters>,
    /// A cluster was left (the orchestrators moved) since the command
    /// book last heard of it ([`Authority::take_cluster_left`]).
    left_cluster: AtomicBool,
}

/// The etcd cluster whose leader term the agent keeps (`None`: none — a
/// single orchestrator's, an older orchestrator's, or none heard yet) and
/// the clusters this site left, the last
/// [`warden_proto::cluster::RETIRED_KEPT`]: an answer of one of them is a
/// deposed leader's (`told.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clusters {
    pub cluster: Option<u64>,
    pub retired: Vec<u64>,
}

impl Authority {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, GroupAuthority>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the agent reports.
    pub fn wire(&self) -> Vec<AuthorityWire> {
        self.lock()
            .iter()
            .map(|(group, a)| AuthorityWire {
                group: group.clone(),
                epoch: a.epoch,
                role: a.role.as_str().to_string(),
                demoted_at: a.demoted_at,
                may_push: a.may_push(),
                unfit: None,
            })
            .collect()
    }

    /// The highest leader term whose answer was taken, as on disk
    /// (`told.rs`): reported, so the leader can say when its own term is
    /// below it and its orders are refused here.
    pub fn term(&self) -> u64 {
        self.term.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The etcd cluster of [`Authority::term`] (`None`: no cluster),
    /// reported with it.
    pub fn cluster(&self) -> Option<u64> {
        self.clusters_lock().cluster
    }

    /// The etcd clusters this site left (refused whatever their term),
    /// reported so that a leader of one can say it is refused.
    pub fn left_clusters(&self) -> Vec<u64> {
        self.clusters_lock().retired.clone()
    }

    fn clusters_lock(&self) -> std::sync::MutexGuard<'_, Clusters> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept cluster and those left, as now.
    fn clusters(&self) -> Clusters {
        self.clusters_lock().clone()
    }

    /// One group's state (tests, status).
    pub fn get(&self, group: &str) -> Option<GroupAuthority> {
        self.lock().get(group).cloned()
    }
}
