//! A persisted runbook ([`Runbook`]): its kind, the steps it runs for that
//! kind ([`StepName::for_kind`]) and where each of them is.

use serde::{Deserialize, Serialize};
use warden_proto::agent::JournalMark;

/// The kind of a runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunbookKind {
    Failover,
    Failback,
    /// Planned move of a healthy pair (`warden switchover`): the failback cut-over.
    Switchover,
    /// `warden resync`: replication from the active site (`from`) was
    /// paused (a failover, a new store); the standby (`to`) is resynced
    /// from it and replication resumes. Users stay where they are.
    Resync,
}

impl RunbookKind {
    /// Whether the runbook moves users to `to` (every kind but a resync in
    /// place, which keeps them on `from`, its switch routing the same site
    /// again at the new epoch).
    pub fn moves_users(self) -> bool {
        self != RunbookKind::Resync
    }
}

/// Runbook steps, in order of execution for each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    /// Record the decision and the evidence.
    Decide,
    /// Demote the old active site / run the fence command.
    Fence,
    /// Stop replication into the new active site.
    StopReplication,
    /// Resync new ← old (failback; no-op without a replication plan).
    Resync,
    /// Demote the old active site so writes stop (failback cut-over).
    Demote,
    /// Final delta pass and verification at the returning site (after Demote).
    FinalSync,
    /// Promote the new active site and wait for its checks.
    Promote,
    /// Move traffic with the group's strategy.
    Switch,
    /// Observe the new routing and probe end to end.
    Verify,
    /// Start replication from the new active site.
    StartReplication,
}

impl StepName {
    pub fn for_kind(kind: RunbookKind) -> &'static [StepName] {
        use StepName::*;
        match kind {
            RunbookKind::Failover => &[Decide, Fence, StopReplication, Promote, Switch, Verify],
            RunbookKind::Failback | RunbookKind::Switchover => &[
                Decide,
                Resync,
                Demote,
                FinalSync,
                Promote,
                Switch,
                Verify,
                StartReplication,
            ],
            // The switch routes the active site again at the new epoch
            // (only the fence moves): older orders are void there too.
            RunbookKind::Resync => &[Decide, Resync, Switch, StartReplication],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: StepName,
    pub status: StepStatus,
    #[serde(default)]
    pub started_unix_ms: Option<u64>,
    #[serde(default)]
    pub finished_unix_ms: Option<u64>,
    /// How many times the step was started (more than 1 after a resume or retry).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub detail: String,
    /// Fields of a newer version, kept ([`super::Unknown`]).
    #[serde(flatten)]
    pub unknown: super::Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunbookStatus {
    Running,
    Succeeded,
    Failed,
}

/// A persisted runbook: the steps and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runbook {
    pub id: u64,
    pub group: String,
    pub kind: RunbookKind,
    pub from: String,
    pub to: String,
    pub epoch: u64,
    /// Who started it: "detector", "operator", "failback".
    pub trigger: String,
    pub status: RunbookStatus,
    pub steps: Vec<StepRecord>,
    pub started_unix_ms: u64,
    #[serde(default)]
    pub finished_unix_ms: Option<u64>,
    /// First failing evidence of the incident (failover) or the decision time.
    pub incident_started_unix_ms: u64,
    /// Incident start → verified switch.
    #[serde(default)]
    pub rto_ms: Option<u64>,
    /// A failover: the writes at risk when it was decided, as far as the
    /// orchestrator knew — the replication lag toward the target the old
    /// active site last reported plus the time since that report. `None`:
    /// no replication plan, replication paused (what was outstanding when
    /// it paused is not known), or no lag toward the target reported. A failback or switchover loses nothing by construction (its
    /// final pass is verified before users move), so it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_ms: Option<u64>,
    /// How many times an orchestrator process resumed it.
    #[serde(default)]
    pub resumes: u32,
    /// A failback/switchover that failed before the switch and left traffic,
    /// writes and the active site as they were (rolled back).
    #[serde(default)]
    pub aborted: bool,
    /// Failback/switchover: the mark of the change journal the old active
    /// site started before the resync (its demote answers with what
    /// changed since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<super::Stored<JournalMark>>,
    /// The names that demote said changed: the final pass covers only
    /// them. `None`: a full final pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// A switchover whose target was the active site's replication target
    /// when it began: its differences are stale copies, not divergent writes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
    /// A failback/switchover given up before its cut-over because the
    /// site users are on (`from`) was confirmed down meanwhile: not a
    /// failure of the move itself (no failback retry is counted), and the
    /// failover decision follows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preempted: bool,
    /// The switch failed after it may have reached part of the routing
    /// layer (some frontends took the route, or the layer could not be
    /// read to tell), or a failover's switch failed after its promote:
    /// `to` is where users are or go, so it stays the active site (never
    /// both sites promoted, never users on a site that was demoted) and
    /// reconciliation completes the route.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolled_forward: bool,
    /// A failback/switchover whose failure is recorded and whose rollback
    /// has not ended: an orchestrator that resumes it (after a crash, or as
    /// the next leader) finishes the rollback — never the cut-over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolling_back: bool,
    /// The rollback decided to put users back on the old site (the switch
    /// reached none of the routing layer, or never began) and recorded it
    /// before it undid anything: a rollback resumed after a crash or by
    /// the next leader finishes going back, whatever the routing layer
    /// reads then — part of it may have taken the route back, a frontend
    /// restarted empty or unreachable; carrying the move forward then
    /// would name a site active that the first attempt demoted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolling_back_to_old: bool,
    /// Raised by the engine before each write of the record: a store never
    /// puts a record over a stored one of a higher revision (the group
    /// writer's retry of a decision, on a full disk, over a step the
    /// runbook recorded from memory since).
    #[serde(default)]
    pub revision: u64,
    /// Fields of a newer version, kept ([`super::Unknown`]).
    #[serde(flatten)]
    pub unknown: super::Unknown,
}

impl Runbook {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        group: &str,
        kind: RunbookKind,
        from: &str,
        to: &str,
        epoch: u64,
        trigger: &str,
        now: u64,
        incident: u64,
    ) -> Self {
        Runbook {
            id,
            group: group.to_string(),
            kind,
            from: from.to_string(),
            to: to.to_string(),
            epoch,
            trigger: trigger.to_string(),
            status: RunbookStatus::Running,
            steps: StepName::for_kind(kind)
                .iter()
                .map(|&name| StepRecord {
                    name,
                    status: StepStatus::Pending,
                    started_unix_ms: None,
                    finished_unix_ms: None,
                    attempts: 0,
                    detail: String::new(),
                    unknown: Default::default(),
                })
                .collect(),
            started_unix_ms: now,
            finished_unix_ms: None,
            incident_started_unix_ms: incident,
            rto_ms: None,
            rpo_ms: None,
            resumes: 0,
            aborted: false,
            journal: None,
            changed: None,
            replica: false,
            preempted: false,
            rolled_forward: false,
            rolling_back: false,
            rolling_back_to_old: false,
            revision: 0,
            unknown: Default::default(),
        }
    }

    /// Whether a stored record (`stored`, its JSON) is of a higher revision
    /// than this one, which then must not be written over it. A record that
    /// does not say (or does not decode) is older.
    pub fn older_than_stored(&self, stored: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Revision {
            #[serde(default)]
            revision: u64,
        }
        serde_json::from_slice::<Revision>(stored).is_ok_and(|r| r.revision > self.revision)
    }

    /// The site users are on once the runbook has switched: `to`, except
    /// for a resync (users stay on `from`, the active site).
    pub fn users_site(&self) -> &str {
        if self.kind.moves_users() {
            &self.to
        } else {
            &self.from
        }
    }

    /// Whether users were moved to `to`, or may have begun to be: its
    /// switch done, or rolled forward (`to` then stays the active site and
    /// reconciliation completes the route). Never for a resync in place.
    pub fn moved_users(&self) -> bool {
        self.kind.moves_users()
            && (self.rolled_forward
                || self
                    .steps
                    .iter()
                    .any(|s| s.name == StepName::Switch && s.status == StepStatus::Done))
    }

    /// Whether users are still where this runbook found them, routed as
    /// before it (its `from`, at the group's epoch before the runbook's):
    /// it runs (not rolling back) and has not begun the step that takes
    /// them off that site — a failback's or switchover's demote (writes
    /// stop there, and its hold order at the runbook's epoch fences older
    /// routes), a resync's switch (the same site at the runbook's epoch).
    /// Never for a failover: its fence cuts the old site at once, and its
    /// hold orders are in flight from the start.
    pub fn before_cut_over(&self) -> bool {
        let cut_over = match self.kind {
            RunbookKind::Failover => return false,
            RunbookKind::Failback | RunbookKind::Switchover => StepName::Demote,
            RunbookKind::Resync => StepName::Switch,
        };
        self.status == RunbookStatus::Running
            && !self.rolling_back
            && self
                .steps
                .iter()
                .take_while(|s| s.name != cut_over)
                .all(|s| matches!(s.name, StepName::Decide | StepName::Resync))
            && self
                .steps
                .iter()
                .any(|s| s.name == cut_over && s.status == StepStatus::Pending)
    }

    /// Whether the record's steps are those this version runs for its
    /// kind, in that order ([`StepName::for_kind`]). The engine runs a
    /// record's steps as stored: any other list (another version's, a
    /// damaged record) could switch users before the final pass, or skip
    /// the promote.
    pub fn steps_as_run(&self) -> bool {
        self.steps
            .iter()
            .map(|s| s.name)
            .eq(StepName::for_kind(self.kind).iter().copied())
    }

    /// Ended: not running, and not failed with its rollback still under
    /// way (a failed failback or switchover is recorded as failed before
    /// its rollback runs; it has ended once that rollback has).
    pub fn ended(&self) -> bool {
        self.status != RunbookStatus::Running && !self.rolling_back
    }

    /// Index of the first step not finished.
    pub fn next_step(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| matches!(s.status, StepStatus::Pending | StepStatus::Running))
    }
}
