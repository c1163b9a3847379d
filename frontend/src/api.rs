//! Wire types of the frontend control API (a compatibility boundary).
//!
//! - `PUT /v1/routes/{group}` with [`SetRoute`] → 200 [`RouteState`], 409 on a stale epoch;
//! - `GET /v1/routes` → map group → [`RouteState`].
//!
//! Every request carries `Authorization: Bearer <token>`.

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
}

/// How existing connections to the old backend are treated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RouteMode {
    #[default]
    Immediate,
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
}
