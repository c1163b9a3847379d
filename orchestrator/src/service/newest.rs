//! The store read at start or take-over: a group whose record is older
//! than its newest runbook (the runbook's decision never written — the
//! local store on a full disk — and the process ended) runs that runbook
//! again, from where the runbooks its record does not reflect left users.

use std::collections::BTreeMap;

use tracing::warn;
use warden_config::Config;

use crate::model::{GroupState, Phase, Runbook, RunbookKind, RunbookStatus};

/// See the module docs; `to_write` takes each group changed.
pub(super) fn run_newest_runbooks(
    cfg: &Config,
    groups: &mut BTreeMap<String, GroupState>,
    runbooks: &BTreeMap<u64, Runbook>,
    to_write: &mut Vec<GroupState>,
) {
    // A group whose newest runbook is at an epoch above the group's
    // record: that record is from before the runbook's decision, which
    // never landed (the local store on a full disk: the runbook went on
    // from memory, its own records written — they are smaller — and the
    // decision's retry never was), and the process ended. The group runs
    // it again: resumed when it is stored running (or rolling back) — a
    // move left half done (the old site fenced, nobody promoted) and
    // forgotten is worse than one finished — or, when it ended, ended
    // again by `Shared::resume` as `finish_runbook` ends any runbook: the
    // group where it left users, not back on the site it fenced. Also when
    // the record says the group runs an older runbook: that one's end was
    // not written either, and the newest runbook was decided after it.
    let mut newest: BTreeMap<&str, &Runbook> = BTreeMap::new();
    for rb in runbooks.values() {
        newest.insert(rb.group.as_str(), rb);
    }
    for g in groups.values_mut() {
        let Some(rb) = newest.get(g.name.as_str()) else {
            continue;
        };
        if g.runbook == Some(rb.id) || rb.epoch <= g.epoch {
            continue;
        }
        // A record naming a runbook the store does not hold is not from
        // before the newest one: a damaged store, failed below.
        if g.runbook.is_some_and(|id| !runbooks.contains_key(&id)) {
            continue;
        }
        let live = rb.status == RunbookStatus::Running || rb.rolling_back;
        warn!(group = %g.name, stored = g.epoch, runbook = rb.id, epoch = rb.epoch, live,
              "the group's record is from before its newest runbook was decided: the group runs it again (resumed, or ended as it ended)");
        // The older runbooks the record does not reflect (the one it
        // names, those decided since) ended before the newest was
        // decided: users are where they left them (each one's end as
        // `finish_runbook` makes it), which the newest one moves from.
        // Never a site the group no longer has (the config changed since).
        let (record_epoch, record_runbook) = (g.epoch, g.runbook);
        let sites = cfg
            .groups
            .get(&g.name)
            .map(|c| c.site_names())
            .unwrap_or_default();
        for older in runbooks.values().filter(|r| {
            r.group == g.name
                && r.id < rb.id
                && (r.epoch > record_epoch || record_runbook == Some(r.id))
        }) {
            if older.moved_users() && sites.contains(&older.to) {
                g.active = older.to.clone();
            }
        }
        g.epoch = rb.epoch;
        g.phase = Phase::Running;
        g.runbook = Some(rb.id);
        g.pending = None;
        g.hold = None;
        let replicated = cfg
            .groups
            .get(&g.name)
            .is_some_and(|c| c.replication.is_some());
        if rb.kind == RunbookKind::Failover && replicated {
            g.replication_paused_since_unix_ms
                .get_or_insert(rb.started_unix_ms);
        }
        to_write.retain(|w| w.name != g.name);
        to_write.push(g.clone());
    }
}
