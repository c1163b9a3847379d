//! [`AgentError`]: everything that can go wrong in this crate, and whose move it is.

/// What can go wrong in the agent. Only the fatal variants leave [`crate::agent::run`];
/// the retryable ones are logged and retried by the loops themselves.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The site is not in the config or its token cannot be loaded: fatal, the operator fixes the config or the secret.
    #[error(transparent)]
    Config(#[from] warden_config::ConfigError),
    /// A setting cannot work (orchestrator URL that is not http(s), zero interval): fatal, the operator fixes the config.
    #[error("{key}: {reason}")]
    InvalidSetting { key: String, reason: String },
    /// The HTTP client could not be built (e.g. no TLS crypto provider installed): fatal, a bug in the binary.
    #[error("cannot build the http client: {0}")]
    Client(#[source] reqwest::Error),
    /// The orchestrator could not be reached or did not answer in time: retryable, the agent keeps trying.
    #[error("orchestrator unreachable: {0}")]
    Unreachable(String),
    /// The orchestrator answered with an error status: retryable, but 401/403 means the agent token is wrong (operator's fault).
    #[error("orchestrator answered status {status}: {message}")]
    Rejected { status: u16, message: String },
    /// The orchestrator's answer is not a valid response body: retryable; usually agent and orchestrator versions differ.
    #[error("unreadable answer from the orchestrator: {0}")]
    BadResponse(String),
    /// An agent task panicked: fatal, a bug in warden.
    #[error("agent task failed: {0}")]
    Task(String),
}
