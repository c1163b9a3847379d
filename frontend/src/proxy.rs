//! The data path: accept loops (one per group on each proxy worker thread,
//! each on its own listening socket, see [`crate::workers`] and
//! [`crate::listener`]); each client connection is proxied to the backend of
//! the group's current route generation and closed when that generation ends
//! (see [`crate::route`]). The bytes are moved by
//! [`crate::relay`]. Client connections are capped and closed when idle
//! ([`crate::budget`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::budget::{Activity, ClientSlots, CLIENT_IDLE_TIMEOUT};
use crate::relay;
use crate::route::GroupRoute;

/// Time allowed to connect to a backend before the client is dropped.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Accept connections on one of `group`'s listening sockets until `shutdown`
/// fires. Connection tasks are spawned on `tasks` so that shutdown can wait
/// for them.
pub(crate) async fn serve_group(
    listener: TcpListener,
    group: Arc<GroupRoute>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    slots: ClientSlots,
) {
    let mut refused: u64 = 0;
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
                Some(slot) => {
                    let group = Arc::clone(&group);
                    tasks.spawn(async move {
                        handle(client, peer, group).await;
                        drop(slot);
                    });
                }
                None => {
                    refused += 1;
                    if refused.is_power_of_two() {
                        warn!(group = %group.name, %peer, max = slots.max, refused, "client connection cap reached: connection closed");
                    }
                    drop(client);
                }
            },
            Err(e) => {
                warn!(group = %group.name, cause = %e, "accept failed");
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                }
            }
        }
    }
    debug!(group = %group.name, "listener closed");
}

/// Proxy one client connection; dropping both streams closes them. The
/// client socket has `TCP_NODELAY` from its listener.
async fn handle(mut client: TcpStream, peer: SocketAddr, group: Arc<GroupRoute>) {
    let Some((generation, _counted)) = group.join() else {
        debug!(group = %group.name, %peer, "no route yet; closing connection");
        return;
    };
    let site = generation.site.as_str();
    let backend_addr = generation.backend.as_str();
    let connect = tokio::time::timeout(BACKEND_CONNECT_TIMEOUT, connect(backend_addr));
    let mut backend = tokio::select! {
        _ = generation.cancel.cancelled() => {
            debug!(group = %group.name, %peer, site, "route switched while connecting; closing connection");
            return;
        }
        r = connect => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(group = %group.name, %peer, site, backend = backend_addr, cause = %e, "backend connect failed; closing client connection");
                return;
            }
            Err(_) => {
                warn!(group = %group.name, %peer, site, backend = backend_addr, timeout = ?BACKEND_CONNECT_TIMEOUT, "backend connect timed out; closing client connection");
                return;
            }
        },
    };
    debug!(group = %group.name, %peer, site, backend = backend_addr, "proxying");
    let activity = Activity::new();
    tokio::select! {
        _ = generation.cancel.cancelled() => {
            debug!(group = %group.name, %peer, site, "connection closed by a route switch or shutdown");
        }
        _ = activity.idle_for(CLIENT_IDLE_TIMEOUT) => {
            debug!(group = %group.name, %peer, site, idle = ?CLIENT_IDLE_TIMEOUT, "idle connection closed");
        }
        r = relay::relay(&mut client, &mut backend, &activity) => match r {
            Ok(moved) => debug!(group = %group.name, %peer, site, bytes_up = moved.up, bytes_down = moved.down, "connection finished"),
            Err(e) => debug!(group = %group.name, %peer, site, cause = %e, "connection ended with an error"),
        },
    }
}

/// Connect to `backend` (`host:port`), trying each address it resolves to in
/// turn (as `TcpStream::connect`), with `TCP_NODELAY` set before the connect.
async fn connect(backend: &str) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host(backend).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Err(e) = socket.set_nodelay(true) {
            debug!(backend, cause = %e, "cannot set TCP_NODELAY on backend socket");
        }
        match socket.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the backend address resolves to no address",
        )
    }))
}
