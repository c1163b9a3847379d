//! What the orchestrator takes of an agent's report. A report is untrusted
//! input from one site (its token proved which): it may speak only of what
//! that site's agent observes — its own checks, probes of its peers (the
//! sites it shares a group with, and its hybrid groups' frontends), the
//! replication and authority of groups it belongs to. Anything else is
//! dropped before it reaches the evidence (an agent of another group must
//! not count as a vantage point), and said once per site and subject in the
//! log: an honest agent sends it only when its config differs from the
//! orchestrator's. Every text is cut to size (the same bounds as command
//! outcomes), and a divergent page larger than an agent ever cuts is dropped.

use tracing::warn;
use warden_proto::agent::{divergent_page_fits, AgentReport, CheckResult};

use super::Shared;
use crate::text::{cut, printable};

/// Longest check or hook name kept.
const NAME_MAX: usize = 256;
/// Longest check detail kept (as in a command outcome's checks).
const DETAIL_MAX: usize = 512;
/// Most results kept of one peer probe (one per endpoint of the peer).
const RESULTS_MAX: usize = 64;
/// Longest replication error or guard message kept.
const TEXT_MAX: usize = 2048;
/// Most refused names kept of one replication status (first items only).
const REFUSED_MAX: usize = 100;

fn bound_check(c: &mut CheckResult) {
    cut(&mut c.name, NAME_MAX);
    cut(&mut c.detail, DETAIL_MAX);
}

impl Shared {
    /// Drop from `rep` what its site may not report and cut its texts to
    /// size (`rep.site` is already the token's site).
    pub(crate) fn admit_report(&self, rep: &mut AgentReport) {
        let site = rep.site.clone();
        let mut dropped: Vec<String> = Vec::new();
        let probes = self.site_probes.get(&site);
        rep.peers.retain(|p| {
            if p.site == site {
                return false; // its own service is in its checks
            }
            let ok = probes.is_some_and(|t| t.contains(&p.site));
            if !ok {
                dropped.push(if self.is_probe_target(&p.site) {
                    format!("a probe of {}, which it does not probe", p.site)
                } else {
                    // Not named: what is said once per site stays bounded
                    // whatever names a report makes up.
                    "a probe of a site or hybrid frontend not in this orchestrator's config".into()
                });
            }
            ok
        });
        for c in &mut rep.checks {
            bound_check(c);
        }
        for p in &mut rep.peers {
            p.results.truncate(RESULTS_MAX);
            for c in &mut p.results {
                bound_check(c);
            }
        }
        let groups = self.site_groups.get(&site);
        let member = |g: &str| groups.is_some_and(|gs| gs.iter().any(|x| x == g));
        let mut seen = std::collections::HashSet::new();
        rep.replication.retain(|r| {
            let replicated = self
                .cfg
                .groups
                .get(&r.group)
                .is_some_and(|g| g.replication.is_some());
            if !(member(&r.group) && replicated) {
                dropped.push(if self.cfg.groups.contains_key(&r.group) {
                    format!(
                        "replication of group {}, not one of its replicated groups",
                        r.group
                    )
                } else {
                    "replication of a group not in the config".to_string()
                });
                return false;
            }
            seen.insert(r.group.clone())
        });
        for r in &mut rep.replication {
            cut(&mut r.role, NAME_MAX);
            if let Some(p) = &mut r.peer {
                cut(p, NAME_MAX);
            }
            if let Some(e) = &mut r.error {
                cut(e, TEXT_MAX);
            }
            if let Some(g) = &mut r.guard {
                cut(g, TEXT_MAX);
            }
            if let Some(d) = &mut r.drift {
                cut(d, TEXT_MAX);
            }
            r.refused.truncate(REFUSED_MAX);
            for n in &mut r.refused {
                cut(n, NAME_MAX * 4);
            }
            if !divergent_page_fits(&r.divergent) {
                dropped.push(format!(
                    "a divergent page of group {} larger than an agent cuts",
                    r.group
                ));
                r.divergent.clear();
            }
        }
        rep.authority.retain(|a| member(&a.group));
        for a in &mut rep.authority {
            cut(&mut a.role, NAME_MAX);
            if let Some(u) = &mut a.unfit {
                cut(u, TEXT_MAX);
            }
        }
        for what in dropped {
            let first = self
                .admit_warned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((site.clone(), what.clone()));
            if first {
                warn!(
                    site = %site,
                    "report: {} dropped (not this site's to report; said once: an agent whose config differs from the orchestrator's sends it)",
                    printable(&what)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::time::Instant;
    use warden_proto::agent::{DivergentWire, PeerProbe, ReplicationStatus};

    use super::super::fresh_checks_tests::report;
    use super::super::harness::{check, many_groups_text, start_from, test_dir};
    use super::super::Shared;
    use crate::store::MemStore;

    /// Groups g0 (s0, s1) and g1 (s2, s3); g0 replicates.
    fn two_groups() -> Arc<Shared> {
        let dir = test_dir(false, 1);
        let text = many_groups_text(&dir, 2).replace(
            "[groups.g1]",
            "[groups.g0.replication]\nplan = \"none\"\n[groups.g1]",
        );
        start_from(&text, &dir, Arc::new(MemStore::default()))
            .expect("config")
            .0
    }

    fn probe(site: &str, ok: bool) -> PeerProbe {
        PeerProbe {
            site: site.into(),
            results: vec![check(ok)],
            age_ms: 0,
        }
    }

    fn vantages(s: &Shared, site: &str) -> Vec<String> {
        let st = s.lock();
        st.detector
            .evidence(&st.evidence, site, Instant::now())
            .into_iter()
            .map(|r| r.vantage)
            .collect()
    }

    /// Probes of made-up sites (an agent's config ahead of the
    /// orchestrator's, or a token holder's inventions) are dropped from
    /// the evidence, and what is said once about them stays one entry per
    /// site however many names the reports make up.
    #[tokio::test(start_paused = true)]
    async fn probes_of_sites_not_in_the_config_are_dropped_and_said_once_per_site() {
        let s = two_groups();
        for seq in 1..=50 {
            let mut r = report("s1", seq, vec![]);
            r.peers = vec![probe(&format!("made-up-{seq}"), false), probe("s0", true)];
            s.accept_report(r);
        }
        let of_s0 = vantages(&s, "s0");
        assert!(of_s0.contains(&"peer:s1".to_string()), "{of_s0:?}");
        let said = s.admit_warned.lock().unwrap();
        assert_eq!(
            said.iter().filter(|(site, _)| site == "s1").count(),
            1,
            "{said:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_site_of_another_group_is_no_vantage_point() {
        let s = two_groups();
        // s2 (group g1 only) says s0 (group g0) is down; s0's own peer s1 too.
        let mut r = report("s2", 1, vec![]);
        r.peers = vec![probe("s0", false), probe("s3", true)];
        s.accept_report(r);
        let mut r = report("s1", 1, vec![]);
        r.peers = vec![probe("s0", false)];
        s.accept_report(r);
        let of_s0 = vantages(&s, "s0");
        assert!(of_s0.contains(&"peer:s1".to_string()), "{of_s0:?}");
        assert!(
            !of_s0.iter().any(|v| v.contains("s2")),
            "s2 shares no group with s0, yet counts as its vantage point: {of_s0:?}"
        );
        // Its probe of its own peer is kept.
        assert!(vantages(&s, "s3").contains(&"peer:s2".to_string()));
        // The one-pass table is the config's rule, site by site.
        for site in s.cfg.sites.keys() {
            let want: std::collections::HashSet<String> =
                s.cfg.probe_targets_of(site).into_iter().collect();
            assert_eq!(s.site_probes[site], want, "{site}");
        }
    }

    fn divergent_status(group: &str, name: &str) -> ReplicationStatus {
        ReplicationStatus {
            group: group.into(),
            role: "resync".into(),
            divergent: vec![DivergentWire {
                name: name.into(),
                reason: "not_in_manifest".into(),
                action: "kept".into(),
                moved_to: None,
            }],
            divergent_total: 1,
            divergent_digest: 9,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn replication_is_taken_only_for_the_sites_own_replicated_groups() {
        let s = two_groups();
        // s2 writes a divergent list into g0 (not its group); s2 and s3
        // into g1 (no replication plan): all dropped.
        let mut r = report("s2", 1, vec![]);
        r.replication = vec![
            divergent_status("g0", "/etc/forged"),
            divergent_status("g1", "/x"),
        ];
        let mut admitted = r.clone();
        s.admit_report(&mut admitted);
        assert!(admitted.replication.is_empty(), "{admitted:?}");
        s.accept_report(r);
        assert!(s.lock().groups["g0"].divergent.is_empty());
        // s1's list for g0 is taken.
        let mut r = report("s1", 1, vec![]);
        r.replication = vec![divergent_status("g0", "/var/lib/written-at-s1")];
        s.accept_report(r);
        let kept = s.lock().groups["g0"].divergent.clone();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name, "/var/lib/written-at-s1");
    }

    #[tokio::test(start_paused = true)]
    async fn texts_are_cut_and_oversized_pages_dropped() {
        let s = two_groups();
        let mut r = report("s1", 1, vec![]);
        let mut c = check(false);
        c.name = "n".repeat(10_000);
        c.detail = "d".repeat(60_000);
        r.checks = vec![c];
        let mut p = probe("s0", false);
        p.results = vec![check(false); 500];
        r.peers = vec![p];
        // 101 items: more than an agent puts in a page.
        let mut page = divergent_status("g0", "/a");
        page.divergent = vec![page.divergent[0].clone(); 101];
        page.divergent_total = 101;
        page.error = Some("e".repeat(100_000));
        r.replication = vec![page];
        s.admit_report(&mut r);
        assert!(r.checks[0].name.len() <= super::NAME_MAX + 3);
        assert!(r.checks[0].detail.len() <= super::DETAIL_MAX + 3);
        assert_eq!(r.peers[0].results.len(), super::RESULTS_MAX);
        assert!(r.replication[0].divergent.is_empty());
        assert!(r.replication[0].error.as_ref().unwrap().len() <= super::TEXT_MAX + 3);
    }
}
