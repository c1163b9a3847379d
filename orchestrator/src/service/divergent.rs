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
use crate::model::{EventKind, Runbook, Stored};

/// Most items kept of one list (a lying agent cannot make the orchestrator hold more).
pub(super) const ITEMS_KEPT: u64 = 100_000;
/// Items of the list written into the event (the rest through the API).
const IN_EVENT: usize = 20;

/// Most bytes of one (site, group)'s pages held while the list is put
/// together (item sizes as an agent counts them for a page): a list longer
/// than that is kept up to where its pages fit, like a list cut at
/// [`ITEMS_KEPT`], and pages that never complete the list hold no more.
pub(super) const ASSEMBLY_BYTES: usize = 16 * 1024 * 1024;

/// One (site, group)'s list being put together.
#[derive(Debug)]
pub(super) struct Assembly {
    digest: u64,
    total: u64,
    pages: BTreeMap<u64, Vec<DivergentWire>>,
    /// Bytes of `pages`.
    bytes: usize,
    /// Pages from this offset on are not kept (over [`ASSEMBLY_BYTES`]).
    cap: u64,
}

impl Default for Assembly {
    fn default() -> Self {
        Assembly {
            digest: 0,
            total: 0,
            pages: BTreeMap::new(),
            bytes: 0,
            cap: u64::MAX,
        }
    }
}

fn page_bytes(items: &[DivergentWire]) -> usize {
    items.iter().map(DivergentWire::page_bytes).sum()
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
            *self = Assembly {
                digest: r.divergent_digest,
                ..Assembly::default()
            };
            return Some(Vec::new());
        }
        if self.digest != r.divergent_digest || self.total != total {
            *self = Assembly {
                digest: r.divergent_digest,
                total,
                ..Assembly::default()
            };
        }
        if r.divergent_offset < total.min(ITEMS_KEPT).min(self.cap) && !r.divergent.is_empty() {
            self.bytes += page_bytes(&r.divergent);
            if let Some(old) = self.pages.insert(r.divergent_offset, r.divergent.clone()) {
                self.bytes -= page_bytes(&old);
            }
            // Over the budget: the pages furthest into the list go, and
            // the list is kept up to where they started.
            while self.bytes > ASSEMBLY_BYTES {
                let Some((off, page)) = self.pages.pop_last() else {
                    break;
                };
                self.bytes -= page_bytes(&page);
                self.cap = off;
            }
        }
        let want = total.min(ITEMS_KEPT).min(self.cap);
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
        // The same list as stored keeps what a newer version wrote into
        // its items; a new list is a new fact, as this version reads it.
        if g.divergent.iter().map(|d| &d.known).eq(list.iter()) && g.divergent_not_stored == 0 {
            return;
        }
        let mut ng = g;
        ng.divergent = list.into_iter().map(Stored::from).collect();
        ng.divergent_not_stored = 0;
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

    /// A page of one item whose name is as long as a page allows.
    fn long_page(total: u64, offset: u64) -> ReplicationStatus {
        let mut r = page(total, offset, 1, 5);
        r.divergent[0].name = format!("{offset:08}{}", "x".repeat(8 * 1024 - 8));
        r
    }

    #[test]
    fn pages_that_never_complete_hold_at_most_the_budget() {
        // A lying agent: long one-item pages, never the first.
        let mut a = Assembly::default();
        for off in 1..5_000 {
            assert!(a.add(&long_page(100_000, off)).is_none());
        }
        assert!(a.bytes <= ASSEMBLY_BYTES, "{} bytes held", a.bytes);
        assert_eq!(
            a.bytes,
            a.pages.values().map(|p| page_bytes(p)).sum::<usize>()
        );
    }

    #[test]
    fn a_list_over_the_budget_is_kept_up_to_where_its_pages_fit() {
        let mut a = Assembly::default();
        let mut full = None;
        for off in 0..4_000 {
            if let Some(l) = a.add(&long_page(4_000, off)) {
                full = Some(l);
            }
        }
        let list = full.expect("the list completes, cut where the budget ends");
        let per_item = long_page(1, 0).divergent[0].page_bytes();
        assert_eq!(list.len(), ASSEMBLY_BYTES / per_item);
        for (i, d) in list.iter().enumerate() {
            assert!(d.name.starts_with(&format!("{i:08}")), "item {i} in order");
        }
    }
}
