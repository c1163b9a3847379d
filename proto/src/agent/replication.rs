//! One group's replication as an agent reports it ([`ReplicationStatus`]):
//! a resync's progress, and the divergent items, sent a page per report
//! ([`divergent_page_fits`]: what a page may hold).

use serde::{Deserialize, Serialize};

/// One group's replication as seen by one site's agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReplicationStatus {
    pub group: String,
    /// `source` (continuous replication to `peer` runs), `resync` (fetching
    /// from `peer`), or `idle`.
    pub role: String,
    #[serde(default)]
    pub peer: Option<String>,
    /// Epoch of the command that started the current role.
    #[serde(default)]
    pub epoch: u64,
    /// `source`: age of the oldest change not yet at the peer (the RPO if this site died now).
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// `resync`: progress of the pass that runs now.
    #[serde(default)]
    pub progress: Option<ResyncProgressWire>,
    /// `resync`: passes finished so far.
    #[serde(default)]
    pub passes: u32,
    /// The last replication error, if the last attempt failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Divergent items found by the last resync and what was done with them:
    /// one page of the full list (at most [`DIVERGENT_PAGE_ITEMS`] items and
    /// about [`DIVERGENT_PAGE_BYTES`] bytes), starting at `divergent_offset`.
    /// The agent sends the pages in turn, and one group's page per report
    /// (the groups with a list take turns; the others' statuses carry their
    /// total and digest and no item), so reports stay small whatever the
    /// lists' lengths and number; the orchestrator assembles the full list
    /// and passes over a status without items.
    #[serde(default)]
    pub divergent: Vec<DivergentWire>,
    /// How many divergent items there are in all.
    #[serde(default)]
    pub divergent_total: u64,
    /// Index of the first item of `divergent` in the full list.
    #[serde(default)]
    pub divergent_offset: u64,
    /// Changes whenever the full list changes (a hash of it).
    #[serde(default)]
    pub divergent_digest: u64,
    /// Set while the mass-delete guard (or an empty / unmounted source) holds
    /// replication: what it saw and what to do. Nothing is deleted until the
    /// operator runs `warden clear GROUP`.
    #[serde(default)]
    pub guard: Option<String>,
    /// What the last audit (a periodic full pass) found changed at the
    /// peer behind replication's back — removed, altered or added there —
    /// and sent again; `None` once an audit finds nothing.
    #[serde(default)]
    pub drift: Option<String>,
    /// Items that cannot be replicated safely (Swift names with dot segments
    /// or control characters): refused, never copied or deleted. First
    /// items only; `refused_total` counts them all.
    #[serde(default)]
    pub refused: Vec<String>,
    #[serde(default)]
    pub refused_total: u64,
}

/// Most divergent items in one report's page.
pub const DIVERGENT_PAGE_ITEMS: usize = 100;
/// About the most bytes of divergent names in one report's page.
pub const DIVERGENT_PAGE_BYTES: usize = 16 * 1024;
/// The longest name (and `moved_to`) of one divergent item: a page of one
/// item may exceed [`DIVERGENT_PAGE_BYTES`] by one such item, no more.
pub const DIVERGENT_NAME_MAX: usize = 8 * 1024;

impl DivergentWire {
    /// What the item counts for in a page's [`DIVERGENT_PAGE_BYTES`].
    pub fn page_bytes(&self) -> usize {
        self.name.len() + self.moved_to.as_ref().map_or(0, String::len) + 64
    }
}

/// Whether `items` is a page an agent cuts: at most
/// [`DIVERGENT_PAGE_ITEMS`] items within [`DIVERGENT_PAGE_BYTES`], or one
/// item alone (however long, within [`DIVERGENT_NAME_MAX`] per name).
pub fn divergent_page_fits(items: &[DivergentWire]) -> bool {
    let names_fit = items.iter().all(|d| {
        d.name.len() <= DIVERGENT_NAME_MAX
            && d.moved_to.as_ref().map_or(0, String::len) <= DIVERGENT_NAME_MAX
            && d.reason.len() <= 64
            && d.action.len() <= 64
    });
    let bytes: usize = items.iter().map(DivergentWire::page_bytes).sum();
    names_fit
        && items.len() <= DIVERGENT_PAGE_ITEMS
        && (items.len() <= 1 || bytes <= DIVERGENT_PAGE_BYTES)
}

/// Items and bytes of a resync pass: done and left.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ResyncProgressWire {
    pub items_done: u64,
    pub bytes_done: u64,
    pub items_left: u64,
    pub bytes_left: u64,
}

/// One divergent item (written at a site that died, never replicated).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DivergentWire {
    pub name: String,
    /// `not_in_manifest`, `changed_since_sync`, `sent_unconfirmed` or
    /// `fetched_unconfirmed`.
    pub reason: String,
    /// `kept`, `quarantined` or `discarded`.
    pub action: String,
    #[serde(default)]
    pub moved_to: Option<String>,
}
