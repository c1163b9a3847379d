//! The data path: one accept loop per group; each client connection is
//! proxied to the backend of the group's current route generation and closed
//! when that generation ends (see [`crate::route`]). Client connections are
//! capped and closed when idle ([`crate::budget`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::budget::{Activity, ClientSlots, CLIENT_IDLE_TIMEOUT};
use crate::route::GroupRoute;

/// Time allowed to connect to a backend before the client is dropped.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Accept connections for `group` until `shutdown` fires. Connection tasks
/// are spawned on `tasks` so that shutdown can wait for them.
pub(crate) async fn serve_group(
    listener: TcpListener,
    group: Arc<GroupRoute>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    slots: ClientSlots,
) {
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
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
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                }
            }
        }
    }
    debug!(group = %group.name, "listener closed");
}

/// Proxy one client connection; dropping both streams closes them.
async fn handle(client: TcpStream, peer: SocketAddr, group: Arc<GroupRoute>) {
    let Some((generation, _counted)) = group.join() else {
        debug!(group = %group.name, %peer, "no route yet; closing connection");
        return;
    };
    let site = generation.site.as_str();
    let backend_addr = generation.backend.as_str();
    if let Err(e) = client.set_nodelay(true) {
        debug!(group = %group.name, %peer, cause = %e, "cannot set TCP_NODELAY on client socket");
    }
    let connect = tokio::time::timeout(BACKEND_CONNECT_TIMEOUT, TcpStream::connect(backend_addr));
    let backend = tokio::select! {
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
    if let Err(e) = backend.set_nodelay(true) {
        debug!(group = %group.name, site, cause = %e, "cannot set TCP_NODELAY on backend socket");
    }
    debug!(group = %group.name, %peer, site, backend = backend_addr, "proxying");
    let activity = Activity::new();
    let (mut client, mut backend) = (activity.watch(client), activity.watch(backend));
    tokio::select! {
        _ = generation.cancel.cancelled() => {
            debug!(group = %group.name, %peer, site, "connection closed by a route switch or shutdown");
        }
        _ = activity.idle_for(CLIENT_IDLE_TIMEOUT) => {
            debug!(group = %group.name, %peer, site, idle = ?CLIENT_IDLE_TIMEOUT, "idle connection closed");
        }
        r = tokio::io::copy_bidirectional(&mut client, &mut backend) => match r {
            Ok((up, down)) => debug!(group = %group.name, %peer, site, bytes_up = up, bytes_down = down, "connection finished"),
            Err(e) => debug!(group = %group.name, %peer, site, cause = %e, "connection ended with an error"),
        },
    }
}
