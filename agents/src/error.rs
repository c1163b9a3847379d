//! [`AgentError`]: everything that can go wrong in this crate, and whose move it is.

/// What can go wrong in the agent. Only the fatal variants leave [`crate::agent::run`];
/// the retryable ones are logged and retried by the loops themselves.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The site is not in the config or its token cannot be loaded: fatal, the operator fixes the config or the secret.
    #[error(transparent)]
    Config(#[from] warden_config::ConfigError),
    /// A setting cannot work (orchestrator URL that is not http(s), zero interval): fatal, the operator fixes the config.
    #[error("{key}: {reason}")]
    InvalidSetting { key: String, reason: String },
    /// The HTTP client could not be built (e.g. no TLS crypto provider installed): fatal, a bug in the binary.
    #[error("cannot build the http client: {0}")]
    Client(#[source] reqwest::Error),
    /// The agent's authority state (highest epochs, roles) cannot be read or
    /// written: fatal at start, the operator fixes the directory.
    #[error("cannot keep the agent's authority state in {path}: {detail}; make the directory writable or set sites.SITE.state_dir")]
    State { path: String, detail: String },
    /// Another process (an agent of this site) holds the state directory:
    /// fatal, the operator stops one of the two.
    #[error("another agent of site {site} already runs with state_dir {dir} ({holder}): stop it first (two agents of one site would each run every order)")]
    AlreadyRunning {
        site: String,
        dir: String,
        holder: String,
    },
    /// The orchestrator could not be reached or did not answer in time: retryable, the agent keeps trying.
    #[error("orchestrator unreachable: {0}")]
    Unreachable(String),
    /// The orchestrator answered with an error status: retryable, but 401/403 means the agent token is wrong (operator's fault).
    #[error("orchestrator answered status {status}: {message}")]
    Rejected { status: u16, message: String },
    /// The orchestrator's answer is not a valid response body: retryable; usually agent and orchestrator versions differ.
    #[error("unreadable answer from the orchestrator: {0}")]
    BadResponse(String),
    /// The replication peer cannot be reached (rsync exit 10/12/30/35: daemon down, network, timeout):
    /// retryable; continuous replication retries with backoff and runs a full pass when it is back.
    #[error("replication target {target} unreachable (rsync exit {code}): {detail}; check that the peer's rsync daemon (or sshd) runs and the network allows the port, warden keeps retrying")]
    ReplicationUnreachable {
        target: String,
        code: i32,
        detail: String,
    },
    /// The rsync daemon refused the user or password: fatal, the operator fixes the secret or the daemon's secrets file.
    #[error("rsync daemon refused user {user:?} on module {module:?} (auth failed): check the replication password secret and the `auth users`/`secrets file` of that module on the peer")]
    ReplicationAuth { module: String, user: String },
    /// The rsync daemon has no such module: fatal, the operator fixes the module name or the daemon config.
    #[error("rsync daemon at {target} has no module {module:?}: fix the module name in the replication settings or add it to the peer's rsyncd.conf")]
    ReplicationNoModule { target: String, module: String },
    /// The target refuses writes (`read only = yes`, permissions): fatal, the operator fixes the peer.
    #[error("rsync module {module:?} at {target} refuses writes: {detail}; set `read only = no` and make the module path writable for the daemon's uid")]
    ReplicationReadOnly {
        target: String,
        module: String,
        detail: String,
    },
    /// The peer's module does not store symlinks byte for byte (it munges or sanitizes them): fatal, the operator fixes the peer's rsyncd.conf.
    #[error("rsync module {module:?} at {target} alters symlinks: {detail}; set `use chroot = yes` and `munge symlinks = no` for that module in the peer's rsyncd.conf (see docs/rsyncd.md); nothing was replicated")]
    ReplicationSymlinks {
        target: String,
        module: String,
        detail: String,
    },
    /// rsync over ssh could not log in (host key, key, authorized_keys): fatal until the operator fixes the keys; retried.
    #[error("ssh login to {target} failed: {detail}")]
    ReplicationLogin { target: String, detail: String },
    /// The receiving site's `warden rsync-gate` refused the transfer (a push into its active site, a path or option it does not let through): retried, never forced.
    #[error("{target} refused the transfer: {detail}")]
    ReplicationRefused { target: String, detail: String },
    /// rsync failed for another reason (partial transfer, protocol error): retryable; the detail is rsync's own message.
    #[error("rsync to {target} failed (exit {code}): {detail}")]
    Rsync {
        target: String,
        code: i32,
        detail: String,
    },
    /// rsync could not be run at all: fatal, install rsync on the agent host or fix `rsync_path`.
    #[error("cannot run {program}: {source}; install rsync on this host or fix the rsync path")]
    RsyncSpawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The replicated directory cannot be watched or read: fatal until the operator fixes the path or raises inotify limits.
    #[error("cannot watch {path}: {reason}")]
    Watch { path: String, reason: String },
    /// The pair's manifest cannot be read or written: fatal for the resync (nothing is deleted on a guess); the operator fixes the path or its permissions.
    #[error("replication manifest {path}: {reason}")]
    Manifest { path: String, reason: String },
    /// A divergent item could not be moved aside or removed: the resync stops before anything is overwritten.
    #[error("cannot {action} divergent item {name}: {reason}")]
    Divergent {
        action: String,
        name: String,
        reason: String,
    },
    /// The local directory a resync writes into cannot be created or written: fatal until the operator fixes its path, ownership or mount.
    #[error("local replication directory {path} is not writable: {reason}; fix its path, ownership or mount (nothing was fetched)")]
    LocalTarget { path: String, reason: String },
    /// A `command` replication plan's command failed, timed out or could not start: the detail ends with its stderr tail.
    #[error("replication {phase} command {command:?} failed: {detail}")]
    ReplicationCommand {
        phase: String,
        command: String,
        detail: String,
    },
    /// The Swift login (tempauth or Keystone) refused the credentials: fatal, the operator fixes the key, password or secret (never quoted) or the names.
    #[error("Swift auth at {url} refused {user} (HTTP {status}{message}): check {check}")]
    SwiftAuth {
        url: String,
        /// Who logged in (`test:tester`, `user warden (domain Default) in project dr …`).
        user: String,
        status: u16,
        /// `: ` and the login service's own words, or empty.
        message: String,
        /// What to check.
        check: &'static str,
    },
    /// The Swift login failed otherwise (an error status, an answer without a
    /// token, no object-store endpoint for the site's region in the Keystone
    /// catalog): retryable as the cause says.
    #[error("Swift login: {0}")]
    SwiftLogin(warden_openstack::OpenStackError),
    /// A Swift cluster could not be reached or did not answer in time: retryable, warden keeps trying.
    #[error("Swift at {url} unreachable: {detail}; warden keeps retrying")]
    SwiftUnreachable { url: String, detail: String },
    /// A Swift call answered an error status: retryable when 5xx, 408 or 429 (the cluster is busy or degraded), otherwise the operator's or warden's fault.
    #[error("Swift {method} {url} answered {status}: {detail}")]
    SwiftStatus {
        method: String,
        url: String,
        status: u16,
        detail: String,
    },
    /// A Swift answer could not be read (not a JSON listing, no token): retryable; usually a proxy in between or the wrong URL.
    #[error("unreadable answer from Swift at {url}: {detail}")]
    SwiftBadResponse { url: String, detail: String },
    /// A Swift container or object name warden refuses to put in a URL (a `.`/`..`
    /// segment, a control character) or a URL that would not point inside its
    /// account and container: nothing was sent; the name is listed as refused.
    #[error("refused Swift name {name}: {reason}; nothing was sent for it")]
    SwiftUnsafeName { name: String, reason: String },
    /// A static symlink already broken at the source (its target gone, or
    /// changed since the link was made): Swift refuses to create it
    /// anywhere else. Listed as refused (`entry` says which and why), not a
    /// failed round; it follows once mended at the source.
    #[error("{entry}")]
    SwiftBrokenLink { entry: String },
    /// The mass-delete guard holds a pass (the message says what it would have
    /// deleted): nothing was deleted; the next pass checks again, `warden clear`
    /// lets one go ahead.
    #[error("{0}")]
    DeleteGuard(String),
    /// A newer active site's fence refuses this site's order (the `swift`
    /// copier of an older epoch, the message says whose fence and which
    /// epochs): nothing was written; not retryable, a newer order replaces it.
    #[error("{0}")]
    Fenced(String),
    /// This site's order to push no longer stands (`OrderCheck`: a newer
    /// epoch known here, or the site no longer active): nothing was sent.
    /// Retried: a newer start order toward the same peer makes it stand
    /// again; a demote ends the replicator.
    #[error("nothing sent: this site's order to push no longer stands: {0}")]
    PushOrderGone(String),
    /// A replication call was cancelled by its token: not an error of the peer.
    #[error("replication cancelled")]
    ReplicationCancelled,
    /// An agent task panicked: fatal, a bug in warden.
    #[error("agent task failed: {0}")]
    Task(String),
}

impl AgentError {
    /// Whether retrying the same replication call later can succeed (peer down, partial transfer).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AgentError::ReplicationUnreachable { .. }
                | AgentError::ReplicationRefused { .. }
                | AgentError::Rsync { .. }
                | AgentError::Unreachable(_)
                | AgentError::Rejected { .. }
                | AgentError::BadResponse(_)
                | AgentError::SwiftUnreachable { .. }
                | AgentError::SwiftBadResponse { .. }
        ) || matches!(self, AgentError::SwiftStatus { status, .. } if *status >= 500 || *status == 408 || *status == 429)
            || matches!(self, AgentError::SwiftLogin(e) if e.is_retryable())
    }
}
