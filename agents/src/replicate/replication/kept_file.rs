//! A map of group → record kept as one JSON file in the agent's state
//! directory, for its next process (the header changes not landed, the
//! divergent lists): read at start (missing: empty; unreadable: empty, said
//! at warn with `what`), written whole and durably on every change, removed
//! when empty.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

/// The map kept at `path` (`what` names it in the warning of an unreadable one).
pub(super) fn load<T: DeserializeOwned>(path: &Path, what: &str) -> BTreeMap<String, T> {
    match std::fs::read(path) {
        Ok(body) => serde_json::from_slice(&body).unwrap_or_else(|e| {
            warn!(path = %path.display(), cause = %e, "unreadable record of {what}: it starts empty");
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}

/// Writes `map` to `path` (atomically and durably; an empty map removes
/// the file).
pub(super) fn save<T: Serialize>(path: &Path, map: &BTreeMap<String, T>) -> std::io::Result<()> {
    if map.is_empty() {
        return warden_config::durable::remove(path);
    }
    let body = serde_json::to_vec(map).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    warden_config::durable::replace(path, &body)
}
