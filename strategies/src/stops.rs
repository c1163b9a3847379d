//! Stops a routing element put on itself — a DNS provider's block after a
//! fatal answer, its 30-minute hold after `911` — in the form the
//! orchestrator keeps in its store ([`ProviderStop`]), so that a restart, a
//! crash loop or a new etcd leader honours them instead of sending again.
//!
//! A block is kept only while the provider's configuration is the one it
//! was earned with ([`ProviderStop::config`]: a digest of the server URL,
//! the user, the hostnames and the user agent; never of the password, so
//! nothing derived from a secret reaches the store). A hold is kept until
//! its wall-clock end.

use serde::{Deserialize, Serialize};

/// What kind of stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopKind {
    /// After a fatal answer: nothing is sent until `warden clear` or a
    /// change of the provider's configuration.
    Block,
    /// After `911`/`dnserr`/HTTP 429: nothing is sent before `until_unix_ms`.
    Hold,
}

/// One stop in force, as stored with the group's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStop {
    pub kind: StopKind,
    /// What happened and what to do (the reason of `StrategyError::Blocked`).
    pub reason: String,
    /// The alert line (the reason with the group and the server).
    pub line: String,
    /// Holds: when sending is allowed again (Unix ms, wall clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_unix_ms: Option<u64>,
    /// The digest of the provider's configuration the stop was earned with.
    pub config: String,
}
