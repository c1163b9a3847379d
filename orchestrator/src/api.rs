//! The HTTP API under `/v1`: agent reports and command long-polls (agent
//! tokens, each only for its own site), status, events and runbooks, and
//! operator actions (operator token). Bodies are size-limited; malformed input
//! gets a 4xx with a reason and changes nothing.

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
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use warden_proto::agent::{AgentReport, ApiError, ReportResponse};

use crate::model::{Event, EvidenceRow, GroupState, Pending, Phase, Runbook};
use crate::service::Shared;
use crate::OrchestratorError;

type S = State<Arc<Shared>>;

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

fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Check the operator token.
fn operator(s: &Shared, h: &HeaderMap) -> Result<(), Response> {
    match bearer(h) {
        Some(t) if s.operator.matches(t) => Ok(()),
        Some(t) if s.site_of_token(t).is_some() => {
            s.metrics.rejected.inc();
            Err(err(
                StatusCode::FORBIDDEN,
                "an agent token may not call operator endpoints",
            ))
        }
        Some(_) => {
            s.metrics.rejected.inc();
            Err(err(StatusCode::UNAUTHORIZED, "invalid bearer token"))
        }
        None => {
            s.metrics.rejected.inc();
            Err(err(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <token>",
            ))
        }
    }
}

/// Check an agent token; returns its site.
fn agent<'a>(s: &'a Shared, h: &HeaderMap) -> Result<&'a str, Response> {
    match bearer(h) {
        Some(t) => s.site_of_token(t).ok_or_else(|| {
            s.metrics.rejected.inc();
            err(StatusCode::UNAUTHORIZED, "invalid agent token")
        }),
        None => {
            s.metrics.rejected.inc();
            Err(err(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <token>",
            ))
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &Shared, body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        s.metrics.rejected.inc();
        err(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}"))
    })
}

/// Build the router.
pub fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.cfg.orchestrator.max_body_bytes;
    Router::new()
        .route("/v1/reports", post(report))
        .route("/v1/agents/commands", get(poll_commands))
        .route("/v1/status", get(status))
        .route("/v1/groups", get(groups))
        .route("/v1/groups/{group}", get(group))
        .route("/v1/groups/{group}/failover", post(failover))
        .route("/v1/groups/{group}/failback", post(failback))
        .route("/v1/groups/{group}/switchover", post(switchover))
        .route("/v1/groups/{group}/approve", post(approve))
        .route("/v1/groups/{group}/maintenance", post(maintenance))
        .route("/v1/groups/{group}/clear", post(clear))
        .route("/v1/groups/{group}/adopt-epoch", post(adopt_epoch))
        .route("/v1/groups/{group}/divergent", get(divergent))
        .route("/v1/sites", get(sites))
        .route("/v1/events", get(events))
        .route("/v1/runbooks", get(runbooks))
        .route("/v1/runbooks/{id}", get(runbook_one))
        .route("/metrics", get(metrics))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint; see docs/api.md") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

async fn report(State(s): S, h: HeaderMap, body: Bytes) -> Response {
    let t0 = Instant::now();
    let site = match agent(&s, &h) {
        Ok(x) => x.to_string(),
        Err(r) => return r,
    };
    let rep: AgentReport = match parse_json(&s, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if rep.site != site {
        s.metrics.rejected.inc();
        return err(
            StatusCode::FORBIDDEN,
            format!(
                "the token of site {site:?} may only report for {site:?}, not {:?}",
                rep.site
            ),
        );
    }
    if rep.checks.len() > 256 || rep.peers.len() > 256 || rep.outcomes.len() > 256 {
        s.metrics.rejected.inc();
        return err(
            StatusCode::BAD_REQUEST,
            "report has more than 256 checks, peers or outcomes",
        );
    }
    if let Some(p) = rep
        .peers
        .iter()
        .find(|p| !s.cfg.sites.contains_key(&p.site) && !s.frontend_probes.contains_key(&p.site))
    {
        s.metrics.rejected.inc();
        return err(
            StatusCode::BAD_REQUEST,
            format!("peers: unknown site or hybrid frontend {:?}", p.site),
        );
    }
    let resp: ReportResponse = s.accept_report(rep);
    s.metrics.reports.inc();
    s.metrics.report_seconds.observe(t0.elapsed().as_secs_f64());
    Json(resp).into_response()
}

#[derive(Deserialize)]
struct PollQuery {
    #[serde(default)]
    wait_ms: Option<u64>,
}

async fn poll_commands(
    State(s): S,
    h: HeaderMap,
    q: Result<Query<PollQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let site = match agent(&s, &h) {
        Ok(x) => x.to_string(),
        Err(r) => return r,
    };
    let Ok(Query(q)) = q else {
        return err(
            StatusCode::BAD_REQUEST,
            "wait_ms must be an integer number of milliseconds",
        );
    };
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0)).min(s.cfg.orchestrator.long_poll);
    let deadline = Instant::now() + wait;
    let mut rx = s.command_tick.subscribe();
    loop {
        let cmds = s.commands_for(&site);
        if !cmds.is_empty() || Instant::now() >= deadline {
            return Json(ReportResponse {
                commands: cmds,
                acked: vec![],
                epochs: Default::default(),
            })
            .into_response();
        }
        tokio::select! {
            r = tokio::time::timeout_at(deadline, rx.changed()) => { if matches!(r, Ok(Err(_))) { return err(StatusCode::SERVICE_UNAVAILABLE, "shutting down"); } }
            _ = s.shutdown.cancelled() => return err(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        }
    }
}

/// Health of one site as the orchestrator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteView {
    pub name: String,
    /// Last round's verdict: healthy, down, path_fault, dead_agent, unconfirmed, unknown.
    pub verdict: String,
    pub reason: String,
    pub confirmed_down: bool,
    pub down_rounds: u32,
    pub healthy_rounds: u32,
    /// Time left before a recovering site counts as recovered.
    pub hold_down_left_ms: Option<u64>,
    pub evidence: Vec<EvidenceRow>,
}

/// A group as shown by `warden status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupView {
    pub name: String,
    pub scheme: String,
    pub primary: String,
    pub active: String,
    pub epoch: u64,
    pub phase: Phase,
    pub maintenance: bool,
    pub pending: Option<Pending>,
    pub runbook: Option<Runbook>,
    pub sites: Vec<SiteView>,
    /// Conditions only an operator can clear (`warden clear GROUP`), e.g. a
    /// DNS provider that stopped itself after a fatal answer.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// `hybrid`: the frontend the DNS name points at (as decided).
    #[serde(default)]
    pub frontend: Option<String>,
    /// `hybrid`: each frontend machine's health, judged like a site.
    #[serde(default)]
    pub frontends: Vec<SiteView>,
    /// Groups with a replication plan.
    #[serde(default)]
    pub replication: Option<ReplicationView>,
}

/// A group's replication, as `warden status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicationView {
    pub plan: String,
    /// The group's divergent policy.
    pub divergent_policy: String,
    /// `replicating` (active → standby runs), `paused` (after a failover,
    /// until the failback's resync), `resync` (a returning site fetches),
    /// `starting`, or `not running`.
    pub state: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// The active site's reported lag, ms.
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// What losing the active site now would lose, ms (lag + report age, or
    /// the time since replication was paused).
    #[serde(default)]
    pub rpo_ms: Option<u64>,
    /// A resync that runs now: items/bytes done and left, passes.
    #[serde(default)]
    pub progress: Option<warden_proto::agent::ResyncProgressWire>,
    #[serde(default)]
    pub passes: u32,
    /// `SITE: error` for every site whose last replication attempt failed.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Divergent items found by the last resync: the first
    /// [`DIVERGENT_IN_STATUS`]; all of them through
    /// `GET /v1/groups/{group}/divergent`.
    #[serde(default)]
    pub divergent: Vec<warden_proto::agent::DivergentWire>,
    /// How many divergent items there are in all.
    #[serde(default)]
    pub divergent_total: usize,
}

/// Divergent items shown in a status view.
pub const DIVERGENT_IN_STATUS: usize = 100;

fn replication_view(s: &Shared, g: &GroupState) -> Option<ReplicationView> {
    let rc = s.cfg.groups[&g.name].replication.as_ref()?.get_ref();
    let st = s.lock();
    let sites = s.cfg.groups[&g.name].site_names();
    let mut v = ReplicationView {
        plan: rc.plan.as_str().to_string(),
        divergent_policy: rc.divergent.as_str().to_string(),
        state: "not running".into(),
        source: None,
        target: None,
        lag_ms: None,
        rpo_ms: s.rpo_ms(&st, &g.name, s.clock.now_ms()),
        progress: None,
        passes: 0,
        errors: Vec::new(),
        divergent: g
            .divergent
            .iter()
            .take(DIVERGENT_IN_STATUS)
            .cloned()
            .collect(),
        divergent_total: g.divergent.len(),
    };
    for site in &sites {
        let Some((_, r)) = Shared::replication_status(&st, site, &g.name) else {
            continue;
        };
        if let Some(e) = &r.error {
            v.errors.push(format!("{site}: {e}"));
        }
        match r.role.as_str() {
            "source" if *site == g.active => {
                v.state = "replicating".into();
                v.source = Some(site.clone());
                v.target = r.peer.clone();
                v.lag_ms = r.lag_ms;
            }
            "resync" => {
                v.state = "resync".into();
                v.source = r.peer.clone();
                v.target = Some(site.clone());
                v.progress = r.progress;
                v.passes = r.passes;
            }
            _ => {}
        }
    }
    if v.state == "not running" && g.replication_paused_since_unix_ms.is_some() {
        v.state = "paused".into();
    }
    Some(v)
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub isolated: bool,
    pub groups: Vec<GroupView>,
}

fn site_views(s: &Shared, names: &[String]) -> Vec<SiteView> {
    views(s, names, false)
}

/// Site views from the site detector, or (`frontends`) from the detector of hybrid frontends.
fn views(s: &Shared, names: &[String], frontends: bool) -> Vec<SiteView> {
    let st = s.lock();
    let (detector, evidence) = if frontends {
        (&st.fe_detector, &st.fe_evidence)
    } else {
        (&st.detector, &st.evidence)
    };
    let now = Instant::now();
    names
        .iter()
        .map(|n| {
            let (v, evidence) = detector.evaluate(evidence, n, now);
            let t = detector.track(n).cloned().unwrap_or_default();
            SiteView {
                name: n.clone(),
                verdict: t
                    .last
                    .as_ref()
                    .map(|v| v.label())
                    .unwrap_or("unknown")
                    .to_string(),
                reason: v.reason().to_string(),
                confirmed_down: t.confirmed_down,
                down_rounds: t.down_rounds,
                healthy_rounds: t.healthy_rounds,
                hold_down_left_ms: if t.confirmed_down || t.healthy_since.is_some() {
                    detector
                        .hold_down_left(n, now)
                        .map(|d| d.as_millis() as u64)
                } else {
                    None
                },
                evidence,
            }
        })
        .collect()
}

fn group_view(s: &Shared, g: &GroupState) -> GroupView {
    let gc = &s.cfg.groups[&g.name];
    let runbook = {
        let st = s.lock();
        g.runbook
            .and_then(|id| st.runbooks.get(&id).cloned())
            .or_else(|| {
                st.runbooks
                    .values()
                    .rev()
                    .find(|r| r.group == g.name)
                    .cloned()
            })
    };
    GroupView {
        name: g.name.clone(),
        scheme: gc.scheme.get_ref().as_str().to_string(),
        primary: gc.primary().to_string(),
        active: g.active.clone(),
        epoch: g.epoch,
        phase: g.phase,
        maintenance: g.maintenance,
        pending: g.pending.clone(),
        runbook,
        sites: site_views(s, &gc.site_names()),
        alerts: s.alerts(&g.name),
        frontend: g.frontend.clone().or_else(|| {
            (gc.scheme.get_ref() == &warden_config::Scheme::Hybrid)
                .then_some(gc.frontend.as_ref())
                .flatten()
                .and_then(|f| f.get_ref().frontends.first())
                .map(|f| f.get_ref().clone())
        }),
        replication: replication_view(s, g),
        frontends: if gc.scheme.get_ref() == &warden_config::Scheme::Hybrid {
            let names: Vec<String> = gc
                .frontend
                .iter()
                .flat_map(|f| f.get_ref().frontends.iter().map(|n| n.get_ref().clone()))
                .collect();
            views(s, &names, true)
        } else {
            Vec::new()
        },
    }
}

async fn status(State(s): S, h: HeaderMap) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let groups: Vec<GroupState> = s.lock().groups.values().cloned().collect();
    let isolated = s.lock().detector.is_isolated();
    Json(StatusView {
        isolated,
        groups: groups.iter().map(|g| group_view(&s, g)).collect(),
    })
    .into_response()
}

async fn groups(State(s): S, h: HeaderMap) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let groups: Vec<GroupState> = s.lock().groups.values().cloned().collect();
    Json(groups.iter().map(|g| group_view(&s, g)).collect::<Vec<_>>()).into_response()
}

async fn group(State(s): S, h: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let g = s.lock().groups.get(&name).cloned();
    match g {
        Some(g) => Json(group_view(&s, &g)).into_response(),
        None => OrchestratorError::NotFound(format!("group {name:?}")).into_response(),
    }
}

async fn sites(State(s): S, h: HeaderMap) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let names: Vec<String> = s.cfg.sites.keys().cloned().collect();
    Json(site_views(&s, &names)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailoverBody {
    to: String,
}

#[derive(Serialize)]
struct Started {
    runbook: u64,
}

async fn failover(State(s): S, h: HeaderMap, Path(g): Path<String>, body: Bytes) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let b: FailoverBody = match parse_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.operator_failover(&g, &b.to) {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn failback(State(s): S, h: HeaderMap, Path(g): Path<String>) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    match s.operator_failback(&g) {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn switchover(State(s): S, h: HeaderMap, Path(g): Path<String>, body: Bytes) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let b: FailoverBody = match parse_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.operator_switchover(&g, &b.to) {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn approve(State(s): S, h: HeaderMap, Path(g): Path<String>) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    match s.operator_approve(&g) {
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

async fn adopt_epoch(State(s): S, h: HeaderMap, Path(g): Path<String>) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    match s.operator_adopt_epoch(&g) {
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

/// `GET /v1/groups/{group}/divergent?offset=N&limit=M` answer: one page of
/// the divergent items the last resync found (reports carry pages only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DivergentPage {
    pub total: usize,
    pub offset: usize,
    pub items: Vec<warden_proto::agent::DivergentWire>,
}

async fn divergent(
    State(s): S,
    h: HeaderMap,
    Path(g): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let Ok(Query(q)) = q else {
        return err(
            StatusCode::BAD_REQUEST,
            "offset and limit must be non-negative integers",
        );
    };
    let st = s.lock();
    let Some(gs) = st.groups.get(&g) else {
        return err(StatusCode::NOT_FOUND, format!("no group {g:?}"));
    };
    let limit = q.limit.unwrap_or(500).min(5000);
    let items: Vec<_> = gs
        .divergent
        .iter()
        .skip(q.offset)
        .take(limit)
        .cloned()
        .collect();
    Json(DivergentPage {
        total: gs.divergent.len(),
        offset: q.offset,
        items,
    })
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    on: bool,
}

async fn maintenance(State(s): S, h: HeaderMap, Path(g): Path<String>, body: Bytes) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let b: MaintenanceBody = match parse_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s.operator_maintenance(&g, b.on) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/groups/{group}/clear` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClearView {
    /// What was lifted (empty: nothing was blocked).
    pub cleared: Vec<String>,
}

async fn clear(State(s): S, h: HeaderMap, Path(g): Path<String>) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    match s.operator_clear(&g) {
        Ok(cleared) => Json(ClearView { cleared }).into_response(),
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
    h: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let Ok(Query(q)) = q else {
        return err(
            StatusCode::BAD_REQUEST,
            "query: after and limit must be integers, group a name",
        );
    };
    let limit = q.limit.unwrap_or(1000).min(10_000);
    // Page through the store so a filtered query never loads the whole history at once.
    let mut out: Vec<Event> = Vec::new();
    let mut after = q.after;
    while out.len() < limit {
        let page = match s.store.events(after, 1000) {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        let Some(last) = page.last().map(|e| e.id) else {
            break;
        };
        after = last;
        out.extend(page.into_iter().filter(|e| {
            q.group
                .as_ref()
                .is_none_or(|g| e.group.as_deref() == Some(g.as_str()))
        }));
    }
    out.truncate(limit);
    Json(out).into_response()
}

#[derive(Deserialize)]
struct RunbooksQuery {
    #[serde(default)]
    group: Option<String>,
}

async fn runbooks(State(s): S, h: HeaderMap, Query(q): Query<RunbooksQuery>) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let st = s.lock();
    let out: Vec<Runbook> = st
        .runbooks
        .values()
        .filter(|r| q.group.as_ref().is_none_or(|g| &r.group == g))
        .cloned()
        .collect();
    Json(out).into_response()
}

async fn runbook_one(State(s): S, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let Ok(id) = id.parse::<u64>() else {
        return err(
            StatusCode::BAD_REQUEST,
            format!("runbook id must be an integer, got {id:?}"),
        );
    };
    match s.lock().runbooks.get(&id).cloned() {
        Some(r) => Json(r).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("no runbook {id}")),
    }
}

async fn metrics(State(s): S, h: HeaderMap) -> Response {
    if let Err(r) = operator(&s, &h) {
        return r;
    }
    let alerts: usize = s.cfg.groups.keys().map(|g| s.alerts(g).len()).sum();
    s.metrics.alerts.set(alerts as i64);
    {
        let st = s.lock();
        let now = s.clock.now_ms();
        for (name, g) in &s.cfg.groups {
            if g.replication.is_some() {
                let rpo = s.rpo_ms(&st, name, now).map(|v| v as i64).unwrap_or(-1);
                s.metrics
                    .rpo_ms
                    .get_or_create(&vec![("group".to_string(), name.clone())])
                    .set(rpo);
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}
