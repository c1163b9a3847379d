//! The data path's threads: one per CPU, each with its own single-threaded
//! tokio runtime (its own epoll and timers) running one accept loop per group
//! on its own listening socket of that group ([`crate::listener`]). A
//! connection is accepted, relayed and closed on one thread: no hand-over
//! between threads, no waking of an idle thread to steal it. The control API
//! and the drain timers stay on the caller's runtime; route switches reach
//! the connections through their generation tokens, which wake tasks on any
//! runtime.
//!
//! Each worker also serves the connections other workers hand it when they
//! serve clearly more than it does ([`crate::balance`]).
//!
//! A worker runs until `stop` fires, then lets its connections close (they
//! are cancelled through the same tokens) for at most the shutdown grace,
//! and answers on its `done` channel, which the frontend's task set awaits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::balance::{Balance, Handoff};
use crate::budget::ClientSlots;
use crate::listener::Acceptor;
use crate::proxy;
use crate::route::GroupRoute;
use crate::FrontendError;

/// Data-path threads: one per CPU the process may use.
pub(crate) fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One worker's share: each group with the listening socket it accepts on.
pub(crate) type Share = Vec<(Arc<GroupRoute>, std::net::TcpListener)>;

/// Start worker `index` on its own thread; the receiver answers once the
/// worker has stopped (its connections closed or the grace over).
pub(crate) fn spawn(
    index: usize,
    share: Share,
    inbox: mpsc::UnboundedReceiver<Handoff>,
    balance: Arc<Balance>,
    stop: CancellationToken,
    slots: ClientSlots,
    grace: Duration,
) -> Result<oneshot::Receiver<Result<(), FrontendError>>, FrontendError> {
    let (done, finished) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("proxy-{index}"))
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let result =
                        rt.block_on(serve(index, share, inbox, balance, stop, slots, grace));
                    // Nothing on the blocking pool is waited for (only an
                    // address with a zone is read there, by the system).
                    rt.shutdown_timeout(grace);
                    result
                }
                Err(e) => Err(FrontendError::Task(format!(
                    "cannot start the runtime of proxy worker {index}: {e}"
                ))),
            };
            // The frontend may be gone already; nothing left to tell.
            let _ = done.send(result);
        })
        .map_err(|e| {
            FrontendError::Task(format!(
                "cannot start the thread of proxy worker {index}: {e}"
            ))
        })?;
    Ok(finished)
}

/// How far ahead the anchor's timer always is.
const ANCHOR_PERIOD: Duration = Duration::from_secs(1);

/// Keep a timer pending on this runtime until `stop`. A connection sets
/// timers (its idle limit, a connect deadline), and a timer set on a
/// runtime that had none pending (or only later ones) makes tokio wake its
/// event loop through its eventfd — an extra `write` and a spurious
/// `epoll_wait` return, measured at 0.4 per connection with a new
/// connection per request. With a timer always due within a second, a
/// later one is filed without that wake-up.
async fn timer_anchor(stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ANCHOR_PERIOD) => {}
        }
    }
}

async fn serve(
    index: usize,
    share: Share,
    inbox: mpsc::UnboundedReceiver<Handoff>,
    balance: Arc<Balance>,
    stop: CancellationToken,
    slots: ClientSlots,
    grace: Duration,
) -> Result<(), FrontendError> {
    // This worker's connections, waited for after the loops end.
    let connections = TaskTracker::new();
    let mut loops = JoinSet::new();
    loops.spawn(timer_anchor(stop.clone()));
    // Connections other workers hand over (`crate::balance`).
    loops.spawn(crate::balance::serve_inbox(
        inbox,
        stop.clone(),
        connections.clone(),
    ));
    for (group, socket) in share {
        let listener = Acceptor::new(socket).map_err(|e| {
            FrontendError::Task(format!(
                "proxy worker {index} cannot take the listener of group {}: {e}",
                group.name
            ))
        })?;
        loops.spawn(proxy::serve_group(
            listener,
            group,
            stop.clone(),
            connections.clone(),
            slots.clone(),
            index,
            Arc::clone(&balance),
        ));
    }
    let mut result = Ok(());
    while let Some(joined) = loops.join_next().await {
        if !stop.is_cancelled() {
            // An accept loop returns only on stop; anything else is a fault.
            let why = joined
                .err()
                .map_or("returned".to_string(), |e| e.to_string());
            result = Err(FrontendError::Task(format!(
                "an accept loop of proxy worker {index} ended before shutdown: {why}"
            )));
            break;
        }
    }
    loops.abort_all();
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        warn!(worker = index, grace = ?grace, "connections still closing after the grace period; leaving them");
    }
    debug!(worker = index, "proxy worker stopped");
    result
}
