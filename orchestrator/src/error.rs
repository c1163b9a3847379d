//! [`OrchestratorError`]: everything that can go wrong in the orchestrator
//! crate, each variant saying whose move it is; sources are kept.

use std::net::SocketAddr;

use warden_config::ConfigError;

/// Errors of the orchestrator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// Configuration or a secret is wrong: fix the file, then restart.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The service cannot be assembled from this config (e.g. a scheme not built yet).
    #[error("{0}")]
    Setup(String),
    /// A group's strategy cannot be built from this config (a secret, a
    /// driver setting): fix the config, then restart.
    #[error("group {group}: {source}")]
    Strategy {
        group: String,
        #[source]
        source: warden_strategies::StrategyError,
    },
    /// The state store failed: check the data dir's disk and permissions.
    #[error("state store: {context}: {source}")]
    Store {
        /// What was being done ("cannot open /var/lib/warden/warden.redb").
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another process runs as this node on this host (it holds the node's
    /// run directory): stop one of them; nothing was ended or campaigned.
    #[error(
        "another orchestrator runs as node {node} on this host ({holder} holds {lock}): \
         one process per node; this one ends nothing and exits"
    )]
    NodeRunning {
        node: String,
        lock: String,
        holder: String,
    },
    /// This orchestrator does not (or no longer) hold the leader lease: its
    /// write was refused, by etcd itself when another node leads.
    #[error("not the leader: {0}")]
    Deposed(String),
    /// The API could not bind its address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A request named something that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// A request conflicts with the current state (e.g. a runbook is running).
    #[error("{0}")]
    Conflict(String),
}

impl OrchestratorError {
    /// A store failure while doing `context`.
    pub fn store(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        OrchestratorError::Store {
            context: context.into(),
            source: source.into(),
        }
    }
}
