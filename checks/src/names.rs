//! Name lookups of checks and probes: hickory's asynchronous resolver on
//! the system's configuration (`/etc/resolv.conf`, `/etc/hosts`).
//!
//! A lookup is a future, not a call on tokio's blocking pool
//! (`tokio::net::lookup_host`, `getaddrinfo`): it ends with its check. In
//! a DNS outage (the lost site held the first nameserver) a blocking
//! lookup kept its thread for the resolver's whole timeout (about 10 s)
//! whatever the check's; probe rounds queued new ones behind it, and the
//! same pool carries the orchestrator's store writes and the agent's
//! volume looks: decisions waited for their writes. Here a check that
//! times out drops its lookup, which sends nothing more; the same question
//! asked by several checks at once is asked once (hickory's request
//! sharing), and an answer is kept for its TTL.
//!
//! As glibc's `getaddrinfo` (`hosts: files dns`): a name in `/etc/hosts`
//! is answered from it alone, with every address it has there — no DNS
//! question for the other family, no search domain (a name pinned there
//! is reachable through a DNS outage, and never mixed with what DNS says
//! of it); others are asked of the nameservers of `/etc/resolv.conf`,
//! with its `search` list (not the host's own domain before it), both
//! families (the check races them, see [`crate::reach`]). An address with
//! a zone (`fe80::1%eth0`) is read by the system (no DNS either).
//!
//! The configuration is read again when `/etc/resolv.conf` or `/etc/hosts`
//! change (looked at most once a second), as `getaddrinfo` would see an
//! edit. Without a usable `/etc/resolv.conf` (no file, no `nameserver`),
//! lookups ask 127.0.0.1:53, as glibc does.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

const RESOLV_CONF: &str = "/etc/resolv.conf";
const HOSTS: &str = "/etc/hosts";
/// How often the configuration files are looked at for a change.
const RELOOK: Duration = Duration::from_secs(1);
/// Longest a name's absence is believed (a record added is seen within it).
const NEGATIVE_MAX_TTL: Duration = Duration::from_secs(5);

/// The resolver of a [`crate::ProbeClient`], and of any reqwest client
/// given it (`dns_resolver`): cheap to clone, shared.
#[derive(Clone)]
pub struct SystemNames {
    inner: Arc<Mutex<Built>>,
    /// Fixed for tests: never read from the system again.
    fixed: bool,
}

struct Built {
    /// The resolver, or why none could be built (each lookup says it).
    resolver: Result<TokioResolver, String>,
    /// The names of the hosts file (lower case, no final dot) and their
    /// addresses, in the file's order.
    hosts: Arc<HashMap<String, Vec<IpAddr>>>,
    /// What the configuration files looked like when it was built.
    stamp: Stamp,
    looked: Instant,
}

/// A file's modification time and length, `None` when it cannot be read.
type FileStamp = Option<(SystemTime, u64)>;

#[derive(PartialEq, Eq, Clone, Copy)]
struct Stamp {
    resolv: FileStamp,
    hosts: FileStamp,
}

fn stamp() -> Stamp {
    let of = |p: &str| {
        std::fs::metadata(Path::new(p))
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    Stamp {
        resolv: of(RESOLV_CONF),
        hosts: of(HOSTS),
    }
}

/// The options every lookup takes, over those of the configuration.
fn tuned(mut opts: ResolverOpts) -> ResolverOpts {
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // Answered before the resolver is asked (`Built::hosts`).
    opts.use_hosts_file = ResolveHosts::Never;
    opts.negative_max_ttl = Some(NEGATIVE_MAX_TTL);
    opts
}

fn build(config: ResolverConfig, opts: ResolverOpts) -> Result<TokioResolver, String> {
    let mut b =
        hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    *b.options_mut() = tuned(opts);
    b.build()
        .map_err(|e| format!("cannot set up the name resolver: {e}"))
}

/// The system's resolver: `/etc/resolv.conf` as hickory reads it, or
/// 127.0.0.1:53 when it gives no nameserver (glibc's default).
fn from_system() -> Result<TokioResolver, String> {
    match hickory_resolver::system_conf::read_system_conf() {
        // As glibc: the `search` list alone (a `domain` line is in it when
        // it is the last of the two), not the host's own domain before it
        // (hickory's); with neither line, the host's domain (glibc's
        // fallback: `db` on `agent1.corp.example` is `db.corp.example`).
        Ok((config, opts)) => {
            let search = if config.search().is_empty() {
                config.domain().cloned().into_iter().collect()
            } else {
                config.search().to_vec()
            };
            build(
                ResolverConfig::from_parts(None, search, config.name_servers().to_vec()),
                opts,
            )
        }
        Err(_) => build(
            ResolverConfig::from_parts(
                None,
                vec![],
                vec![NameServerConfig::udp_and_tcp(IpAddr::from([127, 0, 0, 1]))],
            ),
            ResolverOpts::default(),
        ),
    }
}

impl Default for SystemNames {
    fn default() -> Self {
        Self::new()
    }
}

/// The hosts file's names and addresses (`IP NAME ALIAS…`, `#` comments),
/// read as bytes as glibc does: a line or a name that is not UTF-8 (a
/// comment saved in Latin-1) is skipped alone, never the whole file. A
/// file that exists but cannot be read is said at warn (every name it
/// pins would otherwise go to DNS with nothing said).
fn read_hosts(path: &Path) -> HashMap<String, Vec<IpAddr>> {
    let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return names,
        Err(e) => {
            tracing::warn!(path = %path.display(), cause = %e, "cannot read the hosts file: its names are looked up in DNS");
            return names;
        }
    };
    for line in bytes.split(|b| *b == b'\n') {
        let line = line.split(|b| *b == b'#').next().unwrap_or_default();
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .map(std::str::from_utf8);
        let Some(ip) = fields
            .next()
            .and_then(|a| a.ok())
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            continue;
        };
        for name in fields.flatten() {
            let addrs = names.entry(canonical(name)).or_default();
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
    }
    names
}

/// A name as the hosts file is searched for it: lower case, no final dot.
fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl SystemNames {
    /// The system's configuration, read now and again on a change.
    pub fn new() -> Self {
        // The stamp before the files are read: a change in between is
        // seen at the next look.
        let stamp = stamp();
        SystemNames {
            inner: Arc::new(Mutex::new(Built {
                resolver: from_system(),
                hosts: Arc::new(read_hosts(Path::new(HOSTS))),
                stamp,
                looked: Instant::now(),
            })),
            fixed: false,
        }
    }

    /// A resolver asking `config`'s nameservers with `opts`, and the
    /// hosts file `hosts`, never the system's (tests).
    #[cfg(test)]
    pub(crate) fn with_config(config: ResolverConfig, opts: ResolverOpts, hosts: &Path) -> Self {
        SystemNames {
            inner: Arc::new(Mutex::new(Built {
                resolver: build(config, opts),
                hosts: Arc::new(read_hosts(hosts)),
                stamp: stamp(),
                looked: Instant::now(),
            })),
            fixed: true,
        }
    }

    /// The resolver to ask now: rebuilt first if the configuration
    /// files changed since it was built.
    #[allow(clippy::type_complexity)]
    fn resolver(
        &self,
    ) -> (
        Result<TokioResolver, String>,
        Arc<HashMap<String, Vec<IpAddr>>>,
    ) {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !self.fixed && b.looked.elapsed() >= RELOOK {
            b.looked = Instant::now();
            let now = stamp();
            if now != b.stamp {
                b.stamp = now;
                b.resolver = from_system();
                b.hosts = Arc::new(read_hosts(Path::new(HOSTS)));
            }
        }
        (b.resolver.clone(), Arc::clone(&b.hosts))
    }

    /// The addresses of `address`, a `host:port` (`[v6]:port` too): as
    /// [`SystemNames::addresses`]; an error when it has no port.
    pub async fn lookup(&self, address: &str) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = host_port(address).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{address:?} is not HOST:PORT"),
            )
        })?;
        self.addresses(host, port).await
    }

    /// The addresses of `host` at `port`; an IP address is its own.
    pub async fn addresses(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if bare.contains('%') {
            // An address with a zone (`fe80::1%eth0`): the system reads it
            // at once (numeric, no DNS); a name holds no `%`.
            return Ok(tokio::net::lookup_host((bare, port)).await?.collect());
        }
        let (resolver, hosts) = self.resolver();
        if let Some(ips) = hosts.get(&canonical(bare)) {
            return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        let resolver = resolver.map_err(io::Error::other)?;
        match resolver.lookup_ip(bare).await {
            Ok(found) => Ok(found.iter().map(|ip| SocketAddr::new(ip, port)).collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{bare}: no such name, or it has no address"),
            )),
            Err(e) => Err(io::Error::other(format!("{bare}: lookup failed: {e}"))),
        }
    }
}

impl reqwest::dns::Resolve for SystemNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (names, host) = (self.clone(), name.as_str().to_string());
        Box::pin(async move {
            // reqwest puts the URL's port on each address
            let addrs = names.addresses(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `host:port` split (`[v6]:port` too); `None` when there is no port.
pub(crate) fn host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        // an IPv6 address without brackets: its last group is no port
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hickory_resolver::config::ConnectionConfig;
    use hickory_resolver::proto::op::{Message, OpCode};
    use hickory_resolver::proto::rr::{rdata, Name, RData, Record};

    use super::*;
    use crate::{probe_client, run_check, ProbeClient};

    /// A resolver asking only the nameserver at `server` (UDP), each
    /// question at most `attempts` times, `timeout` apart; no hosts file.
    fn asking(server: SocketAddr, timeout: Duration, attempts: usize) -> SystemNames {
        asking_with_hosts(server, timeout, attempts, Path::new("/nonexistent/hosts"))
    }

    fn asking_with_hosts(
        server: SocketAddr,
        timeout: Duration,
        attempts: usize,
        hosts: &Path,
    ) -> SystemNames {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let ns = NameServerConfig::new(server.ip(), true, vec![udp]);
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = attempts;
        SystemNames::with_config(
            ResolverConfig::from_parts(None, vec![], vec![ns]),
            opts,
            hosts,
        )
    }

    /// What a test nameserver answers.
    #[derive(Clone, Copy)]
    enum Says {
        /// Nothing at all (a DNS outage).
        Silence,
        /// This address to every `A` question, no record to the others.
        A(std::net::Ipv4Addr),
        /// No record to any question.
        Nothing,
    }

    /// A nameserver on 127.0.0.1 answering as `says`; it counts the
    /// questions it got.
    async fn nameserver(says: Says) -> (SocketAddr, Arc<AtomicUsize>) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                if matches!(says, Says::Silence) {
                    continue;
                }
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut m = Message::response(q.metadata.id, OpCode::Query);
                m.metadata.recursion_desired = q.metadata.recursion_desired;
                m.metadata.recursion_available = true;
                m.add_queries(q.queries.clone());
                if let (Some(asked), Says::A(ip)) = (q.queries.first(), says) {
                    if asked.query_type() == hickory_resolver::proto::rr::RecordType::A {
                        let name: Name = asked.name().clone();
                        m.add_answer(Record::from_rdata(name, 60, RData::A(rdata::A(ip))));
                    }
                }
                let _ = sock.send_to(&m.to_vec().unwrap(), from).await;
            }
        });
        (addr, asked)
    }

    fn client(names: SystemNames) -> ProbeClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        ProbeClient::with_names(|| reqwest::Client::builder().no_proxy(), names)
    }

    fn tcp_spec(address: &str, timeout: &str) -> warden_config::CheckSpec {
        toml::from_str(&format!(
            "name = \"db\"\nkind = \"tcp\"\ntimeout = \"{timeout}\"\naddress = \"{address}\""
        ))
        .unwrap()
    }

    /// A name looked up through the nameserver: the `tcp` check reaches
    /// the address it answers, and the `http` check too.
    #[tokio::test]
    async fn a_name_is_looked_up_through_the_nameserver() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = live.local_addr().unwrap().port();
        let (ns, asked) = nameserver(Says::A([127, 0, 0, 1].into())).await;
        let c = client(asking(ns, Duration::from_secs(2), 2));
        let r = run_check(&tcp_spec(&format!("db.warden.test:{port}"), "3s"), &c).await;
        assert!(r.ok, "{r:?}");
        assert!(
            asked.load(Ordering::SeqCst) >= 1,
            "the nameserver was not asked"
        );
        let web = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let wport = l.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(l, web).await });
        let h: warden_config::CheckSpec = toml::from_str(&format!(
            "name = \"web\"\nkind = \"http\"\ntimeout = \"3s\"\nurl = \"http://web.warden.test:{wport}/\""
        ))
        .unwrap();
        let r = run_check(&h, &c).await;
        assert!(r.ok, "{r:?}");
    }

    /// A name the nameserver has no address for: the check says so.
    #[tokio::test]
    async fn a_name_without_an_address_says_so() {
        let (ns, _) = nameserver(Says::Nothing).await;
        let c = client(asking(ns, Duration::from_secs(2), 2));
        let r = run_check(&tcp_spec("gone.warden.test:80", "3s"), &c).await;
        assert!(!r.ok, "{r:?}");
        assert!(r.detail.contains("gone.warden.test: no such name"), "{r:?}");
    }

    /// A nameserver that never answers (a DNS outage: the lost site held
    /// it): the check ends at its own timeout, and its lookup with it —
    /// nothing more is asked once it ended, although the resolver would
    /// have asked twice more. Before, the lookup ran on tokio's blocking
    /// pool (`getaddrinfo`), which cannot be stopped: it kept a thread for
    /// the resolver's whole timeout after the check had given up, and
    /// probe rounds piled new ones behind it.
    #[tokio::test]
    async fn a_lookup_ends_with_its_check() {
        let (ns, asked) = nameserver(Says::Silence).await;
        let c = client(asking(ns, Duration::from_millis(700), 3));
        let started = std::time::Instant::now();
        let r = run_check(&tcp_spec("db.warden.test:80", "300ms"), &c).await;
        assert!(!r.ok && r.detail.contains("timed out"), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let then = asked.load(Ordering::SeqCst);
        assert!(then >= 1, "the nameserver was not asked");
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(
            asked.load(Ordering::SeqCst),
            then,
            "the lookup went on asking after its check had ended"
        );
    }

    /// Many checks of names at once against a silent nameserver take no
    /// blocking thread: on a runtime of a single blocking thread, blocking
    /// work (a store write) is done at once while they wait.
    #[test]
    fn lookups_take_no_blocking_thread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let (ns, _) = nameserver(Says::Silence).await;
            let c = client(asking(ns, Duration::from_secs(5), 2));
            let mut checks = tokio::task::JoinSet::new();
            for i in 0..50 {
                let c = c.clone();
                checks.spawn(async move {
                    run_check(&tcp_spec(&format!("n{i}.warden.test:80"), "2s"), &c).await
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let write = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::task::spawn_blocking(|| 42),
            )
            .await;
            assert!(
                matches!(write, Ok(Ok(42))),
                "blocking work waited: {write:?}"
            );
            while let Some(r) = checks.join_next().await {
                let r = r.unwrap();
                assert!(!r.ok && r.detail.contains("timed out"), "{r:?}");
            }
        });
    }

    /// A name in the hosts file is answered from it alone, with every
    /// address it has there (its alias too, whatever the case or a final
    /// dot), while the nameserver is silent: nothing is asked of it. As
    /// glibc does; before (hickory's own hosts handling) the family the
    /// file lacks was asked of DNS and waited for: a name pinned there
    /// failed its checks through a DNS outage.
    #[tokio::test]
    async fn a_name_in_the_hosts_file_is_answered_from_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &hosts,
            "# pinned\n127.0.0.1 db.warden.test dbalias  # the database\n\n127.0.0.2 db.warden.test\nnot-an-ip other\n",
        )
        .unwrap();
        let (ns, asked) = nameserver(Says::Silence).await;
        let names = asking_with_hosts(ns, Duration::from_secs(2), 2, &hosts);
        let started = std::time::Instant::now();
        let a = names.addresses("DB.warden.test.", 5432).await.unwrap();
        assert_eq!(
            a,
            vec![
                "127.0.0.1:5432".parse().unwrap(),
                "127.0.0.2:5432".parse().unwrap()
            ]
        );
        let a = names.addresses("dbalias", 80).await.unwrap();
        assert_eq!(a, vec!["127.0.0.1:80".parse().unwrap()]);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(asked.load(Ordering::SeqCst), 0, "the nameserver was asked");
        // A check through it while DNS is silent.
        let live = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = live.local_addr().unwrap().port();
        let r = run_check(
            &tcp_spec(&format!("db.warden.test:{port}"), "1s"),
            &client(names),
        )
        .await;
        assert!(r.ok, "{r:?}");
    }

    /// A byte that is not UTF-8 in the hosts file (a comment saved in
    /// Latin-1, a name in another encoding) skips its field, not the
    /// file: the names pinned there are still answered from it alone.
    /// (Before, the whole file was dropped and every name went to DNS.)
    #[tokio::test]
    async fn a_hosts_file_with_bytes_that_are_not_utf8_still_answers() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &hosts,
            b"# Serveur base de donn\xe9es\r\n127.0.0.1\tdb.warden.test caf\xe9\r\n127.0.0.3 \xff\n",
        )
        .unwrap();
        let (ns, asked) = nameserver(Says::Silence).await;
        let names = asking_with_hosts(ns, Duration::from_secs(2), 2, &hosts);
        let a = tokio::time::timeout(
            Duration::from_millis(500),
            names.addresses("db.warden.test", 80),
        )
        .await
        .expect("answered from the hosts file, not DNS")
        .unwrap();
        assert_eq!(a, vec!["127.0.0.1:80".parse().unwrap()]);
        assert_eq!(asked.load(Ordering::SeqCst), 0, "the nameserver was asked");
    }

    /// An address with a zone is its own, read without DNS.
    #[tokio::test]
    async fn an_address_with_a_zone_is_read_without_dns() {
        let (ns, asked) = nameserver(Says::Silence).await;
        let names = asking(ns, Duration::from_secs(2), 2);
        let a = tokio::time::timeout(Duration::from_secs(1), names.addresses("[fe80::1%1]", 5432))
            .await
            .expect("at once")
            .unwrap();
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].ip(), "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(a[0].port(), 5432);
        assert_eq!(asked.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn host_and_port_are_split() {
        assert_eq!(host_port("db.example:5432"), Some(("db.example", 5432)));
        assert_eq!(host_port("10.0.0.1:80"), Some(("10.0.0.1", 80)));
        assert_eq!(host_port("[2001:db8::1]:443"), Some(("[2001:db8::1]", 443)));
        assert_eq!(host_port("2001:db8::1"), None);
        assert_eq!(host_port("db.example"), None);
        assert_eq!(host_port("db.example:http"), None);
    }

    /// The system's configuration: `localhost` has an address (hosts
    /// file, or RFC 6761), an IP address is its own without a lookup.
    #[tokio::test]
    async fn the_systems_names() {
        let c = probe_client().unwrap();
        let a = c.addresses("localhost", 80).await.unwrap();
        assert!(a.iter().any(|a| a.ip().is_loopback()), "{a:?}");
        let a = c.addresses("[::1]", 80).await.unwrap();
        assert_eq!(a, vec!["[::1]:80".parse().unwrap()]);
    }
}
