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
//!
//! An outcome too large to go even with nothing else but the report goes
//! cut ([`cut_to_travel`]: without a demote's journal names — the final
//! pass then covers the whole tree — nor a promote's checks, its texts
//! shortened), and one that does not fit beside the others now waits
//! without holding back those after it that do. Before, such an outcome
//! was never sent, nor was any outcome after it.

use crate::wire::{AgentReport, CommandOutcome};

/// The longest `detail` of an outcome cut to travel, in bytes.
const CUT_DETAIL: usize = 1024;
/// The most hook results of an outcome cut to travel, and the longest
/// detail of each.
const CUT_HOOKS: usize = 16;
const CUT_HOOK_DETAIL: usize = 256;

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
    for o in outcomes {
        let mut size = serde_json::to_string(&o)?.len() + 1;
        let o = if base + size > limit {
            let cut = cut_to_travel(o);
            size = serde_json::to_string(&cut)?.len() + 1;
            cut
        } else {
            o
        };
        if used + size <= limit {
            used += size;
            report.outcomes.push(o);
        }
    }
    loop {
        let body = serde_json::to_string(&report)?;
        if body.len() <= limit || report.outcomes.is_empty() {
            return Ok((body, total - report.outcomes.len()));
        }
        report.outcomes.pop();
    }
}

/// `o` as it can travel when it would not fit in any report: what it
/// says (ok or not, which hooks ran, a journal's mark) without what can
/// be done without — a demote's journal names (the orchestrator then
/// makes a full final pass), a promote's checks (it waits for a report's)
/// — and with its texts shortened.
fn cut_to_travel(mut o: CommandOutcome) -> CommandOutcome {
    o.checks = None;
    if let Some(j) = &mut o.journal {
        if let Some(names) = j.names.take() {
            j.note = format!(
                "its {} changed names did not fit in a report within orchestrator.max_body_bytes",
                names.len()
            );
        }
    }
    cut(&mut o.detail, CUT_DETAIL);
    o.hooks.truncate(CUT_HOOKS);
    for h in &mut o.hooks {
        cut(&mut h.name, CUT_HOOK_DETAIL);
        cut(&mut h.detail, CUT_HOOK_DETAIL);
    }
    o
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
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
            taken_term: None,
            taken_cluster: None,
            left_clusters: vec![],
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

    /// A failback's demote whose journal names fill a report on their own
    /// (24 KiB of names counted escaped, about twice that in JSON when the
    /// names hold backslashes) beside a divergent page: it goes without the
    /// names (the final pass then covers the whole tree) instead of
    /// waiting for ever — and holding back every outcome after it.
    #[test]
    fn an_outcome_that_cannot_fit_goes_cut_and_holds_nothing_back() {
        let limit = 64 * 1024;
        let mut r = report(0, 0);
        r.checks = vec![crate::wire::CheckResult {
            name: "page".into(),
            ok: true,
            critical: false,
            // What else a report may carry (a divergent page and more).
            detail: "d".repeat(28 * 1024),
            elapsed_ms: 1,
        }];
        let mut demote = CommandOutcome::failed("web:7:demote", "1 demote hook succeeded");
        demote.ok = true;
        demote.journal = Some(crate::wire::JournalReport {
            mark: crate::wire::JournalMark { id: 1, seq: 2 },
            // As a journal counts them (escaped, 3 bytes more each): 24,000
            // bytes, within the 24 KiB it carries; in JSON 40,000.
            names: Some(
                (0..1000)
                    .map(|i| format!("{}{i:05}", "\\".repeat(16)))
                    .collect(),
            ),
            note: String::new(),
        });
        let later = CommandOutcome::failed("web:7:start_replication", "x");
        r.outcomes = vec![demote, later];
        let (body, left_out) = encode_within(r, limit).unwrap();
        assert!(body.len() <= limit, "{} bytes", body.len());
        let sent: AgentReport = serde_json::from_str(&body).unwrap();
        assert_eq!(
            left_out,
            0,
            "sent: {:?}",
            sent.outcomes.iter().map(|o| &o.id).collect::<Vec<_>>()
        );
        let j = sent.outcomes[0]
            .journal
            .as_ref()
            .expect("the journal's mark");
        assert_eq!((j.mark.id, j.mark.seq), (1, 2));
        assert!(
            j.names.is_none() && j.note.contains("report"),
            "{} names, note {:?}",
            j.names.as_ref().map_or(0, Vec::len),
            j.note
        );
        assert!(sent.outcomes[0].ok);
        assert_eq!(sent.outcomes[1].id, "web:7:start_replication");
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
