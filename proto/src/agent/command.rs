//! What the orchestrator asks an agent to do ([`Command`], [`CommandKind`])
//! and what came of it ([`CommandOutcome`], each hook's [`HookOutcome`], a
//! change journal's [`JournalReport`]).

use serde::{Deserialize, Serialize};

use super::CheckResult;

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
