//! The HTTP API under `/v1`: agent reports and command long-polls (agent
//! tokens, each only for its own site), status, events, runbooks and
//! metrics (the read-only token or an operator's), and operator actions
//! (operator tokens only; the acting operator's name goes into the events).
//! Bodies are size-limited; malformed input gets a 4xx with a reason and
//! changes nothing.

// Handlers return `Response` errors directly; boxing them buys nothing here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use warden_proto::agent::{AgentReport, ApiError, ReportResponse};

use crate::service::Shared;
pub use crate::service::{
    DivergentPage, GroupView, ReplicationView, SiteView, StatusView, DIVERGENT_IN_STATUS,
};
use crate::OrchestratorError;

type S = State<Arc<Shared>>;

mod auth;
mod dashboard;
pub mod leader;
pub(crate) mod seats;
mod stream;
use auth::{AgentSite, KnownTokenFirst, Operator, Reader};
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
        .route("/v1/groups/{group}/failover", post(failover))
        .route("/v1/groups/{group}/failback", post(failback))
        .route("/v1/groups/{group}/switchover", post(switchover))
        .route("/v1/groups/{group}/resync", post(resync))
        .route("/v1/groups/{group}/approve", post(approve))
        .route("/v1/groups/{group}/maintenance", post(maintenance))
        .route("/v1/groups/{group}/clear", post(clear))
        .route("/v1/groups/{group}/adopt-epoch", post(adopt_epoch))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            leader::leader_only,
        ));
    let routes = Router::new()
        .merge(actions)
        .route("/v1/reports", post(report))
        .route(
            warden_proto::agent::REPORT_STREAM_PATH,
            get(stream::report_stream),
        )
        .route("/v1/agents/commands", get(poll_commands))
        .route("/v1/status", get(status))
        .route("/v1/groups", get(groups))
        .route("/v1/groups/{group}", get(group))
        .route("/v1/groups/{group}/divergent", get(divergent))
        .route("/v1/sites", get(sites))
        .route("/v1/events", get(events))
        .route("/v1/runbooks", get(runbooks))
        .route("/v1/runbooks/{id}", get(runbook_one))
        .route("/metrics", get(metrics))
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

async fn report(State(s): S, AgentSite(site): AgentSite, body: Bytes) -> Response {
    match take_report(&s, &site, &body) {
        Ok((_, resp)) => Json(resp).into_response(),
        Err(r) => err(r.status, r.error),
    }
}

/// A report refused: the status a `POST /v1/reports` answers with, and why.
pub(crate) struct Refusal {
    /// The report's `seq` (0 when it could not be read).
    pub seq: u64,
    pub status: StatusCode,
    pub error: String,
}

/// One agent report, from `POST /v1/reports` or a report stream: read,
/// checked against the caller's site, its size and the replay guard, then
/// taken (see `Shared::accept_report`). Returns the report's seq and the
/// answer.
pub(crate) fn take_report(
    s: &Shared,
    site: &str,
    body: &[u8],
) -> Result<(u64, ReportResponse), Refusal> {
    let t0 = Instant::now();
    let refuse = |seq: u64, status: StatusCode, error: String| {
        s.metrics().rejected.inc();
        Err(Refusal { seq, status, error })
    };
    let rep: AgentReport = match decode_json(body) {
        Ok(r) => r,
        Err(why) => return refuse(0, StatusCode::BAD_REQUEST, why),
    };
    let seq = rep.seq;
    if rep.site != site {
        return refuse(
            seq,
            StatusCode::FORBIDDEN,
            format!(
                "the token of site {site:?} may only report for {site:?}, not {:?}",
                rep.site
            ),
        );
    }
    if rep.checks.len() > 256 || rep.peers.len() > 256 || rep.outcomes.len() > 256 {
        return refuse(
            seq,
            StatusCode::BAD_REQUEST,
            "report has more than 256 checks, peers or outcomes".into(),
        );
    }
    if let Some(p) = rep.peers.iter().find(|p| !s.is_probe_target(&p.site)) {
        return refuse(
            seq,
            StatusCode::BAD_REQUEST,
            format!("peers: unknown site or hybrid frontend {:?}", p.site),
        );
    }
    if let Err(why) = s.admit_report_seq(&rep) {
        return refuse(seq, StatusCode::CONFLICT, why);
    }
    let resp: ReportResponse = s.accept_report(rep);
    s.metrics().reports.inc();
    s.metrics()
        .report_seconds
        .observe(t0.elapsed().as_secs_f64());
    Ok((seq, resp))
}

#[derive(Deserialize)]
struct PollQuery {
    #[serde(default)]
    wait_ms: Option<u64>,
}

async fn poll_commands(
    State(s): S,
    AgentSite(site): AgentSite,
    q: Result<Query<PollQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return err(
            StatusCode::BAD_REQUEST,
            "wait_ms must be an integer number of milliseconds",
        );
    };
    let Some(_slot) = s.poll_slot(&site) else {
        s.metrics().rejected.inc();
        return err(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{site} already has {} command polls open; an agent needs one",
                crate::service::polls::POLLS_PER_SITE
            ),
        );
    };
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0)).min(s.config().orchestrator.long_poll);
    let deadline = Instant::now() + wait;
    let mut rx = s.command_ticks();
    loop {
        // Only a command this site's polls have not handed out yet ends the
        // wait early: one it already runs would end every poll at once.
        let (answer, fresh) = s.poll_answer(&site);
        if fresh || Instant::now() >= deadline {
            return Json(answer).into_response();
        }
        tokio::select! {
            r = tokio::time::timeout_at(deadline, rx.changed()) => { if matches!(r, Ok(Err(_))) { return err(StatusCode::SERVICE_UNAVAILABLE, "shutting down"); } }
            _ = s.shutdown_token().cancelled() => return err(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        }
    }
}

async fn status(State(s): S, _: Reader) -> Response {
    Json(s.status_view()).into_response()
}

async fn groups(State(s): S, _: Reader) -> Response {
    Json(s.group_views()).into_response()
}

async fn group(State(s): S, _: Reader, Path(name): Path<String>) -> Response {
    match s.group_view(&name) {
        Some(g) => Json(g).into_response(),
        None => OrchestratorError::NotFound(format!("group {name:?}")).into_response(),
    }
}

async fn sites(State(s): S, _: Reader) -> Response {
    Json(s.site_views()).into_response()
}

/// `POST …/failover` body: the target, and optionally what the group was
/// when the operator asked ([`crate::service::SeenGroup`]; a body without
/// them, as older clients send, fails over whatever the group is now).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailoverBody {
    to: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
}

#[derive(Serialize)]
struct Started {
    runbook: u64,
}

async fn failover(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let b: FailoverBody = match parse_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let seen = crate::service::SeenGroup {
        from: b.from,
        epoch: b.epoch,
    };
    match s.operator_failover_seen(&g, &b.to, &by, &seen) {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST …/failback`: an optional body says what the group was when the
/// operator asked ([`crate::service::SeenGroup`]); none (empty, or `null`
/// as older CLIs send) fails back whatever it is.
async fn failback(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let seen: crate::service::SeenGroup = match optional_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.operator_failback_seen(&g, &by, &seen) {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST …/switchover` body: the target, and optionally what the group was
/// when the operator asked ([`crate::service::SeenGroup`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchoverBody {
    to: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
}

async fn switchover(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let b: SwitchoverBody = match parse_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let seen = crate::service::SeenGroup {
        from: b.from,
        epoch: b.epoch,
    };
    match s.operator_switchover_seen(&g, &b.to, &by, &seen) {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST …/resync`: an optional body says what the group was when the
/// operator asked ([`crate::service::SeenGroup`]: `from`, `epoch`), as for
/// the moves; none (empty, `null` or `{}`) resyncs whatever the group is.
/// Any other field is refused (400), as in every operator body.
async fn resync(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let seen: crate::service::SeenGroup = match optional_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.operator_resync_seen(&g, &by, &seen) {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// An action's optional body left out: empty, or `null` (what older CLIs
/// send to the actions that took none).
fn no_body(body: &[u8]) -> bool {
    let b = body.trim_ascii();
    b.is_empty() || b == b"null"
}

/// `POST .../approve`: the body says which pending decision is approved
/// (`SeenPending`: `kind`, `to`, `since_unix_ms`, each optional); none (an
/// empty body, or `null` as older CLIs send) approves whatever is pending.
async fn approve(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let seen: crate::service::SeenPending = match optional_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.operator_approve_seen(&g, &by, &seen) {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/groups/{group}/adopt-epoch` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdoptedView {
    /// The group's epoch now (the one seen outside).
    pub epoch: u64,
}

/// `POST .../adopt-epoch` body: the epoch the operator saw ahead (optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AdoptBody {
    #[serde(default)]
    epoch: Option<u64>,
}

async fn adopt_epoch(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let b: AdoptBody = if no_body(&body) {
        AdoptBody::default()
    } else {
        match parse_json(&s, &body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    match s.operator_adopt_epoch_seen(&g, &by, b.epoch).await {
        Ok(epoch) => Json(AdoptedView { epoch }).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    limit: Option<usize>,
}

async fn divergent(
    State(s): S,
    _: Reader,
    Path(g): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return err(
            StatusCode::BAD_REQUEST,
            "offset and limit must be non-negative integers",
        );
    };
    let limit = q.limit.unwrap_or(500).min(5000);
    match s.divergent_page(&g, q.offset, limit) {
        Some(page) => Json(page).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("no group {g:?}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    on: bool,
}

async fn maintenance(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let b: MaintenanceBody = match parse_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.operator_maintenance(&g, b.on, &by) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/groups/{group}/clear` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClearView {
    /// What was lifted (empty: nothing was blocked).
    pub cleared: Vec<String>,
    /// What was not: a mass-delete guard's pass at a site the request
    /// did not name (with how to release it), a site named where nothing
    /// is held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_cleared: Vec<String>,
}

/// `POST .../clear` body: the sites whose pass held by the mass-delete
/// guard may go ahead once (optional; none: no held pass is released).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClearBody {
    #[serde(default)]
    deletions: Vec<String>,
    /// Per site named in `deletions`: the held pass's message as the
    /// operator read it; a hold that is not that one is not released.
    #[serde(default)]
    seen: std::collections::BTreeMap<String, String>,
}

async fn clear(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let b: ClearBody = if no_body(&body) {
        ClearBody::default()
    } else {
        match parse_json(&s, &body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    match s.operator_clear_seen(&g, &by, &b.deletions, &b.seen) {
        Ok(c) => Json(ClearView {
            cleared: c.cleared,
            not_cleared: c.not_cleared,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    group: Option<String>,
}

async fn events(
    State(s): S,
    _: Reader,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return err(
            StatusCode::BAD_REQUEST,
            "query: after and limit must be integers, group a name",
        );
    };
    if let Some(r) = unknown_group(&s, q.group.as_deref()) {
        return r;
    }
    let limit = q.limit.unwrap_or(1000).min(10_000);
    match s.events_after(q.after, limit, q.group.as_deref()) {
        Ok(out) => Json(out).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct RunbooksQuery {
    #[serde(default)]
    group: Option<String>,
}

async fn runbooks(State(s): S, _: Reader, Query(q): Query<RunbooksQuery>) -> Response {
    if let Some(r) = unknown_group(&s, q.group.as_deref()) {
        return r;
    }
    Json(s.runbooks(q.group.as_deref())).into_response()
}

/// 404 for a `group=` filter naming no group of the config (an empty list
/// would read as "nothing happened to it").
fn unknown_group(s: &Shared, group: Option<&str>) -> Option<Response> {
    let g = group?;
    (!s.config().groups.contains_key(g)).then(|| {
        err(
            StatusCode::NOT_FOUND,
            format!("no group {:?}", crate::text::printable(g)),
        )
    })
}

async fn runbook_one(State(s): S, _: Reader, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return err(
            StatusCode::BAD_REQUEST,
            format!("runbook id must be an integer, got {id:?}"),
        );
    };
    match s.runbook(id) {
        Some(r) => Json(r).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("no runbook {id}")),
    }
}

async fn metrics(State(s): S, _: Reader, h: HeaderMap) -> Response {
    // What the scraper asks for: OpenMetrics only when its Accept says so.
    let openmetrics = h
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        s.metrics_text(openmetrics),
    )
        .into_response()
}
