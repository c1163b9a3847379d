//! The end of a runbook in the live service: the group's new state (where
//! users are, its phase, the replication pause), its unanswered commands
//! withdrawn, a move that ended before users moved (given up for a
//! failover, a failed resync, a failback retried with back-off or stopped),
//! and the runbook metrics.

use super::*;

impl Shared {
    pub(crate) fn finish_runbook(&self, rb: Runbook) {
        let mut st = self.lock();
        st.runbooks.insert(rb.id, rb.clone());
        // Its commands no agent has answered are taken back: nobody may act on
        // them later (a silent site that returns must not promote itself).
        let withdrawn = st
            .ledger
            .withdraw_runbook(rb.id, &format!("runbook {} ended", rb.id));
        if !withdrawn.is_empty() {
            let list: Vec<String> = withdrawn
                .iter()
                .map(|c| format!("{} for {}", c.id, c.site))
                .collect();
            info!(runbook = rb.id, commands = %list.join(", "), "withdrew the runbook's unanswered commands");
        }
        let Some(g) = st.groups.get(&rb.group).cloned() else {
            return;
        };
        let mut ng = g;
        // Users moved (a resync's switch routes the same site again), or
        // may have begun to: a switch rolled forward leaves `to` active
        // and reconciliation completes its route.
        let switched = rb.moved_users();
        if switched {
            ng.active = rb.to.clone();
            let primary = self.cfg.groups.get(&rb.group).map(|c| c.primary());
            ng.switched_over =
                rb.kind == RunbookKind::Switchover && primary != Some(rb.to.as_str());
            if primary == Some(rb.to.as_str()) {
                // Back on the primary, by whatever move: an earlier
                // failback's failures say nothing about the next one.
                crate::retry::reset(&mut ng);
            }
        }
        ng.runbook = None;
        ng.phase = match rb.status {
            RunbookStatus::Succeeded => Phase::Steady,
            _ if rb.aborted && !switched => Phase::Steady,
            _ => Phase::Failed,
        };
        // A resync in place moved nobody: the incident, a failback's
        // retries and its stop stand as they were.
        if rb.status == RunbookStatus::Succeeded && rb.kind.moves_users() {
            ng.incident_started_unix_ms = None;
            ng.failback_retry_unix_ms = None;
            if rb.kind != RunbookKind::Failover {
                crate::retry::reset(&mut ng);
            }
        }
        let replication_started = rb
            .steps
            .iter()
            .any(|s| s.name == StepName::StartReplication && s.status == StepStatus::Done);
        if replication_started {
            ng.replication_paused_since_unix_ms = None;
        }
        if rb.aborted && !switched {
            self.aborted_locked(&mut st, &mut ng, &rb);
        }
        // The runbook's last record and the group's new phase are one fact.
        self.persist_decision(&ng, &rb);
        st.groups.insert(rb.group.clone(), ng);
        let label = |v: serde_json::Value| v.as_str().unwrap_or("other").to_string();
        // Given up for a failover is not a failure of the move itself.
        let status = if rb.preempted {
            "given_up".to_string()
        } else {
            label(serde_json::json!(rb.status))
        };
        self.metrics
            .runbooks
            .get_or_create(&vec![
                ("kind".to_string(), label(serde_json::json!(rb.kind))),
                ("status".to_string(), status),
            ])
            .inc();
        if let Some(rto) = rb.rto_ms {
            self.metrics.last_rto_seconds.set(rto as f64 / 1000.0);
            self.metrics
                .group_last_rto_seconds
                .get_or_create(&vec![
                    ("group".to_string(), rb.group.clone()),
                    ("kind".to_string(), label(serde_json::json!(rb.kind))),
                ])
                .set(rto as f64 / 1000.0);
        }
        if rb.kind == RunbookKind::Failover && !rb.preempted {
            let key = vec![("group".to_string(), rb.group.clone())];
            match rb.rpo_ms {
                Some(rpo) => {
                    self.metrics
                        .group_last_failover_rpo_seconds
                        .get_or_create(&key)
                        .set(rpo as f64 / 1000.0);
                }
                None => {
                    self.metrics.group_last_failover_rpo_seconds.remove(&key);
                }
            }
        }
    }

    /// A move that ended before users moved: one `failback_aborted` event
    /// saying why and what follows; a failback's retry and back-off.
    fn aborted_locked(&self, st: &mut State, ng: &mut GroupState, rb: &Runbook) {
        let kind = runbook::kind_str(rb.kind);
        let (site, message) = if rb.preempted {
            // Given up because the site users are on went down: no failback
            // failure to count or retry, and no automatic move spent from
            // the failover budget; the failover decision follows.
            if let Some(i) = ng
                .moves_unix_ms
                .iter()
                .rposition(|&t| t == rb.started_unix_ms)
            {
                ng.moves_unix_ms.remove(i);
            }
            (
                &rb.from,
                format!(
                    "{kind} {} → {} given up before its cut-over: {} was confirmed down; nothing was moved, and the \
                     failover decision follows{}",
                    rb.from,
                    rb.to,
                    rb.from,
                    if ng.maintenance { " once the group leaves maintenance" } else { "" }
                ),
            )
        } else if !rb.kind.moves_users() {
            (
                &rb.to,
                format!(
                    "resync {} → {} failed: users stay on {}, replication stays paused; run `warden resync {}` again \
                     when the cause is fixed",
                    rb.from, rb.to, rb.from, rb.group
                ),
            )
        } else {
            let base = self.cfg.detection.hold_down.max(Duration::from_secs(5));
            let after = if rb.kind == RunbookKind::Failback {
                crate::retry::on_aborted(ng, rb, base)
            } else {
                crate::retry::After::Retry(base)
            };
            let backoff = match &after {
                crate::retry::After::Retry(d) => *d,
                crate::retry::After::Stop(_) => base,
            };
            ng.failback_retry_unix_ms = Some(self.clock.now_ms() + backoff.as_millis() as u64);
            if let crate::retry::After::Stop(msg) = &after {
                self.event_locked(
                    st,
                    EventKind::Alert,
                    Some(&rb.group),
                    Some(&rb.to),
                    msg.clone(),
                    vec![],
                    Some(rb.id),
                );
            }
            let next = if rb.kind == RunbookKind::Failback && ng.failback_blocked.is_some() {
                "automatic failback stopped: the same failure twice".to_string()
            } else if rb.kind == RunbookKind::Failback {
                format!(
                    "retried once {} is recovered again, not before {} s from now",
                    rb.to,
                    backoff.as_secs()
                )
            } else {
                "run the switchover again when the cause is fixed".to_string()
            };
            (
                &rb.from,
                format!(
                    "{kind} {} → {} aborted before the switch: users stay on {}, which keeps its data and writes; {next}",
                    rb.from, rb.to, rb.from
                ),
            )
        };
        self.event_locked(
            st,
            EventKind::FailbackAborted,
            Some(&rb.group),
            Some(site),
            message,
            vec![],
            Some(rb.id),
        );
    }
}
