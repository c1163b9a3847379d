//! The orchestrator's durable state in etcd ([`EtcdStore`], `store = "etcd"`)
//! and the leader lease ([`leader`]) that is the licence to act of a
//! highly available deployment (DESIGN §7).
//!
//! Key layout under the configured prefix `P`:
//! - `P leader`: the name of the node holding the licence, attached to its lease;
//! - `P groups/NAME`, `P runbooks/ID`, `P events/ID` (ids zero-padded to 20
//!   digits, so key order is id order): JSON, as the local store keeps them.
//!
//! **Every write is guarded by leadership**: it is one etcd transaction whose
//! compare says "the leader key is still the one this node created" (its
//! create revision, and the lease it is on: revisions start again when etcd
//! is rebuilt empty). A deposed leader's write — after its lease expired and
//! another node won — fails in etcd itself and comes back as
//! [`OrchestratorError::Deposed`]; a node that never won writes nothing.
//!
//! The [`Store`] trait is synchronous (its callers run on blocking threads
//! or hold no lock); the etcd client is async. Calls run on a private
//! runtime of one thread and the caller waits for the answer, bounded by the
//! configured request timeout.
//!
//! This file owns [`EtcdStore`]: its connection and runtime, the guarded
//! write path and the [`Store`] implementation. The records' encoding, size
//! limits and key helpers are in `codec`; the retry of transient failures
//! (`retrying`, [`Fail`]) is in `retry`, shared with the leader loop.

mod codec;
pub mod leader;
mod retry;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, SortOrder, SortTarget,
    Txn, TxnOp,
};
use serde::de::DeserializeOwned;
use warden_config::EtcdConfig;

use crate::model::{Event, GroupState, Runbook};
use crate::store::blocking as wait;
use crate::store::Store;
use crate::OrchestratorError;
use tracing::warn;

use codec::{
    dec, enc, enc_group, mismatch, prefix_end, put, LIST_DECODE_BYTES, LIST_PAGE, PRUNE_PAGE,
    TXN_BYTES, TXN_OPS,
};
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

    fn id_key(&self, table: &str, id: u64) -> Vec<u8> {
        self.key(&format!("{table}/{id:020}"))
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

    /// Every record of `table`, with its key.
    fn list_keyed<T: DeserializeOwned + Send + 'static>(
        &self,
        what: &'static str,
        table: &str,
    ) -> Result<Vec<(Vec<u8>, T)>, OrchestratorError> {
        // In pages, all at the first page's revision (one snapshot): runbooks
        // are never pruned, so a table read whole would one day be too large
        // an answer and stop the orchestrator from starting.
        let prefix = self.key(&format!("{table}/"));
        let end = prefix_end(&prefix);
        let mut from = prefix;
        let mut revision = 0;
        let mut out = Vec::new();
        loop {
            let (f, e) = (from.clone(), end.clone());
            let resp = self.call(what, move |c| {
                let (f, e) = (f.clone(), e.clone());
                async move {
                    let mut o = GetOptions::new().with_range(e).with_limit(LIST_PAGE);
                    if revision > 0 {
                        o = o.with_revision(revision);
                    }
                    let mut kv = c.kv_client().max_decoding_message_size(LIST_DECODE_BYTES);
                    kv.get(f, Some(o)).await
                }
            })?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                out.push((kv.key().to_vec(), dec(kv.key(), kv.value())?));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(out),
            }
        }
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

impl Store for EtcdStore {
    fn writable(&self) -> bool {
        self.guard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn describe(&self) -> String {
        format!("etcd under {}", self.prefix)
    }

    fn groups(&self) -> Result<Vec<GroupState>, OrchestratorError> {
        let (keys, groups): (Vec<Vec<u8>>, Vec<GroupState>) = self
            .list_keyed("read groups", "groups")?
            .into_iter()
            .unzip();
        // A record is the group its key names: a copy under another key
        // (written by hand) must not stand in for it, nor be written back
        // over the real one.
        for (k, g) in keys.iter().zip(&groups) {
            if *k != self.key(&format!("groups/{}", g.name)) {
                return Err(mismatch(k, &format!("group {:?}", g.name)));
            }
        }
        Ok(groups)
    }

    fn state_version(&self) -> Option<i64> {
        // The newest modification among groups and runbooks (keys only).
        let mut newest = 0;
        for table in ["groups/", "runbooks/"] {
            let prefix = self.key(table);
            let resp = self
                .call("read the state version", move |mut c| {
                    let p = prefix.clone();
                    async move {
                        c.get(
                            p,
                            Some(
                                GetOptions::new()
                                    .with_prefix()
                                    .with_keys_only()
                                    .with_sort(SortTarget::Mod, SortOrder::Descend)
                                    .with_limit(1),
                            ),
                        )
                        .await
                    }
                })
                .ok()?;
            newest = newest.max(resp.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0));
        }
        Some(newest)
    }

    fn put_group(&self, g: &GroupState) -> Result<(), OrchestratorError> {
        let op = put(self.key(&format!("groups/{}", g.name)), enc_group(g)?);
        self.write("write a group", vec![op])
    }

    fn put_groups(&self, groups: &[GroupState]) -> Result<(), OrchestratorError> {
        let ops = groups
            .iter()
            .map(|g| Ok(put(self.key(&format!("groups/{}", g.name)), enc_group(g)?)))
            .collect::<Result<Vec<_>, OrchestratorError>>()?;
        self.write("write groups", ops)
    }

    fn put_group_and_runbook(&self, g: &GroupState, rb: &Runbook) -> Result<(), OrchestratorError> {
        // One transaction, never split: the group's record is bounded
        // (GROUP_RECORD_BYTES) so that the pair fits.
        let (group, _) = put(self.key(&format!("groups/{}", g.name)), enc_group(g)?);
        let (runbook, _) = put(self.id_key("runbooks", rb.id), enc(rb)?);
        self.commit("write a decision", vec![vec![group, runbook]])
    }

    fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError> {
        let op = put(self.id_key("runbooks", rb.id), enc(rb)?);
        self.write("write a runbook", vec![op])
    }

    fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError> {
        let (keys, runbooks): (Vec<Vec<u8>>, Vec<Runbook>) = self
            .list_keyed("read runbooks", "runbooks")?
            .into_iter()
            .unzip();
        for (k, rb) in keys.iter().zip(&runbooks) {
            if *k != self.id_key("runbooks", rb.id) {
                return Err(mismatch(k, &format!("runbook {}", rb.id)));
            }
        }
        Ok(runbooks)
    }

    fn put_event(&self, e: &Event) -> Result<(), OrchestratorError> {
        self.put_events(std::slice::from_ref(e))
    }

    fn put_events(&self, events: &[Event]) -> Result<(), OrchestratorError> {
        let ops = events
            .iter()
            .map(|e| Ok(put(self.id_key("events", e.id), enc(e)?)))
            .collect::<Result<Vec<_>, OrchestratorError>>()?;
        self.write("write events", ops)
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError> {
        let from = self.id_key("events", after.saturating_add(1));
        let end = prefix_end(&self.key("events/"));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let resp = self.call("read events", move |mut c| {
            let (from, end) = (from.clone(), end.clone());
            async move {
                c.get(
                    from,
                    Some(GetOptions::new().with_range(end).with_limit(limit)),
                )
                .await
            }
        })?;
        resp.kvs()
            .iter()
            .map(|kv| dec(kv.key(), kv.value()))
            .collect()
    }

    fn last_event_id(&self) -> Result<u64, OrchestratorError> {
        // Event keys are 20-digit ids: only keys starting with a digit are
        // read (`events/0` up to `events/:`), the highest first, and a key
        // among them that is not an id is skipped, said by its name — never
        // read as "no events", which would number new events over old ones.
        let prefix = self.key("events/");
        let (from, to) = (self.key("events/0"), self.key("events/:"));
        let resp = self.call("read the last event", move |mut c| {
            let (from, to) = (from.clone(), to.clone());
            async move {
                c.get(
                    from,
                    Some(
                        GetOptions::new()
                            .with_range(to)
                            .with_sort(SortTarget::Key, SortOrder::Descend)
                            .with_limit(64)
                            .with_keys_only(),
                    ),
                )
                .await
            }
        })?;
        let mut strays = Vec::new();
        for kv in resp.kvs() {
            let rest = &kv.key()[prefix.len()..];
            let id = std::str::from_utf8(rest)
                .ok()
                .filter(|r| r.len() == 20 && r.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|r| r.parse::<u64>().ok());
            match id {
                Some(id) => {
                    for k in &strays {
                        warn!(key = %k, "a key under events/ that is not an event id: skipped");
                    }
                    return Ok(id);
                }
                None => strays.push(String::from_utf8_lossy(kv.key()).escape_debug().to_string()),
            }
        }
        if strays.is_empty() {
            return Ok(0);
        }
        Err(OrchestratorError::store(
            "read the last event",
            format!(
                "{} key(s) under events/ that are not event ids, and no event id among the \
                 highest 64 (first: {}): remove them (etcdctl del)",
                strays.len(),
                strays[0]
            ),
        ))
    }

    fn prune_events(
        &self,
        keep: usize,
        before_unix_ms: u64,
        max: usize,
    ) -> Result<usize, OrchestratorError> {
        let prefix = self.key("events/");
        let p = prefix.clone();
        let count = self
            .call("count events", move |mut c| {
                let p = p.clone();
                async move {
                    c.get(p, Some(GetOptions::new().with_prefix().with_count_only()))
                        .await
                }
            })?
            .count();
        let excess = usize::try_from(count).unwrap_or(0).saturating_sub(keep);
        // Read from the oldest only as far as something goes: the excess by
        // count, then by age a page that starts at one event and doubles
        // while they are all old (a batch in steady state reads one event).
        let end_all = prefix_end(&prefix);
        let mut oldest: Vec<Vec<u8>> = Vec::new();
        let mut from = prefix.clone();
        let mut page = 1usize;
        'pages: while oldest.len() < max {
            let want = if oldest.len() < excess {
                (excess - oldest.len()).min(PRUNE_PAGE)
            } else {
                page
            }
            .min(max - oldest.len());
            let (f, e) = (from.clone(), end_all.clone());
            let limit = i64::try_from(want).unwrap_or(i64::MAX);
            let resp = self.call("read the oldest events", move |mut c| {
                let (f, e) = (f.clone(), e.clone());
                async move {
                    c.get(f, Some(GetOptions::new().with_range(e).with_limit(limit)))
                        .await
                }
            })?;
            if resp.kvs().is_empty() {
                break;
            }
            for kv in resp.kvs() {
                let ev: Event = dec(kv.key(), kv.value())?;
                if oldest.len() >= excess && ev.time_unix_ms >= before_unix_ms {
                    break 'pages;
                }
                oldest.push(kv.key().to_vec());
                from = prefix_end(kv.key());
            }
            page = (page * 2).min(PRUNE_PAGE);
        }
        let doomed = oldest.len();
        if doomed == 0 {
            return Ok(0);
        }
        let first = oldest[0].clone();
        let end = prefix_end(&oldest[doomed - 1]);
        let op = TxnOp::delete(first, Some(DeleteOptions::new().with_range(end)));
        self.write("prune events", vec![(op, 0)])?;
        Ok(doomed)
    }
}
