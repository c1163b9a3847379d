//! The orders of the control API: `PUT /v1/routes/{group}` and
//! `PUT /v1/routes/{group}/hold`, each epoch-fenced by the group's route,
//! the epoch kept on disk before the order takes effect, and their refusals
//! put into answers (404, 400, 409 with `seen_epoch`). An order once parsed
//! runs to its end in a task of its own, whatever becomes of its request.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tracing::{debug, error, info, warn};

use super::{group_in_path, group_route, ApiError, Ctx};
use crate::api::{ErrorBody, Hold, RouteState, SetRoute};
use crate::route::{Applied, GroupRoute, HoldRefused, Refused};

pub(super) async fn put_route(
    State(ctx): State<Ctx>,
    group: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RouteState>, ApiError> {
    let group = group_in_path(group)?;
    let g = group_route(&ctx, &group)?;
    let req: SetRoute = parse_body(body, "SetRoute")?;
    beyond_reach(req.epoch)?;
    carry_out(route_order(ctx, group, g, req)).await
}

/// Run an order to its end, whatever becomes of its request: once its
/// fence is raised (in memory, and on its way to disk) the order takes
/// effect, even if its sender gives up or its connection drops while the
/// write is waited for — the server then drops the request's handler,
/// which would leave the fence above the route (a late order between the
/// two taken now, refused after a restart) and the order half done.
async fn carry_out<F>(order: F) -> Result<Json<RouteState>, ApiError>
where
    F: std::future::Future<Output = Result<Json<RouteState>, ApiError>> + Send + 'static,
{
    tokio::spawn(order).await.unwrap_or_else(|e| {
        error!(cause = %e, "an order's task failed");
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the order's task failed; read the route back before sending it again",
        ))
    })
}

/// A route order, from its fence write to its effect (see [`carry_out`]).
async fn route_order(
    ctx: Ctx,
    group: String,
    g: Arc<GroupRoute>,
    req: SetRoute,
) -> Result<Json<RouteState>, ApiError> {
    let _ordering = g.ordering.lock().await;
    // Of an etcd cluster this frontend left: a deposed leader's (still
    // licensed in its old cluster), whatever its epoch — before anything
    // is kept (`crate::fence::clusters`).
    if let Some(why) = ctx.clusters.refusal(req.cluster) {
        return Err(left_cluster(&g, &group, "route", req.epoch, req.term, why));
    }
    if g.refusal(&req).is_none() {
        // Taken: of another cluster, the orchestrators' move, kept with
        // its fence (as a hold order's): from now on the cluster left is
        // refused, its leader deposed — also when no hold order of the
        // new cluster came first (a route re-applied by reconciliation).
        let keep = |moved| {
            if let Some(fence) = &ctx.fence {
                fence.moved(moved);
            }
        };
        if let Err(why) = ctx.clusters.take(req.cluster, req.term, keep) {
            return Err(left_cluster(&g, &group, "route", req.epoch, req.term, why));
        }
    }
    if g.has_site(&req.site) {
        keep_epoch(&ctx, &group, req.epoch, Some(&req.site), None).await;
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
/// effect (a no-op unless it is higher than the one kept, or a hold
/// order's `hold` fence changed: see [`crate::fence::HoldKept`]). When the file
/// cannot be written the order is still carried out, fenced from memory
/// (see [`crate::fence`]): a failover must not wait for a disk — one that
/// does not answer is waited for [`crate::fence::WRITE_PATIENCE`] at most.
/// Here, not inside the route's own lock: every new connection takes that
/// lock, and none may wait for an fsync.
async fn keep_epoch(
    ctx: &Ctx,
    group: &str,
    epoch: u64,
    site: Option<&str>,
    hold: Option<crate::fence::HoldKept>,
) {
    let Some(fence) = &ctx.fence else {
        return;
    };
    if let Err(e) = fence.keep(group, epoch, site, hold).await {
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

/// 400 for an order at an epoch no orchestrator decides (see
/// [`warden_proto::EPOCH_CEILING`]): kept, it would fence off every later
/// order of the group.
fn beyond_reach(epoch: u64) -> Result<(), ApiError> {
    match warden_proto::epoch_beyond_reach(epoch) {
        Some(why) => {
            warn!(epoch, "an order refused: {why}");
            Err(ApiError::new(StatusCode::BAD_REQUEST, why))
        }
        None => Ok(()),
    }
}

/// A hold order (see [`crate::api::Hold`]), fenced like a route.
pub(super) async fn put_hold(
    State(ctx): State<Ctx>,
    group: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RouteState>, ApiError> {
    let group = group_in_path(group)?;
    let g = group_route(&ctx, &group)?;
    let req: Hold = parse_body(body, "Hold")?;
    beyond_reach(req.epoch)?;
    carry_out(hold_order(ctx, group, g, req)).await
}

/// A hold order, from its fence write to its effect (see [`carry_out`]).
async fn hold_order(
    ctx: Ctx,
    group: String,
    g: Arc<GroupRoute>,
    req: Hold,
) -> Result<Json<RouteState>, ApiError> {
    let _ordering = g.ordering.lock().await;
    // Of an etcd cluster this frontend left: a deposed leader's, whatever
    // its place (`crate::fence::clusters`).
    if let Some(why) = ctx.clusters.refusal(req.cluster) {
        return Err(left_cluster(&g, &group, "hold", req.epoch, req.term, why));
    }
    // What fences the next order (its place, a withdrawal) is kept with
    // the epoch: a restarted frontend refuses the late copies this one does.
    let judged = g.hold_fence_after(&req);
    if judged.is_ok() {
        // Taken: of another cluster, the orchestrators' move, kept with it
        // (in the fence file's next write, staged before any other order
        // is judged by it).
        let keep = |moved| {
            if let Some(fence) = &ctx.fence {
                fence.moved(moved);
            }
        };
        if let Err(why) = ctx.clusters.take(req.cluster, req.term, keep) {
            return Err(left_cluster(&g, &group, "hold", req.epoch, req.term, why));
        }
    }
    keep_epoch(&ctx, &group, req.epoch, None, judged.ok().flatten()).await;
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

/// 409 for a `kind` order (route or hold) of an etcd cluster this
/// frontend left (`why`), counted a late copy.
fn left_cluster(
    g: &GroupRoute,
    group: &str,
    kind: &str,
    epoch: u64,
    term: u64,
    why: String,
) -> ApiError {
    g.refused.late_copy.fetch_add(1, Ordering::Relaxed);
    let error = format!("{kind} order refused: {why} (group {group:?}, term {term})");
    warn!(group = %group, epoch, term, reason = %error, "{kind} order refused");
    ApiError {
        status: StatusCode::CONFLICT,
        body: ErrorBody {
            error,
            ..ErrorBody::default()
        },
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
