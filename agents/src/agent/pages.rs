//! The divergent pages a report carries: one page of one group's list per
//! report, so a report stays within the orchestrator's body limit however
//! many groups have a list and however long each is.
//!
//! Each group's list is cut into fixed pages (at most
//! [`DIVERGENT_PAGE_ITEMS`] items and about [`DIVERGENT_PAGE_BYTES`] bytes,
//! boundaries counted from the start of the list, so every report cuts the
//! same pages). The groups that have a list take turns from report to
//! report (`seq`), and each group's pages are taken in turn across its own
//! turns; every other group's status goes with its total, digest and no
//! items, which the orchestrator's assembly passes over. A page per group
//! in every report made a site with four groups holding lists send reports
//! over the default `max_body_bytes` (64 KiB): every one refused, the site's
//! agent silent, its outcomes never taken.

use std::hash::{Hash, Hasher};

use crate::wire::{ReplicationStatus, DIVERGENT_PAGE_BYTES, DIVERGENT_PAGE_ITEMS};

/// Every group's status with its divergent list cut for report `seq`: one
/// page of the group whose turn it is, none of the others.
pub(super) fn page_replication(
    statuses: Vec<ReplicationStatus>,
    seq: u64,
) -> Vec<ReplicationStatus> {
    let listed = statuses.iter().filter(|r| !r.divergent.is_empty()).count() as u64;
    let mut nth = 0u64;
    statuses
        .into_iter()
        .map(|r| {
            if r.divergent.is_empty() {
                return page_divergent(r, None);
            }
            let turn = seq % listed == nth;
            nth += 1;
            page_divergent(r, turn.then_some(seq / listed))
        })
        .collect()
}

/// Cut a status's divergent list to its page number `round` (modulo the
/// number of pages), or to no item at all (`None`: another group's turn).
/// Total and digest are always set.
fn page_divergent(mut r: ReplicationStatus, round: Option<u64>) -> ReplicationStatus {
    let all = std::mem::take(&mut r.divergent);
    let total = all.len();
    r.divergent_total = total as u64;
    if total == 0 {
        return r;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for d in &all {
        (&d.name, &d.reason, &d.action, &d.moved_to).hash(&mut h);
    }
    r.divergent_digest = h.finish();
    let Some(round) = round else {
        return r;
    };
    // Page boundaries are fixed by item count and size from the start of the
    // list, so every report of the same list cuts the same pages.
    let mut starts = vec![0usize];
    let (mut n, mut bytes) = (0usize, 0usize);
    for (i, d) in all.iter().enumerate() {
        let size = d.page_bytes();
        if n > 0 && (n == DIVERGENT_PAGE_ITEMS || bytes + size > DIVERGENT_PAGE_BYTES) {
            starts.push(i);
            n = 0;
            bytes = 0;
        }
        n += 1;
        bytes += size;
    }
    let page = (round % starts.len() as u64) as usize;
    let from = starts[page];
    let to = starts.get(page + 1).copied().unwrap_or(total);
    r.divergent_offset = from as u64;
    r.divergent = all[from..to].to_vec();
    r
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::wire::{divergent_page_fits, AgentReport, DivergentWire};

    /// The orchestrator's default `max_body_bytes`.
    const DEFAULT_BODY_LIMIT: usize = 65_536;

    /// `groups` statuses, group `g` with `items[g]` divergent items of
    /// realistic names (a failback that found what a site wrote alone).
    fn statuses(items: &[usize]) -> Vec<ReplicationStatus> {
        items
            .iter()
            .enumerate()
            .map(|(g, &n)| ReplicationStatus {
                group: format!("g{g}"),
                role: "idle".into(),
                divergent: (0..n)
                    .map(|i| DivergentWire {
                        name: format!("uploads/2026/12/{g}/{i:05}-{}", "x".repeat(60)),
                        reason: "not_in_manifest".into(),
                        action: "quarantined".into(),
                        moved_to: Some(format!(".warden-quarantine/7/uploads/{i:05}")),
                    })
                    .collect(),
                ..ReplicationStatus::default()
            })
            .collect()
    }

    fn report(replication: Vec<ReplicationStatus>, seq: u64) -> AgentReport {
        AgentReport {
            site: "a".into(),
            seq,
            boot: "0".repeat(32),
            started_unix_ms: 1,
            checks: Vec::new(),
            peers: Vec::new(),
            outcomes: Vec::new(),
            replication,
            authority: Vec::new(),
            taken_term: None,
            taken_cluster: None,
            left_clusters: vec![],
        }
    }

    /// Six groups with long lists: every report stays far within the
    /// orchestrator's default body limit, carries one page that the
    /// orchestrator admits, and within a few rounds every item of every
    /// list has travelled.
    #[test]
    fn many_groups_with_lists_keep_every_report_within_the_body_limit() {
        let items = [1_000, 250, 5, 0, 1_000, 120, 400];
        let mut seen: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for seq in 1..=200 {
            let paged = page_replication(statuses(&items), seq);
            let body = serde_json::to_string(&report(paged.clone(), seq)).unwrap();
            assert!(
                body.len() <= DEFAULT_BODY_LIMIT / 2,
                "report {seq}: {} bytes",
                body.len()
            );
            let carrying: Vec<_> = paged.iter().filter(|r| !r.divergent.is_empty()).collect();
            assert_eq!(carrying.len(), 1, "one page per report");
            for r in &paged {
                let n = items[r.group[1..].parse::<usize>().unwrap()];
                assert_eq!(r.divergent_total, n as u64, "{}", r.group);
                assert!(divergent_page_fits(&r.divergent));
                let got = seen.entry(r.group.clone()).or_default();
                got.extend((0..r.divergent.len() as u64).map(|i| r.divergent_offset + i));
            }
        }
        for (g, &n) in items.iter().enumerate() {
            let got = seen.get(&format!("g{g}")).cloned().unwrap_or_default();
            assert_eq!(got.len(), n, "g{g}: every item travelled");
        }
        // The same list, the same digest, whichever group's turn it is.
        let a = page_replication(statuses(&items), 1);
        let b = page_replication(statuses(&items), 2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.divergent_digest, y.divergent_digest);
        }
    }
}
