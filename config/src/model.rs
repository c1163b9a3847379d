//! The failover.conf data model: one serde struct per TOML table.
//!
//! These types are what the file says, deserialised with `deny_unknown_fields`
//! and typed durations. Cross-references (a group naming a site, a frontend
//! naming a backend) are checked in [`crate::load`], which is the only way to
//! obtain a [`Config`], so code that holds one may rely on them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The whole file, validated. Built only by [`crate::load`] / [`crate::parse`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Path the config was read from (for messages).
    pub path: PathBuf,
    pub orchestrator: OrchestratorConfig,
    pub detection: Detection,
    /// Sites by name, in name order.
    pub sites: BTreeMap<String, SiteConfig>,
    /// `warden frontend` machines (`[frontends.NAME]` with kind "builtin") by name.
    pub frontends: BTreeMap<String, FrontendConfig>,
    /// HAProxy machines (`[frontends.NAME]` with kind "haproxy") by name.
    /// A name is in exactly one of `frontends` and `haproxy_frontends`.
    pub haproxy_frontends: BTreeMap<String, HaproxyFrontendConfig>,
    /// Protected services by name.
    pub groups: BTreeMap<String, GroupConfig>,
}

impl Config {
    /// The groups a site takes part in.
    pub fn groups_of_site<'a>(
        &'a self,
        site: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a GroupConfig)> + 'a {
        self.groups
            .iter()
            .filter(move |(_, g)| g.sites.get_ref().iter().any(|s| s.get_ref() == site))
    }

    /// The frontends of `hybrid` groups and the TCP check that tells whether
    /// each one's machine serves users: a connect to its public address (its
    /// `groups.G.dns.addresses` entry) on the group's `listen` port, or to its
    /// control API when the listen port is 0 or the address is missing. The
    /// orchestrator and every agent of the group run the same check, so a
    /// frontend is judged from several vantage points like a site (DESIGN §3).
    /// `groups` lists the hybrid groups each frontend serves.
    pub fn hybrid_frontend_probes(&self) -> BTreeMap<String, (CheckSpec, Vec<String>)> {
        let mut out: BTreeMap<String, (CheckSpec, Vec<String>)> = BTreeMap::new();
        for (gname, g) in &self.groups {
            if *g.scheme.get_ref() != Scheme::Hybrid {
                continue;
            }
            let (Some(fs), Some(dns)) = (&g.frontend, &g.dns) else {
                continue;
            };
            let (fs, dns) = (fs.get_ref(), dns.get_ref());
            let port = fs.listen.map(|l| l.port()).filter(|p| *p != 0);
            for fe in &fs.frontends {
                let fe = fe.get_ref();
                let public = dns
                    .addresses
                    .get(fe)
                    .and_then(|a| parse_record_addresses(a).ok())
                    .and_then(|(v4, v6)| {
                        v4.map(std::net::IpAddr::V4)
                            .or(v6.map(std::net::IpAddr::V6))
                    });
                let addr = match (public, port) {
                    (Some(ip), Some(port)) => SocketAddr::new(ip, port),
                    _ => match self.frontends.get(fe) {
                        Some(f) => f.control,
                        None => continue,
                    },
                };
                let entry = out.entry(fe.clone()).or_insert_with(|| {
                    let spec = CheckSpec {
                        name: format!("frontend {fe}"),
                        kind: Spanned::new(0..0, CheckKind::Tcp),
                        url: None,
                        expect_status: None,
                        body_contains: None,
                        address: Some(Spanned::new(0..0, addr.to_string())),
                        command: None,
                        timeout: self.detection.probe_timeout,
                        critical: true,
                    };
                    (spec, Vec::new())
                });
                entry.1.push(gname.clone());
            }
        }
        out
    }

    /// Sites that share at least one group with `site` (its peers), excluding itself.
    pub fn peers_of(&self, site: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .groups_of_site(site)
            .flat_map(|(_, g)| g.site_names())
            .filter(|s| s != site)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// `[orchestrator]`: where the orchestrator listens and keeps its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// Address the HTTP API binds to.
    pub listen: SocketAddr,
    /// Base URL agents, frontends' owners and the CLI use to reach the API.
    /// Defaults to `http://{listen}`.
    #[serde(default)]
    pub url: Option<String>,
    /// Directory for the embedded state store.
    pub data_dir: PathBuf,
    /// Operator bearer token (needed for every API call that is not an agent report).
    pub operator_token: SecretRef,
    /// Largest accepted request body, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Long-poll wait for agent command fetches.
    #[serde(default = "default_long_poll", with = "humantime_serde")]
    pub long_poll: Duration,
    /// How often routing is compared with what the strategy observes.
    #[serde(default = "default_reconcile", with = "humantime_serde")]
    pub reconcile_interval: Duration,
}

impl OrchestratorConfig {
    /// The API base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }
}

fn default_max_body() -> usize {
    64 * 1024
}
fn default_long_poll() -> Duration {
    Duration::from_secs(10)
}
fn default_reconcile() -> Duration {
    Duration::from_secs(2)
}

/// Where a secret comes from: exactly one of `file` or `env`. The value itself
/// is never in the config file, so it can never be echoed from it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Path of a file whose content (trimmed) is the secret.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Name of an environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
}

/// `[detection]`: timings and guards of DESIGN §3.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// One detection round; also the default report and probe interval.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Consecutive down rounds before a site is confirmed down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Consecutive healthy rounds before a site counts as recovered.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Unbroken health needed (besides `rise`) before failback.
    #[serde(default = "default_hold_down", with = "humantime_serde")]
    pub hold_down: Duration,
    /// An agent whose last report is older than this is stale.
    #[serde(default = "default_agent_timeout", with = "humantime_serde")]
    pub agent_timeout: Duration,
    /// Timeout of one external or peer probe.
    #[serde(default = "default_probe_timeout", with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Automatic failovers allowed per group per `failover_window`.
    #[serde(default = "default_max_failovers")]
    pub max_failovers: u32,
    /// Window of the failover budget.
    #[serde(default = "default_failover_window", with = "humantime_serde")]
    pub failover_window: Duration,
}

impl Default for Detection {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            fall: default_fall(),
            rise: default_rise(),
            hold_down: default_hold_down(),
            agent_timeout: default_agent_timeout(),
            probe_timeout: default_probe_timeout(),
            max_failovers: default_max_failovers(),
            failover_window: default_failover_window(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_millis(500)
}
fn default_fall() -> u32 {
    3
}
fn default_rise() -> u32 {
    3
}
fn default_hold_down() -> Duration {
    Duration::from_secs(30)
}
fn default_agent_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_probe_timeout() -> Duration {
    Duration::from_millis(500)
}
fn default_max_failovers() -> u32 {
    2
}
fn default_failover_window() -> Duration {
    Duration::from_secs(3600)
}

/// `[sites.NAME]`: one location that can serve the group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Bearer token this site's agent reports with.
    pub agent_token: SecretRef,
    /// How often the agent reports (default: `detection.interval`).
    #[serde(default, with = "humantime_serde::option")]
    pub report_interval: Option<Duration>,
    /// Local checks run by the site's agent.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Public endpoints probed from outside (orchestrator and peer agents).
    #[serde(default)]
    pub endpoints: Vec<CheckSpec>,
    /// Hooks run in order when the site is promoted.
    #[serde(default)]
    pub promote: Vec<HookSpec>,
    /// Hooks run in order when the site is demoted (fenced).
    #[serde(default)]
    pub demote: Vec<HookSpec>,
    /// Where this site's agent keeps, per group, the highest epoch it has seen
    /// and its last role (survives restarts). Default:
    /// `{orchestrator.data_dir}/agent-NAME` on the agent's host.
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
}

/// What a check does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// HTTP or HTTPS GET of `url`.
    Http,
    /// TCP connect to `address`.
    Tcp,
    /// Run `command`; exit status 0 is healthy.
    Command,
}

/// One check or endpoint probe. The fields used depend on `kind`
/// (validated in [`crate::load`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Name shown in reports and evidence tables.
    pub name: String,
    pub kind: Spanned<CheckKind>,
    /// `http`: the URL to GET.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// `http`: the expected status (default 200).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// `http`: a substring the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// `tcp`: host:port to connect to.
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// `command`: argv of the command.
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    /// Time allowed for one run.
    #[serde(default = "default_check_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A failing critical check makes the site down (with outside agreement).
    #[serde(default = "default_true")]
    pub critical: bool,
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_true() -> bool {
    true
}

/// A promote or demote hook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    pub name: String,
    /// argv; run without a shell.
    pub command: Spanned<Vec<String>>,
    #[serde(default = "default_hook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl HookSpec {
    /// The hook's argv (program first).
    pub fn argv(&self) -> &[String] {
        self.command.get_ref()
    }
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `[frontends.NAME]` as written: one frontend machine of either kind. The
/// keys allowed depend on `kind`; [`crate::load`] checks them and turns each
/// entry into a [`FrontendConfig`] or a [`HaproxyFrontendConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendEntry {
    /// What runs on the machine (default `builtin`); a group's driver must match it.
    #[serde(default)]
    pub kind: Option<Spanned<FrontendDriverKind>>,
    /// `builtin`: address of its control API.
    #[serde(default)]
    pub control: Option<SocketAddr>,
    /// `builtin`: bearer token shared by the orchestrator and this frontend.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// `haproxy`: where its runtime API listens, a UNIX socket path or IP:PORT.
    #[serde(default)]
    pub runtime: Option<Spanned<String>>,
}

/// `[frontends.NAME]` with kind `builtin`: one `warden frontend` machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendConfig {
    /// Address of its control API.
    pub control: SocketAddr,
    /// Bearer token shared by the orchestrator and this frontend.
    pub token: SecretRef,
}

/// `[frontends.NAME]` with kind `haproxy`: one HAProxy process, driven
/// through its runtime API (`stats socket ... level admin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyFrontendConfig {
    /// Where the runtime API listens.
    pub runtime: RuntimeAddr,
}

/// Address of an HAProxy runtime API: a UNIX socket or a TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeAddr {
    /// `stats socket /run/haproxy/admin.sock level admin`.
    Unix(PathBuf),
    /// `stats socket ipv4@127.0.0.1:9999 level admin`.
    Tcp(SocketAddr),
}

impl RuntimeAddr {
    /// An absolute path is a UNIX socket, an `IP:PORT` a TCP address.
    pub fn parse(s: &str) -> Result<RuntimeAddr, String> {
        if s.starts_with('/') {
            if s.len() < 2 || s.ends_with('/') || s.contains('\0') {
                return Err("not a socket path; expected the path of the runtime API's UNIX socket, e.g. \"/run/haproxy/admin.sock\"".into());
            }
            return Ok(RuntimeAddr::Unix(PathBuf::from(s)));
        }
        s.parse::<SocketAddr>().map(RuntimeAddr::Tcp).map_err(|_| {
            "expected the absolute path of a UNIX socket (\"/run/haproxy/admin.sock\") or an IP:PORT address (\"127.0.0.1:9999\"); host names are not allowed here".to_string()
        })
    }
}

impl std::fmt::Display for RuntimeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            RuntimeAddr::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
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
    #[serde(default = "default_step_timeout", with = "humantime_serde")]
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
    #[serde(default = "default_drain", with = "humantime_serde")]
    pub drain_timeout: Duration,
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
    #[serde(default = "default_ttl", with = "humantime_serde")]
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
    #[serde(default = "default_dns_timeout", with = "humantime_serde")]
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

/// Check the form of a DNS server: `IP`, `IP:PORT`, `[IPv6]:PORT`, `HOST`
/// or `HOST:PORT` (port 53 when absent). Does not resolve anything.
pub fn dns_server_syntax(s: &str) -> Result<(), String> {
    let s = s.trim();
    if s.parse::<std::net::SocketAddr>().is_ok() || s.parse::<std::net::IpAddr>().is_ok() {
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
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    dns_server_syntax(s)?;
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

/// `[groups.NAME.replication] plan = ...`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicationPlan {
    /// A directory mirrored with the real `rsync` (daemon module, or ssh).
    Rsync,
    /// Objects copied between two Swift clusters through the Swift API.
    Swift,
    /// Swift's own container sync, directed by warden.
    SwiftContainerSync,
    /// A Swift cluster stretched across the sites: nothing to copy.
    None,
    /// A user command per phase.
    Command,
}

impl ReplicationPlan {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationPlan::Rsync => "rsync",
            ReplicationPlan::Swift => "swift",
            ReplicationPlan::SwiftContainerSync => "swift-container-sync",
            ReplicationPlan::None => "none",
            ReplicationPlan::Command => "command",
        }
    }
}

/// What a resync does with an item the stale site wrote that never reached the peer.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Divergent {
    /// Keep it and report it (default).
    #[default]
    Keep,
    /// Move it aside (a side directory or container) and report it.
    Quarantine,
    /// Delete it and report it.
    Discard,
}

impl Divergent {
    pub fn as_str(self) -> &'static str {
        match self {
            Divergent::Keep => "keep",
            Divergent::Quarantine => "quarantine",
            Divergent::Discard => "discard",
        }
    }
}

/// `[groups.NAME.replication]`: how the group's data follows the active site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    pub plan: ReplicationPlan,
    /// Divergent writes found at failback: keep, quarantine or discard.
    #[serde(default)]
    pub divergent: Divergent,
    /// Failback cut-over starts once a resync pass takes less than this.
    #[serde(default = "default_resync_lag_max", with = "humantime_serde")]
    pub resync_lag_max: Duration,
    /// Time allowed for the whole resync step (all passes) and the final pass.
    #[serde(default = "default_resync_timeout", with = "humantime_serde")]
    pub resync_timeout: Duration,
    /// Alert when the active site's replication lag (the RPO if it died now) exceeds this.
    #[serde(default, with = "humantime_serde")]
    pub rpo_max: Option<Duration>,
    /// Mass-delete guard: a pass that would delete more than this share of
    /// the peer's items (0.0–1.0) *and* more than `max_delete_count` items
    /// stops, alerts and waits for `warden clear`.
    #[serde(default = "default_max_delete_share")]
    pub max_delete_share: f64,
    /// Mass-delete guard: see `max_delete_share`.
    #[serde(default = "default_max_delete_count")]
    pub max_delete_count: u64,
    /// rsync: carry extended attributes (`-X`), e.g. Swift's
    /// `user.swift.metadata`. Default true; read it with [`Self::rsync_xattrs`].
    #[serde(default)]
    pub xattrs: Option<bool>,
    /// rsync: carry POSIX ACLs (`-A`). Default true.
    #[serde(default)]
    pub acls: Option<bool>,
    /// rsync: carry hard links (`-H`). Default true.
    #[serde(default)]
    pub hard_links: Option<bool>,
    /// rsync: keep sparse files sparse (`-S`). Default true.
    #[serde(default)]
    pub sparse: Option<bool>,
    /// swift / swift-container-sync: the placement list (containers kept on every site).
    #[serde(default)]
    pub containers: Vec<String>,
    /// swift: how often listings are compared.
    #[serde(default = "default_repl_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// swift: concurrent object copies.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// swift-container-sync: the realm of container-sync-realms.conf.
    #[serde(default)]
    pub realm: Option<String>,
    /// swift-container-sync: the X-Container-Sync-Key shared by both sides.
    #[serde(default)]
    pub sync_key: Option<SecretRef>,
    /// command: run at the active site to start continuous replication to the peer.
    #[serde(default)]
    pub start: Option<Vec<String>>,
    /// command: stop it.
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    /// command: run at the returning site to fetch from the active peer.
    #[serde(default)]
    pub resync: Option<Vec<String>>,
    /// command: exit 0 when both sides hold the same data.
    #[serde(default)]
    pub verify: Option<Vec<String>>,
    /// command: prints the current lag in ms.
    #[serde(default)]
    pub lag: Option<Vec<String>>,
    /// Per-site endpoints and paths.
    #[serde(default)]
    pub sites: BTreeMap<String, ReplicationSite>,
}

impl ReplicationConfig {
    /// rsync `xattrs` (default true: a faithful copy).
    pub fn rsync_xattrs(&self) -> bool {
        self.xattrs.unwrap_or(true)
    }

    /// rsync `acls` (default true).
    pub fn rsync_acls(&self) -> bool {
        self.acls.unwrap_or(true)
    }

    /// rsync `hard_links` (default true).
    pub fn rsync_hard_links(&self) -> bool {
        self.hard_links.unwrap_or(true)
    }

    /// rsync `sparse` (default true).
    pub fn rsync_sparse(&self) -> bool {
        self.sparse.unwrap_or(true)
    }
}

/// `[groups.NAME.replication.sites.SITE]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSite {
    /// rsync: the replicated directory at this site.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// rsync: this site's rsync daemon module, `HOST[:PORT]/MODULE`, that
    /// peers push into and pull from.
    #[serde(default)]
    pub module: Option<String>,
    /// rsync: the module's user; swift: the tempauth user (`account:user`).
    #[serde(default)]
    pub user: Option<String>,
    /// rsync: the module user's password.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// The pair manifest (what was last confirmed in sync). Default for
    /// rsync: `PATH.warden-manifest.json`; for swift:
    /// `/var/lib/warden/GROUP.SITE.swift-manifest.json`.
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// Where `divergent = "quarantine"` moves items. rsync default:
    /// `PATH.warden-quarantine`; swift: side containers `NAME.warden-quarantine`.
    #[serde(default)]
    pub quarantine: Option<PathBuf>,
    /// swift: the tempauth v1 URL (`http://HOST:8080/auth/v1.0`).
    #[serde(default)]
    pub auth_url: Option<String>,
    /// swift: the tempauth key.
    #[serde(default)]
    pub key: Option<SecretRef>,
    /// swift-container-sync: this cluster's name in the realm.
    #[serde(default)]
    pub cluster: Option<String>,
    /// swift-container-sync: the account (`AUTH_test`); default from the storage URL.
    #[serde(default)]
    pub account: Option<String>,
}

impl ReplicationSite {
    /// `module` split into (host, port, module name).
    pub fn rsync_target(&self) -> Option<(String, u16, String)> {
        parse_rsync_module(self.module.as_deref()?).ok()
    }
}

/// `HOST[:PORT]/MODULE` (IPv6 hosts in brackets) → (host, port 873 by default, module).
pub fn parse_rsync_module(s: &str) -> Result<(String, u16, String), String> {
    let (hp, module) = s
        .split_once('/')
        .ok_or_else(|| "expected HOST[:PORT]/MODULE, e.g. \"10.0.0.2:873/data\"".to_string())?;
    if module.is_empty() || module.contains('/') {
        return Err("the module name after the '/' must be one name, e.g. \"data\"".into());
    }
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in the host".to_string())?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), Some(p)),
            None if after.is_empty() => (h.to_string(), None),
            None => return Err("expected ':PORT' after ']'".into()),
        }
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hp.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?,
        None => 873,
    };
    Ok((host, port, module.to_string()))
}

fn default_max_delete_share() -> f64 {
    0.10
}

fn default_max_delete_count() -> u64 {
    100
}

fn default_resync_lag_max() -> Duration {
    Duration::from_secs(2)
}

fn default_resync_timeout() -> Duration {
    Duration::from_secs(3600)
}

fn default_repl_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_concurrency() -> usize {
    16
}
