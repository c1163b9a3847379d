//! Wire types between agents and the orchestrator: a compatibility boundary.
//!
//! Agents POST an [`AgentReport`] to `/v1/reports` and GET
//! `/v1/agents/commands?wait_ms=MS` (long-poll); both answers are a
//! [`ReportResponse`] carrying the commands waiting for that agent. An agent
//! may instead send its reports on a stream ([`REPORT_STREAM_PATH`], a
//! WebSocket: one report per text message, answered by a [`StreamAnswer`]
//! only when the answer has news). Add fields
//! only with `#[serde(default)]`; never rename or remove one. Unknown fields
//! are ignored (not refused), so an orchestrator accepts a newer agent's
//! report and an agent a newer orchestrator's answer.
//!
//! Authority (DESIGN §10): every [`Command`] names its group, epoch and target
//! site; the orchestrator tells every agent the current epoch of its groups
//! ([`ReportResponse::epochs`]) and agents report what they believe
//! ([`AgentReport::authority`]), so a site that was failed away from while
//! unreachable is found and demoted as soon as it is heard again.
//!
//! Here: the report ([`AgentReport`], what the agent believes of its
//! authority, its checks and peer probes) and [`ApiError`];
//! `replication.rs` a group's replication status and its divergent pages;
//! `command.rs` the commands and their outcomes; `answer.rs` the
//! orchestrator's answers, on a poll or on the report stream.

mod answer;
mod command;
mod replication;

pub use answer::{AnswerOrder, ReportResponse, StreamAnswer, Withdrawn, REPORT_STREAM_PATH};
pub use command::{Command, CommandKind, CommandOutcome, HookOutcome, JournalMark, JournalReport};
pub use replication::{
    divergent_page_fits, DivergentWire, ReplicationStatus, ResyncProgressWire, DIVERGENT_NAME_MAX,
    DIVERGENT_PAGE_BYTES, DIVERGENT_PAGE_ITEMS,
};

use serde::{Deserialize, Serialize};

/// One report from a site's agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentReport {
    /// The reporting site; must match the site of the bearer token.
    pub site: String,
    /// Increases with every report of one agent process (restarts reset it).
    pub seq: u64,
    /// A random id of the agent process (fresh at every start): with `seq`
    /// it lets the orchestrator refuse a replayed report.
    #[serde(default)]
    pub boot: String,
    /// Agent process start, unix ms (tells restarts apart; never used for freshness).
    #[serde(default)]
    pub started_unix_ms: u64,
    /// Results of the site's local checks.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// This agent's probes of other sites' public endpoints (peer view).
    #[serde(default)]
    pub peers: Vec<PeerProbe>,
    /// Outcomes of commands finished since the last report (repeated until acknowledged).
    #[serde(default)]
    pub outcomes: Vec<CommandOutcome>,
    /// What this site's replication is doing, per group with a replication plan.
    #[serde(default)]
    pub replication: Vec<ReplicationStatus>,
    /// Per group: the highest epoch this agent has seen and its last role
    /// (kept on disk, so it survives restarts).
    #[serde(default)]
    pub authority: Vec<AuthorityWire>,
    /// The highest leader term whose answer this agent took (kept on disk
    /// with its epochs): an answer of a lower term is taken for its acks
    /// only, its orders are not run (see [`ReportResponse::term`]). The
    /// leader compares it with its own term and says when its orders are
    /// refused so (the orchestrators' terms started over). Absent from an
    /// older agent's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_term: Option<u64>,
    /// The etcd cluster of `taken_term` ([`ReportResponse::cluster`]):
    /// `Some(None)` (`null`) when the agent keeps no cluster (a single
    /// orchestrator's term, or none heard yet). Absent (`None`) from an
    /// agent that knows no clusters (it compares terms alone). The leader
    /// says its orders are refused only when the agent's cluster is its
    /// own and the term above (or, from an agent without it, the term
    /// above).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub taken_cluster: Option<Option<u64>>,
    /// The etcd clusters the agent's site left (`retired`, see
    /// `warden_proto::cluster`): an answer of one is refused whatever its
    /// term. The leader says so when its own is among them (it is refused
    /// for good until the operator takes it out). Absent from an older
    /// agent's report, and when none was left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_clusters: Vec<u64>,
}

/// A field that is there, `null` or not: `Some` (absent: the default, `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// What one agent believes about one group: the highest epoch it has seen,
/// its last role, and whether it may push replicated data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AuthorityWire {
    pub group: String,
    /// The highest epoch seen (commands and the orchestrator's `epochs`).
    pub epoch: u64,
    /// `active` (promoted, or the configured primary never told otherwise),
    /// `standby` (demoted, or never promoted).
    pub role: String,
    /// The epoch of the demote that last fenced this site, if any; it may push
    /// data again only after a resync for a newer epoch completed here.
    #[serde(default)]
    pub demoted_at: Option<u64>,
    /// This site may push replicated data (no demote since its last resync).
    #[serde(default)]
    pub may_push: bool,
    /// Why this site cannot be promoted for the group now, if it cannot
    /// (its data volume is not mounted): a promote would be refused.
    #[serde(default)]
    pub unfit: Option<String>,
}

/// The result of one check or probe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    /// Check name from the config.
    pub name: String,
    pub ok: bool,
    /// Whether a failure counts toward "site down".
    #[serde(default)]
    pub critical: bool,
    /// Human-readable cause or status (e.g. "status 503", "connection refused").
    #[serde(default)]
    pub detail: String,
    /// How long it took, ms.
    #[serde(default)]
    pub elapsed_ms: u64,
}

/// One agent's view of another site's endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerProbe {
    /// The probed site.
    pub site: String,
    /// Each endpoint's result.
    pub results: Vec<CheckResult>,
    /// How long before the report was sent these results were taken (the
    /// agent probes its peers on a schedule of its own, so a dead peer's
    /// probe timeout never delays a report). The orchestrator dates the view
    /// that much before it received the report; absent (older agents): 0.
    #[serde(default)]
    pub age_ms: u64,
}

impl PeerProbe {
    /// The site's service is failing from this vantage point when any of
    /// its critical endpoints fails ([`service_failing`]), or none answered.
    pub fn failing(&self) -> bool {
        self.results.is_empty() || service_failing(&self.results)
    }
}

/// Whether probes of a site's endpoints say its service fails: a critical
/// one fails. A non-critical endpoint is only reported (its failure is
/// shown, never counted as the site's): else an endpoint down for
/// maintenance would be outside agreement for a site whose agent died.
pub fn service_failing(results: &[CheckResult]) -> bool {
    results.iter().any(|r| !r.ok && r.critical)
}

/// Error body of every 4xx/5xx answer of the orchestrator and frontend APIs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    pub error: String,
}
