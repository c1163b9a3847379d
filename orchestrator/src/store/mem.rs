//! [`MemStore`]: the store in memory, for unit tests (and to show the
//! trait's contract).

use crate::model::{Event, GroupState, Runbook};
use crate::OrchestratorError;

use super::Store;

/// An in-memory store for unit tests (and to show the trait's contract).
#[derive(Default)]
pub struct MemStore {
    inner: std::sync::Mutex<MemInner>,
    /// Stands for a store other orchestrators share ([`Store::shared`]).
    shared: bool,
}

impl MemStore {
    /// A memory store that stands for one several orchestrators share (etcd).
    pub fn shared() -> MemStore {
        MemStore {
            shared: true,
            ..MemStore::default()
        }
    }
}

#[derive(Default)]
struct MemInner {
    groups: std::collections::BTreeMap<String, GroupState>,
    runbooks: std::collections::BTreeMap<u64, Runbook>,
    events: std::collections::BTreeMap<u64, Event>,
}

impl MemInner {
    /// `rb`, unless a record of a higher revision is held (see [`Store::put_runbook`]).
    fn put_newest(&mut self, rb: &Runbook) {
        if self
            .runbooks
            .get(&rb.id)
            .is_none_or(|stored| stored.revision <= rb.revision)
        {
            self.runbooks.insert(rb.id, rb.clone());
        }
    }
}

impl Store for MemStore {
    fn shared(&self) -> bool {
        self.shared
    }
    fn groups(&self) -> Result<Vec<GroupState>, OrchestratorError> {
        Ok(self
            .inner
            .lock()
            .expect("poisoned")
            .groups
            .values()
            .cloned()
            .collect())
    }
    fn put_group(&self, g: &GroupState) -> Result<(), OrchestratorError> {
        self.inner
            .lock()
            .expect("poisoned")
            .groups
            .insert(g.name.clone(), g.clone());
        Ok(())
    }
    fn put_group_and_runbook(&self, g: &GroupState, rb: &Runbook) -> Result<(), OrchestratorError> {
        let mut i = self.inner.lock().expect("poisoned");
        i.groups.insert(g.name.clone(), g.clone());
        i.put_newest(rb);
        Ok(())
    }
    fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError> {
        self.inner.lock().expect("poisoned").put_newest(rb);
        Ok(())
    }
    fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError> {
        Ok(self
            .inner
            .lock()
            .expect("poisoned")
            .runbooks
            .values()
            .cloned()
            .collect())
    }
    fn delete_runbooks(&self, ids: &[u64]) -> Result<(), OrchestratorError> {
        let mut i = self.inner.lock().expect("poisoned");
        for id in ids {
            i.runbooks.remove(id);
        }
        Ok(())
    }
    fn put_event(&self, e: &Event) -> Result<(), OrchestratorError> {
        self.inner
            .lock()
            .expect("poisoned")
            .events
            .insert(e.id, e.clone());
        Ok(())
    }
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError> {
        Ok(self
            .inner
            .lock()
            .expect("poisoned")
            .events
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
    fn prune_events(
        &self,
        keep: usize,
        before_unix_ms: u64,
        max: usize,
    ) -> Result<usize, OrchestratorError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let mut excess = inner.events.len().saturating_sub(keep);
        let mut removed = 0;
        while removed < max {
            let Some((&id, e)) = inner.events.iter().next() else {
                break;
            };
            if excess == 0 && e.time_unix_ms >= before_unix_ms {
                break;
            }
            inner.events.remove(&id);
            excess = excess.saturating_sub(1);
            removed += 1;
        }
        Ok(removed)
    }
    fn last_event_id(&self) -> Result<u64, OrchestratorError> {
        Ok(self
            .inner
            .lock()
            .expect("poisoned")
            .events
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0))
    }
}
