//! The sshd side of the data deployment ([`super::Data`] with
//! [`super::Transport::Ssh`]): the keys, the plan's site tables over ssh,
//! and each site's real sshd, whose one key for the peers is forced to
//! `warden rsync-gate --ssh`.

use std::path::PathBuf;

use anyhow::Result;

use super::Data;
use crate::lab::{self, secs};
use crate::sshd;

/// The port of each site's sshd when the sites are reached over ssh.
pub(crate) const SSH_PORT: u16 = 2222;

impl Data {
    /// The replication plan's site tables, reached over ssh: one client
    /// key for both sites, each site's host key in one `known_hosts`.
    pub(super) fn ssh_sites(lab: &lab::Lab, dirs: &[PathBuf; 2], policy: &str) -> Result<String> {
        for d in dirs {
            std::fs::create_dir_all(d)?;
        }
        let keygen = |name: &str| sshd::keygen(&lab.dir().join(name), name);
        keygen("ssh-client")?;
        let mut known = String::new();
        for site in ["a", "b"] {
            let host = keygen(&format!("ssh-host-{site}"))?;
            known += &format!("[{}]:{SSH_PORT} {host}\n", lab.ip(site));
        }
        let known = lab.write_file("known_hosts", known)?;
        let key = lab.dir().join("ssh-client");
        let table = |site: &str| {
            format!(
                "ssh = \"{}:{SSH_PORT}\"\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"{}\"\n",
                lab.ip(site),
                key.display(),
                known.display()
            )
        };
        Ok(super::plan_toml(policy, dirs, &table("a"), &table("b")))
    }

    /// The site's sshd on [`SSH_PORT`]: root logs in with the client key
    /// only, and that key's forced command is `warden rsync-gate --ssh` for
    /// the site (docs/rsyncd.md). `StrictModes no`: the lab's files are
    /// under /tmp.
    pub(crate) fn start_sshd(&self, site: &str) -> Result<()> {
        self.start_sshd_as(site, site)
    }

    /// Site `site`'s sshd and every session it started end (the listener
    /// alone would leave them, and with them the peers' shared
    /// connections); a new one starts with site `key_of`'s host key — an
    /// impostor at `site`'s address, when `key_of` is another site.
    pub(crate) fn restart_sshd_as(&self, site: &str, key_of: &str) -> Result<()> {
        self.d.lab.kill(&format!("sshd-{site}"))?;
        let ns = self.d.lab.ns(site).to_string();
        let pids = self.d.lab.run_ok(site, "ip", ["netns", "pids", &ns])?;
        for pid in pids.split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sshd" {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid])
                    .status();
            }
        }
        self.start_sshd_as(site, key_of)
    }

    fn start_sshd_as(&self, site: &str, key_of: &str) -> Result<()> {
        let lab = &self.d.lab;
        let client = std::fs::read_to_string(lab.dir().join("ssh-client.pub"))?;
        let keys = lab.write_file(
            &format!("authorized_keys-{site}"),
            sshd::gate_key(crate::deploy::WARDEN, &self.d.config, site, &client),
        )?;
        let ip = lab.ip(site);
        let conf = lab.write_file(
            &format!("sshd-{site}.conf"),
            sshd::config(
                &ip.to_string(),
                SSH_PORT,
                &lab.dir().join(format!("ssh-host-{key_of}")),
                &lab.dir().join(format!("sshd-{site}.pid")),
                &keys,
            ),
        )?;
        // sshd's privilege separation directory (the init script makes it).
        std::fs::create_dir_all("/run/sshd")?;
        lab.spawn(
            site,
            &format!("sshd-{site}"),
            "/usr/sbin/sshd",
            [
                "-D".to_string(),
                "-e".into(),
                "-f".into(),
                conf.display().to_string(),
            ],
        )?;
        lab.wait_tcp(site, format!("{ip}:{SSH_PORT}").parse()?, secs(10))
    }
}
