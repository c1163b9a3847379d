//! Prometheus metrics of the orchestrator, served at `/metrics`: OpenMetrics
//! text to a scraper that asks for it (`Accept: application/openmetrics-text`),
//! the classic text format (0.0.4) otherwise — what `promtool check metrics`
//! and older scrapers read. Base units (seconds), `_total` counters.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The orchestrator's metrics and their registry.
pub struct Metrics {
    pub registry: Registry,
    pub reports: Counter,
    pub rejected: Counter,
    pub report_seconds: Histogram,
    /// Time of one regular detection round (every site judged, every
    /// group's decision looked at), under the state lock.
    pub round_seconds: Histogram,
    /// Prompt rounds run between the regular ones (bad evidence, silent agents).
    pub prompt_rounds: Counter,
    pub events: Counter,
    /// Runbooks finished, by `kind` and `status` (succeeded or failed).
    pub runbooks: Family<Vec<(String, String)>, Counter>,
    /// RTO of the last finished runbook, seconds.
    pub last_rto_seconds: Gauge<f64, AtomicU64>,
    /// Per `group` and runbook `kind`: the RTO of its last finished move.
    pub group_last_rto_seconds: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    /// Per `group`: the RPO recorded by its last failover (the writes at
    /// risk when it was decided); no sample while unknown.
    pub group_last_failover_rpo_seconds: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    /// Alerts in force (blocked DNS providers, holds), over every group;
    /// set when `/metrics` is scraped.
    pub alerts: Gauge,
    /// Per group with replication: the RPO now (what losing the active site
    /// would lose), seconds; no sample while unknown. Set when `/metrics`
    /// is scraped.
    pub rpo_seconds: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    /// Command outcomes dropped: reported for a command not queued for the reporting site.
    pub dropped_outcomes: Counter,
    /// 1 while this orchestrator holds the licence to act (always 1 with the
    /// local store); set when `/metrics` is scraped.
    pub leader: Gauge,
    /// With etcd (label `node`): 1 while etcd answers this node, else 0;
    /// no sample with the local store. Set when scraped.
    pub etcd_up: Family<Vec<(String, String)>, Gauge>,
    /// Agents' report streams open now.
    pub report_streams: Gauge,
    /// 1 while the orchestrator is isolated (reaches no site, hears no
    /// agent): it decides nothing. Set when scraped.
    pub isolated: Gauge,
    /// Per `group` and `state` (steady, running, pending_approval,
    /// failed): 1 for the group's state, 0 for the others. Set when scraped.
    pub group_state: Family<Vec<(String, String)>, Gauge>,
    /// Per `group`: 1 in maintenance. Set when scraped.
    pub group_maintenance: Family<Vec<(String, String)>, Gauge>,
    /// Per `site` and `verdict` (healthy, down, path_fault, dead_agent,
    /// unconfirmed, unknown): 1 for the last round's verdict. Set when scraped.
    pub site_verdict: Family<Vec<(String, String)>, Gauge>,
    /// Per `site`: 1 while this leader's orders are refused there (its
    /// agent took a leader term above this leader's). Set when scraped.
    pub site_refuses_orders: Family<Vec<(String, String)>, Gauge>,
    /// Per `group` with replication: replication errors the sites report
    /// now. Set when scraped.
    pub replication_errors: Family<Vec<(String, String)>, Gauge>,
    /// Notifications delivered, per `notify` entry.
    pub notify_sent: Family<Vec<(String, String)>, Counter>,
    /// Notifications given up, per `notify` entry and `reason`
    /// (`queue_full`, `refused`, `retries_exhausted`).
    pub notify_failed: Family<Vec<(String, String)>, Counter>,
}

/// The states of [`Metrics::group_state`] and verdicts of
/// [`Metrics::site_verdict`], every one given a sample.
pub const GROUP_STATES: [&str; 4] = ["steady", "running", "pending_approval", "failed"];
pub const VERDICTS: [&str; 6] = [
    "healthy",
    "down",
    "path_fault",
    "dead_agent",
    "unconfirmed",
    "unknown",
];

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("warden");
        let reports = Counter::default();
        let rejected = Counter::default();
        let report_seconds = Histogram::new([0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1]);
        let round_seconds =
            Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5]);
        let events = Counter::default();
        let prompt_rounds = Counter::default();
        let runbooks = Family::<Vec<(String, String)>, Counter>::default();
        let isolated = Gauge::default();
        let group_state = Family::<Vec<(String, String)>, Gauge>::default();
        let group_maintenance = Family::<Vec<(String, String)>, Gauge>::default();
        let site_verdict = Family::<Vec<(String, String)>, Gauge>::default();
        let site_refuses_orders = Family::<Vec<(String, String)>, Gauge>::default();
        let replication_errors = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "isolated",
            "1 while the orchestrator reaches no site and hears no agent: it decides nothing",
            isolated.clone(),
        );
        registry.register(
            "group_state",
            "1 for each group's state (steady, running, pending_approval, failed), 0 for the others",
            group_state.clone(),
        );
        registry.register(
            "group_maintenance",
            "1 while a group is in maintenance (no automatic decisions)",
            group_maintenance.clone(),
        );
        registry.register(
            "site_verdict",
            "1 for each site's last verdict (healthy, down, path_fault, dead_agent, unconfirmed, unknown), 0 for the others",
            site_verdict.clone(),
        );
        registry.register(
            "site_refuses_orders",
            "1 while a site's agent refuses this leader's orders: it took a leader term above this leader's (the terms started over)",
            site_refuses_orders.clone(),
        );
        registry.register(
            "replication_errors",
            "Replication errors the sites of a group report now",
            replication_errors.clone(),
        );
        let last_rto_seconds = Gauge::<f64, AtomicU64>::default();
        let alerts = Gauge::default();
        let rpo_seconds = Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
        let dropped_outcomes = Counter::default();
        let leader = Gauge::default();
        let etcd_up = Family::<Vec<(String, String)>, Gauge>::default();
        let report_streams = Gauge::default();
        registry.register(
            "report_streams",
            "Agents' report streams open now (WebSocket, see docs/api.md)",
            report_streams.clone(),
        );
        registry.register(
            "leader",
            "1 while this orchestrator holds the licence to act (the leader lease with etcd)",
            leader.clone(),
        );
        registry.register(
            "etcd_up",
            "1 while etcd answers this orchestrator (store = etcd only)",
            etcd_up.clone(),
        );
        registry.register(
            "dropped_outcomes",
            "Command outcomes dropped because the command was not queued for the reporting site",
            dropped_outcomes.clone(),
        );
        registry.register(
            "rpo_seconds",
            "Replication lag of the active site (the RPO if it died now), seconds; absent while unknown",
            rpo_seconds.clone(),
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
        registry.register(
            "detection_round_seconds",
            "Time of one regular detection round (reports wait for it)",
            round_seconds.clone(),
        );
        registry.register(
            "prompt_rounds",
            "Prompt detection rounds (bad evidence or agents turning silent between regular rounds)",
            prompt_rounds.clone(),
        );
        registry.register("events", "Events recorded", events.clone());
        registry.register(
            "runbooks_finished",
            "Runbooks finished, by kind and status (succeeded, failed)",
            runbooks.clone(),
        );
        registry.register(
            "last_rto_seconds",
            "RTO of the last finished runbook, seconds",
            last_rto_seconds.clone(),
        );
        registry.register(
            "alerts",
            "Alerts an operator must clear (e.g. a DNS provider blocked after a fatal answer)",
            alerts.clone(),
        );
        let group_last_rto_seconds =
            Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
        let group_last_failover_rpo_seconds =
            Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "group_last_rto_seconds",
            "RTO of a group's last finished runbook of a kind (failover, failback, switchover), seconds",
            group_last_rto_seconds.clone(),
        );
        registry.register(
            "group_last_failover_rpo_seconds",
            "RPO a group's last failover recorded (the writes at risk when it was decided), seconds; absent while unknown",
            group_last_failover_rpo_seconds.clone(),
        );
        let notify_sent = Family::<Vec<(String, String)>, Counter>::default();
        let notify_failed = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "notify_sent",
            "Notifications delivered, per [[orchestrator.notify]] entry",
            notify_sent.clone(),
        );
        registry.register(
            "notify_failed",
            "Notifications given up, per entry and reason (queue_full, refused, retries_exhausted, shutdown, not_leader)",
            notify_failed.clone(),
        );
        Metrics {
            group_last_rto_seconds,
            group_last_failover_rpo_seconds,
            notify_sent,
            notify_failed,
            isolated,
            group_state,
            group_maintenance,
            site_verdict,
            site_refuses_orders,
            replication_errors,
            report_streams,
            prompt_rounds,
            leader,
            etcd_up,
            dropped_outcomes,
            alerts,
            rpo_seconds,
            registry,
            reports,
            rejected,
            report_seconds,
            round_seconds,
            events,
            runbooks,
            last_rto_seconds,
        }
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

/// The classic Prometheus text format (0.0.4) of OpenMetrics text from
/// prometheus-client: a counter's `# HELP`/`# TYPE` lines carry the
/// `_total` name its samples have (OpenMetrics names the family without
/// it), and the OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            (counters.contains(name) && !name.ends_with("_total"))
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// One notification delivered by entry `notify`.
    pub fn notify_sent(&self, notify: &str) {
        self.notify_sent
            .get_or_create(&vec![("notify".to_string(), notify.to_string())])
            .inc();
    }

    /// One notification given up by entry `notify`, for `reason`.
    pub fn notify_failed(&self, notify: &str, reason: &str) {
        self.notify_failed
            .get_or_create(&vec![
                ("notify".to_string(), notify.to_string()),
                ("reason".to_string(), reason.to_string()),
            ])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total_and_drops_eof() {
        let m = Metrics::new();
        m.reports.inc();
        m.last_rto_seconds.set(1.25);
        let om = m.encode();
        assert!(om.contains("# TYPE warden_agent_reports counter") && om.contains("# EOF"));
        let c = classic_text(&om);
        assert!(
            c.contains("# TYPE warden_agent_reports_total counter\n"),
            "{c}"
        );
        assert!(c.contains("# HELP warden_agent_reports_total "), "{c}");
        assert!(c.contains("warden_agent_reports_total 1\n"), "{c}");
        assert!(c.contains("warden_last_rto_seconds 1.25\n"), "{c}");
        assert!(!c.contains("# EOF") && !c.contains("_ms"), "{c}");
    }
}
