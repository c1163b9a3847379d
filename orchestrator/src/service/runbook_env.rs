//! The live [`RunbookEnv`] (`Env`): what a runbook's steps do through the
//! service — commands to agents and the wait for their outcomes, health,
//! holds, routes through the strategies, the fence command, events — each
//! outward action only under the licence of the runbook's own term.

use super::*;
use crate::runbook::FenceOrder;

/// The runbook environment of the live service.
pub(super) struct Env {
    pub(super) shared: Arc<Shared>,
    /// The term the runbook's task runs under.
    pub(super) term: CancellationToken,
}

impl Env {
    /// Before a step's outward action (a route, a fence command): without
    /// the licence of the runbook's own term nothing is done, and the step
    /// waits here until its task is cancelled — a licence that lapsed (a
    /// leader paused past its lease, resumed before its election loop
    /// stepped down) has cancelled its term when this looked at it.
    async fn licensed(&self) {
        if !self.shared.licence.holds(&self.term) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl RunbookEnv for Env {
    fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    fn agent_fresh(&self, site: &str) -> bool {
        let st = self.shared.lock();
        st.detector.agent_fresh(&st.evidence, site, Instant::now())
    }

    fn agent_heard(&self, site: &str) -> bool {
        let st = self.shared.lock();
        st.detector.agent_heard(&st.evidence, site, Instant::now())
    }

    async fn command(
        &self,
        site: &str,
        cmd: Command,
        timeout: Duration,
    ) -> Result<CommandOutcome, String> {
        let cmd = cmd.to_site(site);
        let id = cmd.id.clone();
        {
            let mut st = self.shared.lock();
            if let Some(o) = st.ledger.outcome(&id) {
                // An earlier attempt's answer (a resumed step): its outcome
                // stands, but the checks it carries are as old as that
                // attempt, so they cannot end a promote; reports will.
                return Ok(CommandOutcome {
                    checks: None,
                    ..o.clone()
                });
            }
            let runbook = st.groups.get(&cmd.group).and_then(|g| g.runbook);
            st.ledger.queue(cmd, runbook);
        }
        self.shared.command_tick.send_modify(|v| *v += 1);
        let mut rx = self.shared.report_tick.subscribe();
        let deadline = Instant::now() + timeout;
        // A command whose agent stops reporting fails early (a resync can be
        // allowed an hour; a dead returning site must not hold it that long).
        let grace = self.shared.cfg.detection.agent_timeout;
        let mut silent_since: Option<Instant> = None;
        loop {
            {
                let st = self.shared.lock();
                match st.ledger.state(&id) {
                    Some(crate::commands::CommandState::Finished(o)) => return Ok(o.clone()),
                    Some(crate::commands::CommandState::Withdrawn(why)) => {
                        return Err(format!("{id} was withdrawn: {why}"))
                    }
                    _ => {}
                }
            }
            if self.agent_fresh(site) {
                silent_since = None;
            } else {
                let since = *silent_since.get_or_insert_with(Instant::now);
                if since.elapsed() > grace {
                    return Err(format!(
                        "{site}'s agent stopped reporting while {id} was running (no report for over {:.1}s)",
                        (grace * 2).as_secs_f64()
                    ));
                }
            }
            let wake = deadline.min(Instant::now() + Duration::from_millis(250));
            match tokio::time::timeout_at(wake, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("orchestrator shutting down".into()),
                Err(_) if Instant::now() < deadline => {}
                Err(_) => {
                    let fresh = self.agent_fresh(site);
                    return Err(format!(
                        "no outcome from {site}'s agent within {:.1}s (agent {})",
                        timeout.as_secs_f64(),
                        if fresh { "reporting" } else { "not reporting" }
                    ));
                }
            }
        }
    }

    async fn wait_healthy(&self, site: &str, timeout: Duration) -> Result<(), String> {
        // A report received after this moment, with every critical check passing.
        let since = Instant::now();
        let mut rx = self.shared.report_tick.subscribe();
        let deadline = since + timeout;
        let mut last = "no report yet".to_string();
        loop {
            {
                let st = self.shared.lock();
                if let Some((at, rep)) = st.evidence.report(site) {
                    if *at >= since {
                        let bad: Vec<String> = rep
                            .checks
                            .iter()
                            .filter(|c| c.critical && !c.ok)
                            .map(|c| format!("{}: {}", c.name, c.detail))
                            .collect();
                        if bad.is_empty() {
                            return Ok(());
                        }
                        last = bad.join("; ");
                    }
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("orchestrator shutting down".into()),
                Err(_) => return Err(last),
            }
        }
    }

    fn sites_of(&self, group: &str) -> Vec<String> {
        self.shared
            .cfg
            .groups
            .get(group)
            .map(|g| g.site_names())
            .unwrap_or_default()
    }

    async fn wait_epoch(
        &self,
        site: &str,
        group: &str,
        epoch: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        // Any report showing it will do, however old: the agent writes an
        // epoch to disk before it reports it, and never takes one back.
        let mut rx = self.shared.report_tick.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            let last = {
                let st = self.shared.lock();
                st.evidence.report(site).map(|(_, rep)| {
                    rep.authority
                        .iter()
                        .find(|a| a.group == group)
                        .map(|a| a.epoch)
                })
            };
            let last = match last {
                Some(Some(e)) if e >= epoch => return Ok(()),
                Some(Some(e)) => format!("it last reported epoch {e}"),
                Some(None) => format!("its reports say nothing of group {group}"),
                None => "no report from it".to_string(),
            };
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("orchestrator shutting down".into()),
                Err(_) => return Err(last),
            }
        }
    }

    fn hold(&self, group: &str, epoch: u64, ttl: Duration) {
        // A cut-over: the active site is about to be demoted (or is
        // confirmed down); new users wait for the switch.
        self.shared.order_hold(group, epoch, ttl, true);
    }

    async fn activate(
        &self,
        group: &str,
        route: &SiteRoute,
        epoch: u64,
    ) -> Result<(), StrategyError> {
        self.licensed().await;
        let s = self
            .shared
            .strategies
            .get(group)
            .ok_or_else(|| StrategyError::Config(format!("no strategy for group {group}")))?;
        // Under the term's gate: the strategy may read before it writes,
        // and the licence may lapse meanwhile (see `warden_strategies::gate`).
        let Some(r) = self
            .shared
            .licence
            .gated(&self.term, s.activate(route, epoch))
            .await
        else {
            // Whatever the call did or refused is the next holder's to
            // find: nothing is recorded, the step waits to be cancelled.
            return std::future::pending().await;
        };
        self.shared.sync_provider_stops(Some(group));
        r
    }

    async fn current(&self, group: &str) -> Result<Observed, StrategyError> {
        let s = self
            .shared
            .strategies
            .get(group)
            .ok_or_else(|| StrategyError::Config(format!("no strategy for group {group}")))?;
        // Under the term's gate, as `activate`: a read may leave an order
        // for later (the end of an HAProxy drain it found unended), which
        // must not outlive the runbook's licence.
        match self.shared.licence.gated(&self.term, s.current()).await {
            Some(r) => r,
            // The next holder resumes the step: this one waits to be cancelled.
            None => std::future::pending().await,
        }
    }

    async fn probe_entry(&self, group: &str, site: &str) -> Result<String, String> {
        self.shared.probe_entry(group, site).await
    }

    async fn fence_command(
        &self,
        argv: &[String],
        order: &FenceOrder<'_>,
        timeout: Duration,
    ) -> Result<String, String> {
        self.licensed().await;
        super::fence::run(argv, order, timeout, &self.shared.run_dir).await
    }

    async fn active_lost(&self, rb: &Runbook) -> String {
        // Checked once per detection round, where the verdict can change.
        let every = self
            .shared
            .cfg
            .detection
            .interval
            .max(Duration::from_millis(50));
        loop {
            {
                let st = self.shared.lock();
                // In maintenance no failover would follow: the operator's
                // move runs on (they decide).
                let maintenance = st.groups.get(&rb.group).is_some_and(|g| g.maintenance);
                if let Some(t) = st.detector.track(&rb.from) {
                    if t.confirmed_down && !maintenance {
                        return match &t.last {
                            Some(Verdict::Down(why)) => format!("{} rounds: {why}", t.down_rounds),
                            Some(v) => format!("its last verdict: {}", v.label()),
                            None => "no verdict yet".to_string(),
                        };
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    fn has_replication(&self, group: &str) -> bool {
        self.shared
            .cfg
            .groups
            .get(group)
            .is_some_and(|g| g.replication.is_some())
    }

    fn resync_finished(&self, rb: &Runbook, site: &str) {
        self.shared.record_divergent(rb, site);
    }

    fn progress(&self, rb: &Runbook) {
        self.shared.lock().runbooks.insert(rb.id, rb.clone());
    }

    fn event(
        &self,
        kind: EventKind,
        group: &str,
        site: Option<&str>,
        message: String,
        runbook: Option<u64>,
    ) {
        self.shared
            .event(kind, Some(group), site, message, vec![], runbook);
    }
}
