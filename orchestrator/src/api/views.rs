//! The read views (the read-only token or an operator's): status, groups,
//! sites, a group's divergent items, events, runbooks and metrics.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::Reader;
use super::{err, S};
use crate::service::Shared;
use crate::OrchestratorError;

pub(super) async fn status(State(s): S, _: Reader) -> Response {
    Json(s.status_view()).into_response()
}

pub(super) async fn groups(State(s): S, _: Reader) -> Response {
    Json(s.group_views()).into_response()
}

pub(super) async fn group(State(s): S, _: Reader, Path(name): Path<String>) -> Response {
    match s.group_view(&name) {
        Some(g) => Json(g).into_response(),
        None => OrchestratorError::NotFound(format!("group {name:?}")).into_response(),
    }
}

pub(super) async fn sites(State(s): S, _: Reader) -> Response {
    Json(s.site_views()).into_response()
}

/// Unknown parameters are refused: a misspelt one would read as absent
/// (every group's events, from the first).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    limit: Option<usize>,
}

pub(super) async fn divergent(
    State(s): S,
    _: Reader,
    Path(g): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query("query: offset and limit must be non-negative integers", &e),
    };
    let limit = q.limit.unwrap_or(500).min(5000);
    match s.divergent_page(&g, q.offset, limit) {
        Some(page) => Json(page).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("no group {g:?}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    group: Option<String>,
}

pub(super) async fn events(
    State(s): S,
    _: Reader,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query("query: after and limit must be integers, group a name", &e),
    };
    if let Some(r) = unknown_group(&s, q.group.as_deref()) {
        return r;
    }
    let limit = q.limit.unwrap_or(1000).min(10_000);
    match s.events_after(q.after, limit, q.group.as_deref()) {
        Ok(page) => {
            let mut r = Json(page.events).into_response();
            if let Some(id) = page.scanned_through {
                r.headers_mut().insert(
                    crate::service::SCANNED_THROUGH,
                    axum::http::HeaderValue::from(id),
                );
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunbooksQuery {
    #[serde(default)]
    group: Option<String>,
}

pub(super) async fn runbooks(
    State(s): S,
    _: Reader,
    q: Result<Query<RunbooksQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query("query: group must be a name", &e),
    };
    if let Some(r) = unknown_group(&s, q.group.as_deref()) {
        return r;
    }
    Json(s.runbooks(q.group.as_deref())).into_response()
}

/// 400 for a query that cannot be read (a wrong type, an unknown
/// parameter): `what` says what is expected, the rejection which part.
fn bad_query(what: &str, e: &axum::extract::rejection::QueryRejection) -> Response {
    err(
        StatusCode::BAD_REQUEST,
        format!("{what} ({})", e.body_text()),
    )
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

pub(super) async fn runbook_one(State(s): S, _: Reader, Path(id): Path<String>) -> Response {
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

pub(super) async fn metrics(State(s): S, _: Reader, h: HeaderMap) -> Response {
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
