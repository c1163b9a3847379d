//! Groups this node leaves as the store holds them — not acted on, never
//! written — and says so: a group whose record this version cannot read
//! (a state or kind a newer version wrote), a group whose runbook in force
//! it cannot read, and, on a store other orchestrators share (etcd), a
//! group whose record names a site this node's config does not list for
//! it (a newer node's config added the site, or it was removed on this
//! node only). Correcting such a record from this node's config would move
//! users with no failure and no operator order; rewriting one it cannot
//! read would lose what it says. Each is a warn log, an `alert` event and
//! an alert in the status (beside its groups), until the node that reads the
//! record (or whose config lists the site) leads, or this one is restarted
//! with a config (or version) that agrees.

use std::collections::BTreeMap;

use tracing::warn;
use warden_config::Config;

use super::Shared;
use crate::model::{EventKind, GroupState, Phase, Runbook};
use crate::store::{Store, Unreadable};

/// The groups of `cfg` set aside (taken out of `groups`), each with its
/// alert. `unreadable_groups` / `unreadable_runbooks`: records the store
/// holds that this version cannot read.
pub(super) fn set_aside(
    cfg: &Config,
    store: &dyn Store,
    groups: &mut BTreeMap<String, GroupState>,
    runbooks: &BTreeMap<u64, Runbook>,
    unreadable_groups: &[Unreadable],
    unreadable_runbooks: &[Unreadable],
) -> BTreeMap<String, String> {
    let at = store.describe();
    let mut aside = BTreeMap::new();
    for u in unreadable_groups {
        if cfg.groups.contains_key(&u.key) {
            aside.insert(
                u.key.clone(),
                format!(
                    "group {}: its record in {at} cannot be read by this version of warden ({}): \
                     written by a newer one. Not acted on nor written here; a node of the version \
                     that wrote it acts on it (upgrade this one)",
                    u.key, u.cause
                ),
            );
        }
    }
    for u in unreadable_runbooks {
        let (Some(name), Ok(id)) = (u.group.as_deref(), u.key.parse::<u64>()) else {
            continue;
        };
        let Some(g) = groups.get(name) else { continue };
        // Its runbook in force, or a decision the group's record does not
        // reflect yet (at an epoch above the record's, or one it does not
        // say) that is newer than every runbook of the group this version
        // reads. An older one, ended, is history: the group is acted on.
        let newest = runbooks.values().all(|rb| rb.group != name || rb.id < id)
            && u.epoch.is_none_or(|e| e > g.epoch);
        if g.runbook == Some(id) || newest {
            aside.insert(
                name.to_string(),
                format!(
                    "group {name}: its runbook {id} in {at} cannot be read by this version of \
                     warden ({}): written by a newer one. The group is not acted on nor written \
                     here; a node of the version that wrote it finishes the runbook (upgrade \
                     this one)",
                    u.cause
                ),
            );
        }
    }
    if store.shared() {
        for (name, g) in groups.iter() {
            let Some(gc) = cfg.groups.get(name) else {
                continue;
            };
            let sites = gc.site_names();
            let running = g
                .runbook
                .and_then(|id| runbooks.get(&id))
                .filter(|_| g.phase == Phase::Running);
            let named = [
                Some((g.active.as_str(), "its active site")),
                g.pending
                    .as_ref()
                    .map(|p| (p.to.as_str(), "the target of its pending decision")),
                running.map(|rb| (rb.from.as_str(), "the site its running runbook moves from")),
                running.map(|rb| (rb.to.as_str(), "the site its running runbook moves to")),
            ];
            let missing_site = named
                .into_iter()
                .flatten()
                .find(|(s, _)| !sites.iter().any(|n| n == s))
                .map(|(site, role)| (format!("site {site}"), role));
            // `hybrid`: the frontend its DNS name points at (a frontend
            // another node's config added to the group).
            let missing_frontend = || {
                g.frontend
                    .as_ref()
                    .filter(|fe| {
                        !gc.frontend
                            .as_ref()
                            .is_some_and(|f| f.get_ref().is_served_by(fe))
                    })
                    .map(|fe| {
                        (
                            format!("frontend {fe}"),
                            "the frontend its DNS name points at",
                        )
                    })
            };
            if let Some((what, role)) = missing_site.or_else(missing_frontend) {
                aside.insert(
                    name.clone(),
                    format!(
                        "group {name}: the record in {at} names {what} as {role}, which this \
                         node's config does not list for the group (sites: {}): another node's \
                         config is newer, or it was removed on this node only. Users stay where \
                         the record says, and the group is not acted on here (no failover, no \
                         failback, no reset to the primary) until the configs agree: deploy the \
                         same group to every node and restart this one, or let a node whose \
                         config lists {what} lead",
                        sites.join(", ")
                    ),
                );
            }
        }
    }
    for (name, why) in &aside {
        warn!(group = %name, "{why}");
        groups.remove(name);
    }
    aside
}

/// The highest runbook id among those this version cannot read (a new
/// runbook is numbered above it, never written over it).
pub(super) fn highest_unreadable_runbook(unreadable: &[Unreadable]) -> u64 {
    unreadable
        .iter()
        .filter_map(|u| u.key.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

impl Shared {
    /// An `alert` event for each group set aside at the last load.
    pub(super) fn announce_untouched(&self) {
        let aside = self.lock().untouched.clone();
        for (name, why) in aside {
            self.event(EventKind::Alert, Some(&name), None, why, vec![], None);
        }
    }

    /// The alerts of the groups set aside (the status lists them apart:
    /// those groups are not in it).
    pub(super) fn untouched_alerts(&self) -> Vec<String> {
        self.lock().untouched.values().cloned().collect()
    }
}

/// The error for an order about `group`, which the state (`st`) does not
/// hold: its alert when it is set aside, else not found.
pub(super) fn missing_group(st: &super::State, group: &str) -> crate::OrchestratorError {
    match st.untouched.get(group) {
        Some(why) => crate::OrchestratorError::Conflict(why.clone()),
        None => crate::OrchestratorError::NotFound(format!("group {group:?}")),
    }
}
