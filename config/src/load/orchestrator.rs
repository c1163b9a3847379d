//! The checks of the `[orchestrator]` table and what the orchestrator's
//! peers must agree with: its listen and URLs, HA nodes on etcd, TLS and
//! mTLS (client certificates the agents and frontends present, the names
//! a certificate can carry), each problem at its file:line:col.

use super::*;

mod ha;
mod tls;

/// The smallest `orchestrator.max_body_bytes`: the default, what an agent's
/// largest report needs (a divergent page of about 16 KiB, one name of up
/// to 8 KiB more, checks, peer views, outcomes).
const MIN_BODY_BYTES: usize = 64 * 1024;

impl<'t, 'r> Cx<'t, 'r> {
    /// `[[orchestrator.operators]]` names: 1–64 of letters, digits, `.`,
    /// `_`, `-`; not `operator` (the `operator_token`'s); unique. Each
    /// problem at the name, which it shows (a name is no secret).
    fn check_operator_names(&mut self, o: &OrchestratorConfig) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, t) in o.operators.iter().enumerate() {
            let key = format!("orchestrator.operators[{i}].name");
            let valid = (1..=64).contains(&t.name.len())
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            let problem = if !valid {
                Some("an operator name is 1 to 64 of letters, digits, '.', '_', '-'".to_string())
            } else if t.name == "operator" {
                Some(
                    "is the name orchestrator.operator_token's actions are recorded under; choose another"
                        .to_string(),
                )
            } else if let Some(first) = seen.get(t.name.as_str()) {
                Some(format!(
                    "is the name of orchestrator.operators[{first}] too: each operator's actions are recorded under its own name; give each its own"
                ))
            } else {
                seen.insert(&t.name, i);
                None
            };
            if let Some(message) = problem {
                let value = self.value_at(&key);
                self.push(self.at(&key), &key, value, message);
            }
        }
    }

    pub(super) fn check_orchestrator(&mut self, o: &OrchestratorConfig) {
        self.check_state_dir("orchestrator.data_dir", &o.data_dir);
        self.check_secret("orchestrator.operator_token", &o.operator_token);
        for (i, t) in o.operators.iter().enumerate() {
            self.check_secret(&format!("orchestrator.operators[{i}].token"), &t.token);
        }
        self.check_operator_names(o);
        if let Some(r) = &o.read_token {
            self.check_secret("orchestrator.read_token", r);
        }
        if o.max_body_bytes < MIN_BODY_BYTES {
            self.push(
                self.at("orchestrator.max_body_bytes"),
                "orchestrator.max_body_bytes",
                Some(o.max_body_bytes.to_string()),
                "must be at least 65536 (64 KiB): an agent's report carries a page of a divergent list (about 16 KiB, and one name of up to 8 KiB more, escaped) beside its checks, peer views and outcomes, and a report the orchestrator refuses leaves the site's agent silent",
            );
        }
        if let Some(u) = &o.url {
            if !self.check_url(
                "orchestrator.url",
                u,
                "e.g. \"https://warden.example.net:7000\"",
            ) {
                self.check_base_url("orchestrator.url", u);
            }
        }
        // long_poll may be 0 (no long-polling); a zero reconcile interval would spin.
        for (key, v) in [
            ("orchestrator.reconcile_interval", o.reconcile_interval),
            ("orchestrator.header_read_timeout", o.header_read_timeout),
            ("orchestrator.request_timeout", o.request_timeout),
        ] {
            if v.is_zero() {
                self.positive(key);
            }
        }
        // Shorter ones are accepted by nothing that runs: a reconciliation
        // loop that never rests, every request answered 408.
        for (key, v) in [
            ("orchestrator.reconcile_interval", o.reconcile_interval),
            ("orchestrator.header_read_timeout", o.header_read_timeout),
            ("orchestrator.request_timeout", o.request_timeout),
        ] {
            self.at_least(
                key,
                v,
                std::time::Duration::from_millis(100),
                "shorter: a loop that never rests, or every request timed out)",
            );
        }
        if let Some(c) = &o.client_tls {
            self.check_client_tls("orchestrator.client_tls", c);
        }
        if let Some(t) = &o.tls {
            self.check_tls("orchestrator.tls", t);
            if o.url.as_deref().is_some_and(|u| u.starts_with("http://")) {
                let value = self.value_at("orchestrator.url");
                self.push(
                    self.at("orchestrator.url"),
                    "orchestrator.url",
                    value,
                    "the API speaks TLS (orchestrator.tls): the url must be https://",
                );
            }
        }
        if !(100..=100_000_000).contains(&o.events_keep) {
            self.push(
                self.at("orchestrator.events_keep"),
                "orchestrator.events_keep",
                Some(o.events_keep.to_string()),
                "must be between 100 and 100000000",
            );
        }
        if o.events_max_age < std::time::Duration::from_secs(3600) {
            let value = self.value_at("orchestrator.events_max_age");
            self.push(
                self.at("orchestrator.events_max_age"),
                "orchestrator.events_max_age",
                value,
                "must be at least 1h",
            );
        }
        if !(10..=1_000_000).contains(&o.runbooks_keep) {
            self.push(
                self.at("orchestrator.runbooks_keep"),
                "orchestrator.runbooks_keep",
                Some(o.runbooks_keep.to_string()),
                "must be between 10 and 1000000",
            );
        }
        if o.runbooks_max_age < std::time::Duration::from_secs(24 * 3600) {
            let value = self.value_at("orchestrator.runbooks_max_age");
            self.push(
                self.at("orchestrator.runbooks_max_age"),
                "orchestrator.runbooks_max_age",
                value,
                "must be at least 1d",
            );
        }
        if !(16..=1_000_000).contains(&o.max_connections) {
            self.push(
                self.at("orchestrator.max_connections"),
                "orchestrator.max_connections",
                Some(o.max_connections.to_string()),
                "must be between 16 and 1000000",
            );
        }
        self.check_ha(o);
        self.check_notify(&o.notify);
    }

    /// An API base URL (`orchestrator.url`, a node's `url`) has the API's
    /// paths added to it (`{url}/v1/reports`): a query or a fragment in it
    /// would swallow them — every agent's command poll and every CLI call
    /// would reach `/` (the dashboard) instead.
    fn check_base_url(&mut self, key: &str, u: &str) {
        let Ok(parsed) = url::Url::parse(u) else {
            return;
        };
        let what = match (parsed.query(), parsed.fragment()) {
            (Some(_), _) => "a query (?…)",
            (None, Some(_)) => "a fragment (#…)",
            (None, None) => return,
        };
        self.push(
            self.at(key),
            key,
            Some(format!("{u:?}")),
            format!(
                "holds {what}: the API's paths are added to this URL (…/v1/reports), and would \
                 end up inside it; give scheme, host, port and at most a path"
            ),
        );
    }
}
