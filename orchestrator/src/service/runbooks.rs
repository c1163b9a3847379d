//! Runbooks of the live service: start (the decision and its runbook in one
//! store transaction), the tracked runbook tasks and resume after a restart
//! (their end is [`super::finish`]; the live `RunbookEnv` they run with,
//! talking to agents and strategies, is [`super::runbook_env`]).

pub(super) use super::runbook_env::Env;
use super::*;

impl Shared {
    pub(crate) fn policy(&self, group: &str) -> Option<Policy> {
        let g = self.cfg.groups.get(group)?;
        Some(Policy {
            fencing: g.fencing,
            fence_command: g.fence_command.clone(),
            step_timeout: g.step_timeout,
            resync_timeout: g
                .replication()
                .map(|r| r.resync_timeout)
                .unwrap_or(g.step_timeout),
        })
    }

    /// The epoch a runbook of `group` would take if it started now, or why
    /// none may start (no licence, an epoch seen ahead, none left): every
    /// check [`Shared::start_runbook_locked`] makes before it changes
    /// anything, for callers that must not change anything either when it
    /// would refuse.
    pub(crate) fn next_epoch_locked(
        &self,
        st: &State,
        group: &str,
    ) -> Result<u64, OrchestratorError> {
        self.must_act()?;
        let g = st
            .groups
            .get(group)
            .ok_or_else(|| super::untouched::missing_group(st, group))?;
        if let Some(x) = st.epoch_ahead.get(group) {
            return Err(OrchestratorError::Conflict(format!(
                "group {group}: {} holds epoch {}, above the group's {}: any move would be refused as stale; \
                 adopt it first (`warden adopt-epoch {group}`) once you know no other orchestrator acts",
                x.seen_at, x.epoch, g.epoch
            )));
        }
        // Not above the ceiling: agents and frontends refuse such an order.
        g.epoch
            .checked_add(1)
            .filter(|e| *e <= warden_proto::EPOCH_CEILING)
            .ok_or_else(|| {
                OrchestratorError::Conflict(format!(
                    "group {group} is at epoch {}: no later epoch exists that agents and frontends take \
                     (warden_proto::EPOCH_CEILING)",
                    g.epoch
                ))
            })
    }

    /// Every move promotes `to` (a failback after its resync into it): not
    /// one its agent says it would refuse. The refusal, said before
    /// anything is recorded (an approval checks it first too).
    pub(crate) fn unpromotable_locked(
        &self,
        st: &State,
        group: &str,
        kind: RunbookKind,
        to: &str,
    ) -> Option<OrchestratorError> {
        if kind == RunbookKind::Resync {
            return None;
        }
        let why = self.unfit_locked(st, group, to)?;
        Some(OrchestratorError::Conflict(format!(
            "{why}: its promote would be refused, so nothing was started (no site \
             fenced); mount its volume, then order the move again"
        )))
    }

    /// Start a runbook away from the group's active site (state lock held
    /// by caller). Returns its id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_runbook_locked(
        self: &Arc<Self>,
        st: &mut State,
        group: &str,
        kind: RunbookKind,
        to: &str,
        trigger: &str,
        automatic: bool,
        evidence: Vec<EvidenceRow>,
    ) -> Result<u64, OrchestratorError> {
        self.start_runbook_from_locked(st, group, kind, None, to, trigger, automatic, evidence)
    }

    /// [`Shared::start_runbook_locked`] from `from` (the site it fences)
    /// instead of the group's active site: only a failed group's failover
    /// back to its own active site ([`Shared::operator_failover_seen`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_runbook_from_locked(
        self: &Arc<Self>,
        st: &mut State,
        group: &str,
        kind: RunbookKind,
        from: Option<&str>,
        to: &str,
        trigger: &str,
        automatic: bool,
        evidence: Vec<EvidenceRow>,
    ) -> Result<u64, OrchestratorError> {
        if let Some(refused) = self.unpromotable_locked(st, group, kind, to) {
            return Err(refused);
        }
        let epoch = self.next_epoch_locked(st, group)?;
        let now = self.clock.now_ms();
        let g = st
            .groups
            .get(group)
            .cloned()
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group}")))?;
        let from = from.unwrap_or(&g.active).to_string();
        let id = st.next_runbook;
        let incident = match kind {
            RunbookKind::Failover => g.incident_started_unix_ms.unwrap_or(now),
            RunbookKind::Failback | RunbookKind::Switchover | RunbookKind::Resync => now,
        };
        let mut rb = Runbook::new(id, group, kind, &from, to, epoch, trigger, now, incident);
        if kind == RunbookKind::Failover {
            // the writes at risk toward `to`, as known now; no number when
            // unknown: replication paused (what was outstanding when it
            // paused is not known), or the active site replicating into
            // another site than `to`
            rb.rpo_ms = match g.replication_paused_since_unix_ms {
                Some(_) => None,
                None => Self::replication_status(st, &g.active, group)
                    .filter(|(_, r)| r.role == "source" && r.peer.as_deref() == Some(to))
                    .and_then(|(age, r)| {
                        let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                        r.lag_ms.map(|lag| lag.saturating_add(age))
                    }),
            };
        }
        // A switchover (or a failback, once `warden resync` resumed
        // replication toward the primary) to the site the active one
        // replicates into: that site is a replica (its differences are the
        // active site's older versions). Not after a failover (replication
        // paused: the target may hold writes of its own).
        rb.replica = matches!(kind, RunbookKind::Switchover | RunbookKind::Failback)
            && g.replication_paused_since_unix_ms.is_none()
            && Self::replication_status(st, &g.active, group)
                .is_some_and(|(_, r)| r.role == "source" && r.peer.as_deref() == Some(to));
        let mut ng = g.clone();
        ng.epoch = epoch;
        ng.phase = Phase::Running;
        // A decision was taken (by the detector with every site heard, or an operator).
        ng.hold = None;
        ng.runbook = Some(id);
        ng.pending = None;
        if automatic {
            ng.moves_unix_ms.push(now);
        }
        if kind == RunbookKind::Failover
            && self
                .cfg
                .groups
                .get(group)
                .is_some_and(|g| g.replication.is_some())
            && ng.replication_paused_since_unix_ms.is_none()
        {
            // From here on nothing may restart replication from the old
            // active site; the failback's resync ends the pause.
            ng.replication_paused_since_unix_ms = Some(now);
        }
        // Committed by the group writer, outside the lock; the runbook
        // task acts only once this decision is durable.
        let durable = self.persist_decision(&ng, &rb);
        // Orders of earlier epochs are void from here on.
        st.ledger.withdraw_below(
            group,
            epoch,
            &format!("runbook {id} moved the group to epoch {epoch}"),
        );
        st.next_runbook += 1;
        st.groups.insert(group.to_string(), ng);
        st.runbooks.insert(id, rb.clone());
        self.event_locked(
            st,
            EventKind::RunbookStarted,
            Some(group),
            Some(to),
            format!(
                "{}{} {} → {} started by {trigger} at epoch {epoch}",
                if self
                    .cfg
                    .groups
                    .get(group)
                    .is_some_and(|g| g.scheme() == warden_config::Scheme::Hybrid)
                {
                    "site layer (frontends route to the new site): "
                } else {
                    ""
                },
                runbook::kind_str(kind),
                from,
                to
            ),
            evidence,
            Some(id),
        );
        self.spawn_runbook(rb, Some(durable));
        Ok(id)
    }

    /// Before a runbook acts: wait until both its sites' agents have
    /// reported to this process, until `deadline` at most. An orchestrator
    /// that has just started has heard nobody yet, and a step that asks
    /// whether an agent is fresh (required fencing, a demote under
    /// best-effort fencing, stopping replication) would otherwise judge a
    /// live agent silent — and leave a site active beside the new one. A
    /// resumed runbook waits one `agent_timeout`; a new one (an operator's
    /// move, an approval) only within `agent_timeout` of the process's
    /// start (after it, an agent not heard is silent: a failover must not
    /// wait for a dead site). A new leader on etcd has heard them all
    /// along: no wait. False when the licence ended meanwhile.
    async fn sites_heard(&self, rb: &Runbook, term: &CancellationToken, deadline: Instant) -> bool {
        loop {
            let heard = {
                let st = self.lock();
                let now = Instant::now();
                [&rb.from, &rb.to]
                    .iter()
                    .all(|s| st.detector.agent_heard(&st.evidence, s, now))
            };
            if heard || Instant::now() >= deadline {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = term.cancelled() => return false,
            }
        }
    }

    /// Run `rb` as a task under the licence to act: losing the licence (or
    /// shutdown) cancels it mid-step and leaves it `running` in the store,
    /// for whoever holds the licence next to resume.
    pub(crate) fn spawn_runbook(self: &Arc<Self>, rb: Runbook, durable: Option<u64>) {
        let me = self.clone();
        let id = rb.id;
        let started = self.licence.spawn(move |term| async move {
            if let Some(seq) = durable {
                let doing = || {
                    format!(
                        "running {} {} → {}",
                        runbook::kind_str(rb.kind),
                        rb.from,
                        rb.to
                    )
                };
                if !me
                    .durable_before_acting(seq, &term, &rb.group, Some(&rb.to), Some(rb.id), doing)
                    .await
                {
                    return;
                }
            }
            let wait = me.cfg.detection.agent_timeout;
            let deadline = match durable {
                None => Some(Instant::now() + wait),
                Some(_) => Some(me.started + wait).filter(|d| *d > Instant::now()),
            };
            if let Some(deadline) = deadline {
                if !me.sites_heard(&rb, &term, deadline).await {
                    return;
                }
            }
            let Some(policy) = me.policy(&rb.group) else {
                warn!(group = %rb.group, runbook = rb.id, "runbook of a group that is no longer configured: left in the store");
                return;
            };
            let env = Env {
                shared: me.clone(),
                term: term.clone(),
            };
            let group = rb.group.clone();
            let done = tokio::select! {
                rb = runbook::execute(rb, &env, me.store.as_ref(), &policy) => rb,
                _ = term.cancelled() => {
                    info!(group = %group, "licence ended (shutdown or revoked): runbook left running in the store; it resumes under the next licence");
                    return;
                }
            };
            if done.status == RunbookStatus::Running {
                // Deposed mid-run: the record in the store is the new leader's to resume.
                return;
            }
            me.finish_runbook(done);
        });
        if !started {
            warn!(
                runbook = id,
                "not holding the licence to act: runbook left in the store for the holder"
            );
        }
    }

    /// Resume runbooks left running by a previous process.
    pub fn resume(self: &Arc<Self>) {
        if !self.licence.is_held() {
            return;
        }
        let mut to_spawn = Vec::new();
        let mut to_finish = Vec::new();
        {
            let st = self.lock();
            for g in st.groups.values() {
                if g.phase != Phase::Running {
                    continue;
                }
                let Some(id) = g.runbook else { continue };
                match st.runbooks.get(&id) {
                    // Running, or failed with its rollback cut short: the
                    // rollback is finished (`Runbook::rolling_back`).
                    Some(rb) if rb.status == RunbookStatus::Running || rb.rolling_back => {
                        to_spawn.push(rb.clone())
                    }
                    Some(rb) => to_finish.push(rb.clone()),
                    None => warn!(group = %g.name, runbook = id, "runbook missing from store"),
                }
            }
        }
        for rb in to_finish {
            self.finish_runbook(rb);
        }
        for mut rb in to_spawn {
            rb.resumes += 1;
            let what = if rb.rolling_back {
                let failed = rb
                    .steps
                    .iter()
                    .find(|s| s.status == StepStatus::Failed)
                    .map_or("?", |s| runbook::step_str(s.name));
                format!(
                    "resuming the rollback of {} {} → {} (failed at step {failed}, epoch {}); \
                     the cut-over is not resumed",
                    runbook::kind_str(rb.kind),
                    rb.from,
                    rb.to,
                    rb.epoch
                )
            } else {
                let step = rb
                    .next_step()
                    .map(|i| runbook::step_str(rb.steps[i].name))
                    .unwrap_or("end");
                format!(
                    "resuming {} {} → {} at step {step} (epoch {})",
                    runbook::kind_str(rb.kind),
                    rb.from,
                    rb.to,
                    rb.epoch
                )
            };
            self.event(
                EventKind::RunbookResumed,
                Some(&rb.group),
                Some(&rb.to),
                what,
                vec![],
                Some(rb.id),
            );
            // Re-queue nothing here: the step re-sends its command with the same id.
            self.spawn_runbook(rb, None);
        }
    }
}
