//! One reconciliation pass's reads ([`ReadPass`]): a routing element that
//! can be read for every group at once (a `warden frontend`'s route table)
//! is read once per pass, not once per group.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::StrategyError;

/// A routing element's route of every group it serves: group → (site,
/// epoch, the `seq` of the newest hold order it took at its hold epoch).
pub type RouteTable = BTreeMap<String, (Option<String>, u64, Option<u64>)>;

/// Why a table could not be read, kept to give every reader of the pass
/// the same error ([`StrategyError`] is not `Clone`).
#[derive(Debug, Clone)]
pub(crate) struct TableError {
    transient: bool,
    element: String,
    reason: String,
}

impl TableError {
    pub(crate) fn of(e: StrategyError) -> TableError {
        let transient = e.is_transient();
        match e {
            StrategyError::Unreachable { element, reason }
            | StrategyError::Rejected { element, reason } => TableError {
                transient,
                element,
                reason,
            },
            other => TableError {
                transient,
                element: String::new(),
                reason: other.to_string(),
            },
        }
    }

    pub(crate) fn error(&self, element: &str) -> StrategyError {
        let element = if self.element.is_empty() {
            element.to_string()
        } else {
            self.element.clone()
        };
        if self.transient {
            StrategyError::Unreachable {
                element,
                reason: self.reason.clone(),
            }
        } else {
            StrategyError::Rejected {
                element,
                reason: self.reason.clone(),
            }
        }
    }
}

type Cell = Arc<OnceCell<Result<Arc<RouteTable>, TableError>>>;

/// The reads of one pass over every group (the orchestrator's
/// reconciliation): the first group that asks for an element's table reads
/// it, the others of the pass share that reading (and its error, when the
/// element cannot be read: one attempt per pass, not one per group). Make
/// one per pass, after the snapshot of the decided state it is compared
/// with: every table is then at least as new as that snapshot.
#[derive(Default)]
pub struct ReadPass {
    tables: Mutex<HashMap<String, Cell>>,
}

impl std::fmt::Debug for ReadPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPass")
            .field("tables", &self.tables_read())
            .finish()
    }
}

impl ReadPass {
    /// A pass with nothing read yet.
    pub fn new() -> ReadPass {
        ReadPass::default()
    }

    /// How many element tables this pass has read (or tried to).
    pub fn tables_read(&self) -> usize {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|c| c.initialized())
            .count()
    }

    /// The table of element `key`, read with `read` the first time this
    /// pass asks for it.
    pub(crate) async fn table<F, Fut>(
        &self,
        key: &str,
        read: F,
    ) -> Result<Arc<RouteTable>, TableError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RouteTable, TableError>>,
    {
        let cell = self
            .tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| async { read().await.map(Arc::new) })
            .await
            .clone()
    }
}
