//! `[groups.NAME.replication]`: the plan, the divergent policy, the
//! mass-delete guard, the per-site settings.

use super::*;

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
    #[serde(
        default = "default_resync_lag_max",
        deserialize_with = "duration::deserialize"
    )]
    pub resync_lag_max: Duration,
    /// Time allowed for the whole resync step (all passes) and the final pass.
    #[serde(
        default = "default_resync_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub resync_timeout: Duration,
    /// Alert when the active site's replication lag (the RPO if it died now) exceeds this.
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    pub rpo_max: Option<Duration>,
    /// An automatic failover to a standby whose last known replication lag
    /// exceeds this (or is unknown) waits for `warden approve` instead
    /// (Patroni's `maximum_lag_on_failover`).
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    pub max_lag_on_failover: Option<Duration>,
    /// rsync: a full pass compares the whole trees this long after the
    /// last one (default 6 hours), so what changed at the peer behind
    /// replication's back — a file removed or altered there, a disk
    /// restored from an old copy — is found, reported and sent again.
    /// Read it with [`Self::rsync_audit_every`].
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    pub audit_every: Option<Duration>,
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
    #[serde(
        default = "default_repl_interval",
        deserialize_with = "duration::deserialize"
    )]
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

    /// rsync `audit_every` (default 6 hours).
    pub fn rsync_audit_every(&self) -> Duration {
        self.audit_every
            .unwrap_or(Duration::from_secs(DEFAULT_AUDIT_EVERY_S))
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
    /// rsync over ssh instead of a daemon module: this site's sshd,
    /// `HOST[:PORT]` (port 22 by default). Peers push into and pull from
    /// `path` at this site, logging in as `user` with `ssh_key`.
    #[serde(default)]
    pub ssh: Option<String>,
    /// rsync over ssh: the private key file peers log into this site with
    /// (its public half in this site's `authorized_keys`, behind
    /// `warden rsync-gate --ssh`: docs/rsyncd.md).
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// rsync over ssh: a `known_hosts` file holding this site's host key;
    /// the host key is always checked (`StrictHostKeyChecking=yes`).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// rsync: the module's user (or the ssh login); swift: the tempauth
    /// user (`account:user`; with `keystone`, the user is named there).
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
    /// swift: log in with Keystone v3 instead of tempauth (the storage URL
    /// is the catalog's object-store endpoint of the table's `region`).
    #[serde(default)]
    pub keystone: Option<super::KeystoneConfig>,
    /// swift-container-sync: this cluster's name in the realm.
    #[serde(default)]
    pub cluster: Option<String>,
    /// swift-container-sync: the account (`AUTH_test`); default from the storage URL.
    #[serde(default)]
    pub account: Option<String>,
    /// rsync: `path` is a volume of its own (a mount point). While it is
    /// not mounted, nothing is sent from it, pushed into it or pulled into
    /// it (docs/rsyncd.md), from the agent's first start on — without this
    /// key, only once the agent has seen it mounted.
    #[serde(default)]
    pub mount_point: Option<bool>,
}

impl ReplicationSite {
    /// Whether `path` is declared a mount point (`mount_point = true`).
    pub fn is_mount_point(&self) -> bool {
        self.mount_point.unwrap_or(false)
    }

    /// `module` split into (host, port, module name).
    pub fn rsync_target(&self) -> Option<(String, u16, String)> {
        parse_rsync_module(self.module.as_deref()?).ok()
    }

    /// `ssh` split into (host, port).
    pub fn ssh_target(&self) -> Option<(String, u16)> {
        parse_ssh_host(self.ssh.as_deref()?).ok()
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
    let (host, port) = parse_host_port(hp, 873)?;
    Ok((host, port, module.to_string()))
}

/// `HOST[:PORT]` of an sshd (IPv6 hosts in brackets) → (host, port 22 by default).
pub fn parse_ssh_host(s: &str) -> Result<(String, u16), String> {
    if s.contains('/') || s.contains('@') || s.chars().any(char::is_whitespace) {
        return Err(
            "expected HOST[:PORT], e.g. \"10.0.0.2:22\" (the login user is `user`, the directory `path`)"
                .into(),
        );
    }
    parse_host_port(s, 22)
}

/// `HOST[:PORT]` → (host, port), `default` when there is none.
fn parse_host_port(hp: &str, default: u16) -> Result<(String, u16), String> {
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
    if host.starts_with('-') {
        return Err("the host must not start with '-'".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?,
        None => default,
    };
    Ok((host, port))
}

fn default_max_delete_share() -> f64 {
    0.10
}

/// The default of `audit_every`: 6 hours.
pub const DEFAULT_AUDIT_EVERY_S: u64 = 6 * 3600;

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
