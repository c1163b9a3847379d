//! What the runbook engine needs from the world and obeys: the
//! [`RunbookEnv`] trait (commands to agents, health, routing, probes, the
//! fence command, events), the [`FenceOrder`] a fence command is told, and
//! the per-group [`Policy`].

use std::time::Duration;

use async_trait::async_trait;
use warden_config::Fencing;
use warden_proto::agent::{Command, CommandOutcome};
use warden_strategies::{Observed, SiteRoute, StrategyError};

use crate::model::{EventKind, Runbook, StepName};

/// What a fence command is told, in its environment: `WARDEN_GROUP`,
/// `WARDEN_EPOCH`, `WARDEN_SITE` (the site to fence: users are being moved
/// away from it), `WARDEN_TARGET` (the site being promoted; never to be
/// fenced) and `WARDEN_ACTION=fence`. One command serves every direction of
/// a group's moves, so it must act on `WARDEN_SITE`.
#[derive(Debug, Clone, Copy)]
pub struct FenceOrder<'a> {
    pub group: &'a str,
    pub epoch: u64,
    pub site: &'a str,
    pub target: &'a str,
}

/// What the engine needs from the world. The service implements it with
/// agents, strategies and probes; unit tests with a simulation.
#[async_trait]
pub trait RunbookEnv: Send + Sync {
    /// Wall-clock unix ms (derived from tokio time, so paused tests move it).
    fn now_ms(&self) -> u64;
    /// Whether the site's agent reported recently.
    fn agent_fresh(&self, site: &str) -> bool;
    /// Whether it reported within two of its report intervals (not silent):
    /// the fence step sends no demote to wait for to a silent site.
    fn agent_heard(&self, site: &str) -> bool {
        self.agent_fresh(site)
    }
    /// Queue a command for the site's agent and wait for its outcome.
    async fn command(
        &self,
        site: &str,
        cmd: Command,
        timeout: Duration,
    ) -> Result<CommandOutcome, String>;
    /// Wait until the site's agent reports every critical check passing.
    async fn wait_healthy(&self, site: &str, timeout: Duration) -> Result<(), String>;
    /// The group's sites, primary first (a group may have more than two).
    fn sites_of(&self, group: &str) -> Vec<String>;
    /// Wait until the site's agent reports `epoch` of `group`, or a newer
    /// one: it has it on disk, and its rsync gate refuses a push stated at
    /// an older one. `Err` says what it last reported.
    async fn wait_epoch(
        &self,
        site: &str,
        group: &str,
        epoch: u64,
        timeout: Duration,
    ) -> Result<(), String>;
    async fn activate(
        &self,
        group: &str,
        route: &SiteRoute,
        epoch: u64,
    ) -> Result<(), StrategyError>;
    async fn current(&self, group: &str) -> Result<Observed, StrategyError>;
    /// End-to-end probe through the group's public entry for users reaching
    /// `site` (its identity when it declares one); Ok(detail) when it answers so.
    async fn probe_entry(&self, group: &str, site: &str) -> Result<String, String>;
    /// Run the group's fence command against `order.site` (told in its
    /// environment, see [`FenceOrder`]).
    async fn fence_command(
        &self,
        argv: &[String],
        order: &FenceOrder<'_>,
        timeout: Duration,
    ) -> Result<String, String>;
    /// Whether the group has a replication plan.
    fn has_replication(&self, group: &str) -> bool;
    /// Tell the group's routing layer a switch is coming (`ttl` > 0) or no
    /// longer is (`ttl` zero): frontends hold new connections whose backend
    /// fails instead of closing them. Best effort, never waited for.
    fn hold(&self, _group: &str, _epoch: u64, _ttl: Duration) {}
    /// A resync or final-sync step at `site` finished: record what its agent
    /// reported (divergent items) for status and events.
    fn resync_finished(&self, _rb: &Runbook, _site: &str) {}
    /// The runbook was persisted with new progress (for status views).
    fn progress(&self, _rb: &Runbook) {}
    /// Resolves, with what was seen, once the site users are on (`rb.from`)
    /// is confirmed down while `rb` (a failback or switchover) has not begun
    /// its cut-over: the engine then gives the move up, so that the failover
    /// it needs is not held for as long as a resync may take. Never resolves
    /// by default.
    async fn active_lost(&self, _rb: &Runbook) -> String {
        std::future::pending().await
    }
    /// Record an event.
    fn event(
        &self,
        kind: EventKind,
        group: &str,
        site: Option<&str>,
        message: String,
        runbook: Option<u64>,
    );
}

/// Per-group settings the engine obeys.
#[derive(Debug, Clone)]
pub struct Policy {
    pub fencing: Fencing,
    pub fence_command: Option<Vec<String>>,
    pub step_timeout: Duration,
    /// Time allowed for the resync and final-sync steps (`resync_timeout`).
    pub resync_timeout: Duration,
}

impl Policy {
    /// The time allowed for one step.
    pub fn timeout_of(&self, step: StepName) -> Duration {
        match step {
            StepName::Resync | StepName::FinalSync => self.resync_timeout.max(self.step_timeout),
            _ => self.step_timeout,
        }
    }
}
