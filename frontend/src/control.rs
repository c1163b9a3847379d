//! The control API (axum): bearer-token authentication, the route table
//! endpoints and their epoch fencing, hold orders, `/metrics`. Wire types
//! live in [`crate::api`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use tracing::{debug, error, info, warn};
use warden_config::Secret;

use crate::api::{ErrorBody, Hold, RouteState, SetRoute};
use crate::balance::Balance;
use crate::fence::Fence;
use crate::rare::Rare;
use crate::route::{Applied, GroupRoute, HoldRefused, Refused, Table};

/// Largest accepted request body.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct Ctx {
    table: Arc<Table>,
    /// Where an epoch is kept before an order that raises it takes effect
    /// (none: settings made by hand, memory only).
    fence: Option<Arc<Fence>>,
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
    let ctx = Ctx {
        table,
        fence,
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

async fn put_route(
    State(ctx): State<Ctx>,
    group: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RouteState>, ApiError> {
    let group = group_in_path(group)?;
    let g = group_route(&ctx, &group)?;
    let req: SetRoute = parse_body(body, "SetRoute")?;
    let _ordering = g.ordering.lock().await;
    if g.has_site(&req.site) {
        keep_epoch(&ctx, &group, req.epoch, Some(&req.site)).await;
    }
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
                Applied::DrainsCut { generations, from } => {
                    info!(group = %group, site = %req.site, from_epoch = from, epoch = req.epoch, generations, "immediate order: connections still draining to the old site cut now")
                }
                Applied::Unchanged => {
                    debug!(group = %group, site = %req.site, epoch = req.epoch, "route already set; nothing to do")
                }
            }
            Ok(Json(state))
        }
        Err(refused) => {
            match &refused {
                Refused::Stale { .. } => &g.refused.stale,
                Refused::Conflict { .. } => &g.refused.conflict,
                Refused::UnknownSite { .. } => &g.refused.unknown_site,
            }
            .fetch_add(1, Ordering::Relaxed);
            let err = match refused {
                Refused::UnknownSite { site, allowed } => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("site {site:?} is not a backend of group {group:?}; allowed sites: [{}]", allowed.join(", ")),
                ),
                Refused::Stale { sent, seen } => stale(
                    sent,
                    seen,
                    format!("a newer decision was already applied to group {group:?}"),
                ),
                Refused::Conflict { epoch, routed, requested } => ApiError {
                    status: StatusCode::CONFLICT,
                    body: ErrorBody {
                        error: format!(
                            "conflicting decision for epoch {epoch}: group {group:?} was already routed to {routed:?} at this epoch, refused {requested:?}"
                        ),
                        seen_epoch: Some(epoch),
                        ..ErrorBody::default()
                    },
                },
            };
            warn!(group = %group, site = %req.site, epoch = req.epoch, status = err.status.as_u16(), reason = %err.body.error, "route command refused");
            Err(err)
        }
    }
}

/// Keep `epoch` as the group's fence on disk before an order at it takes
/// effect (a no-op unless it is higher than the one kept). When the file
/// cannot be written the order is still carried out, fenced from memory
/// (see [`crate::fence`]): a failover must not wait for a disk — one that
/// does not answer is waited for [`crate::fence::WRITE_PATIENCE`] at most.
/// Here, not inside the route's own lock: every new connection takes that
/// lock, and none may wait for an fsync.
async fn keep_epoch(ctx: &Ctx, group: &str, epoch: u64, site: Option<&str>) {
    let Some(fence) = &ctx.fence else {
        return;
    };
    if let Err(e) = fence.raise(group, epoch, site).await {
        error!(group = %group, epoch, cause = %e, "fence not saved: acting from memory (a restart now would forget this epoch); warden_frontend_fence_unsaved is 1 until a write succeeds");
    }
}

/// A JSON object body of type `T` (`what` names it in errors).
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<T, ApiError> {
    let body = body.map_err(|rej| {
        ApiError::new(
            rej.status(),
            format!("cannot read body: {}", rej.body_text()),
        )
    })?;
    warden_proto::require_object(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid {what} body: {e}")))?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid {what} body: {e}")))
}

/// A hold order (see [`crate::api::Hold`]), fenced like a route.
async fn put_hold(
    State(ctx): State<Ctx>,
    group: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RouteState>, ApiError> {
    let group = group_in_path(group)?;
    let g = group_route(&ctx, &group)?;
    let req: Hold = parse_body(body, "Hold")?;
    let _ordering = g.ordering.lock().await;
    keep_epoch(&ctx, &group, req.epoch, None).await;
    match g.set_hold(&req) {
        Ok(state) => {
            if req.ttl_ms == 0 {
                info!(group = %group, epoch = req.epoch, "hold order withdrawn");
            } else if g.hold_disabled() {
                info!(group = %group, epoch = req.epoch, ttl_ms = req.ttl_ms, "hold order accepted; holding is off for this group (hold_connections = 0)");
            } else {
                info!(group = %group, epoch = req.epoch, ttl_ms = state.hold_remaining_ms, "hold order: new connections whose backend fails wait for a route change");
            }
            Ok(Json(state))
        }
        Err(refused) => {
            match &refused {
                HoldRefused::Stale { .. } => &g.refused.stale,
                HoldRefused::Withdrawn { .. }
                | HoldRefused::Switched { .. }
                | HoldRefused::Older { .. } => &g.refused.late_copy,
            }
            .fetch_add(1, Ordering::Relaxed);
            let err = match refused {
                HoldRefused::Stale { seen } => stale(
                    req.epoch,
                    seen,
                    format!("hold order refused; a newer decision or order was already applied to group {group:?}"),
                ),
                HoldRefused::Older {
                    epoch,
                    place,
                    newest,
                } => ApiError {
                    status: StatusCode::CONFLICT,
                    body: ErrorBody {
                        error: format!(
                            "hold order refused: an older order (term {}, seq {}) than the newest of epoch {epoch} group {group:?} took (term {}, seq {}); this one is a late copy",
                            place.term, place.seq, newest.term, newest.seq
                        ),
                        seen_epoch: Some(epoch),
                        newest_term: Some(newest.term),
                        newest_seq: Some(newest.seq),
                    },
                },
                HoldRefused::Withdrawn { epoch } => ApiError {
                    status: StatusCode::CONFLICT,
                    body: ErrorBody {
                        error: format!("hold order refused: the hold order of epoch {epoch} for group {group:?} was withdrawn (its switch is not coming); this one is a late copy"),
                        seen_epoch: Some(epoch),
                        ..ErrorBody::default()
                    },
                },
                HoldRefused::Switched { epoch } => ApiError {
                    status: StatusCode::CONFLICT,
                    body: ErrorBody {
                        error: format!("cut-over order refused: group {group:?} is already routed at epoch {epoch}, the switch it announced has come; this one is a late copy"),
                        seen_epoch: Some(epoch),
                        ..ErrorBody::default()
                    },
                },
            };
            warn!(group = %group, epoch = req.epoch, term = req.term, seq = req.seq, pause = req.pause, reason = %err.body.error, "hold order refused");
            Err(err)
        }
    }
}

/// 409 for an order older than the epoch the group has seen (`seen_epoch`
/// tells the orchestrator where it stands).
fn stale(sent: u64, seen: u64, what: String) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        body: ErrorBody {
            error: format!("stale epoch {sent} < {seen}: {what}"),
            seen_epoch: Some(seen),
            ..ErrorBody::default()
        },
    }
}

/// One metric: name, type, help, and how to read it from a [`RouteState`].
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&RouteState) -> u64,
);

/// Prometheus text: each group's route epoch, switches, connections and holds.
async fn metrics(State(ctx): State<Ctx>) -> Response {
    let states = ctx.table.states();
    let mut out = String::new();
    let series: [Series; 8] = [
        (
            "warden_frontend_route_epoch",
            "gauge",
            "Highest epoch accepted for the group.",
            |s| s.epoch,
        ),
        (
            "warden_frontend_route_switches_total",
            "counter",
            "Times the routed site changed.",
            |s| s.switches,
        ),
        (
            "warden_frontend_active_connections",
            "gauge",
            "Open client connections.",
            |s| s.active_connections,
        ),
        (
            "warden_frontend_held_connections",
            "gauge",
            "Connections held now, waiting for a route change.",
            |s| s.held_now,
        ),
        (
            "warden_frontend_held_connections_total",
            "counter",
            "Connections held under a hold order.",
            |s| s.held_total,
        ),
        (
            "warden_frontend_held_rescued_total",
            "counter",
            "Held connections connected: to a new site after a route change, or to the routed site once it answered again.",
            |s| s.held_rescued,
        ),
        (
            "warden_frontend_held_timed_out_total",
            "counter",
            "Held connections closed when their hold time was over.",
            |s| s.held_timed_out,
        ),
        (
            "warden_frontend_retried_connections_total",
            "counter",
            "New connections refused without a hold order and tried again (connect_retry).",
            |s| s.retried_total,
        ),
    ];
    for (name, kind, help, value) in series {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (group, s) in &states {
            out.push_str(&format!("{name}{{group=\"{group}\"}} {}\n", value(s)));
        }
    }
    out.push_str("# HELP warden_frontend_refused_orders_total Route and hold orders refused by the group's epoch fence, by reason: stale (older than the highest epoch accepted), conflict (another site at an epoch a route already named), late_copy (a hold order placed before the newest of its epoch, or a cut-over whose order was withdrawn or whose switch came), unknown_site (a site the group has no backend for). An orchestrator that was deposed, or a second one, still sending.\n# TYPE warden_frontend_refused_orders_total counter\n");
    for (group, g) in ctx.table.routes() {
        for (reason, n) in g.refused.counts() {
            out.push_str(&format!(
                "warden_frontend_refused_orders_total{{group=\"{group}\",reason=\"{reason}\"}} {n}\n"
            ));
        }
    }
    out.push_str("# HELP warden_frontend_worker_connections Client connections each proxy worker serves.\n# TYPE warden_frontend_worker_connections gauge\n");
    for (worker, n) in ctx.balance.loads() {
        out.push_str(&format!(
            "warden_frontend_worker_connections{{worker=\"{worker}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP warden_frontend_handed_over_connections_total Connections a busier proxy worker handed to a less busy one.\n# TYPE warden_frontend_handed_over_connections_total counter\nwarden_frontend_handed_over_connections_total {}\n",
        ctx.balance.handed_over()
    ));
    out.push_str(&format!(
        "# HELP warden_frontend_unauthorized_requests_total Control API requests refused for a missing or wrong token.\n# TYPE warden_frontend_unauthorized_requests_total counter\nwarden_frontend_unauthorized_requests_total {}\n",
        ctx.unauthorized.load(Ordering::Relaxed)
    ));
    if let Some(fence) = &ctx.fence {
        out.push_str(&format!(
            "# HELP warden_frontend_fence_unsaved 1 while the highest epochs accepted could not be written to state_dir (a restart would forget them).\n# TYPE warden_frontend_fence_unsaved gauge\nwarden_frontend_fence_unsaved {}\n",
            u8::from(fence.unsaved())
        ));
        out.push_str(&format!(
            "# HELP warden_frontend_fence_lost 1 from a start that found fence.json gone from a state_dir that held it (the highest epochs accepted are forgotten) until an order is kept again for every group it serves.\n# TYPE warden_frontend_fence_lost gauge\nwarden_frontend_fence_lost {}\n",
            u8::from(fence.lost())
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
