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

/// One group's replication as seen by one site's agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReplicationStatus {
    pub group: String,
    /// `source` (continuous replication to `peer` runs), `resync` (fetching
    /// from `peer`), or `idle`.
    pub role: String,
    #[serde(default)]
    pub peer: Option<String>,
    /// Epoch of the command that started the current role.
    #[serde(default)]
    pub epoch: u64,
    /// `source`: age of the oldest change not yet at the peer (the RPO if this site died now).
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// `resync`: progress of the pass that runs now.
    #[serde(default)]
    pub progress: Option<ResyncProgressWire>,
    /// `resync`: passes finished so far.
    #[serde(default)]
    pub passes: u32,
    /// The last replication error, if the last attempt failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Divergent items found by the last resync and what was done with them:
    /// one page of the full list (at most [`DIVERGENT_PAGE_ITEMS`] items and
    /// about [`DIVERGENT_PAGE_BYTES`] bytes), starting at `divergent_offset`.
    /// The agent sends the pages in turn, and one group's page per report
    /// (the groups with a list take turns; the others' statuses carry their
    /// total and digest and no item), so reports stay small whatever the
    /// lists' lengths and number; the orchestrator assembles the full list
    /// and passes over a status without items.
    #[serde(default)]
    pub divergent: Vec<DivergentWire>,
    /// How many divergent items there are in all.
    #[serde(default)]
    pub divergent_total: u64,
    /// Index of the first item of `divergent` in the full list.
    #[serde(default)]
    pub divergent_offset: u64,
    /// Changes whenever the full list changes (a hash of it).
    #[serde(default)]
    pub divergent_digest: u64,
    /// Set while the mass-delete guard (or an empty / unmounted source) holds
    /// replication: what it saw and what to do. Nothing is deleted until the
    /// operator runs `warden clear GROUP`.
    #[serde(default)]
    pub guard: Option<String>,
    /// What the last audit (a periodic full pass) found changed at the
    /// peer behind replication's back — removed, altered or added there —
    /// and sent again; `None` once an audit finds nothing.
    #[serde(default)]
    pub drift: Option<String>,
    /// Items that cannot be replicated safely (Swift names with dot segments
    /// or control characters): refused, never copied or deleted. First
    /// items only; `refused_total` counts them all.
    #[serde(default)]
    pub refused: Vec<String>,
    #[serde(default)]
    pub refused_total: u64,
}

/// Most divergent items in one report's page.
pub const DIVERGENT_PAGE_ITEMS: usize = 100;
/// About the most bytes of divergent names in one report's page.
pub const DIVERGENT_PAGE_BYTES: usize = 16 * 1024;
/// The longest name (and `moved_to`) of one divergent item: a page of one
/// item may exceed [`DIVERGENT_PAGE_BYTES`] by one such item, no more.
pub const DIVERGENT_NAME_MAX: usize = 8 * 1024;

impl DivergentWire {
    /// What the item counts for in a page's [`DIVERGENT_PAGE_BYTES`].
    pub fn page_bytes(&self) -> usize {
        self.name.len() + self.moved_to.as_ref().map_or(0, String::len) + 64
    }
}

/// Whether `items` is a page an agent cuts: at most
/// [`DIVERGENT_PAGE_ITEMS`] items within [`DIVERGENT_PAGE_BYTES`], or one
/// item alone (however long, within [`DIVERGENT_NAME_MAX`] per name).
pub fn divergent_page_fits(items: &[DivergentWire]) -> bool {
    let names_fit = items.iter().all(|d| {
        d.name.len() <= DIVERGENT_NAME_MAX
            && d.moved_to.as_ref().map_or(0, String::len) <= DIVERGENT_NAME_MAX
            && d.reason.len() <= 64
            && d.action.len() <= 64
    });
    let bytes: usize = items.iter().map(DivergentWire::page_bytes).sum();
    names_fit
        && items.len() <= DIVERGENT_PAGE_ITEMS
        && (items.len() <= 1 || bytes <= DIVERGENT_PAGE_BYTES)
}

/// Items and bytes of a resync pass: done and left.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ResyncProgressWire {
    pub items_done: u64,
    pub bytes_done: u64,
    pub items_left: u64,
    pub bytes_left: u64,
}

/// One divergent item (written at a site that died, never replicated).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DivergentWire {
    pub name: String,
    /// `not_in_manifest` or `changed_since_sync`.
    pub reason: String,
    /// `kept`, `quarantined` or `discarded`.
    pub action: String,
    #[serde(default)]
    pub moved_to: Option<String>,
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
    /// The site's service is failing from this vantage point when any endpoint fails.
    pub fn failing(&self) -> bool {
        self.results.is_empty() || self.results.iter().any(|r| !r.ok)
    }
}

/// What the orchestrator asks an agent to do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Run the site's promote hooks in order.
    Promote,
    /// Run the site's demote hooks in order (fencing).
    Demote,
    /// Start continuous replication from this site to `peer`.
    StartReplication,
    /// Stop this site's continuous replication.
    StopReplication,
    /// Failback: bring this (returning) site up to `peer` — resync passes
    /// until one is shorter than `resync_lag_max`.
    Resync,
    /// Failback cut-over, after `peer` was demoted: the final delta pass and
    /// verification that this site holds what `peer` holds.
    FinalSync,
    /// The operator cleared the group's alerts (`warden clear`): a pass held
    /// by the mass-delete guard may go ahead once.
    Clear,
    /// Failback, at the active site before the returning one resyncs: keep
    /// a journal of what changes in this group's data from now on; the
    /// outcome's `journal` carries its mark. A later demote with
    /// `journal_since` answers with the names changed since the mark, so the
    /// cut-over's final pass covers only them.
    Journal,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Promote => "promote",
            CommandKind::Demote => "demote",
            CommandKind::StartReplication => "start_replication",
            CommandKind::StopReplication => "stop_replication",
            CommandKind::Resync => "resync",
            CommandKind::FinalSync => "final_sync",
            CommandKind::Clear => "clear",
            CommandKind::Journal => "journal",
        }
    }
}

/// A command for one agent. `id` is deterministic (`group:epoch:kind`), so a
/// resumed runbook that asks again gets the first run's outcome, not a second run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub group: String,
    pub epoch: u64,
    pub kind: CommandKind,
    /// Peer site for replication commands.
    #[serde(default)]
    pub peer: Option<String>,
    /// The site the command is for; an agent refuses a command for another
    /// site, or one that names none.
    #[serde(default)]
    pub site: String,
    /// Demote at a failback's cut-over: after the hooks, answer with the
    /// names changed in the group's data since this journal mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_since: Option<JournalMark>,
    /// Final sync: the names (escaped as in manifests) the peer's journal
    /// says changed there since the resync began; the final pass may cover
    /// only them. `None`: a full final pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// Resync and final sync of a switchover: until the runbook began this
    /// site was the peer's continuous replication target, so what differs
    /// here is the peer's older versions (nobody writes at a replica): it is
    /// replaced like the peer's push would, not reported as divergent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
    /// Start of replication after `warden resync`: the peer was resynced
    /// from this site in this very runbook (what the peer wrote on its own
    /// was kept or quarantined there), so this site — active, promoted
    /// after its last demote — may push to it although it made no resync
    /// of its own since that demote.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peer_resynced: bool,
    /// Resync of `warden resync`: this site stays the peer's replication
    /// target afterwards, so what it wrote on its own cannot be kept in
    /// place (the peer's pushes would delete it): `keep` quarantines it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stays_target: bool,
    /// Clear: the hold the operator read and releases (the mass-delete
    /// guard's message as reported): the agent releases only that one, so
    /// a clear replayed or late never releases a hold nobody read. `None`
    /// (an older orchestrator): whatever is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_seen: Option<String>,
}

/// A point in one site's change journal: the journal (`id`, new for every
/// journal an agent starts) and how many changes it had recorded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalMark {
    pub id: u64,
    pub seq: u64,
}

/// What a site's change journal answers: its mark, and (to a demote with
/// `journal_since`) the names changed since that mark, or `None` with the
/// reason in `note` when it cannot say for certain (overflow, too many,
/// another journal, hard-linked files).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JournalReport {
    pub mark: JournalMark,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    #[serde(default)]
    pub note: String,
}

impl Command {
    pub fn new(group: &str, epoch: u64, kind: CommandKind) -> Self {
        Command {
            id: format!("{group}:{epoch}:{}", kind.as_str()),
            group: group.to_string(),
            epoch,
            kind,
            peer: None,
            site: String::new(),
            journal_since: None,
            changed: None,
            replica: false,
            peer_resynced: false,
            stays_target: false,
            guard_seen: None,
        }
    }

    /// The same command addressed to `site`.
    pub fn to_site(mut self, site: &str) -> Self {
        self.site = site.to_string();
        self
    }
}

/// The outcome of one command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandOutcome {
    pub id: String,
    pub ok: bool,
    /// Summary: which hook failed and why.
    #[serde(default)]
    pub detail: String,
    /// Each hook run, in order.
    #[serde(default)]
    pub hooks: Vec<HookOutcome>,
    /// A promote's local checks, run right after its hooks succeeded: the
    /// orchestrator need not wait a report interval to see them pass. Sent
    /// with the first report that carries the outcome only (a resend is no
    /// longer fresh); they count only for the promote this outcome answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<CheckResult>>,
    /// A journal command's mark, or a demote's changed names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalReport>,
    /// A resync's or final pass's items written only here and left in
    /// place (divergent, `kept`); `None` from other commands and from an
    /// agent older than the field. A resync whose site stays the peer's
    /// target must leave none (the peer's push would delete them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_in_place: Option<u64>,
}

impl CommandOutcome {
    /// A command that did not run (refused, or nothing here can run it):
    /// no hooks, no checks, `detail` says why.
    pub fn failed(id: &str, detail: impl Into<String>) -> CommandOutcome {
        CommandOutcome {
            id: id.to_string(),
            ok: false,
            detail: detail.into(),
            hooks: Vec::new(),
            checks: None,
            journal: None,
            kept_in_place: None,
        }
    }
}

/// One hook run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HookOutcome {
    pub name: String,
    pub ok: bool,
    /// Exit code, if the hook exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// "exit 0", "timed out after 30s", "cannot start: ...".
    pub detail: String,
    pub elapsed_ms: u64,
}

/// The orchestrator's answer to a report or a command poll.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReportResponse {
    /// Commands to run (the agent ignores ids it already ran or is running).
    #[serde(default)]
    pub commands: Vec<Command>,
    /// Outcome ids the orchestrator has recorded; the agent stops resending them.
    #[serde(default)]
    pub acked: Vec<String>,
    /// The current epoch of every group of the agent's site: the agent keeps
    /// the highest it has seen and refuses commands below it.
    #[serde(default)]
    pub epochs: std::collections::BTreeMap<String, u64>,
    /// Commands handed to this site and taken back since (their runbook
    /// ended, the epoch moved on, a demote superseded them): the agent
    /// does not start one it still holds, and reports it not run. Only
    /// the leader sends them; recent ones only (see the orchestrator's
    /// ledger).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<Withdrawn>,
    /// The leader term the answer was made under: with several
    /// orchestrators, the etcd revision at which the answering leader
    /// won its lease; 0 with a single orchestrator (no other leader's
    /// answer can exist). The agent keeps, per command it holds, the
    /// highest term that handed it out, and takes a withdrawal of it only
    /// from that term or a later one: a deposed leader's answer delayed in
    /// transit cannot take back a command a later leader handed out again;
    /// and a command a withdrawal took back is asked anew only by an
    /// answer of that withdrawal's term or a later one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub term: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A command taken back by the orchestrator, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Withdrawn {
    pub id: String,
    /// "runbook 12 ended", "superseded by web:5:demote", ...
    pub why: String,
}

/// The report stream: `GET` with the agent's bearer token, upgraded to a
/// WebSocket. Each text message from the agent is one [`AgentReport`],
/// taken exactly as a `POST /v1/reports` would be; the orchestrator answers
/// with a [`StreamAnswer`] only when there is news (commands, acked
/// outcomes, epochs other than the last ones it sent on this stream, or a
/// refusal), so a steady agent costs one message a report and none back.
/// The agent's WebSocket pings tell it the stream is alive.
pub const REPORT_STREAM_PATH: &str = "/v1/reports/stream";

/// What the orchestrator sends on a report stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamAnswer {
    /// The answer to the report `seq`, as `POST /v1/reports` would have it.
    Answer {
        seq: u64,
        #[serde(flatten)]
        answer: ReportResponse,
    },
    /// The report `seq` was refused with the HTTP status a `POST` would
    /// have had (400 malformed, 403 another site's, 409 replayed); the
    /// stream stays open.
    Refused {
        seq: u64,
        status: u16,
        error: String,
    },
}

/// Error body of every 4xx/5xx answer of the orchestrator and frontend APIs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_agents_outcome_has_no_fresh_checks_and_a_newer_ones_keeps_them() {
        // What an agent older than `CommandOutcome::checks` sends.
        let old = r#"{"id":"web:2:promote","ok":true,"detail":"1 hook ran",
            "hooks":[{"name":"up","ok":true,"exit_code":0,"detail":"exit 0","elapsed_ms":3}]}"#;
        let o: CommandOutcome = serde_json::from_str(old).unwrap();
        assert!(o.ok);
        assert_eq!(o.checks, None);
        // Without checks the field is left out, as an older agent would send it.
        let text = serde_json::to_string(&o).unwrap();
        assert!(!text.contains("checks"), "{text}");
        let fresh = CommandOutcome {
            checks: Some(vec![CheckResult {
                name: "web".into(),
                ok: true,
                critical: true,
                detail: "status 200".into(),
                elapsed_ms: 1,
            }]),
            ..o
        };
        let back: CommandOutcome =
            serde_json::from_str(&serde_json::to_string(&fresh).unwrap()).unwrap();
        assert_eq!(back, fresh);
        // An older orchestrator's view of a newer report: the field is ignored.
        #[derive(Deserialize)]
        struct OlderOutcome {
            id: String,
            ok: bool,
        }
        let older: OlderOutcome =
            serde_json::from_str(&serde_json::to_string(&fresh).unwrap()).unwrap();
        assert_eq!((older.id.as_str(), older.ok), ("web:2:promote", true));
    }
}
