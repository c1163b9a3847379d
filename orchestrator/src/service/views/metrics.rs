//! The metrics scrape: the gauges read off the status view when scraped
//! (and the last RTOs off the runbooks in memory), and the Prometheus or
//! OpenMetrics text.

use super::*;

impl Shared {
    /// The gauges read off the status when scraped: isolation, each
    /// group's state and maintenance, each site's verdict and whether it
    /// refuses this leader's orders (`term_seen`), replication errors.
    fn set_state_metrics(&self, view: &StatusView) {
        use crate::metrics::{GROUP_STATES, VERDICTS};
        let m = &self.metrics;
        let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        m.isolated.set(i64::from(view.isolated));
        let mut verdicts = std::collections::BTreeMap::new();
        let mut refuses = std::collections::BTreeMap::new();
        let own = self.licence.is_held().then(|| self.answer_term());
        for g in &view.groups {
            let state = serde_json::json!(g.phase);
            let state = state.as_str().unwrap_or_default();
            for s in GROUP_STATES {
                m.group_state
                    .get_or_create(&l(&[("group", &g.name), ("state", s)]))
                    .set(i64::from(s == state));
            }
            m.group_maintenance
                .get_or_create(&l(&[("group", &g.name)]))
                .set(i64::from(g.maintenance));
            if let Some(r) = &g.replication {
                m.replication_errors
                    .get_or_create(&l(&[("group", &g.name)]))
                    .set(r.errors.len() as i64);
            }
            for site in &g.sites {
                verdicts.insert(site.name.clone(), site.verdict.clone());
                let above = site.taken_term.zip(own).is_some_and(|(t, o)| t > o);
                let left = own.is_some() && site.left_cluster.is_some();
                refuses.insert(site.name.clone(), above || left);
            }
        }
        for (site, verdict) in &verdicts {
            for v in VERDICTS {
                m.site_verdict
                    .get_or_create(&l(&[("site", site), ("verdict", v)]))
                    .set(i64::from(v == verdict));
            }
        }
        for (site, above) in &refuses {
            m.site_refuses_orders
                .get_or_create(&l(&[("site", site)]))
                .set(i64::from(*above));
        }
    }

    /// Prometheus text (OpenMetrics when `openmetrics`, else the classic
    /// format), with the gauges that are computed when scraped.
    pub fn metrics_text(&self, openmetrics: bool) -> String {
        let view = self.status_view();
        let alerts: usize =
            view.groups.iter().map(|g| g.alerts.len()).sum::<usize>() + view.alerts.len();
        self.metrics.alerts.set(alerts as i64);
        self.set_state_metrics(&view);
        self.metrics.leader.set(i64::from(self.licence.is_held()));
        if let Some(l) = self.leadership() {
            self.metrics
                .etcd_up
                .get_or_create(&vec![("node".to_string(), l.node.clone())])
                .set(i64::from(l.etcd_ok));
        }
        {
            let st = self.lock();
            // The last RTOs as the runbooks in memory say (loaded from the
            // store at start and by a follower): not 0 after a restart.
            let mut last: Option<&Runbook> = None;
            for rb in st.runbooks.last_rtos() {
                let rto = rb.rto_ms.unwrap_or_default() as f64 / 1000.0;
                self.metrics
                    .group_last_rto_seconds
                    .get_or_create(&vec![
                        ("group".to_string(), rb.group.clone()),
                        ("kind".to_string(), runbook::kind_str(rb.kind).to_string()),
                    ])
                    .set(rto);
                if last.is_none_or(|l| (rb.finished_unix_ms, rb.id) > (l.finished_unix_ms, l.id)) {
                    last = Some(rb);
                }
            }
            if let Some(rb) = last {
                self.metrics
                    .last_rto_seconds
                    .set(rb.rto_ms.unwrap_or_default() as f64 / 1000.0);
            }
            let now = self.clock.now_ms();
            for (name, g) in &self.cfg.groups {
                if g.replication.is_some() {
                    let labels = vec![("group".to_string(), name.clone())];
                    match self.rpo_ms(&st, name, now) {
                        Some(ms) => {
                            self.metrics
                                .rpo_seconds
                                .get_or_create(&labels)
                                .set(ms as f64 / 1000.0);
                        }
                        // Unknown: no sample (a number would be read as a lag).
                        None => {
                            self.metrics.rpo_seconds.remove(&labels);
                        }
                    }
                }
            }
        }
        let text = self.metrics.encode();
        if openmetrics {
            text
        } else {
            crate::metrics::classic_text(&text)
        }
    }
}
