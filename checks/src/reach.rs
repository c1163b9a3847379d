//! How a check reaches a name: every address of it at once, the first
//! that answers is the one used.
//!
//! One after another (as a plain connect, and hyper's connector within one
//! address family, go), a first address whose packets vanish — an IPv6
//! route that is broken, one dead host of a name's several — takes the
//! check's whole timeout, and a service answering at the next address is
//! judged down: from every vantage point alike, a false failover.
//!
//! [`connect_any`] is the race (the `tcp` check's connect). [`ProbeClient`]
//! is the HTTP side (`http`, `keystone`, `swift`): one reqwest client per
//! port, whose DNS resolver knows that port, so when the client needs a new
//! connection to a name it resolves the name, races a connect to each of
//! its addresses ([`raced`]: at most [`MAX_RACED`]) and hands hyper the
//! winner alone. TLS (SNI, certificate verification) and `Host` stay on
//! the name, as reqwest does them; redirects and proxies as the client's
//! builder says. A name with one address costs one lookup and one
//! connect; one with several a connect per address more (at most
//! [`MAX_RACED`]). An IP address in the URL is connected to as it is
//! (hyper never asks the resolver).
//!
//! No connection is kept between checks: each check opens its own, as a
//! new user would (and as HAProxy's health checks do). A kept-alive
//! connection answered for a service whose new connections fail — a
//! firewall that lets established flows through, a listener that no
//! longer accepts, a full accept queue — so the site looked healthy to
//! every vantage point while no new user got in; and a check sent just as
//! the server closed the idle connection failed a healthy service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::names::SystemNames;

/// Most addresses of a name raced at once ([`raced`]). A name of
/// thousands (a DNS answer of a liar's or a mistake's) would otherwise
/// take a socket each, held until the check's timeout where packets
/// vanish: every file descriptor of the orchestrator that probes it.
pub(crate) const MAX_RACED: usize = 16;

/// The addresses of `addrs` raced: the families taken in turn (as RFC
/// 8305 interleaves them), the first family of the list first, each in
/// the resolver's order, [`MAX_RACED`] at most. Taken in the list's order
/// alone, a name of more IPv6 addresses than that (listed first) behind
/// a broken IPv6 route would race none of its IPv4 ones: judged down.
pub(crate) fn raced(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let first_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for addr in addrs {
        if addr.is_ipv6() == first_v6 {
            a.push(*addr);
        } else {
            b.push(*addr);
        }
    }
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    let mut out = Vec::new();
    while out.len() < MAX_RACED {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out.truncate(MAX_RACED);
    out
}

/// Connect to every one of `addrs` (those [`raced`]) at once; the first
/// that answers, else the first failure (no address: "the name has no
/// address").
pub(crate) async fn connect_any(addrs: &[SocketAddr]) -> std::io::Result<SocketAddr> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut tries: FuturesUnordered<_> = raced(addrs)
        .into_iter()
        .map(|a| async move { tokio::net::TcpStream::connect(a).await.map(|_| a) })
        .collect();
    let mut first_error = None;
    while let Some(r) = tries.next().await {
        match r {
            Ok(a) => return Ok(a),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(no_address))
}

fn no_address() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
}

/// Where a name's addresses come from.
#[derive(Clone)]
enum Lookup {
    /// The system's configuration (hosts file, DNS) through an
    /// asynchronous resolver ([`SystemNames`]).
    System(SystemNames),
    /// A fixed table, for tests: a name with the addresses a test needs.
    #[cfg(test)]
    Table(Arc<HashMap<String, Vec<std::net::IpAddr>>>),
}

impl Lookup {
    async fn addresses(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Lookup::System(names) => names.addresses(host, port).await,
            #[cfg(test)]
            Lookup::Table(t) => Ok(t
                .get(host)
                .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
                .unwrap_or_default()),
        }
    }
}

/// The resolver of one port's client: the winner of the race among the
/// name's addresses at that port.
struct Racing {
    port: u16,
    lookup: Lookup,
}

impl reqwest::dns::Resolve for Racing {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (port, lookup, host) = (self.port, self.lookup.clone(), name.as_str().to_string());
        Box::pin(async move {
            let addrs = lookup.addresses(&host, port).await?;
            let winner = match addrs.as_slice() {
                [one] => *one,
                _ => connect_any(&addrs).await?,
            };
            Ok(Box::new(std::iter::once(winner)) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP clients of checks and probes, one per port (see the module's
/// doc); cheap to clone, the clients shared.
#[derive(Clone)]
pub struct ProbeClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The clients' properties (proxy, redirects, TLS), without a resolver.
    builder: fn() -> reqwest::ClientBuilder,
    lookup: Lookup,
    /// The client of each port met so far, the first [`MAX_PORTS`] (see
    /// there).
    by_port: Mutex<HashMap<u16, reqwest::Client>>,
}

/// Most ports whose client is kept: more than a config names (an
/// orchestrator probes every group's endpoints with one), a few MiB at
/// most. A URL's port is mostly one of those configured, but a `swift`
/// check's storage URL is whatever Keystone's catalog says at each login:
/// one that names another port every time (a liar's) would keep a client
/// each (about 100 KiB) for the life of the process. A port met when that
/// many are kept gets a client for its use alone.
pub(crate) const MAX_PORTS: usize = 256;

impl ProbeClient {
    /// Clients built by `builder`, with the racing resolver added; one is
    /// built now, so a builder that cannot build fails here, at start.
    pub(crate) fn new(builder: fn() -> reqwest::ClientBuilder) -> Result<Self, reqwest::Error> {
        Self::with_lookup(builder, Lookup::System(SystemNames::new()))
    }

    /// Clients whose names resolve through `names` alone.
    #[cfg(test)]
    pub(crate) fn with_names(builder: fn() -> reqwest::ClientBuilder, names: SystemNames) -> Self {
        Self::with_lookup(builder, Lookup::System(names)).unwrap()
    }

    fn with_lookup(
        builder: fn() -> reqwest::ClientBuilder,
        lookup: Lookup,
    ) -> Result<Self, reqwest::Error> {
        let p = ProbeClient {
            inner: Arc::new(Inner {
                builder,
                lookup,
                by_port: Mutex::new(HashMap::new()),
            }),
        };
        p.for_port(443)?;
        Ok(p)
    }

    /// Clients whose names resolve through `table` (name → addresses, in
    /// the order a resolver would give them).
    #[cfg(test)]
    pub(crate) fn with_table(
        builder: fn() -> reqwest::ClientBuilder,
        table: &[(&str, &[std::net::IpAddr])],
    ) -> Self {
        let t = table
            .iter()
            .map(|(n, ips)| (n.to_string(), ips.to_vec()))
            .collect();
        Self::with_lookup(builder, Lookup::Table(Arc::new(t))).unwrap()
    }

    /// The addresses of `host` at `port`, as this client's connections
    /// look them up.
    pub(crate) async fn addresses(
        &self,
        host: &str,
        port: u16,
    ) -> std::io::Result<Vec<SocketAddr>> {
        self.inner.lookup.addresses(host, port).await
    }

    /// The client for `url` (its port's); an error is the check's detail.
    pub(crate) fn for_url(&self, url: &str) -> Result<reqwest::Client, String> {
        // a URL reqwest cannot use: any client says why when it is sent
        let port = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.port_or_known_default())
            .unwrap_or(0);
        self.for_port(port)
            .map_err(|e| format!("cannot build an HTTP client: {e}"))
    }

    fn for_port(&self, port: u16) -> Result<reqwest::Client, reqwest::Error> {
        let mut by_port = self.inner.by_port.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = by_port.get(&port) {
            return Ok(c.clone());
        }
        let c = (self.inner.builder)()
            // a new connection per check (see the module's doc)
            .pool_max_idle_per_host(0)
            .dns_resolver(Racing {
                port,
                lookup: self.inner.lookup.clone(),
            })
            .build()?;
        if by_port.len() < MAX_PORTS {
            by_port.insert(port, c.clone());
        }
        Ok(c)
    }

    /// The ports whose clients are kept.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> Vec<u16> {
        let by_port = self.inner.by_port.lock().unwrap_or_else(|p| p.into_inner());
        by_port.keys().copied().collect()
    }
}

/// A listener on `ip` whose accept queue is full and that never accepts:
/// Linux drops the SYNs of new connects to it, which then hang (as to a
/// host whose packets vanish). Keep the returned streams while it is used.
#[cfg(test)]
pub(crate) async fn black_hole(ip: &str) -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
    use std::time::Duration;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let hole = sock.listen(0).unwrap();
    let dead = hole.local_addr().unwrap();
    let mut fill = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(dead),
        )
        .await
        {
            Ok(Ok(s)) => fill.push(s),
            _ => break,
        }
        assert!(fill.len() < 8, "the accept queue of {dead} never filled");
    }
    (hole, fill)
}
