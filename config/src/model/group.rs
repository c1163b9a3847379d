//! `[groups.NAME]` and its routing schemes: the group (sites, scheme,
//! fencing, timeouts), `[groups.NAME.frontend]` and `[groups.NAME.dns]`.

use super::*;

/// `[groups.NAME]`: one protected service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Ordered site names; the first is the primary.
    pub sites: Spanned<Vec<Spanned<String>>>,
    pub scheme: Spanned<Scheme>,
    /// `false`: a confirmed disaster waits for `warden approve`.
    #[serde(default = "default_true")]
    pub automatic: bool,
    #[serde(default)]
    pub failback: FailbackMode,
    #[serde(default)]
    pub fencing: Fencing,
    /// Optional fence command run at the fence step (argv).
    #[serde(default)]
    pub fence_command: Option<Vec<String>>,
    /// Time allowed for one runbook step.
    #[serde(
        default = "default_step_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub step_timeout: Duration,
    /// Settings of the `frontend` scheme (and the frontend layer of `hybrid`).
    #[serde(default)]
    pub frontend: Option<Spanned<FrontendScheme>>,
    /// Settings of the `dns` scheme (and the DNS layer of `hybrid`).
    #[serde(default)]
    pub dns: Option<Spanned<DnsScheme>>,
    /// The group's replication plan (DESIGN §6); none: no data is moved.
    #[serde(default)]
    pub replication: Option<Spanned<ReplicationConfig>>,
}

impl GroupConfig {
    /// Site names in order (primary first).
    pub fn site_names(&self) -> Vec<String> {
        self.sites
            .get_ref()
            .iter()
            .map(|s| s.get_ref().clone())
            .collect()
    }
    /// The primary site (first in the list).
    pub fn primary(&self) -> &str {
        self.sites.get_ref()[0].get_ref()
    }
    /// How traffic moves for this group.
    pub fn scheme(&self) -> Scheme {
        *self.scheme.get_ref()
    }
    /// `[groups.NAME.frontend]`, if present.
    pub fn frontend_scheme(&self) -> Option<&FrontendScheme> {
        self.frontend.as_ref().map(|f| f.get_ref())
    }
    /// `[groups.NAME.dns]`, if present.
    pub fn dns_scheme(&self) -> Option<&DnsScheme> {
        self.dns.as_ref().map(|d| d.get_ref())
    }
    /// `[groups.NAME.replication]`, if present.
    pub fn replication(&self) -> Option<&ReplicationConfig> {
        self.replication.as_ref().map(|r| r.get_ref())
    }
}

fn default_step_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Which frontend implementation a `frontend` group drives, and what runs on
/// a `[frontends.NAME]` machine (`kind`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FrontendDriverKind {
    /// `warden frontend`, driven through its control API.
    #[default]
    Builtin,
    /// HAProxy, driven through its runtime API.
    Haproxy,
}

impl FrontendDriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FrontendDriverKind::Builtin => "builtin",
            FrontendDriverKind::Haproxy => "haproxy",
        }
    }
}

/// `[groups.NAME.frontend]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendScheme {
    pub driver: Spanned<FrontendDriverKind>,
    /// Names of `[frontends.*]` entries that serve this group.
    #[serde(default)]
    pub frontends: Vec<Spanned<String>>,
    /// `builtin`: address each frontend listens on for this group's users.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// `builtin`: backend address per site name (required, one per site).
    #[serde(default)]
    pub backends: BTreeMap<Spanned<String>, Spanned<String>>,
    /// `haproxy`: the HAProxy backend that holds one server per site (required).
    #[serde(default)]
    pub backend: Option<Spanned<String>>,
    /// `haproxy`: the HAProxy server name per site; a site not listed uses its own name.
    #[serde(default)]
    pub servers: BTreeMap<Spanned<String>, Spanned<String>>,
    /// How long connections to the old backend may drain on failback.
    #[serde(default = "default_drain", deserialize_with = "duration::deserialize")]
    pub drain_timeout: Duration,
    /// `builtin`: how long a new connection whose backend refuses or times
    /// out may be held while the orchestrator has announced a switch of the
    /// group (suspected site, runbook under way); `0s` turns holding off.
    #[serde(
        default = "default_hold_connections",
        deserialize_with = "duration::deserialize"
    )]
    pub hold_connections: Duration,
    /// `builtin`: how long a new connection whose backend refuses or times
    /// out keeps trying when no hold order stands (a hold order or a switch
    /// arriving meanwhile takes it over; then it fails). `0s` (default):
    /// fail at once. Set it to about the detection interval so the users
    /// who arrive between a failure and the orchestrator's first hold order
    /// wait too.
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub connect_retry: Duration,
}

impl FrontendScheme {
    /// Which frontend implementation the group drives.
    pub fn driver(&self) -> FrontendDriverKind {
        *self.driver.get_ref()
    }
    /// Names of the `[frontends.*]` entries serving the group, in order.
    pub fn frontend_names(&self) -> Vec<String> {
        self.frontends.iter().map(|f| f.get_ref().clone()).collect()
    }
    /// Whether frontend `name` serves the group.
    pub fn is_served_by(&self, name: &str) -> bool {
        self.frontends.iter().any(|f| f.get_ref() == name)
    }
    /// `builtin`: backend address per site.
    pub fn backend_addrs(&self) -> BTreeMap<String, String> {
        self.backends
            .iter()
            .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
            .collect()
    }
    /// `haproxy`: the HAProxy backend name, if set.
    pub fn haproxy_backend(&self) -> Option<&str> {
        self.backend.as_ref().map(|b| b.get_ref().as_str())
    }
    /// `haproxy`: the HAProxy server that stands for `site` (`servers`, else the site name).
    pub fn server_of<'a>(&'a self, site: &'a str) -> &'a str {
        self.servers
            .iter()
            .find(|(k, _)| k.get_ref() == site)
            .map(|(_, v)| v.get_ref().as_str())
            .unwrap_or(site)
    }
}

/// Is `s` usable as an HAProxy proxy or server name (and so safe to put in a
/// runtime API command)? HAProxy allows ASCII letters, digits, `-`, `_`, `.` and `:`.
pub fn valid_haproxy_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn default_drain() -> Duration {
    Duration::from_secs(5)
}

/// The longest `hold_connections`: a user's connection is never held longer.
pub const MAX_HOLD_CONNECTIONS: Duration = Duration::from_secs(30);

/// The longest `connect_retry`.
pub const MAX_CONNECT_RETRY: Duration = Duration::from_secs(5);

fn default_hold_connections() -> Duration {
    Duration::from_secs(2)
}

/// DNS provider kinds (implemented in the DNS issue).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DnsProviderKind {
    Noip,
    Dyndns2,
    Rfc2136,
}

/// `[groups.NAME.dns]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsScheme {
    pub provider: DnsProviderKind,
    /// The record users resolve.
    pub name: String,
    /// Record TTL.
    #[serde(default = "default_ttl", deserialize_with = "duration::deserialize")]
    pub ttl: Duration,
    /// Address per site (dns) or per frontend (hybrid).
    pub addresses: BTreeMap<String, String>,
    /// Update server (dyndns2 URL or RFC 2136 primary host:port).
    #[serde(default)]
    pub server: Option<String>,
    /// Zone (rfc2136).
    #[serde(default)]
    pub zone: Option<String>,
    /// Credentials: No-IP / dyndns2 `user:password`, or the TSIG key (a BIND
    /// key file, `algorithm:name:secret`, or a bare base64 secret with `key_name`).
    #[serde(default)]
    pub credentials: Option<SecretRef>,
    /// More hostnames moved together with `name` (same addresses, same update).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The port users connect to at the address `name` resolves to (`dns`
    /// scheme). With it, the verify step connects there once the
    /// authoritative servers answer the new site's address — and, when the
    /// site declares an identity, checks that the answer is that site's.
    /// Without it, verify stops at the authoritative answer.
    #[serde(default)]
    pub entry_port: Option<u16>,
    /// Authoritative servers asked directly to verify the record (`IP` or
    /// `IP:PORT`). Default for rfc2136: `server`. For noip/dyndns2 without
    /// nameservers, verification falls back to the provider's own answer.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// User-Agent sent to noip/dyndns2 servers:
    /// `Company NameOfProgram/Version contact@example`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// TSIG key name, when `credentials` holds only the base64 secret.
    #[serde(default)]
    pub key_name: Option<String>,
    /// TSIG algorithm, when `credentials` holds only the base64 secret:
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Time allowed for one update or query (retries continue within the step timeout).
    #[serde(
        default = "default_dns_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
}

fn default_ttl() -> Duration {
    Duration::from_secs(60)
}

fn default_dns_timeout() -> Duration {
    Duration::from_secs(3)
}

/// The TSIG algorithms an rfc2136 provider can sign with.
pub const TSIG_ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// Parse one `addresses` value: one or two IPs separated by commas, at most
/// one IPv4 (A record) and one IPv6 (AAAA record).
pub fn parse_record_addresses(
    s: &str,
) -> Result<(Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>), String> {
    let mut v4 = None;
    let mut v6 = None;
    for part in s.split(',').map(str::trim) {
        match part.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) if v4.is_none() => v4 = Some(a),
            Ok(std::net::IpAddr::V6(a)) if v6.is_none() => v6 = Some(a),
            Ok(_) => return Err("at most one IPv4 and one IPv6 address".into()),
            Err(_) => return Err(format!("{part:?} is not an IP address")),
        }
    }
    if v4.is_none() && v6.is_none() {
        return Err("no address".into());
    }
    Ok((v4, v6))
}

/// Why no DNS server can be asked at `ip`: a wildcard (`0.0.0.0`, `::`,
/// `::ffff:0.0.0.0`) is every address of a host; a question sent there
/// reaches the asker's own host, whose answer comes from another address
/// (`127.0.0.1`), and the resolver ignores it ("does not match
/// name_server: 0.0.0.0:53"): every query and update failed.
pub fn dns_server_wildcard(ip: std::net::IpAddr) -> Option<String> {
    let wildcard = match ip {
        std::net::IpAddr::V4(v4) => v4.is_unspecified(),
        std::net::IpAddr::V6(v6) => {
            v6.is_unspecified() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified())
        }
    };
    wildcard.then(|| {
        format!(
            "{ip} is every address of a host, where no DNS server can be asked: the answer comes \
             from another address and is ignored, so every query and update fails; give the \
             server's address"
        )
    })
}

/// Check the form of a DNS server: `IP`, `IP:PORT`, `[IPv6]:PORT`, `HOST`
/// or `HOST:PORT` (port 53 when absent), not a wildcard IP
/// ([`dns_server_wildcard`]). Does not resolve anything.
pub fn dns_server_syntax(s: &str) -> Result<(), String> {
    let s = s.trim();
    let ip = s
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| s.parse::<std::net::IpAddr>());
    if let Some(why) = ip.ok().and_then(dns_server_wildcard) {
        return Err(why);
    }
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        // Port 0 parses, but no query or update can be sent there.
        return if a.port() == 0 {
            Err(format!("{s:?} has port 0, where no DNS server answers; give its port (53 unless it listens elsewhere), or leave the port out for 53"))
        } else {
            Ok(())
        };
    }
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS server address; expected IP, IP:PORT or HOST:PORT (e.g. \"10.0.0.53:53\", \"[fd00::53]:53\", \"ns1.example.net:53\")"
        ))
    }
}

/// Parse a DNS server (see [`dns_server_syntax`]); a host name is resolved
/// once, here (blocking), and its first address used.
pub fn parse_dns_server(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let s = s.trim();
    dns_server_syntax(s)?;
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    let with_port = if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:53")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve DNS server {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("DNS server {s:?} has no address"))
}

/// How a group moves traffic.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Dns,
    Frontend,
    Hybrid,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Dns => "dns",
            Scheme::Frontend => "frontend",
            Scheme::Hybrid => "hybrid",
        }
    }
}

/// When to fail back.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailbackMode {
    /// After the primary is recovered (rise + hold_down).
    #[default]
    Auto,
    /// Only on `warden failback GROUP`.
    Manual,
}

/// How hard the old active site is fenced.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Fencing {
    /// Fencing must succeed (demote acknowledged or fence command exit 0).
    Required,
    /// Try; go on if the old site cannot be reached.
    #[default]
    BestEffort,
    /// Do not fence.
    Off,
}
