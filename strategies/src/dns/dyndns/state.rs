//! What the provider remembers between updates and what it makes of an
//! answer: per hostname the value the server last confirmed (so the same
//! address is not sent again, as No-IP asks), the highest confirmed epoch,
//! and the stops in force — a block after a fatal code, a 30-minute hold
//! after `911`/`dnserr`/HTTP 429 — with the alert lines that describe them.

use super::*;

use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tracing::warn;

/// A stop in force (fatal code or hold).
#[derive(Debug, Clone)]
pub(super) struct Stop {
    /// What happened and what to do (the reason of [`StrategyError::Blocked`]).
    reason: String,
    /// The alert line: `reason` with the group and the server.
    pub(super) line: String,
    /// Holds only: when sending is allowed again.
    until: Option<Instant>,
}

/// What the provider remembers (behind `DyndnsProvider::state`).
#[derive(Debug, Default)]
pub(super) struct State {
    /// Per hostname: the value the server last confirmed (`good`/`nochg`).
    pub(super) confirmed: BTreeMap<String, RecordValue>,
    /// The highest epoch whose publish every hostname confirmed.
    pub(super) epoch: Epoch,
    /// A fatal answer: nothing is sent until `clear()` or a reload.
    pub(super) block: Option<Stop>,
    /// A `911`/`dnserr`: nothing is sent until `until` (or `clear()`).
    pub(super) hold: Option<Stop>,
}

impl DyndnsProvider {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop(&self, reason: &str, until: Option<Instant>) -> Stop {
        Stop {
            reason: reason.to_string(),
            line: format!(
                "dns/{} group {} ({}): {reason}",
                self.flavor.kind(),
                self.group,
                self.element
            ),
            until,
        }
    }

    /// The stop in force, if any (an expired hold is dropped).
    pub(super) fn stopped(&self, st: &mut State) -> Option<String> {
        if let Some(b) = &st.block {
            return Some(b.reason.clone());
        }
        if let Some(h) = &st.hold {
            if h.until.is_some_and(|u| Instant::now() < u) {
                return Some(h.reason.clone());
            }
            info!(group = %self.group, server = %self.element, "update hold expired; updates resume");
            st.hold = None;
        }
        None
    }

    /// `(what, why)` of the failed hostnames: "`nohost` for a, b" and the
    /// advice of each code.
    fn describe(&self, failed: &[(Code, &str)]) -> (String, String) {
        let mut codes: Vec<Code> = Vec::new();
        for (c, _) in failed {
            if !codes.contains(c) {
                codes.push(*c);
            }
        }
        let what = codes
            .iter()
            .map(|c| {
                let hs: Vec<&str> = failed
                    .iter()
                    .filter(|(x, _)| x == c)
                    .map(|(_, h)| *h)
                    .collect();
                format!("`{}` for {}", c.as_str(), hs.join(", "))
            })
            .collect::<Vec<_>>()
            .join(" and ");
        let why = codes
            .iter()
            .map(|c| c.advice(self.flavor, &self.group))
            .collect::<Vec<_>>()
            .join("; ");
        (what, why)
    }

    /// Stop for good (until `clear()` or a reload) after a fatal answer.
    pub(super) fn block(&self, what: &str, why: &str) -> StrategyError {
        let reason = format!(
            "updates stopped after {what}: {why}; nothing is sent through this provider until the configuration is fixed and the orchestrator restarted, or the account is fixed and `warden clear {}` is run",
            self.group
        );
        warn!(group = %self.group, server = %self.element, answer = what, "DNS updates stopped: the provider answered a fatal code");
        self.lock().block = Some(self.stop(&reason, None));
        self.blocked(&reason)
    }

    /// Hold for [`HOLD`] after `911`/`dnserr`/HTTP 429.
    pub(super) fn hold(&self, what: &str, why: &str) -> StrategyError {
        let reason = format!(
            "updates held until {} (30 min) after {what}: {why}; clear this alert to retry earlier",
            wall_clock_after(HOLD),
        );
        warn!(group = %self.group, server = %self.element, answer = what, hold = "30m", "DNS updates held");
        self.lock().hold = Some(self.stop(&reason, Some(Instant::now() + HOLD)));
        self.blocked(&reason)
    }
    /// Apply the answer lines of an update of `hosts` to `value` at `epoch`.
    pub(super) fn settle(
        &self,
        hosts: &[String],
        value: &RecordValue,
        epoch: Epoch,
        lines: &[Line],
        body: &str,
    ) -> Result<(), StrategyError> {
        let mut fatal: Vec<(Code, &str)> = Vec::new();
        let mut held: Vec<(Code, &str)> = Vec::new();
        let mut mismatch = Vec::new();
        let mut nochg = 0;
        {
            let mut st = self.lock();
            for (h, l) in hosts.iter().zip(lines) {
                match l.code.class() {
                    Class::Success => {
                        if l.code == Code::Nochg {
                            nochg += 1;
                        }
                        let got = value_of(&l.ips);
                        if l.ips.is_empty() || got == *value {
                            st.confirmed.insert(h.clone(), *value);
                        } else {
                            st.confirmed.insert(h.clone(), got);
                            mismatch.push(format!(
                                "{h}: `{} {}` but {value} was sent",
                                l.code.as_str(),
                                got
                            ));
                        }
                    }
                    Class::Fatal => {
                        st.confirmed.remove(h);
                        fatal.push((l.code, h));
                    }
                    Class::Hold => {
                        st.confirmed.remove(h);
                        held.push((l.code, h));
                    }
                }
            }
        }
        if !fatal.is_empty() {
            let (what, why) = self.describe(&fatal);
            return Err(self.block(&what, &why));
        }
        if !held.is_empty() {
            let (what, why) = self.describe(&held);
            return Err(self.hold(&what, &why));
        }
        if !mismatch.is_empty() {
            return Err(self.rejected(format!(
                "the server set other addresses than the ones sent ({}); answer {}: does groups.{}.dns.server accept myip/myipv6?",
                mismatch.join("; "),
                quote(body),
                self.group
            )));
        }
        {
            let mut st = self.lock();
            st.epoch = st.epoch.max(epoch);
        }
        info!(
            group = %self.group,
            server = %self.element,
            hosts = %hosts.join(","),
            to = %value,
            epoch,
            nochg,
            "DNS update confirmed"
        );
        Ok(())
    }
}

/// The addresses named by a success line.
pub(super) fn value_of(ips: &[IpAddr]) -> RecordValue {
    let mut v = RecordValue::default();
    for ip in ips {
        match ip {
            IpAddr::V4(a) if v.v4.is_none() => v.v4 = Some(*a),
            IpAddr::V6(a) if v.v6.is_none() => v.v6 = Some(*a),
            _ => {}
        }
    }
    v
}

/// `HH:MM UTC`, `after` from now on the wall clock (for people reading alerts).
fn wall_clock_after(after: Duration) -> String {
    let secs = SystemTime::now()
        .checked_add(after)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:02}:{:02} UTC", (secs / 3600) % 24, (secs / 60) % 60)
}
