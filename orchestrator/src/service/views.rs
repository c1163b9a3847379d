//! Operator views of the live service (`warden status`, `/v1/groups`,
//! `/v1/sites`, runbooks, divergent pages): read-only snapshots built from the
//! state under its lock; the API only serializes them.

use super::*;
use crate::model::{EvidenceRow, Pending, Phase};
use serde::{Deserialize, Serialize};

/// Health of one site as the orchestrator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteView {
    pub name: String,
    /// Last round's verdict: healthy, down, path_fault, dead_agent, unconfirmed, unknown.
    pub verdict: String,
    pub reason: String,
    pub confirmed_down: bool,
    pub down_rounds: u32,
    pub healthy_rounds: u32,
    /// Time left before a recovering site counts as recovered.
    pub hold_down_left_ms: Option<u64>,
    pub evidence: Vec<EvidenceRow>,
}

/// A group as shown by `warden status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupView {
    pub name: String,
    pub scheme: String,
    pub primary: String,
    pub active: String,
    pub epoch: u64,
    pub phase: Phase,
    pub maintenance: bool,
    /// The group's maintenance change (`GroupState::maintenance_seq`): what
    /// `POST …/maintenance` may name as read.
    #[serde(default)]
    pub maintenance_seq: u64,
    /// Placed on a site other than the primary by a switchover: automatic
    /// failback leaves it there until `warden failback GROUP`.
    #[serde(default)]
    pub switched_over: bool,
    pub pending: Option<Pending>,
    pub runbook: Option<Runbook>,
    pub sites: Vec<SiteView>,
    /// Conditions only an operator can clear (`warden clear GROUP`), e.g. a
    /// DNS provider that stopped itself after a fatal answer.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// `hybrid`: the frontend the DNS name points at (as decided).
    #[serde(default)]
    pub frontend: Option<String>,
    /// `hybrid`: each frontend machine's health, judged like a site.
    #[serde(default)]
    pub frontends: Vec<SiteView>,
    /// Groups with a replication plan.
    #[serde(default)]
    pub replication: Option<ReplicationView>,
}

/// A group's replication, as `warden status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicationView {
    pub plan: String,
    /// The group's divergent policy.
    pub divergent_policy: String,
    /// `replicating` (active → standby runs), `paused` (after a failover,
    /// until the failback's resync), `resync` (a returning site fetches),
    /// `starting`, or `not running`.
    pub state: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// The active site's reported lag, ms.
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// What losing the active site now would lose, ms (lag + report age, or
    /// the time since replication was paused).
    #[serde(default)]
    pub rpo_ms: Option<u64>,
    /// A resync that runs now: items/bytes done and left, passes.
    #[serde(default)]
    pub progress: Option<warden_proto::agent::ResyncProgressWire>,
    #[serde(default)]
    pub passes: u32,
    /// `SITE: error` for every site whose last replication attempt failed.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Divergent items found by the last resync: the first
    /// [`DIVERGENT_IN_STATUS`]; all of them through
    /// `GET /v1/groups/{group}/divergent`.
    #[serde(default)]
    pub divergent: Vec<warden_proto::agent::DivergentWire>,
    /// How many divergent items there are in all.
    #[serde(default)]
    pub divergent_total: usize,
    /// Of those, how many the store could not keep (etcd's request limit;
    /// see `GroupState::divergent_not_stored`): not listed here, still at
    /// the site.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub divergent_not_stored: u64,
    /// Per site: the pass its mass-delete guard holds, as the site said
    /// it (what `warden clear --deletions SITE` releases, naming it back).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Divergent items shown in a status view.
pub const DIVERGENT_IN_STATUS: usize = 100;

pub(crate) fn replication_view(s: &Shared, g: &GroupState) -> Option<ReplicationView> {
    let rc = s.cfg.groups.get(&g.name)?.replication()?;
    let st = s.lock();
    let sites = s.cfg.groups.get(&g.name)?.site_names();
    let mut v = ReplicationView {
        plan: rc.plan.as_str().to_string(),
        divergent_policy: rc.divergent.as_str().to_string(),
        state: "not running".into(),
        source: None,
        target: None,
        lag_ms: None,
        rpo_ms: s.rpo_ms(&st, &g.name, s.clock.now_ms()),
        progress: None,
        passes: 0,
        errors: Vec::new(),
        divergent: g
            .divergent
            .iter()
            .take(DIVERGENT_IN_STATUS)
            .cloned()
            .collect(),
        divergent_total: g
            .divergent
            .len()
            .saturating_add(usize::try_from(g.divergent_not_stored).unwrap_or(usize::MAX)),
        divergent_not_stored: g.divergent_not_stored,
        held: BTreeMap::new(),
    };
    for site in &sites {
        let Some((_, r)) = Shared::replication_status(&st, site, &g.name) else {
            continue;
        };
        if let Some(e) = &r.error {
            v.errors.push(format!("{site}: {e}"));
        }
        if let Some(held) = &r.guard {
            v.held.insert(site.clone(), held.clone());
        }
        match r.role.as_str() {
            // While replication is paused (a failover stopped it), a
            // "source" report is the old active site's last word, not
            // replication running: the state stays "paused" (before, it
            // read "replicating a → b" until the failover's runbook ended,
            // with a confirmed down).
            "source" if *site == g.active && g.replication_paused_since_unix_ms.is_none() => {
                v.state = "replicating".into();
                v.source = Some(site.clone());
                v.target = r.peer.clone();
                v.lag_ms = r.lag_ms;
            }
            "resync" => {
                v.state = "resync".into();
                v.source = r.peer.clone();
                v.target = Some(site.clone());
                v.progress = r.progress;
                v.passes = r.passes;
            }
            _ => {}
        }
    }
    if v.state == "not running" && g.replication_paused_since_unix_ms.is_some() {
        v.state = "paused".into();
    }
    Some(v)
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub isolated: bool,
    pub groups: Vec<GroupView>,
    /// With `store = "etcd"`: the leadership as the answering node sees it.
    #[serde(default)]
    pub leadership: Option<crate::etcd::leader::Leadership>,
}

pub(crate) fn site_views(s: &Shared, names: &[String]) -> Vec<SiteView> {
    views(s, names, false)
}

/// Site views from the site detector, or (`frontends`) from the detector of hybrid frontends.
pub(crate) fn views(s: &Shared, names: &[String], frontends: bool) -> Vec<SiteView> {
    let st = s.lock();
    let (detector, evidence) = if frontends {
        (&st.fe_detector, &st.fe_evidence)
    } else {
        (&st.detector, &st.evidence)
    };
    let now = Instant::now();
    names
        .iter()
        .map(|n| {
            let (v, evidence) = detector.evaluate(evidence, n, now);
            let t = detector.track(n).cloned().unwrap_or_default();
            SiteView {
                name: n.clone(),
                verdict: t
                    .last
                    .as_ref()
                    .map(|v| v.label())
                    .unwrap_or("unknown")
                    .to_string(),
                reason: v.reason().to_string(),
                confirmed_down: t.confirmed_down,
                down_rounds: t.down_rounds,
                healthy_rounds: t.healthy_rounds,
                hold_down_left_ms: if t.confirmed_down || t.healthy_since.is_some() {
                    detector
                        .hold_down_left(n, now)
                        .map(|d| d.as_millis() as u64)
                } else {
                    None
                },
                evidence,
            }
        })
        .collect()
}

pub(crate) fn group_view(s: &Shared, g: &GroupState) -> Option<GroupView> {
    let gc = s.cfg.groups.get(&g.name)?;
    let runbook = {
        let st = s.lock();
        g.runbook
            .and_then(|id| st.runbooks.get(&id).cloned())
            .or_else(|| {
                st.runbooks
                    .values()
                    .rev()
                    .find(|r| r.group == g.name)
                    .cloned()
            })
    };
    Some(GroupView {
        name: g.name.clone(),
        scheme: gc.scheme().as_str().to_string(),
        primary: gc.primary().to_string(),
        active: g.active.clone(),
        epoch: g.epoch,
        phase: g.phase,
        maintenance: g.maintenance,
        maintenance_seq: g.maintenance_seq,
        switched_over: g.switched_over,
        pending: g.pending.clone(),
        runbook,
        sites: site_views(s, &gc.site_names()),
        alerts: s.alerts(&g.name),
        frontend: g.frontend.clone().or_else(|| {
            (gc.scheme() == warden_config::Scheme::Hybrid)
                .then_some(gc.frontend_scheme())
                .flatten()
                .and_then(|f| f.frontend_names().into_iter().next())
        }),
        replication: replication_view(s, g),
        frontends: if gc.scheme() == warden_config::Scheme::Hybrid {
            let names: Vec<String> = gc
                .frontend_scheme()
                .map(|f| f.frontend_names())
                .unwrap_or_default();
            views(s, &names, true)
        } else {
            Vec::new()
        },
    })
}

/// `GET /v1/groups/{group}/divergent?offset=N&limit=M` answer: one page of
/// the divergent items the last resync found (reports carry pages only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DivergentPage {
    /// Items that can be paged (the list as kept).
    pub total: usize,
    pub offset: usize,
    pub items: Vec<warden_proto::agent::DivergentWire>,
    /// Items the store could not keep (not in any page; still at the site).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_stored: u64,
}

impl Shared {
    /// Every group, as `warden status` shows it.
    pub fn status_view(&self) -> StatusView {
        let groups: Vec<GroupState> = self.lock().groups.values().cloned().collect();
        let isolated = self.lock().detector.is_isolated();
        StatusView {
            isolated,
            groups: groups.iter().filter_map(|g| group_view(self, g)).collect(),
            leadership: self.leadership(),
        }
    }

    /// Every group's view.
    pub fn group_views(&self) -> Vec<GroupView> {
        let groups: Vec<GroupState> = self.lock().groups.values().cloned().collect();
        groups.iter().filter_map(|g| group_view(self, g)).collect()
    }

    /// One group's view, if it exists.
    pub fn group_view(&self, name: &str) -> Option<GroupView> {
        let g = self.lock().groups.get(name).cloned()?;
        group_view(self, &g)
    }

    /// Every site's view.
    pub fn site_views(&self) -> Vec<SiteView> {
        let names: Vec<String> = self.cfg.sites.keys().cloned().collect();
        site_views(self, &names)
    }

    /// One page of a group's divergent items.
    pub fn divergent_page(
        &self,
        group: &str,
        offset: usize,
        limit: usize,
    ) -> Option<DivergentPage> {
        let st = self.lock();
        let gs = st.groups.get(group)?;
        Some(DivergentPage {
            total: gs.divergent.len(),
            not_stored: gs.divergent_not_stored,
            offset,
            items: gs
                .divergent
                .iter()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect(),
        })
    }

    /// Runbooks in memory (running and recent), optionally of one group.
    pub fn runbooks(&self, group: Option<&str>) -> Vec<Runbook> {
        self.lock()
            .runbooks
            .values()
            .filter(|r| group.is_none_or(|g| r.group == g))
            .cloned()
            .collect()
    }

    /// One runbook.
    pub fn runbook(&self, id: u64) -> Option<Runbook> {
        self.lock().runbooks.get(&id).cloned()
    }

    /// Up to `limit` events after `after`, optionally of one group, paged
    /// through the store so a filtered query never loads the whole history.
    pub fn events_after(
        &self,
        after: u64,
        limit: usize,
        group: Option<&str>,
    ) -> Result<Vec<Event>, OrchestratorError> {
        let mut out: Vec<Event> = Vec::new();
        let mut after = after;
        while out.len() < limit {
            let page = crate::store::blocking(|| self.store.events(after, 1000))?;
            let Some(last) = page.last().map(|e| e.id) else {
                break;
            };
            after = last;
            out.extend(
                page.into_iter()
                    .filter(|e| group.is_none_or(|g| e.group.as_deref() == Some(g))),
            );
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The gauges read off the status when scraped: isolation, each
    /// group's state and maintenance, each site's verdict, replication
    /// errors.
    fn set_state_metrics(&self, view: &StatusView) {
        use crate::metrics::{GROUP_STATES, VERDICTS};
        let m = &self.metrics;
        let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        m.isolated.set(i64::from(view.isolated));
        let mut verdicts = std::collections::BTreeMap::new();
        for g in &view.groups {
            let state = serde_json::json!(g.phase);
            let state = state.as_str().unwrap_or_default();
            for s in GROUP_STATES {
                m.group_state
                    .get_or_create(&l(&[("group", &g.name), ("state", s)]))
                    .set(i64::from(s == state));
            }
            m.group_maintenance
                .get_or_create(&l(&[("group", &g.name)]))
                .set(i64::from(g.maintenance));
            if let Some(r) = &g.replication {
                m.replication_errors
                    .get_or_create(&l(&[("group", &g.name)]))
                    .set(r.errors.len() as i64);
            }
            for site in &g.sites {
                verdicts.insert(site.name.clone(), site.verdict.clone());
            }
        }
        for (site, verdict) in &verdicts {
            for v in VERDICTS {
                m.site_verdict
                    .get_or_create(&l(&[("site", site), ("verdict", v)]))
                    .set(i64::from(v == verdict));
            }
        }
    }

    /// Prometheus text (OpenMetrics when `openmetrics`, else the classic
    /// format), with the gauges that are computed when scraped.
    pub fn metrics_text(&self, openmetrics: bool) -> String {
        let view = self.status_view();
        let alerts: usize = view.groups.iter().map(|g| g.alerts.len()).sum();
        self.metrics.alerts.set(alerts as i64);
        self.set_state_metrics(&view);
        self.metrics.leader.set(i64::from(self.licence.is_held()));
        if let Some(l) = self.leadership() {
            self.metrics
                .etcd_up
                .get_or_create(&vec![("node".to_string(), l.node.clone())])
                .set(i64::from(l.etcd_ok));
        }
        {
            let st = self.lock();
            let now = self.clock.now_ms();
            for (name, g) in &self.cfg.groups {
                if g.replication.is_some() {
                    let labels = vec![("group".to_string(), name.clone())];
                    match self.rpo_ms(&st, name, now) {
                        Some(ms) => {
                            self.metrics
                                .rpo_seconds
                                .get_or_create(&labels)
                                .set(ms as f64 / 1000.0);
                        }
                        // Unknown: no sample (a number would be read as a lag).
                        None => {
                            self.metrics.rpo_seconds.remove(&labels);
                        }
                    }
                }
            }
        }
        let text = self.metrics.encode();
        if openmetrics {
            text
        } else {
            crate::metrics::classic_text(&text)
        }
    }
}
