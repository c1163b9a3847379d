//! The real sshd a data test or bench starts for the peers' ssh transport:
//! its keys (`ssh-keygen`), its config, and the one authorized key whose
//! forced command is `warden rsync-gate --ssh` for a site
//! (docs/rsyncd.md). Shared by `tests/data/ssh.rs` and
//! `benches/replication/ssh.rs` through `#[path]`; each starts the daemon
//! its own way (in a lab namespace, or on 127.0.0.1).

use std::path::Path;

use anyhow::{bail, Context, Result};

/// A new ed25519 key pair at `path` (no passphrase, commented `comment`):
/// the public key's line.
pub(crate) fn keygen(path: &Path, comment: &str) -> Result<String> {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .context("ssh-keygen (package openssh-client)")?;
    if !out.status.success() {
        bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(std::fs::read_to_string(path.with_extension("pub"))?
        .trim()
        .to_string())
}

/// The `authorized_keys` line that lets `client` (a public key's line) in
/// only to run `warden rsync-gate --ssh` for `site` under `config`.
pub(crate) fn gate_key(warden: &str, config: &Path, site: &str, client: &str) -> String {
    format!(
        "command=\"{warden} --config {} rsync-gate --site {site} --ssh\",restrict {}\n",
        config.display(),
        client.trim()
    )
}

/// An `sshd_config` listening on `listen:port`: logins by key only, from
/// `keys`; `StrictModes no`, since the test's files are under /tmp.
pub(crate) fn config(
    listen: &str,
    port: u16,
    host_key: &Path,
    pid_file: &Path,
    keys: &Path,
) -> String {
    format!(
        "Port {port}\nListenAddress {listen}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
         PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n",
        host_key.display(),
        pid_file.display(),
        keys.display(),
    )
}
