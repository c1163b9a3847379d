//! The orchestrator's durable state behind the [`Store`] trait, and its
//! embedded implementation [`LocalStore`] (redb, one file under the data dir).
//!
//! This module owns the trait, [`blocking`] and what a read leaves aside
//! ([`Records`], [`Unreadable`]); `local.rs` the redb store, `mem.rs` the
//! in-memory one ([`MemStore`]); the etcd store is `crate::etcd`.

use crate::model::{Event, GroupState, Runbook};
use crate::OrchestratorError;

mod local;
mod local_file;
mod mem;

pub use local::LocalStore;
pub use mem::MemStore;

/// A stored record this version cannot read: well-formed JSON its types
/// refuse (a state, kind or step a newer version wrote during a rolling
/// upgrade). Never acted on nor written over: rewritten by this version,
/// it would lose what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The record's key: a group's name, a runbook's id.
    pub key: String,
    /// The group it is of, as far as its JSON says (`name` of a group,
    /// `group` of a runbook).
    pub group: Option<String>,
    /// The epoch it is at, as far as its JSON says.
    pub epoch: Option<u64>,
    /// Why this version cannot read it (serde's words).
    pub cause: String,
}

impl Unreadable {
    /// `bytes` (stored under `key`) when it is JSON that `T` refuses for
    /// `cause`; `None` when it is no JSON object at all (a damaged record,
    /// an error of its own).
    pub fn of(key: String, bytes: &[u8], cause: &serde_json::Error) -> Option<Unreadable> {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes).ok()?;
        let group = ["group", "name"]
            .iter()
            .find_map(|f| v.get(*f).and_then(|g| g.as_str()))
            .map(str::to_string);
        Some(Unreadable {
            key,
            group,
            epoch: v.get("epoch").and_then(|e| e.as_u64()),
            cause: cause.to_string(),
        })
    }
}

/// The records of a table: those read, and those this version cannot read.
#[derive(Debug, Clone)]
pub struct Records<T> {
    pub read: Vec<T>,
    pub unreadable: Vec<Unreadable>,
}

impl<T> Records<T> {
    /// Every record read, or an error naming the first unreadable one
    /// (`table`: "group", "runbook"; `store`: where).
    pub fn all(self, table: &str, store: &str) -> Result<Vec<T>, OrchestratorError> {
        match self.unreadable.first() {
            None => Ok(self.read),
            Some(u) => Err(OrchestratorError::store(
                format!("cannot read the {table} record {:?} in {store}", u.key),
                u.cause.clone(),
            )),
        }
    }
}

/// Durable state. Implementations must make each call atomic.
pub trait Store: Send + Sync {
    fn groups(&self) -> Result<Vec<GroupState>, OrchestratorError>;
    /// The group records, those this version cannot read set apart
    /// ([`Unreadable`]) rather than failing the whole read.
    fn groups_read(&self) -> Result<Records<GroupState>, OrchestratorError> {
        Ok(Records {
            read: self.groups()?,
            unreadable: vec![],
        })
    }
    /// The runbook records, as [`Store::groups_read`].
    fn runbooks_read(&self) -> Result<Records<Runbook>, OrchestratorError> {
        Ok(Records {
            read: self.runbooks()?,
            unreadable: vec![],
        })
    }
    /// Whether other orchestrators share this store (etcd): their configs
    /// may not be this one's (a rolling upgrade, a site added on one node
    /// first), so a record naming a site this config lacks is not this
    /// node's to correct.
    fn shared(&self) -> bool {
        false
    }
    fn put_group(&self, g: &GroupState) -> Result<(), OrchestratorError>;
    /// Write several groups; implementations should batch them.
    fn put_groups(&self, groups: &[GroupState]) -> Result<(), OrchestratorError> {
        groups.iter().try_for_each(|g| self.put_group(g))
    }
    /// Write a group and a runbook together (a decision and its runbook are one fact).
    /// The runbook as [`Store::put_runbook`] writes it.
    fn put_group_and_runbook(&self, g: &GroupState, rb: &Runbook) -> Result<(), OrchestratorError>;
    /// Write a runbook's record — not over a stored one of a higher
    /// `revision` ([`Runbook::older_than_stored`]), which is kept: with a
    /// store that may act unwritten, the group writer's retry of a decision
    /// (its runbook's first record) can come after the runbook recorded
    /// steps from memory. A store that may not act unwritten (etcd) needs
    /// no check: a runbook acts only once its decision is written, and
    /// nothing writes that record again.
    fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError>;
    fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError>;
    /// Deletes the runbook records `ids` (the retention's: finished ones
    /// only, chosen by the caller) in one transaction where the store
    /// allows (etcd: in transactions of its size limits, each guarded by
    /// the leader key); an id not stored is no error.
    fn delete_runbooks(&self, ids: &[u64]) -> Result<(), OrchestratorError>;
    fn put_event(&self, e: &Event) -> Result<(), OrchestratorError>;
    /// Write several events; implementations should make it one transaction.
    fn put_events(&self, events: &[Event]) -> Result<(), OrchestratorError> {
        events.iter().try_for_each(|e| self.put_event(e))
    }
    /// Events with id > `after`, oldest first, at most `limit`.
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError>;
    fn last_event_id(&self) -> Result<u64, OrchestratorError>;
    /// Deletes the oldest events beyond the newest `keep` and those recorded
    /// before `before_unix_ms`, at most `max` in one call; how many went.
    fn prune_events(
        &self,
        keep: usize,
        before_unix_ms: u64,
        max: usize,
    ) -> Result<usize, OrchestratorError>;
    /// Whether this process may write now (etcd: only the leader).
    fn writable(&self) -> bool {
        true
    }
    /// Where the state is, for alerts.
    fn describe(&self) -> String {
        "the state store".into()
    }
    /// A number that changes whenever a group or runbook is written, if the
    /// store can tell cheaply (a follower mirrors only when it moved).
    fn state_version(&self) -> Option<i64> {
        None
    }
    /// Whether the orchestrator may act when this store cannot write (the
    /// local file on a full disk: a failover from memory beats none). Never
    /// with etcd: there, a refused write is the loss of the licence.
    fn may_act_unwritten(&self) -> bool {
        false
    }
}

/// Run a blocking store call from async code: on a multi-thread runtime the
/// worker hands its other tasks to a new worker first (`block_in_place`),
/// so a disk commit never stalls the tasks that share the thread; on a
/// current-thread runtime (tests) it simply runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
