//! Starting warden's own processes on lab hosts, the same way for every
//! deployment: the service under test (an echo server answering its site's
//! name), agents, the orchestrator and built-in frontends. The orchestrator
//! and frontends are ready when they log their readiness line (after their
//! listeners are bound), not when a port happens to answer.

use std::path::Path;

use anyhow::Result;

use crate::lab::{patient, secs, Lab};

/// `warden` processes of one deployment (one config file).
pub(crate) struct Warden<'a> {
    pub(crate) lab: &'a Lab,
    pub(crate) warden: &'a str,
    pub(crate) config: &'a Path,
    /// Extra environment for every warden process (e.g. `WARDEN_LOG=debug`).
    pub(crate) env: &'a [(&'a str, &'a str)],
}

impl Warden<'_> {
    fn cfg(&self) -> String {
        self.config.display().to_string()
    }

    /// The site's service: `warden echo-server` answering `site` on `ip:port`.
    pub(crate) fn service(&self, site: &str, port: u16) -> Result<()> {
        let listen = format!("{}:{port}", self.lab.ip(site));
        self.lab.spawn(
            site,
            &format!("svc-{site}"),
            self.warden,
            ["echo-server", "--listen", &listen, "--text", site],
        )?;
        self.lab.wait_tcp(site, listen.parse()?, patient(secs(10)))
    }

    /// `warden agent --site SITE` on host `site`, process `agent-SITE`.
    pub(crate) fn agent(&self, site: &str) -> Result<()> {
        self.lab.spawn_env(
            site,
            &format!("agent-{site}"),
            self.warden,
            ["agent", "--config", &self.cfg(), "--site", site],
            self.env.iter().copied(),
        )?;
        Ok(())
    }

    /// `warden orchestrator` on `host`, process `orchestrator`; waits for its readiness line.
    pub(crate) fn orchestrator(&self, host: &str) -> Result<()> {
        self.lab.spawn_env(
            host,
            "orchestrator",
            self.warden,
            ["orchestrator", "--config", &self.cfg()],
            self.env.iter().copied(),
        )?;
        self.lab
            .wait_log("orchestrator", "orchestrator ready", patient(secs(15)))
            .map(|_| ())
    }

    /// `warden frontend --name NAME` on `host`, process `proc`; waits for its readiness line.
    pub(crate) fn frontend(&self, host: &str, name: &str, proc: &str) -> Result<()> {
        self.lab.spawn_env(
            host,
            proc,
            self.warden,
            ["frontend", "--config", &self.cfg(), "--name", name],
            self.env.iter().copied(),
        )?;
        self.lab
            .wait_log(proc, "frontend ready", patient(secs(15)))
            .map(|_| ())
    }
}
