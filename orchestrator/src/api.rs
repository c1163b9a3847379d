//! The HTTP API under `/v1`: agent reports and command long-polls (agent
//! tokens, each only for its own site), status, events, runbooks and
//! metrics (the read-only token or an operator's), and operator actions
//! (operator tokens only; the acting operator's name goes into the events).
//! Bodies are size-limited; malformed input gets a 4xx with a reason and
//! changes nothing. This file owns the router, the layers around it and
//! the body helpers; the handlers are in `agent` (reports, command polls),
//! `views` (reads) and `actions` (operator actions).

// Handlers return `Response` errors directly; boxing them buys nothing here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::FutureExt;
use warden_proto::agent::ApiError;

use crate::service::Shared;
pub use crate::service::{
    DivergentPage, GroupView, ReplicationView, SiteView, StatusView, DIVERGENT_IN_STATUS,
};
use crate::OrchestratorError;

type S = State<Arc<Shared>>;

mod actions;
mod agent;
mod auth;
mod dashboard;
pub mod leader;
pub(crate) mod seats;
mod stream;
mod views;
pub use actions::{AdoptedView, ClearView};
use auth::KnownTokenFirst;
use tower_http::validate_request::ValidateRequestHeaderLayer;

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

impl IntoResponse for OrchestratorError {
    fn into_response(self) -> Response {
        let status = match &self {
            OrchestratorError::NotFound(_) => StatusCode::NOT_FOUND,
            OrchestratorError::BadRequest(_) => StatusCode::BAD_REQUEST,
            OrchestratorError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        err(status, self.to_string())
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &Shared, body: &Bytes) -> Result<T, Response> {
    decode_json(body).map_err(|why| {
        s.metrics().rejected.inc();
        err(StatusCode::BAD_REQUEST, why)
    })
}

/// An optional body: its default when left out (empty, or `null` as older
/// CLIs send to the actions that took none), else as [`parse_json`].
fn optional_json<T: serde::de::DeserializeOwned + Default>(
    s: &Shared,
    body: &Bytes,
) -> Result<T, Response> {
    if no_body(body) {
        Ok(T::default())
    } else {
        parse_json(s, body)
    }
}

/// A JSON object body decoded, or why not ("malformed JSON body: …").
fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    warden_proto::require_object(body)
        .map_err(|e| e.to_string())
        .and_then(|()| serde_json::from_slice(body).map_err(|e| e.to_string()))
        .map_err(|e| format!("malformed JSON body: {e}"))
}

/// Paths anybody may read without a token: load balancers and systemd
/// ask them (see [`leader`]).
const LEADER_PATH: &str = "/v1/leader";
const HEALTH_PATH: &str = "/healthz";

/// The API: the routes inside the three layers every request passes —
/// error bodies made JSON, the token check, the body limit — put around
/// the router once as tower layers. (`Router::layer` wraps every route
/// instead, and each wrap is a boxed service cloned for every request: 4 %
/// of the orchestrator's CPU under the 20,000-agent load bench.)
pub fn router(
    shared: Arc<Shared>,
) -> impl tower::Service<
    axum::extract::Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
       + Send
       + 'static {
    let limit = shared.config().orchestrator.max_body_bytes;
    let actions = Router::new()
        .route("/v1/groups/{group}/failover", post(actions::failover))
        .route("/v1/groups/{group}/failback", post(actions::failback))
        .route("/v1/groups/{group}/switchover", post(actions::switchover))
        .route("/v1/groups/{group}/resync", post(actions::resync))
        .route("/v1/groups/{group}/approve", post(actions::approve))
        .route("/v1/groups/{group}/maintenance", post(actions::maintenance))
        .route("/v1/groups/{group}/clear", post(actions::clear))
        .route("/v1/groups/{group}/adopt-epoch", post(actions::adopt_epoch))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            leader::leader_only,
        ));
    let routes = Router::new()
        .merge(actions)
        .route("/v1/reports", post(agent::report))
        .route(
            warden_proto::agent::REPORT_STREAM_PATH,
            get(stream::report_stream),
        )
        .route("/v1/agents/commands", get(agent::poll_commands))
        .route("/v1/status", get(views::status))
        .route("/v1/groups", get(views::groups))
        .route("/v1/groups/{group}", get(views::group))
        .route("/v1/groups/{group}/divergent", get(views::divergent))
        .route("/v1/sites", get(views::sites))
        .route("/v1/events", get(views::events))
        .route("/v1/runbooks", get(views::runbooks))
        .route("/v1/runbooks/{id}", get(views::runbook_one))
        .route("/metrics", get(views::metrics))
        .route(LEADER_PATH, get(leader::leader))
        .route(HEALTH_PATH, get(leader::healthz))
        .route(dashboard::PATHS[0], get(dashboard::index))
        .route(dashboard::PATHS[1], get(dashboard::script))
        .route(dashboard::PATHS[2], get(dashboard::style))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint; see docs/api.md") })
        .with_state(shared.clone());
    tower::ServiceBuilder::new()
        .map_response(json_errors)
        .layer(ValidateRequestHeaderLayer::custom(KnownTokenFirst {
            shared,
            public: &[
                LEADER_PATH,
                HEALTH_PATH,
                dashboard::PATHS[0],
                dashboard::PATHS[1],
                dashboard::PATHS[2],
            ],
            max_body: limit,
        }))
        .layer(DefaultBodyLimit::max(limit))
        .service(routes)
}

/// Error answers that axum and its extractors make themselves (405 for a
/// method a path does not take, 413 over the body limit, …) carry plain
/// text: they get the documented `{"error": …}` body, other headers kept.
/// Their text is in memory: it is read at once, without waiting (a body
/// that would make one wait gives way to the status's reason).
fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .now_or_never()
        .and_then(Result::ok)
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase()
    } else {
        text
    };
    let mut out = err(status, message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// An action's optional body left out: empty, or `null` (what older CLIs
/// send to the actions that took none).
fn no_body(body: &[u8]) -> bool {
    let b = body.trim_ascii();
    b.is_empty() || b == b"null"
}
