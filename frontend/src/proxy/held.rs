//! Held connections: a connection waiting, under a hold order, for the
//! route to switch away from its generation (or for the order to be called
//! off, its hold time to end, the client to leave), counted while held.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::left;
use crate::route::{Generation, GroupRoute};

/// Pause between two connects of a held connection to the routed site (it
/// also waits for a switch): a suspected site whose service is back within
/// the hold time takes its users. Longer than [`RETRY_PAUSE`](super::RETRY_PAUSE): holds are
/// ordered when a site may be lost, so many connections may be held.
const HELD_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How a held connection's wait ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Waited {
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
pub(super) async fn wait_for_switch(
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
pub(super) struct Held<'a> {
    group: &'a GroupRoute,
}

impl<'a> Held<'a> {
    pub(super) fn new(group: &'a GroupRoute) -> Held<'a> {
        group.held.total.fetch_add(1, Ordering::Relaxed);
        group.held.now.fetch_add(1, Ordering::Relaxed);
        Held { group }
    }

    pub(super) fn rescued(self) {
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
