//! The orchestrator's durable state in etcd ([`EtcdStore`], `store = "etcd"`)
//! and the leader lease ([`leader`]) that is the licence to act of a
//! highly available deployment (DESIGN §7).
//!
//! Key layout under the configured prefix `P`:
//! - `P leader`: the name of the node holding the licence, attached to its lease;
//! - `P identity`: the data's random id (16 hex digits), made once, told
//!   with every leader term as its `cluster` (`leader::identity`);
//! - `P groups/NAME`, `P runbooks/ID`, `P events/ID` (ids zero-padded to 20
//!   digits, so key order is id order): JSON, as the local store keeps them;
//! - `P runbooks-pruned`: written with each delete of the runbook retention,
//!   so the state version (followers' mirror) moves with it.
//!
//! **Every write is guarded by leadership**: it is one etcd transaction whose
//! compare says "the leader key is still the one this node created" (its
//! create revision, and the lease it is on: revisions start again when etcd
//! is rebuilt empty). A deposed leader's write — after its lease expired and
//! another node won — fails in etcd itself and comes back as
//! [`OrchestratorError::Deposed`]; a node that never won writes nothing.
//!
//! The [`Store`](crate::store::Store) trait is synchronous (its callers run
//! on blocking threads or hold no lock); the etcd client is async. Calls run
//! on a private runtime of one thread and the caller waits for the answer,
//! bounded by the configured request timeout.
//!
//! This file owns [`EtcdStore`]: its connection and runtime and the guarded
//! write path. The `Store` implementation (groups, runbooks, events; paged
//! reads) is in `records`; the records' encoding, size limits and key helpers
//! are in `codec`; the retry of transient failures (`retrying`, [`Fail`]) is
//! in `retry`, shared with the leader loop.

mod codec;
pub mod leader;
mod records;
mod retry;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use warden_config::EtcdConfig;

use crate::store::blocking as wait;
use crate::OrchestratorError;

use codec::{TXN_BYTES, TXN_OPS};
pub(crate) use retry::retrying;
pub use retry::Fail;

/// The runtime the etcd client lives on; shut down without blocking when dropped.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// State kept in etcd; writes only while this node holds the leader key.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    rt: Arc<Runtime>,
    prefix: String,
    timeout: Duration,
    /// The leader key this node holds, if it holds it: its create revision
    /// (the term) and the lease it is on.
    guard: Arc<Mutex<Option<(i64, i64)>>>,
}

impl EtcdStore {
    /// Connect to the cluster (no request is sent yet: a cluster that is
    /// down at start is waited for by the leader loop, not fatal).
    pub fn connect(cfg: &EtcdConfig) -> Result<EtcdStore, OrchestratorError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("warden-etcd")
            .enable_all()
            .build()
            .map_err(|e| OrchestratorError::Setup(format!("cannot start the etcd runtime: {e}")))?;
        // Held so that an early return below drops it without blocking.
        let rt = Runtime(Some(rt));
        let mut opts = ConnectOptions::new()
            .with_timeout(cfg.timeout)
            .with_connect_timeout(cfg.timeout)
            .with_keep_alive(cfg.timeout, cfg.timeout)
            .with_keep_alive_while_idle(true)
            // A member without a raft leader (no quorum) answers at once
            // instead of holding the request.
            .with_require_leader(true);
        if let Some(t) = &cfg.tls {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| {
                    OrchestratorError::Setup(format!(
                        "orchestrator.etcd.tls: cannot read {}: {e}",
                        p.display()
                    ))
                })
            };
            let mut tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read(&t.ca)?));
            if let (Some(c), Some(k)) = (&t.cert, &t.key) {
                // Refuses a key every user can read.
                warden_serve::tls::load_key(k).map_err(|e| {
                    OrchestratorError::Setup(format!("orchestrator.etcd.tls.key: {e}"))
                })?;
                tls = tls.identity(etcd_client::Identity::from_pem(read(c)?, read(k)?));
            }
            opts = opts.with_tls(tls);
        }
        let endpoints = cfg.endpoints.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.0.as_ref().expect("just built").spawn(async move {
            // `connect` only sets up the balanced channel (on this runtime).
            let _ = tx.send(Client::connect(endpoints, Some(opts)).await);
        });
        let client = wait(move || rx.recv())
            .map_err(|_| OrchestratorError::Setup("the etcd runtime stopped".into()))?
            .map_err(|e| OrchestratorError::Setup(format!("orchestrator.etcd: {e}")))?;
        Ok(EtcdStore {
            client,
            rt: Arc::new(rt),
            prefix: cfg.prefix.clone(),
            timeout: cfg.timeout,
            guard: Arc::new(Mutex::new(None)),
        })
    }

    /// The client (for the leader loop; it runs on [`EtcdStore::spawn`]).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Run `fut` on the etcd runtime.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt
            .0
            .as_ref()
            .expect("runtime present until drop")
            .spawn(fut)
    }

    pub(crate) fn key(&self, rest: &str) -> Vec<u8> {
        format!("{}{rest}", self.prefix).into_bytes()
    }

    /// The leader key.
    pub fn leader_key(&self) -> Vec<u8> {
        self.key("leader")
    }

    /// Writes are allowed under the leader key created at revision `term`
    /// on lease `lease` (`None`: this node is not the leader and writes
    /// nothing). Both are compared: after etcd was rebuilt empty (or
    /// restored without `--bump-revision`) revisions start again, and
    /// another node's key may be created at the very revision of an
    /// older term; its lease is its own.
    pub fn set_guard(&self, term_and_lease: Option<(i64, i64)>) {
        *self.guard.lock().unwrap_or_else(|p| p.into_inner()) = term_and_lease;
    }

    /// The compare of a guarded transaction: the leader key is still the
    /// one created at `term` on `lease`.
    pub(crate) fn held(&self, (term, lease): (i64, i64)) -> [Compare; 2] {
        let key = self.leader_key();
        [
            Compare::create_revision(key.clone(), CompareOp::Equal, term),
            Compare::lease(key, CompareOp::Equal, lease),
        ]
    }

    fn guard(&self) -> Result<(i64, i64), OrchestratorError> {
        self.guard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or_else(|| OrchestratorError::Deposed("this orchestrator is not the leader".into()))
    }

    /// Run `op` on the etcd runtime, retried while etcd is unreachable or
    /// between raft leaders (see [`retrying`]), and wait for it from any thread.
    fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, OrchestratorError>
    where
        T: Send + 'static,
        F: FnMut(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let limit = self.timeout * 3;
        let client = self.client.clone();
        self.spawn(async move {
            let _ = tx.send(retrying(limit, client, op).await);
        });
        match wait(move || rx.recv()) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(OrchestratorError::store(
                format!("etcd: {what}"),
                e.to_string(),
            )),
            Err(_) => Err(OrchestratorError::store(
                format!("etcd: {what}"),
                "the etcd runtime stopped",
            )),
        }
    }

    /// One guarded transaction of `ops`, each with its size (split when
    /// longer than etcd allows — [`TXN_OPS`] operations, [`TXN_BYTES`]
    /// bytes — each part guarded on its own; an operation is never split).
    fn write(&self, what: &'static str, ops: Vec<(TxnOp, usize)>) -> Result<(), OrchestratorError> {
        let mut parts: Vec<Vec<TxnOp>> = Vec::new();
        let mut bytes = 0;
        for (op, n) in ops {
            match parts.last_mut() {
                Some(p) if p.len() < TXN_OPS && bytes + n <= TXN_BYTES => {
                    p.push(op);
                    bytes += n;
                }
                _ => {
                    parts.push(vec![op]);
                    bytes = n;
                }
            }
        }
        self.commit(what, parts)
    }

    /// Each of `parts` in one guarded transaction, in order.
    fn commit(&self, what: &'static str, parts: Vec<Vec<TxnOp>>) -> Result<(), OrchestratorError> {
        let held = self.held(self.guard()?);
        for part in parts {
            let held = held.clone();
            let ok = self.call(what, move |mut c| {
                let txn = Txn::new().when(held.clone()).and_then(part.clone());
                async move { c.txn(txn).await.map(|r| r.succeeded()) }
            })?;
            if !ok {
                return Err(OrchestratorError::Deposed(format!(
                    "{what} refused by etcd: the leader key is no longer this node's (another orchestrator leads now)"
                )));
            }
        }
        Ok(())
    }

    /// Who leads now (the leader key's value), read from etcd.
    pub fn leader_now(&self) -> Result<Option<String>, OrchestratorError> {
        let key = self.leader_key();
        let resp = self.call("read the leader", move |mut c| {
            let key = key.clone();
            async move { c.get(key, None).await }
        })?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }
}
