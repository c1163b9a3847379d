//! Wire types of the frontend control API (a compatibility boundary, served
//! by `warden frontend`, spoken by the orchestrator's builtin driver).
//!
//! - `PUT /v1/routes/{group}` with [`SetRoute`] → 200 [`RouteState`], 409 on a stale epoch;
//! - `GET /v1/routes` → map group → [`RouteState`];
//! - `GET /v1/routes/{group}` → [`RouteState`] of one group;
//! - `PUT /v1/routes/{group}/hold` with [`Hold`] → 200 [`RouteState`], 409 on a stale epoch
//!   or an order placed before the newest of its epoch (with that newest place);
//! - `GET /v1/health` → 200 while the frontend runs;
//! - `GET /metrics` → Prometheus text: routes, connections, held connections.
//!
//! Every request carries `Authorization: Bearer <token>` (else 401). Errors
//! answer [`ErrorBody`]: 400 bad body or site, 404 unknown group, 409 stale
//! or conflicting epoch (with `seen_epoch`), 413 body over 64 KiB.
//!
//! Epoch rules for `PUT`: lower than the highest seen → 409 "stale epoch N < M";
//! equal with the routed site → 200, nothing changes (a repeat); equal with
//! another site → 409 (two decisions for one epoch); higher → applied.

use serde::{Deserialize, Serialize};

/// Set the route of one group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SetRoute {
    /// Site to route to (must be a backend of the group in this frontend's config).
    pub site: String,
    /// Fencing token; lower than the highest seen → 409.
    pub epoch: u64,
    /// "immediate" (close old connections now) or "drain" (let them finish for drain_timeout).
    #[serde(default)]
    pub mode: RouteMode,
    /// The term of the licence the order was given under (as
    /// [`Hold::term`]): said in a refusal. Absent or `0`: no term.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub term: u64,
    /// The etcd cluster of `term` (as [`Hold::cluster`]): an order of a
    /// cluster this frontend left (a deposed leader of the old cluster,
    /// still licensed there) is refused, 409, whatever its epoch — as
    /// its hold orders are. The move to a new cluster is taken with a
    /// hold order (every move sends one before its route). Absent: judged
    /// by the epoch alone (one orchestrator, or an older one). Sent only
    /// with etcd, after the frontends were upgraded (an older frontend
    /// refuses an unknown field, 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<u64>,
}

/// A hold order: a switch of the group may be coming (its site is suspected,
/// or a runbook is under way). Until `ttl_ms` has passed or the route
/// switches, a new connection whose backend refuses or times out is held (at
/// most the group's `hold_connections`) and connected to the new site as
/// soon as the route changes. Without an order a refused connect fails at once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// Fencing token: the group's epoch as the orchestrator knows it; lower
    /// than the highest route or hold epoch seen → 409. Also 409 at that
    /// epoch for a late copy of a cut-over (`pause`): after the withdrawal
    /// of the order of its epoch (unless both carry `seq` and the
    /// cut-over is placed after it: given after it), or at the epoch the group is already
    /// routed at (the switch it announced has come).
    pub epoch: u64,
    /// The order's place among the orders of its epoch (the orchestrator
    /// sends them without waiting for each other, so they may land out of
    /// order), with `term`: at the epoch of the newest order the group
    /// took, one placed lower — a lower `term`, or the same `term` and a
    /// lower `seq` — is older → 409 (a late copy, with the newest place
    /// taken in `newest_term`/`newest_seq`), whatever it asks; the same
    /// place is a repeat, taken. The orchestrator gives the time it gave
    /// the order (ms since the Unix epoch, strictly increasing within a
    /// process, and above every place a frontend reported taken). Absent
    /// or `0`: unordered (an older orchestrator), judged by the epoch alone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// The term of the licence the order was given under, placed before
    /// `seq`: with etcd, the revision at which the giver's leader key was
    /// created — it grows with every election, so a later leader's orders
    /// outrank its predecessor's whatever their clocks say, and a deposed
    /// leader's late copy stays refused. Absent or `0`: no term (a single
    /// orchestrator on its local store, or an older one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub term: u64,
    /// The etcd cluster `term` belongs to (the identity of the orchestrators' data in it, `P identity`): terms start
    /// over in a new cluster, so the frontend compares the places of one
    /// cluster only, refuses an order of a cluster it left, and takes one
    /// of a cluster it never heard as the orchestrators' move there,
    /// whatever its term (see [`crate::cluster`]). Absent: no cluster (a
    /// single orchestrator, or an older one: judged by `term` as before).
    /// Sent only with etcd, after the frontends were upgraded (an older
    /// frontend refuses an unknown field, 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<u64>,
    /// How long the order stands, in ms (capped by the frontend at
    /// [`MAX_HOLD_TTL_MS`]); `0` withdraws an order.
    pub ttl_ms: u64,
    /// A cut-over is under way (a runbook is about to demote the routed
    /// site, or it is confirmed down): new connections do not go to the
    /// current backend at all, they wait for the switch. Without it (a
    /// suspected site) they try the current backend first and wait only if
    /// it fails. Absent: `false` (an older orchestrator).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
}

/// `seq` absent: an unordered order.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The longest a hold order stands: a crashed or deposed orchestrator
/// cannot leave a frontend holding for longer.
pub const MAX_HOLD_TTL_MS: u64 = 10 * 60 * 1000;

/// How existing connections to the old backend are treated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RouteMode {
    /// Close connections to the old backend at once (a disaster).
    #[default]
    Immediate,
    /// Let connections to the old backend live for the group's drain timeout (a planned move).
    Drain,
}

/// The route of one group as the frontend holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteState {
    /// Site now routed to; `None` after a start with no state.
    pub site: Option<String>,
    /// Backend address of that site.
    pub backend: Option<String>,
    /// Highest epoch seen for this group.
    pub epoch: u64,
    /// How many times the routed site changed since this frontend started.
    pub switches: u64,
    /// Open client connections.
    pub active_connections: u64,
    /// Time left of the hold order in effect, ms; `0`: no order.
    #[serde(default)]
    pub hold_remaining_ms: u64,
    /// Connections held right now (waiting for a route change).
    #[serde(default)]
    pub held_now: u64,
    /// Connections held since the frontend started.
    #[serde(default)]
    pub held_total: u64,
    /// Held connections connected to a new site after a route change.
    #[serde(default)]
    pub held_rescued: u64,
    /// Held connections closed when their hold time was over.
    #[serde(default)]
    pub held_timed_out: u64,
    /// New connections refused without a hold order and tried again
    /// (`connect_retry`).
    #[serde(default)]
    pub retried_total: u64,
    /// The term ([`Hold::term`]) of the newest hold order taken at the
    /// group's highest hold epoch; absent: none, or none with a term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_term: Option<u64>,
    /// The place ([`Hold::seq`]) of the newest hold order taken at the
    /// group's highest hold epoch; absent: none placed (or an older
    /// frontend). The orchestrator places its later orders above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_seq: Option<u64>,
}

/// Body of every error answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong, for humans and logs.
    pub error: String,
    /// On 409: the highest epoch this frontend has accepted for the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_epoch: Option<u64>,
    /// On 409 for a hold order placed before the newest of its epoch: that
    /// newest order's term ([`Hold::term`]; absent: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_term: Option<u64>,
    /// On 409 for a hold order placed before the newest of its epoch: that
    /// newest order's place ([`Hold::seq`]), which the orchestrator places
    /// its later orders above (never re-sending the refused one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_seq: Option<u64>,
}
