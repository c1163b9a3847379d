//! The crate's one error type: whose move it is, in words an operator can
//! act on, with no secret in it.

/// What went wrong talking to Keystone or tempauth.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenStackError {
    /// The endpoint could not be reached or did not answer in time:
    /// retryable.
    #[error("{url} unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    /// The credentials were refused (401, 403): the operator fixes them.
    #[error("{url} refused the credentials of {who} (HTTP {status}{message}): check the password, key or secret and the names")]
    Refused {
        url: String,
        who: String,
        status: u16,
        /// `: ` and the service's own words, or empty.
        message: String,
    },
    /// Another error status: retryable when 5xx, 408 or 429.
    #[error("{url} answered HTTP {status}{message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The login answered a redirect: credentials are never sent after one
    /// (the body or key would go to another host, or be dropped by the
    /// switch from POST to GET); the operator sets the URL it names.
    #[error("{url} redirects to {location}: set the auth URL to the address it names (warden sends no credentials after a redirect)")]
    Redirect { url: String, location: String },
    /// The login's password or secret could not be read again (its file or
    /// variable); retryable: a file may be between two writes of a rotation.
    #[error("{detail}")]
    Secret { detail: String },
    /// The answer was not what the API documents (no token, not JSON).
    #[error("unreadable answer from {url}: {detail}")]
    BadAnswer { url: String, detail: String },
    /// The token is not for the project the login asked for (another
    /// project, or none), or the catalog's endpoint names another
    /// project's account: whatever warden wrote with it would land in
    /// another project's account. The operator checks the names, the
    /// catalog and what answers at the auth URL.
    #[error("{url} gave a token for another project: {detail}")]
    WrongProject { url: String, detail: String },
    /// The token's catalog has no endpoint for the service where asked.
    #[error("no {service} endpoint {wanted} in the catalog {url} gave; it lists {found}")]
    NoEndpoint {
        url: String,
        service: String,
        /// e.g. `in region b for interface public`.
        wanted: String,
        /// What the catalog has for the service, e.g. `a/public, a/internal`.
        found: String,
    },
}

impl OpenStackError {
    /// Whether trying again later may succeed without the operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            OpenStackError::Unreachable { .. }
            | OpenStackError::BadAnswer { .. }
            | OpenStackError::Secret { .. } => true,
            OpenStackError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            // a region or interface the catalog lacks is a setting to fix
            OpenStackError::NoEndpoint { .. }
            | OpenStackError::WrongProject { .. }
            | OpenStackError::Refused { .. }
            | OpenStackError::Redirect { .. } => false,
        }
    }
}
