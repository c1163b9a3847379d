//! The state the agent's tasks share ([`Shared`]): the orchestrators
//! ([`Target`]), the command book, the authority; and what every task does
//! with it — an orchestrator's answer judged and booked
//! ([`Shared::handle`]), this round's report put together
//! ([`Shared::report`]), one call to an orchestrator and its answer read.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tracing::{debug, info};

use crate::authority::{Authority, Heard};
use crate::book::{CommandBook, Offer};
use crate::checks::{describe_http_error, CheckSet};
use crate::error::AgentError;
use crate::peers::PeerViews;
use crate::settings::AgentSettings;
use crate::wire::{AgentReport, ApiError, Command, ReportResponse};

use super::pages;

/// One orchestrator's endpoints.
pub(super) struct Target {
    pub(super) base: String,
    pub(super) reports_url: String,
    pub(super) commands_url: String,
}

/// State shared by the agent's tasks.
pub(super) struct Shared {
    pub(super) settings: AgentSettings,
    /// The site's checks with their schedules (each report runs those due).
    pub(super) checks: CheckSet,
    /// Highest epochs, roles, may-push: checked before every command, and
    /// by a start's background work (shared with the replication).
    pub(super) authority: Arc<Authority>,
    /// Every orchestrator: reports go to all; commands come from the leader
    /// (the others answer with none and ack nothing).
    pub(super) targets: Vec<Target>,
    pub(super) started_unix_ms: u64,
    /// This process's random id, sent with every report (see `AgentReport::boot`).
    pub(super) boot: String,
    /// Talks to the orchestrator (honours proxy settings).
    pub(super) orchestrator: reqwest::Client,
    /// Runs http checks and probes.
    pub(super) probe: crate::checks::ProbeClient,
    /// Dedup and outcome bookkeeping, written by all three tasks.
    pub(super) book: Mutex<CommandBook>,
    /// New commands for the executor (ids already marked active in `book`).
    pub(super) queue: mpsc::UnboundedSender<Command>,
    /// Wakes the report loop early when a command has finished.
    pub(super) finished: Notify,
    /// The latest probes of the peer sites (their own schedule; see [`crate::peers`]).
    pub(super) peer_views: PeerViews,
    /// Per group, why this site cannot be promoted now (see [`crate::volumes`]).
    pub(super) unfit: crate::volumes::Unfit,
    /// The hooks of the agent's previous process ended at start
    /// ([`crate::hook_groups`]): said in the next command's outcome.
    pub(super) leftovers: Mutex<Vec<String>>,
}

impl Shared {
    pub(super) fn book(&self) -> MutexGuard<'_, CommandBook> {
        // The book stays consistent even if a holder panicked: every method
        // completes its few updates without awaiting.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply an answer of orchestrator `target`: drop acked outcomes, take
    /// new commands. Returns how many commands were new. A deposed
    /// orchestrator's (a leader term below one taken here, see
    /// `authority::told`) counts for its acks only.
    pub(super) fn handle(
        &self,
        mut resp: ReportResponse,
        via: &'static str,
        target: usize,
    ) -> usize {
        let from = &self.targets[target].base;
        // The book is held from before the answer is judged until it is
        // booked: an answer judged before another channel's moved this site
        // to a new etcd cluster must not be booked after that move's reset
        // of the book's terms (`CommandBook::clusters_moved`).
        let mut book = self.book();
        if let Heard::Deposed { .. } = self.authority.answered(&resp, from) {
            resp.commands.clear();
            resp.withdrawn.clear();
        }
        if self.authority.take_cluster_left() {
            // The old cluster's terms rank below the new one's (`book`).
            book.clusters_moved();
        }
        let taken = book.answer(resp);
        if taken.stale {
            debug!(via, "answer made before the newest one taken from its orchestrator: only its acks and epochs count");
        }
        for w in &taken.recalled {
            info!(command = %w.id, why = %w.why, via, "command withdrawn by the orchestrator");
        }
        let mut new = 0;
        for (cmd, offer) in taken.offers {
            match offer {
                Offer::Run => {
                    info!(command = %cmd.id, kind = cmd.kind.as_str(), via, "command received");
                    new += 1;
                    let _ = self.queue.send(cmd);
                }
                Offer::Resend => {
                    debug!(command = %cmd.id, via, "command already finished; resending its outcome")
                }
                Offer::Ignore => {
                    debug!(command = %cmd.id, via, "command already queued or running")
                }
            }
        }
        new
    }

    /// This round's report: the checks run now, the latest peer views, the
    /// outcomes not yet acked, replication and authority, with the leader
    /// term taken (below which an answer's orders are refused here).
    pub(super) async fn report(&self, seq: u64) -> AgentReport {
        let checks = self.checks.run_due(&self.probe).await;
        let peers = self.peer_views.snapshot();
        AgentReport {
            site: self.settings.site.clone(),
            seq,
            started_unix_ms: self.started_unix_ms,
            boot: self.boot.clone(),
            checks,
            peers,
            outcomes: self.book().for_report(),
            replication: self
                .settings
                .replication
                .as_ref()
                .map(|r| r.status())
                .map(|statuses| pages::page_replication(statuses, seq))
                .unwrap_or_default(),
            authority: self.unfit.mark(self.authority.wire()),
            taken_term: Some(self.authority.term()),
            taken_cluster: Some(self.authority.cluster()),
            left_clusters: self.authority.left_clusters(),
        }
    }

    /// A report (already JSON) as `POST /v1/reports` to orchestrator `target`.
    pub(super) async fn post_report(
        &self,
        target: usize,
        body: &str,
    ) -> Result<ReportResponse, AgentError> {
        let req = self
            .orchestrator
            .post(&self.targets[target].reports_url)
            .timeout(self.settings.interval.max(Duration::from_secs(1)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        self.call(req).await
    }

    pub(super) async fn call(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<ReportResponse, AgentError> {
        let unreachable = |e: reqwest::Error| AgentError::Unreachable(describe_http_error(&e));
        let resp = req
            .bearer_auth(self.settings.token.expose())
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let message = match serde_json::from_slice::<ApiError>(&body) {
                Ok(e) => e.error,
                Err(_) => String::from_utf8_lossy(&body).chars().take(200).collect(),
            };
            return Err(AgentError::Rejected {
                status: status.as_u16(),
                message,
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ReportResponse::default());
        }
        serde_json::from_slice(&body).map_err(|e| AgentError::BadResponse(e.to_string()))
    }
}
