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
//! The deadline is kept on two clocks ([`Deadline`]): tokio's (monotonic,
//! what paused-time tests drive) and the boot clock (`CLOCK_BOOTTIME`,
//! which counts the time a host spent suspended — S3, hibernation — where
//! the monotonic clock stands still; a VM paused by its hypervisor may
//! stop both, and then only etcd's lease and the receivers' terms count). etcd's lease
//! runs on etcd's clocks meanwhile: a host woken after the lease ran out
//! must find its licence lapsed, so the licence lapses when either clock
//! says the deadline passed.
//!
//! A look at the licence before a call that reads before it writes is not
//! enough (the process may be paused in the read): the routing layer's
//! calls run under the term's gate ([`Licence::gated`]), which every
//! strategy asks right before each order leaves (`warden_strategies::gate`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// A reading of the boot clock: the time since the host booted, suspended
/// time included.
pub type BootClock = fn() -> Duration;

/// `CLOCK_BOOTTIME`: unlike the monotonic clock it advances while the host
/// is suspended.
pub fn boot_clock() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// When a lease was asked for (granted or renewed), on both clocks: taken
/// right before the request leaves, since the lease runs from there.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    /// tokio's clock (monotonic).
    pub at: Instant,
    /// The boot clock.
    pub boot: Duration,
}

impl Asked {
    /// Both clocks now.
    pub fn now() -> Self {
        Asked {
            at: Instant::now(),
            boot: boot_clock(),
        }
    }

    /// The deadline `runs` after this.
    pub fn deadline(self, runs: Duration) -> Deadline {
        Deadline {
            at: self.at + runs,
            boot: Some(self.boot + runs),
        }
    }
}

/// When a lease runs out, on both clocks: passed when either says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// On tokio's clock (monotonic: stands still while the host is suspended).
    pub at: Instant,
    /// On the boot clock; `None`: bounded by tokio's clock only.
    pub boot: Option<Duration>,
}

impl Deadline {
    /// Whether the boot clock, reading `now`, is past this deadline.
    pub fn boot_passed(&self, now: Duration) -> bool {
        self.boot.is_some_and(|b| now >= b)
    }
}

impl From<Instant> for Deadline {
    fn from(at: Instant) -> Self {
        Deadline { at, boot: None }
    }
}

/// The deadline a licence lapses at by itself, and whether its term did.
#[derive(Debug, Default)]
struct Bound {
    /// `None`: it does not lapse (the local store).
    until: Option<Deadline>,
    /// The current term ended by lapsing (not by a revocation): what said so.
    lapsed: Option<&'static str>,
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
    /// The boot clock the deadline's boot reading is compared with
    /// ([`boot_clock`]; a test's own clock: [`Licence::with_boot_clock`]).
    boot: BootClock,
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
            boot: boot_clock,
        }
    }

    /// This licence, its deadline's boot reading compared with `boot`
    /// (tests: a clock that runs while tokio's stands still).
    pub fn with_boot_clock(mut self, boot: BootClock) -> Self {
        self.boot = boot;
        self
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
    /// later deadline first (the leader lease's renewal deadline, set before
    /// the term is granted and at every renewal). Once past it on either
    /// clock, the first look at the licence ends the term as a revocation
    /// does — whether or not the election loop has run since. False when
    /// the current term has lapsed already (this call looks first): a
    /// renewal that came back too late renews no licence (the term must
    /// end and a new one be won).
    pub fn lapse_at(&self, until: impl Into<Deadline>) -> bool {
        let _ = self.token();
        let mut b = self.bound();
        let until = until.into();
        b.until = Some(until);
        b.lapsed.is_none()
    }

    /// Why the current (or last) term lapsed, if it did (the clock that
    /// said the deadline passed).
    pub fn lapse_cause(&self) -> Option<&'static str> {
        self.bound().lapsed
    }

    /// Start a new term (no-op when one is running).
    pub fn grant(&self) {
        let mut t = self.term();
        if t.as_ref().is_none_or(|t| t.is_cancelled()) {
            self.bound().lapsed = None;
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
        let Some(until) = bound.until else {
            return Some(token);
        };
        let cause = if Instant::now() >= until.at {
            "the leader lease was not renewed before its deadline"
        } else if until.boot_passed((self.boot)()) {
            "the host's boot clock says the lease ran out (suspended?) while its monotonic \
             clock still counts time left"
        } else {
            return Some(token);
        };
        bound.lapsed = Some(cause);
        term.take();
        token.cancel();
        warn!(
            cause,
            "licence to act lapsed; cancelling what was started under it"
        );
        None
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

    /// Fake boot clocks (ms), one per test (tests run at once): they run
    /// while tokio's paused clock stands still.
    static WOKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(3_600_000);
    static RENEWED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(3_600_000);

    fn woken_boot() -> Duration {
        Duration::from_millis(WOKEN.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn renewed_boot() -> Duration {
        Duration::from_millis(RENEWED.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// A leader host suspended for ten minutes with a 10 s lease wakes up:
    /// its monotonic clock says 9 s are left, etcd expired the lease long
    /// ago and another node leads. The boot clock counted the suspension:
    /// the licence has lapsed, the gate of the order in flight is closed,
    /// and a renewal that comes back now renews nothing.
    #[tokio::test(start_paused = true)]
    async fn a_host_woken_from_suspension_past_its_lease_finds_its_licence_lapsed() {
        let shutdown = CancellationToken::new();
        let l = Arc::new(Licence::new(&shutdown).with_boot_clock(woken_boot));
        let asked = Asked {
            at: Instant::now(),
            boot: woken_boot(),
        };
        assert!(l.lapse_at(asked.deadline(Duration::from_secs(9))));
        l.grant();
        let term = l.token().expect("the licence is held");
        let gate = l.gate(&term);
        assert!(gate(), "the gate is open within the lease");

        WOKEN.fetch_add(600_000, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(Instant::now(), asked.at, "tokio's clock stood still");

        assert!(!gate(), "an order left after the host woke past its lease");
        assert!(l.token().is_none(), "the licence is still held");
        assert!(term.is_cancelled(), "work of the term goes on");
        let cause = l.lapse_cause().expect("the term lapsed");
        assert!(cause.contains("boot clock"), "{cause}");
        let renewed = Asked {
            at: Instant::now(),
            boot: woken_boot(),
        };
        assert!(
            !l.lapse_at(renewed.deadline(Duration::from_secs(9))),
            "a renewal after the lapse renewed the licence"
        );
        assert!(!l.is_held());
    }

    /// A renewal sent before a suspension that comes back after it, past
    /// the deadline on the boot clock only, with nothing having looked at
    /// the licence meanwhile: it renews no licence (the term ends; a new
    /// one must be won), as a renewal that comes back after the monotonic
    /// deadline does.
    #[tokio::test(start_paused = true)]
    async fn a_renewal_back_after_the_boot_deadline_renews_no_licence() {
        let shutdown = CancellationToken::new();
        let l = Licence::new(&shutdown).with_boot_clock(renewed_boot);
        let asked = Asked {
            at: Instant::now(),
            boot: renewed_boot(),
        };
        assert!(l.lapse_at(asked.deadline(Duration::from_secs(9))));
        l.grant();
        let term = l.token().expect("the licence is held");
        let sent = Asked {
            at: Instant::now(),
            boot: renewed_boot(),
        };
        RENEWED.fetch_add(600_000, std::sync::atomic::Ordering::SeqCst);
        assert!(
            !l.lapse_at(sent.deadline(Duration::from_secs(9))),
            "a renewal that came back past the boot deadline renewed the licence"
        );
        assert!(term.is_cancelled() && !l.is_held());
    }
}
