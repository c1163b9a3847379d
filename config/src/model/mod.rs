//! The failover.conf data model: one serde struct per TOML table.
//!
//! These types are what the file says, deserialised with `deny_unknown_fields`
//! and typed durations. Cross-references (a group naming a site, a frontend
//! naming a backend) are checked in [`crate::load`], which is the only way to
//! obtain a [`Config`], so code that holds one may rely on them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod checks;
pub mod duration;
mod group;
mod keystone;
mod notify;
mod replication;

pub use checks::*;
pub use group::*;
pub use keystone::*;
pub use notify::*;
pub use replication::*;

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
    /// Every environment variable a secret reference of the file names
    /// (`{ env = "VAR" }`), whichever role loads it: never passed to a
    /// child process, even when a `pass_env` lists it
    /// ([`crate::child::configure`]) — a process knows only the secrets it
    /// loads itself, and an agent's hooks must not get the operator's token.
    pub secret_vars: BTreeSet<String>,
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

    /// The address of frontend `name`'s host as the config knows it: a
    /// built-in frontend's control address, an HAProxy's runtime API over
    /// TCP (`None` for a UNIX socket).
    pub fn frontend_host_ip(&self, name: &str) -> Option<std::net::IpAddr> {
        if let Some(f) = self.frontends.get(name) {
            return Some(f.control.ip());
        }
        match &self.haproxy_frontends.get(name)?.runtime {
            RuntimeAddr::Tcp(a) => Some(a.ip()),
            RuntimeAddr::Unix(_) => None,
        }
    }

    /// The frontends of `hybrid` groups and the TCP check that tells whether
    /// each one's machine serves users: a connect to its public address (its
    /// `groups.G.dns.addresses` entry) on the group's `listen` port, or — the
    /// address missing — a built-in frontend's control API, an HAProxy's
    /// runtime API host on the listen port. The
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
                    _ => match (self.frontends.get(fe), self.frontend_host_ip(fe), port) {
                        (Some(f), _, _) => f.control,
                        // An HAProxy: its users' port on its runtime API's host.
                        (None, Some(ip), Some(port)) => SocketAddr::new(ip, port),
                        _ => continue,
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
                        keystone: None,
                        container: None,
                        server: None,
                        query: None,
                        record_type: None,
                        expect: None,
                        timeout: self.detection.probe_timeout,
                        critical: true,
                        interval: None,
                    };
                    (spec, Vec::new())
                });
                entry.1.push(gname.clone());
            }
        }
        out
    }

    /// What `site`'s agent probes and may report about: its peers (see
    /// [`Config::peers_of`]) and the frontends of the hybrid groups it
    /// belongs to. A report's probe of anything else is not this agent's
    /// view to give.
    pub fn probe_targets_of(&self, site: &str) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.peers_of(site).into_iter().collect();
        for (fe, (_, groups)) in self.hybrid_frontend_probes() {
            let serves_site = groups.iter().any(|g| {
                self.groups
                    .get(g)
                    .is_some_and(|g| g.site_names().iter().any(|s| s == site))
            });
            if serves_site {
                out.insert(fe);
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
    /// Operator bearer token (needed for every API call that is not an agent
    /// report); its events name it `operator`.
    pub operator_token: SecretRef,
    /// More operator tokens, each with the name its actions' events record
    /// (names checked by [`crate::load`], each at its own position).
    #[serde(default)]
    pub operators: Vec<NamedToken>,
    /// A read-only bearer token: status, groups, sites, events, runbooks,
    /// divergent lists and metrics; never an action.
    #[serde(default)]
    pub read_token: Option<SecretRef>,
    /// Largest accepted request body, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Long-poll wait for agent command fetches.
    #[serde(
        default = "default_long_poll",
        deserialize_with = "duration::deserialize"
    )]
    pub long_poll: Duration,
    /// How often routing is compared with what the strategy observes.
    #[serde(
        default = "default_reconcile",
        deserialize_with = "duration::deserialize"
    )]
    pub reconcile_interval: Duration,
    /// Open API connections at most; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time a client has for a request's line and headers (and a kept-alive
    /// connection's idle time).
    #[serde(
        default = "default_header_read_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub header_read_timeout: Duration,
    /// Time from a request's headers to the start of its answer (body read
    /// included); a long-poll gets `long_poll` on top.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub request_timeout: Duration,
    /// Events kept in the store at most (the oldest go first).
    #[serde(default = "default_events_keep")]
    pub events_keep: usize,
    /// Events older than this are deleted from the store.
    #[serde(
        default = "default_events_max_age",
        deserialize_with = "duration::deserialize"
    )]
    pub events_max_age: Duration,
    /// TLS of the API (the `url` is then `https://`).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The certificate the orchestrator presents to frontends that verify
    /// their clients.
    #[serde(default)]
    pub client_tls: Option<ClientTls>,
    /// Environment variables (besides PATH, HOME, LANG and the like) passed
    /// to the orchestrator's fence commands; a variable that holds a secret
    /// is never passed.
    #[serde(default, deserialize_with = "var_names")]
    pub pass_env: Vec<String>,
    /// Where durable state lives: `local` (an embedded file in `data_dir`,
    /// one orchestrator) or `etcd` (several orchestrators, one leader).
    #[serde(default)]
    pub store: StoreKind,
    /// `[orchestrator.etcd]`: the etcd cluster of `store = "etcd"`.
    #[serde(default)]
    pub etcd: Option<EtcdConfig>,
    /// `[[orchestrator.nodes]]`: every orchestrator of an `etcd` deployment;
    /// each process is started with `--node NAME` and listens on its node's
    /// address. Agents report to all of them; the CLI tries each.
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    /// `[[orchestrator.notify]]`: webhooks and commands told of state changes.
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
}

/// `[orchestrator] store`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded redb file under `data_dir` (one orchestrator process).
    #[default]
    Local,
    /// An etcd cluster: several orchestrators, the lease holder acts.
    Etcd,
}

/// `[orchestrator.etcd]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members (`http://IP:2379` or `https://…`).
    pub endpoints: Vec<String>,
    /// Every key warden writes starts with this prefix.
    #[serde(default = "default_etcd_prefix")]
    pub prefix: String,
    /// The leader lease's time to live: a leader cut off from etcd stops
    /// acting within it, and a new one is elected after it.
    #[serde(
        default = "default_lease_ttl",
        deserialize_with = "duration::deserialize"
    )]
    pub lease_ttl: Duration,
    /// Time allowed for one etcd request.
    #[serde(
        default = "default_etcd_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
    /// TLS towards etcd: its CA, and a client certificate when etcd asks.
    #[serde(default)]
    pub tls: Option<EtcdTls>,
}

/// `[orchestrator.etcd.tls]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EtcdTls {
    /// The CA that signed the etcd members' certificates.
    pub ca: PathBuf,
    /// Client certificate (with `key`), when etcd verifies clients.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

fn default_etcd_prefix() -> String {
    "/warden/".into()
}
fn default_lease_ttl() -> Duration {
    Duration::from_secs(3)
}
fn default_etcd_timeout() -> Duration {
    Duration::from_secs(1)
}

/// One orchestrator of an `etcd` deployment (`[[orchestrator.nodes]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Its name (`warden orchestrator --node NAME`), shown in status and events.
    pub name: String,
    /// Address its API binds to.
    pub listen: SocketAddr,
    /// Base URL of its API; defaults to `http://{listen}` (`https://` with TLS).
    #[serde(default)]
    pub url: Option<String>,
}

impl OrchestratorConfig {
    /// The API base URL of every orchestrator: each node's, or the one.
    pub fn urls(&self) -> Vec<String> {
        if self.nodes.is_empty() {
            return vec![self.base_url()];
        }
        self.nodes.iter().map(|n| self.node_url(n)).collect()
    }

    /// A node's API base URL, without a trailing slash.
    pub fn node_url(&self, n: &NodeConfig) -> String {
        match &n.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if self.tls.is_some() => format!("https://{}", n.listen),
            None => format!("http://{}", n.listen),
        }
    }

    /// The config as node `name` runs it: its `listen` and `url`.
    pub fn for_node(&self, name: &str) -> Option<OrchestratorConfig> {
        let n = self.nodes.iter().find(|n| n.name == name)?;
        let mut o = self.clone();
        o.url = Some(self.node_url(n));
        o.listen = n.listen;
        Some(o)
    }

    /// The API base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if self.tls.is_some() => format!("https://{}", self.listen),
            None => format!("http://{}", self.listen),
        }
    }
}

fn default_max_body() -> usize {
    64 * 1024
}
fn default_events_keep() -> usize {
    100_000
}
fn default_events_max_age() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}
fn default_max_connections() -> usize {
    4096
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_long_poll() -> Duration {
    Duration::from_secs(10)
}
fn default_reconcile() -> Duration {
    Duration::from_secs(2)
}

/// Where a secret comes from: exactly one of `file` or `env`. The value itself
/// is never in the config file, so it can never be echoed from it. Only a
/// table is read as one: serde would also build it from an array
/// (`["x"]` as `{ file = "x" }`), and a secret pasted there by mistake
/// would be printed as a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Path of a file whose content (trimmed) is the secret.
    pub file: Option<PathBuf>,
    /// Name of an environment variable holding the secret.
    pub env: Option<String>,
    /// Accept a secret `file` that every user can read (with a warning);
    /// by default such a file is refused.
    pub others_may_read: bool,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            #[serde(default)]
            file: Option<PathBuf>,
            #[serde(default)]
            env: Option<String>,
            #[serde(default)]
            others_may_read: bool,
        }
        struct TableOnly;
        impl<'de> serde::de::Visitor<'de> for TableOnly {
            type Value = SecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // The loader words this for operators (see `describe_expected`).
                f.write_str("struct SecretRef")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SecretRef, A::Error> {
                let f = Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(SecretRef {
                    file: f.file,
                    env: f.env,
                    others_may_read: f.others_may_read,
                })
            }
        }
        d.deserialize_map(TableOnly)
    }
}

/// `[detection]`: timings and guards of DESIGN §3.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// One detection round; also the default report and probe interval.
    #[serde(
        default = "default_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub interval: Duration,
    /// Consecutive down rounds before a site is confirmed down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Consecutive healthy rounds before a site counts as recovered.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Unbroken health needed (besides `rise`) before failback.
    #[serde(
        default = "default_hold_down",
        deserialize_with = "duration::deserialize"
    )]
    pub hold_down: Duration,
    /// An agent whose last report is older than this is stale.
    #[serde(
        default = "default_agent_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub agent_timeout: Duration,
    /// Timeout of one external or peer probe.
    #[serde(
        default = "default_probe_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub probe_timeout: Duration,
    /// Automatic failovers allowed per group per `failover_window`.
    #[serde(default = "default_max_failovers")]
    pub max_failovers: u32,
    /// Window of the failover budget.
    #[serde(
        default = "default_failover_window",
        deserialize_with = "duration::deserialize"
    )]
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
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    pub report_interval: Option<Duration>,
    /// Local checks run by the site's agent.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Public endpoints probed from outside (orchestrator and peer agents).
    #[serde(default)]
    pub endpoints: Vec<CheckSpec>,
    /// How this site answers a user request through the group's public
    /// entry, so a runbook's verify step can tell which site users reach.
    #[serde(default)]
    pub identity: Option<Identity>,
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
    /// The certificate this site's agent presents to an orchestrator that
    /// verifies its clients; it must name the site (subjectAltName DNS).
    #[serde(default)]
    pub client_tls: Option<ClientTls>,
    /// Environment variables (besides PATH, HOME, LANG and the like) passed
    /// to this site's hooks, checks and replication processes; a variable
    /// that holds a secret is never passed.
    #[serde(default, deserialize_with = "var_names")]
    pub pass_env: Vec<String>,
}

/// `[sites.NAME.identity]`: what a plain HTTP GET of `path` through the
/// public entry answers when this site serves it — a response header with a
/// value (`header` + `value`) or a body substring (`body_contains`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The path requested (default `/`).
    #[serde(default = "default_identity_path")]
    pub path: String,
    /// A response header that names the serving site, e.g. `X-Served-By`.
    #[serde(default)]
    pub header: Option<String>,
    /// The value of `header` when this site serves.
    #[serde(default)]
    pub value: Option<String>,
    /// A substring of the body when this site serves.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Time allowed for one request (default 2 s).
    #[serde(
        default = "default_identity_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
}

impl Identity {
    /// Whether an answer with these headers and body is this site's.
    pub fn matches<'h>(
        &self,
        mut headers: impl Iterator<Item = (&'h str, &'h [u8])>,
        body: &str,
    ) -> bool {
        if let (Some(h), Some(v)) = (&self.header, &self.value) {
            return headers.any(|(k, got)| k.eq_ignore_ascii_case(h) && got == v.as_bytes());
        }
        self.body_contains
            .as_deref()
            .is_some_and(|needle| body.contains(needle))
    }
}

fn default_identity_path() -> String {
    "/".into()
}
fn default_identity_timeout() -> Duration {
    Duration::from_secs(2)
}

/// One named operator token (`[[orchestrator.operators]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NamedToken {
    /// Recorded in the events of this token's actions (`[A-Za-z0-9._-]`, 1–64).
    pub name: String,
    /// The token.
    pub token: SecretRef,
}

/// A list of environment variable names (`[A-Za-z_][A-Za-z0-9_]*`).
fn var_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if let Some(bad) = names.iter().find(|n| !crate::child::valid_var_name(n)) {
        let hint = if bad.contains('=') {
            ": pass_env lists the names of variables passed on from warden's own environment, not \
             NAME=VALUE"
        } else {
            ""
        };
        return Err(serde::de::Error::custom(format!(
            "{bad:?} is not an environment variable name (letters, digits and _, not starting with a digit){hint}"
        )));
    }
    Ok(names)
}

pub(super) fn default_true() -> bool {
    true
}

/// A promote or demote hook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    pub name: String,
    /// argv; run without a shell.
    pub command: Spanned<Vec<String>>,
    #[serde(
        default = "default_hook_timeout",
        deserialize_with = "duration::deserialize"
    )]
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
    /// `builtin`: TLS of its control API.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `builtin`: where it keeps, per group, the highest epoch it has
    /// accepted (survives restarts). Default:
    /// `{orchestrator.data_dir}/frontend-NAME` on the frontend's host.
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
}

/// `[frontends.NAME]` with kind `builtin`: one `warden frontend` machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendConfig {
    /// Address of its control API.
    pub control: SocketAddr,
    /// Bearer token shared by the orchestrator and this frontend.
    pub token: SecretRef,
    /// TLS of its control API (the orchestrator then speaks https to it).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Where it keeps its fence (see [`FrontendEntry::state_dir`]).
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
}

/// TLS of a server (`[orchestrator.tls]`, `[frontends.NAME.tls]`): PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain this server presents (leaf first).
    pub cert: PathBuf,
    /// Its private key (refused when every user can read it).
    pub key: PathBuf,
    /// The CA its clients trust for it (default: the system's roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// When set, every client must present a certificate signed by this CA
    /// (mTLS); an agent's must name its site.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// A client certificate (mTLS): PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// Certificate chain presented (leaf first).
    pub cert: PathBuf,
    /// Its private key (refused when every user can read it).
    pub key: PathBuf,
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
