//! Prometheus metrics of the orchestrator, served at `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The orchestrator's metrics and their registry.
pub struct Metrics {
    pub registry: Registry,
    pub reports: Counter,
    pub rejected: Counter,
    pub report_seconds: Histogram,
    pub events: Counter,
    pub runbooks: Counter,
    pub last_rto_ms: Gauge,
    /// Alerts in force (blocked DNS providers, holds), over every group;
    /// set when `/metrics` is scraped.
    pub alerts: Gauge,
    /// Per group with replication: the RPO now (what losing the active site
    /// would lose), ms; -1 when unknown. Set when `/metrics` is scraped.
    pub rpo_ms: Family<Vec<(String, String)>, Gauge>,
    /// Command outcomes dropped: reported for a command not queued for the reporting site.
    pub dropped_outcomes: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("warden");
        let reports = Counter::default();
        let rejected = Counter::default();
        let report_seconds = Histogram::new([0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1]);
        let events = Counter::default();
        let runbooks = Counter::default();
        let last_rto_ms = Gauge::default();
        let alerts = Gauge::default();
        let rpo_ms = Family::<Vec<(String, String)>, Gauge>::default();
        let dropped_outcomes = Counter::default();
        registry.register(
            "dropped_outcomes",
            "Command outcomes dropped because the command was not queued for the reporting site",
            dropped_outcomes.clone(),
        );
        registry.register(
            "rpo_ms",
            "Replication lag of the active site (the RPO if it died now), ms; -1 unknown",
            rpo_ms.clone(),
        );
        registry.register("agent_reports", "Agent reports accepted", reports.clone());
        registry.register(
            "api_rejected",
            "API requests rejected (auth or bad input)",
            rejected.clone(),
        );
        registry.register(
            "report_handling_seconds",
            "Time to handle one agent report",
            report_seconds.clone(),
        );
        registry.register("events", "Events recorded", events.clone());
        registry.register("runbooks_finished", "Runbooks finished", runbooks.clone());
        registry.register(
            "last_rto_ms",
            "RTO of the last finished runbook, ms",
            last_rto_ms.clone(),
        );
        registry.register(
            "alerts",
            "Alerts an operator must clear (e.g. a DNS provider blocked after a fatal answer)",
            alerts.clone(),
        );
        Metrics {
            dropped_outcomes,
            alerts,
            rpo_ms,
            registry,
            reports,
            rejected,
            report_seconds,
            events,
            runbooks,
            last_rto_ms,
        }
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
