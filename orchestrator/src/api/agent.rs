//! What agents call over HTTP: `POST /v1/reports` (and `take_report`, the
//! one way a report is read, checked and taken, also for the report
//! streams) and the command long-poll `GET /v1/agents/commands`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::time::Instant;
use warden_proto::agent::{AgentReport, ReportResponse};

use super::auth::AgentSite;
use super::{decode_json, err, S};
use crate::service::Shared;

pub(super) async fn report(State(s): S, AgentSite(site): AgentSite, body: Bytes) -> Response {
    match take_report(&s, &site, &body) {
        Ok((_, resp)) => Json(resp).into_response(),
        Err(r) => err(r.status, r.error),
    }
}

/// A report refused: the status a `POST /v1/reports` answers with, and why.
pub(crate) struct Refusal {
    /// The report's `seq` (0 when it could not be read).
    pub seq: u64,
    pub status: StatusCode,
    pub error: String,
}

/// One agent report, from `POST /v1/reports` or a report stream: read,
/// checked against the caller's site, its size and the replay guard, then
/// taken (see `Shared::accept_report`). Returns the report's seq and the
/// answer.
pub(crate) fn take_report(
    s: &Shared,
    site: &str,
    body: &[u8],
) -> Result<(u64, ReportResponse), Refusal> {
    let t0 = Instant::now();
    let refuse = |seq: u64, status: StatusCode, error: String| {
        s.metrics().rejected.inc();
        Err(Refusal { seq, status, error })
    };
    let rep: AgentReport = match decode_json(body) {
        Ok(r) => r,
        Err(why) => return refuse(0, StatusCode::BAD_REQUEST, why),
    };
    let seq = rep.seq;
    if rep.site != site {
        return refuse(
            seq,
            StatusCode::FORBIDDEN,
            format!(
                "the token of site {site:?} may only report for {site:?}, not {:?}",
                rep.site
            ),
        );
    }
    if let Err(why) = s.report_lists_fit(&rep) {
        return refuse(seq, StatusCode::BAD_REQUEST, why);
    }
    if let Err(why) = s.admit_report_seq(&rep) {
        return refuse(seq, StatusCode::CONFLICT, why);
    }
    let resp: ReportResponse = s.accept_report(rep);
    s.metrics().reports.inc();
    s.metrics()
        .report_seconds
        .observe(t0.elapsed().as_secs_f64());
    Ok((seq, resp))
}

#[derive(Deserialize)]
pub(super) struct PollQuery {
    #[serde(default)]
    wait_ms: Option<u64>,
}

pub(super) async fn poll_commands(
    State(s): S,
    AgentSite(site): AgentSite,
    q: Result<Query<PollQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return err(
            StatusCode::BAD_REQUEST,
            "wait_ms must be an integer number of milliseconds",
        );
    };
    let Some(_slot) = s.poll_slot(&site) else {
        s.metrics().rejected.inc();
        return err(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{site} already has {} command polls open; an agent needs one",
                crate::service::polls::POLLS_PER_SITE
            ),
        );
    };
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0)).min(s.config().orchestrator.long_poll);
    let deadline = Instant::now() + wait;
    let mut rx = s.command_ticks();
    loop {
        // Only a command this site's polls have not handed out yet ends the
        // wait early: one it already runs would end every poll at once.
        let (answer, fresh) = s.poll_answer(&site);
        if fresh || Instant::now() >= deadline {
            return Json(answer).into_response();
        }
        tokio::select! {
            r = tokio::time::timeout_at(deadline, rx.changed()) => { if matches!(r, Ok(Err(_))) { return err(StatusCode::SERVICE_UNAVAILABLE, "shutting down"); } }
            _ = s.shutdown_token().cancelled() => return err(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        }
    }
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
