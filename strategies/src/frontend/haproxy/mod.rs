//! The `haproxy` driver of the `frontend` scheme: [`HaproxyDriver`] moves one
//! group's traffic on one HAProxy process through its Runtime API (a
//! `stats socket ... level admin`, on a UNIX socket or a TCP address).
//!
//! The group's HAProxy backend holds one server per site. Routing to a site
//! means: that server `state ready`, every other site's server `state maint`
//! plus `shutdown sessions server` (a disaster: cut at once), or `state drain`
//! and, after `drain_timeout`, `maint` plus `shutdown sessions` (a planned
//! move). [`FrontendDriver::route`] reads `show servers state BACKEND` back:
//! the site is the one whose server is ready (no maintenance or drain flag),
//! unless the fence names another site at its epoch (then none).
//!
//! # Layout
//!
//! - this file: [`HaproxySettings`], [`HaproxyDriver`] and its
//!   [`FrontendDriver`] impl, with the policy on top of single commands:
//!   which server stands for which site, in which order servers move;
//! - `fence.rs`: the epoch fence (what this driver wrote, whether an order
//!   may go ahead, the check before each server is touched);
//! - `drain.rs`: the end of a drain (the pending end, its timer, a drain
//!   left unended taken up again);
//! - `runtime.rs`: talking to the Runtime API (one command per connection,
//!   reply limits, errors and hints, one helper per command warden sends);
//! - `parse.rs`: the strict parsers of its replies (`show servers state`,
//!   `get var`) and what they yield (`ServerState`, `Fence`).
//!
//! # Epoch fencing
//!
//! HAProxy has no notion of an epoch, so the driver keeps the highest
//! accepted route in HAProxy itself, in the process-wide variable
//! `proc.warden_route.<group>` (`-` in the group name becomes `.`), as
//! `EPOCH:SITE`, set with `experimental-mode on; set var ...` (HAProxy ≥ 2.4;
//! `set var` is an experimental-mode command of the Runtime API) and read
//! with `get var`. So the fence survives restarts of the orchestrator and is
//! lost, like the servers' runtime states, when HAProxy restarts or reloads:
//! [`FrontendDriver::route`] then reports epoch 0 (and the servers' states
//! from haproxy.cfg), which the orchestrator's reconciliation sees as drift
//! and corrects by activating the decided route again. Meanwhile the driver
//! does not take HAProxy's word for it: it keeps the highest fence it wrote,
//! judges every order by it when HAProxy holds less (none, or an older
//! writer's), and writes it back before it refuses one, so an older order
//! from this process is refused and one from another process is refused by
//! HAProxy again. A process that never wrote the newer fence (a deposed
//! leader started after it) cannot know it: its older order still passes
//! an HAProxy that lost the fence, until the current leader's next order or
//! reconciliation — nothing in HAProxy outlives a restart but haproxy.cfg
//! and the server-state file.
//!
//! `set_route` reads the fence first and refuses an epoch lower than the one
//! held ([`StrategyError::StaleEpoch`]) and a different site at the same
//! epoch ([`StrategyError::EpochTaken`], "conflicting decision"); then it
//! writes the fence, then the servers. The Runtime API has no
//! compare-and-set, so the check and the write are separate commands: two
//! orchestrators writing within the same few milliseconds can interleave, and
//! a stale write that slips in is undone by the newer orchestrator's
//! reconciliation, after which the stale one is refused.
//!
//! # Drain
//!
//! A `Drain` switch returns once the target is ready and the old servers
//! are draining; a task spawned on the caller's runtime moves them to
//! maintenance after `drain_timeout`, unless a newer route was set in the
//! meantime. The task is aborted when a newer `set_route` arrives and when
//! the driver is dropped (orchestrator shutdown). A drain interrupted that
//! way, or whose end failed, leaves the old servers in `drain` (no new
//! connections; existing ones are not cut), and the route still reads
//! right, so no drift is seen: [`FrontendDriver::route`] (reconciliation's
//! read) ends such a drain when no end of it is pending in this driver,
//! once `drain_timeout` has passed since HAProxy began it
//! (`srv_time_since_last_change`), fenced like any drain end.

mod drain;
mod fence;
mod parse;
mod runtime;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tracing::debug;
use warden_config::{valid_haproxy_name, RuntimeAddr};

use super::FrontendDriver;
use crate::{StrategyError, SwitchMode};
use drain::PendingDrain;
use parse::{Fence, ServerState};
// At their old paths (`crate::frontend::haproxy::parse_*`, used by the fuzz tests).
pub(crate) use parse::{parse_fence, parse_servers_state};

/// What one HAProxy driver needs (built from the config by
/// [`crate::frontend::FrontendStrategy::configured`], or by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxySettings {
    /// The frontend's name (`[frontends.NAME]`).
    pub frontend: String,
    /// The group whose traffic moves.
    pub group: String,
    /// Where the Runtime API listens.
    pub runtime: RuntimeAddr,
    /// The HAProxy backend holding one server per site.
    pub backend: String,
    /// HAProxy server name per site name.
    pub servers: BTreeMap<String, String>,
    /// How long old connections may drain on a `Drain` switch.
    pub drain_timeout: Duration,
    /// Time allowed for one Runtime API command (connect included).
    pub timeout: Duration,
}

/// Drives one HAProxy for one group. See the module documentation.
pub struct HaproxyDriver {
    inner: Arc<Inner>,
    /// The pending end of the last drain, aborted by a newer route or by drop.
    drain: Mutex<Option<PendingDrain>>,
}

/// What the drain task shares with the driver.
struct Inner {
    settings: HaproxySettings,
    /// Element name in errors: `HAProxy NAME`.
    element: String,
    /// The process-wide variable holding `EPOCH:SITE`.
    fence_var: String,
    /// The highest route this driver has written into (or found in) the
    /// fence variable for an order it was given: HAProxy forgets the
    /// variable when it restarts or reloads, and this is what the driver
    /// judges orders by, and writes back, when HAProxy holds less (see
    /// `Inner::fence_admits`). Only orders raise it, never a value read
    /// from HAProxy (a fence set there by hand is not made permanent).
    written: Mutex<Option<Fence>>,
}

impl std::fmt::Debug for HaproxyDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaproxyDriver")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl HaproxyDriver {
    /// Time allowed for one Runtime API command (connect included).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// A driver for `settings`; [`StrategyError::Config`] when a name cannot
    /// be sent to HAProxy safely or a site has no server.
    pub fn new(settings: HaproxySettings) -> Result<HaproxyDriver, StrategyError> {
        let bad = |what: &str, v: &str| {
            StrategyError::Config(format!(
                "frontend {}: {what} {v:?} is not a valid HAProxy name (ASCII letters, digits, '-', '_', '.', ':')",
                settings.frontend
            ))
        };
        if !valid_haproxy_name(&settings.backend) {
            return Err(bad("backend", &settings.backend));
        }
        if settings.servers.is_empty() {
            return Err(StrategyError::Config(format!(
                "frontend {}: group {} maps no site to an HAProxy server",
                settings.frontend, settings.group
            )));
        }
        for (site, server) in &settings.servers {
            if !valid_haproxy_name(server) {
                return Err(bad("server", server));
            }
            // Sites are written into the fence variable.
            if !warden_config::load::valid_name(site) {
                return Err(StrategyError::Config(format!(
                    "frontend {}: {site:?} is not a valid site name",
                    settings.frontend
                )));
            }
        }
        if !warden_config::load::valid_name(&settings.group) {
            return Err(StrategyError::Config(format!(
                "frontend {}: group name {:?} cannot name an HAProxy variable",
                settings.frontend, settings.group
            )));
        }
        let fence_var = format!("proc.warden_route.{}", settings.group.replace('-', "."));
        Ok(HaproxyDriver {
            inner: Arc::new(Inner {
                element: format!("HAProxy {}", settings.frontend),
                settings,
                fence_var,
                written: Mutex::new(None),
            }),
            drain: Mutex::new(None),
        })
    }

    /// The HAProxy variable that holds this group's fence (`EPOCH:SITE`).
    pub fn fence_variable(&self) -> &str {
        &self.inner.fence_var
    }

    fn server_of(&self, site: &str) -> Result<&str, StrategyError> {
        let s = &self.inner.settings;
        s.servers.get(site).map(String::as_str).ok_or_else(|| {
            StrategyError::Config(format!(
                "site {site:?} has no server in HAProxy backend {} for group {}; sites: [{}]",
                s.backend,
                s.group,
                s.servers.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

impl Inner {
    fn rejected(&self, reason: String) -> StrategyError {
        StrategyError::Rejected {
            element: self.element.clone(),
            reason,
        }
    }

    fn unreachable(&self, reason: String) -> StrategyError {
        StrategyError::Unreachable {
            element: self.element.clone(),
            reason,
        }
    }

    /// The servers of the group's sites, in site order; an error naming every
    /// one that is missing from the backend.
    fn site_servers<'a>(
        &self,
        state: &'a [ServerState],
    ) -> Result<Vec<(&str, &'a ServerState)>, StrategyError> {
        let s = &self.settings;
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for (site, server) in &s.servers {
            match state.iter().find(|x| &x.name == server) {
                Some(st) => out.push((site.as_str(), st)),
                None => missing.push(format!("{server:?} (site {site})")),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let present: Vec<&str> = state.iter().map(|x| x.name.as_str()).collect();
        Err(self.rejected(format!(
            "backend {} has no server {}; its servers: [{}] (fix groups.{}.frontend.servers or haproxy.cfg)",
            s.backend,
            missing.join(", "),
            present.join(", "),
            s.group
        )))
    }
}

#[async_trait]
impl FrontendDriver for HaproxyDriver {
    fn name(&self) -> &str {
        &self.inner.settings.frontend
    }

    async fn set_route(
        &self,
        site: &str,
        epoch: u64,
        mode: SwitchMode,
    ) -> Result<(), StrategyError> {
        let inner = &self.inner;
        let target = self.server_of(site)?.to_string();
        inner.fence_admits(epoch, site).await?;
        let state = inner.servers_state().await?;
        let servers = inner.site_servers(&state)?;
        // Fence first: from here on an older epoch is refused. Read again
        // right before it is written (a newer route may have come while the
        // servers were read), and before each server is touched (see
        // `Inner::fence_holds`).
        inner.fence_holds(epoch, site).await?;
        let keep_drain = self.supersede_drain(epoch, site);
        // Target ready before the others go, so that some server always takes new connections.
        if servers.iter().any(|(_, s)| s.name == target && !s.ready()) {
            inner.fence_holds(epoch, site).await?;
            inner.set_state(&target, "ready").await?;
        }
        let mut draining = Vec::new();
        for (_, s) in servers.iter().filter(|(_, s)| s.name != target) {
            inner.fence_holds(epoch, site).await?;
            match mode {
                SwitchMode::Immediate => inner.cut(&s.name).await?,
                SwitchMode::Drain => {
                    if s.ready() {
                        inner.set_state(&s.name, "drain").await?;
                    }
                    if s.ready() || s.draining() {
                        draining.push(s.name.clone());
                    }
                }
            }
        }
        if !draining.is_empty() && !keep_drain {
            self.end_drain_after(epoch, site, draining, inner.settings.drain_timeout);
        }
        debug!(frontend = %inner.settings.frontend, group = %inner.settings.group, site, epoch, ?mode, "HAProxy route set");
        Ok(())
    }

    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        let inner = &self.inner;
        let state = inner.servers_state().await?;
        let servers = inner.site_servers(&state)?;
        // A ready server of no site (a second one added by hand, a
        // `server-template` slot resolved) takes users too: wherever the
        // site servers point, users are not all there. Said, never read as
        // a route (`set_route` leaves such a server alone: it is no site's).
        let unmapped: Vec<&str> = state
            .iter()
            .filter(|x| x.ready() && !servers.iter().any(|(_, s)| s.name == x.name))
            .map(|x| x.name.as_str())
            .collect();
        if !unmapped.is_empty() {
            return Err(inner.rejected(format!(
                "backend {} has server(s) [{}] ready that map to no site: users are sent there too, so it routes to no one site; put them in maintenance or name them in groups.{}.frontend.servers",
                inner.settings.backend,
                unmapped.join(", "),
                inner.settings.group
            )));
        }
        let fence = inner.read_fence().await?;
        let ready: Vec<&str> = servers
            .iter()
            .filter(|(_, s)| s.ready())
            .map(|(site, _)| *site)
            .collect();
        let site = match ready.as_slice() {
            [one] => Some(one.to_string()),
            _ => None,
        };
        // The servers route to one site, the fence says another was decided
        // at its epoch (a hand change, or a late writer within one
        // command's round trip): that site at that epoch is a pair no
        // decision made (a new store would adopt it), so no route is
        // reported, at the fence's epoch.
        let Some(fence) = fence else {
            return Ok((site, 0));
        };
        if site.as_deref().is_some_and(|s| s != fence.site) {
            debug!(frontend = %inner.settings.frontend, group = %inner.settings.group, servers = ?site, fence_epoch = fence.epoch, fence_site = %fence.site, "HAProxy's servers route to another site than its fence names");
            return Ok((None, fence.epoch));
        }
        if site.is_some() {
            self.resume_drain(fence.epoch, &fence.site, &servers);
        }
        Ok((site, fence.epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_the_variable_is_derived_from_the_group() {
        let settings = HaproxySettings {
            frontend: "hx1".into(),
            group: "web-eu".into(),
            runtime: RuntimeAddr::Unix("/run/haproxy/admin.sock".into()),
            backend: "be_web".into(),
            servers: BTreeMap::from([("a".into(), "srv_a".into())]),
            drain_timeout: Duration::from_secs(1),
            timeout: HaproxyDriver::DEFAULT_TIMEOUT,
        };
        let d = HaproxyDriver::new(settings.clone()).expect("valid");
        assert_eq!(d.fence_variable(), "proc.warden_route.web.eu");
        let mut bad = settings.clone();
        bad.backend = "be web; shutdown frontend fe".into();
        let err = HaproxyDriver::new(bad).expect_err("injection refused");
        assert!(matches!(err, StrategyError::Config(_)), "{err:?}");
        let mut bad = settings;
        bad.servers.insert("b".into(), "x/y".into());
        assert!(HaproxyDriver::new(bad).is_err());
    }
}
