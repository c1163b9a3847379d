//! Durations: a zero, a floor and a ceiling reported at their key
//! ([`MIN_TIMEOUT`] for the time allowed an answer), and `[detection]`.

use super::*;

/// The shortest time allowed for an answer (see [`Cx::timeout_floor`]):
/// `"1ns"` or `"500us"` (a unit mistaken) passed, and each run of the
/// check, hook or update it bounds was cut off before any host could
/// answer; 10 ms is the floor `detection.probe_timeout` has too.
pub(super) const MIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(10);

impl<'t, 'r> Cx<'t, 'r> {
    /// Report a zero duration at `key`.
    pub(super) fn positive(&mut self, key: &str) {
        let value = self.value_at(key);
        self.push(
            self.at(key),
            key,
            value,
            format!("must be a positive duration; expected {DURATION_HINT}"),
        );
    }

    /// `key` (a duration) must be at least `min` when it is not zero (zero
    /// has its own message); `why` completes "(…" in the message.
    pub(super) fn at_least(
        &mut self,
        key: &str,
        v: std::time::Duration,
        min: std::time::Duration,
        why: &str,
    ) {
        if !v.is_zero() && v < min {
            let value = self.value_at(key);
            self.push(
                self.at(key),
                key,
                value,
                format!(
                    "must be at least \"{}\" ({why}",
                    humantime::format_duration(min)
                ),
            );
        }
    }

    /// `key`, the time allowed for something another process or host must
    /// answer (a check or probe, a hook, a runbook step, a DNS update, an
    /// etcd request, a resync), must be at least [`MIN_TIMEOUT`] when it is
    /// not zero (zero has its own message).
    pub(super) fn timeout_floor(&mut self, key: &str, v: std::time::Duration) {
        self.at_least(
            key,
            v,
            MIN_TIMEOUT,
            "shorter, nothing answers within it: it would fail every time)",
        );
    }

    /// `key` (a duration) must be at most `max`; `why` completes "(…" in the message.
    pub(super) fn at_most(
        &mut self,
        key: &str,
        v: std::time::Duration,
        max: std::time::Duration,
        why: &str,
    ) {
        if v > max {
            let value = self.value_at(key);
            self.push(
                self.at(key),
                key,
                value,
                format!(
                    "must be at most \"{}\" ({why}",
                    humantime::format_duration(max)
                ),
            );
        }
    }

    pub(super) fn check_detection(&mut self, d: &Detection) {
        for (key, v) in [("detection.fall", d.fall), ("detection.rise", d.rise)] {
            if v == 0 {
                self.push(self.at(key), key, Some("0".into()), "must be at least 1");
            }
        }
        for (key, v) in [
            ("detection.interval", d.interval),
            ("detection.probe_timeout", d.probe_timeout),
            ("detection.failover_window", d.failover_window),
        ] {
            if v.is_zero() {
                self.positive(key);
            }
        }
        // A round or a probe shorter than a network round trip between
        // sites judges nothing: the detector would spin and every probe
        // time out.
        for (key, v) in [
            ("detection.interval", d.interval),
            ("detection.probe_timeout", d.probe_timeout),
        ] {
            self.at_least(
                key,
                v,
                std::time::Duration::from_millis(10),
                "shorter judges nothing: the loop spins and probes time out)",
            );
        }
        if d.agent_timeout <= d.interval {
            let key = "detection.agent_timeout";
            self.push(
                self.at(key),
                key,
                Some(format!(
                    "\"{}\"",
                    humantime::format_duration(d.agent_timeout)
                )),
                format!(
                    "must be longer than detection.interval ({})",
                    humantime::format_duration(d.interval)
                ),
            );
        }
    }
}
