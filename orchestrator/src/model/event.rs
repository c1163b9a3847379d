//! What the orchestrator decided or observed ([`Event`], of an
//! [`EventKind`]) and the evidence behind it ([`EvidenceRow`]).

use serde::{Deserialize, Serialize};

use super::is_zero;

/// One row of an evidence table: what one vantage point saw of one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRow {
    pub site: String,
    /// "agent" (local checks), "heartbeat", "orchestrator" (external probe), "peer:NAME".
    pub vantage: String,
    /// "ok", "failing", "stale", "none".
    pub status: String,
    pub detail: String,
    /// Age of the evidence when the decision was made.
    #[serde(default)]
    pub age_ms: Option<u64>,
}

/// When a stored event was recorded, read from its JSON alone — what the
/// event log's retention judges by. An event written by another version
/// (a kind this one does not know, fields it does not have) still says;
/// `None`: the record is no event at all. Pruning never stops at a record
/// it cannot read whole: the log would grow for good.
pub fn recorded_at(json: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Stamp {
        time_unix_ms: u64,
    }
    serde_json::from_slice::<Stamp>(json)
        .ok()
        .map(|s| s.time_unix_ms)
}

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Started,
    SiteDown,
    SiteConfirmedDown,
    SiteRecovered,
    PathFault,
    DeadAgent,
    Unconfirmed,
    Isolated,
    IsolationEnded,
    PendingApproval,
    Approved,
    RunbookStarted,
    StepStarted,
    StepFinished,
    RunbookSucceeded,
    RunbookFailed,
    RunbookResumed,
    Reconciled,
    ReconcileFailed,
    Fencing,
    Maintenance,
    NoStandby,
    /// Something only an operator can fix (a DNS provider blocked itself).
    Alert,
    /// The operator cleared alerts.
    AlertCleared,
    /// `hybrid`: a frontend machine is down this round (frontend layer).
    FrontendDown,
    /// `hybrid`: a frontend machine is confirmed down (`fall` rounds).
    FrontendConfirmedDown,
    /// `hybrid`: a confirmed-down frontend machine is healthy again.
    FrontendRecovered,
    /// `hybrid`: the DNS name was moved to another frontend (frontend layer).
    FrontendMoved,
    /// A resync found divergent items (listed, with what was done to each).
    Divergent,
    /// The orchestrator asked a site to start or stop replicating
    /// (reconciliation). A resync's progress is in the status, not here.
    Replication,
    /// The RPO (replication lag of the active site) went over `rpo_max`, or back under it.
    RpoExceeded,
    /// A failback/switchover failed before the switch and was rolled back.
    FailbackAborted,
    /// The orchestrator took a state it did not decide (a new store adopting
    /// the routing layer, or the operator's `warden adopt-epoch`).
    Adopted,
    /// An event of a kind this version does not know, read from the store
    /// (written by another version: with etcd every node reads every
    /// node's events, and nodes are upgraded one at a time): listed with
    /// its message as `other`, never recorded here, not a kind `notify`
    /// can name.
    #[serde(other)]
    Other,
}

/// A decision or observation, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub time_unix_ms: u64,
    pub kind: EventKind,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub site: Option<String>,
    pub message: String,
    #[serde(default)]
    pub evidence: Vec<EvidenceRow>,
    #[serde(default)]
    pub runbook: Option<u64>,
    /// The epoch the event is about: its runbook's (a runbook's steps,
    /// its end), else the group's when it was recorded; none for an event
    /// of no group. A receiver of notifications orders a group's events
    /// by it and can refuse one older than the newest it acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The leader term it was recorded in (with etcd: the revision this
    /// node's leader key was created at, growing with every election;
    /// none, 0, on a local store): a notification from a deposed leader
    /// arriving late names a term below the new leader's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub term: u64,
}
