//! Authority of the orchestrator over its groups (DESIGN §10): what it does
//! when the world shows an epoch it did not allocate, when its store is new,
//! and when a site that was failed away from turns up believing it is active.
//!
//! - A group new to the store adopts what the routing layer shows (route and
//!   epoch; [`super::adopt`]), starts with replication paused when something
//!   was routed before, and holds automatic decisions until every site of the
//!   group has reported (or an operator approves).
//! - An epoch above the group's, seen at the routing layer or in an agent's
//!   report, is recorded as [`EpochAhead`], shown as an alert, and holds
//!   automatic decisions and replication orders; nothing jumps silently: the
//!   operator adopts it with `warden adopt-epoch GROUP` ([`super::adopt`]).
//! - A site whose agent reports the `active` role for a steady group whose
//!   active site is another is told to demote, before anything else; in a
//!   group whose last runbook failed, only while the group's active site
//!   reports `active` too (two sites hold the role). One
//!   that reports `unknown` (its state file lost) is told its role again: a
//!   promote where it is the active site, a demote elsewhere (not while the
//!   group is held or in maintenance). A site that ran such a command
//!   [`REFENCE_MAX`] + 1 times and still reports the role raises one alert.
//! - Outcomes dropped by the command ledger (foreign or unknown ids) become
//!   one event per reporting site and period.

use warden_proto::agent::{AuthorityWire, Command, CommandKind};

use super::{Shared, State};
use crate::model::{EventKind, GroupState, Phase};

/// An epoch seen outside that is higher than the group's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochAhead {
    pub epoch: u64,
    /// Where it was seen ("the routing layer", "site b's agent").
    pub seen_at: String,
}

/// Fresh demotes queued for one site, group and epoch after the epoch's
/// own demote finished (see [`refence`]): a site that comes back active
/// after as many has a demote that fails, and says so in its outcomes.
pub(super) const REFENCE_MAX: u32 = 8;

/// The demote for a site found believing it is active where another site
/// is (or the promote or demote for a site that forgot its role): the
/// epoch's own command (`base`) unless it already ran there — then the
/// site has forgotten it (its state file lost, or restored from an older
/// copy), and the ledger would never hand out a finished id again, so a
/// fresh id of the same group, epoch and kind. None while one is queued,
/// or after [`REFENCE_MAX`] fresh ones.
fn refence(ledger: &crate::commands::Ledger, base: Command) -> Refence {
    use crate::commands::CommandState;
    let mut last = base.id.clone();
    for n in 0..=REFENCE_MAX {
        let mut cmd = base.clone();
        if n > 0 {
            cmd.id = format!("{}:again-{n}", base.id);
        }
        match ledger.state(&cmd.id) {
            None | Some(CommandState::Withdrawn(_)) => return Refence::Next(cmd),
            Some(CommandState::Queued) => return Refence::Queued,
            Some(CommandState::Finished(_)) => last = cmd.id,
        }
    }
    Refence::Exhausted(last)
}

/// The fencing event's text for the order queued after `a` (written only
/// when one is queued: reports repeat the role while it waits).
fn told_why(site: &str, g: &GroupState, a: &AuthorityWire) -> String {
    if a.role == "unknown" && g.active == site {
        format!(
            "{site} is the active site of group {} (epoch {}), but its agent reports its role \
             unknown at epoch {} (its authority state lost): promoting it again, so that it \
             refuses pushes into it and may replicate",
            g.name, g.epoch, a.epoch
        )
    } else if a.role == "unknown" {
        format!(
            "{site}'s agent reports its role in group {} unknown at epoch {} (its authority \
             state lost; active: {}, epoch {}): demoting it again, so that it pushes nothing \
             until a resync",
            g.name, a.epoch, g.active, g.epoch
        )
    } else if g.phase == Phase::Failed {
        format!(
            "{site}'s agent reports role active at epoch {} in group {}, whose last runbook failed, \
             and the group's active site {} reports active too (epoch {}): two sites hold the role; \
             demoting {site}, the group's active site keeps it",
            a.epoch, g.name, g.active, g.epoch
        )
    } else {
        format!(
            "{site} was failed away from while it was unreachable (active: {}, epoch {}); \
             its agent reports role active at epoch {}: demoting it now, before anything else it is told",
            g.active, g.epoch, a.epoch
        )
    }
}

/// What [`refence`] found.
enum Refence {
    /// The command to queue now.
    Next(Command),
    /// One is queued already.
    Queued,
    /// Every id ran (the last one named): asked often enough.
    Exhausted(String),
}

impl Shared {
    /// Look at what a reporting agent believes (state lock held).
    pub(crate) fn authority_check_locked(
        &self,
        st: &mut State,
        site: &str,
        authority: &[AuthorityWire],
    ) {
        let mut told = false;
        for a in authority.iter().take(1024) {
            let Some(gc) = self.cfg.groups.get(&a.group) else {
                continue;
            };
            if !gc.site_names().iter().any(|s| s == site) {
                continue;
            }
            let Some(g) = st.groups.get(&a.group).cloned() else {
                continue;
            };
            if a.epoch > g.epoch {
                self.note_epoch_ahead_locked(st, &g, a.epoch, &format!("{site}'s agent"));
                continue;
            }
            if g.phase == Phase::Failed {
                // A failed runbook leaves the group for the operator, and
                // its `active` may not be where users are (a move left as
                // it was because another decision held the routing layer),
                // so a site reporting `active` is not simply demoted. But
                // when the group's active site reports `active` too, two
                // sites hold the role (a promote that finished after its
                // failover had failed, then the old site back unfenced; a
                // site back unfenced after a failover carried forward):
                // the group's own choice keeps it, the other is demoted.
                if a.role != "active"
                    || g.active == site
                    || g.maintenance
                    || st.epoch_ahead.contains_key(&g.name)
                    || !self.reports_active_locked(st, &g.active, &g.name)
                {
                    continue;
                }
            } else if g.phase != Phase::Steady {
                continue;
            } else if a.role == "active"
                && g.active != site
                && self.reported_role_locked(st, &g.active, &g.name) == Some("standby")
            {
                // The group's active site says it does not hold the role
                // (fenced): this site is the only one that does, and
                // demoting it would leave the role — and users routed to
                // it — to nobody. The group's record is not where users
                // are (a move run from memory and lost with its process,
                // its epoch then adopted): said, for the operator.
                let msg = format!(
                    "{site} reports the active role in group {} at epoch {} while the group's active \
                     site {} reports standby: {site} is not demoted (no site would hold the role). \
                     The group's record may not be where users are: `warden status {}`, then \
                     `warden failover {} --to {site}` if users are on {site}",
                    g.name, a.epoch, g.active, g.name, g.name
                );
                let key = format!("sole_active/{}", g.name);
                if st.recorded.observe(&key, Some(&msg)) {
                    self.event_locked(
                        st,
                        EventKind::Alert,
                        Some(&g.name),
                        Some(site),
                        msg,
                        vec![],
                        None,
                    );
                }
                continue;
            }
            // A site that forgot its role (its state file lost: role
            // `unknown`) is told it again — a promote where it is the
            // active site, a demote elsewhere — once the group's decisions
            // are neither held (a fresh store's `active` may be only the
            // configured primary) nor in an operator's hands
            // (maintenance). Meanwhile its gate refuses pushes into it and
            // it starts no replication, so waiting is safe. A `standby`
            // at the active site is left alone: it may be a site demoted
            // at this very epoch, which a promote would let push again.
            let forgot = a.role == "unknown";
            if forgot && (g.maintenance || self.held_locked(st, &g.name).is_some()) {
                continue;
            }
            let kind = match (g.active == site, a.role.as_str()) {
                (true, "unknown") => CommandKind::Promote,
                (false, "unknown") | (false, "active") => CommandKind::Demote,
                _ => continue,
            };
            // Agents are told only epochs the store holds (the answers'
            // `epochs` too): a group whose epoch is still being written (a
            // split mended at a new one) is ordered at a later report — an
            // order at an epoch lost with a deposed leader's write would
            // hold the next leader's moves (epoch ahead).
            if super::persist::durable_epoch(&self.writer.durable(), &g.name, g.epoch) < g.epoch {
                continue;
            }
            let base = Command::new(&g.name, g.epoch, kind).to_site(site);
            let cmd = match refence(&st.ledger, base) {
                Refence::Queued => continue,
                Refence::Next(cmd) => cmd,
                Refence::Exhausted(last) => {
                    // Said once per command id: the site ran the command
                    // REFENCE_MAX + 1 times and still reports the role.
                    // Bounded like the ledger: an id it evicted is
                    // forgotten here too (and asked again, if ever, anew).
                    let ledger = &st.ledger;
                    st.refence_exhausted.retain(|id| ledger.state(id).is_some());
                    if st.refence_exhausted.insert(last) {
                        self.event_locked(
                            st,
                            EventKind::Alert,
                            Some(&g.name),
                            Some(site),
                            format!(
                                "{site} ran {} {} times at epoch {} and its agent still reports role {}: \
                                 not asking again; look at its {} hooks and its state_dir",
                                kind.as_str(),
                                REFENCE_MAX + 1,
                                g.epoch,
                                a.role,
                                kind.as_str()
                            ),
                            vec![],
                            None,
                        );
                    }
                    continue;
                }
            };
            if st.ledger.queue(cmd, None) {
                told = true;
                self.event_locked(
                    st,
                    EventKind::Fencing,
                    Some(&g.name),
                    Some(site),
                    told_why(site, &g, a),
                    vec![],
                    None,
                );
            }
        }
        if told {
            self.command_tick.send_modify(|v| *v += 1);
        }
    }

    /// Whether `site`'s agent, in a report received within
    /// `agent_timeout`, says it holds the `active` role in `group`.
    pub(crate) fn reports_active_locked(&self, st: &State, site: &str, group: &str) -> bool {
        self.reported_role_locked(st, site, group) == Some("active")
    }

    /// The one site of `sites` whose agent reports the active role in
    /// `group` at exactly `epoch` (in a report received within
    /// `agent_timeout`), if exactly one does.
    pub(crate) fn sole_active_at_locked(
        &self,
        st: &State,
        group: &str,
        epoch: u64,
        sites: &[String],
    ) -> Option<String> {
        let mut active = sites.iter().filter(|site| {
            st.evidence.report(site).is_some_and(|(at, r)| {
                at.elapsed() <= self.cfg.detection.agent_timeout
                    && r.authority
                        .iter()
                        .any(|a| a.group == group && a.role == "active" && a.epoch == epoch)
            })
        });
        let one = active.next()?;
        active.next().is_none().then(|| one.clone())
    }

    /// The role in `group` `site`'s agent says it holds, in a report
    /// received within `agent_timeout`.
    fn reported_role_locked<'a>(&self, st: &'a State, site: &str, group: &str) -> Option<&'a str> {
        let (at, r) = st.evidence.report(site)?;
        if at.elapsed() > self.cfg.detection.agent_timeout {
            return None;
        }
        r.authority
            .iter()
            .find(|a| a.group == group)
            .map(|a| a.role.as_str())
    }

    /// Record an epoch above the group's (state lock held); alert once per new value.
    pub(crate) fn note_epoch_ahead_locked(
        &self,
        st: &mut State,
        g: &GroupState,
        epoch: u64,
        seen_at: &str,
    ) {
        if st
            .epoch_ahead
            .get(&g.name)
            .is_some_and(|x| x.epoch >= epoch)
        {
            return;
        }
        st.epoch_ahead.insert(
            g.name.clone(),
            EpochAhead {
                epoch,
                seen_at: seen_at.to_string(),
            },
        );
        let msg = epoch_ahead_message(&g.name, g.epoch, epoch, seen_at);
        self.event_locked(st, EventKind::Alert, Some(&g.name), None, msg, vec![], None);
    }

    /// Why automatic decisions of `group` are held, if they are.
    pub(crate) fn held_locked(&self, st: &State, group: &str) -> Option<String> {
        if let Some(x) = st.epoch_ahead.get(group) {
            let own = st.groups.get(group).map(|g| g.epoch).unwrap_or_default();
            return Some(epoch_ahead_message(group, own, x.epoch, &x.seen_at));
        }
        st.groups.get(group).and_then(|g| g.hold.clone())
    }

    /// Lift the start-up hold of groups whose every site has reported (state lock held).
    pub(crate) fn lift_holds_locked(&self, st: &mut State, now: tokio::time::Instant) {
        let held: Vec<String> = st
            .groups
            .values()
            .filter(|g| g.hold.is_some())
            .map(|g| g.name.clone())
            .collect();
        for name in held {
            let Some(gc) = self.cfg.groups.get(&name) else {
                continue;
            };
            let all = gc
                .site_names()
                .iter()
                .all(|s| st.detector.agent_fresh(&st.evidence, s, now));
            if !all {
                continue;
            }
            let Some(mut ng) = st.groups.get(&name).cloned() else {
                continue;
            };
            ng.hold = None;
            self.put_group_locked(st, ng);
            self.event_locked(
                st,
                EventKind::Approved,
                Some(&name),
                None,
                "every site of the group has reported: automatic decisions resume".to_string(),
                vec![],
                None,
            );
        }
    }

    /// Turn the ledger's tallies of dropped outcomes into events (state lock held).
    pub(crate) fn flush_dropped_locked(&self, st: &mut State) {
        for (site, t) in st.ledger.take_dropped() {
            self.metrics.dropped_outcomes.inc_by(t.count);
            self.event_locked(
                st,
                EventKind::Fencing,
                None,
                Some(&site),
                format!(
                    "dropped {} command outcome(s) reported by {site}'s agent for commands not queued for {site} \
                     (forged, replayed or stale): {}",
                    t.count,
                    t.examples.join(", ")
                ),
                vec![],
                None,
            );
        }
    }
}

/// The alert line of an [`EpochAhead`].
pub(super) fn epoch_ahead_alert(group: &str, own: u64, x: &EpochAhead) -> String {
    epoch_ahead_message(group, own, x.epoch, &x.seen_at)
}

pub(super) fn epoch_ahead_message(group: &str, own: u64, seen: u64, seen_at: &str) -> String {
    format!(
        "{seen_at} holds epoch {seen} for {group}, above this orchestrator's {own} (a lost or replaced store, another \
         orchestrator, or a forged order): every move would be refused as stale, so automatic decisions and \
         replication orders are held. Once you know no other orchestrator acts: `warden adopt-epoch {group} --epoch {seen}`"
    )
}
