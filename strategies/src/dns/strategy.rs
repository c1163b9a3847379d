//! [`DnsStrategy`] as a [`Strategy`]: `activate` publishes through the
//! provider (asking the authoritative servers first when the provider skips
//! what it remembers as confirmed), `current` observes from the
//! authoritative servers (or the provider's own view without them).

use async_trait::async_trait;
use futures::future::join_all;

use super::{query, DnsStrategy, ProviderView, RecordValue};
use crate::{Epoch, Observed, SiteRoute, Strategy, StrategyError};

impl DnsStrategy {
    fn site_of(&self, value: &RecordValue) -> Option<String> {
        self.sites
            .iter()
            .find(|(_, v)| *v == value)
            .map(|(k, _)| k.clone())
    }

    /// `site` (where the names point) as the site of the decision at the
    /// provider's epoch — unless the provider's record of that decision
    /// names another target (the records changed by hand, or restored
    /// without the marker): that site at that epoch is a pair no decision
    /// made, which a new store would adopt. Then no site, and a drift line.
    fn decided(
        &self,
        site: Option<String>,
        view: &ProviderView,
        drift: &mut Vec<String>,
    ) -> Option<String> {
        match (site, &view.site) {
            (Some(s), Some(d)) if s != *d => {
                drift.push(format!(
                    "{} points at {s}, but the decision of epoch {} named {d}",
                    self.names[0], view.epoch
                ));
                None
            }
            (site, _) => site,
        }
    }

    /// Which record types any target uses (skip asking for the others).
    fn types_in_use(&self) -> (bool, bool) {
        let v4 = self.sites.values().any(|v| v.v4.is_some());
        let v6 = self.sites.values().any(|v| v.v6.is_some());
        (v4, v6)
    }
}

#[async_trait]
impl Strategy for DnsStrategy {
    fn name(&self) -> &str {
        &self.name
    }

    async fn activate(&self, target: &SiteRoute, epoch: Epoch) -> Result<(), StrategyError> {
        let value = self.sites.get(&target.site).ok_or_else(|| {
            StrategyError::Config(format!(
                "site {:?} has no address in groups.{}.dns.addresses; known: [{}]",
                target.site,
                self.group,
                self.sites.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if !self.nameservers.is_empty() && self.provider.skips_confirmed() {
            // A provider that skips updates it believes are done (noip's
            // "no needless nochg") must not skip one the zone contradicts.
            // (Only then: the first nameserver may be at the site that was
            // lost, and waiting for it would delay every switch by the
            // timeout for nothing.)
            let (want4, want6) = self.types_in_use();
            let asks = self.names.iter().map(|n| async move {
                let first = self.nameservers[0];
                (
                    n,
                    query::address_records(first, n, want4, want6, self.timeout).await,
                )
            });
            let wrong: Vec<String> = join_all(asks)
                .await
                .into_iter()
                .filter(|(_, r)| r.as_ref().is_ok_and(|a| a.value != *value))
                .map(|(n, _)| n.clone())
                .collect();
            if !wrong.is_empty() {
                self.provider.forget(&wrong);
            }
        }
        // The servers were asked (perhaps for long): the caller may no
        // longer act, whatever the provider would check itself.
        crate::gate::check(&format!("the DNS of group {}", self.group))?;
        self.provider.publish(&target.site, value, epoch).await
    }

    /// Ask every authoritative server for every name (no cache, AA bit
    /// checked). The observed site is the one whose addresses the first
    /// server gives for the main name; every other disagreement is a drift
    /// line. The epoch is the provider's, and so are the drift lines of a
    /// provider that reads its server (rfc2136: an unreadable marker).
    /// Without nameservers, the provider's own view is used.
    async fn current(&self) -> Result<Observed, StrategyError> {
        let view = self.provider.observe().await;
        if self.nameservers.is_empty() {
            let view = view?;
            return Ok(match view {
                None => Observed {
                    site: None,
                    epoch: 0,
                    drift: vec![],
                    unread: vec![],
                    unread_elements: vec![],
                },
                Some(v) => {
                    let mut drift = v.drift.clone();
                    let site = v.value.as_ref().and_then(|x| self.site_of(x));
                    if let (Some(x), None) = (&v.value, &site) {
                        drift.push(format!(
                            "the provider reports {x}, which is no target's address"
                        ));
                    }
                    Observed {
                        site: self.decided(site, &v, &mut drift),
                        epoch: v.epoch,
                        drift,
                        unread: vec![],
                        unread_elements: vec![],
                    }
                }
            });
        }
        // Both types, whatever the targets use: users resolve both, and an
        // address no target has (an AAAA left beside IPv4-only targets)
        // sends some of them elsewhere — drift, not a name that "points at"
        // the site.
        let asks = self.nameservers.iter().flat_map(|ns| {
            self.names.iter().map(move |n| async move {
                let r = query::address_records(*ns, n, true, true, self.timeout).await;
                (*ns, n.as_str(), r)
            })
        });
        let answers = join_all(asks).await;
        if self.provider.skips_confirmed() {
            // What it confirmed, against every server that answered from
            // its zone (`activate` asks only the first, which may be down).
            let (want4, want6) = self.types_in_use();
            for (_, name, r) in &answers {
                if let Some(a) = r.as_ref().ok().filter(|a| a.authoritative) {
                    let seen = RecordValue {
                        v4: a.value.v4.filter(|_| want4),
                        v6: a.value.v6.filter(|_| want6),
                    };
                    self.provider.contradicted(name, &seen);
                }
            }
        }
        let mut drift = Vec::new();
        let mut unread_elements = Vec::new();
        let mut reference: Option<RecordValue> = None;
        let mut any_ok = false;
        let mut errors = Vec::new();
        for (ns, name, r) in &answers {
            match r {
                Ok(a) => {
                    any_ok = true;
                    if !a.authoritative {
                        drift.push(format!(
                            "{ns} answered for {name} without the AA bit: it is not authoritative for the zone"
                        ));
                        continue;
                    }
                    if a.extra_v4 || a.extra_v6 {
                        drift.push(format!(
                            "{name} at {ns} holds several addresses of one type ({})",
                            a.all.join(", ")
                        ));
                    }
                    if let Some((ttl, max)) = a.ttl.zip(self.provider.ttl()).filter(|(t, m)| t > m)
                    {
                        drift.push(format!(
                            "{name} at {ns} has a TTL of {ttl} s, above the group's {max} s: resolvers keep the answer that long after a switch"
                        ));
                    }
                    match &reference {
                        None => reference = Some(a.value),
                        Some(r) if *r == a.value => {}
                        Some(r) => drift.push(format!(
                            "{name} at {ns} holds {} but {} was expected",
                            a.value, r
                        )),
                    }
                }
                Err(e) => {
                    let line = format!("{ns} cannot be asked about {name}: {e}");
                    unread_elements.push((ns.to_string(), line.clone()));
                    drift.push(line);
                    errors.push(e.clone());
                }
            }
        }
        if !any_ok {
            return Err(StrategyError::Unreachable {
                element: format!("authoritative servers of group {}", self.group),
                reason: errors.join("; "),
            });
        }
        let site = reference.as_ref().and_then(|v| self.site_of(v));
        if let (Some(v), None) = (&reference, &site) {
            drift.push(format!(
                "{} holds {v}, which is no target's address",
                self.names[0]
            ));
        }
        let (site, epoch) = match view {
            Ok(Some(v)) => {
                // A view read from the provider's server (rfc2136: the
                // primary) says what the nameservers cannot (a marker no
                // decision can be read from); one the provider remembers
                // (dyndns2) is replaced by their answers.
                if !self.provider.skips_confirmed() {
                    for d in &v.drift {
                        if !drift.contains(d) {
                            drift.push(d.clone());
                        }
                    }
                }
                (self.decided(site, &v, &mut drift), v.epoch)
            }
            Ok(None) => (site, 0),
            Err(e) => {
                drift.push(format!("cannot read the provider's epoch: {e}"));
                (site, 0)
            }
        };
        Ok(Observed {
            site,
            epoch,
            drift,
            unread: vec![],
            unread_elements,
        })
    }

    fn alerts(&self) -> Vec<String> {
        self.provider.alerts()
    }

    fn clear_alerts(&self) -> Vec<String> {
        self.provider.clear()
    }

    fn term_began(&self) {
        self.provider.term_began()
    }

    fn stops(&self) -> Vec<crate::ProviderStop> {
        self.provider.stops()
    }

    fn restore_stops(&self, stops: &[crate::ProviderStop]) -> Vec<String> {
        self.provider.restore_stops(stops)
    }
}
