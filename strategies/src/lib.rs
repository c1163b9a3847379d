//! How traffic moves: the [`Strategy`] trait and its implementations.
//!
//! Layout:
//! - this file: the trait, its value types and the crate's error enum;
//! - [`frontend`]: the `frontend` scheme, with drivers behind
//!   [`frontend::FrontendDriver`]: `frontend/builtin.rs` (`warden frontend`'s
//!   control API) and `frontend/haproxy/` (HAProxy's Runtime API, epoch
//!   fence kept in an HAProxy variable, timed drains);
//! - `text.rs`: errors and untrusted answers put into words, for every driver;
//! - `stops.rs`: a provider's blocks and holds as the orchestrator stores them;
//! - [`gate`]: the caller's licence to act, asked right before every write;
//! - [`dns`]: the `dns` scheme, with providers behind [`dns::DnsProvider`]
//!   (`noip`, `dyndns2`, `rfc2136`) and verification against authoritative servers;
//! - [`hybrid`]: the `hybrid` scheme, [`hybrid::HybridStrategy`]: frontends
//!   route to the active site (site layer), DNS points at the active frontend
//!   (frontend layer).
//!
//! Strategies never read files: they are built from a validated
//! `warden_config::Config` plus loaded secrets.

mod capped;
pub mod dns;
mod error;
pub mod frontend;
#[cfg(test)]
mod fuzz;
pub mod gate;
pub mod hybrid;
mod pass;
mod stops;
mod text;

/// The `haproxy` driver (kept at its old path).
pub use frontend::haproxy;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A fencing token: grows with every decision to move traffic.
pub type Epoch = u64;

/// Where to send a group's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRoute {
    /// Site name (as in failover.conf).
    pub site: String,
    /// `Immediate`: a disaster, cut old connections at once. `Drain`: a planned
    /// move (failback, switchover), let old connections finish for the drain timeout.
    pub mode: SwitchMode,
}

/// A hold order's place among the orders of its epoch
/// (`warden_proto::frontend::Hold`'s `term` and `seq`): ordered by the
/// giver's licence term first — with etcd the revision at which its
/// leader key was created, so a later leader outranks its predecessor
/// whatever their clocks say; 0 alone on a local store —, then by `seq`,
/// the giver's own order of giving them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HoldPlace {
    /// The giver's licence term (0: none).
    pub term: u64,
    /// The giver's place for it within its term (0: unordered).
    pub seq: u64,
    /// The etcd cluster `term` belongs to (`None`: none, a single
    /// orchestrator): a frontend compares the places of one cluster only
    /// (`warden_proto::cluster`).
    #[serde(default)]
    pub cluster: Option<u64>,
}

/// How existing connections are treated on a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SwitchMode {
    #[default]
    Immediate,
    Drain,
}

/// What the routing layer says it does now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The site traffic goes to, if every element of the routing layer agrees;
    /// `None` when nothing is routed yet.
    pub site: Option<String>,
    /// The highest epoch the routing layer has accepted.
    pub epoch: Epoch,
    /// One line per element (frontend, server) that disagrees or cannot be read;
    /// empty when the layer is consistent.
    pub drift: Vec<String>,
    /// Elements that could not be read and are left out of `site`, `epoch`
    /// and `drift` (a `hybrid` group's unreachable frontends: the frontend
    /// layer's business), each with why. What they route to is unknown: a
    /// reading that must cover the whole layer (did a failed switch reach
    /// any of it?) cannot conclude while this is not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
    /// The lines of `drift` that only say an element (a frontend, an
    /// authoritative server) could not be read, with that element's name:
    /// no disagreement was seen there, only nothing. A reconciliation
    /// whose drift is all of these corrected nothing it saw (it re-applies
    /// as a precaution, and says so once per element).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread_elements: Vec<(String, String)>,
}

impl Observed {
    /// Every drift line only says an element could not be read.
    pub fn only_unread_drift(&self) -> bool {
        !self.drift.is_empty()
            && self
                .drift
                .iter()
                .all(|d| self.unread_elements.iter().any(|(_, line)| line == d))
    }
}

/// How traffic moves for one group.
///
/// Calls are idempotent: `activate` with the same target and epoch may be
/// repeated (a resumed runbook, a reconcile) and changes nothing the second time.
#[async_trait]
pub trait Strategy: Send + Sync {
    /// Short name for events: "frontend/builtin", "dns/rfc2136", ...
    fn name(&self) -> &str;
    /// Route the group's traffic to `target`. `epoch` fences stale callers.
    async fn activate(&self, target: &SiteRoute, epoch: Epoch) -> Result<(), StrategyError>;
    /// Observe where traffic goes now, from the routing layer itself.
    async fn current(&self) -> Result<Observed, StrategyError>;
    /// [`Strategy::current`] within a pass over every group (see
    /// [`ReadPass`]): an element that can be read for all its groups at
    /// once is read once per pass. The default reads as `current`.
    async fn current_in(&self, pass: &ReadPass) -> Result<Observed, StrategyError> {
        let _ = pass;
        self.current().await
    }
    /// Put `target` at `epoch` back where `pass` read a drift (a reconcile):
    /// the elements read in `pass` at exactly that site and epoch are left
    /// alone — a repeat of an `immediate` order there would cut the
    /// connections a planned switchover left draining, on elements that
    /// never drifted —, every other one (drifted, or unread) gets `target`.
    /// The default sends to the whole layer, as `activate` (a layer with
    /// one element, or none that drains).
    async fn reapply(
        &self,
        target: &SiteRoute,
        epoch: Epoch,
        pass: &ReadPass,
    ) -> Result<(), StrategyError> {
        let _ = pass;
        self.activate(target, epoch).await
    }
    /// A switch of the group may be coming (its site is suspected, or a
    /// runbook is under way): a routing layer that can hold new users'
    /// connections instead of failing them does so for `ttl` (a zero `ttl`
    /// withdraws the order), fenced by `epoch`; with `pause` (a cut-over is
    /// under way) new connections wait for the switch without trying the
    /// current site. `place` places the order among those of its epoch
    /// ([`HoldPlace`]: a receiver refuses one placed before the newest it
    /// took, as orders may land out of order). Best effort and idempotent;
    /// the default holds nothing (DNS cannot).
    async fn hold(
        &self,
        epoch: Epoch,
        place: HoldPlace,
        ttl: std::time::Duration,
        pause: bool,
    ) -> Result<(), StrategyError> {
        let _ = (epoch, place, ttl, pause);
        Ok(())
    }
    /// The highest `seq` ([`HoldPlace::seq`]) an element of the layer
    /// reported taken — in a route read back, or in refusing an order
    /// placed before it —, 0 when none did: the orchestrator places its
    /// later hold orders above it (a predecessor's clock ahead of its own).
    /// The default: none (a layer that takes no hold order).
    fn hold_seq_taken(&self) -> u64 {
        0
    }
    /// Conditions only an operator can clear (a DNS provider blocked after a
    /// fatal answer, a retry hold): one line each; empty when healthy.
    fn alerts(&self) -> Vec<String> {
        Vec::new()
    }
    /// The operator fixed the cause: lift blocks and holds. Returns what was cleared.
    fn clear_alerts(&self) -> Vec<String> {
        Vec::new()
    }
    /// The stops in force (blocks, holds), for the orchestrator to store
    /// with the group: a restart or a new leader gives them back through
    /// [`Strategy::restore_stops`].
    fn stops(&self) -> Vec<ProviderStop> {
        Vec::new()
    }
    /// Take back the stored stops (replacing whatever is in force). Returns
    /// one line per stop not taken back and why (a hold that ended, a block
    /// whose provider configuration changed since).
    fn restore_stops(&self, stops: &[ProviderStop]) -> Vec<String> {
        let _ = stops;
        Vec::new()
    }
    /// This process takes the lead (a leader term begins, `orchestrator`'s
    /// take-over): whatever the strategy remembers of its layer from an
    /// earlier term of this process (a DNS provider's confirmed names, the
    /// records it last wrote) may have been undone by the leaders between,
    /// and is forgotten before any order of this term is sent — else a
    /// switch to what it remembers sends nothing and its verify passes on
    /// memory. The default: nothing remembered.
    fn term_began(&self) {}

    /// The leader term this process leads under from now on: `term` and
    /// its etcd `cluster` (called with [`Strategy::term_began`]). Route
    /// orders to receivers that judge clusters (`warden frontend`) state
    /// them, so a frontend that left a cluster refuses that cluster's
    /// deposed leader's routes as it refuses its hold orders. The
    /// default: no receiver judges them.
    fn leads_under(&self, term: u64, cluster: Option<u64>) {
        let _ = (term, cluster);
    }
}

pub use error::StrategyError;
pub use pass::{ReadPass, RouteTable};
pub use stops::{ProviderStop, StopKind};
