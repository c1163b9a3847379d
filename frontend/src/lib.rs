//! The built-in traffic switch (`warden frontend`): one TCP listener per
//! group, proxying every new connection to the group's current site, and an
//! epoch-fenced control API through which the orchestrator moves the route.
//!
//! Layout:
//! - [`api`]: wire types of the control API (a compatibility boundary);
//! - [`settings`]: what one frontend needs, taken from the validated config;
//! - `route`: the in-memory route table, epochs and connection generations,
//!   and (`route::hold`) the hold orders that make new connections wait for
//!   a switch;
//! - `fence`: the highest epoch accepted per group, kept on disk;
//! - `listener`: a group's listening sockets, one per worker (`SO_REUSEPORT`);
//! - `workers`: the data path's threads, each with its own runtime;
//! - `proxy`: the accept loops and the per-connection handling;
//! - `relay`: the bytes of one connection, both ways, and how it ends;
//! - `rare`: how often a warning users or peers can cause is written;
//! - `control`: the axum control API (authentication, fencing);
//! - [`error`]: the error enum, [`FrontendError`].
//!
//! Entry point: [`run`]. Routes live in memory only: a restarted frontend
//! routes nothing (new connections are closed) until the orchestrator's
//! reconciliation sends the route again. The fence — the highest epoch
//! accepted per group — is kept on disk, so a restarted frontend still
//! refuses an older orchestrator's orders.

pub mod api;
mod balance;
pub mod budget;
mod control;
pub mod error;
mod fence;
mod listener;
mod proxy;
mod rare;
mod relay;
mod route;
pub mod settings;
mod workers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use error::FrontendError;
pub use settings::{FrontendSettings, GroupSettings};

/// Time allowed, after shutdown, for connection tasks and drain timers to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Addresses actually bound (useful with port 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundAddrs {
    /// The control API.
    pub control: SocketAddr,
    /// Each group's client listener, by group name.
    pub groups: BTreeMap<String, SocketAddr>,
}

/// Run the frontend until `shutdown` fires (then stop accepting, close every
/// connection and return `Ok`) or a fatal error occurs.
///
/// Every listener is bound before `ready` receives the bound addresses and the
/// `frontend ready` line is logged; a bind failure returns
/// [`FrontendError::Bind`] naming the listener and address.
pub async fn run(
    cfg: FrontendSettings,
    shutdown: CancellationToken,
    ready: Option<oneshot::Sender<BoundAddrs>>,
) -> Result<(), FrontendError> {
    // SIGHUP (a reload of the control API's TLS files) must not end the
    // frontend, TLS or not: caught from the start (tokio keeps the handler;
    // the control API's server listens to it).
    let _ = warden_serve::catch_hangup();
    // What the open-file limit allows (raised first, when it may be: every
    // group's listening sockets count against it).
    let fd_limit = warden_serve::raise_fd_limit().unwrap_or(1024);
    let workers = workers::count();
    let Some(per_group) = budget::sockets_per_group(fd_limit, cfg.groups.len(), workers) else {
        return Err(FrontendError::Descriptors {
            groups: cfg.groups.len(),
            fd_limit,
        });
    };
    let control = bind("control API".to_string(), cfg.control).await?;
    let control_addr = local_addr(&control, "control API", cfg.control)?;
    let mut listeners = Vec::with_capacity(cfg.groups.len());
    let mut bound = BTreeMap::new();
    for (name, g) in &cfg.groups {
        let label = format!("listener of group {name}");
        let sockets = listener::bind(&label, g.listen, per_group)?;
        // `bind` returns at least one socket; all share its address.
        if let Some(first) = sockets.first() {
            let addr = first.local_addr().map_err(|source| FrontendError::Bind {
                listener: label.clone(),
                addr: g.listen,
                source,
            })?;
            bound.insert(name.clone(), addr);
        }
        listeners.push((name.clone(), sockets));
    }
    if cfg.groups.is_empty() {
        warn!(frontend = %cfg.name, "no group lists this frontend; only the control API runs");
    }

    // Child of the caller's token: a fatal error stops this frontend's tasks
    // without cancelling the caller's other components.
    let stop = shutdown.child_token();
    let tasks = TaskTracker::new();
    let fence = match &cfg.state_dir {
        Some(dir) => Some(Arc::new(fence::Fence::open(
            dir,
            &cfg.name,
            cfg.groups.keys(),
        )?)),
        None => None,
    };
    let kept = fence.as_ref().map(|f| f.kept()).unwrap_or_default();
    let table = Arc::new(route::Table::new(&cfg.groups, &kept, &stop, &tasks));
    let listening = (cfg.groups.len() * per_group) as u64;
    let slots = budget::ClientSlots::for_fd_limit(fd_limit, listening);
    info!(frontend = %cfg.name, fd_limit, listening_sockets = listening, client_connections = slots.max, control_connections = budget::CONTROL_CONNECTIONS, proxy_workers = workers, "descriptor budget");
    // With mTLS only the orchestrator's certificate may drive routes.
    let cert_name = cfg
        .tls
        .as_ref()
        .and_then(|t| t.client_ca.as_ref())
        .map(|_| "orchestrator");
    let tls = match &cfg.tls {
        Some(files) => Some(Arc::new(
            warden_serve::tls::ServerTls::new(files.clone()).map_err(FrontendError::Tls)?,
        )),
        None => None,
    };
    // Group k's socket j goes to worker (k + j) mod workers: with a socket
    // per worker, every worker accepts for every group; with one socket per
    // group, the groups are spread over the workers.
    let mut shares: Vec<workers::Share> = (0..workers).map(|_| Vec::new()).collect();
    for (k, (name, sockets)) in listeners.into_iter().enumerate() {
        let Some(group) = table.group(&name) else {
            continue; // the table was built from the same map
        };
        for (j, socket) in sockets.into_iter().enumerate() {
            shares[(k + j) % workers].push((Arc::clone(group), socket));
        }
    }
    let running: Vec<bool> = shares.iter().map(|s| !s.is_empty()).collect();
    let (balance, mut inboxes) = balance::Balance::new(&running);
    let app = control::router(
        Arc::clone(&table),
        fence,
        Arc::clone(&balance),
        cfg.token.clone(),
        cert_name,
    );
    let mut set: JoinSet<Result<(), FrontendError>> = JoinSet::new();
    for (index, share) in shares.into_iter().enumerate() {
        // No group for this worker (none, or fewer than workers): not run,
        // and no inbox made for it.
        let Some(inbox) = inboxes[index].take() else {
            continue;
        };
        let spawned = workers::spawn(
            index,
            share,
            inbox,
            Arc::clone(&balance),
            stop.clone(),
            slots.clone(),
            SHUTDOWN_GRACE,
        );
        let finished = match spawned {
            Ok(finished) => finished,
            Err(e) => {
                // The workers already started stop with this token.
                stop.cancel();
                return Err(e);
            }
        };
        set.spawn(async move {
            finished.await.unwrap_or_else(|_| {
                Err(FrontendError::Task(format!(
                    "proxy worker {index} ended without an answer"
                )))
            })
        });
    }
    let control_stop = stop.clone();
    set.spawn(async move {
        let limits = warden_serve::Limits {
            max_connections: budget::CONTROL_CONNECTIONS,
            ..warden_serve::Limits::default()
        };
        warden_serve::serve(control, app, limits, tls, control_stop).await;
        Ok(())
    });

    let groups_list = bound
        .iter()
        .map(|(g, a)| format!("{g}={a}"))
        .collect::<Vec<_>>()
        .join(",");
    info!(frontend = %cfg.name, control = %control_addr, groups = %groups_list, "frontend ready");
    if let Some(ready) = ready {
        // The caller may have stopped waiting; that is not our failure.
        let _ = ready.send(BoundAddrs {
            control: control_addr,
            groups: bound,
        });
    }

    let mut result = Ok(());
    while let Some(joined) = set.join_next().await {
        let outcome = joined
            .map_err(|e| FrontendError::Task(e.to_string()))
            .and_then(|r| r);
        if let Err(e) = outcome {
            error!(frontend = %cfg.name, cause = %e, "frontend task failed; stopping");
            if result.is_ok() {
                result = Err(e);
            }
        } else if !stop.is_cancelled() {
            warn!(frontend = %cfg.name, "a frontend task ended before shutdown; stopping");
        }
        stop.cancel();
    }
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        warn!(frontend = %cfg.name, grace = ?SHUTDOWN_GRACE, "connections still closing after the grace period; leaving them");
    }
    info!(frontend = %cfg.name, "frontend stopped");
    result
}

async fn bind(listener: String, addr: SocketAddr) -> Result<TcpListener, FrontendError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| FrontendError::Bind {
            listener,
            addr,
            source,
        })
}

fn local_addr(l: &TcpListener, label: &str, addr: SocketAddr) -> Result<SocketAddr, FrontendError> {
    l.local_addr().map_err(|source| FrontendError::Bind {
        listener: label.to_string(),
        addr,
        source,
    })
}
