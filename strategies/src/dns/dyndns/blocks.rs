//! The stops in force on a provider and what outlives a restart of them:
//! a block after a fatal code (until `warden clear` or a change of the
//! provider's configuration, recognised by [`config_digest`]), a 30-minute
//! hold after `911`/`dnserr`/HTTP 429, their alert lines, and taking them
//! back from the store.

use super::*;

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
    /// Holds only: the same on the wall clock (Unix ms), as stored.
    until_unix_ms: Option<u64>,
}

impl DyndnsProvider {
    fn stop(&self, reason: &str, until: Option<Instant>) -> Stop {
        let until_unix_ms = until.map(|u| {
            unix_ms(SystemTime::now())
                .saturating_add(u.saturating_duration_since(Instant::now()).as_millis() as u64)
        });
        Stop {
            until_unix_ms,
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

    /// Stop for good (until `clear()` or a reload) after a fatal answer.
    pub(super) fn block(&self, what: &str, why: &str) -> StrategyError {
        let reason = format!(
            "updates stopped after {what}: {why}; nothing is sent through this provider, across restarts, until the cause is fixed and `warden clear {}` is run (or the provider's server, hostnames or user agent change in the configuration)",
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

    /// The stops in force as stored ([`crate::ProviderStop`]); an ended hold
    /// is left out.
    pub(super) fn stored_stops(&self) -> Vec<crate::ProviderStop> {
        let mut st = self.lock();
        self.stopped(&mut st);
        let mut out = Vec::new();
        if let Some(b) = &st.block {
            out.push(crate::ProviderStop {
                kind: crate::StopKind::Block,
                reason: b.reason.clone(),
                line: b.line.clone(),
                until_unix_ms: None,
                config: self.config_digest.clone(),
            });
        }
        // an ended hold (left in place while a block is in force) is not kept
        if let Some(h) = st
            .hold
            .as_ref()
            .filter(|h| h.until.is_some_and(|u| Instant::now() < u))
        {
            out.push(crate::ProviderStop {
                kind: crate::StopKind::Hold,
                reason: h.reason.clone(),
                line: h.line.clone(),
                until_unix_ms: h.until_unix_ms,
                config: self.config_digest.clone(),
            });
        }
        out
    }

    /// Take back stored stops, replacing those in force. A block is taken
    /// back only while the configuration is the one it was earned with; a
    /// hold only until its end (never longer than [`HOLD`] from now, so a
    /// wrong clock cannot stretch it). Returns what was not taken back.
    pub(super) fn take_back(&self, stops: &[crate::ProviderStop]) -> Vec<String> {
        let mut dropped = Vec::new();
        let mut block = None;
        let mut hold = None;
        let now_ms = unix_ms(SystemTime::now());
        for s in stops {
            match s.kind {
                crate::StopKind::Block if s.config == self.config_digest => {
                    block = Some(Stop {
                        reason: s.reason.clone(),
                        line: s.line.clone(),
                        until: None,
                        until_unix_ms: None,
                    });
                }
                crate::StopKind::Block => dropped.push(format!(
                    "{} — lifted: the provider's server, hostnames or user agent changed since",
                    s.line
                )),
                crate::StopKind::Hold => match s.until_unix_ms {
                    Some(u) if u > now_ms => {
                        let left = Duration::from_millis(u - now_ms).min(HOLD);
                        hold = Some(Stop {
                            reason: s.reason.clone(),
                            line: s.line.clone(),
                            until: Some(Instant::now() + left),
                            until_unix_ms: Some(
                                u.min(now_ms.saturating_add(HOLD.as_millis() as u64)),
                            ),
                        });
                    }
                    _ => dropped.push(format!("{} — ended", s.line)),
                },
            }
        }
        let mut st = self.lock();
        if block.is_some() || hold.is_some() {
            warn!(group = %self.group, server = %self.element, block = block.is_some(), hold = hold.is_some(), "DNS provider stops taken back from the store: nothing is sent until they are lifted");
        }
        st.block = block;
        st.hold = hold;
        dropped
    }
}

/// The digest a block is earned with: the provider's settings in the
/// configuration (kind, URL, hostnames, the configured user agent — not
/// the default one, which names warden's version, so an upgrade keeps the
/// block). Nothing from the credentials, user or password: the store
/// never holds anything derived from a secret, so a block earned by wrong
/// credentials outlives a restart until `warden clear`.
pub(super) fn config_digest(
    flavor: Flavor,
    url: &Url,
    names: &[String],
    configured_user_agent: Option<&str>,
) -> String {
    let text = format!(
        "warden dyndns stop v2\n{}\n{}\n{}\n{}\n",
        flavor.kind(),
        url.as_str(),
        names.join(","),
        configured_user_agent.map(str::trim).unwrap_or("(default)")
    );
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    data_encoding::HEXLOWER.encode(d.as_ref())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `HH:MM UTC`, `after` from now on the wall clock (for people reading alerts).
pub(super) fn wall_clock_after(after: Duration) -> String {
    let secs = SystemTime::now()
        .checked_add(after)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:02}:{:02} UTC", (secs / 3600) % 24, (secs / 60) % 60)
}
