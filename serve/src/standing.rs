//! The connections a listener serves, by age, and each one's standing:
//! whether a request on it came with a known credential. At the connection
//! cap ([`crate::Limits::max_connections`]) the listener displaces the
//! oldest connection nobody vouched for ([`Open::displace_oldest_unvouched`]),
//! so a client without a credential that holds connections only ever
//! displaces its own kind — and one credential vouches for a bounded
//! number of connections ([`per_credential`]), so neither does a holder of
//! one token.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio_util::sync::CancellationToken;

/// A connection's standing, in every request's extensions: the router's
/// authentication calls [`Standing::vouch_as`] once a request on it came
/// with a known credential. At the connection cap a new connection
/// displaces the oldest connection not vouched for; one vouched for is
/// never displaced. One credential vouches for at most
/// [`per_credential`] open connections: a holder of one token (one site's
/// agent token, say) that opens more cannot make them all undisplaceable
/// and keep every other agent and operator out.
#[derive(Debug, Clone, Default)]
pub struct Standing(Arc<Seat>);

#[derive(Debug, Default)]
struct Seat {
    /// The credential that vouched for the connection.
    by: OnceLock<Arc<str>>,
    /// The registry that counts each credential's vouched connections
    /// (none: a standing made outside a listener, which always vouches).
    open: Weak<Open>,
}

/// How many open connections one credential may vouch for, under a cap of
/// `max_connections`: a quarter of it, at least 2 (an agent's report
/// stream and its command poll), at most 64.
pub fn per_credential(max_connections: usize) -> usize {
    (max_connections / 4).clamp(2, 64)
}

impl Standing {
    /// A request on this connection came with `credential` (a name for the
    /// token: "agent:SITE", "operator:NAME"). Whether the connection is
    /// now vouched for: not when that credential already vouches for
    /// [`per_credential`] open connections — this one then stays
    /// displaceable at the cap (its requests are still served).
    pub fn vouch_as(&self, credential: &str) -> bool {
        if self.vouched() {
            return true;
        }
        match self.0.open.upgrade() {
            Some(open) => open.vouch(credential, &self.0),
            None => {
                let _ = self.0.by.set(credential.into());
                true
            }
        }
    }

    pub fn vouched(&self) -> bool {
        self.0.by.get().is_some()
    }
}

/// The connections being served (until a WebSocket takes one over), by
/// age, each with its standing and the token that displaces it.
pub(crate) struct Open {
    conns: Mutex<BTreeMap<u64, (Standing, CancellationToken)>>,
    next: AtomicU64,
    /// Open connections vouched for, per credential.
    vouched: Mutex<HashMap<Arc<str>, usize>>,
    /// See [`per_credential`].
    per_credential: usize,
}

impl Open {
    pub(crate) fn new(max_connections: usize) -> Self {
        Open {
            conns: Mutex::default(),
            next: AtomicU64::new(0),
            vouched: Mutex::default(),
            per_credential: per_credential(max_connections),
        }
    }

    fn list(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (Standing, CancellationToken)>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.vouched.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(self: &Arc<Self>) -> (u64, Standing, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let standing = Standing(Arc::new(Seat {
            by: OnceLock::new(),
            open: Arc::downgrade(self),
        }));
        let displace = CancellationToken::new();
        self.list().insert(id, (standing.clone(), displace.clone()));
        (id, standing, displace)
    }

    fn vouch(&self, credential: &str, seat: &Seat) -> bool {
        let mut counts = self.counts();
        if let Some(n) = counts.get_mut(credential) {
            if *n >= self.per_credential {
                return false;
            }
            *n += 1;
        } else {
            counts.insert(credential.into(), 1);
        }
        let _ = seat.by.set(credential.into());
        true
    }

    /// Connection `id` has ended: off the list, and its credential (if one
    /// vouched for it) vouches for one connection fewer — whether or not it
    /// was displaced first.
    fn remove(&self, id: u64, standing: &Standing) {
        self.list().remove(&id);
        if let Some(by) = standing.0.by.get() {
            let mut counts = self.counts();
            if let Some(n) = counts.get_mut(by) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(by);
                }
            }
        }
    }

    /// Displaces the oldest connection not vouched for; whether there was
    /// one. (Only at the cap: a walk past the vouched ones.)
    pub(crate) fn displace_oldest_unvouched(&self) -> bool {
        let mut list = self.list();
        let Some(id) = list
            .iter()
            .find(|(_, (s, _))| !s.vouched())
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some((_, displace)) = list.remove(&id) {
            displace.cancel();
        }
        true
    }
}

/// Takes a connection off [`Open`] when its task ends, however it ends.
pub(crate) struct Registered(pub(crate) Arc<Open>, pub(crate) u64, pub(crate) Standing);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.remove(self.1, &self.2);
    }
}
