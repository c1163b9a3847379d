//! [`StrategyError`]: what can go wrong moving traffic, each variant saying
//! whose fault it is and what to do.

use crate::Epoch;

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
    /// The routing element already holds another decision at this very
    /// epoch (another site routed at it): another orchestrator, or an
    /// earlier leader of this one (a late order still in flight), acted
    /// at the epoch. A fencing event, not a malformed order: only a newer
    /// epoch can move that element.
    #[error("refused by {element}: another decision holds epoch {epoch} there ({reason})")]
    EpochTaken {
        element: String,
        epoch: Epoch,
        reason: String,
    },
    /// The provider is blocked until an operator acts (a fatal answer such as
    /// `badauth`, or a retry hold such as `911`): no request was sent.
    #[error("{element} is blocked: {reason}")]
    Blocked { element: String, reason: String },
    /// The caller's licence to act ended before the order left (see
    /// [`crate::gate`]): nothing was sent. Not retried: another
    /// orchestrator acts now.
    #[error("nothing sent to {element}: this orchestrator no longer holds the licence to act")]
    Unlicensed { element: String },
}

impl StrategyError {
    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StrategyError::Unreachable { .. })
    }

    /// The routing element the error is about (`None`: configuration).
    pub fn element(&self) -> Option<&str> {
        match self {
            StrategyError::StaleEpoch { element, .. }
            | StrategyError::Unreachable { element, .. }
            | StrategyError::Rejected { element, .. }
            | StrategyError::Conflict { element, .. }
            | StrategyError::EpochTaken { element, .. }
            | StrategyError::Blocked { element, .. }
            | StrategyError::Unlicensed { element } => Some(element),
            StrategyError::Config(_) => None,
        }
    }

    /// Whether this is a fencing refusal (a newer or other writer owns the
    /// routing layer): record a fencing event, stop, do not retry.
    pub fn is_fencing(&self) -> bool {
        matches!(
            self,
            StrategyError::StaleEpoch { .. }
                | StrategyError::Conflict { .. }
                | StrategyError::EpochTaken { .. }
        )
    }
}
