//! The routing layer's own stops — a DNS provider's block after a fatal
//! answer (`badauth`, `abuse`, …), its hold after `911` — kept with the
//! group's stored state (`GroupState::provider_stops`): given back to the
//! strategy when this orchestrator starts or is elected, stored again
//! whenever the strategy's stops change. So neither a restart, a crash
//! loop nor a new leader sends to a provider that said stop.

use super::*;

impl Shared {
    /// At start (alone) or at take-over (elected): give each strategy its
    /// group's stored stops. A stop it does not take back (a hold that
    /// ended, a block whose provider settings changed) is an event.
    pub(crate) fn restore_provider_stops(&self) {
        let stored: Vec<(String, Vec<warden_strategies::ProviderStop>)> = {
            let st = self.lock();
            st.groups
                .values()
                .map(|g| (g.name.clone(), g.provider_stops.clone()))
                .collect()
        };
        for (group, stops) in stored {
            let Some(strategy) = self.strategies.get(&group) else {
                continue;
            };
            let dropped = strategy.restore_stops(&stops);
            if stops.len() > dropped.len() {
                warn!(group = %group, kept = stops.len() - dropped.len(), "stored routing alerts in force: the provider sends nothing until they are lifted (`warden clear`)");
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
    /// from the stored ones. Only the licence holder writes.
    pub(crate) fn sync_provider_stops(&self, group: Option<&str>) {
        if !self.licence.is_held() {
            return;
        }
        let now: Vec<(&String, Vec<warden_strategies::ProviderStop>)> = match group {
            Some(g) => self
                .strategies
                .get_key_value(g)
                .map(|(n, s)| (n, s.stops()))
                .into_iter()
                .collect(),
            None => self
                .strategies
                .iter()
                .map(|(n, s)| (n, s.stops()))
                .collect(),
        };
        let mut st = self.lock();
        for (name, stops) in now {
            let Some(g) = st.groups.get(name) else {
                continue;
            };
            if g.provider_stops == stops {
                continue;
            }
            let mut ng = g.clone();
            ng.provider_stops = stops;
            self.put_group_locked(&mut st, ng);
        }
    }
}
