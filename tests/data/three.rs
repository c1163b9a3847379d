//! A group of three sites (a, b, c) with real rsync daemons behind
//! `warden rsync-gate`: a standby that was down during a failover comes
//! back cut off from the orchestrator but not from the deposed site,
//! whose replication still pushes into it at the old epoch.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::deploy::{ENTRY_PORT, SVC_PORT, WARDEN};
use crate::lab::{self, detection, secs, Deploy, Lab, Tokens};
use crate::site::tree;

const SITES: [&str; 3] = ["a", "b", "c"];
const RSYNC_USER: &str = "warden";

struct Three {
    lab: Lab,
    config: PathBuf,
}

impl Deploy for Three {
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn config(&self) -> &Path {
        &self.config
    }
    fn warden_bin(&self) -> &'static str {
        WARDEN
    }
    /// Each retry of a failing replication is a line (at info only the
    /// first failure is): the test reads why each push was refused.
    fn warden_env(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "WARDEN_LOG",
            "info,warden_agents::replicate::rsync::worker=debug",
        )]
    }
}

impl Three {
    fn new(lab: Lab) -> Result<Three> {
        let tokens = Tokens::new(&lab, &SITES)?;
        let fe = lab.write_file("frontend.token", format!("frontend-{}", lab.prefix()))?;
        let mut sites = String::new();
        let mut plan = String::from(
            "[groups.web.replication]\nplan = \"rsync\"\ndivergent = \"keep\"\n\
             resync_lag_max = \"2s\"\n",
        );
        let mut backends = Vec::new();
        for s in SITES {
            let state = lab.dir().join(format!("state-{s}"));
            sites += &tokens.site(
                &lab,
                s,
                SVC_PORT,
                &format!(
                    "state_dir = \"{}\"\n[sites.{s}.identity]\nheader = \"X-Served-By\"\n\
                     value = \"{s}\"\n",
                    state.display()
                ),
            );
            let data = lab.dir().join(format!("{s}-data"));
            std::fs::create_dir_all(&data)?;
            let pw = lab.write_file(&format!("rsync-{s}.pw"), format!("pw-{s}-right"))?;
            plan += &format!(
                "\n[groups.web.replication.sites.{s}]\npath = \"{}\"\n\
                 module = \"{}:873/data\"\nuser = \"{RSYNC_USER}\"\n\
                 password = {{ file = \"{}\" }}\n",
                data.display(),
                lab.ip(s),
                pw.display()
            );
            backends.push(format!("{s} = \"{}:{SVC_PORT}\"", lab.ip(s)));
        }
        let conf = format!(
            r#"{orchestrator}
{detection}
{sites}
[frontends.fe1]
control = "{fe_ip}:7100"
token = {{ file = "{fe}" }}

[groups.web]
sites = ["a", "b", "c"]
scheme = "frontend"
failback = "manual"
step_timeout = "30s"

[groups.web.frontend]
driver = "builtin"
backends = {{ {backends} }}
frontends = ["fe1"]
listen = "0.0.0.0:{ENTRY_PORT}"

{plan}"#,
            orchestrator = tokens.orchestrator(&lab, "ctl", 7000),
            detection = detection("3s", 5, "failover_window = \"1h\"\n"),
            fe_ip = lab.ip("fe"),
            fe = fe.display(),
            backends = backends.join(", "),
        );
        let config = lab.write_file("failover.conf", conf)?;
        Ok(Three { lab, config })
    }

    fn dir(&self, site: &str) -> PathBuf {
        self.lab.dir().join(format!("{site}-data"))
    }

    /// The site's rsync daemon, module `data` behind the gate (both execs,
    /// as docs/rsyncd.md says).
    fn start_rsyncd(&self, site: &str) -> Result<()> {
        let lab = &self.lab;
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
                "use chroot = yes\nmunge symlinks = no\nuid = root\ngid = root\n\n[data]\n \
                 path = {}\n read only = no\n auth users = {RSYNC_USER}\n secrets file = {}\n \
                 early exec = {WARDEN} --config {config} rsync-gate --site {site} --early\n \
                 pre-xfer exec = {WARDEN} --config {config} rsync-gate --site {site}\n",
                self.dir(site).display(),
                secrets.display(),
                config = self.config.display()
            ),
        )?;
        let ip = lab.ip(site);
        lab.spawn(
            site,
            &format!("rsyncd-{site}"),
            "rsync",
            [
                "--daemon".to_string(),
                "--no-detach".into(),
                format!("--address={ip}"),
                "--port=873".into(),
                format!("--config={}", conf.display()),
            ],
        )?;
        lab.wait_tcp(site, format!("{ip}:873").parse()?, secs(10))
    }

    fn group(&self) -> Result<serde_json::Value> {
        self.operator().group()
    }
}

/// a replicates to b (its first standby). b goes down (service, agent and
/// rsync daemon), then a is cut off from the orchestrator, c and the
/// frontend — not from b. The failover goes to c (b is down) at epoch 2;
/// a never hears its demote and its replication goes on. b comes back
/// still cut off from the orchestrator: its agent starts at epoch 1 (its
/// rsync daemon after it, as docs/rsyncd.md asks), and a's pushes stated at epoch 1 are refused by b's gate ("has not heard
/// from the orchestrator since it started"); a file written at a after
/// the failover never reaches b. Once b reaches the orchestrator again its
/// agent takes epoch 2 and a's pushes are refused as older. Before, a's
/// push at epoch 1 landed at b as soon as b's daemon was back.
#[test]
fn a_standby_back_from_a_failover_it_missed_takes_no_push_from_the_deposed_site() -> Result<()> {
    let Some(lab) = lab::Lab::new_or_skip(&["a", "b", "c", "ctl", "fe", "cli"]) else {
        return Ok(());
    };
    let x = Three::new(lab)?;
    let lab = &x.lab;
    std::fs::write(x.dir("a").join("before.txt"), "written before the failover")?;
    for s in SITES {
        x.start_rsyncd(s)?;
        x.warden().service(s, SVC_PORT)?;
    }
    x.warden().frontend("fe", "fe1", "frontend")?;
    x.warden().orchestrator("ctl")?;
    for s in SITES {
        x.warden().agent(s)?;
    }
    lab::eventually(secs(60), secs(0.2), || {
        let t = tree(&x.dir("b"))?;
        t.contains_key("before.txt")
            .then_some(())
            .context("a's replication has not reached b yet")
    })?;
    let epoch = x.group()?["epoch"].as_u64().context("epoch")?;

    for p in ["agent-b", "svc-b", "rsyncd-b"] {
        lab.kill(p)?;
    }
    for peer in ["ctl", "c", "fe"] {
        lab.cut_both("a", peer)?;
    }
    let g = lab::eventually(secs(90), secs(0.5), || {
        let g = x.group()?;
        (g["active"] == "c" && g["phase"] == "steady")
            .then_some(g.clone())
            .with_context(|| format!("not failed over to c yet: {g}"))
    })?;
    let moved = g["epoch"].as_u64().context("epoch")?;
    assert!(moved > epoch, "{g}");

    // b comes back, cut off from the orchestrator only: its agent first,
    // then its rsync daemon (docs/rsyncd.md: a daemon up before the agent
    // has started judges by the epoch the agent left on disk).
    lab.cut_both("b", "ctl")?;
    lab.restart("agent-b")?;
    let untold = lab.dir().join("state-b").join("untold");
    lab::eventually(secs(20), secs(0.1), || {
        untold
            .exists()
            .then_some(())
            .context("b's agent has not written its untold marker yet")
    })?;
    lab.restart("svc-b")?;
    lab.restart("rsyncd-b")?;
    std::fs::write(x.dir("a").join("after.txt"), "written by deposed a")?;
    let refused = lab.wait_log(
        "agent-a",
        "has not heard from the orchestrator since it started",
        secs(60),
    );
    assert!(
        !tree(&x.dir("b"))?.contains_key("after.txt"),
        "deposed a's write landed at b: its push stated at epoch {epoch} passed b's gate"
    );
    refused.context("a's push refused by b's gate while b's agent is untold")?;

    lab.heal_both("b", "ctl")?;
    lab.wait_log(
        "agent-a",
        &format!("but site b knows epoch {moved}"),
        secs(60),
    )
    .context("a's push refused as older once b heard the orchestrator")?;
    assert!(
        !tree(&x.dir("b"))?.contains_key("after.txt"),
        "deposed a's write landed at b"
    );
    Ok(())
}
