//! The leader term each site's agent has taken ([`AgentReport::taken_term`])
//! against this leader's own: an agent that took a higher term takes this
//! leader's answers as a deposed leader's — its orders (promote, demote,
//! start-replication, resync…) are not run — until the group's next epoch.
//! That happens when the orchestrators' terms start over (a new etcd
//! cluster: terms are the create revision of the leader key; or one
//! orchestrator, term 0, after several), and the agent alone says it only
//! in its log. Here the leader says it once per site as an `alert` event
//! (level-triggered through `recorded`), and forgets it once a report of
//! the site no longer says so. A follower hands out no order: it says
//! nothing. A report without the field (an older agent) says nothing.
//! The status shows each site's term (`views`), and the scrape's
//! `warden_site_refuses_orders` gauge whether it is above (`views/metrics`).
//!
//! Terms are compared within one etcd cluster only ([`comparable`]): an
//! agent that says it keeps another cluster's term (the orchestrators
//! moved to a new etcd cluster) takes this leader's next answer as the
//! move, at the groups' current epochs (`warden_proto::cluster`): nothing
//! to say. An agent that does not say its cluster (an older one) is
//! compared by term, as before; so is every agent of one orchestrator
//! alone (no cluster, term 0: never a move, see `warden_proto::cluster`).

use super::*;

impl Shared {
    /// For a report of `site` taken by the leader (state lock held):
    /// `taken` its agent's leader term, against [`Shared::answer_term`].
    pub(super) fn taken_term_check_locked(
        &self,
        st: &mut State,
        site: &str,
        taken: Option<u64>,
        left: Option<(u64, Option<u64>)>,
    ) {
        let own = self.answer_term();
        let refusal = match left {
            Some((this, kept)) => Some(left_message(site, this, kept)),
            None => taken
                .filter(|&t| t > own)
                .map(|t| refused_message(site, t, own)),
        };
        let key = format!("taken_term/{site}");
        if st.recorded.observe(&key, refusal.as_deref()) {
            match refusal {
                Some(msg) => {
                    self.event_locked(st, EventKind::Alert, None, Some(site), msg, vec![], None)
                }
                None => {
                    info!(
                        site,
                        term = own,
                        "site {site}'s agent takes this leader's orders again"
                    )
                }
            }
        }
    }
}

/// The term `report` says its agent took, when it can be compared with
/// this leader's, of etcd cluster `own`: the agent keeps a term of that
/// cluster or of none, or does not say its cluster (an older agent), or this is one
/// orchestrator alone (no cluster: every agent judges its term 0 by term,
/// never as a move — `warden_proto::cluster`).
pub(crate) fn comparable(report: &AgentReport, own: Option<u64>) -> Option<u64> {
    match report.taken_cluster {
        // An agent keeping a term of no cluster compares this leader's by
        // term too (`warden_agents` authority: a rolling upgrade).
        Some(Some(kept)) if Some(kept) != own && own.is_some() => None,
        _ => report.taken_term,
    }
}

/// When `report`'s agent left this leader's etcd cluster `own` (it is
/// among the clusters it reports left): this cluster and the one the
/// agent keeps. Such an agent refuses every answer of this leader whatever
/// its term, for good — the data was restored from before the move, or
/// the orchestrators went back to it.
pub(crate) fn left_this_cluster(
    report: &AgentReport,
    own: Option<u64>,
) -> Option<(u64, Option<u64>)> {
    let own = own?;
    report
        .left_clusters
        .contains(&own)
        .then(|| (own, report.taken_cluster.flatten()))
}

/// The alert for an agent that left this leader's cluster.
fn left_message(site: &str, this: u64, kept: Option<u64>) -> String {
    format!(
        "site {site}'s agent refuses this orchestrator's orders: it left {} for {} (the \
         orchestrators moved away from this etcd data and back: a restore from before the move?), \
         so it takes every answer of this leader as a deposed leader's; once nothing of the \
         leaders of {} can still arrive: stop the agent, take {this} out of \"retired\" in its \
         authority.json (in its state_dir), start it",
        warden_proto::cluster::name(Some(this)),
        warden_proto::cluster::name(kept),
        warden_proto::cluster::name(kept),
    )
}

/// The alert: what was observed, and what to do.
fn refused_message(site: &str, taken: u64, own: u64) -> String {
    format!(
        "site {site}'s agent refuses this orchestrator's orders: it took leader term {taken}, \
         this leader's term is {own} (the orchestrators' terms started over: a new etcd \
         cluster, or one orchestrator after several; and the agent cannot tell the two terms' \
         clusters apart: an older agent, or a term it took from an older orchestrator that \
         does not say its cluster); its orders run again from the group's next epoch, or \
         sooner: stop the agent, set \"term\" to 0 in its authority.json (in its state_dir), \
         start it"
    )
}
