//! Bounded failback retries (issue 11): a failback that is rolled back is
//! retried with a growing back-off; one that fails twice in a row for the
//! same reason stops retrying, keeps users where they are and raises an
//! alert until the operator acts (`warden failback GROUP` or `warden clear
//! GROUP`). Each attempt takes an epoch, so the bound also ends epoch churn.

use std::time::Duration;

use crate::model::{GroupState, Runbook, StepStatus};

/// The longest back-off between automatic failback attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// The failure of `rb` as a comparable reason: the first failed step and its
/// detail, with numbers (timings, counts, epochs) blanked out.
pub fn failure_reason(rb: &Runbook) -> String {
    let Some(step) = rb.steps.iter().find(|s| s.status == StepStatus::Failed) else {
        return "failed without a failed step".to_string();
    };
    let mut out = format!("{:?}: ", step.name).to_lowercase();
    let mut in_digits = false;
    for c in step.detail.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

/// What to do after an aborted failback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Try again, not before this delay.
    Retry(Duration),
    /// Stop: the same failure twice; the alert text.
    Stop(String),
}

/// Record an aborted failback in `g` and decide whether to try again.
pub fn on_aborted(g: &mut GroupState, rb: &Runbook, base: Duration) -> After {
    let reason = failure_reason(rb);
    g.failback_aborts = g.failback_aborts.saturating_add(1);
    let same = g.last_failback_failure.as_deref() == Some(reason.as_str());
    g.last_failback_failure = Some(reason.clone());
    if same {
        let msg = format!(
            "failback to {} failed twice in a row for the same reason ({reason}): automatic failback stopped, \
             users stay on {}; fix the cause, then `warden failback {}` (or `warden clear {}` to let it retry)",
            rb.to, rb.from, g.name, g.name
        );
        g.failback_blocked = Some(msg.clone());
        return After::Stop(msg);
    }
    let factor = 1u32 << g.failback_aborts.saturating_sub(1).min(8);
    After::Retry((base * factor).min(BACKOFF_MAX))
}

/// A failback succeeded, or the operator took over: start afresh.
pub fn reset(g: &mut GroupState) {
    g.failback_aborts = 0;
    g.last_failback_failure = None;
    g.failback_blocked = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunbookKind, StepName, StepRecord};

    fn group() -> GroupState {
        GroupState {
            epoch: 2,
            ..GroupState::fresh("web", "b")
        }
    }

    fn failed(detail: &str) -> Runbook {
        let mut rb = Runbook::new(
            1,
            "web",
            RunbookKind::Failback,
            "b",
            "a",
            3,
            "detector",
            0,
            0,
        );
        rb.steps.push(StepRecord {
            name: StepName::Resync,
            status: StepStatus::Failed,
            started_unix_ms: None,
            finished_unix_ms: None,
            attempts: 1,
            detail: detail.into(),
            unknown: Default::default(),
        });
        rb
    }

    #[test]
    fn the_same_failure_twice_stops_the_retries() {
        let mut g = group();
        let base = Duration::from_secs(5);
        let a = on_aborted(&mut g, &failed("cannot quarantine x: took 120 ms"), base);
        assert_eq!(a, After::Retry(base));
        let b = on_aborted(&mut g, &failed("cannot quarantine x: took 95 ms"), base);
        match b {
            After::Stop(m) => assert!(
                m.contains("failed twice") && m.contains("users stay on b"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(g.failback_blocked.is_some());
        reset(&mut g);
        assert!(g.failback_blocked.is_none() && g.failback_aborts == 0);
    }

    #[test]
    fn different_failures_back_off() {
        let mut g = group();
        let base = Duration::from_secs(5);
        assert_eq!(
            on_aborted(&mut g, &failed("peer down"), base),
            After::Retry(base)
        );
        assert_eq!(
            on_aborted(&mut g, &failed("disk full"), base),
            After::Retry(base * 2)
        );
        assert_eq!(
            on_aborted(&mut g, &failed("peer down"), base),
            After::Retry(base * 4)
        );
        for _ in 0..20 {
            g.last_failback_failure = None;
            on_aborted(&mut g, &failed("x"), base);
        }
        assert_eq!(
            on_aborted(&mut g, &failed("y"), base),
            After::Retry(BACKOFF_MAX)
        );
    }
}
