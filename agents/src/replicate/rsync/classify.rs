//! Turning a failed rsync run into the error that says whose move it is:
//! the daemon module's refusals (password, module, read only), the ssh
//! client's (host key, login, key file), the receiving site's gate, an
//! unreachable peer, or rsync's own failure.

use super::*;

/// Turns a failed rsync run into the error that says whose move it is.
pub(crate) fn classify(s: &RsyncSettings, code: i32, stderr: &str) -> AgentError {
    let pw = s.password.expose();
    let lines: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            if pw.is_empty() {
                l.to_string()
            } else {
                l.replace(pw, "<redacted>")
            }
        })
        .collect();
    let detail = {
        let tail = &lines[lines.len().saturating_sub(3)..];
        if tail.is_empty() {
            "no message from rsync".to_string()
        } else {
            tail.join(" / ")
        }
    };
    let target = s.target();
    if let Some(login) = &s.ssh {
        if let Some(e) = classify_ssh(s, login, &target, stderr) {
            return e;
        }
    }
    if stderr.contains(GATE_MARK) {
        // The receiving site's `warden rsync-gate` said no (a push into its
        // active site, a path or option it does not let through): not
        // "unreachable", whatever exit code the refusal left rsync with.
        return AgentError::ReplicationRefused {
            target,
            detail: lines
                .iter()
                .filter(|l| l.contains(GATE_MARK))
                .cloned()
                .collect::<Vec<_>>()
                .join(" / "),
        };
    }
    // A daemon module's own refusals; over ssh there is no module.
    let daemon = s.ssh.is_none();
    if daemon && stderr.contains("@ERROR: auth failed") {
        AgentError::ReplicationAuth {
            module: s.module.clone(),
            user: s.user.clone(),
        }
    } else if daemon && stderr.contains("@ERROR: Unknown module") {
        AgentError::ReplicationNoModule {
            target,
            module: s.module.clone(),
        }
    } else if daemon
        && (stderr.contains("module is read only") || lines.iter().any(|l| refused_write(l)))
    {
        AgentError::ReplicationReadOnly {
            target,
            module: s.module.clone(),
            detail,
        }
    } else if matches!(code, 10 | 12 | 30 | 35) || (!daemon && code == 255) {
        // ssh exits 255 when it cannot connect or is cut off.
        AgentError::ReplicationUnreachable {
            target,
            code,
            detail,
        }
    } else {
        AgentError::Rsync {
            target,
            code,
            detail,
        }
    }
}

/// Whether an rsync stderr line is a write refused where the data is
/// received (`mkstemp … Permission denied`, the daemon's uid without write
/// permission): a "Permission denied" that is not the sending side's. The
/// sender's (`[sender] send_files failed to open …`, `[sender] opendir …`)
/// is an item it could not read — of the source when pushing — which
/// rsync skips, going on with the rest (code 23): no read-only peer.
fn refused_write(line: &str) -> bool {
    line.contains("Permission denied")
        && !line.contains("[sender]")
        // (an older rsync does not tag its messages with the role)
        && !line.contains("send_files failed to open")
}

/// What every refusal of `warden rsync-gate` starts with, on whichever
/// channel the receiver shows it (the daemon's `pre-xfer exec` output, or
/// the forced command's stderr over ssh).
pub(crate) const GATE_MARK: &str = "warden rsync-gate: refused";

/// The ssh client's own failures: the host key, the login. `None` when
/// ssh got through and the failure is rsync's.
fn classify_ssh(
    s: &RsyncSettings,
    login: &SshLogin,
    target: &str,
    stderr: &str,
) -> Option<AgentError> {
    // A key file that cannot be read first: ssh then goes on without it
    // and reports the login refused.
    let why = if stderr.contains("Identity file") && stderr.contains("not accessible") {
        format!(
            "the key file {} cannot be read on this host",
            login.key.display()
        )
    } else if stderr.contains("Host key verification failed")
        || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        format!(
            "the peer's host key is not the one {} holds for {} (or none is there): \
             nothing was sent; put the site's host key in that file",
            login.known_hosts.display(),
            s.host
        )
    } else if [
        "Permission denied (publickey",
        "Permission denied (password",
        "Permission denied (keyboard",
        "Permission denied (gssapi",
        "Permission denied (hostbased",
    ]
    .iter()
    .any(|m| stderr.contains(m))
    {
        // ssh's own "user@host: Permission denied (publickey)." — not
        // rsync's errno text "Permission denied (13)".
        format!(
            "the sshd refused the login as {:?} with the key {}: add its public half to that \
             user's authorized_keys at the peer (behind `warden rsync-gate --ssh`, docs/rsyncd.md)",
            s.user,
            login.key.display()
        )
    } else {
        return None;
    };
    Some(AgentError::ReplicationLogin {
        target: target.to_string(),
        detail: why,
    })
}
