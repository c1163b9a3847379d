//! One site's evaluation (DESIGN §3): from the latest evidence of every
//! vantage point to a verdict and, when asked, the evidence table that says
//! why. Reads the evidence and the configuration only, never the counters
//! a round changes.

use std::time::Duration;

use tokio::time::Instant;
use warden_proto::agent::CheckResult;

use super::{Detector, Evidence, Verdict};
use crate::model::EvidenceRow;

fn age_ms(now: Instant, at: Instant) -> u64 {
    now.saturating_duration_since(at).as_millis() as u64
}

fn summarize(results: &[CheckResult]) -> String {
    let bad: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{}: {}", r.name, r.detail))
        .collect();
    if bad.is_empty() {
        format!("{} ok", results.len())
    } else {
        bad.join("; ")
    }
}

impl Detector {
    /// Evaluate one site without changing state; returns the verdict and the evidence table.
    pub fn evaluate(&self, ev: &Evidence, site: &str, now: Instant) -> (Verdict, Vec<EvidenceRow>) {
        let mut rows = Vec::new();
        let verdict = self.judge(ev, site, now, Some(&mut rows));
        (verdict, rows)
    }

    /// The verdict of [`Detector::evaluate`] alone: what a round counts.
    /// It builds no evidence table (a round over every site of a large
    /// deployment would otherwise format a dozen strings per site, for
    /// events that fire for a few).
    pub fn verdict(&self, ev: &Evidence, site: &str, now: Instant) -> Verdict {
        self.judge(ev, site, now, None)
    }

    /// The evidence table of [`Detector::evaluate`] alone: what an event or
    /// a decision carries. A transition's event evaluates it under the lock
    /// and at the instant of the part that judged the verdict, so it is
    /// that verdict's table (the evaluation reads only the evidence and the
    /// configuration, never the counters a round changes); a decision's is
    /// the table at the moment it is decided.
    pub fn evidence(&self, ev: &Evidence, site: &str, now: Instant) -> Vec<EvidenceRow> {
        self.evaluate(ev, site, now).1
    }

    /// The one evaluation behind the three above: `rows`, when given,
    /// receives the evidence table.
    fn judge(
        &self,
        ev: &Evidence,
        site: &str,
        now: Instant,
        mut rows: Option<&mut Vec<EvidenceRow>>,
    ) -> Verdict {
        let mut add = |row: &dyn Fn() -> EvidenceRow| {
            if let Some(rows) = rows.as_deref_mut() {
                rows.push(row());
            }
        };
        let fresh_window = self.cfg.agent_timeout;
        let agent = ev.reports.get(site);
        let agent_fresh =
            agent.is_some_and(|(at, _)| now.saturating_duration_since(*at) <= fresh_window);
        let silent = !self.agentless
            && agent.is_some_and(|(at, _)| {
                now.saturating_duration_since(*at) > self.silent_after(site)
            });
        // Local view and heartbeat.
        let mut local_failing = false;
        match agent {
            Some((at, rep)) => {
                add(&|| EvidenceRow {
                    site: site.into(),
                    vantage: "heartbeat".into(),
                    status: match (agent_fresh, silent) {
                        (true, false) => "ok",
                        (true, true) => "silent",
                        (false, _) => "stale",
                    }
                    .into(),
                    detail: format!("last report seq {}", rep.seq),
                    age_ms: Some(age_ms(now, *at)),
                });
                if agent_fresh {
                    local_failing = rep.checks.iter().any(|c| c.critical && !c.ok);
                    add(&|| EvidenceRow {
                        site: site.into(),
                        vantage: "agent".into(),
                        status: if local_failing { "failing" } else { "ok" }.into(),
                        detail: summarize(&rep.checks),
                        age_ms: Some(age_ms(now, *at)),
                    });
                }
            }
            None if self.agentless => {}
            None => add(&|| EvidenceRow {
                site: site.into(),
                vantage: "heartbeat".into(),
                status: "none".into(),
                detail: "no report received yet".into(),
                age_ms: None,
            }),
        }
        // External view.
        let external = match ev.external.get(site) {
            Some((at, results))
                if now.saturating_duration_since(*at) <= fresh_window && !results.is_empty() =>
            {
                let failing = warden_proto::agent::service_failing(results);
                add(&|| EvidenceRow {
                    site: site.into(),
                    vantage: "orchestrator".into(),
                    status: if failing { "failing" } else { "ok" }.into(),
                    detail: summarize(results),
                    age_ms: Some(age_ms(now, *at)),
                });
                Some(failing)
            }
            Some((at, _)) => {
                add(&|| EvidenceRow {
                    site: site.into(),
                    vantage: "orchestrator".into(),
                    status: "stale".into(),
                    detail: "no recent probe result".into(),
                    age_ms: Some(age_ms(now, *at)),
                });
                None
            }
            None => None,
        };
        // Peer views: other sites' fresh agents that probed this site.
        let (mut peers, mut peers_failing) = (0usize, 0usize);
        for peer in ev.probed_by.get(site).into_iter().flatten() {
            let Some((at, rep)) = ev.reports.get(peer) else {
                continue;
            };
            if peer == site {
                continue;
            }
            if let Some(p) = rep.peers.iter().find(|p| p.site == site) {
                // Dated when the peer took it (the age it reports can only
                // make the view older than the report, never fresher; an
                // age beyond this clock's past is simply stale).
                let Some(seen) = at.checked_sub(Duration::from_millis(p.age_ms)) else {
                    continue;
                };
                if now.saturating_duration_since(seen) > fresh_window {
                    continue;
                }
                let failing = p.failing();
                // A peer that fell silent can only hold a verdict back,
                // never bring one about: its last view of the site failing
                // (often taken as its own path went) is no agreement for
                // the rounds after it; its last view reaching the site still
                // counts until `agent_timeout` (the silence may be the
                // orchestrator's own lost path, every agent silent at once).
                if failing && now.saturating_duration_since(*at) > self.reporter_silent_after(peer)
                {
                    continue;
                }
                peers += 1;
                peers_failing += usize::from(failing);
                add(&|| EvidenceRow {
                    site: site.into(),
                    vantage: format!("peer:{peer}"),
                    status: if failing { "failing" } else { "ok" }.into(),
                    detail: summarize(&p.results),
                    age_ms: Some(age_ms(now, seen)),
                });
            }
        }
        // The outside vantage points: the orchestrator's probe and the peers.
        let outside_failing = usize::from(external == Some(true)) + peers_failing;
        let answered = usize::from(external.is_some()) + peers;
        let peers_ok = peers > 0 && peers_failing == 0;
        // A silent or stale agent and a failing probe from here are both
        // the orchestrator's own observations: its own lost path (its
        // network down, every report lost and every probe failing) shows
        // exactly that for every site. Without its agent's word, a site is
        // down only when a peer, heard recently, sees it failing too: the
        // orchestrator alone never brings a verdict down.
        let peer_agrees = peers_failing > 0;
        // Without a fresh agent: what was heard of it. An agent never heard
        // from (the orchestrator just started) is not said to be stale or
        // unreachable: nothing was observed of it (DESIGN §3).
        let heard = if agent.is_some() {
            "agent stale"
        } else {
            "no report from its agent yet"
        };

        let verdict = if agent_fresh
            && silent
            && answered > 0
            && outside_failing == answered
            && peer_agrees
        {
            // The whole site is gone: its agent missed a report and no
            // outside vantage point reaches its service.
            Verdict::Down(format!(
                "agent silent (no report for {} ms) and all {answered} outside vantage points see the service failing",
                agent.map(|(at, _)| age_ms(now, *at)).unwrap_or(0)
            ))
        } else if agent_fresh {
            if local_failing && silent && peers > peers_failing {
                // Its agent's last word (a check failing) is all that is
                // left of it, and a peer heard recently reaches the
                // service: as a silent peer's last failing view, a silent
                // agent's is no agreement (its check may have passed
                // since; the orchestrator's failing probe may be its own
                // lost path to the site).
                Verdict::Unconfirmed(format!(
                    "critical check failing in the agent's last report, but the agent is silent (no report for {} ms) and {} of {answered} outside vantage points reach the service",
                    agent.map(|(at, _)| age_ms(now, *at)).unwrap_or(0),
                    answered - outside_failing
                ))
            } else if local_failing {
                if outside_failing >= 1 {
                    Verdict::Down(format!("critical check failing locally, confirmed by {outside_failing} of {answered} outside vantage points"))
                } else {
                    Verdict::Unconfirmed(format!("critical check failing locally but {answered} outside vantage points see the service answer"))
                }
            } else if external == Some(true) && (peers_ok || peers == 0) {
                Verdict::PathFault(
                    "orchestrator probes fail while the site's agent (and peers) say healthy"
                        .into(),
                )
            } else if outside_failing * 2 > answered {
                Verdict::Unconfirmed(
                    "outside vantage points see failures while local checks pass".into(),
                )
            } else {
                Verdict::Healthy
            }
        } else if self.agentless && agent.is_none() {
            if answered == 0 {
                Verdict::Unknown("no vantage point answered".into())
            } else if outside_failing * 2 > answered && peer_agrees {
                Verdict::Down(format!(
                    "{outside_failing} of {answered} vantage points cannot reach it"
                ))
            } else if external == Some(true) && peers == 0 {
                // The orchestrator's probe is the only one that answered:
                // as for a site, it never brings a verdict down alone (its
                // own lost path fails every probe while the agents' last
                // views age out).
                Verdict::PathFault(
                    "orchestrator probes fail and no agent's probe of it answered: the path from here may be what failed"
                        .into(),
                )
            } else if external == Some(true) {
                Verdict::PathFault(format!(
                    "orchestrator probes fail but {} of {answered} vantage points reach it",
                    answered - outside_failing
                ))
            } else {
                Verdict::Healthy
            }
        } else if answered == 0 {
            Verdict::Unknown(format!("{heard} and no outside vantage point answered"))
        } else if outside_failing * 2 > answered && peer_agrees {
            Verdict::Down(format!("{heard} and {outside_failing} of {answered} outside vantage points see the service failing"))
        } else if outside_failing * 2 > answered {
            // The orchestrator's probe, failing, is the only one that
            // answered (a majority of one without a peer).
            Verdict::Unknown(format!(
                "{heard} and only the orchestrator's own probe answered (failing): no peer's view tells a lost site from the orchestrator's own lost path"
            ))
        } else if external == Some(true) && peers_ok {
            Verdict::PathFault(format!(
                "{heard} and orchestrator probes fail, but peers reach the service"
            ))
        } else if agent.is_none() {
            // Nothing was ever heard from it (the orchestrator just started,
            // or the agent never did): say that, not that an agent died.
            Verdict::Unknown(format!(
                "no report from its agent yet; {} of {answered} outside vantage points reach the service",
                answered - outside_failing
            ))
        } else {
            Verdict::DeadAgent(format!(
                "agent stale while {} of {answered} outside vantage points reach the service",
                answered - outside_failing
            ))
        };
        verdict
    }
}
