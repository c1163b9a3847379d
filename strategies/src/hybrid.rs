//! The `hybrid` scheme (DESIGN §5): two layers of routing for one group.
//!
//! - **site layer**: every frontend of the group (built-in `warden frontend`s
//!   or HAProxies, through [`FrontendStrategy`]) routes to the active site; the
//!   [`Strategy`] calls (`activate`, `current`) are this layer, so the runbooks
//!   of the `frontend` scheme move sites unchanged;
//! - **frontend layer**: the group's DNS name points at the public address of
//!   one frontend (the DNS-active one, through [`DnsStrategy`] whose targets are
//!   frontend names). The orchestrator moves it with [`HybridStrategy::point_dns`]
//!   when it confirms a frontend machine down.
//!
//! A dead frontend must not stop a site move: `activate` succeeds when every
//! frontend that answered took the route and the others were merely
//! unreachable (they get it back through reconciliation once they return), and
//! `current` judges the frontends that answer. A fencing refusal from any
//! frontend still fails the call.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use tracing::warn;
use warden_config::Config;

use crate::dns::DnsStrategy;
use crate::frontend::{most_severe, FrontendDriver, FrontendStrategy};
use crate::{Epoch, HoldPlace, Observed, SiteRoute, Strategy, StrategyError, SwitchMode};

/// The `hybrid` strategy of one group: a [`FrontendStrategy`] (site layer)
/// and a [`DnsStrategy`] over the frontends' addresses (frontend layer).
pub struct HybridStrategy {
    group: String,
    /// `hybrid/builtin+rfc2136`, ...
    name: String,
    frontends: FrontendStrategy,
    dns: DnsStrategy,
}

impl std::fmt::Debug for HybridStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridStrategy")
            .field("group", &self.group)
            .field("frontends", &self.frontends)
            .field("dns", &self.dns)
            .finish()
    }
}

impl HybridStrategy {
    /// Compose the two layers. The DNS strategy's targets must be the
    /// frontends' names (for `hybrid`, `groups.G.dns.addresses` is keyed by frontend).
    pub fn new(group: &str, frontends: FrontendStrategy, dns: DnsStrategy) -> HybridStrategy {
        let name = format!(
            "hybrid/{}+{}",
            frontends.name().trim_start_matches("frontend/"),
            dns.name().trim_start_matches("dns/")
        );
        HybridStrategy {
            group: group.to_string(),
            name,
            frontends,
            dns,
        }
    }

    /// Build both layers of `group` from the validated config.
    pub fn configured(cfg: &Config, group: &str) -> Result<HybridStrategy, StrategyError> {
        let frontends = FrontendStrategy::configured(cfg, group)?;
        let dns = DnsStrategy::for_targets(cfg, group)?;
        Ok(HybridStrategy::new(group, frontends, dns))
    }

    /// [`HybridStrategy::configured`], shared.
    pub fn from_config(cfg: &Config, group: &str) -> Result<Arc<HybridStrategy>, StrategyError> {
        Ok(Arc::new(HybridStrategy::configured(cfg, group)?))
    }

    /// The frontends' names, in the order of the config (the first is where
    /// DNS points before any frontend move).
    pub fn frontend_names(&self) -> Vec<String> {
        self.frontends
            .drivers()
            .iter()
            .map(|d| d.name().to_string())
            .collect()
    }

    fn driver(&self, frontend: &str) -> Result<&Arc<dyn FrontendDriver>, StrategyError> {
        self.frontends
            .drivers()
            .iter()
            .find(|d| d.name() == frontend)
            .ok_or_else(|| {
                StrategyError::Config(format!(
                    "{frontend:?} is not a frontend of group {}; frontends: [{}]",
                    self.group,
                    self.frontend_names().join(", ")
                ))
            })
    }

    /// Each frontend's own route: (name, site or `None`, highest epoch), or why it cannot be read.
    pub async fn routes(&self) -> Vec<(String, Result<(Option<String>, Epoch), StrategyError>)> {
        let reads = self
            .frontends
            .drivers()
            .iter()
            .map(|d| async move { (d.name().to_string(), d.route().await) });
        join_all(reads).await
    }

    /// Give one frontend the group's route (reconciling a restarted frontend).
    pub async fn set_route(
        &self,
        frontend: &str,
        route: &SiteRoute,
        epoch: Epoch,
    ) -> Result<(), StrategyError> {
        self.driver(frontend)?
            .set_route(&route.site, epoch, route.mode)
            .await
    }

    /// Frontend layer: point the group's name at `frontend`'s address,
    /// fenced by `epoch` (the DNS provider's compare-and-set refuses a writer
    /// that no longer holds the record).
    pub async fn point_dns(&self, frontend: &str, epoch: Epoch) -> Result<(), StrategyError> {
        self.driver(frontend)?;
        let target = SiteRoute {
            site: frontend.to_string(),
            mode: SwitchMode::Immediate,
        };
        self.dns.activate(&target, epoch).await
    }

    /// Frontend layer as the authoritative servers answer it: `site` is the
    /// frontend the name resolves to.
    pub async fn dns_current(&self) -> Result<Observed, StrategyError> {
        self.dns.current().await
    }
}

#[async_trait]
impl Strategy for HybridStrategy {
    fn name(&self) -> &str {
        &self.name
    }

    /// Site layer: the frontends hold new connections (see [`Strategy::hold`]).
    async fn hold(
        &self,
        epoch: Epoch,
        place: HoldPlace,
        ttl: std::time::Duration,
        pause: bool,
    ) -> Result<(), StrategyError> {
        self.frontends.hold(epoch, place, ttl, pause).await
    }

    /// Site layer: the frontends' reports (see [`Strategy::hold_seq_taken`]).
    fn hold_seq_taken(&self) -> u64 {
        self.frontends.hold_seq_taken()
    }

    /// Site layer: send the route to every frontend at once. Succeeds when
    /// at least one frontend took it and the others were only unreachable.
    async fn activate(&self, target: &SiteRoute, epoch: Epoch) -> Result<(), StrategyError> {
        let sends = self.frontends.drivers().iter().map(|d| async move {
            (
                d.name(),
                d.set_route(&target.site, epoch, target.mode).await,
            )
        });
        let mut took = 0;
        let mut errors = Vec::new();
        for (frontend, result) in join_all(sends).await {
            match result {
                Ok(()) => took += 1,
                Err(e) => {
                    warn!(group = %self.group, frontend, site = %target.site, epoch, cause = %e, "frontend did not take the route");
                    errors.push(e);
                }
            }
        }
        if took > 0 && errors.iter().all(StrategyError::is_transient) {
            return Ok(());
        }
        match most_severe(errors) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Site layer as the frontends that answer report it: the highest epoch
    /// and the site the frontends at that epoch route to (the newest
    /// decision; most of them, the first listed winning a tie), never a site
    /// paired with an epoch no decision gave it — as
    /// [`FrontendStrategy`]'s `current`; a frontend that answers something
    /// else is a drift line. Unreachable frontends are the frontend layer's
    /// business (health checks, DNS) and are left out, listed in `unread`;
    /// one that answers but whose route cannot be read (refused, a dump
    /// it cannot make sense of: an HAProxy backend with a ready server of
    /// no site) is a drift line, as in the `frontend` scheme — its users
    /// may be sent anywhere, and a verify must not pass over it. Fails
    /// when none answers.
    async fn current(&self) -> Result<Observed, StrategyError> {
        let reads = self.routes().await;
        let answers: Vec<(&str, &(Option<String>, Epoch))> = reads
            .iter()
            .filter_map(|(n, r)| r.as_ref().ok().map(|a| (n.as_str(), a)))
            .collect();
        if answers.is_empty() {
            let reasons: Vec<String> = reads
                .iter()
                .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
                .collect();
            let refused = reads
                .into_iter()
                .filter_map(|(_, r)| r.err())
                .find(|e| !e.is_transient());
            return Err(match refused {
                Some(e) => e,
                None => StrategyError::Unreachable {
                    element: format!("every frontend of group {}", self.group),
                    reason: reasons.join("; "),
                },
            });
        }
        let (site, epoch) = crate::frontend::newest_route(answers.iter().map(|(_, a)| *a));
        let mut drift = Vec::new();
        for (frontend, read) in &reads {
            match read {
                Err(e) if e.is_transient() => {}
                Err(e) => drift.push(format!("{frontend} cannot be read: {e}")),
                Ok(answer) => drift.extend(crate::frontend::answer_drift(
                    frontend, answer, &site, epoch,
                )),
            }
        }
        let unread = reads
            .iter()
            .filter_map(|(n, r)| {
                r.as_ref()
                    .err()
                    .filter(|e| e.is_transient())
                    .map(|e| format!("{n}: {e}"))
            })
            .collect();
        Ok(Observed {
            site,
            epoch,
            drift,
            unread,
            unread_elements: vec![],
        })
    }

    fn alerts(&self) -> Vec<String> {
        self.dns.alerts()
    }

    fn clear_alerts(&self) -> Vec<String> {
        self.dns.clear_alerts()
    }

    /// The DNS layer's memory (the frontends are read each time).
    fn term_began(&self) {
        self.dns.term_began()
    }

    fn leads_under(&self, term: u64, cluster: Option<u64>) {
        self.frontends.leads_under(term, cluster)
    }

    fn stops(&self) -> Vec<crate::ProviderStop> {
        self.dns.stops()
    }

    fn restore_stops(&self, stops: &[crate::ProviderStop]) -> Vec<String> {
        self.dns.restore_stops(stops)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::dns::{DnsProvider, ProviderView, RecordValue};

    /// A frontend that answers one fixed route.
    struct Fixed(&'static str, Option<&'static str>, u64);

    #[async_trait]
    impl FrontendDriver for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        async fn set_route(&self, _: &str, _: u64, _: SwitchMode) -> Result<(), StrategyError> {
            Ok(())
        }
        async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
            Ok((self.1.map(String::from), self.2))
        }
    }

    /// A frontend that cannot be reached.
    struct Gone(&'static str);

    #[async_trait]
    impl FrontendDriver for Gone {
        fn name(&self) -> &str {
            self.0
        }
        async fn set_route(&self, _: &str, _: u64, _: SwitchMode) -> Result<(), StrategyError> {
            Err(self.unreachable())
        }
        async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
            Err(self.unreachable())
        }
    }

    impl Gone {
        fn unreachable(&self) -> StrategyError {
            StrategyError::Unreachable {
                element: self.0.into(),
                reason: "request timed out".into(),
            }
        }
    }

    /// A frontend that answers but whose route cannot be read (an HAProxy
    /// backend with a ready server of no site).
    struct Unreadable(&'static str);

    #[async_trait]
    impl FrontendDriver for Unreadable {
        fn name(&self) -> &str {
            self.0
        }
        async fn set_route(&self, _: &str, _: u64, _: SwitchMode) -> Result<(), StrategyError> {
            Ok(())
        }
        async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
            Err(StrategyError::Rejected {
                element: self.0.into(),
                reason: "server srv_x is ready but maps to no site".into(),
            })
        }
    }

    /// A DNS provider that is never asked.
    struct Silent;

    #[async_trait]
    impl DnsProvider for Silent {
        fn kind(&self) -> &'static str {
            "silent"
        }
        async fn publish(&self, _: &str, _: &RecordValue, _: Epoch) -> Result<(), StrategyError> {
            Ok(())
        }
        async fn observe(&self) -> Result<Option<ProviderView>, StrategyError> {
            Ok(None)
        }
    }

    /// Group "web" over `drivers`, its DNS never asked.
    fn over(drivers: Vec<Arc<dyn FrontendDriver>>) -> HybridStrategy {
        let frontends = FrontendStrategy::new("web", drivers).expect("strategy");
        let dns = DnsStrategy::new(
            "web",
            vec!["www.example.net".into()],
            BTreeMap::new(),
            vec![],
            Duration::from_secs(1),
            Arc::new(Silent),
        );
        HybridStrategy::new("web", frontends, dns)
    }

    /// fe1 took the decision of epoch 7 (b); fe2 and fe3 still hold the one
    /// of epoch 5 (a): the site layer is b at 7 — not "a at 7", a pair no
    /// decision made, which a new store would adopt (and then order a at
    /// 7 to every frontend: epoch 7 naming two sites).
    #[tokio::test]
    async fn the_site_observed_is_the_one_at_the_highest_epoch() {
        let drivers: Vec<Arc<dyn FrontendDriver>> = vec![
            Arc::new(Fixed("fe1", Some("b"), 7)),
            Arc::new(Fixed("fe2", Some("a"), 5)),
            Arc::new(Fixed("fe3", Some("a"), 5)),
        ];
        let seen = over(drivers).current().await.expect("readable");
        assert_eq!((seen.site.as_deref(), seen.epoch), (Some("b"), 7));
        assert_eq!(
            seen.drift,
            vec![
                "fe2 routes to a at epoch 5".to_string(),
                "fe3 routes to a at epoch 5".to_string(),
            ]
        );
    }

    /// fe2 cannot be read: the site layer is what fe1 says, without a
    /// drift line for fe2 (its reachability is the frontend layer's
    /// business), but fe2 is listed as unread, so a reading that must
    /// cover every frontend (a failed switch's rollback) does not
    /// conclude from fe1 alone.
    #[tokio::test]
    async fn an_unreachable_frontend_is_left_out_and_listed_as_unread() {
        let drivers: Vec<Arc<dyn FrontendDriver>> =
            vec![Arc::new(Fixed("fe1", Some("a"), 5)), Arc::new(Gone("fe2"))];
        let seen = over(drivers).current().await.expect("readable");
        assert_eq!((seen.site.as_deref(), seen.epoch), (Some("a"), 5));
        assert!(seen.drift.is_empty(), "{:?}", seen.drift);
        assert_eq!(seen.unread.len(), 1, "{:?}", seen.unread);
        assert!(
            seen.unread[0].starts_with("fe2: ") && seen.unread[0].contains("request timed out"),
            "{:?}",
            seen.unread
        );
    }

    /// fe2 answers but its route cannot be read (refused, not unreachable):
    /// a drift line, as in the `frontend` scheme — its users may be sent
    /// to a site the decision did not name, so a verify that reads fe1 at
    /// the decision must not pass. Before, it was listed as unread only,
    /// which a verify does not look at: a switch ended Done. With no
    /// frontend readable, the refusal is the error, not "unreachable".
    #[tokio::test]
    async fn a_frontend_whose_route_is_refused_is_a_drift_not_unread() {
        let drivers: Vec<Arc<dyn FrontendDriver>> = vec![
            Arc::new(Fixed("fe1", Some("b"), 7)),
            Arc::new(Unreadable("fe2")),
            Arc::new(Gone("fe3")),
        ];
        let seen = over(drivers).current().await.expect("readable");
        assert_eq!((seen.site.as_deref(), seen.epoch), (Some("b"), 7));
        assert_eq!(seen.drift.len(), 1, "{:?}", seen.drift);
        assert!(
            seen.drift[0].starts_with("fe2 cannot be read: ") && seen.drift[0].contains("no site"),
            "{:?}",
            seen.drift
        );
        assert_eq!(seen.unread.len(), 1, "{:?}", seen.unread);
        assert!(seen.unread[0].starts_with("fe3: "), "{:?}", seen.unread);
        let drivers: Vec<Arc<dyn FrontendDriver>> =
            vec![Arc::new(Unreadable("fe2")), Arc::new(Gone("fe3"))];
        let err = over(drivers).current().await.unwrap_err();
        assert!(matches!(err, StrategyError::Rejected { .. }), "{err:?}");
    }
}
