//! `GET /metrics` of the control API: Prometheus text of each group's
//! route epoch, switches, connections, holds and refused orders, the proxy
//! workers' loads, unauthorized requests and the fence file's state.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Ctx;
use crate::api::RouteState;

/// One metric: name, type, help, and how to read it from a [`RouteState`].
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&RouteState) -> u64,
);

/// Prometheus text: each group's route epoch, switches, connections and holds.
pub(super) async fn metrics(State(ctx): State<Ctx>) -> Response {
    let states = ctx.table.states();
    let mut out = String::new();
    let series: [Series; 8] = [
        (
            "warden_frontend_route_epoch",
            "gauge",
            "Epoch of the group's route (a hold order may have fenced a higher one; refusals name it as seen_epoch).",
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
    out.push_str("# HELP warden_frontend_refused_orders_total Route and hold orders refused by the group's epoch fence, by reason: stale (older than the highest epoch accepted), conflict (another site at an epoch a route already named), late_copy (a hold order placed before the newest of its epoch, or of an etcd cluster the frontend left, or a cut-over whose order was withdrawn or whose switch came), unknown_site (a site the group has no backend for). An orchestrator that was deposed, or a second one, still sending.\n# TYPE warden_frontend_refused_orders_total counter\n");
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
            "# HELP warden_frontend_fence_lost 1 from a start that found fence.json gone from a state_dir that held it, or holding for a group an epoch no orchestrator decides (the highest epochs accepted are forgotten), until an order is kept again for every such group it serves.\n# TYPE warden_frontend_fence_lost gauge\nwarden_frontend_fence_lost {}\n",
            u8::from(fence.lost())
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
