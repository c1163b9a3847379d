//! How traffic moves: the [`Strategy`] trait and its implementations.
//!
//! Layout:
//! - this file: the trait, its value types and the crate's error enum;
//! - [`frontend`]: the `frontend` scheme, with drivers behind [`frontend::FrontendDriver`]
//!   (`builtin` = `warden frontend`, `haproxy` = HAProxy's runtime API);
//! - [`haproxy`]: the `haproxy` driver, [`haproxy::HaproxyDriver`] (Runtime API
//!   client, epoch fence kept in an HAProxy variable, timed drains);
//! - [`dns`]: the `dns` scheme, with providers behind [`dns::DnsProvider`]
//!   (`noip`, `dyndns2`, `rfc2136`) and verification against authoritative servers;
//! - [`hybrid`]: the `hybrid` scheme, [`hybrid::HybridStrategy`]: frontends
//!   route to the active site (site layer), DNS points at the active frontend
//!   (frontend layer).
//!
//! Strategies never read files: they are built from a validated
//! `warden_config::Config` plus loaded secrets.

pub mod dns;
pub mod frontend;
pub mod haproxy;
pub mod hybrid;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A fencing token: grows with every decision to move traffic.
pub type Epoch = u64;

/// Where to send a group's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRoute {
    /// Site name (as in failover.conf).
    pub site: String,
    /// `Immediate`: a disaster, cut old connections at once. `Drain`: a planned
    /// move (failback, switchover), let old connections finish for the drain timeout.
    pub mode: SwitchMode,
}

/// How existing connections are treated on a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SwitchMode {
    #[default]
    Immediate,
    Drain,
}

/// What the routing layer says it does now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The site traffic goes to, if every element of the routing layer agrees;
    /// `None` when nothing is routed yet.
    pub site: Option<String>,
    /// The highest epoch the routing layer has accepted.
    pub epoch: Epoch,
    /// One line per element (frontend, server) that disagrees or cannot be read;
    /// empty when the layer is consistent.
    pub drift: Vec<String>,
}

/// How traffic moves for one group.
///
/// Calls are idempotent: `activate` with the same target and epoch may be
/// repeated (a resumed runbook, a reconcile) and changes nothing the second time.
#[async_trait]
pub trait Strategy: Send + Sync {
    /// Short name for events: "frontend/builtin", "dns/rfc2136", ...
    fn name(&self) -> &str;
    /// Route the group's traffic to `target`. `epoch` fences stale callers.
    async fn activate(&self, target: &SiteRoute, epoch: Epoch) -> Result<(), StrategyError>;
    /// Observe where traffic goes now, from the routing layer itself.
    async fn current(&self) -> Result<Observed, StrategyError>;
    /// Conditions only an operator can clear (a DNS provider blocked after a
    /// fatal answer, a retry hold): one line each; empty when healthy.
    fn alerts(&self) -> Vec<String> {
        Vec::new()
    }
    /// The operator fixed the cause: lift blocks and holds. Returns what was cleared.
    fn clear_alerts(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Errors of strategies. Each says whose fault it is and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// The routing layer has seen a newer decision: this orchestrator is stale. Fatal for this step; do not retry.
    #[error("refused by {element}: epoch {sent} is older than the {seen} it has seen (a newer decision exists; this orchestrator is stale)")]
    StaleEpoch {
        element: String,
        sent: Epoch,
        seen: Epoch,
    },
    /// The routing element could not be reached or timed out. Transient: retry.
    #[error("{element} unreachable: {reason}")]
    Unreachable { element: String, reason: String },
    /// The element answered something we do not understand or refused the request. Fix config or versions.
    #[error("{element} rejected the request: {reason}")]
    Rejected { element: String, reason: String },
    /// Configuration does not allow this (unknown site, unsupported driver).
    #[error("configuration: {0}")]
    Config(String),
    /// A compare-and-set was refused: the routing element no longer holds what
    /// this orchestrator last wrote (another writer, or a hand edit). A fencing
    /// event; never retried blindly.
    #[error("refused by {element}: {reason}")]
    Conflict { element: String, reason: String },
    /// The provider is blocked until an operator acts (a fatal answer such as
    /// `badauth`, or a retry hold such as `911`): no request was sent.
    #[error("{element} is blocked: {reason}")]
    Blocked { element: String, reason: String },
}

impl StrategyError {
    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StrategyError::Unreachable { .. })
    }

    /// Whether this is a fencing refusal (a newer or other writer owns the
    /// routing layer): record a fencing event, stop, do not retry.
    pub fn is_fencing(&self) -> bool {
        matches!(
            self,
            StrategyError::StaleEpoch { .. } | StrategyError::Conflict { .. }
        )
    }
}
