//! The routing layer's own stops — a DNS provider's block after a fatal
//! answer (`badauth`, `abuse`, …), its hold after `911` — kept with the
//! group's stored state (`GroupState::provider_stops`): given back to the
//! strategy when this orchestrator starts or is elected, stored again
//! whenever the strategy's stops change. So neither a restart, a crash
//! loop nor a new leader sends to a provider that said stop.
//!
//! A stored stop keeps the fields a newer version wrote into it
//! ([`Stored`]) across the rewrites here. A stop of a kind this version
//! does not know makes the group's record unreadable to it, and the group
//! is left as stored (`untouched`, its alert naming the kind) rather than
//! acted on with that stop skipped or kept opaque: a stop says the
//! provider must not be sent to, and every move of the group goes through
//! it — acted on, the group would send what the provider refused (its
//! abuse rules end with the account blocked) or, honouring the stop as a
//! block, fail each move at its switch (a failover half done: promoted,
//! users not moved). A node of the newer version acts on the group.

use super::*;

use warden_strategies::ProviderStop;

use crate::model::Stored;

impl Shared {
    /// At start (alone) or at take-over (elected): give each strategy its
    /// group's stored stops, together with any this process still holds
    /// (a stop it earned while it last led, whose write a step-down
    /// discarded: never forget a stop; at worst the operator clears it
    /// twice). A stop it does not take back (a hold that ended, a block
    /// whose provider settings changed) is an event.
    pub(crate) fn restore_provider_stops(&self) {
        let stored: Vec<(String, Vec<ProviderStop>)> = {
            let st = self.lock();
            st.groups
                .values()
                .filter(|g| !g.provider_stops.is_empty())
                .map(|g| {
                    let known = g.provider_stops.iter().map(|s| s.known.clone());
                    (g.name.clone(), known.collect())
                })
                .collect()
        };
        // what the store holds now: a stop dropped below is stored as dropped
        *self
            .stopped_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = stored.iter().map(|(n, _)| n.clone()).collect();
        for (group, mut stops) in stored {
            let Some(strategy) = self.strategies.get(&group) else {
                continue;
            };
            for held in strategy.stops() {
                if !stops.contains(&held) {
                    stops.push(held);
                }
            }
            let dropped = strategy.restore_stops(&stops);
            let kept = strategy.stops().len();
            if kept > 0 {
                warn!(group = %group, kept, "stored routing alerts in force: the provider sends nothing until they are lifted (`warden clear`)");
            }
            for line in dropped {
                self.event(
                    EventKind::AlertCleared,
                    Some(&group),
                    None,
                    format!("stored alert not taken back: {line}"),
                    vec![],
                    None,
                );
            }
        }
        self.sync_provider_stops(None);
    }

    /// Store the stops of `group` (`None`: every group) where they differ
    /// from the stored ones. Only the licence holder writes. Syncs run one
    /// at a time (`stopped_groups`' lock), each reading the strategies'
    /// stops inside it, so two syncs (a reconciliation and a `warden
    /// clear`) store in the order they saw the stops. The state lock is
    /// taken only for the groups that hold or held a stop, not for every
    /// group of every reconciliation pass.
    pub(crate) fn sync_provider_stops(&self, group: Option<&str>) {
        if !self.licence.is_held() {
            return;
        }
        let mut stopped = self
            .stopped_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let wanted =
            |name: &String, stops: &Vec<ProviderStop>| !stops.is_empty() || stopped.contains(name);
        let changed: Vec<(String, Vec<ProviderStop>)> = match group {
            Some(g) => self
                .strategies
                .get_key_value(g)
                .map(|(n, s)| (n.clone(), s.stops()))
                .into_iter()
                .collect(),
            None => self
                .strategies
                .iter()
                .map(|(n, s)| (n, s.stops()))
                .filter(|(n, stops)| wanted(n, stops))
                .map(|(n, stops)| (n.clone(), stops))
                .collect(),
        };
        if changed.is_empty() {
            return;
        }
        let mut st = self.lock();
        for (name, stops) in changed {
            if stops.is_empty() {
                stopped.remove(&name);
            } else {
                stopped.insert(name.clone());
            }
            let Some(g) = st.groups.get(&name) else {
                continue;
            };
            if g.provider_stops.iter().map(|s| &s.known).eq(stops.iter()) {
                continue;
            }
            let mut ng = g.clone();
            ng.provider_stops = kept_with(&g.provider_stops, stops);
            self.put_group_locked(&mut st, ng);
        }
    }
}

/// The strategy's `stops` as stored, each keeping the fields a newer
/// version wrote into the same stop as `stored` holds it (its kind, reason
/// and alert line; a hold's end may have been shortened since): the stops
/// are written whole whenever one changes, and another stop's change must
/// not drop them. A stop the strategy no longer holds goes with them.
fn kept_with(
    stored: &[Stored<ProviderStop>],
    stops: Vec<ProviderStop>,
) -> Vec<Stored<ProviderStop>> {
    stops
        .into_iter()
        .map(|known| {
            let unknown = stored
                .iter()
                .find(|s| s.kind == known.kind && s.reason == known.reason && s.line == known.line)
                .map(|s| s.unknown.clone())
                .unwrap_or_default();
            Stored { known, unknown }
        })
        .collect()
}
