//! An agent's report within `orchestrator.max_body_bytes`: the part of
//! each site's report that the config fixes, bounded here. A report
//! carries, whatever happens, one result per own check, one per endpoint
//! of each peer site (and per hybrid frontend the site probes), an
//! authority entry per group of the site and a replication status per
//! group with a plan; the agent can hold back command outcomes to fit
//! (agents' `fit.rs`), but none of these. A site in 600 groups sent
//! reports of 90 KB: each refused (413), its agent never heard, the site
//! `unknown` for good, while `check-config` accepted the file.
//!
//! The bound takes every number at its largest, each check's detail at
//! its longest (512 characters, each escaped in JSON), a replication
//! status's texts at 512 bytes, and room for what a report may carry
//! besides: one command outcome cut to travel and, when a group of the
//! site replicates, a page of a divergent list. It is reported at
//! `orchestrator.max_body_bytes`, with the value that fits.

use super::*;

/// `{"name":"","ok":false,"critical":false,"detail":"","elapsed_ms":u64::MAX},`
const CHECK_RESULT: usize = 86;
/// The longest detail of a result (`warden_checks::MAX_DETAIL_CHARS`
/// characters, each a JSON escape at worst: a quote or a backslash).
const DETAIL: usize = 2 * 512;
/// `{"site":"","results":[],"age_ms":u64::MAX},`
const PEER_PROBE: usize = 55;
/// `{"group":"","epoch":u64::MAX,"role":"standby","demoted_at":u64::MAX,
/// "may_push":false,"unfit":""},`
const AUTHORITY: usize = 121;
/// A replication status with every number at its largest and its texts
/// (`error`, `guard`, `drift`) at 512 bytes each, and the authority's
/// `unfit` (a volume not mounted: its path and why) as long.
const REPLICATION: usize = 484 + 4 * 512;
/// The report itself: site, seq, boot, start time and its lists.
const REPORT: usize = 188;
/// One command outcome cut to travel (agents' `fit.rs`: a 1 KiB detail,
/// 16 hooks of 256 bytes, names and numbers).
const OUTCOME: usize = 8 * 1024;
/// A page of a divergent list: about 16 KiB of names, and one name of up
/// to 8 KiB more.
const DIVERGENT_PAGE: usize = 24 * 1024;

/// The length of `s` as a JSON string (quotes and escapes included).
fn json_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

fn result_len(name: &str) -> usize {
    CHECK_RESULT + json_len(name) + DETAIL
}

/// What the groups of one site add to its report.
#[derive(Default)]
struct Share<'a> {
    groups: usize,
    bytes: usize,
    peers: BTreeSet<&'a str>,
    frontends: BTreeSet<&'a str>,
    replicates: bool,
}

impl<'t, 'r> Cx<'t, 'r> {
    /// Every site's report, as large as the config lets it be, must fit in
    /// `orchestrator.max_body_bytes`; the site with the largest is
    /// reported (the value given fits every site's).
    pub(super) fn check_report_sizes(
        &mut self,
        o: &OrchestratorConfig,
        sites: &BTreeMap<String, SiteConfig>,
        groups: &BTreeMap<String, GroupConfig>,
    ) {
        // One pass over the groups (a file may hold 10,000 of them).
        let mut shares: BTreeMap<&str, Share<'_>> = BTreeMap::new();
        for (gname, g) in groups {
            let frontends = match (g.scheme.get_ref(), &g.frontend) {
                (Scheme::Hybrid, Some(f)) => f.get_ref().frontends.iter().collect(),
                _ => Vec::new(),
            };
            for s in g.sites.get_ref() {
                let site = s.get_ref().as_str();
                let share = shares.entry(site).or_default();
                share.groups += 1;
                share.bytes += AUTHORITY + json_len(gname);
                if g.replication.is_some() {
                    share.replicates = true;
                    share.bytes += REPLICATION + json_len(gname);
                }
                let peers = g.sites.get_ref().iter().map(|p| p.get_ref().as_str());
                share.peers.extend(peers.filter(|p| *p != site));
                share
                    .frontends
                    .extend(frontends.iter().map(|f| f.get_ref().as_str()));
            }
        }
        let mut largest: Option<(usize, &str, usize)> = None;
        for (name, site) in sites {
            let share = shares.remove(name.as_str()).unwrap_or_default();
            let need = report_bound(name, site, sites, &share);
            if largest.is_none_or(|(n, _, _)| need > n) {
                largest = Some((need, name, share.groups));
            }
        }
        let Some((need, site, groups_of)) = largest else {
            return;
        };
        if need <= o.max_body_bytes {
            return;
        }
        let key = "orchestrator.max_body_bytes";
        // The value as written; left unset, the default is the limit (said
        // in the message: no value is shown that the file does not hold).
        let value = self.value_at(key);
        let limit = match value {
            Some(_) => "this limit".to_string(),
            None => format!("the default limit of {} bytes", o.max_body_bytes),
        };
        self.push(
            self.at(key),
            key,
            value,
            format!(
                "site {site}'s agent can send a report of up to {need} bytes (its checks, its peers' \
                 endpoints, its {groups_of} groups, room for a command outcome and, with replication, a \
                 divergent page), over \
                 {limit}: the orchestrator would refuse every report of it and the site would stay \
                 unknown; set max_body_bytes = {need} or more (or split the site's groups)"
            ),
        );
    }
}

/// The largest report `site`'s agent can send (see the module doc).
fn report_bound(
    site: &str,
    sc: &SiteConfig,
    sites: &BTreeMap<String, SiteConfig>,
    share: &Share<'_>,
) -> usize {
    let mut n = REPORT + json_len(site) + OUTCOME + share.bytes;
    n += sc.checks.iter().map(|c| result_len(&c.name)).sum::<usize>();
    for p in &share.peers {
        let endpoints = sites.get(*p).map_or(&[][..], |s| &s.endpoints[..]);
        n += PEER_PROBE + json_len(p);
        n += endpoints.iter().map(|e| result_len(&e.name)).sum::<usize>();
    }
    for fe in &share.frontends {
        n += PEER_PROBE + json_len(fe) + result_len(&format!("frontend {fe}"));
    }
    if share.replicates {
        n += DIVERGENT_PAGE;
    }
    n
}
