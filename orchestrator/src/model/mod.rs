//! Persisted and reported state of the orchestrator: group state, runbooks,
//! events and evidence tables. These are also the JSON bodies of the `/v1`
//! read endpoints, so fields are only ever added.
//!
//! Here: a group's state ([`GroupState`], its [`Phase`] and [`Pending`]
//! failover), and what every rewritten record keeps of a newer version
//! ([`Unknown`], [`Stored`]); `runbook.rs` a runbook and its steps;
//! `event.rs` events and the evidence behind them.

mod event;
mod runbook;

pub use event::{recorded_at, Event, EventKind, EvidenceRow};
pub use runbook::{Runbook, RunbookKind, RunbookStatus, StepName, StepRecord, StepStatus};

use serde::{Deserialize, Serialize};

/// The fields of a stored record this version does not know (written by a
/// newer one), kept as read and written back with the record: a record is
/// only ever rewritten whole, and dropping them would lose the newer
/// node's state once an older node leads (a rolling upgrade with etcd).
pub type Unknown = serde_json::Map<String, serde_json::Value>;

/// A type of another crate (a wire type, a strategy's) as a stored record
/// holds it: its fields, and beside them ([`Unknown`]) those a newer
/// version wrote into it — the same keeping as the model's own records
/// (their `unknown` field), for the types the model does not own. The JSON
/// is `T`'s. A value this version makes (an agent's report, a strategy's
/// stop) has none; one read from the store keeps them while it is carried
/// as read (see where each is replaced: a new divergent list, a stop the
/// strategy no longer holds). A nested value `T` refuses (an unknown
/// variant of one of its enums) still refuses the whole record, which is
/// then set aside (`store::Unreadable`): see `service/stops.rs` for why that is
/// right for a provider's stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored<T> {
    #[serde(flatten)]
    pub known: T,
    /// Fields of a newer version, kept ([`Unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl<T> From<T> for Stored<T> {
    fn from(known: T) -> Self {
        Stored {
            known,
            unknown: Unknown::new(),
        }
    }
}

impl<T> std::ops::Deref for Stored<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.known
    }
}

/// What a group is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Traffic on the active site, nothing in progress.
    Steady,
    /// A runbook is running.
    Running,
    /// A confirmed disaster (or failback) waits for `warden approve`.
    PendingApproval,
    /// The last runbook failed; the operator decides (`warden failover`).
    Failed,
}

/// A move that waits for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub kind: RunbookKind,
    pub to: String,
    /// Why it waits: "automatic = false", "failover budget exhausted (2 in 1h)".
    pub reason: String,
    pub since_unix_ms: u64,
    /// Fields of a newer version, kept ([`Unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// Persistent state of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub name: String,
    /// The site traffic is routed to (as decided).
    pub active: String,
    /// The highest epoch decided for this group.
    pub epoch: u64,
    pub phase: Phase,
    /// Operator maintenance: no automatic decisions.
    #[serde(default)]
    pub maintenance: bool,
    /// How many times an operator changed `maintenance` (turned it on or
    /// off when it was not): an order names the change it was read at, so
    /// one sent before another operator's change (a delayed request, a
    /// command re-run from shell history) is refused, not applied over it.
    #[serde(default)]
    pub maintenance_seq: u64,
    #[serde(default)]
    pub pending: Option<Pending>,
    /// Runbook in progress, if any.
    #[serde(default)]
    pub runbook: Option<u64>,
    /// Unix ms of each automatic move, for the failover budget.
    #[serde(default)]
    pub moves_unix_ms: Vec<u64>,
    /// Unix ms of the first failing evidence of the current incident (for RTO).
    #[serde(default)]
    pub incident_started_unix_ms: Option<u64>,
    /// `hybrid` groups: the frontend the DNS name points at (as decided);
    /// `None` for other schemes.
    #[serde(default)]
    pub frontend: Option<String>,
    /// `hybrid` groups: the epoch of the last frontend-layer decision (a
    /// move of the DNS name to another frontend). Every move has an epoch
    /// of its own, above every earlier one and above the group's epoch, so
    /// the DNS marker refuses a move decided before it — a deposed leader's
    /// late write at the group's epoch — instead of letting any writer at
    /// that epoch point the name elsewhere. 0: no move decided yet (the
    /// DNS layer is at the group's epoch). See [`GroupState::dns_epoch`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frontend_epoch: u64,
    /// Groups with a replication plan: since when continuous replication
    /// from the active site is paused (a failover stopped it; the failback's
    /// resync and `start_replication` end the pause). `None`: it should run.
    #[serde(default)]
    pub replication_paused_since_unix_ms: Option<u64>,
    /// Divergent items reported by the last resync (kept until `warden clear`).
    #[serde(default)]
    pub divergent: Vec<Stored<warden_proto::agent::DivergentWire>>,
    /// Divergent items left out of this record as stored (etcd's request
    /// limit: the list was cut to fit); the site still holds them (its
    /// quarantine or the items themselves). 0 in the leader's memory.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub divergent_not_stored: u64,
    /// An aborted failback is not retried automatically before this time.
    #[serde(default)]
    pub failback_retry_unix_ms: Option<u64>,
    /// Automatic decisions are held (the group is new to the store): why.
    /// Lifted once every site of the group has reported, or by `warden approve`.
    #[serde(default)]
    pub hold: Option<String>,
    /// Failbacks rolled back in a row (for the retry back-off).
    #[serde(default)]
    pub failback_aborts: u32,
    /// Why the last failback was rolled back (numbers blanked out).
    #[serde(default)]
    pub last_failback_failure: Option<String>,
    /// Automatic failback stopped after the same failure twice: the alert.
    #[serde(default)]
    pub failback_blocked: Option<String>,
    /// The active site was placed there by a switchover (an operator's
    /// planned move away from the primary): automatic failback leaves it
    /// there, since the primary did not fail. `warden failback`, or any
    /// later move, ends it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub switched_over: bool,
    /// Stops the routing layer put on itself (a DNS provider's block after
    /// a fatal answer, its hold after `911`): given back to the strategy at
    /// start and take-over, so nothing is sent until they are lifted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_stops: Vec<Stored<warden_strategies::ProviderStop>>,
    /// Written before its adoption (DESIGN §10: a group new to the store
    /// adopts what the routing layer shows): a start that finds it so
    /// adopts the group again, rather than taking this record — the
    /// placeholder of a start that ended (a crash, a leader change) while
    /// it read the routing layer — for the group's state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopting: bool,
    /// Fields of a newer version, kept ([`Unknown`]).
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl GroupState {
    /// A group that has never moved: on `primary` at epoch 1, steady,
    /// nothing pending, held by nothing, no failback history.
    pub fn fresh(name: &str, primary: &str) -> Self {
        GroupState {
            name: name.to_string(),
            active: primary.to_string(),
            epoch: 1,
            phase: Phase::Steady,
            maintenance: false,
            maintenance_seq: 0,
            pending: None,
            runbook: None,
            moves_unix_ms: vec![],
            incident_started_unix_ms: None,
            frontend: None,
            frontend_epoch: 0,
            replication_paused_since_unix_ms: None,
            divergent: vec![],
            divergent_not_stored: 0,
            failback_retry_unix_ms: None,
            hold: None,
            failback_aborts: 0,
            last_failback_failure: None,
            failback_blocked: None,
            switched_over: false,
            provider_stops: vec![],
            adopting: false,
            unknown: Default::default(),
        }
    }

    /// The epoch every write of a `hybrid` group's DNS layer carries: its
    /// last frontend-layer decision's, or the group's when that is higher
    /// (both only grow, so neither a site-layer move nor a store from
    /// before frontend epochs ever takes the marker back).
    pub fn dns_epoch(&self) -> u64 {
        self.frontend_epoch.max(self.epoch)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
