//! The orchestrator: collects evidence, confirms disasters, runs crash-safe
//! runbooks, reconciles routing and serves the `/v1` API.
//!
//! Layout:
//! - [`detector`]: evidence → verdicts, hysteresis and guards (pure, paused-time tested);
//! - [`runbook`]: the step engine over a [`runbook::RunbookEnv`] (persist before each step);
//! - [`store`]: durable state behind [`store::Store`] (redb file by default);
//! - [`service`]: the live service, split into rooms with one owner each
//!   (intake, detect, runbooks, replication, reconcile, hybrid, authority,
//!   operator, views, events);
//! - [`commands`]: the command ledger (who a command was queued for, its outcome);
//! - [`retry`]: bounded failback retries;
//! - [`api`]: the HTTP API; [`model`]: persisted and reported types; [`metrics`];
//! - [`text`]: agent-supplied text cut to size and made printable;
//! - [`node_lock`]: one process per etcd node on a host.

pub mod api;
pub mod commands;
pub mod detector;
pub mod error;
pub mod etcd;
pub mod licence;
pub mod metrics;
pub mod model;
pub mod node_lock;
pub mod recorded;
pub mod retry;
pub mod routing;
pub mod runbook;
pub mod service;
pub mod settings;
pub mod store;
pub mod text;
#[cfg(test)]
mod wrapped_store;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;
use warden_config::StoreKind;

pub use crate::error::OrchestratorError;
use crate::etcd::leader::{Election, Leadership};
use crate::etcd::EtcdStore;
use crate::service::{HaRole, Mode, Shared};
pub use crate::settings::{node_known, OrchestratorSettings};
use crate::store::LocalStore;

/// Run the orchestrator until `shutdown` fires. `ready` receives the bound API address.
/// API TLS files that cannot be used fail it before the store is opened.
pub async fn run(
    settings: OrchestratorSettings,
    shutdown: CancellationToken,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), OrchestratorError> {
    if let Some(n) = warden_serve::raise_fd_limit() {
        tracing::debug!(fd_limit = n, "open-file limit");
    }
    let o = &settings.config.orchestrator;
    // The API's TLS files are loaded first: a file that cannot be used stops
    // the start before the store is opened, a group adopted or an order sent.
    let tls = match &o.tls {
        Some(t) => Some(Arc::new(
            warden_serve::tls::ServerTls::new(warden_serve::tls::ServerFiles {
                cert: t.cert.clone(),
                key: t.key.clone(),
                client_ca: t.client_ca.clone(),
            })
            .map_err(|e| OrchestratorError::Setup(format!("orchestrator.tls: {e}")))?,
        )),
        None => None,
    };
    let mut election = None;
    // With etcd, one process per node on this host, held until `run`
    // returns: taken before the sweep of the node's run directory and the
    // campaign (`node_lock`).
    let mut _node_lock = None;
    let shared = match (o.store, &o.etcd) {
        (StoreKind::Etcd, Some(etcd)) => {
            if !o.nodes.is_empty() && settings.node.is_none() {
                return Err(OrchestratorError::Setup(
                    "the config lists [[orchestrator.nodes]]: start each with --node NAME".into(),
                ));
            }
            _node_lock = Some(node_lock::lock(&settings)?);
            let node = settings
                .node
                .clone()
                .unwrap_or_else(|| "orchestrator".to_string());
            let (ttl, timeout) = (etcd.lease_ttl, etcd.timeout);
            let store = EtcdStore::connect(etcd)?;
            let (view, seen) = watch::channel(Leadership::new(&node, ttl));
            let shared = Shared::with_mode(
                settings,
                Arc::new(store.clone()),
                shutdown.clone(),
                Mode::Elected(seen),
            )?;
            election = Some(Election {
                store,
                node,
                ttl,
                timeout,
                role: Arc::new(HaRole(shared.clone())),
                view,
            });
            shared
        }
        _ => {
            let store = Arc::new(LocalStore::open(&o.data_dir)?);
            Shared::new(settings, store, shutdown.clone())?
        }
    };
    let ha = election.is_some();
    let addr = shared.config().orchestrator.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| OrchestratorError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| OrchestratorError::Bind { addr, source })?;
    shared.event(
        model::EventKind::Started,
        None,
        None,
        format!(
            "orchestrator {} started on {bound} with {} groups",
            env!("CARGO_PKG_VERSION"),
            shared.config().groups.len()
        ),
        vec![],
        None,
    );
    // What a killed predecessor's fence or notify commands left running
    // ends before anything is resumed, sent or served.
    shared.end_leftovers().await;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(shared.clone().write_events(shutdown.clone()));
    tasks.spawn(shared.clone().write_groups(shutdown.clone()));
    for w in shared.notify_workers() {
        tasks.spawn(w.run(shared.clone(), shutdown.clone()));
    }
    if let Some(e) = election {
        // The leader loop grants the licence (and adopts and resumes) when
        // this node wins; followers mirror the store meanwhile.
        tasks.spawn(e.run(shutdown.clone()));
        let s = shared.clone();
        every(
            &mut tasks,
            shared.mirror_period(),
            shutdown.clone(),
            move || {
                let s = s.clone();
                async move { s.mirror_store().await }
            },
        );
    } else {
        shared.start_alone().await;
    }

    // The runbook retention: a pass on the leader every ten minutes.
    let s = shared.clone();
    every(
        &mut tasks,
        service::RUNBOOK_PRUNE_PERIOD,
        shutdown.clone(),
        move || {
            let s = s.clone();
            async move { s.prune_runbooks().await }
        },
    );
    tasks.spawn(shared.clone().probe_loop(shutdown.clone()));
    tasks.spawn(shared.clone().detection_loop(shutdown.clone()));
    let s = shared.clone();
    every(
        &mut tasks,
        shared.config().orchestrator.reconcile_interval,
        shutdown.clone(),
        move || {
            let s = s.clone();
            async move { s.reconcile_once().await }
        },
    );
    info!(listen = %bound, ha, groups = shared.config().groups.len(), sites = shared.config().sites.len(), "orchestrator ready");
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }
    let app = api::router(shared.clone());
    let o = &shared.config().orchestrator;
    let limits = warden_serve::Limits {
        max_connections: o.max_connections,
        header_read_timeout: o.header_read_timeout,
        // A long-poll may wait `long_poll` before it answers.
        request_timeout: o.request_timeout.saturating_add(o.long_poll),
        ..warden_serve::Limits::default()
    };
    warden_serve::serve(listener, app, limits, tls, shutdown.clone()).await;
    shutdown.cancel();
    let grace = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
        shared.licence().wait().await;
        shared.streams().close();
        shared.streams().wait().await;
    })
    .await;
    if grace.is_err() {
        tracing::warn!("tasks did not stop within 5 s");
    }
    Ok(())
}

/// Run `f` every `period` (first run at once, missed ticks delayed) until `stop`.
fn every<F, Fut>(
    tasks: &mut tokio::task::JoinSet<()>,
    period: std::time::Duration,
    stop: CancellationToken,
    mut f: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => f().await,
            }
        }
    });
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod run_tests;
