//! The `source` role: starting continuous replication toward the peer
//! (kept when already running, re-keyed or rebuilt for a Swift plan at a
//! newer epoch), stopping it (and this site's `X-Container-Sync-To`), and
//! the agent's shutdown.

use super::*;

impl Replication {
    pub(super) async fn start(
        &self,
        g: &GroupRepl,
        cmd: &Command,
        shutdown: &CancellationToken,
    ) -> Result<String, String> {
        let peer = self.peer_of(cmd)?;
        // The Swift plans' replicators are built for the start's epoch: the
        // container-sync plan keys both sides for it (a newer start toward
        // the same peer sets the new key: the old one is what a deposed
        // site would push with), the `swift` copier stops at a destination
        // fenced at its epoch or newer (a newer start builds a new copier).
        let rekeyed = matches!(
            g.cfg.plan,
            ReplicationPlan::SwiftContainerSync | ReplicationPlan::Swift
        );
        let mut rekey = None;
        {
            let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
            if let Role::Source {
                peer: p,
                epoch: e,
                order,
                ..
            } = &mut run.role
            {
                if *p == peer {
                    if !rekeyed || *e == cmd.epoch {
                        *e = cmd.epoch;
                        // Its pushes state the new order's epoch, and are
                        // judged by it (`OrderCheck`).
                        if let Some(o) = order {
                            o.raise(cmd.epoch);
                        }
                        return Ok(format!(
                            "replication {} → {peer} already running",
                            self.site
                        ));
                    }
                    rekey = Some(*e);
                }
            }
        }
        // A header change still retried (a demote's removal of Sync-To)
        // must not land after this start's. The `swift` plan's is a
        // promote's fence, which this start (the same active site) must
        // not cut short.
        if g.cfg.plan != ReplicationPlan::Swift {
            self.headers_settled(g).await;
        }
        if rekey.is_some() && g.cfg.plan == ReplicationPlan::SwiftContainerSync {
            // Its watcher stops; its headers stay (the new start sets them
            // again: removing Sync-To would make Swift sync every object again).
            let old = std::mem::replace(&mut lock(&g.run).role, Role::Idle);
            if let Role::Source { cancel, .. } = old {
                cancel.cancel();
            }
        } else {
            self.stop_role(g).await;
        }
        let order = self.order_check(&cmd.group, cmd.epoch);
        let replicator = plan::replicator_checked(
            &self.config,
            &cmd.group,
            &self.site,
            &peer,
            cmd.epoch,
            &g.hold,
            order.clone(),
        )
        .map_err(|e| e.to_string())?;
        // Lives as long as the replicator; a stop cancels it (the initial pass too).
        let cancel = shutdown.child_token();
        let started = replicator.start(cancel.clone()).await;
        if let Err(e) = started {
            cancel.cancel();
            return Err(match e {
                AgentError::ReplicationCancelled => format!(
                    "replication {} → {peer} interrupted before its initial pass ended",
                    self.site
                ),
                e => format!("replication {} → {peer} cannot start: {e}", self.site),
            });
        }
        info!(group = %cmd.group, peer = %peer, plan = g.cfg.plan.as_str(), epoch = cmd.epoch, "replication started");
        let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
        run.role = Role::Source {
            peer: peer.clone(),
            epoch: cmd.epoch,
            order,
            replicator,
            cancel,
        };
        let held = g
            .hold
            .held()
            .map(|h| format!("; held: {h}"))
            .unwrap_or_default();
        if let (Some(old), ReplicationPlan::Swift) = (rekey, g.cfg.plan) {
            return Ok(format!(
                "replication {} → {peer} restarted for epoch {} (its copier was for epoch {old}) (swift){held}",
                self.site, cmd.epoch
            ));
        }
        if let Some(old) = rekey {
            return Ok(format!(
                "replication {} → {peer} re-keyed from epoch {old} to {} ({})",
                self.site,
                cmd.epoch,
                g.cfg.plan.as_str()
            ));
        }
        Ok(format!(
            "replication {} → {peer} started ({}){held}",
            self.site,
            g.cfg.plan.as_str()
        ))
    }

    /// Stops the group's replication from this site: the role's replicator,
    /// and with the `swift-container-sync` plan this site's
    /// `X-Container-Sync-To`, whatever the role (a restarted agent
    /// remembers none, and Swift's daemon pushes as long as the header is
    /// there). What to say in the outcome.
    pub(super) async fn stop(&self, g: &GroupRepl, group: &str) -> String {
        let stopped = match self.stop_role(g).await {
            Some(said) => said,
            None => self
                .stop_unheld(g, group)
                .await
                .unwrap_or_else(|| format!("no replication was running from {}", self.site)),
        };
        match self.remove_sync_to(g, group).await {
            Some(said) => format!("{stopped}; {said}"),
            None => stopped,
        }
    }

    /// The `command` plan's `stop` when this agent holds no replicator of
    /// the group — it restarted since its start, or a demote or stop
    /// cancelled the start before it ended: what the `start` command
    /// launched (a daemon, a `systemctl start`ed unit) may still push, and
    /// only the plan's `stop` ends it (it must be idempotent: "after an
    /// agent restart, `stop` runs even if this process never started").
    /// Run toward each other site of the group, as the start's peer is not
    /// known. What to say; `None` for the other plans.
    pub(super) async fn stop_unheld(&self, g: &GroupRepl, group: &str) -> Option<String> {
        if g.cfg.plan != ReplicationPlan::Command {
            return None;
        }
        let peers: Vec<String> = self
            .config
            .groups
            .get(group)?
            .site_names()
            .into_iter()
            .filter(|s| *s != self.site)
            .collect();
        let mut said = Vec::new();
        for peer in peers {
            match plan::command_stopper(&self.config, group, &self.site, &peer) {
                Ok(p) => {
                    p.stop().await;
                    said.push(format!("its stop command run toward {peer}"));
                }
                Err(e) => said.push(format!("no stop command toward {peer}: {e}")),
            }
        }
        Some(format!(
            "no replicator of {group} held at {} (restarted, or its start cut short): {}",
            self.site,
            said.join("; ")
        ))
    }

    /// Ends the role's replicator, if it is `source`: what to say, `None`
    /// when it was not.
    pub(super) async fn stop_role(&self, g: &GroupRepl) -> Option<String> {
        let role = {
            let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut run.role, Role::Idle)
        };
        // The held pass (if any) ends with its role; a new one checks again.
        g.hold.passed();
        match role {
            Role::Source {
                peer,
                replicator,
                cancel,
                ..
            } => {
                replicator.stop().await;
                cancel.cancel();
                Some(format!("replication {} → {peer} stopped", self.site))
            }
            _ => None,
        }
    }

    /// Stops every continuous replicator (agent shutdown).
    pub async fn shutdown(&self) {
        for g in self.groups.values() {
            self.stop_role(g).await;
            // a change not landed stays on disk for the next process
            self.stop_header_retry(g).await;
        }
    }
}
