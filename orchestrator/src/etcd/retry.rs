//! Retrying etcd requests: which failures are [`transient`] (a member down
//! or unreachable, no raft leader for the moment), why a request gave up
//! ([`Fail`]), and the bounded retry loop ([`retrying`]) that every call of
//! the store and of the leader loop goes through.

use std::future::Future;
use std::time::Duration;

use etcd_client::Client;

/// Whether etcd may answer if asked again: a member down or unreachable,
/// or no raft leader for the moment.
pub(crate) fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(
            format!("{:?}", s.code()).as_str(),
            "Unavailable" | "DeadlineExceeded" | "Unknown" | "Aborted"
        ),
        _ => false,
    }
}

/// Why an etcd request gave up.
#[derive(Debug)]
pub enum Fail {
    /// etcd (or the transport) said no.
    Etcd(etcd_client::Error),
    /// No answer within the limit.
    Timeout(Duration),
}

impl Fail {
    /// etcd answered that the lease does not exist (it expired).
    pub fn lease_gone(&self) -> bool {
        match self {
            Fail::Etcd(etcd_client::Error::GRpcStatus(s)) => {
                format!("{:?}", s.code()) == "NotFound" && s.message().contains("lease not found")
            }
            Fail::Etcd(etcd_client::Error::LeaseKeepAliveError(m)) => m.contains("lease not found"),
            _ => false,
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Etcd(e) => write!(f, "{e}"),
            Fail::Timeout(d) => write!(f, "no answer within {}", humantime::format_duration(*d)),
        }
    }
}

/// Run `op` until it answers, fails for good, or `limit` passes; a
/// transient failure (see [`transient`]) is tried again after 50 ms (the
/// balanced channel then picks another member).
pub(crate) async fn retrying<T, F, Fut>(
    limit: Duration,
    client: Client,
    mut op: F,
) -> Result<T, Fail>
where
    F: FnMut(Client) -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, op(client.clone())).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e))
                if transient(&e)
                    && tokio::time::Instant::now() + Duration::from_millis(50) < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(e)) => return Err(Fail::Etcd(e)),
            Err(_) => return Err(Fail::Timeout(limit)),
        }
    }
}
