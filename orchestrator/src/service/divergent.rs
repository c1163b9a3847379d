//! Divergent items reported by agents, assembled from report pages.
//!
//! An agent's report carries one page of its divergent list at a time (so a
//! report stays under the body limit whatever the list's length); this module
//! puts the pages back together per (site, group) and hands out the full list
//! once every page of the same version (`divergent_digest`) has arrived. The
//! group keeps the full list (status shows the first items, the API pages it:
//! `GET /v1/groups/{group}/divergent`).

use std::collections::BTreeMap;

use warden_proto::agent::{DivergentWire, ReplicationStatus};

use super::{Shared, State};
use crate::model::{EventKind, Runbook};

/// Most items kept of one list (a lying agent cannot make the orchestrator hold more).
pub(super) const ITEMS_KEPT: u64 = 100_000;
/// Items of the list written into the event (the rest through the API).
const IN_EVENT: usize = 20;

/// One (site, group)'s list being put together.
#[derive(Debug, Default)]
pub(super) struct Assembly {
    digest: u64,
    total: u64,
    pages: BTreeMap<u64, Vec<DivergentWire>>,
}

impl Assembly {
    /// Add the page `r` carries; the full list when it is complete.
    pub(super) fn add(&mut self, r: &ReplicationStatus) -> Option<Vec<DivergentWire>> {
        // Agents before paging sent the whole list with no total.
        let total = if r.divergent_total == 0 {
            r.divergent.len() as u64
        } else {
            r.divergent_total
        };
        if total == 0 {
            self.pages.clear();
            self.total = 0;
            self.digest = r.divergent_digest;
            return Some(Vec::new());
        }
        if self.digest != r.divergent_digest || self.total != total {
            self.pages.clear();
            self.digest = r.divergent_digest;
            self.total = total;
        }
        let want = total.min(ITEMS_KEPT);
        if r.divergent_offset < want && !r.divergent.is_empty() {
            self.pages.insert(r.divergent_offset, r.divergent.clone());
        }
        // Complete when the pages cover 0..want without a gap.
        let mut next = 0u64;
        for (&off, items) in &self.pages {
            if off > next {
                return None;
            }
            next = next.max(off + items.len() as u64);
        }
        if next < want {
            return None;
        }
        let mut out = Vec::with_capacity(want as usize);
        let mut at = 0u64;
        for (&off, items) in &self.pages {
            for (i, d) in items.iter().enumerate() {
                if off + i as u64 == at && at < want {
                    out.push(d.clone());
                    at += 1;
                }
            }
        }
        Some(out)
    }
}

impl Shared {
    /// Take the divergent pages of one report (state lock held).
    pub(crate) fn divergent_intake_locked(
        &self,
        st: &mut State,
        site: &str,
        reps: &[ReplicationStatus],
    ) {
        for r in reps {
            if !self.cfg.groups.contains_key(&r.group) {
                continue;
            }
            let key = (site.to_string(), r.group.clone());
            let full = st.divergent_pages.entry(key).or_default().add(r);
            if let Some(list) = full {
                if !list.is_empty() {
                    self.set_divergent_locked(st, &r.group, site, list, None);
                }
            }
        }
    }

    /// After a resync step: record the divergent list of `site` (if it is
    /// complete; otherwise the intake records it when the last page arrives).
    pub(crate) fn record_divergent(&self, rb: &Runbook, site: &str) {
        let mut st = self.lock();
        let key = (site.to_string(), rb.group.clone());
        let Some((_, r)) = Self::replication_status(&st, site, &rb.group) else {
            return;
        };
        let full = st.divergent_pages.entry(key).or_default().add(&r);
        if let Some(list) = full {
            if !list.is_empty() {
                self.set_divergent_locked(&mut st, &rb.group, site, list, Some(rb.id));
            }
        }
    }

    /// Keep `list` as the group's divergent items; one event when it changed.
    fn set_divergent_locked(
        &self,
        st: &mut State,
        group: &str,
        site: &str,
        list: Vec<DivergentWire>,
        runbook: Option<u64>,
    ) {
        let Some(g) = st.groups.get(group).cloned() else {
            return;
        };
        if g.divergent == list {
            return;
        }
        let mut ng = g;
        ng.divergent = list;
        self.persist(&ng);
        let n = ng.divergent.len();
        let shown: Vec<String> = ng
            .divergent
            .iter()
            .take(IN_EVENT)
            .map(|d| {
                format!(
                    "{} ({}, {}{})",
                    d.name,
                    d.reason,
                    d.action,
                    d.moved_to
                        .as_ref()
                        .map(|m| format!(" to {m}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        st.groups.insert(group.to_string(), ng);
        let policy = self
            .cfg
            .groups
            .get(group)
            .and_then(|g| g.replication())
            .map(|x| x.divergent.as_str())
            .unwrap_or_default();
        self.event_locked(
            st,
            EventKind::Divergent,
            Some(group),
            Some(site),
            format!(
                "{n} divergent item(s) at {site} (written there, never replicated; policy {policy}): {}{}",
                shown.join(", "),
                if n > IN_EVENT {
                    format!(
                        ", … and {} more (GET /v1/groups/{group}/divergent)",
                        n - IN_EVENT
                    )
                } else {
                    String::new()
                }
            ),
            vec![],
            runbook,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: u64) -> DivergentWire {
        DivergentWire {
            name: format!("f{i}"),
            reason: "not_in_manifest".into(),
            action: "quarantined".into(),
            moved_to: None,
        }
    }

    fn page(total: u64, offset: u64, n: u64, digest: u64) -> ReplicationStatus {
        ReplicationStatus {
            group: "g".into(),
            role: "resync".into(),
            divergent: (offset..(offset + n).min(total)).map(item).collect(),
            divergent_total: total,
            divergent_offset: offset,
            divergent_digest: digest,
            ..Default::default()
        }
    }

    #[test]
    fn pages_in_any_order_make_the_full_list() {
        let mut a = Assembly::default();
        assert!(a.add(&page(250, 100, 100, 7)).is_none());
        assert!(a.add(&page(250, 0, 100, 7)).is_none());
        let full = a.add(&page(250, 200, 100, 7)).unwrap();
        assert_eq!(full.len(), 250);
        assert_eq!(full[0].name, "f0");
        assert_eq!(full[249].name, "f249");
    }

    #[test]
    fn a_new_version_starts_over() {
        let mut a = Assembly::default();
        assert!(a.add(&page(200, 0, 100, 1)).is_none());
        assert!(a.add(&page(200, 100, 100, 2)).is_none(), "mixed versions");
        assert_eq!(a.add(&page(200, 0, 100, 2)).unwrap().len(), 200);
    }

    #[test]
    fn old_agents_send_the_whole_list() {
        let mut a = Assembly::default();
        let mut r = page(3, 0, 3, 0);
        r.divergent_total = 0;
        assert_eq!(a.add(&r).unwrap().len(), 3);
    }

    #[test]
    fn a_lying_total_keeps_memory_bounded() {
        let mut a = Assembly::default();
        for off in (0..ITEMS_KEPT + 500).step_by(100) {
            let _ = a.add(&page(u64::MAX, off, 100, 3));
        }
        let kept: usize = a.pages.values().map(Vec::len).sum();
        assert!(kept as u64 <= ITEMS_KEPT);
    }
}
