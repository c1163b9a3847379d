//! The orchestrator's answers to an agent: [`ReportResponse`] to a report
//! or a command poll, [`StreamAnswer`] on the report stream
//! ([`REPORT_STREAM_PATH`]), with the commands it took back ([`Withdrawn`]).

use serde::{Deserialize, Serialize};

use super::Command;

/// The orchestrator's answer to a report or a command poll.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReportResponse {
    /// Commands to run (the agent ignores ids it already ran or is running).
    #[serde(default)]
    pub commands: Vec<Command>,
    /// Outcome ids the orchestrator has recorded; the agent stops resending them.
    #[serde(default)]
    pub acked: Vec<String>,
    /// The current epoch of every group of the agent's site: the agent keeps
    /// the highest it has seen and refuses commands below it.
    #[serde(default)]
    pub epochs: std::collections::BTreeMap<String, u64>,
    /// Commands handed to this site and taken back since (their runbook
    /// ended, the epoch moved on, a demote superseded them): the agent
    /// does not start one it still holds, and reports it not run. Only
    /// the leader sends them; recent ones only (see the orchestrator's
    /// ledger).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<Withdrawn>,
    /// The leader term the answer was made under: with several
    /// orchestrators, the etcd revision at which the answering leader
    /// won its lease; 0 with a single orchestrator (no other leader's
    /// answer can exist). The agent keeps, per command it holds, the
    /// highest term that handed it out, and takes a withdrawal of it only
    /// from that term or a later one: a deposed leader's answer delayed in
    /// transit cannot take back a command a later leader handed out again;
    /// and a command a withdrawal took back is asked anew only by an
    /// answer of that withdrawal's term or a later one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub term: u64,
    /// The etcd cluster `term` belongs to (the identity of the orchestrators' data in it, `P identity`): terms start
    /// over in a new cluster, so the agent compares terms of one cluster
    /// only, refuses an answer of a cluster it left, and takes one of a
    /// cluster it never heard, whatever its term (see
    /// [`crate::cluster`]). Absent: no cluster — a single orchestrator, or
    /// an older orchestrator (then judged by `term` alone, as before); an
    /// older agent ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<u64>,
    /// The answer's place among the answers of the orchestrator process
    /// that made it (see [`AnswerOrder`]): two answers of one leader may
    /// arrive out of order across the report stream and the command
    /// long-poll, and the agent takes no command or withdrawal from one
    /// older than the newest it took from that process. Absent from an
    /// older orchestrator (its answers are taken as they come, as before)
    /// and from an answer that hands out nothing (a follower's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<AnswerOrder>,
}

/// Where an answer stands among its maker's: `maker` a random tag the
/// orchestrator process draws at start (a restarted one is a new maker,
/// never judged older than its previous life), `n` strictly increasing
/// over that process's answers, given under the lock its answers are
/// made under (a higher `n` saw the ledger later). Only answers of one
/// maker are compared; the term rules order those of different makers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AnswerOrder {
    pub maker: String,
    pub n: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A command taken back by the orchestrator, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Withdrawn {
    pub id: String,
    /// "runbook 12 ended", "superseded by web:5:demote", ...
    pub why: String,
}

/// The report stream: `GET` with the agent's bearer token, upgraded to a
/// WebSocket. Each text message from the agent is one [`AgentReport`](super::AgentReport),
/// taken exactly as a `POST /v1/reports` would be; the orchestrator answers
/// with a [`StreamAnswer`] only when there is news (commands, acked
/// outcomes, epochs other than the last ones it sent on this stream, or a
/// refusal), so a steady agent costs one message a report and none back.
/// The agent's WebSocket pings tell it the stream is alive.
pub const REPORT_STREAM_PATH: &str = "/v1/reports/stream";

/// What the orchestrator sends on a report stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamAnswer {
    /// The answer to the report `seq`, as `POST /v1/reports` would have it.
    Answer {
        seq: u64,
        #[serde(flatten)]
        answer: ReportResponse,
    },
    /// The report `seq` was refused with the HTTP status a `POST` would
    /// have had (400 malformed, 403 another site's, 409 replayed); the
    /// stream stays open.
    Refused {
        seq: u64,
        status: u16,
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wire compatibility both ways: an older orchestrator's answer (no
    /// `order`) reads as unplaced, and an answer without a place is
    /// written as before; an answer with one keeps it on the report
    /// stream (flattened into `StreamAnswer`), and an older agent, which
    /// knows no `order`, still reads it.
    #[test]
    fn an_answers_place_is_optional_both_ways() {
        let old: ReportResponse =
            serde_json::from_str(r#"{"commands":[],"acked":["a"],"term":7}"#).unwrap();
        assert_eq!(old.order, None);
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"commands":[],"acked":["a"],"epochs":{},"term":7}"#
        );
        let placed = StreamAnswer::Answer {
            seq: 3,
            answer: ReportResponse {
                order: Some(AnswerOrder {
                    maker: "5f0c".into(),
                    n: 42,
                }),
                ..old
            },
        };
        let text = serde_json::to_string(&placed).unwrap();
        assert!(
            text.contains(r#""order":{"maker":"5f0c","n":42}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<StreamAnswer>(&text).unwrap(), placed);
        /// What an older agent reads an answer into.
        #[derive(Deserialize)]
        struct Older {
            acked: Vec<String>,
            term: u64,
        }
        let StreamAnswer::Answer { answer, .. } = placed else {
            unreachable!()
        };
        let older: Older = serde_json::from_str(&serde_json::to_string(&answer).unwrap()).unwrap();
        assert_eq!((older.acked, older.term), (vec!["a".to_string()], 7));
    }

    /// An answer's etcd cluster: absent from an older or a single
    /// orchestrator (read as `None`, written as before); kept when there,
    /// and an older agent still reads the answer. A report's
    /// `taken_cluster` tells `null` (no cluster kept) from absent (an
    /// agent that knows no clusters).
    #[test]
    fn an_answers_cluster_is_optional_both_ways() {
        let old: ReportResponse = serde_json::from_str(r#"{"term":7}"#).unwrap();
        assert_eq!(old.cluster, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("cluster"));
        let new = ReportResponse {
            cluster: Some(0x1c2f),
            ..old
        };
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""cluster":7215"#), "{text}");
        #[derive(Deserialize)]
        struct Older {
            term: u64,
        }
        assert_eq!(serde_json::from_str::<Older>(&text).unwrap().term, 7);
        let taken = |json: &str| {
            serde_json::from_str::<crate::agent::AgentReport>(json)
                .map(|r| r.taken_cluster)
                .unwrap()
        };
        let report = r#"{"site":"b","seq":1,"sent_at_ms":0}"#;
        assert_eq!(taken(report), None);
        let with = |v: &str| report.replace("}", &format!(r#","taken_cluster":{v}}}"#));
        assert_eq!(taken(&with("null")), Some(None));
        assert_eq!(taken(&with("9")), Some(Some(9)));
    }
}
