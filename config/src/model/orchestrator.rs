//! `[orchestrator]` as written: where the orchestrator listens and keeps its
//! state, its tokens (`operators`), its store (`etcd`, `nodes`) and the
//! API base URLs derived from them.

use super::*;

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
    /// Finished runbooks kept per group at least (the newest); older ones
    /// beyond it are deleted from the store.
    #[serde(default = "default_runbooks_keep")]
    pub runbooks_keep: usize,
    /// Finished runbooks that ended longer ago than this are deleted from
    /// the store (beyond the newest of each group and kind).
    #[serde(
        default = "default_runbooks_max_age",
        deserialize_with = "duration::deserialize"
    )]
    pub runbooks_max_age: Duration,
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
fn default_runbooks_keep() -> usize {
    1000
}
fn default_runbooks_max_age() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
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

/// One named operator token (`[[orchestrator.operators]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NamedToken {
    /// Recorded in the events of this token's actions (`[A-Za-z0-9._-]`, 1–64).
    pub name: String,
    /// The token.
    pub token: SecretRef,
}
