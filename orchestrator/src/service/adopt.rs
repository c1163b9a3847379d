//! Adoption (DESIGN §10): a group new to the store adopts what the routing
//! layer shows (its route and epoch; a hybrid group's DNS name too), and
//! `warden adopt-epoch` takes an epoch seen ahead as the group's own. Both
//! read under the licence; nothing here moves a user.

use std::sync::Arc;
use std::time::Duration;

use super::adopt_dns::{adopt_dns_name, DnsRead, DNS_SEEN_AT};
use super::Shared;
use crate::model::{EventKind, GroupState, Phase};
use crate::OrchestratorError;

/// How long a fresh store waits for the routing layer's answer at start.
const ADOPT_TIMEOUT: Duration = Duration::from_secs(5);

/// An adoption whose licence ended while it read the routing layer.
const LICENCE_ENDED: &str =
    "this orchestrator's licence to act ended while it read the DNS name; nothing adopted: ask the one that holds it";

impl Shared {
    /// A single orchestrator's start (no election; the elected one's is its
    /// take-over): the routing layer's stops given back, the hold places of
    /// the groups it finds running learned, their runbooks resumed — a move
    /// under way (users may be down) never waits for the adoption of groups
    /// new to the store, each of which may wait for its routing layer up to
    /// its timeout —, then those groups adopted.
    pub async fn start_alone(self: &Arc<Self>) {
        self.restore_provider_stops();
        self.learn_hold_places().await;
        self.resume();
        self.adopt_fresh_groups().await;
    }

    /// Groups new to the store: adopt what the routing layer shows. Runs once
    /// at start (after the runbooks found running resumed), before the loops.
    pub async fn adopt_fresh_groups(self: &Arc<Self>) {
        let fresh: Vec<String> = self.lock().fresh.iter().cloned().collect();
        for name in fresh {
            let Some(strategy) = self.strategies.get(&name).cloned() else {
                continue;
            };
            // Under the licence's gate: a read may leave an order for
            // later (the end of an HAProxy drain it found unended), which
            // must not outlive the licence (see `warden_strategies::gate`).
            let read = async {
                match self.licence.token() {
                    Some(term) => self.licence.gated(&term, strategy.current()).await,
                    None => Some(strategy.current().await),
                }
            };
            let observed = match tokio::time::timeout(ADOPT_TIMEOUT, read).await {
                Ok(Some(o)) => Ok(o),
                // The licence ended: the next holder adopts.
                Ok(None) => return,
                Err(t) => Err(t),
            };
            // A hybrid group's DNS name too (the frontend layer: its own
            // decisions, at epochs of their own): which frontend it points
            // at and at what epoch. Unadopted, a name moved before would be
            // an epoch seen ahead, and pointed back at the first frontend.
            let dns = match self.dns_for_adoption(&name, ADOPT_TIMEOUT).await {
                None => return,
                Some(d) => d,
            };
            let mut st = self.lock();
            st.fresh.remove(&name);
            let Some(g) = st.groups.get(&name).cloned() else {
                continue;
            };
            let sites = self
                .cfg
                .groups
                .get(&name)
                .map(|c| c.site_names())
                .unwrap_or_default();
            let (msg, ng) = match observed {
                // Routed as the record says (the placeholder of a start
                // that ended before its adoption, kept by a node of an
                // earlier version that routed it; or a group that never
                // moved): nothing to adopt, and nothing to pause.
                Ok(Ok(o))
                    if o.epoch > 0
                        && o.epoch <= g.epoch
                        && o.site.as_deref() == Some(g.active.as_str()) =>
                {
                    (
                        format!(
                            "the store had no state for {name} adopted yet; the routing layer routes users to {} at \
                             epoch {}, as the record says: nothing to adopt; automatic decisions wait until every \
                             site has reported",
                            g.active, o.epoch
                        ),
                        g.clone(),
                    )
                }
                Ok(Ok(o)) if o.epoch > 0 => {
                    let mut ng = g.clone();
                    // An epoch so near the largest that the group would have
                    // few moves left is forged or corrupt (a real one grows
                    // by one per decision): where users are routed is
                    // taken, its epoch is not (stored, it would stop every
                    // later start: see `load_state`). The reconcile then
                    // sees it ahead and alerts; `adopt-epoch` refuses it too.
                    let too_near = o.epoch > warden_proto::EPOCH_CEILING;
                    if !too_near {
                        ng.epoch = o.epoch.max(g.epoch);
                    }
                    let site = o.site.filter(|s| sites.contains(s));
                    if let Some(s) = &site {
                        ng.active = s.clone();
                    }
                    // Away from the primary for a reason the new store
                    // cannot know (a disaster, or an operator's planned
                    // move): no automatic failback moves users back.
                    let primary = self.cfg.groups.get(&name).map(|c| c.primary().to_string());
                    ng.switched_over = site.is_some() && primary.as_deref() != site.as_deref();
                    let has_plan = self
                        .cfg
                        .groups
                        .get(&name)
                        .is_some_and(|c| c.replication.is_some());
                    if has_plan {
                        ng.replication_paused_since_unix_ms = Some(self.clock.now_ms());
                    }
                    (
                        format!(
                            "the store had no state for {name}: adopted what the routing layer shows: {} at epoch {}{}{}{}; \
                             automatic decisions wait until every site has reported (or `warden approve`)",
                            site.as_deref().map(|s| format!("active {s}")).unwrap_or_else(|| format!("no consistent route, keeping {}", g.active)),
                            o.epoch,
                            if too_near {
                                format!(
                                    " — an epoch {} below the largest there is, not adopted (forged or corrupt; a real one \
                                     grows by one per decision): the group stays at epoch {}, and the element that holds it \
                                     refuses its orders until it is reset (e.g. restart the frontend, delete the DNS marker)",
                                    u64::MAX - o.epoch,
                                    ng.epoch
                                )
                            } else {
                                String::new()
                            },
                            if has_plan { "; replication paused until a failback, switchover or `warden resync` resyncs" } else { "" },
                            if ng.switched_over {
                                format!("; it stays on {} until `warden failback {name}` (a new store cannot tell a disaster from a planned move)", ng.active)
                            } else {
                                String::new()
                            }
                        ),
                        ng,
                    )
                }
                Ok(Ok(_)) => (
                    format!(
                        "the store had no state for {name} and nothing is routed yet: starting at epoch {} with {} active; \
                         automatic decisions wait until every site has reported",
                        g.epoch, g.active
                    ),
                    g.clone(),
                ),
                Ok(Err(e)) => (
                    format!(
                        "the store had no state for {name} and the routing layer cannot be read ({e}): starting at epoch {} \
                         with {} active; automatic decisions wait until every site has reported",
                        g.epoch, g.active
                    ),
                    g.clone(),
                ),
                Err(_) => (
                    format!(
                        "the store had no state for {name} and the routing layer did not answer within {}s: starting at \
                         epoch {} with {} active; automatic decisions wait until every site has reported",
                        ADOPT_TIMEOUT.as_secs(),
                        g.epoch,
                        g.active
                    ),
                    g.clone(),
                ),
            };
            let (mut msg, mut ng) = (msg, ng);
            ng.adopting = false;
            if let DnsRead::Read(o, frontends) = &dns {
                // The group's frontend layer is as new as the rest: the
                // name at any epoch is what it knows (one below the routes'
                // is a move before a failover, not a name to point over).
                let above = ng.frontend_epoch;
                if let Some(said) = adopt_dns_name(&mut ng, o, frontends, above) {
                    msg.push_str(&format!("; {said}"));
                }
            }
            let adopted = ng.epoch;
            self.put_group_locked(&mut st, ng);
            // Seen ahead of the placeholder while the routing layer was
            // read (an agent's report of the epoch just adopted, on a new
            // leader's term): no longer ahead — left, it would hold every
            // decision for approval and refuse every move until `warden
            // adopt-epoch`. Orders queued at an epoch below are withdrawn.
            if st
                .epoch_ahead
                .get(&name)
                .is_some_and(|x| x.epoch <= adopted)
            {
                st.epoch_ahead.remove(&name);
            }
            st.ledger
                .withdraw_below(&name, adopted, &format!("epoch {adopted} adopted"));
            self.event_locked(
                &mut st,
                EventKind::Adopted,
                Some(&name),
                None,
                msg,
                vec![],
                None,
            );
        }
    }

    /// `warden adopt-epoch GROUP`: take the higher epoch seen outside as the
    /// group's own, so that the next move carries a higher one still.
    pub async fn operator_adopt_epoch(
        &self,
        group: &str,
        by: &str,
    ) -> Result<u64, OrchestratorError> {
        self.operator_adopt_epoch_seen(group, by, None).await
    }

    /// [`Shared::operator_adopt_epoch`] of the epoch the operator saw:
    /// with `seen`, only when the epoch seen ahead is that one. One that
    /// grew since (whoever holds it still acts) or another element's is
    /// not adopted by a late or replayed order (409, nothing changed).
    ///
    /// A `hybrid` group adopts its DNS name too, as a new store does: the
    /// frontend it points at, at the epoch it was written at, when above
    /// the group's frontend layer — else the zone would refuse the next
    /// pointing at the adopted epoch as another decision at that epoch, and
    /// the frontend layer would watch a frontend users no longer enter at.
    /// A name that cannot be read is adopted in nothing (said so); when it
    /// is the epoch seen ahead, nothing is adopted at all (409).
    pub async fn operator_adopt_epoch_seen(
        &self,
        group: &str,
        by: &str,
        seen: Option<u64>,
    ) -> Result<u64, OrchestratorError> {
        self.must_act()?;
        let dns = self
            .dns_for_adoption(group, ADOPT_TIMEOUT)
            .await
            .ok_or_else(|| OrchestratorError::Conflict(LICENCE_ENDED.into()))?;
        let routes = self
            .routes_for_adoption(group)
            .await
            .ok_or_else(|| OrchestratorError::Conflict(LICENCE_ENDED.into()))?;
        let mut st = self.lock();
        let g = st
            .groups
            .get(group)
            .cloned()
            .ok_or_else(|| super::untouched::missing_group(&st, group))?;
        if g.phase == Phase::Running {
            return Err(OrchestratorError::Conflict(format!(
                "group {group} has a runbook running; adopt when it has ended"
            )));
        }
        let Some(ahead) = st.epoch_ahead.get(group).cloned() else {
            return Err(OrchestratorError::Conflict(format!(
                "group {group}: no epoch above {} has been seen; nothing to adopt",
                g.epoch
            )));
        };
        if let Some(e) = seen.filter(|e| *e != ahead.epoch) {
            return Err(OrchestratorError::Conflict(format!(
                "group {group}: the epoch seen ahead is now {} at {}, not {e}; nothing adopted: \
                 look again (`warden status {group}`) and make sure no other orchestrator acts",
                ahead.epoch, ahead.seen_at
            )));
        }
        if ahead.epoch > warden_proto::EPOCH_CEILING {
            return Err(OrchestratorError::Conflict(format!(
                "group {group}: {} holds epoch {}, {} below the largest there is: adopted, it would leave the group \
                 {} more move(s) before no epoch is left (a forged or corrupt epoch; a real one grows by one per \
                 decision). Reset that element (e.g. restart the frontend, delete the DNS marker, or the agent's \
                 state file), then wait for the next reconcile",
                ahead.seen_at,
                ahead.epoch,
                u64::MAX - ahead.epoch,
                u64::MAX - ahead.epoch
            )));
        }
        let mut ng = g.clone();
        ng.epoch = ahead.epoch;
        ng.hold = None;
        let site_layer = self.adopt_routed_site(&st, &mut ng, &g, ahead.epoch, routes.as_ref());
        let frontend_layer = match &dns {
            DnsRead::NoName => String::new(),
            DnsRead::Read(o, frontends) => adopt_dns_name(&mut ng, o, frontends, g.dns_epoch())
                .map(|said| format!("; {said}"))
                .unwrap_or_default(),
            DnsRead::Unread(e) if ahead.seen_at == DNS_SEEN_AT => {
                return Err(OrchestratorError::Conflict(format!(
                    "group {group}: the epoch seen ahead is the DNS name's, and the name cannot be read now ({e}): \
                     nothing adopted (its epoch without the frontend it points at would be refused by the zone). \
                     Adopt when the DNS answers"
                )));
            }
            DnsRead::Unread(e) => format!(
                "; the DNS name could not be read ({e}): nothing of the frontend layer adopted"
            ),
        };
        self.put_group_locked(&mut st, ng);
        st.epoch_ahead.remove(group);
        let withdrawn = st.ledger.withdraw_below(
            group,
            ahead.epoch,
            &format!("epoch {} adopted", ahead.epoch),
        );
        self.event_locked(
            &mut st,
            EventKind::Adopted,
            Some(group),
            None,
            format!(
                "{} adopted epoch {} seen at {} (the group was at {}); {} queued command(s) withdrawn; \
                 the next move carries epoch {}{site_layer}{frontend_layer}",
                super::operator::operator_label(by),
                ahead.epoch,
                ahead.seen_at,
                g.epoch,
                withdrawn.len(),
                ahead.epoch.saturating_add(1)
            ),
            vec![],
            None,
        );
        Ok(ahead.epoch)
    }

    /// What the routing layer shows of `group`, read under the licence for
    /// `warden adopt-epoch`: `None` when the licence ended meanwhile,
    /// `Some(None)` when it cannot be read (in [`ADOPT_TIMEOUT`]).
    async fn routes_for_adoption(
        &self,
        group: &str,
    ) -> Option<Option<warden_strategies::Observed>> {
        let strategy = self.strategies.get(group).cloned()?;
        let term = self.licence.token()?;
        let read = self.licence.gated(&term, strategy.current());
        match tokio::time::timeout(ADOPT_TIMEOUT, read).await {
            Ok(None) => None,
            Ok(Some(Ok(o))) => Some(Some(o)),
            Ok(Some(Err(_))) | Err(_) => Some(None),
        }
    }

    /// `warden adopt-epoch` of `epoch` into `ng` (the group, `g`, as it
    /// was): when the whole routing layer routes users to one site of the
    /// group at that very epoch, other than the group's active site, that
    /// site becomes the group's active one, as a new store adopts it — the
    /// epoch came with a move this store never recorded (run from memory
    /// and lost with its process, or another orchestrator's). Left as the
    /// active site, the one it moved from (fenced) would be routed to
    /// again wherever the layer takes a route at an epoch it holds, and
    /// the site users are on told to demote. What it says for the event.
    fn adopt_routed_site(
        &self,
        st: &super::State,
        ng: &mut GroupState,
        g: &GroupState,
        epoch: u64,
        routes: Option<&warden_strategies::Observed>,
    ) -> String {
        let Some(gc) = self.cfg.groups.get(&g.name) else {
            return String::new();
        };
        let sites = gc.site_names();
        let settled = routes.filter(|o| o.drift.is_empty() && o.unread.is_empty());
        let routed = settled
            .filter(|o| o.epoch == epoch)
            .and_then(|o| o.site.clone());
        // The routing layer cannot tell (a frontend or nameserver that
        // cannot be read, one that disagrees): the site whose agent alone
        // holds the active role at that epoch is where the move went.
        // Kept on the old active site, it would be told to demote at once
        // (it reports `active` beside the record's site): users' site down.
        let (site, how) = match routed {
            Some(site) => {
                let how = format!("the routing layer routes users to {site} at that epoch");
                (site, how)
            }
            // Read whole and agreeing, at another epoch: the move never
            // reached it — users are where it routes; nothing moves here.
            None if settled.is_some() => return String::new(),
            None => match self.sole_active_at_locked(st, &g.name, epoch, &sites) {
                Some(site) => {
                    let how = format!(
                        "the routing layer could not tell, and {site}'s agent is the only one that \
                         reports the active role at that epoch"
                    );
                    (site, how)
                }
                None => return String::new(),
            },
        };
        if site == g.active || !sites.contains(&site) {
            return String::new();
        }
        ng.active = site.clone();
        // Away from the primary for a reason this store cannot know: no
        // automatic failback moves users back; replication waits for a
        // resync (what the two sites hold is not known here).
        ng.switched_over = site != gc.primary();
        if gc.replication.is_some() {
            ng.replication_paused_since_unix_ms
                .get_or_insert(self.clock.now_ms());
        }
        format!(
            "; {how}: {site} is the group's active site now (it was {}){}",
            g.active,
            if gc.replication.is_some() {
                "; replication paused until a failback, switchover or `warden resync`"
            } else {
                ""
            }
        )
    }
}
