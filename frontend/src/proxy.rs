//! The data path: accept loops (one per group on each proxy worker thread,
//! each on its own listening socket, see [`crate::workers`] and
//! [`crate::listener`]); each client connection is proxied to the backend of
//! the group's current route generation and closed when that generation ends
//! (see [`crate::route`]). Under a hold order a connection whose backend
//! refuses or times out is held until the route switches (then connected to
//! the new backend) or its hold time is over (`held`); backends are dialled
//! by `connect`. The bytes are moved by
//! [`crate::relay`]. Client connections are capped and closed when idle
//! ([`crate::budget`]); a worker serving clearly more connections than
//! another hands new ones to it ([`crate::balance`]).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};
use warden_serve::accept::{accept_fault, AcceptFault};

use crate::balance::{self, Balance, Served};
use crate::budget::{Activity, ClientSlots, Slot, CLIENT_IDLE_TIMEOUT};
use crate::listener::Acceptor;
use crate::relay;
use crate::route::{ConnGuard, Generation, GroupRoute};
use connect::{connect, BACKEND_CONNECT_TIMEOUT};
use held::{wait_for_switch, Held, Waited};

mod connect;
mod held;

/// Pause between two connects of a refused connection under `connect_retry`.
const RETRY_PAUSE: Duration = Duration::from_millis(25);
/// Pause after an accept that failed for want of resources (out of file
/// descriptors) so the loop does not spin; a connection's own failure is
/// no reason to pause ([`warden_serve::accept`]).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// How often a waiting client that has sent bytes is looked at for a reset
/// ([`left`]).
const LEFT_LOOK: Duration = Duration::from_millis(200);

/// Accept connections on one of `group`'s listening sockets until `shutdown`
/// fires. Connection tasks are spawned on `tasks` so that shutdown can wait
/// for them. A connection is registered with the event loop of the worker
/// that serves it, and only there.
pub(crate) async fn serve_group(
    listener: Acceptor,
    group: Arc<GroupRoute>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    slots: ClientSlots,
    worker: usize,
    balance: Arc<Balance>,
) {
    let mut refused: u64 = 0;
    // Accepts that failed for want of descriptors or memory.
    let mut failed: u64 = 0;
    let here = balance::Here {
        tasks: &tasks,
        balance: &balance,
        worker,
    };
    // Registered once, not per accepted connection.
    let stopped = shutdown.cancelled();
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((client, peer)) => match slots.take() {
                Some(slot) => here.serve(client, peer, &group, slot),
                None => {
                    refused += 1;
                    if refused.is_power_of_two() {
                        warn!(group = %group.name, %peer, max = slots.max, refused, "client connection cap reached: connection closed");
                    }
                    drop(client);
                }
            },
            Err(e) => match accept_fault(&e) {
                // That connection's own failure: on to the next at once.
                AcceptFault::Connection => {
                    debug!(group = %group.name, cause = %e, "a connection failed before it was accepted");
                }
                AcceptFault::Resources => {
                    failed += 1;
                    if failed.is_power_of_two() {
                        warn!(group = %group.name, cause = %e, failed, "accept failed; trying again in 100 ms");
                    }
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                    }
                }
            },
        }
    }
    debug!(group = %group.name, "listener closed");
}

/// Serve `client` on this worker's runtime; its slot and its count in the
/// worker's load are given back when it ends.
pub(crate) fn spawn_served(
    tasks: &TaskTracker,
    client: TcpStream,
    peer: SocketAddr,
    group: Arc<GroupRoute>,
    slot: Slot,
    served: Served,
) {
    tasks.spawn(async move {
        handle(client, peer, group).await;
        drop(slot);
        drop(served);
    });
}

/// Proxy one client connection; dropping both streams closes them. The
/// client socket has `TCP_NODELAY` from its listener.
async fn handle(mut client: TcpStream, peer: SocketAddr, group: Arc<GroupRoute>) {
    let Some((mut generation, mut counted, armed)) = group.join() else {
        debug!(group = %group.name, %peer, "no route yet; closing connection");
        return;
    };
    // Set while a hold order stands: when this connection's hold ends.
    let mut until = armed;
    // Without a hold: until when a refused connect is tried again
    // (`connect_retry`), so that a hold order or a switch on its way finds
    // the user still there.
    let retry_until = (!group.retry_max.is_zero()).then(|| Instant::now() + group.retry_max);
    let mut retried = false;
    // Set once the connection is held (counted until it is let go).
    let mut held: Option<Held<'_>> = None;
    // Whether the routed site was tried already (a cut-over may have come
    // since; before the first try, only if an order stood at the arrival).
    let mut tried = false;
    let mut backend = loop {
        // A cut-over is under way (the routed site is being demoted): do
        // not even try it; wait for the switch, at most the hold time — a
        // connection arriving now, and one held, retrying or connecting
        // since before the order alike.
        if (tried || until.is_some()) && group.paused() {
            if let Some(deadline) = until.or_else(|| group.hold_until()) {
                until = Some(deadline);
                let h = held.get_or_insert_with(|| Held::new(&group));
                debug!(group = %group.name, %peer, site = %generation.site, "cut-over under way: the connection waits for the switch");
                match wait_for_switch(&group, &generation, deadline, h, peer, &client, true).await {
                    Waited::Over => return,
                    Waited::Switched => {
                        if !rejoin(&group, &mut generation, &mut counted) {
                            return;
                        }
                        rescued(&mut until);
                    }
                    // The routed site stays: try it (held still, should it fail).
                    Waited::CalledOff => {
                        debug!(group = %group.name, %peer, site = %generation.site, "cut-over called off: the waiting connection goes to the routed site");
                    }
                }
            }
        }
        tried = true;
        let give_up = retry_until.filter(|_| until.is_none());
        let failed = match attempt(&group, &generation, until, give_up, &client).await {
            // The route switched while the backend answered (in the same
            // poll, or before this task ran again): nothing was relayed
            // yet, so the connection goes to the new route — the backend
            // connection to the old site is closed unused.
            Attempt::Connected(_) if moved_on(&group, &generation) => {
                if group.shutdown().is_cancelled() {
                    return;
                }
                if !rejoin(&group, &mut generation, &mut counted) {
                    return;
                }
                debug!(group = %group.name, %peer, to = %generation.site, "route switched as the backend answered; connecting to the new site");
                continue;
            }
            Attempt::Connected(s) => {
                if let Some(h) = held.take() {
                    h.rescued();
                    debug!(group = %group.name, %peer, site = %generation.site, "held connection connected (a route change, or the routed site answers again)");
                }
                break s;
            }
            Attempt::Closed => return,
            Attempt::Moved => {
                if group.shutdown().is_cancelled() {
                    return;
                }
                if !rejoin(&group, &mut generation, &mut counted) {
                    return;
                }
                debug!(group = %group.name, %peer, to = %generation.site, "route switched before the backend answered; connecting to the new site");
                continue;
            }
            Attempt::Switched => None,
            // Given up for a cut-over order: wait for its switch (above).
            Attempt::Paused => continue,
            Attempt::Failed(why) => Some(why),
        };
        let site = generation.site.as_str();
        let backend_addr = generation.backend.as_str();
        // Held only while a hold order stands (ordered before the
        // connection came, or since), and at most until its own hold time
        // is over; one interrupted by a switch goes on to the new site. An
        // order withdrawn or lapsed (its switch is not coming) or ended by
        // the switch it announced holds nobody any more: a connection held
        // under it that fails again now fails as one arriving now does,
        // not at the end of its hold time, waiting for a switch nobody
        // announces.
        let deadline = match &failed {
            None => until,
            Some(_) => group.hold_until().map(|fresh| until.unwrap_or(fresh)),
        };
        let Some(deadline) = deadline else {
            if held.take().is_some() {
                debug!(group = %group.name, %peer, site, "no hold order stands any more: the connection is no longer held");
            }
            until = None;
            if let Some(r) = retry_until.filter(|r| Instant::now() < *r) {
                if !retried {
                    retried = true;
                    group.held.retried.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(why) = &failed {
                    debug!(group = %group.name, %peer, site, backend = backend_addr, cause = %why, "backend connect failed; trying again (connect_retry)");
                }
                let mut switches = group.switches();
                tokio::select! {
                    _ = group.shutdown().cancelled() => return,
                    _ = tokio::time::sleep_until(r.min(Instant::now() + RETRY_PAUSE)) => {}
                    _ = switches.changed() => {}
                    _ = left(&client) => {
                        debug!(group = %group.name, %peer, "the client left while its connect was retried");
                        return;
                    }
                }
                if !rejoin(&group, &mut generation, &mut counted) {
                    return;
                }
                continue;
            }
            if let Some(why) = failed {
                // Not a line per connection ([`crate::rare`]).
                let failed = group.held.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if group.held.failed_said.due(failed) {
                    warn!(group = %group.name, %peer, site, backend = backend_addr, cause = %why, failed, "backend connect failed; closing client connection (said at the group's 1st, 2nd, 4th, 8th… such failure, and once a minute)");
                } else {
                    debug!(group = %group.name, %peer, site, backend = backend_addr, cause = %why, "backend connect failed; closing client connection");
                }
            }
            return;
        };
        until = Some(deadline);
        let h = held.get_or_insert_with(|| Held::new(&group));
        if let Some(why) = &failed {
            debug!(group = %group.name, %peer, site, backend = backend_addr, cause = %why, "backend connect failed; holding the connection for a route change");
        }
        match wait_for_switch(&group, &generation, deadline, h, peer, &client, false).await {
            Waited::Over => return,
            // The routed site again: its service may be back (a hold
            // announces a site that *may* be lost), or the order was
            // withdrawn (the switch is not coming).
            Waited::CalledOff => continue,
            // The route switched: retry on the new generation.
            Waited::Switched => {
                if !rejoin(&group, &mut generation, &mut counted) {
                    return;
                }
                rescued(&mut until);
            }
        }
    };
    let _counted = counted;
    let site = generation.site.as_str();
    let backend_addr = generation.backend.as_str();
    debug!(group = %group.name, %peer, site, backend = backend_addr, "proxying");
    let activity = Activity::new();
    let cut = tokio::select! {
        _ = generation.cancel.cancelled() => true,
        _ = activity.idle_for(CLIENT_IDLE_TIMEOUT) => {
            debug!(group = %group.name, %peer, site, idle = ?CLIENT_IDLE_TIMEOUT, "idle connection closed");
            false
        }
        r = relay::relay(&mut client, &mut backend, &activity) => {
            match r {
                Ok(moved) => debug!(group = %group.name, %peer, site, bytes_up = moved.up, bytes_down = moved.down, "connection finished"),
                Err(e) => debug!(group = %group.name, %peer, site, cause = %e, "connection ended with an error"),
            }
            false
        }
    };
    if cut {
        // Cut, whatever was on its way: both ends see a reset, as when a
        // side fails (`relay`), never a clean end that would make a cut
        // download or upload look whole.
        for s in [&client, &backend] {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
        debug!(group = %group.name, %peer, site, "connection cut (reset) by a route switch, the end of a drain or shutdown");
    }
}

/// What one connect attempt came to.
enum Attempt {
    Connected(TcpStream),
    /// Refused, unreachable or timed out: why.
    Failed(String),
    /// Under a hold: the route switched while connecting.
    Switched,
    /// A cut-over order came while connecting (the site connected to is
    /// about to be demoted); the connect is given up.
    Paused,
    /// No hold: the route switched (or the generation ended) before the
    /// backend answered; the connection goes to the new route.
    Moved,
    /// Shutdown, or the client left ([`left`]).
    Closed,
}

/// Connect to `generation`'s backend. Under a hold (`until`), a route
/// switch, a cut-over order or the end of the hold interrupts the attempt;
/// without one, a route switch moves the connection to the new route
/// (nothing was relayed yet).
async fn attempt(
    group: &GroupRoute,
    generation: &Generation,
    until: Option<Instant>,
    give_up: Option<Instant>,
    client: &TcpStream,
) -> Attempt {
    let deadline = Instant::now() + BACKEND_CONNECT_TIMEOUT;
    let connect = tokio::time::timeout_at(deadline, connect(generation, deadline));
    let outcome = |r: Result<io::Result<TcpStream>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(s)) => Attempt::Connected(s),
        Ok(Err(e)) => Attempt::Failed(e.to_string()),
        Err(_) => Attempt::Failed(format!(
            "timed out after {}ms",
            BACKEND_CONNECT_TIMEOUT.as_millis()
        )),
    };
    let mut switches = group.switches();
    let Some(until) = until else {
        // No hold: nothing waits longer than the connect itself, but a
        // connection that has not reached its backend when the route
        // switches (nothing relayed yet) goes to the new site instead of
        // failing with the old one.
        if *switches.borrow() != generation.number {
            return Attempt::Moved;
        }
        // Under `connect_retry`, a connect that hangs ends with the retry
        // window (then a hold order may have come).
        let retry_over = async {
            match give_up {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        // Under `connect_retry` a client may wait long: let it go if it
        // leaves. (Without, the connect's own timeout bounds the wait.)
        let gone = async {
            match give_up {
                Some(_) => left(client).await,
                None => std::future::pending().await,
            }
        };
        // A cut-over order coming meanwhile gives the connect up: the site
        // is about to be demoted. (Subscribed to only once the connect is
        // found under way: this block runs when first polled.)
        let paused = async {
            let mut orders = group.orders();
            cut_over(group, &mut orders).await
        };
        // (The generation's token is a child of the shutdown token: it
        // fires on shutdown too, and `Moved` checks which it was.) The
        // connect goes first: a backend on this host answers within the
        // call, and then nothing else is polled (no waiter is filed with
        // the generation's token or the switch count only to be taken out).
        return tokio::select! {
            biased;
            r = connect => outcome(r),
            _ = generation.cancel.cancelled() => Attempt::Moved,
            _ = switches.changed() => Attempt::Moved,
            _ = paused => Attempt::Paused,
            _ = retry_over => Attempt::Failed("no answer within connect_retry".into()),
            _ = gone => Attempt::Closed,
        };
    };
    if *switches.borrow() != generation.number {
        return Attempt::Switched;
    }
    let mut orders = group.orders();
    tokio::select! {
        _ = group.shutdown().cancelled() => Attempt::Closed,
        _ = switches.changed() => Attempt::Switched,
        _ = cut_over(group, &mut orders) => Attempt::Paused,
        _ = tokio::time::sleep_until(until) => Attempt::Failed("no answer within the hold time".into()),
        r = connect => outcome(r),
        _ = left(client) => Attempt::Closed,
    }
}

/// Resolves once a cut-over order stands that came after `orders` was
/// last seen.
async fn cut_over(group: &GroupRoute, orders: &mut tokio::sync::watch::Receiver<u64>) {
    loop {
        if orders.changed().await.is_err() {
            // The group (its sender) outlives this connection: never.
            return std::future::pending().await;
        }
        if group.paused() {
            return;
        }
    }
}

/// Resolves once a client waiting for its backend (held, or connecting)
/// has left: it reset its connection, or ended it without sending a byte.
/// Its slot and its place among the held are given back at once instead of
/// at the end of the hold, and no connection is opened to the new site for
/// nobody. A client that sent bytes and then ended its side stays: it may
/// have half-closed to wait for its answer (as HAProxy without
/// `abortonclose`); only a reset lets it go.
pub(super) async fn left(client: &TcpStream) {
    let mut one = [0u8; 1];
    match client.peek(&mut one).await {
        Ok(0) | Err(_) => return,
        Ok(_) => {}
    }
    // Bytes are waiting (they stay for the backend): the socket stays
    // readable, so look at its error now and then instead — first at once:
    // a caller that looks for a while only (a `connect_retry` pause, shorter
    // than `LEFT_LOOK`) would otherwise never look.
    loop {
        if !matches!(client.take_error(), Ok(None)) {
            return;
        }
        tokio::time::sleep(LEFT_LOOK).await;
    }
}

/// A held connection the switch rescued goes to the new site with the
/// whole connect timeout, not only what is left of its hold: a switch that
/// came near the end of the hold (or a first SYN to the new site lost) must
/// not close the user the switch was for — the order has ended, so a
/// connect that runs out is not held again. One the new site refuses still
/// fails at once.
fn rescued(until: &mut Option<Instant>) {
    if let Some(u) = until {
        *u = (*u).max(Instant::now() + BACKEND_CONNECT_TIMEOUT);
    }
}

/// Whether `generation` is no longer the group's route: ended (an
/// immediate switch, a drain's end, shutdown) or followed by another.
fn moved_on(group: &GroupRoute, generation: &Generation) -> bool {
    generation.cancel.is_cancelled() || group.switch_count() != generation.number
}

/// Join `group`'s current generation again (after a switch, or to retry):
/// false when the group has no route any more.
fn rejoin(group: &Arc<GroupRoute>, generation: &mut Generation, counted: &mut ConnGuard) -> bool {
    match group.join() {
        Some((g, c, _)) => {
            *generation = g;
            *counted = c;
            true
        }
        None => false,
    }
}
