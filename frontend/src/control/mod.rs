//! The control API (axum): the router, bearer-token (and client
//! certificate) authentication, error answers and the read endpoints. The
//! route and hold orders and their epoch fencing are in `orders`, `/metrics`
//! in `metrics`. Wire types live in [`crate::api`].

mod metrics;
mod orders;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use tracing::warn;
use warden_config::Secret;

use crate::api::{ErrorBody, RouteState};
use crate::balance::Balance;
use crate::fence::{Clusters, Fence};
use crate::rare::Rare;
use crate::route::{GroupRoute, Table};
use metrics::metrics;
use orders::{put_hold, put_route};

/// Largest accepted request body.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct Ctx {
    table: Arc<Table>,
    /// Where an epoch is kept before an order that raises it takes effect
    /// (none: settings made by hand, memory only).
    fence: Option<Arc<Fence>>,
    /// The etcd cluster of the hold orders' terms and those left (kept in
    /// the fence too, when there is one).
    clusters: Arc<Clusters>,
    /// How connections are spread over the proxy workers (for `/metrics`).
    balance: Arc<Balance>,
    token: Arc<Secret>,
    /// With client certificates (mTLS): the name the caller's certificate
    /// must carry (`orchestrator`): another certificate of the same CA (an
    /// agent's, an operator's) with the token is no licence to switch.
    cert_name: Option<Arc<str>>,
    /// Requests refused for a missing or wrong token (on `/metrics`; the
    /// warning is written at the 1st, 2nd, 4th… only: anyone who reaches
    /// the port can send them, as fast as it likes).
    unauthorized: Arc<AtomicU64>,
    /// When an unauthorized request was last warned about.
    unauthorized_said: Arc<Rare>,
}

/// An error answer: a status and an [`ErrorBody`].
struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                seen_epoch: None,
                ..ErrorBody::default()
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The control API router; serve it with `ConnectInfo<SocketAddr>`.
/// `cert_name`: with mTLS, the name a caller's certificate must carry.
pub(crate) fn router(
    table: Arc<Table>,
    fence: Option<Arc<Fence>>,
    balance: Arc<Balance>,
    token: Secret,
    cert_name: Option<&str>,
) -> Router {
    let kept = fence.as_ref().map(|f| f.clusters()).unwrap_or_default();
    let ctx = Ctx {
        table,
        fence,
        clusters: Arc::new(Clusters::new(kept)),
        balance,
        token: Arc::new(token),
        cert_name: cert_name.map(Arc::from),
        unauthorized: Arc::new(AtomicU64::new(0)),
        unauthorized_said: Arc::new(Rare::default()),
    };
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/routes", get(list_routes))
        .route("/v1/routes/{group}", get(get_route).put(put_route))
        .route("/v1/routes/{group}/hold", put(put_hold))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(ctx.clone(), authenticate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ctx)
}

/// The token from an `Authorization: Bearer <token>` header, if well formed.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let ok = bearer(&req).is_some_and(|t| ctx.token.matches(t));
    if !ok {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        let presented = req.headers().contains_key(header::AUTHORIZATION);
        let refused = ctx.unauthorized.fetch_add(1, Ordering::Relaxed) + 1;
        // Never log the presented value: it may be a near-miss of the real token.
        if ctx.unauthorized_said.due(refused) {
            warn!(%peer, method = %req.method(), path = %req.uri().path(), token_presented = presented, refused, "unauthorized control request (said at the 1st, 2nd, 4th, 8th… refusal, and once a minute; every one counted in warden_frontend_unauthorized_requests_total)");
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
        .into_response();
    }
    if let Some(name) = &ctx.cert_name {
        let named = req
            .extensions()
            .get::<warden_serve::PeerCertificate>()
            .is_some_and(|c| warden_serve::tls::cert_names(&c.0, name));
        if !named {
            warn!(method = %req.method(), path = %req.uri().path(), "control request with a client certificate that does not name {name}");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!("the client certificate does not name {name} (subjectAltName DNS {name}): only the orchestrator may drive this frontend"),
            )
            .into_response();
        }
    }
    // The orchestrator's connection is not displaced at the connection cap
    // by a newcomer (see warden_serve::Standing).
    if let Some(standing) = req.extensions().get::<warden_serve::Standing>() {
        standing.vouch_as("orchestrator");
    }
    next.run(req).await
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /v1/routes, /v1/routes/{group}, /v1/routes/{group}/hold, /v1/health, /metrics",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: routes are read with GET and set with PUT, holds set with PUT",
    )
}

async fn list_routes(State(ctx): State<Ctx>) -> Json<BTreeMap<String, RouteState>> {
    Json(ctx.table.states())
}

/// The group named in the path. One that cannot be read (percent-encoded
/// bytes that are not UTF-8) gets the JSON error body every answer of this
/// API has, not axum's plain text.
fn group_in_path(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(g)| g).map_err(|rej| {
        ApiError::new(
            rej.status(),
            format!("the group in the path cannot be read: {}", rej.body_text()),
        )
    })
}

/// The route of `group`, or 404 naming the groups this frontend serves.
fn group_route(ctx: &Ctx, group: &str) -> Result<Arc<GroupRoute>, ApiError> {
    ctx.table
        .group(group)
        .cloned()
        .ok_or_else(|| unknown_group(ctx, group))
}

fn unknown_group(ctx: &Ctx, group: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "unknown group {group:?}; this frontend serves: [{}]",
            ctx.table.names().join(", ")
        ),
    )
}

async fn get_route(
    State(ctx): State<Ctx>,
    group: Result<Path<String>, PathRejection>,
) -> Result<Json<RouteState>, ApiError> {
    let group = group_in_path(group)?;
    let g = group_route(&ctx, &group)?;
    Ok(Json(g.state()))
}
