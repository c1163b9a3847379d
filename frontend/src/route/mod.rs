//! The route table: per group, the highest epoch seen, the routed site and
//! the *generation* of connections that go to it.
//!
//! A generation is one period during which a group routes to one backend. It
//! owns a [`CancellationToken`]: every proxied connection opened during the
//! generation holds a clone and closes when it fires. A switch starts a new
//! generation and fires the old token at once (`immediate`) or after the
//! group's drain timeout (`drain`). Tokens are children of the frontend's
//! shutdown token, so shutdown closes every connection.
//!
//! Hold orders (a switch of the group may be coming: new connections may
//! wait for it) are [`hold`]'s; their state is kept here, under the group's
//! lock, because a switch ends them and their epoch fences routes too.
//!
//! Routes are in memory only: a restarted frontend has no route until the
//! orchestrator's reconciliation sends one. Its fence starts at the epoch
//! kept on disk ([`crate::fence`]), its hold orders' fence at theirs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{RouteMode, RouteState, SetRoute};
use crate::fence::Kept;
use crate::settings::GroupSettings;

mod hold;
mod set;

pub(crate) use hold::HoldRefused;
use hold::{HeldCounts, Holds};
pub(crate) use set::{Applied, Refused};

/// Every group this frontend serves.
pub(crate) struct Table {
    groups: BTreeMap<String, Arc<GroupRoute>>,
}

impl Table {
    /// One empty route per group, fenced at the epoch `kept` for it (none:
    /// 0); `shutdown` is the parent of every generation token, `tasks`
    /// tracks drain timers (connections are tracked by their proxy worker).
    pub(crate) fn new(
        groups: &BTreeMap<String, GroupSettings>,
        kept: &BTreeMap<String, Kept>,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Table {
        let groups = groups
            .iter()
            .map(|(name, g)| {
                let route = GroupRoute {
                    name: name.clone(),
                    backends: g.backends.clone(),
                    drain_timeout: g.drain_timeout,
                    hold_max: g.hold_connections,
                    retry_max: g.connect_retry,
                    switched: watch::Sender::new(0),
                    switch_count: std::sync::atomic::AtomicU64::new(0),
                    orders: watch::Sender::new(0),
                    held: HeldCounts::default(),
                    refused: RefusedOrders::default(),
                    shutdown: shutdown.clone(),
                    tasks: tasks.clone(),
                    inner: Mutex::new(Inner {
                        epoch: kept.get(name).map_or(0, |k| k.epoch),
                        kept_site: kept.get(name).and_then(|k| k.site.clone()),
                        holds: Holds::restored(kept.get(name).and_then(|k| k.hold.as_ref())),
                        ..Inner::default()
                    }),
                    active: AtomicU64::new(0),
                    ordering: tokio::sync::Mutex::new(()),
                };
                (name.clone(), Arc::new(route))
            })
            .collect();
        Table { groups }
    }

    pub(crate) fn group(&self, name: &str) -> Option<&Arc<GroupRoute>> {
        self.groups.get(name)
    }

    /// Every group's route, by name.
    pub(crate) fn routes(&self) -> impl Iterator<Item = (&String, &Arc<GroupRoute>)> {
        self.groups.iter()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    pub(crate) fn states(&self) -> BTreeMap<String, RouteState> {
        self.groups
            .iter()
            .map(|(k, g)| (k.clone(), g.state()))
            .collect()
    }
}

/// The route of one group.
pub(crate) struct GroupRoute {
    pub(crate) name: String,
    /// Site → backend `host:port`; routes may only name these sites.
    backends: BTreeMap<String, String>,
    drain_timeout: Duration,
    /// Longest a connection is held under a hold order (`0`: never held).
    hold_max: Duration,
    /// Longest a refused new connection keeps trying without a hold order.
    pub(crate) retry_max: Duration,
    /// The number of switches so far; held connections wait for it to move.
    switched: watch::Sender<u64>,
    /// The same number, read by every new connection once it is connected
    /// (`switch_count`): an atomic, not the channel's lock, on that path.
    switch_count: std::sync::atomic::AtomicU64,
    /// The number of hold orders accepted so far; connections waiting on a
    /// cut-over order look again when it moves (a withdrawal lets them go
    /// to the routed site).
    orders: watch::Sender<u64>,
    /// What the hold did (reported in [`RouteState`] and `/metrics`).
    pub(crate) held: HeldCounts,
    /// Orders refused by the group's fence (on `/metrics`).
    pub(crate) refused: RefusedOrders,
    /// Parent of every generation token (cancelled on shutdown).
    shutdown: CancellationToken,
    /// Tracks drain timers so that shutdown can wait for them.
    tasks: TaskTracker,
    inner: Mutex<Inner>,
    /// Open client connections of every generation (reported in [`RouteState`]).
    active: AtomicU64,
    /// Held by the control API from an order's fence write to its effect
    /// (see `control::keep_epoch`): two orders of the group at one epoch
    /// (two sites: a conflicting decision) would otherwise both wait for
    /// one write and race to the route, the one refused there being the
    /// one the file names — and taken after a restart.
    pub(crate) ordering: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Inner {
    /// Highest epoch accepted for this group.
    epoch: u64,
    /// How many times the routed site changed.
    switches: u64,
    /// The generation new connections join; `None` until the first route.
    current: Option<Generation>,
    /// Old generations left to drain; an immediate switch cuts them too.
    draining: Vec<Generation>,
    /// The group's hold orders ([`hold`]); their epoch fences routes too.
    holds: Holds,
    /// Before the first route since a restart: the site a route at
    /// `epoch` named before it ([`crate::fence`]); another site at that
    /// epoch is a conflict, as it was before the restart.
    kept_site: Option<String>,
}

/// Route and hold orders the group refused, per reason, since the start
/// (`warden_frontend_refused_orders_total`). A stale or conflicting one
/// comes from an authority older than, or beside, one this frontend
/// obeyed — a deposed or second orchestrator still sending — which an
/// operator alerts on; the log line alone would go unseen.
#[derive(Default)]
pub(crate) struct RefusedOrders {
    /// Older than the highest epoch accepted (a route or a hold order).
    pub(crate) stale: AtomicU64,
    /// Another site at the epoch a route already named (a conflicting decision).
    pub(crate) conflict: AtomicU64,
    /// A cut-over at an epoch whose order was withdrawn, or whose switch came.
    pub(crate) late_copy: AtomicU64,
    /// A route to a site the group has no backend for (configs that differ).
    pub(crate) unknown_site: AtomicU64,
}

impl RefusedOrders {
    /// `(reason label, count)` of each kind, for `/metrics`.
    pub(crate) fn counts(&self) -> [(&'static str, u64); 4] {
        [
            ("stale", self.stale.load(Ordering::Relaxed)),
            ("conflict", self.conflict.load(Ordering::Relaxed)),
            ("late_copy", self.late_copy.load(Ordering::Relaxed)),
            ("unknown_site", self.unknown_site.load(Ordering::Relaxed)),
        ]
    }
}

/// One period of routing to one backend (see the module docs); a cheap
/// handle (one reference count) that every connection of it holds.
#[derive(Clone)]
pub(crate) struct Generation(Arc<GenerationData>);

/// What a [`Generation`] is.
pub(crate) struct GenerationData {
    /// The group's switch count when this generation began.
    pub(crate) number: u64,
    pub(crate) site: String,
    pub(crate) backend: String,
    /// `backend` when it is an IP address and port (no name to resolve).
    pub(crate) backend_ip: Option<SocketAddr>,
    /// Fires when connections of this generation must close.
    pub(crate) cancel: CancellationToken,
    /// Open connections of this generation (for the drain log line).
    active: AtomicU64,
}

#[cfg(test)]
impl Generation {
    /// A generation of site "a" whose backend is `backend` (tests).
    pub(crate) fn for_test(backend: &str) -> Generation {
        Generation(Arc::new(GenerationData {
            number: 1,
            site: "a".into(),
            backend: backend.into(),
            backend_ip: backend.parse().ok(),
            cancel: CancellationToken::new(),
            active: AtomicU64::new(0),
        }))
    }
}

impl std::ops::Deref for Generation {
    type Target = GenerationData;

    fn deref(&self) -> &GenerationData {
        &self.0
    }
}

/// Holds one connection in the counts; decrements them on drop.
pub(crate) struct ConnGuard {
    group: Arc<GroupRoute>,
    generation: Generation,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.group.active.fetch_sub(1, Ordering::Relaxed);
        self.generation.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl GroupRoute {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code panics while holding the lock; recover the data if one ever does.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation a new connection joins, with the connection counted,
    /// and when its hold would end if a hold order stands now (see
    /// [`GroupRoute::hold_until`]); `None` when the group has no route yet.
    pub(crate) fn join(self: &Arc<Self>) -> Option<(Generation, ConnGuard, Option<Instant>)> {
        let inner = self.lock();
        let generation = inner.current.clone()?;
        let hold = self.hold_of(&inner);
        self.active.fetch_add(1, Ordering::Relaxed);
        generation.active.fetch_add(1, Ordering::Relaxed);
        let guard = ConnGuard {
            group: Arc::clone(self),
            generation: generation.clone(),
        };
        Some((generation, guard, hold))
    }

    /// How many switches the route has had (the newest generation's number).
    pub(crate) fn switch_count(&self) -> u64 {
        self.switch_count.load(Ordering::Acquire)
    }

    /// A receiver of the switch count, marked seen at its current value.
    pub(crate) fn switches(&self) -> watch::Receiver<u64> {
        let mut rx = self.switched.subscribe();
        rx.borrow_and_update();
        rx
    }

    /// Fires on shutdown.
    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Whether `site` has a backend in this group.
    pub(crate) fn has_site(&self, site: &str) -> bool {
        self.backends.contains_key(site)
    }

    pub(crate) fn allowed_sites(&self) -> Vec<String> {
        self.backends.keys().cloned().collect()
    }

    pub(crate) fn state(&self) -> RouteState {
        let inner = self.lock();
        self.state_of(&inner)
    }

    fn state_of(&self, inner: &Inner) -> RouteState {
        let (hold_term, hold_seq) = inner.holds.newest();
        RouteState {
            site: inner.current.as_ref().map(|g| g.site.clone()),
            backend: inner.current.as_ref().map(|g| g.backend.clone()),
            epoch: inner.epoch,
            switches: inner.switches,
            active_connections: self.active.load(Ordering::Relaxed),
            hold_remaining_ms: inner.holds.remaining_ms(),
            held_now: self.held.now.load(Ordering::Relaxed),
            held_total: self.held.total.load(Ordering::Relaxed),
            held_rescued: self.held.rescued.load(Ordering::Relaxed),
            held_timed_out: self.held.timed_out.load(Ordering::Relaxed),
            retried_total: self.held.retried.load(Ordering::Relaxed),
            hold_term,
            hold_seq,
        }
    }
}
