//! What every two-site deployment of the suites shares, said once: the
//! tokens (written to files, referenced from the config), the
//! `[orchestrator]`, `[detection]` and `[sites.*]` tables of the generated
//! config, and the operator's and warden's handles on the deployment
//! ([`Deploy`]). Each scheme's `deploy.rs` adds only its own tables
//! (frontends, DNS, replication) and helpers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::lab::{Lab, Operator, Warden};

/// Tokens of a deployment, each also in a file under the lab directory.
pub(crate) struct Tokens {
    pub(crate) operator: String,
    operator_file: PathBuf,
    agent_files: Vec<(String, PathBuf)>,
}

impl Tokens {
    /// The operator's token and one agent token per site, unique to the lab.
    pub(crate) fn new(lab: &Lab, sites: &[&str]) -> Result<Tokens> {
        let operator = format!("operator-{}", lab.prefix());
        let operator_file = lab.write_file("operator.token", &operator)?;
        let mut agent_files = Vec::new();
        for s in sites {
            let f = lab.write_file(&format!("{s}.token"), format!("agent-{s}-{}", lab.prefix()))?;
            agent_files.push((s.to_string(), f));
        }
        Ok(Tokens {
            operator,
            operator_file,
            agent_files,
        })
    }

    /// `{ file = "…" }` of site `site`'s agent token.
    fn agent(&self, site: &str) -> String {
        let f = self
            .agent_files
            .iter()
            .find(|(s, _)| s == site)
            .map(|(_, f)| f.display().to_string())
            .unwrap_or_else(|| panic!("no agent token for site {site}"));
        format!("{{ file = \"{f}\" }}")
    }

    /// `[orchestrator]` on `host:port`, its data under the lab directory,
    /// reconciling every second and long-polling for two.
    pub(crate) fn orchestrator(&self, lab: &Lab, host: &str, port: u16) -> String {
        format!(
            r#"[orchestrator]
listen = "{ip}:{port}"
data_dir = "{data}"
operator_token = {{ file = "{opf}" }}
reconcile_interval = "1s"
long_poll = "2s"
"#,
            ip = lab.ip(host),
            data = lab.dir().join("data").display(),
            opf = self.operator_file.display(),
        )
    }

    /// `[sites.SITE]`: its agent token, an HTTP check and endpoint on its
    /// echo service at `SITE_IP:port` (answering the site's name), then `extra` lines.
    pub(crate) fn site(&self, lab: &Lab, site: &str, port: u16, extra: &str) -> String {
        let ip = lab.ip(site);
        format!(
            r#"[sites.{site}]
agent_token = {token}
checks = [{{ name = "web", kind = "http", url = "http://{ip}:{port}/", body_contains = "{site}", timeout = "500ms" }}]
endpoints = [{{ name = "web", kind = "http", url = "http://{ip}:{port}/", timeout = "500ms" }}]
{extra}"#,
            token = self.agent(site),
        )
    }
}

/// `[detection]` of the suites: rounds of 250 ms, fall and rise 3, an agent
/// stale after 1.5 s, probes of 500 ms; the hold-down, failover budget and
/// `extra` lines vary.
pub(crate) fn detection(hold_down: &str, max_failovers: u32, extra: &str) -> String {
    format!(
        r#"[detection]
interval = "250ms"
fall = 3
rise = 3
hold_down = "{hold_down}"
agent_timeout = "1500ms"
probe_timeout = "500ms"
max_failovers = {max_failovers}
{extra}"#
    )
}

/// A deployment's handles: the operator's CLI on `ctl` and warden's processes.
pub(crate) trait Deploy {
    fn lab(&self) -> &Lab;
    fn config(&self) -> &Path;
    /// The `warden` binary.
    fn warden_bin(&self) -> &'static str;
    /// Extra environment for warden's processes.
    fn warden_env(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn cfg(&self) -> String {
        self.config().display().to_string()
    }

    /// The operator's CLI on the orchestrator host.
    fn operator(&self) -> Operator<'_> {
        Operator {
            lab: self.lab(),
            host: "ctl",
            warden: self.warden_bin(),
            config: self.config(),
        }
    }

    fn cli_ok(&self, args: &[&str]) -> Result<String> {
        self.operator().cli_ok(args)
    }

    fn status(&self) -> Result<Value> {
        self.operator().status()
    }

    fn group(&self) -> Result<Value> {
        self.operator().group()
    }

    fn wait_steady(&self, limit: Duration) -> Result<Value> {
        self.operator().wait_steady(limit)
    }

    fn wait_verdict(&self, site: &str, verdict: &str, limit: Duration) -> Result<()> {
        self.operator().wait_verdict(site, verdict, limit)
    }

    fn events(&self) -> Result<Vec<Value>> {
        self.operator().events()
    }

    /// warden's processes of this deployment.
    fn warden(&self) -> Warden<'_> {
        Warden {
            lab: self.lab(),
            warden: self.warden_bin(),
            config: self.config(),
            env: self.warden_env(),
        }
    }
}
