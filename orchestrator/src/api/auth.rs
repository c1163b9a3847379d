//! Who is calling: the bearer token names an agent (its site), an operator
//! (a name for the events) or the read-only reader; an unknown token is
//! refused before anything reads the body, and with client certificates an
//! agent's must name its site. Which role may call what is each handler's
//! check, through [`AgentSite`], [`operator`] and [`reader`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::Response;
use tower_http::validate_request::ValidateRequest;

use super::err;
use crate::service::Shared;

pub(super) fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Check an operator token; returns the operator's name (for events).
pub(super) fn operator<'a>(s: &'a Shared, h: &HeaderMap) -> Result<&'a str, Response> {
    match bearer(h) {
        Some(t) => match s.operator_name(t) {
            Some(name) => Ok(name),
            None if s.is_reader(t) => {
                s.metrics().rejected.inc();
                Err(err(
                    StatusCode::FORBIDDEN,
                    "the read-only token may not act; use an operator token",
                ))
            }
            None => Err(unknown_token(s, t)),
        },
        None => Err(missing_token(s)),
    }
}

/// Check a token that may read: the read-only token or an operator's.
pub(super) fn reader(s: &Shared, h: &HeaderMap) -> Result<(), Response> {
    match bearer(h) {
        Some(t) if s.is_reader(t) || s.operator_name(t).is_some() => Ok(()),
        Some(t) => Err(unknown_token(s, t)),
        None => Err(missing_token(s)),
    }
}

fn unknown_token(s: &Shared, t: &str) -> Response {
    s.metrics().rejected.inc();
    if s.site_of_token(t).is_some() {
        err(
            StatusCode::FORBIDDEN,
            "an agent token may not call operator endpoints",
        )
    } else {
        err(StatusCode::UNAUTHORIZED, "invalid bearer token")
    }
}

pub(super) fn missing_token(s: &Shared) -> Response {
    s.metrics().rejected.inc();
    err(
        StatusCode::UNAUTHORIZED,
        "missing Authorization: Bearer <token>",
    )
}

/// Every endpoint needs a token: one that is nobody's is refused before
/// any handler (or body extractor) runs, so an unauthenticated client
/// never makes the API read a body. Which role may call what is each
/// handler's check. A plain check on the request head, as a
/// `tower_http` request validator: nothing boxed or cloned per request
/// (an `axum::middleware::from_fn` was about 5 % of the orchestrator's CPU
/// under the 20,000-agent load bench).
/// Around the whole router: the `public` paths (exact) pass without a
/// token.
#[derive(Clone)]
pub(super) struct KnownTokenFirst {
    pub(super) shared: Arc<Shared>,
    pub(super) public: &'static [&'static str],
}

impl<B> ValidateRequest<B> for KnownTokenFirst {
    type ResponseBody = axum::body::Body;

    fn validate(&mut self, req: &mut Request<B>) -> Result<(), Response> {
        if self.public.contains(&req.uri().path()) {
            return Ok(());
        }
        let s = &self.shared;
        let site = match bearer(req.headers()) {
            None => return Err(missing_token(s)),
            Some(t) => match s.site_of_token(t) {
                Some(site) => Some(site),
                None if s.operator_name(t).is_some() || s.is_reader(t) => None,
                None => {
                    s.metrics().rejected.inc();
                    return Err(err(StatusCode::UNAUTHORIZED, "invalid bearer token"));
                }
            },
        };
        // With client certificates (mTLS), an agent's must name its site: a
        // certificate for one site cannot report for another.
        if let (Some(site), true) = (site, s.verifies_client_certs()) {
            let named = req
                .extensions()
                .get::<warden_serve::PeerCertificate>()
                .is_some_and(|c| warden_serve::tls::cert_names(&c.0, site));
            if !named {
                s.metrics().rejected.inc();
                return Err(err(
                    StatusCode::FORBIDDEN,
                    format!("the client certificate does not name site {site:?} (subjectAltName DNS {site}): it cannot act for it"),
                ));
            }
        }
        if let Some(site) = site {
            // The handler of an agent's endpoint takes it from here (one
            // token lookup per request).
            req.extensions_mut().insert(AgentSite(site.to_string()));
        }
        Ok(())
    }
}

/// The site whose agent token authenticated this request (set by
/// [`KnownTokenFirst`]). As an extractor it is the agents' endpoints'
/// check: a request that came with another known token (an operator's,
/// the reader's) is refused.
#[derive(Clone, Debug)]
pub(super) struct AgentSite(pub(super) String);

impl FromRequestParts<Arc<Shared>> for AgentSite {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.remove::<AgentSite>().ok_or_else(|| {
            s.metrics().rejected.inc();
            err(StatusCode::UNAUTHORIZED, "invalid agent token")
        })
    }
}
