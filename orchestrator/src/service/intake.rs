//! Evidence intake: agent reports (outcomes through the command ledger,
//! authority, divergent pages), the commands waiting for a site, and the
//! orchestrator's own probes of every site and hybrid frontend.

use std::collections::BTreeSet;

use super::*;

/// The room a report's lists have beyond what the config gives its site;
/// all of it for outcomes (see [`Shared::report_lists_fit`]).
const REPORT_LIST_MAX: usize = 256;

impl Shared {
    /// Which site a bearer token belongs to.
    pub fn site_of_token(&self, token: &str) -> Option<&str> {
        self.agent_tokens
            .get(&crate::settings::digest(token))
            .map(String::as_str)
    }

    /// A slot for one more command long-poll of `site` (`None`: at the cap).
    pub fn poll_slot(&self, site: &str) -> Option<polls::PollSlot> {
        self.polls.enter(site)
    }

    /// Refuses a report that is not newer than the last one of its agent
    /// process (see [`replay`]).
    pub fn admit_report_seq(&self, report: &AgentReport) -> Result<(), String> {
        self.report_seqs.admit_report(report)
    }

    /// Whether the lists of `report` (authenticated for its site) are no
    /// longer than its agent's can be: checks and peer probes as many as
    /// the config gives the site (a hub site, the standby of hundreds of
    /// primaries, probes every one of them) and [`REPORT_LIST_MAX`] more
    /// (an agent whose config is ahead of this orchestrator's: what it
    /// adds is dropped, see `admit`); outcomes [`REPORT_LIST_MAX`], the
    /// most an agent keeps. `Err` says which list is too long.
    pub fn report_lists_fit(&self, report: &AgentReport) -> Result<(), String> {
        let site = report.site.as_str();
        let checks = self.cfg.sites.get(site).map_or(0, |c| c.checks.len());
        let probes = self.site_probes.get(site).map_or(0, |t| t.len());
        for (list, len, own) in [
            ("checks", report.checks.len(), checks),
            ("peers", report.peers.len(), probes),
            ("outcomes", report.outcomes.len(), 0),
        ] {
            let max = own + REPORT_LIST_MAX;
            if len > max {
                return Err(format!(
                    "report has {len} {list}, more than the {max} site {site:?}'s agent can send"
                ));
            }
        }
        Ok(())
    }

    /// Accept a report (already authenticated for `site`).
    ///
    /// Outcomes count only for commands queued for this very site (see
    /// [`Ledger::accept`]); every outcome is acked so the agent stops
    /// resending it. A site that believes it is active for a group that was
    /// failed away from it is told to demote before anything else.
    pub fn accept_report(&self, mut report: AgentReport) -> ReportResponse {
        // Only what this site may report, its texts cut to size (see `admit`).
        self.admit_report(&mut report);
        let site = report.site.clone();
        let now = Instant::now();
        let mut st = self.lock();
        // Read under the state lock, as the command poll does: a step-down
        // empties the ledger under this lock after revoking, so a report
        // that sees the licence here answers from the ledger of that term.
        let acting = self.licence.is_held();
        let mut acked = Vec::new();
        if acting {
            for o in &report.outcomes {
                acked.push(o.id.clone());
                if st.ledger.accept(&site, o) == Accepted::Late {
                    info!(site = %site, command = %crate::commands::display_id(&o.id), "late outcome for a withdrawn command ignored");
                }
            }
            self.authority_check_locked(&mut st, &site, &report.authority);
            self.divergent_intake_locked(&mut st, &site, &report.replication);
            let taken = term_seen::comparable(&report, self.answer_cluster());
            let left = term_seen::left_this_cluster(&report, self.answer_cluster());
            self.taken_term_check_locked(&mut st, &site, taken, left);
        }
        if report
            .peers
            .iter()
            .any(|p| self.frontend_probes.contains_key(&p.site))
        {
            // The agent's probes of hybrid frontends are evidence about them.
            st.fe_evidence.insert_report(now, report.clone());
        }
        // The first sign of trouble: a switch may be coming (see `hold`).
        // ... and worth a look now, not at the next tick (see `cadence`).
        if report.checks.iter().any(|c| c.critical && !c.ok) {
            self.suspect_locked(&mut st, &site, now);
            self.prompt_probe_locked(&st, &site);
        }
        for p in report.peers.iter().filter(|p| p.failing()) {
            self.suspect_locked(&mut st, &p.site, now);
            self.prompt_round_locked(&st, &p.site);
        }
        st.evidence.insert_report(now, report);
        // Not the leader: the report is evidence only. No outcome is acked
        // (the leader must see them), no command or epoch is told.
        let answer = if acting && self.licence.is_held() {
            ReportResponse {
                commands: st.ledger.hand_out(&site),
                acked,
                epochs: self.epochs_of_locked(&st, &site),
                withdrawn: st.ledger.recalled_for(&site, now),
                term: self.answer_term(),
                cluster: self.answer_cluster(),
                order: Some(st.answer_orders.next()),
            }
        } else {
            ReportResponse::default()
        };
        drop(st);
        // Only a runbook step waiting for a report listens; with nobody
        // subscribed there is nobody to wake (a later subscriber waits for
        // later reports anyway).
        if self.report_tick.receiver_count() > 0 {
            self.report_tick.send_modify(|v| *v += 1);
        }
        answer
    }

    /// The ledger to hand orders out of, or `None` without the licence: a
    /// follower, a node shutting down, or one deposed that has not emptied
    /// its ledger yet hands out no order. (A report's answer follows the
    /// same rule through `acting` in [`Shared::accept_report`].)
    fn ledger_to_hand_out<'a>(&self, st: &'a mut State) -> Option<&'a mut Ledger> {
        self.licence.is_held().then_some(&mut st.ledger)
    }

    /// The commands a report's answer would carry for `site` now, demotes
    /// first (tests stand in for an agent with it).
    #[cfg(test)]
    pub(crate) fn commands_for(&self, site: &str) -> Vec<Command> {
        let mut st = self.lock();
        self.ledger_to_hand_out(&mut st)
            .map(|l| l.pending_for(site))
            .unwrap_or_default()
    }

    /// For a long-poll: the answer for `site` now — its pending commands,
    /// the ones taken back since they were handed out, the term — and
    /// whether any command is new to its polls
    /// ([`crate::commands::Ledger::take_for_poll`]); all of it from one
    /// ledger under one lock, so one term's orders and withdrawals are
    /// never labelled with another's. Nothing without the licence.
    pub fn poll_answer(&self, site: &str) -> (ReportResponse, bool) {
        let mut st = self.lock();
        let (term, cluster) = (self.answer_term(), self.answer_cluster());
        let Some(ledger) = self.ledger_to_hand_out(&mut st) else {
            return (ReportResponse::default(), false);
        };
        let (commands, fresh) = ledger.take_for_poll(site);
        let withdrawn = ledger.recalled_for(site, Instant::now());
        let answer = ReportResponse {
            commands,
            withdrawn,
            term,
            cluster,
            order: Some(st.answer_orders.next()),
            ..ReportResponse::default()
        };
        (answer, fresh)
    }

    /// The leader term this node's answers are made under (see
    /// [`ReportResponse::term`]): the etcd revision of its current lease
    /// with several orchestrators, 0 with one.
    pub(crate) fn answer_term(&self) -> u64 {
        self.ha.as_ref().map_or(0, ha::Ha::term)
    }

    /// The etcd cluster of [`Shared::answer_term`] (see
    /// [`ReportResponse::cluster`]): `None` with one orchestrator.
    pub(crate) fn answer_cluster(&self) -> Option<u64> {
        self.ha.as_ref().and_then(ha::Ha::cluster)
    }

    /// [`Shared::poll_answer`]'s commands.
    #[cfg(test)]
    pub fn commands_for_poll(&self, site: &str) -> (Vec<Command>, bool) {
        let (answer, fresh) = self.poll_answer(site);
        (answer.commands, fresh)
    }

    /// The commands handed to `site` and taken back since
    /// ([`crate::commands::Ledger::recalled_for`]); nothing without the
    /// licence.
    #[cfg(test)]
    pub fn recalled_for(&self, site: &str) -> Vec<warden_proto::agent::Withdrawn> {
        let mut st = self.lock();
        self.ledger_to_hand_out(&mut st)
            .map(|l| l.recalled_for(site, Instant::now()))
            .unwrap_or_default()
    }

    /// The current epoch of every group `site` belongs to (told to its agent).
    /// (O(the site's groups): every report pays it.)
    /// Only an epoch the store holds is told (an epoch still being written
    /// may be lost with a step-down, and an agent that raised its floor to
    /// it would then be ahead of every leader).
    pub fn epochs_of_locked(&self, st: &State, site: &str) -> BTreeMap<String, u64> {
        let durable = self.writer.durable();
        self.site_groups
            .get(site)
            .into_iter()
            .flatten()
            .filter_map(|name| {
                st.groups.get(name).map(|g| {
                    (
                        name.clone(),
                        super::persist::durable_epoch(&durable, name, g.epoch),
                    )
                })
            })
            .collect()
    }

    /// Probe every site's endpoints and every hybrid frontend once (the
    /// external view); with `only`, just those sites (a prompt probe).
    pub(crate) async fn probe_sites(&self, only: Option<&BTreeSet<String>>) {
        let futs = self
            .cfg
            .sites
            .iter()
            .filter(|(name, _)| only.is_none_or(|o| o.contains(*name)))
            .filter(|(_, s)| !s.endpoints.is_empty())
            .map(|(name, s)| {
                let specs: Vec<_> = s
                    .endpoints
                    .iter()
                    .map(|e| {
                        // Bounded by the interval too, as the agents'
                        // checks: a probe that cannot answer within one
                        // round is a failing probe for it.
                        let mut e = e.clone();
                        e.timeout = e
                            .timeout
                            .min(self.cfg.detection.probe_timeout)
                            .min(self.cfg.detection.interval);
                        e
                    })
                    .collect();
                async move {
                    (
                        name.clone(),
                        warden_checks::run_all(&specs, &self.http).await,
                    )
                }
            });
        let fe_futs = self.frontend_probes.iter().filter(|_| only.is_none()).map(
            |(name, (spec, _))| async move {
                let mut spec = spec.clone();
                spec.timeout = spec.timeout.min(self.cfg.detection.interval);
                (
                    name.clone(),
                    warden_checks::run_all(std::slice::from_ref(&spec), &self.http).await,
                )
            },
        );
        let (results, fe_results) = tokio::join!(
            futures::future::join_all(futs),
            futures::future::join_all(fe_futs)
        );
        let now = Instant::now();
        let mut st = self.lock();
        for (name, r) in results {
            let failing = warden_proto::agent::service_failing(&r);
            if failing {
                self.suspect_locked(&mut st, &name, now);
            }
            st.evidence.external.insert(name.clone(), (now, r));
            if failing {
                self.prompt_round_locked(&st, &name);
            }
        }
        for (name, r) in fe_results {
            let failing = warden_proto::agent::service_failing(&r);
            st.fe_evidence.external.insert(name.clone(), (now, r));
            if failing {
                self.prompt_round_locked(&st, &name);
            }
        }
    }

    /// Address where users enter the group (each frontend's listener),
    /// and whether it is only this host's loopback guessed for an HAProxy
    /// on a UNIX socket (see below).
    pub(crate) fn entry_addrs(&self, group: &str) -> Vec<(SocketAddr, bool)> {
        let Some(f) = self.cfg.groups.get(group).and_then(|g| g.frontend_scheme()) else {
            return vec![];
        };
        // Port 0 (tests, benches) has no fixed address to probe from here.
        let Some(listen) = f.listen.filter(|l| l.port() != 0) else {
            return vec![];
        };
        // Built-in or HAProxy: the listen IP, or the frontend host's when
        // it listens on every address — for an HAProxy driven through a
        // UNIX socket, this host's loopback, guessed: the socket is a file
        // here, so that HAProxy most likely runs here and, listening on
        // every address, on loopback too (not when the socket is shared
        // into another network namespace: then unreachable, said and not
        // held against the step).
        f.frontend_names()
            .iter()
            .filter_map(|n| {
                let mut guessed = false;
                let ip: IpAddr = if listen.ip().is_unspecified() {
                    match self.cfg.frontend_host_ip(n) {
                        Some(ip) => ip,
                        None if self.cfg.haproxy_frontends.get(n).is_some_and(|h| {
                            matches!(h.runtime, warden_config::RuntimeAddr::Unix(_))
                        }) =>
                        {
                            guessed = true;
                            if listen.is_ipv4() {
                                IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
                            } else {
                                IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
                            }
                        }
                        None => return None,
                    }
                } else {
                    listen.ip()
                };
                Some((SocketAddr::new(ip, listen.port()), guessed))
            })
            .collect()
    }
}
