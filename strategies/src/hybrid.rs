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
use crate::{Epoch, Observed, SiteRoute, Strategy, StrategyError, SwitchMode};

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
        ttl: std::time::Duration,
        pause: bool,
    ) -> Result<(), StrategyError> {
        self.frontends.hold(epoch, ttl, pause).await
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

    /// Site layer as the frontends that answer report it: the site most of
    /// them route to and the highest epoch; a frontend that answers something
    /// else is a drift line. Unreachable frontends are the frontend layer's
    /// business (health checks, DNS) and are left out; fails when none answers.
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
            return Err(StrategyError::Unreachable {
                element: format!("every frontend of group {}", self.group),
                reason: reasons.join("; "),
            });
        }
        let epoch = answers.iter().map(|(_, (_, e))| *e).max().unwrap_or(0);
        let mut best: Option<(&Option<String>, usize)> = None;
        for (_, (site, _)) in &answers {
            let n = answers.iter().filter(|(_, (s, _))| s == site).count();
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((site, n));
            }
        }
        let site = best.and_then(|(s, _)| s.clone());
        let mut drift = Vec::new();
        for (frontend, (s, e)) in &answers {
            match s {
                _ if *s == site && *e == epoch => {}
                None => drift.push(format!("{frontend} has no route")),
                Some(s) => drift.push(format!("{frontend} routes to {s} at epoch {e}")),
            }
        }
        Ok(Observed { site, epoch, drift })
    }

    fn alerts(&self) -> Vec<String> {
        self.dns.alerts()
    }

    fn clear_alerts(&self) -> Vec<String> {
        self.dns.clear_alerts()
    }

    fn stops(&self) -> Vec<crate::ProviderStop> {
        self.dns.stops()
    }

    fn restore_stops(&self, stops: &[crate::ProviderStop]) -> Vec<String> {
        self.dns.restore_stops(stops)
    }
}
