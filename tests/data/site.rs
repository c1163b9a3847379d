//! The data deployment shared by `tests/data` and `benches/cutover`: the
//! failover deployment plus, per site, an rsync daemon exporting the site's
//! data directory (or an sshd whose peers' key runs `warden rsync-gate
//! --ssh`) and a `[groups.web.replication]` rsync plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::deploy::{Deployment, Knobs, HOSTS};
use crate::lab::Deploy;
use crate::lab::{self, secs};

#[path = "ssh.rs"]
pub(crate) mod ssh;

const RSYNC_USER: &str = "warden";

/// How the sites reach each other's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// An rsync daemon module per site.
    Daemon,
    /// rsync over ssh: an sshd per site, the peers' key behind the gate.
    Ssh,
}

pub(crate) struct Data {
    pub d: Deployment,
    /// Each site's replicated directory: `[a, b]`.
    dirs: [PathBuf; 2],
    pub transport: Transport,
}

impl Data {
    /// A deployment whose group `web` has an rsync plan with `policy`;
    /// `password_b` is what the config says b's module wants (the daemon
    /// wants `pw-b-right`).
    pub(crate) fn new(policy: &str, password_b: &str) -> Option<Data> {
        Self::with_failback(policy, password_b, "auto")
    }

    pub(crate) fn with_failback(
        policy: &str,
        password_b: &str,
        failback: &'static str,
    ) -> Option<Data> {
        let lab = lab::Lab::new_or_skip(HOSTS)?;
        let dir = lab.dir().to_path_buf();
        let dirs = [dir.join("a-data"), dir.join("b-data")];
        Some(Self::build(
            lab, dirs, policy, password_b, failback, "true", "true",
        ))
    }

    /// As [`Data::new`] with `policy`, and b's directory declared a volume
    /// of its own (`mount_point = true`).
    pub(crate) fn with_b_mount_point(policy: &str) -> Option<Data> {
        let lab = lab::Lab::new_or_skip(HOSTS)?;
        let dir = lab.dir().to_path_buf();
        let dirs = [dir.join("a-data"), dir.join("b-data")];
        let mut extra = Self::daemon_sites(&lab, &dirs, policy, "pw-b-right");
        // b's table is the plan's last (and the plan the config's last):
        // the key lands in it.
        extra.push_str("mount_point = true\n");
        Some(Self::deploy(
            lab,
            dirs,
            extra,
            "auto",
            "true",
            "true",
            Transport::Daemon,
        ))
    }

    /// A deployment on `lab` whose sites replicate `dirs` (`[a, b]`, made
    /// here when missing); `promote` and `demote` are both sites' promote
    /// and demote hooks (shell snippets).
    pub(crate) fn build(
        lab: lab::Lab,
        dirs: [PathBuf; 2],
        policy: &str,
        password_b: &str,
        failback: &'static str,
        promote: &str,
        demote: &str,
    ) -> Data {
        let extra = Self::daemon_sites(&lab, &dirs, policy, password_b);
        Self::deploy(
            lab,
            dirs,
            extra,
            failback,
            promote,
            demote,
            Transport::Daemon,
        )
    }

    /// A deployment whose sites reach each other over ssh (user root, the
    /// peers' key a forced `warden rsync-gate --ssh`), with `policy`.
    pub(crate) fn over_ssh(policy: &str) -> Option<Data> {
        let lab = lab::Lab::new_or_skip(HOSTS)?;
        let dir = lab.dir().to_path_buf();
        let dirs = [dir.join("a-data"), dir.join("b-data")];
        let extra = Self::ssh_sites(&lab, &dirs, policy).expect("ssh keys");
        Some(Self::deploy(
            lab,
            dirs,
            extra,
            "auto",
            "true",
            "true",
            Transport::Ssh,
        ))
    }

    fn deploy(
        lab: lab::Lab,
        dirs: [PathBuf; 2],
        extra: String,
        failback: &'static str,
        promote: &str,
        demote: &str,
        transport: Transport,
    ) -> Data {
        let d = Deployment::new(
            lab,
            Knobs {
                hold_down: "3s",
                max_failovers: 1000,
                failback,
                extra,
                promote_a: promote.into(),
                promote_b: promote.into(),
                demote_a: demote.into(),
                demote_b: demote.into(),
                ..Knobs::default()
            },
        )
        .expect("deployment");
        Data { d, dirs, transport }
    }

    /// The replication plan's site tables, reached through rsync daemon
    /// modules; `password_b` is what b's table says.
    fn daemon_sites(lab: &lab::Lab, dirs: &[PathBuf; 2], policy: &str, password_b: &str) -> String {
        for d in dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let pwa = lab.write_file("rsync-a.pw", "pw-a-right").unwrap();
        let pwb = lab.write_file("rsync-b.pw", password_b).unwrap();
        let table = |site: &str, pw: &Path| {
            format!(
                "module = \"{}:873/data\"\nuser = \"{RSYNC_USER}\"\npassword = {{ file = \"{}\" }}\n",
                lab.ip(site),
                pw.display()
            )
        };
        plan_toml(policy, dirs, &table("a", &pwa), &table("b", &pwb))
    }

    pub(crate) fn dir(&self, site: &str) -> PathBuf {
        match site {
            "a" => self.dirs[0].clone(),
            "b" => self.dirs[1].clone(),
            other => panic!("no data directory for site {other}"),
        }
    }

    /// The site's rsync daemon: module `data` = the site's directory.
    /// As docs/rsyncd.md asks: `use chroot = yes` and `munge symlinks = no`,
    /// so symlinks arrive byte for byte (warden refuses a module that munges),
    /// and `warden rsync-gate` as the module's `early exec` (`--early`: the
    /// pusher's stated order kept) and `pre-xfer exec`, so a push into the
    /// site while it is active, or stated at an older epoch than the site
    /// knows, is refused.
    pub(crate) fn start_rsyncd(&self, site: &str) -> Result<()> {
        self.start_rsyncd_with(site, &[])
    }

    /// [`Data::start_rsyncd`] with more daemon options (`--bwlimit=…`).
    pub(crate) fn start_rsyncd_with(&self, site: &str, extra: &[&str]) -> Result<()> {
        let lab = &self.d.lab;
        let secrets = lab.write_file(
            &format!("rsyncd-{site}.secrets"),
            format!("{RSYNC_USER}:pw-{site}-right\n"),
        )?;
        std::fs::set_permissions(
            &secrets,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        let conf = lab.write_file(
            &format!("rsyncd-{site}.conf"),
            format!(
                "use chroot = yes\nmunge symlinks = no\nsocket options = TCP_NODELAY\nuid = root\ngid = root\nmax connections = 20\n\n[data]\n path = {}\n read only = no\n auth users = {RSYNC_USER}\n secrets file = {}\n early exec = {warden} --config {config} rsync-gate --site {site} --early\n pre-xfer exec = {warden} --config {config} rsync-gate --site {site}\n",
                self.dir(site).display(),
                secrets.display(),
                warden = crate::deploy::WARDEN,
                config = self.d.config.display()
            ),
        )?;
        let ip = lab.ip(site);
        let mut args = vec![
            "--daemon".to_string(),
            "--no-detach".into(),
            format!("--address={ip}"),
            "--port=873".into(),
            format!("--config={}", conf.display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        lab.spawn(site, &format!("rsyncd-{site}"), "rsync", args)?;
        lab.wait_tcp(site, format!("{ip}:873").parse()?, secs(10))
    }

    /// The site's receiver: its rsync daemon or its sshd.
    fn start_receiver(&self, site: &str) -> Result<()> {
        match self.transport {
            Transport::Daemon => self.start_rsyncd(site),
            Transport::Ssh => self.start_sshd(site),
        }
    }

    pub(crate) fn start(&self) -> Result<()> {
        self.start_receiver("a")?;
        self.start_receiver("b")?;
        self.d.start_all()
    }

    /// The whole site: service, agent, rsync daemon or sshd — and over ssh
    /// every session sshd started there (they outlive the listener).
    pub(crate) fn kill_site(&self, site: &str) -> Result<()> {
        let receiver = match self.transport {
            Transport::Daemon => "rsyncd",
            Transport::Ssh => "sshd",
        };
        for p in ["agent", "svc", receiver] {
            self.d.lab.kill(&format!("{p}-{site}"))?;
        }
        if self.transport == Transport::Ssh {
            let ns = self.d.lab.ns(site).to_string();
            let pids = self
                .d
                .lab
                .run_ok(site, "ip", ["netns", "pids", &ns])
                .unwrap_or_default();
            let pids: Vec<&str> = pids.split_whitespace().collect();
            if !pids.is_empty() {
                let _ = std::process::Command::new("kill")
                    .arg("-KILL")
                    .args(&pids)
                    .status();
            }
        }
        Ok(())
    }

    /// Every warden log of the deployment.
    pub(crate) fn logs(&self) -> String {
        ["agent-a", "agent-b", "orchestrator", "frontend"]
            .iter()
            .map(|n| self.d.lab.log(n))
            .collect()
    }

    pub(crate) fn restart_site(&self, site: &str) -> Result<()> {
        self.start_receiver(site)?;
        self.d.start_service(site)?;
        self.d.start_agent(site)
    }

    pub(crate) fn write(&self, site: &str, rel: &str, body: &str) -> Result<()> {
        let p = self.dir(site).join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, body).with_context(|| format!("write {}", p.display()))
    }

    /// `count` blocks of 1 MiB of varied bytes at `site`, as `DIR/I.bin`.
    pub(crate) fn write_blocks(&self, site: &str, dir: &str, count: usize) -> Result<()> {
        for i in 0..count {
            let block: Vec<u8> = (0..1024 * 1024)
                .map(|j| ((i * 31 + j) % 251) as u8)
                .collect();
            let p = self.dir(site).join(format!("{dir}/{i}.bin"));
            std::fs::create_dir_all(p.parent().expect("a parent"))?;
            std::fs::write(&p, block).with_context(|| format!("write {}", p.display()))?;
        }
        Ok(())
    }

    /// What leaves `site` shaped to `rate` (tc tbf on its link), a slow WAN.
    pub(crate) fn shape(&self, site: &str, rate: &str) -> Result<()> {
        self.d.lab.run_ok(
            site,
            "tc",
            [
                "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "32kbit",
                "latency", "400ms",
            ],
        )?;
        Ok(())
    }

    /// The rsync clients running at `site` whose command line `pick` takes.
    pub(crate) fn rsync_clients(&self, site: &str, pick: impl Fn(&str) -> bool) -> Vec<String> {
        let ns = self.d.lab.ns(site).to_string();
        let pids = self
            .d
            .lab
            .run_ok(site, "ip", ["netns", "pids", &ns])
            .unwrap_or_default();
        let mut out = Vec::new();
        for pid in pids.split_whitespace() {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.starts_with("rsync ") && pick(&cmd) {
                out.push(format!("{pid}: {cmd}"));
            }
        }
        out
    }

    pub(crate) fn replication(&self) -> Result<Value> {
        Ok(self.d.group()?["replication"].clone())
    }

    pub(crate) fn wait_same(&self, limit: Duration) -> Result<BTreeMap<String, Vec<u8>>> {
        lab::eventually(limit, secs(0.2), || {
            let (a, b) = (tree(&self.dir("a"))?, tree(&self.dir("b"))?);
            if a == b {
                Ok(a)
            } else {
                bail!(
                    "a and b differ: only/changed at a {:?}, only/changed at b {:?}",
                    diff(&a, &b),
                    diff(&b, &a)
                )
            }
        })
    }
}

/// Relative path → content of every file under `root`.
pub(crate) fn tree(root: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    Ok(out)
}

pub(crate) fn diff(x: &BTreeMap<String, Vec<u8>>, y: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    x.iter()
        .filter(|(k, v)| y.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .take(10)
        .collect()
}

pub(crate) fn text(m: &BTreeMap<String, Vec<u8>>, k: &str) -> Option<String> {
    m.get(k).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The rsync plan of group "web": the policy, the lab's limits, and each
/// site's directory with its transport lines (`a`, `b`: a daemon module or
/// an ssh login).
pub(crate) fn plan_toml(policy: &str, dirs: &[PathBuf; 2], a: &str, b: &str) -> String {
    format!(
        "\n[groups.web.replication]\nplan = \"rsync\"\ndivergent = \"{policy}\"\n\
         resync_lag_max = \"2s\"\nresync_timeout = \"120s\"\n\n\
         [groups.web.replication.sites.a]\npath = \"{}\"\n{a}\n\
         [groups.web.replication.sites.b]\npath = \"{}\"\n{b}",
        dirs[0].display(),
        dirs[1].display(),
    )
}
