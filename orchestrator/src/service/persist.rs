//! Durable group state without disk writes under the state lock: changes are
//! queued (the newest state per group wins) and one writer task commits them,
//! on a blocking thread, in store transactions — a decision together with its
//! runbook. A runbook task starts acting only once its decision is durable
//! — or, with a store that allows it (the local
//! file on a full disk), once its commit has failed: the failover then runs
//! from memory under an alert rather than not at all
//! ([`GroupWriter::durable_or_failed`]); a failed commit is retried every second and
//! said in the log until the store takes it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Shared, State};
use crate::model::{EventKind, GroupState, Runbook};

#[derive(Default)]
struct Queue {
    groups: BTreeMap<String, GroupState>,
    /// New runbooks, each committed with its group's state.
    runbooks: Vec<Runbook>,
    /// Sequence number of the newest change queued.
    seq: u64,
    /// Raised by each [`GroupWriter::discard`] (a step-down): changes taken
    /// before it belong to a term that ended.
    term: u64,
}

/// Changes of group state waiting to be committed.
pub(crate) struct GroupWriter {
    queue: Mutex<Queue>,
    notify: Notify,
    /// The newest sequence number known durable.
    written: watch::Sender<u64>,
    /// The newest sequence number whose commit failed (a full disk).
    failed: watch::Sender<u64>,
    /// A commit is on the store's blocking thread now. Tests wait for it
    /// to end before they move their paused clock, which does not wait for
    /// a blocking thread (`Shared::writer_idle`).
    committing: watch::Sender<bool>,
    /// Each group's highest epoch known durable (loaded from the store or
    /// committed since): the epoch agents may be told. One only queued may
    /// still be lost (a write etcd refuses, then a step-down), and an agent
    /// told it would hold an epoch the next leader never had — seen as an
    /// epoch ahead, which holds every move until `warden adopt-epoch`.
    durable: Mutex<BTreeMap<String, u64>>,
}

impl GroupWriter {
    pub(crate) fn new() -> Self {
        GroupWriter {
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            written: watch::channel(0).0,
            failed: watch::channel(0).0,
            committing: watch::channel(false).0,
            durable: Mutex::new(BTreeMap::new()),
        }
    }

    /// The groups as loaded from the store: their epochs are durable.
    pub(crate) fn loaded<'a>(&self, groups: impl IntoIterator<Item = &'a GroupState>) {
        let mut d = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        d.clear();
        for g in groups {
            d.insert(g.name.clone(), g.epoch);
        }
    }

    /// Each group's highest durable epoch (see [`durable_epoch`]).
    pub(crate) fn durable(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.durable.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn committed<'a>(&self, groups: impl IntoIterator<Item = &'a GroupState>) {
        let mut d = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        for g in groups {
            let e = d.entry(g.name.clone()).or_insert(g.epoch);
            *e = (*e).max(g.epoch);
        }
    }

    /// Whether every change queued is durable: nothing waits in the queue
    /// (a failed commit puts its changes back) and the newest change's
    /// commit went through.
    pub(crate) fn settled(&self) -> bool {
        let q = self.lock();
        q.groups.is_empty() && q.runbooks.is_empty() && *self.written.borrow() >= q.seq
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `g` (and a new runbook with it); the change's sequence number.
    pub(crate) fn queue(&self, g: &GroupState, rb: Option<&Runbook>) -> u64 {
        let mut q = self.lock();
        q.seq += 1;
        q.groups.insert(g.name.clone(), g.clone());
        if let Some(rb) = rb {
            q.runbooks.push(rb.clone());
        }
        let seq = q.seq;
        drop(q);
        self.notify.notify_one();
        seq
    }

    /// Drop every queued change (this node stepped down: they are void),
    /// and those being written now if their write fails (see `term`).
    pub(crate) fn discard(&self) {
        let mut q = self.lock();
        q.groups.clear();
        q.runbooks.clear();
        q.term += 1;
    }

    /// Wait until change `seq` is durable, or (`volatile`) until its commit
    /// failed once; `None` if `stop` came first, else whether it is durable.
    pub(crate) async fn durable_or_failed(
        &self,
        seq: u64,
        volatile: bool,
        stop: &CancellationToken,
    ) -> Option<bool> {
        let mut written = self.written.subscribe();
        let mut failed = self.failed.subscribe();
        tokio::select! {
            // Durable first: a later batch's failure says nothing of this one.
            biased;
            r = written.wait_for(|w| *w >= seq) => r.is_ok().then_some(true),
            r = failed.wait_for(|f| *f >= seq), if volatile => r.is_ok().then_some(false),
            _ = stop.cancelled() => None,
        }
    }
}

/// At the start of a single orchestrator (which acts from the start): the
/// state read's corrections (`to_write`) written now. A store that may act
/// unwritten (the local file on a full disk) and cannot write one: the
/// orchestrator starts all the same, as it acts on a full disk while it
/// runs — those returned, with the cause, are to be queued to the group
/// writer (retried until the store takes them) under the store's alert.
/// Any other store's refusal refuses the start.
pub(crate) fn write_corrections(
    store: &dyn crate::store::Store,
    to_write: &[GroupState],
) -> Result<(Vec<GroupState>, Option<String>), crate::OrchestratorError> {
    let mut unwritten = Vec::new();
    let mut cause = None;
    for g in to_write {
        match store.put_group(g) {
            Ok(()) => {}
            Err(e) if store.may_act_unwritten() => {
                warn!(group = %g.name, cause = %e, "cannot write the group's corrected state at start; starting with it in memory, the write retried");
                cause = Some(e.to_string());
                unwritten.push(g.clone());
            }
            Err(e) => return Err(e),
        }
    }
    Ok((unwritten, cause))
}

/// How long an operator's answer waits for the change to be stored
/// ([`Shared::stored_for_operator`]): within the CLI's 10 s, with room for
/// a few of the group writer's retries (one a second).
pub(crate) const OPERATOR_STORE_WAIT: Duration = Duration::from_secs(5);

/// The epoch of group `name` an agent may be told, from the writer's
/// [`GroupWriter::durable`] map: `epoch` (the one in memory) when it is
/// durable, else the highest durable one.
pub(crate) fn durable_epoch(durable: &BTreeMap<String, u64>, name: &str, epoch: u64) -> u64 {
    durable.get(name).map_or(epoch, |&d| d.min(epoch))
}

impl Shared {
    /// Wait until every change queued so far is durable.
    #[cfg(test)]
    pub(crate) async fn writer_settled(&self) {
        let seq = self.writer.lock().seq;
        self.writer
            .durable_or_failed(seq, false, &CancellationToken::new())
            .await;
    }

    /// Wait until no commit is on the store's blocking thread: one under
    /// way has ended (durable, failed or refused); a failed one's retry a
    /// second later is not waited for (a full disk).
    #[cfg(test)]
    pub(crate) async fn writer_idle(&self) {
        let _ = self.writer.committing.subscribe().wait_for(|c| !c).await;
    }

    /// Before acting on change `seq` (a decision): wait until it is durable,
    /// or — with a store that may act unwritten (the local file on a full
    /// disk) — until its commit failed, then raise an alert saying what
    /// goes on from memory (`doing`, e.g. "running failover a → b").
    /// False when `term` ended first: do nothing.
    pub(crate) async fn durable_before_acting(
        &self,
        seq: u64,
        term: &CancellationToken,
        group: &str,
        site: Option<&str>,
        runbook: Option<u64>,
        doing: impl FnOnce() -> String,
    ) -> bool {
        let volatile = self.store.may_act_unwritten();
        match self.writer.durable_or_failed(seq, volatile, term).await {
            None => false,
            Some(true) => true,
            Some(false) => {
                self.event(
                    EventKind::Alert,
                    Some(group),
                    site,
                    format!(
                        "the store cannot write ({}): {} from memory; a crash of the orchestrator now would forget it",
                        self.store.describe(),
                        doing()
                    ),
                    vec![],
                    runbook,
                );
                true
            }
        }
    }

    /// Before an operator is told that change `seq` (theirs) is made: wait
    /// until it is stored, [`OPERATOR_STORE_WAIT`] at most. `Err` when it
    /// is not: the licence `term` (the one it was made under) ended first
    /// — the change is void, the next holder never had it — or the store
    /// does not take it (a full disk, etcd refusing): in effect here, lost
    /// with this process. `what` names the change.
    pub(crate) async fn stored_for_operator(
        &self,
        seq: u64,
        term: Option<CancellationToken>,
        what: impl FnOnce() -> String,
    ) -> Result<(), crate::OrchestratorError> {
        let Some(term) = term else {
            return Err(crate::OrchestratorError::Deposed(format!(
                "{} was not stored: this orchestrator holds no licence to act",
                what()
            )));
        };
        let volatile = self.store.may_act_unwritten();
        let waited = tokio::time::timeout(
            OPERATOR_STORE_WAIT,
            self.writer.durable_or_failed(seq, volatile, &term),
        )
        .await;
        match waited {
            Ok(Some(true)) => Ok(()),
            Ok(None) => Err(crate::OrchestratorError::Deposed(format!(
                "{} was not stored before this orchestrator's licence to act ended: it is void; \
                 ask the orchestrator that acts now",
                what()
            ))),
            Ok(Some(false)) | Err(_) => Err(crate::OrchestratorError::store(
                format!(
                    "{} is in effect at this orchestrator but not stored",
                    what()
                ),
                format!(
                    "the store ({}) does not take it yet (see the store's alert): a restart, or \
                     another orchestrator taking over, would not have it; ask again once it writes",
                    self.store.describe()
                ),
            )),
        }
    }

    /// An operator's move or approval (`start`: it starts a runbook and
    /// queues its decision) answered once the decision is stored: told
    /// "runbook N started", an operator does not ask again — and a decision
    /// only in this orchestrator's memory is lost with it (a step-down:
    /// the next leader still has the group pending, or on the site that was
    /// lost). Everything queued when `start` returned is waited for, the
    /// decision with it. See [`Shared::stored_for_operator`].
    pub async fn runbook_stored(
        self: &Arc<Self>,
        group: &str,
        start: impl FnOnce(&Arc<Self>) -> Result<u64, crate::OrchestratorError>,
    ) -> Result<u64, crate::OrchestratorError> {
        let term = self.licence.token();
        let id = start(self)?;
        let seq = self.writer.lock().seq;
        self.stored_for_operator(seq, term, || {
            format!("runbook {id} of group {group} (its decision)")
        })
        .await?;
        Ok(id)
    }

    /// Queue a group's new state for the store (never writes under the lock).
    pub(crate) fn persist(&self, g: &GroupState) -> u64 {
        self.writer.queue(g, None)
    }

    /// A group's new state: queued for the store and made the current one
    /// (the in-memory state under the lock is what every reader sees).
    pub(crate) fn put_group_locked(&self, st: &mut State, g: GroupState) {
        self.persist(&g);
        st.groups.insert(g.name.clone(), g);
    }

    /// Queue a decision: the group's new state and its runbook, committed together.
    pub(crate) fn persist_decision(&self, g: &GroupState, rb: &Runbook) -> u64 {
        self.writer.queue(g, Some(rb))
    }

    /// The store refused a write because another orchestrator leads (etcd's
    /// guard on the leader key failed): stop acting now, not when the
    /// election loop next reads the key (up to a third of the lease later)
    /// — meanwhile this node would still re-apply routes, order holds,
    /// hand commands to agents and move DNS. The election loop then steps
    /// down in full and campaigns again.
    ///
    /// `under`: the licence's term the write was taken under
    /// ([`crate::licence::Licence::term_number`]). A write still in flight
    /// when this node stepped down, refused once it has won a later term,
    /// ends nothing: the later term is its own.
    pub(crate) fn deposed_by_store(&self, e: &crate::OrchestratorError, under: u64) {
        self.licence
            .revoke_term(under, &format!("the store refused a write: {e}"));
    }

    /// The writer task: commit queued changes until `stop`, then once more.
    pub async fn write_groups(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = self.writer.notify.notified() => false,
                _ = stop.cancelled() => true,
            };
            loop {
                let under = self.licence.term_number();
                let (groups, runbooks, seq, term) = {
                    let mut q = self.writer.lock();
                    (
                        std::mem::take(&mut q.groups),
                        std::mem::take(&mut q.runbooks),
                        q.seq,
                        q.term,
                    )
                };
                if groups.is_empty() && runbooks.is_empty() {
                    break;
                }
                let store = self.store.clone();
                let (g2, r2) = (groups.clone(), runbooks.clone());
                self.writer.committing.send_replace(true);
                let licence = Arc::clone(&self.licence);
                let result = tokio::task::spawn_blocking(move || {
                    // The store's guard is read at each call: a batch whose
                    // term ended between two of its calls (this node
                    // stepped down and won again) writes no more of it
                    // under the later term (which loaded the store anew).
                    let same_term = || {
                        if licence.term_number() == under {
                            Ok(())
                        } else {
                            Err(crate::OrchestratorError::Deposed(
                                "the licence's term ended while its writes were made".into(),
                            ))
                        }
                    };
                    let mut groups = g2;
                    // A group's state is written with its newest runbook
                    // of the batch (the one it names when it names one),
                    // the older ones alone before: a crash between two of
                    // these writes never leaves a group naming a runbook
                    // the store does not hold yet.
                    for (i, rb) in r2.iter().enumerate() {
                        let newest = !r2[i + 1..].iter().any(|later| later.group == rb.group);
                        let g = if newest {
                            groups.remove(&rb.group)
                        } else {
                            None
                        };
                        same_term()?;
                        match g {
                            Some(g) => store.put_group_and_runbook(&g, rb)?,
                            None => store.put_runbook(rb)?,
                        }
                    }
                    let rest: Vec<_> = groups.into_values().collect();
                    same_term()?;
                    store.put_groups(&rest)?;
                    Ok::<(), crate::OrchestratorError>(())
                })
                .await;
                self.writer.committing.send_replace(false);
                match result {
                    Ok(Ok(())) => {
                        self.writer.committed(groups.values());
                        self.writer.written.send_replace(seq);
                        self.store_ok("group state");
                    }
                    Ok(Err(e @ crate::OrchestratorError::Deposed(_))) => {
                        // Another node leads: these changes are void.
                        warn!(cause = %e, "group state not written: deposed");
                        self.deposed_by_store(&e, under);
                    }
                    failed => {
                        let cause = match failed {
                            Ok(Err(e)) => e.to_string(),
                            Err(e) => e.to_string(),
                            Ok(Ok(())) => String::new(),
                        };
                        self.store_trouble("group state", &cause);
                        self.writer.failed.send_replace(seq);
                        // Put the changes back under anything newer — unless
                        // the node stepped down meanwhile: they are void, and
                        // a retry would make them under a later term, over
                        // the state its take-over loaded.
                        {
                            let mut q = self.writer.lock();
                            if q.term != term {
                                warn!(cause = %cause, "group state not written, and not retried: this node stepped down while it was being written");
                                continue;
                            }
                            warn!(cause = %cause, "cannot persist group state; retrying in 1 s");
                            for (name, g) in groups {
                                q.groups.entry(name).or_insert(g);
                            }
                            let newer = std::mem::take(&mut q.runbooks);
                            q.runbooks = runbooks;
                            q.runbooks.extend(newer);
                        }
                        if stopping {
                            info!("shutdown: group state not persisted; the runbooks it covers resume from the store as it was");
                            return;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.cancelled() => {}
                        }
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change that is durable is said durable, also once a later batch
    /// failed (a full disk after it): an operator is not told that
    /// maintenance stored a moment ago was not. Before, either answer was
    /// picked at random when both had happened.
    #[tokio::test]
    async fn a_durable_change_is_durable_whatever_failed_after_it() {
        let w = GroupWriter::new();
        w.written.send_replace(5);
        w.failed.send_replace(6);
        let stop = CancellationToken::new();
        for _ in 0..64 {
            assert_eq!(w.durable_or_failed(5, true, &stop).await, Some(true));
        }
        assert_eq!(w.durable_or_failed(6, true, &stop).await, Some(false));
    }
}
