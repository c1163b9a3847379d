//! The orchestrator service: [`Shared`] (private state behind one lock, the
//! store, the strategies, the command ledger) and its rooms, one owner each:
//!
//! - [`state`]: what the service holds ([`State`], [`Shared`], [`Mode`]);
//! - [`setup`]: the service built from its settings and the stored state;
//! - [`load`]: the stored state read and completed from the config;
//! - [`clock`]: the service's wall clock;
//! - [`events`]: the event log (buffered, written by one task, never under the lock);
//! - [`intake`]: agent reports and command polls, the orchestrator's own probes;
//! - [`detect`]: the detection round and the decisions it leads to;
//! - [`runbooks`]: start, run (tracked tasks) and resume runbooks;
//! - [`runbook_env`]: the live `RunbookEnv` (commands, health, routes, fence);
//! - [`finish`]: what a finished runbook leaves (group state, withdrawn commands, aborted moves, metrics);
//! - [`replication`]: replication orders per round, replication status, RPO;
//! - [`divergent`]: divergent lists assembled from report pages;
//! - [`hybrid`]: the frontend layer of hybrid groups;
//! - [`hybrid_reconcile`]: reconciling both layers of hybrid groups;
//! - [`hold`]: hold orders to frontends while a switch may be coming;
//! - [`reconcile`]: routing drift, re-applied;
//! - [`reconcile_blind`]: the routing elements a pass could not read;
//! - [`reconcile_running`]: the route users had before a runbook, kept
//!   until its cut-over begins;
//! - [`authority`]: adoption by a new store, epochs seen ahead, demoting a site
//!   failed away from while cut off, dropped outcomes;
//! - [`operator`]: operator actions and alerts;
//! - [`replay`]: each agent process's report sequence (replays refused);
//! - [`term_seen`]: the leader term each site's agent took, above this
//!   leader's (its orders refused there): an alert;
//! - [`polls`]: concurrent command long-polls per site (capped);
//! - [`views`]: read-only views for the API.
//!
//! One `Mutex<State>` guards everything that decisions read, so a decision and
//! the evidence it was made on are always consistent. No await happens while
//! it is held. Fields are the service's own (visible to its rooms only): the
//! API reaches the service only through methods (here: its handles).
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warden_config::{Config, FailbackMode, Scheme, Secret};
use warden_proto::agent::{
    AgentReport, Command, CommandKind, CommandOutcome, ReplicationStatus, ReportResponse,
};
use warden_strategies::{Observed, SiteRoute, StrategyError, SwitchMode};

use crate::commands::{Accepted, Ledger};
use crate::detector::{Detector, Evidence, Transition, Verdict};
use crate::licence::Licence;
use crate::metrics::Metrics;
use crate::model::*;
use crate::runbook::{self, Policy, RunbookEnv};
use crate::settings::OrchestratorSettings;
use crate::store::Store;
use crate::OrchestratorError;

#[cfg(test)]
mod accepted;
mod admit;
mod adopt;
mod adopt_dns;
mod answer_order;
mod approve;
#[cfg(test)]
mod approve_tests;
mod authority;
#[cfg(test)]
mod bystander_tests;
mod cadence;
mod clear;
#[cfg(test)]
mod clear_read_tests;
mod clock;
#[cfg(test)]
mod crash_tests;
mod decide;
#[cfg(test)]
mod decision_tests;
mod detect;
mod divergent;
mod dns_move;
mod entry;
#[cfg(test)]
mod entry_tests;
#[cfg(test)]
mod event_epoch_tests;
mod events;
mod failed;
#[cfg(test)]
mod failed_roles_tests;
mod fence;
mod finish;
#[cfg(test)]
mod follower_api_tests;
#[cfg(test)]
mod fresh_checks_tests;
mod ha;
#[cfg(test)]
pub(crate) mod harness;
mod history;
mod hold;
#[cfg(test)]
mod hold_place_tests;
mod hybrid;
#[cfg(test)]
mod hybrid_drift_tests;
#[cfg(test)]
mod hybrid_move_tests;
mod hybrid_reconcile;
#[cfg(test)]
mod hybrid_running_tests;
mod intake;
#[cfg(test)]
mod lease_tests;
mod leftovers;
mod load;
#[cfg(test)]
mod maintenance_tests;
mod newest;
mod notify;
mod operator;
#[cfg(test)]
mod orders_tests;
mod persist;
pub mod polls;
#[cfg(test)]
mod preempt_tests;
#[cfg(test)]
mod probe_tests;
#[cfg(test)]
mod read_gate_tests;
mod reconcile;
mod reconcile_blind;
mod reconcile_running;
#[cfg(test)]
mod reconcile_running_tests;
#[cfg(test)]
mod record_tests;
mod replay;
mod replication;
#[cfg(test)]
mod resync_tests;
mod runbook_env;
mod runbook_map;
mod runbook_prune;
mod runbooks;
mod seen;
#[cfg(test)]
mod serving_again_tests;
mod setup;
#[cfg(test)]
mod silence_tests;
mod skew;
#[cfg(test)]
mod skew_tests;
mod split;
#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod start_tests;
mod state;
#[cfg(test)]
mod state_tests;
mod stops;
#[cfg(test)]
mod store_fault_tests;
#[cfg(test)]
mod takeover_tests;
mod term_seen;
#[cfg(test)]
mod term_seen_tests;
#[cfg(test)]
mod tests;
mod unfit;
mod untouched;
#[cfg(test)]
mod upgrade_nested_tests;
#[cfg(test)]
mod upgrade_tests;
#[cfg(test)]
mod verify_restart_tests;
mod views;

pub use approve::SeenPending;
pub use authority::EpochAhead;
pub use clear::{AlertsRead, Cleared};
pub use clock::Clock;
pub use ha::HaRole;
pub(crate) use load::{load_state, Loaded};
pub(crate) use runbook_prune::PRUNE_PERIOD as RUNBOOK_PRUNE_PERIOD;
pub use seen::SeenGroup;
pub use state::{Mode, Shared, State};
pub use views::{
    DivergentPage, EventsPage, GroupView, ReplicationView, SiteView, StatusView,
    DIVERGENT_IN_STATUS, EVENTS_SCAN_MAX, SCANNED_THROUGH,
};

/// The service's handles: what the API and the loops reach it through.
impl Shared {
    /// The validated config the service runs.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The licence to act (decisions, runbooks, reconciliation, replication
    /// orders, DNS moves run only while it is held).
    pub fn licence(&self) -> &Licence {
        &self.licence
    }

    /// `Err` when this process may not act now.
    pub(crate) fn must_act(&self) -> Result<(), OrchestratorError> {
        if self.licence.is_held() {
            Ok(())
        } else {
            Err(OrchestratorError::Conflict(
                "this orchestrator does not hold the licence to act now; ask the one that does"
                    .into(),
            ))
        }
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Cancelled when the service shuts down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The report streams each site holds open (at most a few: see
    /// `api::seats`).
    pub(crate) fn stream_seats(&self) -> &crate::api::seats::Seats {
        &self.stream_seats
    }

    /// The agents' open report streams, each ending at shutdown.
    pub fn streams(&self) -> &tokio_util::task::TaskTracker {
        &self.streams
    }

    /// Changes whenever a command is queued (for long-polls).
    pub fn command_ticks(&self) -> watch::Receiver<u64> {
        self.command_tick.subscribe()
    }

    /// The name of the operator whose token `token` is: every operator
    /// token is compared (constant time each, no early exit).
    pub fn operator_name(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (name, t) in &self.operators {
            if t.matches(token) {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// Whether the API verifies client certificates (mTLS).
    pub fn verifies_client_certs(&self) -> bool {
        self.cfg
            .orchestrator
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca.is_some())
    }

    /// Whether `token` is the read-only token (constant-time comparison).
    pub fn is_reader(&self, token: &str) -> bool {
        self.reader.as_ref().is_some_and(|r| r.matches(token))
    }

    /// Whether an agent may report about `name`: a site, or a hybrid frontend it probes.
    pub fn is_probe_target(&self, name: &str) -> bool {
        self.probe_targets.contains(name)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
