//! [`RunbookMap`]: the runbooks in memory by id, and the newest of each
//! group found without a scan. Runbook records are kept by the thousand
//! (`runbooks_keep` per group, `runbook_prune.rs`); the
//! status, `/v1/groups` and every `/metrics` scrape ask for each group's
//! newest, and a walk back through every stored runbook per group made
//! those answers cost groups × runbooks — seconds at 10,000 groups after a
//! year of drills, on the worker that also renews the etcd lease.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;

use crate::model::Runbook;

/// Runbooks by id (read through `Deref`), with each group's newest.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunbookMap {
    by_id: BTreeMap<u64, Runbook>,
    /// Group → the highest runbook id of it in `by_id`.
    newest: HashMap<String, u64>,
    /// (group, kind) → the highest runbook id of them that has an RTO: the
    /// `warden_group_last_rto_seconds` gauges, read when scraped, so a
    /// restarted process and a follower show what the store holds.
    with_rto: HashMap<(String, &'static str), u64>,
}

impl Deref for RunbookMap {
    type Target = BTreeMap<u64, Runbook>;
    fn deref(&self) -> &Self::Target {
        &self.by_id
    }
}

impl RunbookMap {
    /// Inserts (or replaces) the runbook `id`.
    pub(crate) fn insert(&mut self, id: u64, rb: Runbook) -> Option<Runbook> {
        let newest = self.newest.entry(rb.group.clone()).or_insert(id);
        *newest = (*newest).max(id);
        if rb.rto_ms.is_some() {
            let with = self
                .with_rto
                .entry((rb.group.clone(), crate::runbook::kind_str(rb.kind)))
                .or_insert(id);
            *with = (*with).max(id);
        }
        let old = self.by_id.insert(id, rb);
        if let Some(old) = &old {
            // A runbook keeps its group; if a replacement ever named
            // another, the old group's newest is found again.
            if old.group != self.by_id[&id].group {
                self.reindex(&old.group.clone());
            }
        }
        old
    }

    /// Removes the runbook `id` (the retention's), finding its group's
    /// newest, and its group and kind's newest with an RTO, again if it
    /// was one of them.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Runbook> {
        let rb = self.by_id.remove(&id)?;
        if self.newest.get(&rb.group) == Some(&id) {
            self.reindex(&rb.group.clone());
        }
        let kind = crate::runbook::kind_str(rb.kind);
        let key = (rb.group.clone(), kind);
        if self.with_rto.get(&key) == Some(&id) {
            match self.by_id.values().rev().find(|r| {
                r.group == rb.group
                    && r.rto_ms.is_some()
                    && crate::runbook::kind_str(r.kind) == kind
            }) {
                Some(r) => {
                    let id = r.id;
                    self.with_rto.insert(key, id);
                }
                None => {
                    self.with_rto.remove(&key);
                }
            }
        }
        Some(rb)
    }

    /// The runbook `id`, to update in place (its id and group stay).
    #[cfg(test)]
    pub(crate) fn get_mut(&mut self, id: &u64) -> Option<&mut Runbook> {
        self.by_id.get_mut(id)
    }

    /// The newest runbook of `group`, if any is in memory.
    pub(crate) fn newest_of(&self, group: &str) -> Option<&Runbook> {
        self.newest.get(group).and_then(|id| self.by_id.get(id))
    }

    /// Each (group, kind)'s newest runbook with an RTO.
    pub(crate) fn last_rtos(&self) -> impl Iterator<Item = &Runbook> {
        self.with_rto.values().filter_map(|id| self.by_id.get(id))
    }

    fn reindex(&mut self, group: &str) {
        match self.by_id.values().rev().find(|r| r.group == group) {
            Some(r) => {
                self.newest.insert(group.to_string(), r.id);
            }
            None => {
                self.newest.remove(group);
            }
        }
    }
}

impl FromIterator<(u64, Runbook)> for RunbookMap {
    fn from_iter<I: IntoIterator<Item = (u64, Runbook)>>(iter: I) -> Self {
        let mut map = RunbookMap::default();
        for (id, rb) in iter {
            map.insert(id, rb);
        }
        map
    }
}

impl From<BTreeMap<u64, Runbook>> for RunbookMap {
    fn from(by_id: BTreeMap<u64, Runbook>) -> Self {
        by_id.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rb(id: u64, group: &str) -> Runbook {
        use crate::model::RunbookKind;
        Runbook::new(
            id,
            group,
            RunbookKind::Failover,
            "a",
            "b",
            1,
            "detector",
            0,
            0,
        )
    }

    #[test]
    fn the_newest_of_each_group_is_kept_through_inserts_and_replacements() {
        let mut m: RunbookMap = [(1, rb(1, "web")), (2, rb(2, "db")), (3, rb(3, "web"))]
            .into_iter()
            .collect();
        assert_eq!(m.newest_of("web").map(|r| r.id), Some(3));
        assert_eq!(m.newest_of("db").map(|r| r.id), Some(2));
        assert!(m.newest_of("api").is_none());
        m.insert(1, rb(1, "web"));
        assert_eq!(
            m.newest_of("web").map(|r| r.id),
            Some(3),
            "an older one replaced"
        );
        m.insert(7, rb(7, "db"));
        assert_eq!(m.newest_of("db").map(|r| r.id), Some(7));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn the_newest_rto_of_each_group_and_kind_is_kept() {
        let with = |id: u64, group: &str, rto: Option<u64>| Runbook {
            rto_ms: rto,
            ..rb(id, group)
        };
        let m: RunbookMap = [
            (1, with(1, "web", Some(900))),
            (2, with(2, "web", Some(700))),
            (3, with(3, "web", None)),
            (4, with(4, "db", Some(1200))),
        ]
        .into_iter()
        .collect();
        let mut got: Vec<(u64, Option<u64>)> = m.last_rtos().map(|r| (r.id, r.rto_ms)).collect();
        got.sort();
        assert_eq!(got, vec![(2, Some(700)), (4, Some(1200))]);
    }
}
