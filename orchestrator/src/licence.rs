//! The licence to act: the one object under which everything that changes the
//! world runs — decisions, runbooks, reconciliation, replication orders, DNS
//! moves. Evidence intake and views never need it.
//!
//! A licence is granted for a *term*. Work started under a term (runbook
//! tasks, DNS moves) is tracked and is cancelled when the term is revoked, so
//! a holder that loses its licence stops acting mid-step; a cancelled runbook
//! stays `running` in the store for the next holder to resume. With the local
//! store the licence is held from start to shutdown; with etcd it follows
//! the leader lease (DESIGN §7) and lapses by itself at the lease's renewal
//! deadline ([`Licence::lapse_at`]): a process paused past its lease (or
//! whose election loop does not get to run) finds it lapsed at its first
//! look, before the election loop has stepped down.
//!
//! A look at the licence before a call that reads before it writes is not
//! enough (the process may be paused in the read): the routing layer's
//! calls run under the term's gate ([`Licence::gated`]), which every
//! strategy asks right before each order leaves (`warden_strategies::gate`).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The instant a licence lapses by itself, and whether its term did.
#[derive(Debug, Default)]
struct Bound {
    /// `None`: it does not lapse (the local store).
    until: Option<Instant>,
    /// The current term ended by lapsing (not by a revocation).
    lapsed: bool,
}

/// The licence to act, with the tasks started under it.
#[derive(Debug)]
pub struct Licence {
    shutdown: CancellationToken,
    /// The current term: `None` while not held; cancelled on revocation.
    term: Mutex<Option<CancellationToken>>,
    /// When the licence lapses unless renewed.
    until: Mutex<Bound>,
    /// Counts the terms granted: the number of the current (or last) one.
    terms: std::sync::atomic::AtomicU64,
    tasks: TaskTracker,
}

impl Licence {
    /// A licence that is not held (yet).
    pub fn new(shutdown: &CancellationToken) -> Self {
        Licence {
            shutdown: shutdown.clone(),
            term: Mutex::new(None),
            until: Mutex::new(Bound::default()),
            terms: std::sync::atomic::AtomicU64::new(0),
            tasks: TaskTracker::new(),
        }
    }

    /// A licence held from now until shutdown (the local store: one process).
    pub fn held(shutdown: &CancellationToken) -> Self {
        let l = Licence::new(shutdown);
        l.grant();
        l
    }

    fn term(&self) -> std::sync::MutexGuard<'_, Option<CancellationToken>> {
        self.term.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bound(&self) -> std::sync::MutexGuard<'_, Bound> {
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this process may act now.
    pub fn is_held(&self) -> bool {
        self.token().is_some()
    }

    /// The licence lapses at `until` unless this is called again with a
    /// later instant first (the leader lease's renewal deadline, set before
    /// the term is granted and at every renewal). Once past it, the first
    /// look at the licence ends the term as a revocation does — whether or
    /// not the election loop has run since. False when the current term
    /// has lapsed already: a renewal that came back too late renews no
    /// licence (the term must end and a new one be won).
    pub fn lapse_at(&self, until: Instant) -> bool {
        let mut b = self.bound();
        b.until = Some(until);
        !b.lapsed
    }

    /// Start a new term (no-op when one is running).
    pub fn grant(&self) {
        let mut t = self.term();
        if t.as_ref().is_none_or(|t| t.is_cancelled()) {
            self.bound().lapsed = false;
            self.terms.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            *t = Some(self.shutdown.child_token());
            info!("licence to act granted");
        }
    }

    /// End the term: everything started under it is cancelled.
    pub fn revoke(&self, why: &str) {
        if let Some(t) = self.term().take() {
            t.cancel();
            warn!(cause = %why, "licence to act revoked: cancelling what was started under it");
        }
    }

    /// The number of the current term (of the last one when none is held):
    /// what a write taken now is made under, for [`Licence::revoke_term`].
    pub fn term_number(&self) -> u64 {
        let _t = self.term();
        self.terms.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// [`Licence::revoke`], only if term `n` is still the current one: a
    /// write refused as a deposed leader's ends the term it was made
    /// under, never a later one this node has won since.
    pub fn revoke_term(&self, n: u64, why: &str) {
        // Terms are counted under the term's lock (see `grant`).
        let mut t = self.term();
        if self.terms.load(std::sync::atomic::Ordering::SeqCst) == n {
            if let Some(t) = t.take() {
                t.cancel();
                warn!(cause = %why, "licence to act revoked: cancelling what was started under it");
            }
        }
    }

    /// The current term's token (cancelled on revocation or shutdown), if held.
    pub fn token(&self) -> Option<CancellationToken> {
        let mut term = self.term();
        let token = term.clone().filter(|t| !t.is_cancelled())?;
        let mut bound = self.bound();
        if bound.until.is_some_and(|u| Instant::now() >= u) {
            bound.lapsed = true;
            term.take();
            token.cancel();
            warn!("licence to act lapsed: the leader lease was not renewed before its deadline; cancelling what was started under it");
            return None;
        }
        Some(token)
    }

    /// The gate of work started under `term`: open while this licence is
    /// held under that very term, looked at when it is asked — as each
    /// order leaves (see `warden_strategies::gate`) — so a licence that
    /// lapsed meanwhile (a process paused in the middle of a call) closes it.
    pub fn gate(self: &Arc<Self>, term: &CancellationToken) -> warden_strategies::gate::Gate {
        let (me, term) = (self.clone(), term.clone());
        Arc::new(move || me.is_held() && !term.is_cancelled())
    }

    /// Whether work started under `term` may still act (its gate is open).
    pub fn holds(&self, term: &CancellationToken) -> bool {
        self.is_held() && !term.is_cancelled()
    }

    /// Run a routing layer's `call` under the gate of `term`. `None` when
    /// the gate is closed once it returns: what it did or refused to do
    /// (a write refused as unlicensed, an error of a layer another leader
    /// writes to now) is not this term's to act on or record.
    pub async fn gated<F: Future>(
        self: &Arc<Self>,
        term: &CancellationToken,
        call: F,
    ) -> Option<F::Output> {
        let out = warden_strategies::gate::under(self.gate(term), call).await;
        self.holds(term).then_some(out)
    }

    /// Run `work` under the current term, tracked. `work` gets the term's
    /// token and must stop when it is cancelled. Returns false (and runs
    /// nothing) when the licence is not held.
    pub fn spawn<F, Fut>(&self, work: F) -> bool
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(token) = self.token() else {
            return false;
        };
        self.tasks.spawn(work(token));
        true
    }

    /// After shutdown: wait for the tracked tasks (they see the cancelled term).
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoking_cancels_what_was_started_and_refuses_new_work() {
        let shutdown = CancellationToken::new();
        let l = Licence::held(&shutdown);
        assert!(l.is_held());
        let (tx, rx) = tokio::sync::oneshot::channel();
        assert!(l.spawn(|t| async move {
            t.cancelled().await;
            let _ = tx.send("stopped");
        }));
        l.revoke("test");
        assert!(!l.is_held());
        assert_eq!(rx.await.unwrap(), "stopped");
        assert!(!l.spawn(|_| async {}), "no work without the licence");
        l.grant();
        assert!(l.is_held(), "a new term");
        shutdown.cancel();
        assert!(!l.is_held(), "shutdown ends the term");
        l.wait().await;
    }
}
