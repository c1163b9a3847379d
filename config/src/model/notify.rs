//! `[[orchestrator.notify]]`: where the orchestrator tells people about
//! state changes (DESIGN §8, "notify commands and webhooks on every state
//! change"): a webhook (an HTTP POST of the event as JSON, signed with a
//! secret) or a command (the event as JSON on its standard input).

use std::time::Duration;

use serde::Deserialize;

use super::{duration, SecretRef};

/// Every event kind's name, as events and the API spell it (the
/// orchestrator's tests keep this list equal to its `EventKind`).
pub const EVENT_KINDS: &[&str] = &[
    "started",
    "site_down",
    "site_confirmed_down",
    "site_recovered",
    "path_fault",
    "dead_agent",
    "unconfirmed",
    "isolated",
    "isolation_ended",
    "pending_approval",
    "approved",
    "runbook_started",
    "step_started",
    "step_finished",
    "runbook_succeeded",
    "runbook_failed",
    "runbook_resumed",
    "reconciled",
    "reconcile_failed",
    "fencing",
    "maintenance",
    "no_standby",
    "alert",
    "alert_cleared",
    "frontend_down",
    "frontend_confirmed_down",
    "frontend_recovered",
    "frontend_moved",
    "divergent",
    "replication",
    "rpo_exceeded",
    "failback_aborted",
    "adopted",
];

/// The kinds sent when `kinds` is not given: every change of state an
/// operator acts on (not the per-round observations, steps and routine
/// reconciliation).
pub const DEFAULT_NOTIFY_KINDS: &[&str] = &[
    "started",
    "site_confirmed_down",
    "site_recovered",
    "dead_agent",
    "isolated",
    "isolation_ended",
    "pending_approval",
    "approved",
    "runbook_started",
    "runbook_succeeded",
    "runbook_failed",
    "runbook_resumed",
    "reconcile_failed",
    "fencing",
    "maintenance",
    "no_standby",
    "alert",
    "alert_cleared",
    "frontend_confirmed_down",
    "frontend_recovered",
    "frontend_moved",
    "divergent",
    "rpo_exceeded",
    "failback_aborted",
    "adopted",
];

/// One `[[orchestrator.notify]]` entry: exactly one of `url` or `command`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Names it in logs and metrics (`[A-Za-z0-9._-]`, 1–64, unique).
    pub name: String,
    /// A webhook: each event is POSTed here as JSON.
    #[serde(default)]
    pub url: Option<String>,
    /// A webhook's secret: the body's HMAC-SHA256 is sent in
    /// `X-Warden-Signature-256: sha256=HEX`.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// A command (argv): each event as JSON on its standard input.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The event kinds sent (`["*"]`: all); default [`DEFAULT_NOTIFY_KINDS`].
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// One delivery's time limit (a request, or a command's run).
    #[serde(
        default = "default_notify_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
    /// How long a failed delivery is retried (with backoff) before the event
    /// is given up for this notifier (said in the log and the metrics).
    #[serde(
        default = "default_notify_retry_for",
        deserialize_with = "duration::deserialize"
    )]
    pub retry_for: Duration,
}

impl NotifyConfig {
    /// Whether events of `kind` are sent.
    pub fn wants(&self, kind: &str) -> bool {
        match &self.kinds {
            Some(k) => k.iter().any(|x| x == "*" || x == kind),
            None => DEFAULT_NOTIFY_KINDS.contains(&kind),
        }
    }
}

fn default_notify_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_notify_retry_for() -> Duration {
    Duration::from_secs(600)
}
