//! The operator's view of a deployment: the real `warden` CLI run on a lab
//! host with the deployment's config (`status`, `events`, ...), parsed from
//! its `--json` output. Shared by every integration deployment and bench.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::lab::{eventually, secs, Lab};

/// `warden --config CONFIG ...` on `host`.
pub(crate) struct Operator<'a> {
    pub lab: &'a Lab,
    pub host: &'a str,
    pub warden: &'a str,
    pub config: &'a Path,
}

impl Operator<'_> {
    /// Run the CLI; the output whatever the exit status.
    pub(crate) fn cli(&self, args: &[&str]) -> Result<Output> {
        let mut all = vec!["--config".to_string(), self.config.display().to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        self.lab.run(self.host, self.warden, all)
    }

    /// Run the CLI; its stdout, or an error with both streams.
    pub(crate) fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "warden {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `warden status --json`.
    pub(crate) fn status(&self) -> Result<Value> {
        Ok(serde_json::from_str(&self.cli_ok(&["status", "--json"])?)?)
    }

    /// The first group of `warden status --json`.
    pub(crate) fn group(&self) -> Result<Value> {
        self.status()?["groups"]
            .as_array()
            .and_then(|g| g.first().cloned())
            .context("no group in status")
    }

    /// `warden events --json`, oldest first.
    pub(crate) fn events(&self) -> Result<Vec<Value>> {
        let v: Value = serde_json::from_str(&self.cli_ok(&["events", "--json"])?)?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Wait until the first group runs no runbook (phase `steady`): a move's
    /// users may reach the new site before its runbook has verified and
    /// closed, and the next order is refused while one runs.
    pub(crate) fn wait_steady(&self, limit: Duration) -> Result<Value> {
        eventually(limit, secs(0.25), || {
            let g = self.group()?;
            if g["phase"] == "steady" {
                Ok(g)
            } else {
                bail!("group phase {}, want steady", g["phase"])
            }
        })
    }

    /// Wait until the first group reports `verdict` for `site` (a site or, in
    /// hybrid groups, whatever `sites` lists).
    pub(crate) fn wait_verdict(&self, site: &str, verdict: &str, limit: Duration) -> Result<()> {
        eventually(limit, secs(0.25), || {
            let g = self.group()?;
            let s = g["sites"]
                .as_array()
                .and_then(|ss| ss.iter().find(|s| s["name"] == site).cloned())
                .context("site missing")?;
            if s["verdict"] == verdict {
                Ok(())
            } else {
                bail!(
                    "site {site} verdict {} ({}), want {verdict}",
                    s["verdict"],
                    s["reason"]
                )
            }
        })
    }
}
