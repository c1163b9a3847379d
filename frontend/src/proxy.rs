//! The data path: accept loops (one per group on each proxy worker thread,
//! each on its own listening socket, see [`crate::workers`] and
//! [`crate::listener`]); each client connection is proxied to the backend of
//! the group's current route generation and closed when that generation ends
//! (see [`crate::route`]). Under a hold order a connection whose backend
//! refuses or times out is held until the route switches (then connected to
//! the new backend) or its hold time is over. The bytes are moved by
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

/// Time allowed to connect to a backend before the client is dropped (name
/// lookup included; shared between the addresses a name resolves to).
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two connects of a refused connection under `connect_retry`.
const RETRY_PAUSE: Duration = Duration::from_millis(25);
/// Pause between two connects of a held connection to the routed site (it
/// also waits for a switch): a suspected site whose service is back within
/// the hold time takes its users. Longer than [`RETRY_PAUSE`]: holds are
/// ordered when a site may be lost, so many connections may be held.
const HELD_RETRY_PAUSE: Duration = Duration::from_millis(200);
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
async fn left(client: &TcpStream) {
    let mut one = [0u8; 1];
    match client.peek(&mut one).await {
        Ok(0) | Err(_) => return,
        Ok(_) => {}
    }
    // Bytes are waiting (they stay for the backend): the socket stays
    // readable, so look at its error now and then instead.
    loop {
        tokio::time::sleep(LEFT_LOOK).await;
        if !matches!(client.take_error(), Ok(None)) {
            return;
        }
    }
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

/// How a held connection's wait ended.
#[derive(Debug, PartialEq, Eq)]
enum Waited {
    /// The route switched away from the generation waited on.
    Switched,
    /// The cut-over order it waited on was withdrawn or lapsed, and no
    /// other stands: the switch is not coming, the routed site stays. For
    /// a connection held after a failed connect: time to try the routed
    /// site again (every [`HELD_RETRY_PAUSE`], and at once when an order
    /// comes, such as the hold's withdrawal).
    CalledOff,
    /// The hold time is over, the client left or shutdown came: let go.
    Over,
}

/// Wait, held, until the route switches away from `generation`, the hold
/// time is over, the client leaves or shutdown comes; with `paused` (a
/// connection waiting on a cut-over order without trying the routed site),
/// also until that order is called off; without (a connection whose
/// connect failed), also until it is time to try the routed site again.
async fn wait_for_switch(
    group: &GroupRoute,
    generation: &Generation,
    deadline: Instant,
    h: &Held<'_>,
    peer: SocketAddr,
    client: &TcpStream,
    paused: bool,
) -> Waited {
    let mut switches = group.switches();
    let mut orders = group.orders();
    loop {
        if *switches.borrow() != generation.number {
            return Waited::Switched;
        }
        if paused && !group.paused() {
            return Waited::CalledOff;
        }
        // A cut-over order lapses on its own, without a word.
        let lapses = group
            .order_lapses()
            .filter(|t| paused && *t < deadline)
            .unwrap_or(deadline);
        let retry = Instant::now() + HELD_RETRY_PAUSE;
        tokio::select! {
            _ = group.shutdown().cancelled() => return Waited::Over,
            _ = tokio::time::sleep_until(deadline) => {
                // Not a line per connection ([`crate::rare`]).
                let timed_out = h.timed_out();
                if group.held.timed_out_said.due(timed_out) {
                    warn!(group = %group.name, %peer, site = %generation.site, backend = %generation.backend, timed_out, "held connection: no route change within the hold time; closing client connection (said at the group's 1st, 2nd, 4th, 8th… such connection, and once a minute; all in warden_frontend_held_timed_out_total)");
                } else {
                    debug!(group = %group.name, %peer, site = %generation.site, "held connection: no route change within the hold time; closing client connection");
                }
                return Waited::Over;
            }
            _ = switches.changed() => return Waited::Switched,
            _ = left(client) => {
                debug!(group = %group.name, %peer, "the held client left; letting it go");
                return Waited::Over;
            }
            // Another order: look again (at the top); a connection that
            // tried the routed site tries it again (a withdrawn hold: the
            // switch is not coming).
            _ = orders.changed() => if !paused { return Waited::CalledOff },
            _ = tokio::time::sleep_until(lapses), if paused && lapses < deadline => {}
            _ = tokio::time::sleep_until(retry), if !paused && retry < deadline => return Waited::CalledOff,
        }
    }
}

/// A held connection: counted in `held_now` until dropped.
struct Held<'a> {
    group: &'a GroupRoute,
}

impl<'a> Held<'a> {
    fn new(group: &'a GroupRoute) -> Held<'a> {
        group.held.total.fetch_add(1, Ordering::Relaxed);
        group.held.now.fetch_add(1, Ordering::Relaxed);
        Held { group }
    }

    fn rescued(self) {
        self.group.held.rescued.fetch_add(1, Ordering::Relaxed);
    }

    /// Count it; how many of the group's held connections timed out so far.
    fn timed_out(&self) -> u64 {
        self.group.held.timed_out.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.group.held.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connect to `generation`'s backend by `deadline`: its address when it is
/// one, else the addresses its `host:port` resolves to ([`connect_any`]),
/// with `TCP_NODELAY` set before the connect.
async fn connect(generation: &Generation, deadline: Instant) -> io::Result<TcpStream> {
    if let Some(addr) = generation.backend_ip {
        return connect_to(addr).await;
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(generation.backend.as_str())
        .await?
        .collect();
    connect_any(&addrs, deadline).await
}

/// Connect to each of `addrs` in turn until one answers, each given an
/// equal share of the time left until `deadline`: an address whose packets
/// vanish (a host down behind a name that has several) must not take the
/// whole connect timeout and leave the others untried.
async fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> io::Result<TcpStream> {
    let mut last = None;
    for (i, &addr) in addrs.iter().enumerate() {
        let left = u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        let share = deadline.saturating_duration_since(Instant::now()) / left;
        match tokio::time::timeout(share, connect_to(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr} did not answer within {}ms", share.as_millis()),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the backend address resolves to no address",
        )
    }))
}

/// Connect to `addr`. A connect that is complete when the call returns (a
/// backend on this host: the handshake ran within it) is used at once;
/// otherwise the socket is waited for until writable and its error read,
/// as tokio's own connect does. `TcpSocket::connect` always waits for the
/// runtime's next readiness event, a turn of the event loop per connection.
async fn connect_to(addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Err(e) = socket.set_tcp_nodelay(true) {
        debug!(%addr, cause = %e, "cannot set TCP_NODELAY on backend socket");
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(socket.into())?;
    // Connected already: the peer's address is known. (Bytes written to a
    // socket still connecting would wait in it, but a refused or silent
    // backend must fail here, where a hold or a retry can take over.)
    if stream.peer_addr().is_ok() {
        return Ok(stream);
    }
    stream.writable().await?;
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    // Writable without an error but not connected cannot happen on Linux;
    // say so rather than relay into a socket that is not one.
    stream.peer_addr()?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address whose connects hang, as to a host whose packets vanish:
    /// a loopback listener that never accepts, its queue full (Linux then
    /// drops new SYNs); keep the returned sockets alive while it is used.
    async fn blackhole() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let l = sock.listen(0).unwrap();
        let addr = l.local_addr().unwrap();
        let mut fill = Vec::new();
        for _ in 0..8 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => fill.push(s),
                _ => return (addr, l, fill),
            }
        }
        panic!("the accept queue of {addr} never filled");
    }

    /// A name resolving to a dead address first and a live one second (a
    /// host down behind a name with several) still connects, within the
    /// connect timeout.
    #[tokio::test]
    async fn a_silent_address_does_not_keep_the_next_one_untried() {
        let _hole = blackhole().await;
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = [_hole.0, live.local_addr().unwrap()];
        let deadline = Instant::now() + BACKEND_CONNECT_TIMEOUT;
        let t = Instant::now();
        let got = tokio::time::timeout_at(deadline, connect_any(&addrs, deadline)).await;
        let s = got
            .expect("connected within the connect timeout")
            .expect("the live address answers");
        assert_eq!(s.peer_addr().unwrap(), addrs[1]);
        assert!(t.elapsed() < BACKEND_CONNECT_TIMEOUT, "{:?}", t.elapsed());
    }
}
