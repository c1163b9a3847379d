//! Who is calling: the bearer token names an agent (its site), an operator
//! (a name for the events) or the read-only reader; an unknown token is
//! refused before anything reads the body, and with client certificates an
//! agent's must name its site. The check finds the caller once
//! ([`KnownTokenFirst`], a [`Caller`] for the request); which role may
//! call what is each handler's extractor: [`AgentSite`], [`Operator`] or
//! [`Reader`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::Response;
use tower_http::validate_request::ValidateRequest;

use super::err;
use crate::service::Shared;

/// The token of an `Authorization: Bearer <token>` header (the scheme's
/// case does not matter: RFC 9110 §11.1).
fn bearer(h: &HeaderMap) -> Option<&str> {
    let (scheme, token) = h
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn missing_token(s: &Shared) -> Response {
    refused(
        s,
        StatusCode::UNAUTHORIZED,
        "missing Authorization: Bearer <token>",
    )
}

/// A refusal, counted.
fn refused(s: &Shared, status: StatusCode, msg: impl Into<String>) -> Response {
    s.metrics().rejected.inc();
    err(status, msg)
}

/// Whose token came with the request: found once, by [`KnownTokenFirst`].
#[derive(Clone, Debug)]
enum Caller {
    Agent(String),
    Operator(String),
    Reader,
}

impl Caller {
    /// The credential's name for the connection cap (one credential
    /// vouches for a bounded number of connections: `warden_serve::Standing`).
    fn credential(&self) -> String {
        match self {
            Caller::Agent(site) => format!("agent:{site}"),
            Caller::Operator(name) => format!("operator:{name}"),
            Caller::Reader => "reader".into(),
        }
    }
}

/// Every endpoint needs a token: one that is nobody's is refused before
/// any handler (or body extractor) runs, so an unauthenticated client
/// never makes the API read a body; a known one is named for the handler
/// (a [`Caller`]), whose extractor says whether that role may call it.
/// Exactly the `public` paths pass without a token. A plain check on the
/// request head, as a `tower_http` request validator around the whole
/// router: nothing boxed or cloned per request (an
/// `axum::middleware::from_fn` was about 5 % of the orchestrator's CPU
/// under the 20,000-agent load bench).
#[derive(Clone)]
pub(super) struct KnownTokenFirst {
    pub(super) shared: Arc<Shared>,
    pub(super) public: &'static [&'static str],
    /// `orchestrator.max_body_bytes`: a body declared longer is refused
    /// (413) at once, without waiting for bytes that will be refused anyway.
    pub(super) max_body: usize,
}

impl<B> ValidateRequest<B> for KnownTokenFirst {
    type ResponseBody = axum::body::Body;

    fn validate(&mut self, req: &mut Request<B>) -> Result<(), Response> {
        if self.public.contains(&req.uri().path()) {
            return Ok(());
        }
        let s = &self.shared;
        let Some(t) = bearer(req.headers()) else {
            return Err(missing_token(s));
        };
        let caller = if let Some(site) = s.site_of_token(t) {
            // With client certificates (mTLS), an agent's must name its
            // site: a certificate for one site cannot report for another.
            if s.verifies_client_certs() {
                let named = req
                    .extensions()
                    .get::<warden_serve::PeerCertificate>()
                    .is_some_and(|c| warden_serve::tls::cert_names(&c.0, site));
                if !named {
                    return Err(refused(
                        s,
                        StatusCode::FORBIDDEN,
                        format!("the client certificate does not name site {site:?} (subjectAltName DNS {site}): it cannot act for it"),
                    ));
                }
            }
            Caller::Agent(site.to_string())
        } else if let Some(name) = s.operator_name(t) {
            Caller::Operator(name.to_string())
        } else if s.is_reader(t) {
            Caller::Reader
        } else {
            return Err(refused(s, StatusCode::UNAUTHORIZED, "invalid bearer token"));
        };
        // A known credential: this connection is not displaced at the
        // connection cap by a newcomer (see warden_serve::Standing), within
        // the credential's own bound of connections.
        if let Some(standing) = req.extensions().get::<warden_serve::Standing>() {
            if !standing.vouched() {
                standing.vouch_as(&caller.credential());
            }
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(n) = declared.filter(|n| *n > self.max_body as u64) {
            return Err(refused(
                s,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a body of {n} bytes is over the limit of {} (orchestrator.max_body_bytes)",
                    self.max_body
                ),
            ));
        }
        req.extensions_mut().insert(caller);
        Ok(())
    }
}

/// The caller the token check named, taken out of the request (each
/// handler has one role extractor); none: the check did not run, which
/// only a public path allows — refused as if no token came.
fn caller(parts: &mut Parts, s: &Shared) -> Result<Caller, Response> {
    parts
        .extensions
        .remove::<Caller>()
        .ok_or_else(|| missing_token(s))
}

fn agent_may_not_act(s: &Shared) -> Response {
    refused(
        s,
        StatusCode::FORBIDDEN,
        "an agent token may not call operator endpoints",
    )
}

/// The agents' endpoints: the site whose agent token came with the
/// request; another known token (an operator's, the reader's) is refused.
#[derive(Clone, Debug)]
pub(super) struct AgentSite(pub(super) String);

impl FromRequestParts<Arc<Shared>> for AgentSite {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        match caller(parts, s)? {
            Caller::Agent(site) => Ok(AgentSite(site)),
            _ => Err(refused(
                s,
                StatusCode::FORBIDDEN,
                "only an agent token may call the agents' endpoints",
            )),
        }
    }
}

/// The operator actions: the acting operator's name (for the events); the
/// read-only token and agents' tokens are refused.
pub(super) struct Operator(pub(super) String);

impl FromRequestParts<Arc<Shared>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        match caller(parts, s)? {
            Caller::Operator(name) => Ok(Operator(name)),
            Caller::Reader => Err(refused(
                s,
                StatusCode::FORBIDDEN,
                "the read-only token may not act; use an operator token",
            )),
            Caller::Agent(_) => Err(agent_may_not_act(s)),
        }
    }
}

/// The reads (status, events, runbooks, metrics): the read-only token or
/// an operator's; agents' tokens are refused.
pub(super) struct Reader;

impl FromRequestParts<Arc<Shared>> for Reader {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        match caller(parts, s)? {
            Caller::Operator(_) | Caller::Reader => Ok(Reader),
            Caller::Agent(_) => Err(agent_may_not_act(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for v in ["Bearer t0k", "bearer t0k", "BEARER  t0k "] {
            assert_eq!(bearer(&with(v)), Some("t0k"), "{v:?}");
        }
        for v in ["Basic t0k", "Bearert0k", "t0k"] {
            assert_eq!(bearer(&with(v)), None, "{v:?}");
        }
    }
}
