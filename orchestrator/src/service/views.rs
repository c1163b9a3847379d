//! Operator views of the live service (`warden status`, `/v1/groups`,
//! `/v1/sites`, runbooks, divergent pages): read-only snapshots built from the
//! state under its lock; the API only serializes them.

use super::*;
use crate::model::{EvidenceRow, Pending, Phase};
use serde::{Deserialize, Serialize};

mod metrics;
mod replication;

pub(crate) use replication::replication_view;
pub use replication::{ReplicationView, DIVERGENT_IN_STATUS};

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
    /// The leader term the site's agent took, as its last report says
    /// (absent: no report yet, an older agent, a hybrid frontend, or a
    /// term of another etcd cluster than this node's — not comparable).
    /// Above the leader's term, the agent refuses its orders (an `alert`
    /// event says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_term: Option<u64>,
    /// This node's etcd cluster, when the site's agent left it (it
    /// refuses every answer of this leader whatever its term; an `alert`
    /// event says what to do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_cluster: Option<u64>,
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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub isolated: bool,
    pub groups: Vec<GroupView>,
    /// With `store = "etcd"`: the leadership as the answering node sees it.
    #[serde(default)]
    pub leadership: Option<crate::etcd::leader::Leadership>,
    /// Alerts about groups not in `groups`: those this node leaves as the
    /// store holds them (a record it cannot read, a site its config lacks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
}

pub(crate) fn site_views(s: &Shared, names: &[String]) -> Vec<SiteView> {
    views(s, names, false)
}

/// Site views from the site detector, or (`frontends`) from the detector of hybrid frontends.
pub(crate) fn views(s: &Shared, names: &[String], frontends: bool) -> Vec<SiteView> {
    let st = s.lock();
    let (detector, evidence_of) = if frontends {
        (&st.fe_detector, &st.fe_evidence)
    } else {
        (&st.detector, &st.evidence)
    };
    let now = Instant::now();
    names
        .iter()
        .map(|n| {
            let (v, evidence) = detector.evaluate(evidence_of, n, now);
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
                taken_term: evidence_of
                    .report(n)
                    .and_then(|(_, r)| super::term_seen::comparable(r, s.answer_cluster()))
                    .filter(|_| !frontends),
                left_cluster: evidence_of
                    .report(n)
                    .and_then(|(_, r)| super::term_seen::left_this_cluster(r, s.answer_cluster()))
                    .map(|(this, _)| this)
                    .filter(|_| !frontends),
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
            .or_else(|| st.runbooks.newest_of(&g.name).cloned())
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

/// The most events a group-filtered `GET /v1/events` reads from the store
/// per request (see [`Shared::events_after`]).
pub const EVENTS_SCAN_MAX: usize = 20_000;

/// The header of a group-filtered events answer whose scan stopped at
/// [`EVENTS_SCAN_MAX`] before the log's end: the id it read up to, where
/// the client's next request starts (`after=`), whatever the page holds.
pub const SCANNED_THROUGH: &str = "x-warden-scanned-through";

/// One answer of [`Shared::events_after`].
#[derive(Debug)]
pub struct EventsPage {
    pub events: Vec<Event>,
    /// The id the scan read up to when it stopped at [`EVENTS_SCAN_MAX`]
    /// before the log's end with fewer events than asked: the next request
    /// starts after it (`X-Warden-Scanned-Through`).
    pub scanned_through: Option<u64>,
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
            alerts: self.untouched_alerts(),
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
                .map(|d| d.known.clone())
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
    /// through the store so a filtered query never loads the whole history
    /// — and reads at most [`EVENTS_SCAN_MAX`] of it: a group whose events
    /// are rare in a long log would otherwise cost a read of the whole log
    /// per request. Where the scan stopped short of the log's end with
    /// fewer than `limit` found, [`EventsPage::scanned_through`] says how
    /// far it read (the client asks again from there).
    pub fn events_after(
        &self,
        after: u64,
        limit: usize,
        group: Option<&str>,
    ) -> Result<EventsPage, OrchestratorError> {
        let mut out: Vec<Event> = Vec::new();
        let mut after = after;
        let mut scanned = 0;
        let mut short = false;
        while out.len() < limit {
            if scanned >= EVENTS_SCAN_MAX {
                short = true;
                break;
            }
            let page = crate::store::blocking(|| self.store.events(after, 1000))?;
            let Some(last) = page.last().map(|e| e.id) else {
                break;
            };
            scanned += page.len();
            after = last;
            out.extend(
                page.into_iter()
                    .filter(|e| group.is_none_or(|g| e.group.as_deref() == Some(g))),
            );
        }
        out.truncate(limit);
        Ok(EventsPage {
            scanned_through: (short && out.len() < limit).then_some(after),
            events: out,
        })
    }
}
