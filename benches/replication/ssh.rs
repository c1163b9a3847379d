//! The replication bench's ssh mirror: a private sshd on 127.0.0.1, a
//! login user made for the run, and the gate (`warden rsync-gate --ssh`)
//! as the forced command of its key, over a config whose group reaches
//! the target directory over ssh.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use warden_agents::gate::order::PushOrder;
use warden_agents::replicate::rsync::StatedPush;
use warden_agents::replicate::{RsyncSettings, SshLogin};

use super::{run_warden, sshd, Kill, Mirror};

/// The sshd and the gate's files for [`Tool::WardenSsh`].
pub(crate) struct Ssh {
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
    // Dropped in this order: sshd first, then its user.
    _sshd: Kill,
    /// The login: a user made for this run, as docs/rsyncd.md advises (a
    /// plain `/bin/sh`, no rc files; it can write only the target).
    user: BenchUser,
}

/// A system user made for the run (`useradd`), removed when dropped.
struct BenchUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl BenchUser {
    fn new() -> Result<BenchUser> {
        let name = format!("wdnbench{}", std::process::id());
        let ok = |c: &mut Command| -> Result<()> {
            let out = c
                .output()
                .context("useradd/usermod (package passwd; as root)")?;
            if !out.status.success() {
                bail!("{c:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        };
        ok(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/bin/sh",
            &name,
        ]))?;
        // Removed by its drop from here on, whatever fails.
        let mut user = BenchUser {
            name,
            uid: u32::MAX,
            gid: 0,
        };
        // A new system user is locked ('!'): sshd refuses even its keys.
        ok(Command::new("usermod").args(["-p", "*", &user.name]))?;
        let id = |flag: &str| -> Result<u32> {
            let out = Command::new("id").args([flag, &user.name]).output()?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
        };
        user.uid = id("-u")?;
        user.gid = id("-g")?;
        Ok(user)
    }
}

impl Drop for BenchUser {
    fn drop(&mut self) {
        // Its sessions' sshd processes outlive the listener (a shared
        // connection lingers): ended first, so that no process of a deleted
        // user is left behind (u32::MAX: the uid was never read).
        if self.uid != 0 && self.uid != u32::MAX {
            let _ = Command::new("pkill")
                .args(["-KILL", "-U", &self.uid.to_string()])
                .status();
        }
        if self.uid != 0 {
            let _ = Command::new("userdel").args(["-f", &self.name]).status();
        }
    }
}

/// A private sshd on 127.0.0.1 (root by key only) whose one key runs
/// `warden rsync-gate --ssh` for site b, with a config whose group `web`
/// reaches b's directory `target` over ssh and b's agent state saying b
/// is a standby: every push passes the gate, as at a real standby.
pub(crate) fn start_sshd(w: &Path) -> Result<Ssh> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let user = BenchUser::new()?;
    // The login reads its authorized_keys, the config and b's state here.
    std::fs::set_permissions(w, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let client = sshd::keygen(&w.join("ssh-client"), "bench-client")?;
    let host = sshd::keygen(&w.join("ssh-host"), "bench-host")?;
    let known_hosts = w.join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host}\n"))?;
    let state = w.join("state-b");
    std::fs::create_dir_all(&state)?;
    std::fs::write(
        state.join("authority.json"),
        r#"{"site": "b", "groups": {"web": {"epoch": 1, "role": "standby"}}}"#,
    )?;
    let config = w.join("failover.conf");
    std::fs::write(
        &config,
        format!(
            r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "{dir}/orchestrator"
operator_token = {{ file = "{dir}/never-read" }}

[sites.a]
agent_token = {{ file = "{dir}/never-read" }}

[sites.b]
agent_token = {{ file = "{dir}/never-read" }}
state_dir = "{state}"

[frontends.fe1]
control = "127.0.0.1:7100"
token = {{ file = "{dir}/never-read" }}

[groups.web]
sites = ["a", "b"]
scheme = "frontend"

[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:8000"
backends = {{ a = "127.0.0.1:8080", b = "127.0.0.1:8081" }}

[groups.web.replication]
plan = "rsync"

[groups.web.replication.sites.a]
path = "{dir}/src-s"
ssh = "127.0.0.1:{port}"
user = "{user}"
ssh_key = "{dir}/ssh-client"
known_hosts = "{known}"

[groups.web.replication.sites.b]
path = "{dir}/target"
ssh = "127.0.0.1:{port}"
user = "{user}"
ssh_key = "{dir}/ssh-client"
known_hosts = "{known}"
"#,
            dir = w.display(),
            state = state.display(),
            known = known_hosts.display(),
            user = user.name,
        ),
    )?;
    let keys = w.join("authorized_keys");
    std::fs::write(
        &keys,
        sshd::gate_key(env!("CARGO_BIN_EXE_warden"), &config, "b", &client),
    )?;
    let conf = w.join("sshd_config");
    std::fs::write(
        &conf,
        sshd::config(
            "127.0.0.1",
            port,
            &w.join("ssh-host"),
            &w.join("sshd.pid"),
            &keys,
        ),
    )?;
    std::fs::create_dir_all("/run/sshd")?;
    let sshd = Kill(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .context("spawn /usr/sbin/sshd (package openssh-server; as root)")?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("sshd did not listen on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Ssh {
        port,
        key: w.join("ssh-client"),
        known_hosts,
        user,
        _sshd: sshd,
    })
}

pub(crate) async fn start_warden_ssh(work: &Path, src: &Path, ssh: &Ssh) -> Result<Mirror> {
    let login = SshLogin {
        path: work.join("target"),
        key: ssh.key.clone(),
        known_hosts: ssh.known_hosts.clone(),
    };
    let target = work.join("target");
    std::os::unix::fs::chown(&target, Some(ssh.user.uid), Some(ssh.user.gid))?;
    let mut s = RsyncSettings::over_ssh(src, "127.0.0.1", ssh.port, &ssh.user.name, login);
    // As an agent's push states it (b's gate refuses a push without it).
    s.stated = Some(StatedPush {
        order: PushOrder {
            group: "web".into(),
            site: "a".into(),
            epoch: 1,
        },
        now: None,
    });
    run_warden(s).await
}
