//! What the service holds: [`State`] (everything decisions read, behind
//! one lock), [`Shared`] (the state, the store, the strategies and
//! everything the loops, the API handlers and the runbook tasks share)
//! and how it gets its licence to act ([`Mode`]). Fields are visible to
//! the service's rooms only.

use super::*;

/// Everything decisions read, behind one lock.
pub struct State {
    pub(super) evidence: Evidence,
    pub(super) detector: Detector,
    pub(super) groups: BTreeMap<String, GroupState>,
    /// Commands queued for agents and their outcomes (see [`Ledger`]).
    pub(super) ledger: Ledger,
    /// Recent events (the store has them all).
    pub(super) recent: VecDeque<Event>,
    pub(super) next_event: u64,
    pub(super) next_runbook: u64,
    /// Latest runbook per id (running and recent).
    pub(super) runbooks: runbook_map::RunbookMap,
    /// What was last recorded of every condition worth an event (level-triggered).
    pub(super) recorded: crate::recorded::Recorded,
    /// `hybrid` groups' frontends judged like sites (DESIGN §3) from the
    /// orchestrator's probes and the agents' peer probes; see [`Detector::agentless`].
    pub(super) fe_evidence: Evidence,
    pub(super) fe_detector: Detector,
    /// Hybrid groups whose DNS layer is being moved right now (one move at a time).
    pub(super) dns_moving: std::collections::BTreeSet<String>,
    /// Per group: an epoch above the group's seen outside (see [`crate::authority`]).
    pub(super) epoch_ahead: BTreeMap<String, authority::EpochAhead>,
    /// Command ids after which a site was not asked again to take its role
    /// (`authority_check_locked`): alerted once each; only ids the ledger
    /// still holds are kept.
    pub(super) refence_exhausted: std::collections::BTreeSet<String>,
    /// Groups new to the store, to be adopted from the routing layer at start.
    pub(super) fresh: std::collections::BTreeSet<String>,
    /// Divergent lists being assembled from report pages, per (site, group).
    pub(super) divergent_pages: BTreeMap<(String, String), divergent::Assembly>,
    /// The place of this process's answers to agents (see [`answer_order`]).
    pub(super) answer_orders: answer_order::AnswerOrders,
    /// Per group: when the last hold order for a suspected active site was
    /// sent (renewed at most every half its ttl, see [`hold`]).
    pub(super) suspect_holds: BTreeMap<String, Instant>,
    /// Groups left as stored at the last load, not acted on, with their
    /// alerts (see `untouched`).
    pub(super) untouched: BTreeMap<String, String>,
}

/// Shared by the loops, the API handlers and the runbook tasks.
pub struct Shared {
    pub(super) cfg: Config,
    /// Operator tokens by name.
    pub(super) operators: Vec<(String, Secret)>,
    /// The read-only token.
    pub(super) reader: Option<Secret>,
    /// Last accepted report seq per agent process (replays are refused).
    pub(super) report_seqs: replay::ReportSeqs,
    /// Open command long-polls per site.
    pub(super) polls: polls::Polls,
    /// What the store failed to write, and why (alerts until it can).
    pub(super) store_trouble: Mutex<BTreeMap<String, String>>,
    /// SHA-256 of an agent token → site. A hash lookup (not a scan) keeps a
    /// report O(1) with tens of thousands of sites; keyed by the digest, its
    /// timing says nothing about the tokens.
    pub(super) agent_tokens: std::collections::HashMap<crate::settings::TokenDigest, String>,
    pub(super) store: Arc<dyn Store>,
    pub(super) strategies: BTreeMap<String, crate::routing::Routing>,
    pub(super) state: Mutex<State>,
    /// Bumped on every accepted report (waiters for outcomes and health).
    pub(super) report_tick: watch::Sender<u64>,
    /// Bumped whenever a command is queued (long-polls).
    pub(super) command_tick: watch::Sender<u64>,
    /// Wakes the detection and probe loops early (see [`cadence`]).
    pub(super) cadence: cadence::Cadence,
    pub(super) clock: Clock,
    /// What the retention of history counts age back from (see `history`).
    pub(super) history: super::history::HistoryAnchor,
    pub(super) http: warden_checks::ProbeClient,
    /// The verify step's requests through a public entry: no pooled
    /// connection (one opened before a switch may still be relayed to the
    /// old site), no proxy (entries are addresses); see [`entry`].
    pub(super) entry_http: reqwest::Client,
    pub(super) metrics: Metrics,
    pub(super) shutdown: CancellationToken,
    /// The agents' open report streams (see `api::stream`): waited for at shutdown.
    pub(super) streams: tokio_util::task::TaskTracker,
    /// The report streams each site holds open (see `api::seats`).
    pub(super) stream_seats: crate::api::seats::Seats,
    /// The frontends of `hybrid` groups and their probe (see
    /// [`Config::hybrid_frontend_probes`]); empty without hybrid groups.
    pub(super) frontend_probes: BTreeMap<String, (warden_config::CheckSpec, Vec<String>)>,
    /// Every site and hybrid frontend an agent may report probes of (a hash
    /// set: every report's peers are looked up here).
    pub(super) probe_targets: std::collections::HashSet<String>,
    /// Site → what its agent probes (its peers and its hybrid groups'
    /// frontends; [`Config::probe_targets_of`]): a report's other probes are dropped.
    pub(super) site_probes: foldhash::HashMap<String, std::collections::HashSet<String>>,
    /// (site, what) pairs already warned about once (see [`admit`]).
    pub(super) admit_warned: Mutex<std::collections::HashSet<(String, String)>>,
    /// Events recorded but not yet in the store (see [`Shared::write_events`]).
    pub(super) unsaved: Mutex<Vec<Event>>,
    pub(super) unsaved_notify: tokio::sync::Notify,
    /// Held while this process may act (see [`Licence`]).
    pub(super) licence: Arc<Licence>,
    /// The place of the last hold order given (see [`Shared::order_hold`]).
    pub(super) hold_seq: std::sync::atomic::AtomicU64,
    /// Site → the groups it belongs to (built once: reports look it up).
    pub(super) site_groups: foldhash::HashMap<String, Vec<String>>,
    /// Every group's name, in order (built once: each round goes over them).
    pub(super) group_names: Vec<String>,
    /// Group state changes waiting for the store (see [`persist`]).
    pub(super) writer: persist::GroupWriter,
    /// `[[orchestrator.notify]]`: webhooks and commands told of events.
    pub(super) notify: notify::Notify,
    /// What the marks of its fence and notify commands are bound to
    /// ([`crate::OrchestratorSettings::run_dir`]; see [`leftovers`]).
    pub(super) run_dir: std::path::PathBuf,
    /// Groups whose stored provider stops are not empty (`stops.rs`); its
    /// lock also puts syncs in order.
    pub(super) stopped_groups: Mutex<std::collections::BTreeSet<String>>,
    /// With etcd: the leadership as this node sees it (see [`ha`]).
    pub(super) ha: Option<ha::Ha>,
    /// When this process started: until `agent_timeout` after it, an agent
    /// not heard yet may be alive (see `Shared::sites_heard`).
    pub(super) started: Instant,
}

/// How a service gets its licence to act.
pub enum Mode {
    /// Alone on a local store: held from start to shutdown.
    Local,
    /// One of several on etcd: held while this node holds the leader lease.
    Elected(watch::Receiver<crate::etcd::leader::Leadership>),
}

impl Mode {
    pub(super) fn is_local(&self) -> bool {
        matches!(self, Mode::Local)
    }
}
