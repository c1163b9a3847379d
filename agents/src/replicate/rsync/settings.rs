//! The rsync plan's settings ([`RsyncSettings`]): what to mirror where, with
//! which password and attributes, and the flags every transfer carries.

use super::*;

/// Where and how to mirror. Built by the caller (later from the
/// `[replication]` config table); [`RsyncSettings::new`] fills the defaults.
#[derive(Debug, Clone)]
pub struct RsyncSettings {
    /// The local directory whose contents are mirrored.
    pub source: PathBuf,
    /// The peer's rsync daemon host (name or IP address).
    pub host: String,
    /// The daemon's TCP port (873 by default).
    pub port: u16,
    /// The daemon module that receives the mirror.
    pub module: String,
    /// The module's `auth users` user.
    pub user: String,
    /// That user's password from the module's secrets file.
    pub password: Secret,
    /// The rsync binary.
    pub rsync_path: PathBuf,
    /// How long changes are gathered (from the oldest) before a batch transfer.
    pub batch_window: Duration,
    /// Most batch transfers running at once (at least 1).
    pub max_transfers: usize,
    /// A batch is sent early once this many paths wait.
    pub batch_max: usize,
    /// Past this many waiting paths, a full pass replaces the list.
    pub max_pending: usize,
    /// First retry delay after a failed transfer (doubles up to `retry_max`).
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// rsync's `--contimeout` and `--timeout` (I/O stall).
    pub io_timeout: Duration,
    /// The pair manifest file (what is confirmed at the peer). When set, the
    /// push replicator maintains it and [`super::RsyncResyncer`] reads it.
    pub manifest: Option<PathBuf>,
    /// Where a resync moves divergent local items aside; `None` means the
    /// sibling `<source>.warden-quarantine/`.
    pub quarantine: Option<PathBuf>,
    /// A full pass compares the whole trees this long after the last one
    /// (an audit: what it sends or deletes that nothing here changed was
    /// changed at the peer, [`super::RsyncReplicator`]'s `drift`); `None`:
    /// only the full passes owed for a cause.
    pub audit_every: Option<Duration>,
    /// The mass-delete guard's thresholds (`max_delete_share`, `max_delete_count`).
    pub guard: DeleteGuard,
    /// What the guard holds, shared with the agent's replication role.
    pub hold: GuardHold,
    /// Carry extended attributes (`-X`): e.g. Swift's `user.swift.metadata`,
    /// SELinux labels, file capabilities.
    pub xattrs: bool,
    /// Carry POSIX ACLs (`-A`).
    pub acls: bool,
    /// Carry hard links (`-H`); a batch that changes a name whose inode has
    /// other names outside the batch is sent by a full pass instead.
    pub hard_links: bool,
    /// Write runs of zeros as holes (`-S`): a sparse file stays sparse.
    pub sparse: bool,
    /// Reach the peer over ssh (`host`, `port` and `user` are the sshd's and
    /// the login's) instead of a daemon module; `module` and `password` are
    /// then unused.
    pub ssh: Option<SshLogin>,
    /// This site's directory as a volume ([`crate::volumes`]): a resync
    /// pass does not pull into one that is not mounted now, and nothing is
    /// sent from one that is not.
    pub volume: Option<Volume>,
    /// What a push states to the peer's daemon (its group, this site, its
    /// epoch: [`crate::gate::order`]); `None`: nothing stated.
    pub stated: Option<StatedPush>,
    /// The mark of this agent's rsync runs, in the environment of each
    /// ([`crate::leftovers::rsync_mark`]), by which its next process finds those
    /// it left running; `None`: unmarked.
    pub runs_mark: Option<warden_config::run_mark::RunMark>,
}

/// The order a push states to the peer's rsync daemon with
/// `--early-input`, for the daemon's `early exec` and the gate
/// ([`crate::gate::order`]), and the check every push passes first.
#[derive(Debug, Clone)]
pub struct StatedPush {
    /// The group, this site, and the epoch of the start order.
    pub order: crate::gate::order::PushOrder,
    /// The agent's authority over the start order: its epoch (raised by a
    /// newer start that kept the replicator) and whether it still stands.
    /// `None`: the order as built, never judged here.
    pub now: Option<crate::replicate::OrderCheck>,
}

impl StatedPush {
    /// The early input of a transfer starting now: the order's epoch,
    /// never a newer one this site merely heard of (a deposed site would
    /// pass a third site's gate as the new active site's push).
    pub fn line(&self) -> String {
        let mut o = self.order.clone();
        if let Some(n) = &self.now {
            o.epoch = o.epoch.max(n.epoch());
        }
        o.line()
    }

    /// `Err(why)` when this site's order to push no longer stands (it
    /// heard of a newer epoch, or it is no longer active): nothing may be
    /// sent under it.
    pub fn stands(&self) -> Result<(), String> {
        self.now.as_ref().map_or(Ok(()), |n| n.stands())
    }
}

/// Where this site records its directory as a mount point, and whether
/// the config declares it one.
#[derive(Debug, Clone)]
pub struct Volume {
    /// The agent's state directory (`volumes.json`).
    pub state_dir: PathBuf,
    /// The group.
    pub group: String,
    /// `mount_point = true` for this site's directory.
    pub declared: bool,
}

/// rsync over ssh: where the peer keeps the data and how to log in.
#[derive(Debug, Clone)]
pub struct SshLogin {
    /// The peer's directory (its `path`), named in every transfer.
    pub path: PathBuf,
    /// The private key file (`-i`); no agent, no other key is tried.
    pub key: PathBuf,
    /// The `known_hosts` file holding the peer's host key, always checked.
    pub known_hosts: PathBuf,
}

impl RsyncSettings {
    /// Settings with the defaults: port 873, `rsync` from `PATH`, 10 ms
    /// batches of at most 1000 paths, 8 batch transfers at once, full pass
    /// past 100 000 pending paths, retries from 200 ms to 10 s, 30 s I/O
    /// timeout, no manifest, the sibling quarantine directory; xattrs, ACLs,
    /// hard links and sparseness carried.
    pub fn new(
        source: impl Into<PathBuf>,
        host: impl Into<String>,
        module: impl Into<String>,
        user: impl Into<String>,
        password: Secret,
    ) -> Self {
        RsyncSettings {
            source: source.into(),
            host: host.into(),
            port: 873,
            module: module.into(),
            user: user.into(),
            password,
            rsync_path: PathBuf::from("rsync"),
            batch_window: Duration::from_millis(10),
            max_transfers: 8,
            batch_max: 1000,
            max_pending: 100_000,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            manifest: None,
            quarantine: None,
            audit_every: None,
            guard: DeleteGuard::default(),
            hold: GuardHold::new(),
            xattrs: true,
            acls: true,
            hard_links: true,
            sparse: true,
            ssh: None,
            volume: None,
            stated: None,
            runs_mark: None,
        }
    }

    /// Settings (the defaults of [`RsyncSettings::new`]) for mirroring
    /// `source` into `login.path` at `host:port` over ssh, as `user`.
    pub fn over_ssh(
        source: impl Into<PathBuf>,
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        login: SshLogin,
    ) -> Self {
        let mut s = Self::new(source, host, "", user, Secret::new(""));
        s.port = port;
        s.ssh = Some(login);
        s
    }

    /// The quarantine directory: `quarantine`, or `<source>.warden-quarantine`.
    pub fn quarantine_dir(&self) -> PathBuf {
        if let Some(q) = &self.quarantine {
            return q.clone();
        }
        let mut name = self
            .source
            .file_name()
            .map(|n| n.to_owned())
            .unwrap_or_else(|| OsString::from("root"));
        name.push(".warden-quarantine");
        self.source.with_file_name(name)
    }

    /// `rsync://user@host:port/module/` (no password in it), or over ssh
    /// `user@host:PATH/` (the port is in the ssh command, [`ssh_command`]).
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.ssh {
            Some(login) => {
                let path = login.path.display().to_string();
                let slash = if path.ends_with('/') { "" } else { "/" };
                format!("{}@{host}:{path}{slash}", self.user)
            }
            None => format!(
                "rsync://{}@{}:{}/{}/",
                self.user, host, self.port, self.module
            ),
        }
    }

    /// `host:port/module`, or `user@host:PATH (ssh port N)`: how errors
    /// name the target.
    pub(crate) fn target(&self) -> String {
        match &self.ssh {
            Some(login) => format!(
                "{}@{}:{} (ssh port {})",
                self.user,
                self.host,
                login.path.display(),
                self.port
            ),
            None => format!("{}:{}/{}", self.host, self.port, self.module),
        }
    }
}

/// The attribute flags every rsync transfer carries besides `-a` (push
/// batches, full passes and their dry runs, `verify`, resync pulls and
/// their checksum dry runs): `-X` (xattrs), `-A` (ACLs), `-H` (hard links),
/// `-S` (sparse), as enabled in `s`. Listings (`--list-only`) need none.
pub(crate) fn attribute_args(s: &RsyncSettings) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        (s.xattrs, "-X"),
        (s.acls, "-A"),
        (s.hard_links, "-H"),
        (s.sparse, "-S"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, flag)| flag.into())
    .collect();
    // The other side's symlink probe lives for a moment in this tree (the
    // module is the data directory): it is never data, never replicated.
    args.push(PROBE_EXCLUDE.into());
    args
}

/// Keeps every transfer off the symlink probes (see `process::check_symlinks`).
pub(crate) const PROBE_EXCLUDE: &str = "--exclude=/.warden-symlink-probe-*";

/// rsync's `-e` for `s` over ssh: only the configured key, the host key
/// checked against the configured `known_hosts` and never a prompt, no
/// user or system ssh config read (`-F /dev/null`), `connect` as the
/// connection timeout. The paths are double-quoted for rsync's splitting
/// of `-e` (the config refuses quotes and backslashes in them).
///
/// Transfers share one ssh connection per peer ([`control_path`]): the
/// first one's ssh stays as the master and the next ones open sessions
/// in it (each still runs the peer's forced command, the gate), instead
/// of a key exchange and a login each. The master leaves by itself
/// [`CONTROL_PERSIST`] after its last session, and keepalives end it
/// within three intervals when the peer stops answering.
pub(crate) fn ssh_command(s: &RsyncSettings, login: &SshLogin, connect: u64) -> String {
    let alive = connect.clamp(1, 5);
    let mut cmd = format!(
        "ssh -F /dev/null -p {} -i \"{}\" -o IdentitiesOnly=yes -o BatchMode=yes \
         -o StrictHostKeyChecking=yes -o \"UserKnownHostsFile={}\" -o ConnectTimeout={connect} \
         -o ServerAliveInterval={alive} -o ServerAliveCountMax=3 -o LogLevel=ERROR",
        s.port,
        login.key.display(),
        login.known_hosts.display(),
    );
    if let Some(path) = control_path(login) {
        cmd.push_str(&format!(
            " -o ControlMaster=auto -o \"ControlPath={}\" -o ControlPersist={}",
            path.display(),
            CONTROL_PERSIST.as_secs()
        ));
    }
    cmd
}

/// How long a shared ssh connection outlives its last transfer.
pub(crate) const CONTROL_PERSIST: Duration = Duration::from_secs(10);

/// The shared connections' socket, `PRIVATE_TMP/ssh-KEYS-%C` (ssh fills
/// in a hash of the local host, peer, port and user; KEYS is a hash of the
/// key and `known_hosts` files, so that a connection made with one key is
/// never lent to transfers configured with another), or `None` — each
/// transfer then logs in on its own — when the private directory cannot
/// be made or the path would not fit a Unix socket's 108 bytes (ssh has no
/// fallback for a path too long: it fails).
fn control_path(login: &SshLogin) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let dir = super::pull::private_temp_dir().ok()?;
    // The same for the same files in every process of this build: the
    // agents of a host share connections as they share the files.
    let mut h = std::hash::DefaultHasher::new();
    (&login.key, &login.known_hosts).hash(&mut h);
    let path = dir.join(format!("ssh-{:08x}-%C", h.finish() as u32));
    let expanded = path.as_os_str().len() - 2 + 40;
    (expanded < 100 && !path.to_string_lossy().contains(['"', '\\'])).then_some(path)
}
