//! The runbook retention: which finished runbooks go ([`doomed`]) and the
//! leader's pass that deletes them from the store, then from memory
//! ([`Shared::prune_runbooks`], every [`PRUNE_PERIOD`]).
//!
//! A runbook goes when it has ended and is either beyond the newest
//! `runbooks_keep` of its group or ended before `runbooks_max_age` ago —
//! never one that runs or rolls back, the one a group's record names, the
//! newest of its group (new runbook ids are numbered after the highest
//! stored, and a group's newest is what its status and a restart's checks
//! read), nor each group and kind's newest with an RTO (the
//! `warden_group_last_rto_seconds` gauges). Records this version cannot
//! read are never in memory, so never chosen.
//!
//! Age is counted back from [`Shared::history_now_ms`]: a leader whose
//! clock runs far ahead (a host booted with a wrong clock) takes no recent
//! runbook for an old one. And no pass runs while a group's change waits to be written
//! (the local store on a full disk): the store's records may then name a
//! runbook memory has moved past, which must stay for the restart that
//! reads them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::runbook_map::RunbookMap;
use super::Shared;
use crate::model::{GroupState, Runbook, RunbookStatus};

/// How often the leader looks for runbooks past the retention.
pub(crate) const PRUNE_PERIOD: Duration = Duration::from_secs(600);

/// Runbooks deleted in one pass at most (the rest at the next passes): one
/// bounded transaction, a short hold of the state lock.
pub(crate) const PRUNE_MAX: usize = 1000;

/// The ids of the runbooks past the retention, oldest first, at most `max`:
/// ended ones beyond the newest `keep` of their group or ended before
/// `before_unix_ms`, none of those the module docs keep.
pub(crate) fn doomed(
    runbooks: &RunbookMap,
    groups: &BTreeMap<String, GroupState>,
    keep: usize,
    before_unix_ms: u64,
    max: usize,
) -> Vec<u64> {
    let mut kept: HashSet<u64> = groups.values().filter_map(|g| g.runbook).collect();
    kept.extend(runbooks.last_rtos().map(|rb| rb.id));
    let mut by_group: HashMap<&str, Vec<&Runbook>> = HashMap::new();
    for rb in runbooks.values() {
        by_group.entry(rb.group.as_str()).or_default().push(rb);
    }
    let mut out = Vec::new();
    for of_group in by_group.values() {
        // Newest first: the rank is the runbook's place among its group's.
        for (rank, rb) in of_group.iter().rev().enumerate() {
            let ended = rb.status != RunbookStatus::Running && !rb.rolling_back;
            let Some(finished) = rb.finished_unix_ms.filter(|_| ended) else {
                continue;
            };
            if rank == 0 || kept.contains(&rb.id) {
                continue;
            }
            if rank >= keep || finished < before_unix_ms {
                out.push(rb.id);
            }
        }
    }
    out.sort_unstable();
    out.truncate(max);
    out
}

impl Shared {
    /// One retention pass (see the module docs), only while this process
    /// holds the licence to act (the leader; in local mode, until it is
    /// stopped): the
    /// runbooks chosen are deleted from the store, then from memory; a
    /// store that refuses keeps both as they were (tried again at the next
    /// pass), and a refusal because another orchestrator leads ends this
    /// node's term as any refused write does.
    pub(crate) async fn prune_runbooks(self: &Arc<Self>) {
        if self.must_act().is_err() || !self.store.writable() || !self.writer.settled() {
            return;
        }
        let under = self.licence.term_number();
        let o = &self.cfg.orchestrator;
        let age = u64::try_from(o.runbooks_max_age.as_millis()).unwrap_or(u64::MAX);
        let ids = {
            let st = self.lock();
            let before = self.history_now_ms().saturating_sub(age);
            doomed(&st.runbooks, &st.groups, o.runbooks_keep, before, PRUNE_MAX)
        };
        if ids.is_empty() {
            return;
        }
        let store = self.store.clone();
        let asked = ids.clone();
        let deleted = tokio::task::spawn_blocking(move || store.delete_runbooks(&asked)).await;
        match deleted {
            Ok(Ok(())) => {
                let mut st = self.lock();
                for id in &ids {
                    st.runbooks.remove(*id);
                }
                info!(
                    runbooks = ids.len(),
                    oldest = ids[0],
                    newest = ids[ids.len() - 1],
                    keep = o.runbooks_keep,
                    max_age = %humantime::format_duration(o.runbooks_max_age),
                    "finished runbooks past the retention deleted"
                );
            }
            Ok(Err(e @ crate::OrchestratorError::Deposed(_))) => {
                warn!(cause = %e, "old runbooks not deleted: deposed");
                self.deposed_by_store(&e, under);
            }
            Ok(Err(e)) => {
                warn!(cause = %e, runbooks = ids.len(), "cannot delete the runbooks past the retention; tried again at the next pass");
            }
            Err(e) => warn!(cause = %e, "runbook retention task failed"),
        }
    }
}

#[cfg(test)]
#[path = "runbook_prune_tests.rs"]
mod tests;
