//! The connections a listener serves, by age, and each one's standing:
//! whether a request on it came with a known credential. At the connection
//! cap ([`crate::Limits::max_connections`]) the listener displaces the
//! oldest connection nobody vouched for ([`Open::displace_for`]),
//! so a client without a credential that holds connections only ever
//! displaces its own kind — and one credential vouches for a bounded
//! number of connections ([`per_credential`]), so neither does a holder of
//! one token. A newcomer from an address that already holds more than its
//! share ([`per_address`]) displaces that address's own oldest instead: a
//! flood from one address cannot push out, one by one, a slow newcomer
//! from another before its first request (or a dashboard's connections,
//! which never carry a credential).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
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

/// How many open connections one client address may hold, under a cap of
/// `max_connections`, before its newcomers at the cap displace its own
/// oldest connection rather than anyone's: a quarter of it, at least 2.
pub fn per_address(max_connections: usize) -> usize {
    (max_connections / 4).max(2)
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

/// Whose share a connection from `ip` counts in: the address itself for
/// IPv4 (an IPv4-mapped IPv6 address as the IPv4 one), its /64 for IPv6 —
/// one host is usually given a whole /64 and may use any address in it.
pub(crate) fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The connections being served (until a WebSocket takes one over), by
/// age, each with its standing, its client address and the token that
/// displaces it.
pub(crate) struct Open {
    conns: Mutex<Conns>,
    next: AtomicU64,
    /// Open connections vouched for, per credential.
    vouched: Mutex<HashMap<Arc<str>, usize>>,
    /// See [`per_credential`].
    per_credential: usize,
    /// See [`per_address`].
    per_address: usize,
}

#[derive(Default)]
struct Conns {
    by_age: BTreeMap<u64, Conn>,
    /// Open connections per client address (those in `by_age`).
    per_addr: HashMap<IpAddr, usize>,
}

struct Conn {
    standing: Standing,
    addr: IpAddr,
    displace: CancellationToken,
}

impl Conns {
    /// Takes connection `id` off the list (once; a second call finds nothing).
    fn take(&mut self, id: u64) -> Option<Conn> {
        let conn = self.by_age.remove(&id)?;
        if let Some(n) = self.per_addr.get_mut(&conn.addr) {
            *n -= 1;
            if *n == 0 {
                self.per_addr.remove(&conn.addr);
            }
        }
        Some(conn)
    }

    /// The oldest connection nobody vouched for (from `addr` only, if given).
    fn oldest_unvouched(&self, addr: Option<IpAddr>) -> Option<u64> {
        self.by_age
            .iter()
            .find(|(_, c)| !c.standing.vouched() && addr.is_none_or(|a| a == c.addr))
            .map(|(id, _)| *id)
    }
}

impl Open {
    pub(crate) fn new(max_connections: usize) -> Self {
        Open {
            conns: Mutex::default(),
            next: AtomicU64::new(0),
            vouched: Mutex::default(),
            per_credential: per_credential(max_connections),
            per_address: per_address(max_connections),
        }
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.vouched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection from `addr` is served: on the list.
    pub(crate) fn add(self: &Arc<Self>, addr: IpAddr) -> (u64, Standing, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let standing = Standing(Arc::new(Seat {
            by: OnceLock::new(),
            open: Arc::downgrade(self),
        }));
        let displace = CancellationToken::new();
        let mut list = self.list();
        list.by_age.insert(
            id,
            Conn {
                standing: standing.clone(),
                addr,
                displace: displace.clone(),
            },
        );
        *list.per_addr.entry(addr).or_default() += 1;
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
        self.list().take(id);
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

    /// At the cap, for a newcomer from `addr`: displaces the oldest
    /// connection nobody vouched for — `addr`'s own oldest when `addr`
    /// already holds [`per_address`] connections or more; whether there
    /// was one. (Only at the cap: a walk past the vouched ones.)
    pub(crate) fn displace_for(&self, addr: IpAddr) -> bool {
        let mut list = self.list();
        let heavy = list.per_addr.get(&addr).copied().unwrap_or(0) >= self.per_address;
        let id = heavy
            .then(|| list.oldest_unvouched(Some(addr)))
            .flatten()
            .or_else(|| list.oldest_unvouched(None));
        let Some(id) = id else {
            return false;
        };
        if let Some(conn) = list.take(id) {
            conn.displace.cancel();
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

#[cfg(test)]
mod tests {
    use super::client_of;
    use std::net::IpAddr;

    /// An IPv6 host's whole /64 counts as one client, an IPv4-mapped
    /// address as its IPv4 address.
    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_of(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client_of(ip("2001:db8:1:2::7"))
        );
        assert_ne!(
            client_of(ip("2001:db8:1:3::1")),
            client_of(ip("2001:db8:1:2::1"))
        );
    }
}
