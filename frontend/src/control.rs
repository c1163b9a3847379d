//! The control API (axum): bearer-token authentication, the route table
//! endpoints and their epoch fencing. Wire types live in [`crate::api`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tracing::{debug, info, warn};
use warden_config::Secret;

use crate::api::{ErrorBody, RouteState, SetRoute};
use crate::route::{Applied, Refused, Table};

/// Largest accepted request body.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct Ctx {
    table: Arc<Table>,
    token: Arc<Secret>,
    /// With client certificates (mTLS): the name the caller's certificate
    /// must carry (`orchestrator`): another certificate of the same CA (an
    /// agent's, an operator's) with the token is no licence to switch.
    cert_name: Option<Arc<str>>,
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
pub(crate) fn router(table: Arc<Table>, token: Secret, cert_name: Option<&str>) -> Router {
    let ctx = Ctx {
        table,
        token: Arc::new(token),
        cert_name: cert_name.map(Arc::from),
    };
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/routes", get(list_routes))
        .route("/v1/routes/{group}", get(get_route).put(put_route))
        .fallback(not_found)
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
        // Never log the presented value: it may be a near-miss of the real token.
        warn!(%peer, method = %req.method(), path = %req.uri().path(), token_presented = presented, "unauthorized control request");
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
    next.run(req).await
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /v1/routes, /v1/routes/{group}, /v1/health",
    )
}

async fn list_routes(State(ctx): State<Ctx>) -> Json<BTreeMap<String, RouteState>> {
    Json(ctx.table.states())
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
    Path(group): Path<String>,
) -> Result<Json<RouteState>, ApiError> {
    let g = ctx
        .table
        .group(&group)
        .ok_or_else(|| unknown_group(&ctx, &group))?;
    Ok(Json(g.state()))
}

async fn put_route(
    State(ctx): State<Ctx>,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RouteState>, ApiError> {
    let g = ctx
        .table
        .group(&group)
        .ok_or_else(|| unknown_group(&ctx, &group))?;
    let body = body.map_err(|rej| {
        ApiError::new(
            rej.status(),
            format!("cannot read body: {}", rej.body_text()),
        )
    })?;
    warden_proto::require_object(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid SetRoute body: {e}"),
        )
    })?;
    let req: SetRoute = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid SetRoute body: {e}"),
        )
    })?;
    match g.set(&req) {
        Ok((applied, state)) => {
            match applied {
                Applied::Switched { from } => info!(
                    group = %group,
                    from = from.as_deref().unwrap_or("-"),
                    to = %req.site,
                    epoch = req.epoch,
                    mode = ?req.mode,
                    "route switched"
                ),
                Applied::EpochRaised { from } => {
                    info!(group = %group, site = %req.site, from_epoch = from, epoch = req.epoch, "epoch raised; route unchanged")
                }
                Applied::Unchanged => {
                    debug!(group = %group, site = %req.site, epoch = req.epoch, "route already set; nothing to do")
                }
            }
            Ok(Json(state))
        }
        Err(refused) => {
            let err = match refused {
                Refused::UnknownSite { site, allowed } => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("site {site:?} is not a backend of group {group:?}; allowed sites: [{}]", allowed.join(", ")),
                ),
                Refused::Stale { sent, seen } => ApiError {
                    status: StatusCode::CONFLICT,
                    body: ErrorBody {
                        error: format!("stale epoch {sent} < {seen}: a newer decision was already applied to group {group:?}"),
                        seen_epoch: Some(seen),
                    },
                },
                Refused::Conflict { epoch, routed, requested } => ApiError {
                    status: StatusCode::CONFLICT,
                    body: ErrorBody {
                        error: format!(
                            "conflicting decision for epoch {epoch}: group {group:?} already routes to {routed:?} at this epoch, refused {requested:?}"
                        ),
                        seen_epoch: Some(epoch),
                    },
                },
            };
            warn!(group = %group, site = %req.site, epoch = req.epoch, status = err.status.as_u16(), reason = %err.body.error, "route command refused");
            Err(err)
        }
    }
}
