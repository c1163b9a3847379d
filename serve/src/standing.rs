//! The connections a listener serves, by age, and each one's standing:
//! whether a request on it came with a known credential. At the connection
//! cap ([`crate::Limits::max_connections`]) the listener displaces the
//! oldest connection nobody vouched for ([`Open::displace_oldest_unvouched`]),
//! so a client without a credential that holds connections only ever
//! displaces its own kind.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// A connection's standing, in every request's extensions: the router's
/// authentication calls [`Standing::vouch`] once a request on it came with
/// a known credential. At the connection cap a new connection displaces
/// the oldest connection not vouched for; one vouched for is never
/// displaced.
#[derive(Debug, Clone, Default)]
pub struct Standing(Arc<AtomicBool>);

impl Standing {
    /// A request on this connection came with a known credential.
    pub fn vouch(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn vouched(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The connections being served (until a WebSocket takes one over), by
/// age, each with its standing and the token that displaces it.
#[derive(Default)]
pub(crate) struct Open {
    conns: Mutex<BTreeMap<u64, (Standing, CancellationToken)>>,
    next: AtomicU64,
}

impl Open {
    fn list(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (Standing, CancellationToken)>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self) -> (u64, Standing, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (standing, displace) = (Standing::default(), CancellationToken::new());
        self.list().insert(id, (standing.clone(), displace.clone()));
        (id, standing, displace)
    }

    fn remove(&self, id: u64) {
        self.list().remove(&id);
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
pub(crate) struct Registered(pub(crate) Arc<Open>, pub(crate) u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}
