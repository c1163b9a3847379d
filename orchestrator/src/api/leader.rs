//! Which orchestrator leads, for load balancers, systemd and the CLI:
//! `GET /v1/leader` (200 on the leader, 503 on the others, like Patroni's
//! `/leader`), `GET /healthz` (200 while the process serves), and the
//! guard of operator actions: a node that does not lead answers them with
//! `307 Temporary Redirect` to the leader's URL (the CLI follows it only to
//! an orchestrator URL it knows), or `503` when nobody leads — or when the
//! leader is a node this node's config does not name, or bears this
//! node's own name without this process holding the lease (503 naming it).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::service::Shared;

/// The body of `GET /v1/leader`.
#[derive(Debug, Serialize)]
pub struct LeaderView {
    /// The node that answered.
    pub node: String,
    /// Whether it leads (holds the licence to act).
    pub is_leader: bool,
    /// Who leads, as this node last saw it.
    pub leader: Option<String>,
    /// The leader's API URL (from the config), when known.
    pub leader_url: Option<String>,
    /// `local` or `etcd`.
    pub store: &'static str,
    pub term: Option<i64>,
    /// The etcd cluster `term` is a revision of, while this node leads
    /// (terms start over in a new cluster); `warden status` shows it on
    /// the leader's line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<u64>,
    pub lease_ttl_ms: Option<u64>,
    pub lease_remaining_ms: Option<u64>,
    /// Whether etcd answered this node's last request.
    pub etcd_ok: Option<bool>,
    pub etcd_trouble: Option<String>,
    /// Why this node's last take-over failed (etcd), until it takes over.
    pub take_over_failed: Option<String>,
}

/// What this node knows of the leadership.
pub fn view(s: &Shared) -> LeaderView {
    match s.leadership() {
        None => LeaderView {
            node: "orchestrator".into(),
            is_leader: s.licence().is_held(),
            leader: Some("orchestrator".into()),
            leader_url: Some(s.config().orchestrator.base_url()),
            store: "local",
            term: None,
            cluster: None,
            lease_ttl_ms: None,
            lease_remaining_ms: None,
            etcd_ok: None,
            etcd_trouble: None,
            take_over_failed: None,
        },
        Some(l) => LeaderView {
            leader_url: l.leader.as_deref().and_then(|n| s.node_url(n)),
            node: l.node,
            is_leader: l.is_leader,
            leader: l.leader,
            store: "etcd",
            term: l.term,
            cluster: l.cluster,
            lease_ttl_ms: Some(l.lease_ttl_ms),
            lease_remaining_ms: l.lease_remaining_ms,
            etcd_ok: Some(l.etcd_ok),
            etcd_trouble: l.etcd_trouble,
            take_over_failed: l.take_over_failed,
        },
    }
}

/// `GET /v1/leader`: 200 on the leader, 503 elsewhere; no token needed.
pub async fn leader(State(s): State<Arc<Shared>>) -> Response {
    let v = view(&s);
    let status = if v.is_leader {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(v)).into_response()
}

/// `GET /healthz`: the process serves.
pub async fn healthz() -> Response {
    (StatusCode::OK, Json(serde_json::json!({ "ok": true }))).into_response()
}

/// Operator actions only on the leader: elsewhere a redirect to it.
pub async fn leader_only(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if s.licence().is_held() {
        return next.run(req).await;
    }
    let v = view(&s);
    match (&v.leader, &v.leader_url) {
        (Some(name), Some(url)) if name != &v.node => {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let location = format!("{url}{path}");
            let body = serde_json::json!({
                "error": format!("orchestrator {} does not lead; the leader is {name} at {url}", v.node),
                "leader": name,
                "leader_url": url,
            });
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
                Json(body),
            )
                .into_response()
        }
        // A leader this node's config does not name (the nodes' configs
        // differ: one restarted with a new file, not the others yet): it
        // cannot be redirected to, but it leads — said, never "nobody".
        (Some(name), None) if name != &v.node => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "error": format!(
                    "orchestrator {} does not lead; the leader is {name}, which this node's config does not \
                     name in [[orchestrator.nodes]] (give every node the same config): send the action to {name}",
                    v.node
                ),
                "leader": name,
            })),
        )
            .into_response(),
        // The leader key names this very node, yet this process holds no
        // licence: it is loading the state it just won, or the key is on
        // another lease — this node's previous process's (until it runs
        // out), or another process's started with this node's name (on
        // another host) that leads and acts. Never "nobody leads".
        (Some(name), _) => {
            let error = if v.term.is_some() {
                format!(
                    "orchestrator {name} won the leader lease and is loading the state; \
                     try again in a moment"
                )
            } else {
                format!(
                    "orchestrator {name} does not lead, but the leader key names {name}: \
                     held by another process started as {name} (on another host: give every \
                     node its own name), or by this node's previous process until its lease \
                     runs out; actions wait"
                )
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": error, "leader": name })),
            )
                .into_response()
        }
        _ => {
            let why = v
                .etcd_trouble
                .map(|t| format!(" (etcd: {t})"))
                .unwrap_or_default();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "error": format!("no orchestrator leads now{why}; actions wait for a leader"),
                })),
            )
                .into_response()
        }
    }
}
