//! A report kept within the orchestrator's body limit
//! (`orchestrator.max_body_bytes`, the same config the agent reads): the
//! command outcomes not yet acknowledged are the part of a report that can
//! grow (each up to a hook's kept output, a demote's journal), so when the
//! whole report would be over the limit it carries the oldest outcomes that
//! fit and the others wait for the next reports (they stay unacknowledged
//! until the orchestrator has them). Before, a report over the limit was
//! refused (413, or the report stream closed), every later one too since
//! nothing was acknowledged any more: the site's agent fell silent for
//! good and its outcomes never arrived.

use crate::wire::AgentReport;

/// `report` as JSON within `limit` bytes when its outcomes can be cut to
/// fit: the body, and how many outcomes were left out of it (0: the
/// whole report). A report over the limit without any outcome is returned
/// whole (nothing of it can wait; the orchestrator will say why it
/// refuses it).
pub(super) fn encode_within(
    mut report: AgentReport,
    limit: usize,
) -> Result<(String, usize), serde_json::Error> {
    let body = serde_json::to_string(&report)?;
    if body.len() <= limit || report.outcomes.is_empty() {
        return Ok((body, 0));
    }
    let outcomes = std::mem::take(&mut report.outcomes);
    let total = outcomes.len();
    let base = serde_json::to_string(&report)?.len();
    // Oldest first, each with the comma that separates it.
    let mut used = base;
    let mut keep = 0;
    for o in &outcomes {
        let size = serde_json::to_string(o)?.len() + 1;
        if used + size > limit {
            break;
        }
        used += size;
        keep += 1;
    }
    report.outcomes = outcomes;
    report.outcomes.truncate(keep);
    loop {
        let body = serde_json::to_string(&report)?;
        if body.len() <= limit || report.outcomes.is_empty() {
            return Ok((body, total - report.outcomes.len()));
        }
        report.outcomes.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CommandOutcome;

    fn report(outcomes: usize, detail: usize) -> AgentReport {
        AgentReport {
            site: "a".into(),
            seq: 1,
            boot: "boot".into(),
            started_unix_ms: 0,
            checks: Vec::new(),
            peers: Vec::new(),
            outcomes: (0..outcomes)
                .map(|i| CommandOutcome::failed(&format!("web:{i}:promote"), "x".repeat(detail)))
                .collect(),
            replication: Vec::new(),
            authority: Vec::new(),
        }
    }

    /// 256 outcomes of 2 KiB (a hook's kept output each) make a report of
    /// over 512 KiB: it goes out within 64 KiB, with the oldest outcomes,
    /// and the rest follow in later reports as the first are acknowledged.
    #[test]
    fn outcomes_over_the_limit_wait_for_later_reports_oldest_first() {
        let limit = 64 * 1024;
        let mut pending = report(256, 2048).outcomes;
        let mut delivered = Vec::new();
        for _ in 0..64 {
            if pending.is_empty() {
                break;
            }
            let mut r = report(0, 0);
            r.outcomes = pending.clone();
            let (body, left_out) = encode_within(r, limit).expect("encodes");
            assert!(body.len() <= limit, "{} bytes", body.len());
            let sent: AgentReport = serde_json::from_str(&body).expect("a report");
            assert!(!sent.outcomes.is_empty(), "no progress");
            assert_eq!(sent.outcomes.len() + left_out, pending.len());
            assert_eq!(sent.outcomes[0].id, pending[0].id, "oldest first");
            // The orchestrator acknowledges what it got.
            pending.drain(..sent.outcomes.len());
            delivered.extend(sent.outcomes.into_iter().map(|o| o.id));
        }
        assert!(pending.is_empty(), "{} never sent", pending.len());
        let want: Vec<String> = (0..256).map(|i| format!("web:{i}:promote")).collect();
        assert_eq!(delivered, want);
    }

    /// A report within the limit goes whole; one over it without outcomes
    /// too (nothing in it can wait).
    #[test]
    fn a_report_that_fits_or_has_nothing_to_cut_goes_whole() {
        let (body, left_out) = encode_within(report(3, 100), 64 * 1024).unwrap();
        assert_eq!(left_out, 0);
        assert_eq!(body, serde_json::to_string(&report(3, 100)).unwrap());
        let (body, left_out) = encode_within(report(0, 0), 10).unwrap();
        assert_eq!(left_out, 0);
        assert!(body.len() > 10);
    }
}
