//! The `frontend` scheme: a group's traffic passes through one or more
//! frontends (TCP proxies), and moving it means telling every frontend which
//! site to route to, fenced by the epoch.
//!
//! - [`FrontendDriver`]: how one frontend is driven (set and read its route);
//! - [`BuiltinDriver`]: the `builtin` driver, the control API of `warden frontend`;
//! - [`HaproxyDriver`]: the `haproxy` driver, HAProxy's Runtime API ([`haproxy`]);
//! - [`FrontendStrategy`]: the [`Strategy`] over every frontend of a group,
//!   built from the config by [`FrontendStrategy::from_config`] or [`build`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use tracing::{debug, warn};
use warden_config::{Config, FrontendDriverKind, Secret};

pub mod builtin;
pub mod haproxy;

use crate::{Epoch, HoldPlace, Observed, ReadPass, SiteRoute, Strategy, StrategyError, SwitchMode};
pub use builtin::BuiltinDriver;
pub use haproxy::{HaproxyDriver, HaproxySettings};

/// One frontend's read of a group's route: (site, epoch), or why not.
type RouteRead = Result<(Option<String>, u64), StrategyError>;

/// The route a layer of frontends stands at, from their answers (site,
/// epoch): the highest epoch, and the site most frontends at it route to
/// (the first listed winning a tie) — never a site paired with an epoch no
/// decision gave it. Shared by the `frontend` and `hybrid` schemes.
pub(crate) fn newest_route<'a>(
    answers: impl Iterator<Item = &'a (Option<String>, u64)>,
) -> (Option<String>, u64) {
    let answers: Vec<&(Option<String>, u64)> = answers.collect();
    let epoch = answers.iter().map(|(_, e)| *e).max().unwrap_or(0);
    let newest: Vec<&Option<String>> = answers
        .iter()
        .filter(|(_, e)| *e == epoch)
        .map(|(s, _)| s)
        .collect();
    let mut best: Option<(&Option<String>, usize)> = None;
    for site in &newest {
        let n = newest.iter().filter(|s| *s == site).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((site, n));
        }
    }
    (best.and_then(|(s, _)| s.clone()), epoch)
}

/// The drift line of `frontend` answering `answer` while the layer stands
/// at (`site`, `epoch`); none when it agrees.
pub(crate) fn answer_drift(
    frontend: &str,
    answer: &(Option<String>, u64),
    site: &Option<String>,
    epoch: u64,
) -> Option<String> {
    match answer {
        (s, e) if s == site && *e == epoch => None,
        (None, _) => Some(format!("{frontend} has no route")),
        (Some(s), e) => Some(format!("{frontend} routes to {s} at epoch {e}")),
    }
}

/// One frontend as the strategy drives it, for one group.
///
/// Both calls are idempotent and may be repeated (a resumed runbook, a
/// reconcile). Errors: [`StrategyError::StaleEpoch`] when the frontend has
/// accepted a newer epoch, [`StrategyError::EpochTaken`] when it routes
/// another site at the order's very epoch, [`StrategyError::Unreachable`]
/// when it cannot be reached (retry), [`StrategyError::Rejected`] for
/// everything else.
#[async_trait]
pub trait FrontendDriver: Send + Sync {
    /// The frontend's name (`[frontends.NAME]`), used in drift lines and events.
    fn name(&self) -> &str;
    /// Route the group to `site` with fencing token `epoch`.
    async fn set_route(
        &self,
        site: &str,
        epoch: u64,
        mode: SwitchMode,
    ) -> Result<(), StrategyError>;
    /// The frontend's route for the group: the site (`None` when it routes
    /// nothing, e.g. after a restart) and the highest epoch it has accepted.
    async fn route(&self) -> Result<(Option<String>, u64), StrategyError>;
    /// [`FrontendDriver::route`] within a pass over every group (see
    /// [`ReadPass`]); the default reads as `route`.
    async fn route_in(&self, pass: &ReadPass) -> Result<(Option<String>, u64), StrategyError> {
        let _ = pass;
        self.route().await
    }
    /// Hold new connections whose backend fails for `ttl` (see
    /// [`Strategy::hold`]); the default holds nothing (HAProxy cannot:
    /// it takes no hold order, so no place either).
    async fn hold(
        &self,
        epoch: u64,
        place: HoldPlace,
        ttl: std::time::Duration,
        pause: bool,
    ) -> Result<(), StrategyError> {
        let _ = (epoch, place, ttl, pause);
        Ok(())
    }
    /// The highest hold `seq` this frontend reported taken (see
    /// [`Strategy::hold_seq_taken`]); the default: none.
    fn hold_seq_taken(&self) -> u64 {
        0
    }
    /// See [`Strategy::leads_under`]; the default (HAProxy: its runtime
    /// API takes no cluster): nothing.
    fn leads_under(&self, term: u64, cluster: Option<u64>) {
        let _ = (term, cluster);
    }
}

/// The `frontend` strategy of one group: every frontend of the group gets
/// every route command, and `current()` reads them all back.
pub struct FrontendStrategy {
    group: String,
    /// Strategy name for events: `frontend/builtin`, ...
    name: String,
    /// Sites the group may route to; empty = not checked here (the frontend checks).
    sites: Vec<String>,
    drivers: Vec<Arc<dyn FrontendDriver>>,
    /// `hold_connections` is not zero: hold orders are worth sending.
    holds: bool,
}

impl std::fmt::Debug for FrontendStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontendStrategy")
            .field("group", &self.group)
            .field("name", &self.name)
            .field(
                "frontends",
                &self.drivers.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl FrontendStrategy {
    /// A strategy for `group` over `drivers` (at least one).
    pub fn new(
        group: &str,
        drivers: Vec<Arc<dyn FrontendDriver>>,
    ) -> Result<FrontendStrategy, StrategyError> {
        if drivers.is_empty() {
            return Err(StrategyError::Config(format!(
                "group {group}: the frontend scheme needs at least one frontend"
            )));
        }
        Ok(FrontendStrategy {
            group: group.to_string(),
            name: "frontend".into(),
            sites: Vec::new(),
            drivers,
            holds: true,
        })
    }

    /// Build the strategy of `group` from the validated config: one driver per
    /// frontend listed in `[groups.GROUP.frontend]` (`builtin`: each with its
    /// loaded token; `haproxy`: each on its runtime API address).
    pub fn from_config(cfg: &Config, group: &str) -> Result<Arc<dyn Strategy>, StrategyError> {
        Ok(Arc::new(FrontendStrategy::configured(cfg, group)?))
    }

    /// [`FrontendStrategy::from_config`], as the concrete type.
    pub fn configured(cfg: &Config, group: &str) -> Result<FrontendStrategy, StrategyError> {
        let g = cfg.groups.get(group).ok_or_else(|| {
            StrategyError::Config(format!(
                "unknown group {group:?}; defined groups: [{}]",
                cfg.groups.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let scheme = g.frontend_scheme().ok_or_else(|| {
            StrategyError::Config(format!(
                "group {group} has no [groups.{group}.frontend] table (its scheme is {:?})",
                g.scheme().as_str()
            ))
        })?;
        let mut drivers: Vec<Arc<dyn FrontendDriver>> = Vec::with_capacity(scheme.frontends.len());
        let (name, sites) = match scheme.driver() {
            FrontendDriverKind::Builtin => {
                for fe_name in &scheme.frontend_names() {
                    let fe = cfg
                        .frontend(fe_name)
                        .map_err(|e| StrategyError::Config(e.to_string()))?;
                    let token =
                        Secret::load_token(&format!("frontends.{fe_name}.token"), &fe.token)
                            .map_err(|e| StrategyError::Config(e.to_string()))?;
                    let mut driver = BuiltinDriver::new(
                        fe_name,
                        group,
                        fe.control,
                        token,
                        BuiltinDriver::DEFAULT_TIMEOUT,
                    )?;
                    if let Some(tls) = &fe.tls {
                        let identity = cfg.orchestrator.client_tls.as_ref().map(|c| {
                            warden_serve::tls::Identity {
                                cert: c.cert.clone(),
                                key: c.key.clone(),
                            }
                        });
                        let client =
                            warden_serve::tls::client_config(tls.ca.as_deref(), identity.as_ref())
                                .map_err(|e| {
                                    StrategyError::Config(format!("frontends.{fe_name}.tls: {e}"))
                                })?;
                        driver = driver.with_tls(client)?;
                    }
                    drivers.push(Arc::new(driver));
                }
                let sites = scheme.backend_addrs().into_keys().collect();
                ("frontend/builtin", sites)
            }
            FrontendDriverKind::Haproxy => {
                let backend = scheme.haproxy_backend().ok_or_else(|| {
                    StrategyError::Config(format!(
                        "group {group}: driver \"haproxy\" needs groups.{group}.frontend.backend"
                    ))
                })?;
                let sites = g.site_names();
                let servers: BTreeMap<String, String> = sites
                    .iter()
                    .map(|s| (s.clone(), scheme.server_of(s).to_string()))
                    .collect();
                for fe_name in &scheme.frontend_names() {
                    let fe = cfg.haproxy_frontends.get(fe_name).ok_or_else(|| {
                        StrategyError::Config(format!(
                            "group {group}: frontend {fe_name:?} is not a [frontends.NAME] table with kind = \"haproxy\""
                        ))
                    })?;
                    let driver = HaproxyDriver::new(HaproxySettings {
                        frontend: fe_name.clone(),
                        group: group.to_string(),
                        runtime: fe.runtime.clone(),
                        backend: backend.to_string(),
                        servers: servers.clone(),
                        drain_timeout: scheme.drain_timeout,
                        timeout: HaproxyDriver::DEFAULT_TIMEOUT,
                    })?;
                    drivers.push(Arc::new(driver));
                }
                ("frontend/haproxy", sites)
            }
        };
        let mut s = FrontendStrategy::new(group, drivers)?;
        s.name = name.into();
        s.sites = sites;
        s.holds = !scheme.hold_connections.is_zero();
        Ok(s)
    }

    /// The group this strategy moves.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The drivers, one per frontend, in the order of the config.
    pub fn drivers(&self) -> &[Arc<dyn FrontendDriver>] {
        &self.drivers
    }
}

/// The strategy of a `frontend` group, ready to hold as `Arc<dyn Strategy>`.
pub fn build(cfg: &Config, group: &str) -> Result<Arc<dyn Strategy>, StrategyError> {
    FrontendStrategy::from_config(cfg, group)
}

/// The error to report when several frontends failed: the first one that
/// retrying cannot fix (a stale epoch must stop the runbook even when another
/// frontend was merely unreachable), else the first one.
pub(crate) fn most_severe(errors: Vec<StrategyError>) -> Option<StrategyError> {
    let i = errors.iter().position(|e| !e.is_transient()).unwrap_or(0);
    errors.into_iter().nth(i)
}

impl FrontendStrategy {
    /// `target`'s site has a backend in the group.
    fn known_site(&self, target: &SiteRoute) -> Result<(), StrategyError> {
        if !self.sites.is_empty() && !self.sites.contains(&target.site) {
            return Err(StrategyError::Config(format!(
                "site {:?} has no backend in group {}; sites: [{}]",
                target.site,
                self.group,
                self.sites.join(", ")
            )));
        }
        Ok(())
    }

    /// What every frontend's read says together. The epoch is the highest
    /// reported and the site the one the frontends at that epoch report
    /// (the newest decision any of them took; most of them, the first
    /// listed winning a tie, should they disagree), never a site paired
    /// with an epoch no decision gave it: fe1 at (7, b) and fe2, fe3 still
    /// at (5, a) observe b at 7, not a at 7. Every frontend that differs or
    /// cannot be read is a drift line. Fails only when no frontend can be
    /// read.
    fn observed(&self, reads: Vec<(&str, RouteRead)>) -> Result<Observed, StrategyError> {
        let answers: Vec<&(Option<String>, u64)> =
            reads.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
        if answers.is_empty() {
            let errors: Vec<StrategyError> =
                reads.into_iter().filter_map(|(_, r)| r.err()).collect();
            if errors.len() > 1 && errors.iter().all(StrategyError::is_transient) {
                return Err(StrategyError::Unreachable {
                    element: format!("every frontend of group {}", self.group),
                    reason: errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
            return Err(most_severe(errors).unwrap_or_else(|| {
                StrategyError::Config(format!("group {}: no frontends", self.group))
            }));
        }
        let (site, epoch) = newest_route(answers.into_iter());
        let mut drift = Vec::new();
        let mut unread_elements = Vec::new();
        for (frontend, read) in &reads {
            let line = match read {
                Err(StrategyError::Unreachable { reason, .. }) => {
                    format!("{frontend} unreachable: {reason}")
                }
                Err(e) => format!("{frontend} cannot be read: {e}"),
                Ok(answer) => {
                    drift.extend(answer_drift(frontend, answer, &site, epoch));
                    continue;
                }
            };
            // Named as the frontend's errors name it.
            unread_elements.push((format!("frontend {frontend}"), line.clone()));
            drift.push(line);
        }
        Ok(Observed {
            site,
            epoch,
            drift,
            unread: vec![],
            unread_elements,
        })
    }
}

#[async_trait]
impl Strategy for FrontendStrategy {
    fn name(&self) -> &str {
        &self.name
    }

    fn leads_under(&self, term: u64, cluster: Option<u64>) {
        for d in &self.drivers {
            d.leads_under(term, cluster);
        }
    }

    /// Send the route to every frontend at once; fail if any failed (after
    /// all were tried), with the error chosen by `most_severe`.
    async fn activate(&self, target: &SiteRoute, epoch: Epoch) -> Result<(), StrategyError> {
        self.known_site(target)?;
        let sends = self.drivers.iter().map(|d| async move {
            (
                d.name(),
                d.set_route(&target.site, epoch, target.mode).await,
            )
        });
        let mut errors = Vec::new();
        for (frontend, result) in join_all(sends).await {
            if let Err(e) = result {
                warn!(group = %self.group, frontend, site = %target.site, epoch, cause = %e, "frontend did not take the route");
                errors.push(e);
            }
        }
        match most_severe(errors) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// [`Strategy::reapply`]: the route to every frontend not read in
    /// `pass` at `target` and `epoch` (the others have it, and may still
    /// drain a planned switchover's connections, which a repeat of an
    /// immediate order would cut); fail if any failed, after all were tried.
    async fn reapply(
        &self,
        target: &SiteRoute,
        epoch: Epoch,
        pass: &ReadPass,
    ) -> Result<(), StrategyError> {
        self.known_site(target)?;
        let sends = self.drivers.iter().map(|d| async move {
            match d.route_in(pass).await {
                Ok((Some(site), e)) if site == target.site && e == epoch => (d.name(), Ok(())),
                _ => (
                    d.name(),
                    d.set_route(&target.site, epoch, target.mode).await,
                ),
            }
        });
        let mut errors = Vec::new();
        for (frontend, result) in join_all(sends).await {
            if let Err(e) = result {
                warn!(group = %self.group, frontend, site = %target.site, epoch, cause = %e, "frontend did not take the route again");
                errors.push(e);
            }
        }
        match most_severe(errors) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Send the hold order to every frontend at once (none when
    /// `hold_connections` is zero); fail if any failed, after all were tried.
    async fn hold(
        &self,
        epoch: Epoch,
        place: HoldPlace,
        ttl: std::time::Duration,
        pause: bool,
    ) -> Result<(), StrategyError> {
        if !self.holds {
            return Ok(());
        }
        let sends = self
            .drivers
            .iter()
            .map(|d| async move { (d.name(), d.hold(epoch, place, ttl, pause).await) });
        let mut errors = Vec::new();
        for (frontend, result) in join_all(sends).await {
            if let Err(e) = result {
                debug!(group = %self.group, frontend, epoch, cause = %e, "frontend did not take the hold order");
                errors.push(e);
            }
        }
        match most_severe(errors) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// The highest hold `seq` any of the group's frontends reported taken.
    fn hold_seq_taken(&self) -> u64 {
        self.drivers
            .iter()
            .map(|d| d.hold_seq_taken())
            .max()
            .unwrap_or(0)
    }

    /// Read every frontend's route: the highest epoch reported and the
    /// site at it (see `observed`); every frontend that differs or cannot be
    /// read is a drift line. Fails only when no frontend can be read.
    async fn current(&self) -> Result<Observed, StrategyError> {
        let reads = self
            .drivers
            .iter()
            .map(|d| async move { (d.name(), d.route().await) });
        self.observed(join_all(reads).await)
    }

    /// [`FrontendStrategy::current`], each frontend's route read once per
    /// pass for all its groups (see [`ReadPass`]).
    async fn current_in(&self, pass: &ReadPass) -> Result<Observed, StrategyError> {
        let reads = self
            .drivers
            .iter()
            .map(|d| async move { (d.name(), d.route_in(pass).await) });
        self.observed(join_all(reads).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;
    use warden_frontend::{FrontendError, FrontendSettings, GroupSettings};

    const TOKEN: &str = "strategy-test-token";

    /// A real `warden frontend` serving group "web" (sites a, b) on 127.0.0.1.
    struct Fe {
        control: SocketAddr,
        stop: CancellationToken,
        handle: Option<JoinHandle<Result<(), FrontendError>>>,
    }

    impl Drop for Fe {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    async fn frontend_at(control: SocketAddr) -> Fe {
        frontend_with(
            control,
            ["127.0.0.1:9", "127.0.0.1:9"],
            Duration::from_secs(1),
        )
        .await
        .0
    }

    /// A frontend serving group "web" with sites a and b at `backends`,
    /// draining for `drain`; with the address its group listens on.
    async fn frontend_with(
        control: SocketAddr,
        backends: [&str; 2],
        drain: Duration,
    ) -> (Fe, SocketAddr) {
        let settings = FrontendSettings {
            name: "fe-test".into(),
            control,
            token: Secret::new(TOKEN),
            tls: None,
            groups: BTreeMap::from([(
                "web".to_string(),
                GroupSettings {
                    listen: "127.0.0.1:0".parse().expect("addr"),
                    backends: BTreeMap::from([
                        ("a".to_string(), backends[0].to_string()),
                        ("b".to_string(), backends[1].to_string()),
                    ]),
                    drain_timeout: drain,
                    hold_connections: Duration::from_secs(2),
                    connect_retry: Duration::ZERO,
                },
            )]),
            state_dir: None,
        };
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(warden_frontend::run(settings, stop.clone(), Some(tx)));
        let bound = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("ready in time")
            .expect("ready");
        let listen = bound.groups["web"];
        (
            Fe {
                control: bound.control,
                stop,
                handle: Some(handle),
            },
            listen,
        )
    }

    async fn frontend() -> Fe {
        frontend_at("127.0.0.1:0".parse().expect("addr")).await
    }

    impl Fe {
        /// Stop the frontend and wait for `run` to return.
        async fn stop(mut self) {
            self.stop.cancel();
            let handle = self.handle.take().expect("running");
            let r = tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("stops in time")
                .expect("no panic");
            r.expect("clean stop");
        }
    }

    fn driver(name: &str, fe: &Fe, token: &str) -> Arc<dyn FrontendDriver> {
        driver_of(name, "web", fe, token)
    }

    /// Frontend `name`'s driver for `group`.
    fn driver_of(name: &str, group: &str, fe: &Fe, token: &str) -> Arc<dyn FrontendDriver> {
        Arc::new(
            BuiltinDriver::new(
                name,
                group,
                fe.control,
                Secret::new(token),
                BuiltinDriver::DEFAULT_TIMEOUT,
            )
            .expect("driver"),
        )
    }

    fn route(site: &str, mode: SwitchMode) -> SiteRoute {
        SiteRoute {
            site: site.into(),
            mode,
        }
    }

    /// What a frontend reports of the newest hold order it took reaches
    /// the orchestrator through the driver: in refusing an order placed
    /// before it (a restarted orchestrator whose clock was stepped back),
    /// and in a route read back, by group or in a pass's table.
    #[tokio::test]
    async fn the_newest_hold_place_a_frontend_took_is_learned_from_its_answers() {
        let fe = frontend().await;
        let strategy =
            || FrontendStrategy::new("web", vec![driver("fe1", &fe, TOKEN)]).expect("strategy");
        let ttl = Duration::from_secs(30);
        let s = strategy();
        s.activate(&route("a", SwitchMode::Immediate), 3)
            .await
            .expect("activate a");
        s.hold(
            3,
            HoldPlace {
                term: 0,
                seq: 5_000,
                cluster: None,
            },
            ttl,
            false,
        )
        .await
        .expect("taken");
        let restarted = strategy();
        assert_eq!(restarted.hold_seq_taken(), 0, "nothing heard yet");
        restarted
            .hold(
                3,
                HoldPlace {
                    term: 0,
                    seq: 4_000,
                    cluster: None,
                },
                ttl,
                false,
            )
            .await
            .expect_err("placed before the newest");
        assert_eq!(restarted.hold_seq_taken(), 5_000, "from the refusal");
        let reader = strategy();
        reader.current().await.expect("read");
        assert_eq!(reader.hold_seq_taken(), 5_000, "from the route read back");
        let reader = strategy();
        reader.current_in(&ReadPass::new()).await.expect("read");
        assert_eq!(reader.hold_seq_taken(), 5_000, "from the route table");
    }

    #[tokio::test]
    async fn hold_orders_reach_the_frontend_and_an_older_epoch_is_stale() {
        let fe = frontend().await;
        let s = FrontendStrategy::new("web", vec![driver("fe1", &fe, TOKEN)]).expect("strategy");
        s.activate(&route("a", SwitchMode::Immediate), 3)
            .await
            .expect("activate a");
        s.hold(
            3,
            HoldPlace {
                term: 0,
                seq: 1,
                cluster: None,
            },
            Duration::from_secs(30),
            false,
        )
        .await
        .expect("hold at the frontend's epoch");
        let d = driver("fe1", &fe, TOKEN);
        let e = d
            .hold(
                2,
                HoldPlace {
                    term: 0,
                    seq: 1,
                    cluster: None,
                },
                Duration::from_secs(30),
                false,
            )
            .await
            .expect_err("an older epoch is refused");
        assert!(
            matches!(
                e,
                StrategyError::StaleEpoch {
                    sent: 2,
                    seen: 3,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = driver("fe1", &fe, "wrong-token-xyz")
            .hold(
                4,
                HoldPlace {
                    term: 0,
                    seq: 1,
                    cluster: None,
                },
                Duration::from_secs(30),
                false,
            )
            .await
            .expect_err("only the orchestrator's token");
        assert!(e.to_string().contains("401"), "{e}");
        fe.stop().await;
    }

    #[tokio::test]
    async fn activate_then_current_round_trip() {
        let fe = frontend().await;
        let s = FrontendStrategy::new("web", vec![driver("fe1", &fe, TOKEN)]).expect("strategy");
        let before = s.current().await.expect("readable");
        assert_eq!(
            before,
            Observed {
                site: None,
                epoch: 0,
                drift: vec![],
                unread: vec![],
                unread_elements: vec![],
            }
        );

        s.activate(&route("a", SwitchMode::Immediate), 1)
            .await
            .expect("activate a");
        s.activate(&route("a", SwitchMode::Immediate), 1)
            .await
            .expect("a repeat is fine");
        assert_eq!(
            s.current().await.expect("readable"),
            Observed {
                site: Some("a".into()),
                epoch: 1,
                drift: vec![],
                unread: vec![],
                unread_elements: vec![],
            }
        );

        s.activate(&route("b", SwitchMode::Drain), 2)
            .await
            .expect("activate b");
        assert_eq!(
            s.current().await.expect("readable"),
            Observed {
                site: Some("b".into()),
                epoch: 2,
                drift: vec![],
                unread: vec![],
                unread_elements: vec![],
            }
        );
    }

    /// A call made under a closed gate (the caller's licence to act ended
    /// while it ran, see `crate::gate`) sends the frontend nothing — no
    /// route, no hold order — and says why; under an open gate it sends.
    #[tokio::test]
    async fn nothing_reaches_the_frontend_under_a_closed_gate() {
        let fe = frontend().await;
        let s = FrontendStrategy::new("web", vec![driver("fe1", &fe, TOKEN)]).expect("strategy");
        let closed: crate::gate::Gate = Arc::new(|| false);
        let e = crate::gate::under(
            closed.clone(),
            s.activate(&route("a", SwitchMode::Immediate), 1),
        )
        .await
        .expect_err("not sent");
        assert!(matches!(e, StrategyError::Unlicensed { .. }), "{e:?}");
        let e = crate::gate::under(
            closed,
            s.hold(
                1,
                HoldPlace {
                    term: 0,
                    seq: 1,
                    cluster: None,
                },
                Duration::from_secs(30),
                false,
            ),
        )
        .await
        .expect_err("not sent");
        assert!(matches!(e, StrategyError::Unlicensed { .. }), "{e:?}");
        let untouched = Observed {
            site: None,
            epoch: 0,
            drift: vec![],
            unread: vec![],
            unread_elements: vec![],
        };
        assert_eq!(s.current().await.expect("readable"), untouched);
        let open: crate::gate::Gate = Arc::new(|| true);
        crate::gate::under(open, s.activate(&route("a", SwitchMode::Immediate), 1))
            .await
            .expect("sent under an open gate");
        assert_eq!(
            s.current().await.expect("readable").site.as_deref(),
            Some("a")
        );
        fe.stop().await;
    }

    /// Within one pass the frontend's route table is read once for every
    /// group on it; a group it does not serve is an error that names it; a
    /// later pass reads anew (and sees a switch); a frontend that cannot be
    /// read fails every group of the pass after one attempt.
    #[tokio::test]
    async fn a_pass_reads_each_frontend_once_for_all_its_groups() {
        let fe = frontend().await;
        let web = FrontendStrategy::new("web", vec![driver_of("fe1", "web", &fe, TOKEN)])
            .expect("strategy");
        let web_too = FrontendStrategy::new("web", vec![driver_of("fe1", "web", &fe, TOKEN)])
            .expect("strategy");
        let api = FrontendStrategy::new("api", vec![driver_of("fe1", "api", &fe, TOKEN)])
            .expect("strategy");
        web.activate(&route("a", SwitchMode::Immediate), 4)
            .await
            .expect("activate a");
        let pass = ReadPass::new();
        let want = Observed {
            site: Some("a".into()),
            epoch: 4,
            drift: vec![],
            unread: vec![],
            unread_elements: vec![],
        };
        assert_eq!(web.current_in(&pass).await.expect("read"), want);
        assert_eq!(web_too.current_in(&pass).await.expect("read"), want);
        let e = api.current_in(&pass).await.expect_err("not served");
        assert!(
            matches!(&e, StrategyError::Rejected { .. }) && e.to_string().contains("\"api\""),
            "{e}"
        );
        assert_eq!(pass.tables_read(), 1, "one table read for the pass");

        web.activate(&route("b", SwitchMode::Immediate), 5)
            .await
            .expect("activate b");
        let next = ReadPass::new();
        let seen = web.current_in(&next).await.expect("read");
        assert_eq!((seen.site.as_deref(), seen.epoch), (Some("b"), 5));

        fe.stop().await;
        let gone = ReadPass::new();
        for s in [&web, &web_too] {
            let e = s.current_in(&gone).await.expect_err("frontend gone");
            assert!(e.is_transient() && e.to_string().contains("fe1"), "{e}");
        }
        assert_eq!(gone.tables_read(), 1, "one attempt for the pass");
    }

    #[tokio::test]
    async fn stale_epoch_maps_to_stale_epoch() {
        let fe = frontend().await;
        let s = FrontendStrategy::new("web", vec![driver("fe1", &fe, TOKEN)]).expect("strategy");
        s.activate(&route("b", SwitchMode::Immediate), 5)
            .await
            .expect("activate");
        let err = s
            .activate(&route("a", SwitchMode::Immediate), 3)
            .await
            .expect_err("stale");
        match &err {
            StrategyError::StaleEpoch {
                element,
                sent,
                seen,
            } => {
                assert_eq!((element.as_str(), *sent, *seen), ("frontend fe1", 3, 5));
            }
            other => panic!("expected StaleEpoch, got {other:?}"),
        }
        assert!(!err.is_transient());

        // Two decisions for one epoch: refused, but not "stale" — and not
        // a malformed order either: a fencing refusal that says the epoch
        // is another decision's.
        let err = s
            .activate(&route("a", SwitchMode::Immediate), 5)
            .await
            .expect_err("conflict");
        assert!(
            matches!(&err, StrategyError::EpochTaken { element, epoch: 5, .. } if element == "frontend fe1"),
            "{err:?}"
        );
        assert!(err.is_fencing() && !err.is_transient(), "{err:?}");
        assert!(
            err.to_string().contains("conflicting decision for epoch 5"),
            "{err}"
        );
        assert_eq!(
            s.current().await.expect("readable").site.as_deref(),
            Some("b")
        );
    }

    #[tokio::test]
    async fn wrong_token_and_unknown_group_are_rejected() {
        let fe = frontend().await;
        let s = FrontendStrategy::new("web", vec![driver("fe1", &fe, "not-the-token")])
            .expect("strategy");
        let err = s
            .activate(&route("a", SwitchMode::Immediate), 1)
            .await
            .expect_err("unauthorized");
        assert!(matches!(err, StrategyError::Rejected { .. }), "{err:?}");
        assert!(err.to_string().contains("HTTP 401"), "{err}");
        assert!(!err.to_string().contains(TOKEN));

        let other = BuiltinDriver::new(
            "fe1",
            "db",
            fe.control,
            Secret::new(TOKEN),
            BuiltinDriver::DEFAULT_TIMEOUT,
        )
        .expect("driver");
        let err = other.route().await.expect_err("fe1 does not serve db");
        assert!(
            matches!(err, StrategyError::Rejected { .. }) && err.to_string().contains("HTTP 404"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn drift_when_a_frontend_is_stopped_or_restarted_empty() {
        let fe1 = frontend().await;
        let fe2 = frontend().await;
        let fe2_addr = fe2.control;
        let s = FrontendStrategy::new(
            "web",
            vec![driver("fe1", &fe1, TOKEN), driver("fe2", &fe2, TOKEN)],
        )
        .expect("strategy");
        s.activate(&route("a", SwitchMode::Immediate), 1)
            .await
            .expect("both take it");
        assert_eq!(
            s.current().await.expect("readable").drift,
            Vec::<String>::new()
        );

        fe2.stop().await;
        let seen = s.current().await.expect("fe1 is readable");
        assert_eq!((seen.site.as_deref(), seen.epoch), (Some("a"), 1));
        assert_eq!(seen.drift.len(), 1, "{:?}", seen.drift);
        assert!(
            seen.drift[0].starts_with("fe2 unreachable: "),
            "{:?}",
            seen.drift
        );
        // Nothing seen to differ: only fe2 unread.
        assert!(seen.only_unread_drift(), "{seen:?}");
        assert_eq!(seen.unread_elements[0].0, "frontend fe2");

        // Activation reaches fe1 and reports fe2.
        let err = s
            .activate(&route("b", SwitchMode::Immediate), 2)
            .await
            .expect_err("fe2 is down");
        assert!(
            matches!(&err, StrategyError::Unreachable { element, .. } if element == "frontend fe2"),
            "{err:?}"
        );
        assert!(err.is_transient());
        assert_eq!(
            s.current().await.expect("readable").site.as_deref(),
            Some("b")
        );

        // fe2 comes back empty on the same address: "no route" until reconciled.
        let _fe2 = frontend_at(fe2_addr).await;
        let seen = s.current().await.expect("readable");
        assert_eq!(seen.drift, vec!["fe2 has no route".to_string()]);
        assert!(!seen.only_unread_drift(), "a real drift: {seen:?}");
        s.activate(&route("b", SwitchMode::Immediate), 2)
            .await
            .expect("reconcile re-applies");
        assert_eq!(
            s.current().await.expect("readable"),
            Observed {
                site: Some("b".into()),
                epoch: 2,
                drift: vec![],
                unread: vec![],
                unread_elements: vec![],
            }
        );
    }

    #[tokio::test]
    async fn every_frontend_unreachable_is_an_error() {
        let fe1 = frontend().await;
        let fe2 = frontend().await;
        let s = FrontendStrategy::new(
            "web",
            vec![driver("fe1", &fe1, TOKEN), driver("fe2", &fe2, TOKEN)],
        )
        .expect("strategy");
        fe1.stop().await;
        fe2.stop().await;
        let err = s.current().await.expect_err("nothing readable");
        assert!(
            matches!(&err, StrategyError::Unreachable { element, .. } if element == "every frontend of group web"),
            "{err:?}"
        );
    }

    /// An echo server on 127.0.0.1: every connection answers what it is
    /// sent, until the peer closes.
    async fn echo_backend() -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = c.read(&mut buf).await {
                        if c.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    /// `msg` sent on `c` comes back (the connection still relays).
    async fn echoes(c: &mut tokio::net::TcpStream, msg: &[u8]) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if c.write_all(msg).await.is_err() {
            return false;
        }
        let mut back = vec![0u8; msg.len()];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut back)).await,
            Ok(Ok(_))
        ) && back == msg
    }

    /// A reconcile puts the route back where it drifted, and only there:
    /// after a planned switchover (a to b, draining a's connections), fe2
    /// restarts empty; the route re-applied to fe2 must not reach fe1,
    /// which has it — an immediate repeat there cut the connections the
    /// switchover left draining, users' downloads and sessions the
    /// operator chose to let finish.
    #[tokio::test]
    async fn a_reapply_reaches_the_drifted_frontend_only_and_drains_stay() {
        let (a, b) = (echo_backend().await, echo_backend().await);
        let (a, b) = (a.to_string(), b.to_string());
        let drain = Duration::from_secs(120);
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let (fe1, listen1) = frontend_with(any, [&a, &b], drain).await;
        let (fe2, _) = frontend_with(any, [&a, &b], drain).await;
        let s = FrontendStrategy::new(
            "web",
            vec![driver("fe1", &fe1, TOKEN), driver("fe2", &fe2, TOKEN)],
        )
        .expect("strategy");
        s.activate(&route("a", SwitchMode::Immediate), 1)
            .await
            .expect("a at 1");
        let mut user = tokio::net::TcpStream::connect(listen1)
            .await
            .expect("connect through fe1");
        assert!(echoes(&mut user, b"to a").await, "relayed to a");
        s.activate(&route("b", SwitchMode::Drain), 2)
            .await
            .expect("switchover to b at 2, draining");
        assert!(echoes(&mut user, b"still a").await, "a's connection drains");

        // fe2 restarts with no route: a drift.
        let control2 = fe2.control;
        fe2.stop().await;
        let (fe2, _) = frontend_with(control2, [&a, &b], drain).await;
        let pass = ReadPass::new();
        let seen = s.current_in(&pass).await.expect("readable");
        assert_eq!(seen.drift, vec!["fe2 has no route".to_string()]);

        s.reapply(&route("b", SwitchMode::Immediate), 2, &pass)
            .await
            .expect("re-applied");
        let seen = s.current().await.expect("readable");
        assert_eq!(
            (seen.site.as_deref(), seen.epoch, seen.drift.len()),
            (Some("b"), 2, 0),
            "{seen:?}"
        );
        assert!(
            echoes(&mut user, b"after the reconcile").await,
            "the connection fe1 drains survives a reconcile of fe2"
        );
        fe1.stop().await;
        fe2.stop().await;
    }

    /// A scripted driver for the agreement logic.
    struct Scripted {
        name: String,
        route: Mutex<Result<(Option<String>, u64), String>>,
    }

    #[async_trait]
    impl FrontendDriver for Scripted {
        fn name(&self) -> &str {
            &self.name
        }
        async fn set_route(
            &self,
            site: &str,
            epoch: u64,
            _mode: SwitchMode,
        ) -> Result<(), StrategyError> {
            *self.route.lock().expect("lock") = Ok((Some(site.to_string()), epoch));
            Ok(())
        }
        async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
            self.route
                .lock()
                .expect("lock")
                .clone()
                .map_err(|reason| StrategyError::Unreachable {
                    element: format!("frontend {}", self.name),
                    reason,
                })
        }
    }

    fn scripted(name: &str, route: Result<(Option<&str>, u64), &str>) -> Arc<dyn FrontendDriver> {
        Arc::new(Scripted {
            name: name.into(),
            route: Mutex::new(
                route
                    .map(|(s, e)| (s.map(String::from), e))
                    .map_err(String::from),
            ),
        })
    }

    #[tokio::test]
    async fn the_majority_site_wins_and_each_dissenter_is_listed() {
        let s = FrontendStrategy::new(
            "web",
            vec![
                scripted("fe1", Ok((Some("b"), 3))),
                scripted("fe2", Ok((Some("a"), 4))),
                scripted("fe3", Ok((Some("a"), 4))),
                scripted("fe4", Ok((None, 0))),
                scripted("fe5", Err("connection refused")),
            ],
        )
        .expect("strategy");
        let seen = s.current().await.expect("readable");
        assert_eq!(seen.site.as_deref(), Some("a"));
        assert_eq!(seen.epoch, 4);
        assert_eq!(
            seen.drift,
            vec![
                "fe1 routes to b at epoch 3".to_string(),
                "fe4 has no route".to_string(),
                "fe5 unreachable: connection refused".to_string(),
            ]
        );

        // A tie goes to the first listed frontend.
        let s = FrontendStrategy::new(
            "web",
            vec![
                scripted("fe1", Ok((Some("b"), 3))),
                scripted("fe2", Ok((Some("a"), 3))),
            ],
        )
        .expect("strategy");
        let seen = s.current().await.expect("readable");
        assert_eq!(seen.site.as_deref(), Some("b"));
        assert_eq!(seen.drift, vec!["fe2 routes to a at epoch 3".to_string()]);
    }

    /// The site observed is the newest decision's, not the most frontends'
    /// paired with the highest epoch: one frontend took (b, 7) and two
    /// missed it at (a, 5); what is observed (and what a new store adopts)
    /// is b at 7, never "a at 7", a pair no decision made.
    #[tokio::test]
    async fn the_site_observed_is_the_one_at_the_highest_epoch() {
        let s = FrontendStrategy::new(
            "web",
            vec![
                scripted("fe1", Ok((Some("b"), 7))),
                scripted("fe2", Ok((Some("a"), 5))),
                scripted("fe3", Ok((Some("a"), 5))),
            ],
        )
        .expect("strategy");
        let seen = s.current().await.expect("readable");
        assert_eq!((seen.site.as_deref(), seen.epoch), (Some("b"), 7));
        assert_eq!(
            seen.drift,
            vec![
                "fe2 routes to a at epoch 5".to_string(),
                "fe3 routes to a at epoch 5".to_string(),
            ]
        );
    }

    fn config(token_file: &Path, driver: &str) -> Config {
        let text = format!(
            r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/tmp/warden-test"
operator_token = {{ env = "WARDEN_TEST_UNUSED" }}

[sites.a]
agent_token = {{ env = "WARDEN_TEST_UNUSED" }}
[sites.b]
agent_token = {{ env = "WARDEN_TEST_UNUSED" }}

[frontends.fe1]
control = "127.0.0.1:7101"
token = {{ file = {tf:?} }}
[frontends.fe2]
control = "127.0.0.1:7102"
token = {{ file = {tf:?} }}

[groups.web]
sites = ["a", "b"]
scheme = "frontend"
[groups.web.frontend]
driver = "{driver}"
frontends = ["fe1", "fe2"]
listen = "127.0.0.1:8080"
backends = {{ a = "10.0.0.1:80", b = "10.0.0.2:80" }}
"#,
            tf = token_file.display().to_string()
        );
        match warden_config::parse(&text, Path::new("test.conf")) {
            Ok(c) => c,
            Err(e) => panic!("test config does not parse: {e}"),
        }
    }

    fn token_file(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "warden-strategies-{tag}-{}.token",
            std::process::id()
        ));
        std::fs::write(&p, format!("{TOKEN}\n")).expect("write token file");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p
    }

    #[tokio::test]
    async fn from_config_builds_one_driver_per_frontend() {
        let tf = token_file("build");
        let cfg = config(&tf, "builtin");
        let s = FrontendStrategy::configured(&cfg, "web").expect("strategy");
        assert_eq!(s.name(), "frontend/builtin");
        assert_eq!(s.group(), "web");
        assert_eq!(
            s.drivers.iter().map(|d| d.name()).collect::<Vec<_>>(),
            vec!["fe1", "fe2"]
        );
        let err = s
            .activate(&route("c", SwitchMode::Immediate), 1)
            .await
            .expect_err("c is not a site");
        assert!(
            matches!(err, StrategyError::Config(_)) && err.to_string().contains("sites: [a, b]"),
            "{err}"
        );
        assert!(build(&cfg, "web").is_ok());
        let err = build(&cfg, "nope").err().expect("unknown group");
        assert!(err.to_string().contains("defined groups: [web]"), "{err}");
        let _ = std::fs::remove_file(tf);
    }

    #[test]
    fn haproxy_driver_is_built_from_config() {
        let text = r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/tmp/warden-test"
operator_token = { env = "WARDEN_TEST_UNUSED" }

[sites.a]
agent_token = { env = "WARDEN_TEST_UNUSED" }
[sites.b]
agent_token = { env = "WARDEN_TEST_UNUSED" }

[frontends.hx1]
kind = "haproxy"
runtime = "/run/haproxy/admin.sock"
[frontends.hx2]
kind = "haproxy"
runtime = "127.0.0.1:9999"

[groups.web]
sites = ["a", "b"]
scheme = "frontend"
[groups.web.frontend]
driver = "haproxy"
frontends = ["hx1", "hx2"]
backend = "be_web"
servers = { a = "srv_a" }
"#;
        let cfg = match warden_config::parse(text, Path::new("test.conf")) {
            Ok(c) => c,
            Err(e) => panic!("test config does not parse: {e}"),
        };
        let s = FrontendStrategy::configured(&cfg, "web").expect("strategy");
        assert_eq!(s.name(), "frontend/haproxy");
        assert_eq!(
            s.drivers.iter().map(|d| d.name()).collect::<Vec<_>>(),
            vec!["hx1", "hx2"]
        );
        assert_eq!(s.sites, vec!["a".to_string(), "b".to_string()]);
    }
}
