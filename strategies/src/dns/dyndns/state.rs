//! What the provider remembers between updates and what it makes of an
//! answer: per hostname the value the server last confirmed (so the same
//! address is not sent again, as No-IP asks), the highest confirmed epoch,
//! the recent `nochg` answers (a doubt of the authoritative servers does not
//! resend what the server just said it holds), the recent answers naming
//! other addresses than the ones sent (not sent again for 30 minutes), and
//! the pause after failed updates. An answer's fatal or holding codes end
//! in a stop (`blocks.rs`).

use super::*;

use super::blocks::{wall_clock_after, Stop};

use std::collections::BTreeMap;
use std::sync::MutexGuard;

use tokio::time::Instant;
use tracing::warn;

/// The first pause after a failed update; each failure of the same update
/// in a row doubles it, up to [`FAILED_PAUSE_MAX`].
pub const FAILED_PAUSE: Duration = Duration::from_secs(5);
/// The longest pause after failed updates (ddclient's `min-error-interval`).
pub const FAILED_PAUSE_MAX: Duration = Duration::from_secs(5 * 60);

/// An update that failed without a return code, and its pause.
#[derive(Debug, Clone)]
pub(super) struct Failed {
    /// The value it was to set.
    value: RecordValue,
    /// Failures of this update in a row.
    count: u32,
    /// Not sent again before this.
    until: Instant,
    /// The last error, said again while the pause lasts.
    why: String,
    /// Whether it was transient ([`StrategyError::Unreachable`]) or not
    /// understood ([`StrategyError::Rejected`]): the refusal is the same kind.
    transient: bool,
}

/// What the provider remembers (behind `DyndnsProvider::state`).
#[derive(Debug, Default)]
pub(super) struct State {
    /// Per hostname: the value the server last confirmed (`good`/`nochg`).
    pub(super) confirmed: BTreeMap<String, RecordValue>,
    /// Per hostname: the value the server last answered `nochg` for, and
    /// when (see [`DyndnsProvider::doubt`]).
    pub(super) nochg: BTreeMap<String, (RecordValue, Instant)>,
    /// Per hostname: a value sent that the server answered with other
    /// addresses (its answer line, and when): not sent again for [`HOLD`]
    /// (see [`DyndnsProvider::refused_again`]).
    pub(super) mismatch: BTreeMap<String, (RecordValue, String, Instant)>,
    /// The highest epoch whose publish every hostname confirmed.
    pub(super) epoch: Epoch,
    /// The highest epoch of an update that was sent, whatever its answer
    /// (a lost answer may hide an applied update): older orders are refused.
    pub(super) sent_epoch: Epoch,
    /// The last update that failed without a return code (no answer, a
    /// 5xx, an answer that is none): not sent again before its pause ends.
    pub(super) failed: Option<Failed>,
    /// A fatal answer: nothing is sent until `clear()` or a reload.
    pub(super) block: Option<Stop>,
    /// A `911`/`dnserr`: nothing is sent until `until` (or `clear()`).
    pub(super) hold: Option<Stop>,
}

impl DyndnsProvider {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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

    /// An update of `hosts` left and its answer does not say what the
    /// server did (none came, an HTTP error, text that is no answer): it
    /// may have been applied, so what the server confirmed for them before
    /// is no longer known, and the next update of any value is sent (the
    /// old value too: a rollback's route back must reach the server, not
    /// be skipped as "already confirmed" while the name holds the new one).
    /// Returns `e`.
    pub(super) fn unanswered(&self, hosts: &[String], e: StrategyError) -> StrategyError {
        let mut st = self.lock();
        for h in hosts {
            st.confirmed.remove(h);
            st.nochg.remove(h);
        }
        e
    }

    /// The authoritative servers show `names` holding something else than
    /// what the server confirmed: send for them again at the next publish
    /// — unless the server answered `nochg` for that very value less than
    /// [`HOLD`] ago. Then the server holds it and the authoritative servers
    /// are behind it (or are not the provider's): sending again would earn
    /// the same needless `nochg` at every reconciliation pass (every few
    /// seconds), which No-IP answers by blocking the client. Returns the
    /// names whose doubt was not taken.
    pub(super) fn doubt(&self, names: &[String]) -> Vec<String> {
        let mut st = self.lock();
        let mut kept = Vec::new();
        for n in names {
            let answered_nochg = match (st.confirmed.get(n), st.nochg.get(n)) {
                (Some(v), Some((w, at))) => v == w && at.elapsed() < HOLD,
                _ => false,
            };
            if answered_nochg {
                kept.push(n.clone());
            } else {
                st.confirmed.remove(n);
            }
        }
        if !kept.is_empty() {
            debug!(group = %self.group, names = %kept.join(","), "the authoritative servers disagree with a recent `nochg`: not sent again before 30 minutes");
        }
        kept
    }

    /// An update of `pending` to `value` that the server answered with
    /// other addresses less than [`HOLD`] ago, for one of them: sending
    /// it again would earn the same answer (a server that ignores `myip`
    /// answers `nochg` with its own idea at every reconciliation pass, and
    /// No-IP blocks clients that cause needless updates). The error says
    /// what the server answered; `None`: nothing stands in the way.
    pub(super) fn refused_again(
        &self,
        st: &State,
        pending: &[String],
        value: &RecordValue,
    ) -> Option<StrategyError> {
        let seen: Vec<String> = pending
            .iter()
            .filter_map(|h| match st.mismatch.get(h) {
                Some((sent, said, at)) if sent == value && at.elapsed() < HOLD => {
                    Some(format!("{h}: {said}"))
                }
                _ => None,
            })
            .collect();
        (!seen.is_empty()).then(|| {
            self.rejected(format!(
                "not sent: the server answered an update to {value} with other addresses less than 30 minutes ago ({}), and the same update would earn the same answer (a needless update that gets the client blocked); fix groups.{}.dns.server (does it accept myip/myipv6?) and run `warden clear {}`, or wait (no request was sent)",
                seen.join("; "),
                self.group,
                self.group
            ))
        })
    }

    /// The same update failed without a return code less than its pause
    /// ago: a server that times out may still apply each request (its
    /// answer arriving after warden gave up), so sending it at every
    /// reconciliation pass (every few seconds) or runbook retry would earn
    /// a needless `nochg` each time, and a server in trouble gains nothing
    /// from the same request again. Refused without a request, as the
    /// error it had (transient stays transient: the runbook keeps trying
    /// until its step's deadline; an answer not understood stays a
    /// rejection). Another value is sent.
    pub(super) fn paused(&self, st: &State, value: &RecordValue) -> Option<StrategyError> {
        let f = st.failed.as_ref().filter(|f| f.value == *value)?;
        let left = f.until.checked_duration_since(Instant::now())?;
        let reason = format!(
            "the update to {value} is not sent again for {} s (no request was sent): it failed {} time{} in a row, last: {}; the pause doubles with each failure, up to 5 minutes, so a server in trouble is not sent the same update every few seconds",
            left.as_secs().max(1),
            f.count,
            if f.count == 1 { "" } else { "s" },
            f.why
        );
        Some(if f.transient {
            StrategyError::Unreachable {
                element: self.element.clone(),
                reason,
            }
        } else {
            self.rejected(reason)
        })
    }

    /// `warden clear`: the pause after failed updates ends (the server was
    /// fixed); the line saying so, if there was one.
    pub(super) fn lift_pause(&self, st: &mut State) -> Option<String> {
        st.failed.take().map(|f| {
            format!(
                "dns/{} group {} ({}): the update to {} may be sent again at once (paused after {} failure{})",
                self.flavor.kind(),
                self.group,
                self.element,
                f.value,
                f.count,
                if f.count == 1 { "" } else { "s" }
            )
        })
    }

    /// Remember how an update of `value` ended: a failure without a
    /// return code (transient or not understood) pauses that update;
    /// success forgets the pause. Blocks and holds keep their own stops.
    pub(super) fn note_outcome(&self, value: &RecordValue, r: &Result<(), StrategyError>) {
        let mut st = self.lock();
        match r {
            Ok(()) => st.failed = None,
            Err(
                StrategyError::Unreachable { reason, .. } | StrategyError::Rejected { reason, .. },
            ) => {
                let count = match &st.failed {
                    Some(f) if f.value == *value => f.count.saturating_add(1),
                    _ => 1,
                };
                let pause = FAILED_PAUSE
                    .saturating_mul(1u32 << (count - 1).min(10))
                    .min(FAILED_PAUSE_MAX);
                st.failed = Some(Failed {
                    value: *value,
                    count,
                    until: Instant::now() + pause,
                    why: reason.clone(),
                    transient: matches!(r, Err(StrategyError::Unreachable { .. })),
                });
            }
            Err(_) => {}
        }
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
                            st.mismatch.remove(h);
                            st.confirmed.insert(h.clone(), *value);
                            if l.code == Code::Nochg {
                                st.nochg.insert(h.clone(), (*value, Instant::now()));
                            } else {
                                st.nochg.remove(h);
                            }
                        } else {
                            st.nochg.remove(h);
                            st.confirmed.insert(h.clone(), got);
                            let said = format!("`{} {}`", l.code.as_str(), got);
                            mismatch.push(format!("{h}: {said} but {value} was sent"));
                            st.mismatch
                                .insert(h.clone(), (*value, said, Instant::now()));
                        }
                    }
                    Class::Fatal => {
                        st.confirmed.remove(h);
                        st.nochg.remove(h);
                        fatal.push((l.code, h));
                    }
                    Class::Hold => {
                        st.confirmed.remove(h);
                        st.nochg.remove(h);
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
            warn!(group = %self.group, server = %self.element, to = %value, "the update server set other addresses than the ones sent: the same update is not sent again for 30 minutes");
            return Err(self.rejected(format!(
                "the server set other addresses than the ones sent ({}); answer {}: does groups.{}.dns.server accept myip/myipv6? The same update is not sent again before {} (it would earn the same answer, a needless update that gets the client blocked); `warden clear {}` once the server is fixed",
                mismatch.join("; "),
                quote(body),
                self.group,
                wall_clock_after(HOLD),
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
