//! What an operator's move says it was decided on (`SeenGroup`: the active
//! site and the epoch it saw), checked when the move is made: an order sent
//! after the group moved on — the failback a drill posts at the end of its
//! stay, after a real failover in between — is refused, not run against a
//! group that is no longer the one it was meant for.

use super::*;

/// The group as the operator saw it (`POST …/failover`, `…/failback` and
/// `…/switchover` bodies): every field optional, each one given must
/// match the group when the move is made.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenGroup {
    /// The active site seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The group's epoch seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

impl SeenGroup {
    /// Refused (409) when `g` is not what was seen, naming both.
    pub(super) fn check(&self, g: &GroupState, what: &str) -> Result<(), OrchestratorError> {
        let mut differs = Vec::new();
        if let Some(from) = self.from.as_ref().filter(|f| **f != g.active) {
            differs.push(format!("active site {:?}", crate::text::printable(from)));
        }
        if let Some(e) = self.epoch.filter(|e| *e != g.epoch) {
            differs.push(format!("epoch {e}"));
        }
        if differs.is_empty() {
            return Ok(());
        }
        Err(OrchestratorError::Conflict(format!(
            "the {what} was asked of group {} as seen with {}; it now runs on {} at epoch {}: \
             it moved on since, nothing was done (look at `warden status` and ask again)",
            g.name,
            differs.join(" and "),
            g.active,
            g.epoch
        )))
    }
}
