//! The operator actions under `/v1/groups/{group}/` (operator tokens, on
//! the leader): failover, failback, switchover, resync, approve,
//! adopt-epoch, maintenance and clear — each body parsed (what the operator
//! saw, where the action takes it) and the service's action called under
//! the operator's name.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Operator;
use super::{no_body, optional_json, parse_json, S};

/// `POST …/failover` and `…/switchover` body: the target, and optionally
/// what the group was when the operator asked
/// ([`crate::service::SeenGroup`]; a body without them, as older clients
/// send, moves whatever the group is now).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveToBody {
    to: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
}

impl MoveToBody {
    /// The target, and the group as the operator saw it.
    fn split(self) -> (String, crate::service::SeenGroup) {
        let seen = crate::service::SeenGroup {
            from: self.from,
            epoch: self.epoch,
        };
        (self.to, seen)
    }
}

#[derive(Serialize)]
struct Started {
    runbook: u64,
}

/// An action that starts a runbook: 202 with its id once its decision is
/// stored ([`crate::service::Shared::runbook_stored`]), or the service's
/// refusal.
fn started(r: Result<u64, crate::OrchestratorError>) -> Response {
    match r {
        Ok(id) => (StatusCode::ACCEPTED, Json(Started { runbook: id })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST …/failover`: [`MoveToBody`].
pub(super) async fn failover(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    match parse_json::<MoveToBody>(&s, &body) {
        Ok(b) => {
            let (to, seen) = b.split();
            started(
                s.runbook_stored(&g, |s| s.operator_failover_seen(&g, &to, &by, &seen))
                    .await,
            )
        }
        Err(r) => r,
    }
}

/// `POST …/failback`: an optional body says what the group was when the
/// operator asked ([`crate::service::SeenGroup`]); none (empty, or `null`
/// as older CLIs send) fails back whatever it is.
pub(super) async fn failback(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let seen: crate::service::SeenGroup = match optional_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    started(
        s.runbook_stored(&g, |s| s.operator_failback_seen(&g, &by, &seen))
            .await,
    )
}

/// `POST …/switchover`: [`MoveToBody`].
pub(super) async fn switchover(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    match parse_json::<MoveToBody>(&s, &body) {
        Ok(b) => {
            let (to, seen) = b.split();
            started(
                s.runbook_stored(&g, |s| s.operator_switchover_seen(&g, &to, &by, &seen))
                    .await,
            )
        }
        Err(r) => r,
    }
}

/// `POST …/resync`: an optional body says what the group was when the
/// operator asked ([`crate::service::SeenGroup`]: `from`, `epoch`), as for
/// the moves; none (empty, `null` or `{}`) resyncs whatever the group is.
/// Any other field is refused (400), as in every operator body.
pub(super) async fn resync(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let seen: crate::service::SeenGroup = match optional_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    started(
        s.runbook_stored(&g, |s| s.operator_resync_seen(&g, &by, &seen))
            .await,
    )
}

/// `POST .../approve`: the body says which pending decision is approved
/// (`SeenPending`: `kind`, `to`, `since_unix_ms`, each optional); none (an
/// empty body, or `null` as older CLIs send) approves whatever is pending.
pub(super) async fn approve(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let seen: crate::service::SeenPending = match optional_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    started(
        s.runbook_stored(&g, |s| s.operator_approve_seen(&g, &by, &seen))
            .await,
    )
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

pub(super) async fn adopt_epoch(
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
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    on: bool,
    /// The group's maintenance change the operator read (`maintenance_seq`
    /// of the group's view); refused when maintenance changed since.
    #[serde(default)]
    maintenance_seq: Option<u64>,
}

pub(super) async fn maintenance(
    State(s): S,
    Operator(by): Operator,
    Path(g): Path<String>,
    body: Bytes,
) -> Response {
    let b: MaintenanceBody = match parse_json(&s, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s
        .operator_maintenance_stored(&g, b.on, b.maintenance_seq, &by)
        .await
    {
        Ok((maintenance, maintenance_seq)) => Json(serde_json::json!({
            "maintenance": maintenance,
            "maintenance_seq": maintenance_seq,
        }))
        .into_response(),
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
    /// The group's alerts as the operator read them: one raised since is
    /// not lifted.
    #[serde(default)]
    alerts: Option<Vec<String>>,
    /// How many divergent items the operator read: a list that changed
    /// since is not acknowledged.
    #[serde(default)]
    divergent: Option<u64>,
}

pub(super) async fn clear(
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
    let read = crate::service::AlertsRead {
        alerts: b.alerts,
        divergent: b.divergent,
    };
    match s.operator_clear_read(&g, &by, &b.deletions, &b.seen, &read) {
        Ok(c) => Json(ClearView {
            cleared: c.cleared,
            not_cleared: c.not_cleared,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}
