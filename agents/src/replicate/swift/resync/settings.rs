//! [`SwiftResyncerSettings`]: what a [`SwiftResyncer`] resyncs (both
//! clusters, the placement containers, the manifest) and its defaults.

use super::*;

/// Settings of a [`SwiftResyncer`]. [`SwiftResyncerSettings::new`] fills the defaults.
#[derive(Debug, Clone)]
pub struct SwiftResyncerSettings {
    /// This (stale, returning) cluster.
    pub here: SwiftSettings,
    /// The active peer cluster.
    pub peer: SwiftSettings,
    /// The group's placement list.
    pub containers: Vec<String>,
    /// The pair manifest (the same file the replicator of this pair keeps).
    pub manifest: PathBuf,
    /// Fetches and deletes in flight at once (default 16).
    pub concurrency: usize,
    /// The mass-delete guard's limits (default [`DeleteGuard::default`]).
    pub guard: DeleteGuard,
}

impl SwiftResyncerSettings {
    /// Settings with the default concurrency (16).
    pub fn new(
        here: SwiftSettings,
        peer: SwiftSettings,
        containers: Vec<String>,
        manifest: impl Into<PathBuf>,
    ) -> Self {
        SwiftResyncerSettings {
            here,
            peer,
            containers,
            manifest: manifest.into(),
            concurrency: 16,
            guard: DeleteGuard::default(),
        }
    }
}
