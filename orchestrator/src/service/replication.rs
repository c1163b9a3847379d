//! Replication orders of every detection round (only the active site
//! replicates, toward its standby), the replication status agents report, and
//! the RPO.

use super::*;

impl Shared {
    /// The latest replication status `site`'s agent reported for `group`, with the report's age.
    pub fn replication_status(
        st: &State,
        site: &str,
        group: &str,
    ) -> Option<(Duration, ReplicationStatus)> {
        let (at, rep) = st.evidence.report(site)?;
        let r = rep.replication.iter().find(|r| r.group == group)?;
        Some((at.elapsed(), r.clone()))
    }

    /// Keep continuous replication as decided (run from every detection
    /// round): in a steady group whose replication is not paused, the active
    /// site replicates to its standby; no other site replicates. Commands
    /// carry the agent's start time in their id, so each agent process is
    /// asked once per epoch (a fatal error is not retried in a loop: it shows
    /// in `warden status`).
    pub(crate) fn replication_round_locked(&self, st: &mut State) {
        if !self.licence.is_held() {
            return;
        }
        let mut queued = false;
        let now_ms = self.clock.now_ms();
        // Only the groups with a replication plan (no name copied for the others).
        let names: Vec<String> = st
            .groups
            .keys()
            .filter(|n| {
                self.cfg
                    .groups
                    .get(n.as_str())
                    .is_some_and(|gc| gc.replication().is_some())
            })
            .cloned()
            .collect();
        for name in names {
            let Some(gc) = self.cfg.groups.get(&name) else {
                continue;
            };
            let Some(rc) = gc.replication() else {
                continue;
            };
            let Some(g) = st.groups.get(&name).cloned() else {
                continue;
            };
            if g.phase == Phase::Running || self.held_locked(st, &name).is_some() {
                continue;
            }
            // Orders carry only epochs the store holds (see `authority.rs`).
            if super::persist::durable_epoch(&self.writer.durable(), &name, g.epoch) < g.epoch {
                continue;
            }
            let sites = gc.site_names();
            let standby = sites.iter().find(|s| **s != g.active).cloned();
            let want_source = g.replication_paused_since_unix_ms.is_none();
            for site in &sites {
                let Some((age, r)) = Self::replication_status(st, site, &name) else {
                    continue;
                };
                if age > self.cfg.detection.agent_timeout {
                    continue;
                }
                let report = st.evidence.report(site).map(|(_, r)| r);
                let started = report.map(|r| r.started_unix_ms).unwrap_or(0);
                // A site that forgot its role refuses to push until it is
                // promoted again (`authority_check_locked`): asking now
                // would spend this agent process's one start order.
                let forgot = report.is_some_and(|r| {
                    r.authority
                        .iter()
                        .any(|a| a.group == name && a.role == "unknown")
                });
                let is_active = *site == g.active;
                let (kind, peer) = if is_active && want_source {
                    let Some(peer) = standby.clone() else {
                        continue;
                    };
                    if forgot {
                        continue;
                    }
                    // Already pushing to the standby under this epoch's
                    // order. Under an older one (the group's epoch rose
                    // while the same site stayed active: a switchover or
                    // failback given up before its demote, a split
                    // mended, `adopt-epoch`), its pushes no longer stand at
                    // the site (it knows the newer epoch): the start at
                    // this epoch raises the kept replicator's order.
                    if r.role == "source"
                        && r.peer.as_deref() == Some(peer.as_str())
                        && r.epoch >= g.epoch
                    {
                        continue;
                    }
                    if r.role == "resync" {
                        continue;
                    }
                    (CommandKind::StartReplication, Some(peer))
                } else if r.role == "source" {
                    (CommandKind::StopReplication, None)
                } else {
                    continue;
                };
                let mut cmd = Command::new(&name, g.epoch, kind).to_site(site);
                cmd.id = format!("{}:{started}", cmd.id);
                cmd.peer = peer.clone();
                if st.ledger.state(&cmd.id).is_some() {
                    continue;
                }
                st.ledger.queue(cmd, None);
                queued = true;
                let msg = match kind {
                    CommandKind::StartReplication => format!(
                        "asking {site} to replicate to {} ({}); it reported {}",
                        peer.unwrap_or_default(),
                        rc.plan.as_str(),
                        r.role
                    ),
                    _ => format!(
                        "asking {site} to stop replicating: {} is the active site{}",
                        g.active,
                        if want_source {
                            ""
                        } else {
                            " and replication is paused until failback"
                        }
                    ),
                };
                self.event_locked(
                    st,
                    EventKind::Replication,
                    Some(&name),
                    Some(site),
                    msg,
                    vec![],
                    None,
                );
            }
            // RPO watch: over rpo_max → one event; back under → one event.
            // Not judged while the active site may simply not have
            // reported to this process yet (within `agent_timeout` of its
            // start): an "unknown RPO" then is this process's, not the
            // site's — it raised a false alert and its "back under" at
            // every start. A new leader on etcd has heard the agents all
            // along.
            let unheard = st.evidence.report(&g.active).is_none()
                && self.started.elapsed() < self.cfg.detection.agent_timeout;
            if let Some(max) = rc.rpo_max.filter(|_| !unheard) {
                let rpo = self.rpo_ms(st, &name, now_ms);
                let over = rpo.is_none_or(|r| r > max.as_millis() as u64);
                if st
                    .recorded
                    .observe(&format!("rpo_over/{name}"), over.then_some("over"))
                {
                    let shown = rpo.map(|r| format!("{} ms", r)).unwrap_or_else(|| {
                        "unknown (no replication report from the active site, or a lag it cannot tell)".into()
                    });
                    self.event_locked(
                        st,
                        EventKind::RpoExceeded,
                        Some(&name),
                        Some(&g.active),
                        if over {
                            format!("RPO {shown} is over rpo_max {} ms: losing {} now would lose that much", max.as_millis(), g.active)
                        } else {
                            format!("RPO back under rpo_max: {shown}")
                        },
                        vec![],
                        None,
                    );
                }
            }
        }
        if queued {
            self.command_tick.send_modify(|v| *v += 1);
        }
    }

    /// The RPO of `group` now: what would be lost if its active site died
    /// this moment. The active site's reported lag plus the report's age;
    /// while replication is paused (after a failover), the time since the
    /// pause. `None` when the active site reports no replication, or no lag (it cannot tell it).
    /// The replication lag toward `to` at the active site's last report
    /// (not growing with the report's age), if it was replicating into
    /// `to` — a lag toward another site says nothing of what `to` holds.
    pub(crate) fn last_lag_ms(st: &State, group: &str, to: &str) -> Option<u64> {
        let g = st.groups.get(group)?;
        if g.replication_paused_since_unix_ms.is_some() {
            return None;
        }
        let (_, r) = Self::replication_status(st, &g.active, group)?;
        if r.role != "source" || r.peer.as_deref() != Some(to) {
            return None;
        }
        r.lag_ms
    }

    pub fn rpo_ms(&self, st: &State, group: &str, now_ms: u64) -> Option<u64> {
        let g = st.groups.get(group)?;
        if let Some(p) = g.replication_paused_since_unix_ms {
            return Some(now_ms.saturating_sub(p));
        }
        let (age, r) = Self::replication_status(st, &g.active, group)?;
        if r.role != "source" {
            return None;
        }
        // The lag is the agent's word (a `command` plan's script prints
        // it): a huge one saturates, it never wraps to a small RPO.
        let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        // a lag the agent cannot tell (a `command` plan without a lag
        // command, or whose lag command fails) is an unknown RPO, not 0
        r.lag_ms.map(|lag| lag.saturating_add(age))
    }
}
