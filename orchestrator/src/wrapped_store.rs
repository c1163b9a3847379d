//! Test stores that fail like real ones: a [`Wrapped`] store is a
//! [`MemStore`] whose writes of groups and runbooks are first put to the
//! wrapper (`before`: refuse one, as etcd over its request limit or out of
//! space, or a process that died) and told to it once taken (`after`).
//! Everything else goes to the inner store as it is.

use crate::model::{Event, GroupState, Runbook};
use crate::store::{MemStore, Store};
use crate::OrchestratorError;

/// One write of the state (what the wrappers here judge by: the runbook).
#[derive(Clone, Copy)]
pub(crate) enum Write<'a> {
    Group,
    Runbook(&'a Runbook),
    /// A group and its runbook together ([`Store::put_group_and_runbook`]).
    Both(&'a Runbook),
}

impl<'a> Write<'a> {
    /// The runbook written, if any.
    pub(crate) fn runbook(self) -> Option<&'a Runbook> {
        match self {
            Write::Runbook(rb) | Write::Both(rb) => Some(rb),
            Write::Group => None,
        }
    }
}

/// A store made of a [`MemStore`] and the faults it plays.
pub(crate) trait Wrapped: Send + Sync {
    fn inner(&self) -> &MemStore;
    /// Asked before every write of the state; an error refuses it.
    fn before(&self, _w: Write<'_>) -> Result<(), OrchestratorError> {
        Ok(())
    }
    /// Told after every write the inner store took.
    fn after(&self, _w: Write<'_>) {}
}

impl<T: Wrapped> Store for T {
    fn groups(&self) -> Result<Vec<GroupState>, OrchestratorError> {
        self.inner().groups()
    }
    fn put_group(&self, g: &GroupState) -> Result<(), OrchestratorError> {
        self.before(Write::Group)?;
        self.inner().put_group(g)?;
        self.after(Write::Group);
        Ok(())
    }
    fn put_group_and_runbook(&self, g: &GroupState, rb: &Runbook) -> Result<(), OrchestratorError> {
        self.before(Write::Both(rb))?;
        self.inner().put_group_and_runbook(g, rb)?;
        self.after(Write::Both(rb));
        Ok(())
    }
    fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError> {
        self.before(Write::Runbook(rb))?;
        self.inner().put_runbook(rb)?;
        self.after(Write::Runbook(rb));
        Ok(())
    }
    fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError> {
        self.inner().runbooks()
    }
    fn delete_runbooks(&self, ids: &[u64]) -> Result<(), OrchestratorError> {
        self.inner().delete_runbooks(ids)
    }
    fn put_event(&self, e: &Event) -> Result<(), OrchestratorError> {
        self.inner().put_event(e)
    }
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError> {
        self.inner().events(after, limit)
    }
    fn last_event_id(&self) -> Result<u64, OrchestratorError> {
        self.inner().last_event_id()
    }
    fn prune_events(
        &self,
        keep: usize,
        before: u64,
        max: usize,
    ) -> Result<usize, OrchestratorError> {
        self.inner().prune_events(keep, before, max)
    }
}
