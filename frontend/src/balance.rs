//! Spreading client connections over the proxy workers by how many each
//! serves. The kernel gives a new connection to one of a group's listening
//! sockets — to one worker — by a hash of its addresses (SO_REUSEPORT),
//! blind to load: 50 keep-alive connections land 28/22 about as often as
//! 25/25, and the busier thread then sets everyone's tail latency. A worker
//! that accepts a connection while it serves more than the least busy one
//! hands it over: the socket, accepted onto no event loop yet
//! ([`crate::listener::Acceptor`]), is sent to that worker's inbox, whose
//! runtime registers it and serves it. Otherwise the
//! connection stays where it was accepted. No slack: an allowance of a
//! couple of connections (tried) left 50 keep-alive connections at 23/27
//! for as long as they lived, and with a new connection per request it
//! made fewer requests/s at a higher p99 than spreading exactly, in every
//! round of an A/B (BENCHMARKS.md).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::budget::Slot;
use crate::listener::Accepted;
use crate::proxy;
use crate::route::GroupRoute;

/// A connection on its way to another worker.
pub(crate) struct Handoff {
    pub(crate) client: std::net::TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) group: Arc<GroupRoute>,
    pub(crate) slot: Slot,
    pub(crate) served: Served,
}

/// How many connections each worker serves, and the inboxes of the running
/// workers.
pub(crate) struct Balance {
    load: Box<[AtomicUsize]>,
    inboxes: Box<[Option<mpsc::UnboundedSender<Handoff>>]>,
    handed_over: AtomicU64,
}

/// One connection counted in its worker's load until dropped.
pub(crate) struct Served {
    balance: Arc<Balance>,
    worker: usize,
}

impl Served {
    /// The worker that serves it.
    pub(crate) fn worker(&self) -> usize {
        self.worker
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.balance.load[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balance {
    /// For `running.len()` workers, of which those marked running take
    /// handed-over connections; their inboxes' receivers, by worker.
    pub(crate) fn new(
        running: &[bool],
    ) -> (Arc<Balance>, Vec<Option<mpsc::UnboundedReceiver<Handoff>>>) {
        let mut inboxes = Vec::with_capacity(running.len());
        let mut receivers = Vec::with_capacity(running.len());
        for &on in running {
            if on {
                let (tx, rx) = mpsc::unbounded_channel();
                inboxes.push(Some(tx));
                receivers.push(Some(rx));
            } else {
                inboxes.push(None);
                receivers.push(None);
            }
        }
        let balance = Balance {
            load: running.iter().map(|_| AtomicUsize::new(0)).collect(),
            inboxes: inboxes.into(),
            handed_over: AtomicU64::new(0),
        };
        (Arc::new(balance), receivers)
    }

    /// The worker that is to serve a connection worker `me` has just
    /// accepted (`me` unless it serves more than the least busy running
    /// worker), counted there.
    pub(crate) fn place(self: &Arc<Self>, me: usize) -> Served {
        let mine = self.load[me].load(Ordering::Relaxed);
        let least = self
            .inboxes
            .iter()
            .enumerate()
            .filter(|(_, inbox)| inbox.is_some())
            .map(|(i, _)| (self.load[i].load(Ordering::Relaxed), i))
            .min();
        let worker = match least {
            Some((n, i)) if mine > n => i,
            _ => me,
        };
        self.count(worker)
    }

    /// Count one more connection served by `worker`.
    pub(crate) fn count(self: &Arc<Self>, worker: usize) -> Served {
        self.load[worker].fetch_add(1, Ordering::Relaxed);
        Served {
            balance: Arc::clone(self),
            worker,
        }
    }

    /// Send a connection to the inbox of the worker it is counted on; back
    /// when that worker does not take any (stopped, or not running).
    pub(crate) fn hand_over(&self, h: Handoff) -> Result<(), Box<Handoff>> {
        match self.inboxes.get(h.served.worker).and_then(Option::as_ref) {
            Some(inbox) => match inbox.send(h) {
                Ok(()) => {
                    self.handed_over.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(e) => Err(Box::new(e.0)),
            },
            None => Err(Box::new(h)),
        }
    }

    /// Connections handed from one worker to another so far.
    pub(crate) fn handed_over(&self) -> u64 {
        self.handed_over.load(Ordering::Relaxed)
    }

    /// Connections each running worker serves now, by worker.
    pub(crate) fn loads(&self) -> Vec<(usize, usize)> {
        self.inboxes
            .iter()
            .enumerate()
            .filter(|(_, inbox)| inbox.is_some())
            .map(|(i, _)| (i, self.load[i].load(Ordering::Relaxed)))
            .collect()
    }
}

/// The accepting worker: where a connection it accepts is served.
pub(crate) struct Here<'a> {
    pub(crate) tasks: &'a TaskTracker,
    pub(crate) balance: &'a Arc<Balance>,
    pub(crate) worker: usize,
}

impl Here<'_> {
    /// Serve `client`, just accepted, here or on the least busy worker
    /// ([`Balance::place`]): registered only with the event loop of the
    /// worker that serves it.
    pub(crate) fn serve(
        &self,
        client: Accepted,
        peer: SocketAddr,
        group: &Arc<GroupRoute>,
        slot: Slot,
    ) {
        let served = self.balance.place(self.worker);
        if served.worker() == self.worker {
            match client.here() {
                Ok(c) => proxy::spawn_served(self.tasks, c, peer, Arc::clone(group), slot, served),
                Err(e) => {
                    warn!(group = %group.name, %peer, cause = %e, "cannot take the connection onto this worker; closing it")
                }
            }
            return;
        }
        match client.loose() {
            Ok(c) => self.hand_over(c, peer, group, slot, served),
            Err(e) => {
                warn!(group = %group.name, %peer, cause = %e, "cannot take the connection off this worker; closing it")
            }
        }
    }

    /// Send `client` to the worker `served` counts it on
    /// ([`crate::balance`]); served here when that worker takes none.
    fn hand_over(
        &self,
        client: std::net::TcpStream,
        peer: SocketAddr,
        group: &Arc<GroupRoute>,
        slot: Slot,
        served: Served,
    ) {
        let h = Handoff {
            client,
            peer,
            group: Arc::clone(group),
            slot,
            served,
        };
        if let Err(h) = self.balance.hand_over(h) {
            let Handoff {
                client,
                peer,
                group,
                slot,
                served,
            } = *h;
            drop(served);
            match TcpStream::from_std(client) {
                Ok(c) => {
                    let served = self.balance.count(self.worker);
                    proxy::spawn_served(self.tasks, c, peer, group, slot, served);
                }
                Err(e) => {
                    warn!(group = %group.name, %peer, cause = %e, "cannot serve the connection here either; closing it")
                }
            }
        }
    }
}

/// Serve the connections other workers hand to this one, until `shutdown`.
pub(crate) async fn serve_inbox(
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let h = tokio::select! {
            _ = shutdown.cancelled() => break,
            h = inbox.recv() => h,
        };
        let Some(h) = h else { break };
        match TcpStream::from_std(h.client) {
            Ok(c) => proxy::spawn_served(&tasks, c, h.peer, h.group, h.slot, h.served),
            Err(e) => {
                warn!(group = %h.group.name, peer = %h.peer, cause = %e, "cannot take a handed-over connection; closing it")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_stays_unless_its_worker_serves_more() {
        let (b, _rx) = Balance::new(&[true, true]);
        // Level: each keeps what it accepts.
        let a0 = b.place(0);
        let a1 = b.place(1);
        assert_eq!((a0.worker(), a1.worker()), (0, 1));
        // Worker 0 serves 2, worker 1 serves 1: the next goes to worker 1.
        let extra = b.count(0);
        let moved = b.place(0);
        assert_eq!(moved.worker(), 1, "2 against 1: handed over");
        // Level again (2/2): worker 0 keeps its own, worker 1 too.
        let kept = b.place(0);
        assert_eq!(kept.worker(), 0);
        assert_eq!(b.place(1).worker(), 1, "the less busy worker keeps its own");
        drop((extra, moved, kept));
        assert_eq!(b.place(0).worker(), 0, "the counts fall as connections end");
    }

    #[test]
    fn a_burst_on_one_worker_is_spread_exactly() {
        let (b, _rx) = Balance::new(&[true, true]);
        // The kernel gives all of them to worker 0: every other one moves.
        let held: Vec<Served> = (0..50).map(|_| b.place(0)).collect();
        let on_1 = held.iter().filter(|s| s.worker() == 1).count();
        assert_eq!(on_1, 25, "50 connections split 25/25");
        assert_eq!(b.loads(), vec![(0, 25), (1, 25)]);
    }

    #[test]
    fn nothing_goes_to_a_worker_that_does_not_run() {
        let (b, rx) = Balance::new(&[true, false]);
        assert!(rx[1].is_none());
        let _busy: Vec<Served> = (0..50).map(|_| b.count(0)).collect();
        assert_eq!(b.place(0).worker(), 0, "worker 1 takes no connection");
    }
}
