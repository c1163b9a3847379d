//! The event log of the live service: recording (buffered, never written
//! under the state lock), the batched writer task, and raising an event once.

use super::*;

/// The most evidence rows an event keeps: the isolation event has one per
/// site of the deployment, and a stored event must stay well within what
/// the store takes in one write (etcd: 1.5 MiB a request) — one too large
/// would be refused for good and hold every later event back.
pub(crate) const EVIDENCE_ROWS_MAX: usize = 200;
/// The longest detail an evidence row keeps, and the longest message.
const DETAIL_MAX: usize = 1024;
const MESSAGE_MAX: usize = 16 * 1024;

/// `text` cut to at most `max` bytes (on a character boundary), saying so.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" …(cut)");
    }
    text
}

/// At most [`EVIDENCE_ROWS_MAX`] rows (then one that says how many more
/// there were), each detail cut to [`DETAIL_MAX`].
fn bounded(mut rows: Vec<EvidenceRow>) -> Vec<EvidenceRow> {
    let more = rows.len().saturating_sub(EVIDENCE_ROWS_MAX);
    rows.truncate(EVIDENCE_ROWS_MAX);
    for r in &mut rows {
        r.detail = cut(std::mem::take(&mut r.detail), DETAIL_MAX);
    }
    if more > 0 {
        rows.push(EvidenceRow {
            site: "…".into(),
            vantage: "-".into(),
            status: "omitted".into(),
            detail: format!(
                "{more} more evidence rows not kept (an event keeps at most {EVIDENCE_ROWS_MAX})"
            ),
            age_ms: None,
        });
    }
    rows
}

/// Events kept in memory at most while the store cannot write them.
const UNSAVED_MAX: usize = 10_000;

impl Shared {
    /// Record an event (state lock must NOT be held).
    pub fn event(
        &self,
        kind: EventKind,
        group: Option<&str>,
        site: Option<&str>,
        message: String,
        evidence: Vec<EvidenceRow>,
        runbook: Option<u64>,
    ) {
        let mut st = self.lock();
        self.event_locked(&mut st, kind, group, site, message, evidence, runbook);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn event_locked(
        &self,
        st: &mut State,
        kind: EventKind,
        group: Option<&str>,
        site: Option<&str>,
        message: String,
        evidence: Vec<EvidenceRow>,
        runbook: Option<u64>,
    ) {
        let epoch = match runbook.and_then(|id| st.runbooks.get(&id)) {
            Some(rb) => Some(rb.epoch),
            None => group.and_then(|g| st.groups.get(g)).map(|g| g.epoch),
        };
        let e = Event {
            epoch,
            term: self.hold_term(),
            id: st.next_event,
            time_unix_ms: self.clock.now_ms(),
            kind,
            group: group.map(str::to_string),
            site: site.map(str::to_string),
            message: cut(message, MESSAGE_MAX),
            evidence: bounded(evidence),
            runbook,
        };
        st.next_event += 1;
        info!(event = ?e.kind, group = e.group.as_deref().unwrap_or("-"), site = e.site.as_deref().unwrap_or("-"), "{}", crate::text::printable(&e.message));
        // Persisted by `write_events` in batches, outside the state lock: an
        // incident that raises thousands of events must not hold up reports.
        self.unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
        self.unsaved_notify.notify_one();
        self.metrics.events.inc();
        // Told by the licence holder only: a follower's events are its own.
        if self.licence.is_held() {
            self.notify.offer(&e, &self.metrics);
        }
        st.recent.push_back(e);
        while st.recent.len() > 2000 {
            st.recent.pop_front();
        }
    }

    /// Persist recorded events in batches until `stop`, then once more.
    pub async fn write_events(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = self.unsaved_notify.notified() => false,
                _ = stop.cancelled() => true,
            };
            let under = self.licence.term_number();
            // Looked at before the batch is taken: a take-over empties
            // `unsaved` before it takes the licence, so a batch taken under
            // the licence holds no event recorded while following.
            let leading = self.ha.is_none() || self.licence.is_held();
            let batch =
                std::mem::take(&mut *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()));
            if !batch.is_empty() && (!leading || !self.store.writable()) {
                // A follower's events are its own log lines, not the record
                // — numbered from where the store was when it started, ids
                // the leader has used since. Also once it has won the
                // leader key (etcd then takes its writes) while its
                // take-over loads the state: written, they would replace
                // the leader's events under those ids.
                tracing::debug!(events = batch.len(), "not the leader: events not written");
            } else if !batch.is_empty() {
                let store = self.store.clone();
                let n = batch.len();
                let o = &self.cfg.orchestrator;
                let keep = o.events_keep;
                let before = self.history_now_ms().saturating_sub(
                    u64::try_from(o.events_max_age.as_millis()).unwrap_or(u64::MAX),
                );
                // Written, then the oldest beyond the retention pruned (at
                // most a bounded number per batch), off the async threads.
                let kept = batch.clone();
                let written = tokio::task::spawn_blocking(move || {
                    store.put_events(&batch)?;
                    store.prune_events(keep, before, 10_000)
                })
                .await;
                match written {
                    Ok(Ok(pruned)) => {
                        self.store_ok("events");
                        if pruned > 0 {
                            tracing::debug!(pruned, "old events pruned");
                        }
                    }
                    Ok(Err(e @ crate::OrchestratorError::Deposed(_))) => {
                        warn!(cause = %e, events = n, "events not written: deposed");
                        self.deposed_by_store(&e, under);
                    }
                    Ok(Err(e)) => {
                        warn!(cause = %e, events = n, "cannot persist events; retrying in 1 s");
                        self.store_trouble("events", &e.to_string());
                        // Kept (the newest UNSAVED_MAX at most) and tried again.
                        {
                            let mut u = self.unsaved.lock().unwrap_or_else(|p| p.into_inner());
                            let newer = std::mem::replace(&mut *u, kept);
                            u.extend(newer);
                            let excess = u.len().saturating_sub(UNSAVED_MAX);
                            u.drain(..excess);
                        }
                        if !stopping {
                            tokio::select! {
                                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                                _ = stop.cancelled() => {}
                            }
                            self.unsaved_notify.notify_one();
                        }
                    }
                    Err(e) => warn!(cause = %e, events = n, "event writer task failed"),
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// The store failed to write `what`: an alert on every group (status,
    /// `warden_alerts`) until a write succeeds.
    pub(crate) fn store_trouble(&self, what: &str, cause: &str) {
        let mut t = self.store_trouble.lock().unwrap_or_else(|p| p.into_inner());
        t.insert(what.to_string(), cause.to_string());
    }

    /// A write of `what` succeeded: its alert ends.
    pub(crate) fn store_ok(&self, what: &str) {
        let mut t = self.store_trouble.lock().unwrap_or_else(|p| p.into_inner());
        t.remove(what);
    }

    /// The store's alerts in force.
    pub(crate) fn store_alerts(&self) -> Vec<String> {
        let t = self.store_trouble.lock().unwrap_or_else(|p| p.into_inner());
        t.iter()
            .map(|(what, cause)| {
                if what == "etcd" {
                    format!("etcd does not answer: {cause} — no orchestrator acts without a majority of its members; routes stay as they are")
                } else if what == super::ha::MIRROR {
                    format!("this node follows and cannot read the state from the store ({}): {cause} — the groups and runbooks it shows may be older than the leader's; ask the leader", self.store.describe())
                } else {
                    format!(
                        "the store ({}) cannot write {what}: {cause} — free space or fix the disk; {}",
                        self.store.describe(),
                        if self.store.may_act_unwritten() {
                            "until it can, failovers run from memory and a crash of the orchestrator would lose them"
                        } else {
                            "decisions wait until it can"
                        }
                    )
                }
            })
            .collect()
    }

    /// Level-triggered: record an event about condition `key` only when
    /// what is observed (`msg`) differs from what was last recorded for it.
    pub(crate) fn event_level(
        &self,
        key: &str,
        kind: EventKind,
        group: &str,
        site: Option<&str>,
        msg: String,
    ) {
        let mut st = self.lock();
        if st.recorded.observe(key, Some(&msg)) {
            self.event_locked(&mut st, kind, Some(group), site, msg, vec![], None);
        }
    }

    /// Condition `key` no longer holds (e.g. the group reconciled). Only
    /// that key: a prefix would take `reconcile/g10` with `reconcile/g1`.
    pub(crate) fn level_cleared(&self, key: &str) {
        self.lock().recorded.observe(key, None);
    }

    /// [`Shared::level_cleared`] for each of `keys`, under one lock.
    pub(crate) fn levels_cleared(&self, keys: &[&str]) {
        let mut st = self.lock();
        for k in keys {
            st.recorded.observe(k, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event of a deployment of 20,000 sites (the isolation event has a
    /// row per site) keeps 200 rows and says how many more there were, and
    /// a huge detail or message is cut: stored, it stays far below etcd's
    /// request limit. Before, it carried every row (about 5 MB): etcd
    /// refused it, and the event writer retried it first for ever, holding
    /// every later event back.
    #[test]
    fn an_event_of_many_sites_keeps_a_bounded_size() {
        let rows: Vec<EvidenceRow> = (0..20_000)
            .map(|i| EvidenceRow {
                site: format!("site-{i}"),
                vantage: "orchestrator".into(),
                status: "failing".into(),
                detail: "x".repeat(if i == 0 { 100_000 } else { 200 }),
                age_ms: Some(1),
            })
            .collect();
        let kept = bounded(rows);
        assert_eq!(kept.len(), EVIDENCE_ROWS_MAX + 1);
        assert!(
            kept.last()
                .unwrap()
                .detail
                .starts_with("19800 more evidence rows"),
            "{:?}",
            kept.last()
        );
        assert!(kept[0].detail.len() <= DETAIL_MAX + 16);
        let json = serde_json::to_string(&kept).unwrap();
        assert!(json.len() < 256 * 1024, "{} bytes", json.len());
        let m = cut("é".repeat(20_000), MESSAGE_MAX);
        assert!(m.len() <= MESSAGE_MAX + 16 && m.ends_with("…(cut)"));
    }
}
