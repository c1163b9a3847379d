//! The crate's error enum: what can stop a frontend from starting or running.

use std::io;
use std::net::SocketAddr;

/// Errors of the built-in frontend. All of them are fatal for [`crate::run`]:
/// the process should exit and be restarted once the cause is fixed (the
/// orchestrator's reconciliation then puts the routes back).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrontendError {
    /// The configuration names no such frontend, or its token cannot be loaded: fix failover.conf or the secret.
    #[error(transparent)]
    Config(#[from] warden_config::ConfigError),
    /// A group served by this frontend lacks a setting the proxy needs: fix the group's `[groups.NAME.frontend]` table.
    #[error("group {group}: {reason}")]
    Group { group: String, reason: String },
    /// A listener could not be bound (address in use, no permission, not local): free the address or change the config.
    #[error("cannot bind {listener} on {addr}: {source}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Every group needs a listening socket, and the open-file limit leaves
    /// too few descriptors for them and for clients: raise the limit.
    #[error("{groups} groups need a listening socket each, more than the open-file limit of {fd_limit} allows with room for clients; raise it (LimitNOFILE=, ulimit -n)")]
    Descriptors { groups: usize, fd_limit: u64 },
    /// The fence file (the highest epoch accepted per group) cannot be
    /// read, created or belongs to another frontend: fix it or `state_dir`.
    #[error("cannot keep the frontend's fence in {path}: {detail}; fix it or set frontends.NAME.state_dir")]
    State {
        path: std::path::PathBuf,
        detail: String,
    },
    /// The control API server stopped with an I/O error while running: restart the frontend.
    #[error("control API server failed: {0}")]
    Serve(#[source] io::Error),
    /// The control API's TLS files cannot be used: fix them.
    #[error("frontend control API TLS: {0}")]
    Tls(#[source] warden_serve::ServeError),
    /// An internal task panicked or was aborted (a bug: report it), or a proxy
    /// worker's thread or runtime could not start (out of threads or memory):
    /// restart the frontend.
    #[error("internal task failed: {0}")]
    Task(String),
}
