//! The agent process: [`AgentSettings`] taken from the config, and [`run`],
//! which reports to the orchestrator and carries out its commands.
//!
//! Four tasks share one `Shared` and stop on the shutdown token:
//! - **report**: every interval, run the local checks (each bounded by the
//!   interval), then hand an [`AgentReport`] with the latest peer views to
//!   one courier per orchestrator ([`stream`]: on a report stream, or as
//!   `POST {base}/v1/reports` where there is none). A command that finishes
//!   wakes it early so its outcome travels at once, and so does a peer view
//!   that changed verdict;
//! - **peers**: probe the peer sites every interval ([`crate::peers`]): a
//!   dead peer's probe timeout never delays a report;
//! - **poll** ([`poll`]): long-poll `GET {base}/v1/agents/commands?wait_ms=N` so that
//!   commands arrive well within one interval;
//! - **executor** ([`execute`]): run commands one at a time, in arrival order (a promote and
//!   a demote of the same site never overlap). A promote writes its role
//!   (`active`) to disk before anything else, so the rsync gate refuses new
//!   pushes into the site; then a pull into the site stops and rsync pushes
//!   still running into it end ([`crate::replication::Replication::promoted`]),
//!   and only then do its hooks open the site to users' writes.
//!
//! Commands from either channel go through one `CommandBook`, which makes
//! delivery idempotent by command id: an id queued or running is ignored, an
//! id already finished gets its stored outcome sent again, never a second
//! run. Outcomes travel with every report until the orchestrator lists them in
//! `acked`. A command the orchestrator lists as `withdrawn` while it still
//! waits here is not started: its outcome says so; handed out again later
//! (by the term that took it back or a later one), it runs. An answer
//! placed before the newest one taken from the same orchestrator process
//! (its `order`: the two channels may deliver them out of order) starts
//! and takes back nothing; its acks and epochs still count. An answer of
//! a leader term below the highest the agent has taken (a deposed
//! leader's, `authority::told`) counts for its acks only.
//!
//! One agent per state directory: `run` first takes the lock of the
//! site's `state_dir` (`crate::state_lock`), and a second agent of the
//! site refuses to start instead of running every order again.
//!
//! The agent only connects outward. When the orchestrator is unreachable it
//! logs one warning per change of cause, keeps checking, and retries: the
//! report loop on its own schedule, the poll loop with a backoff that never
//! exceeds the interval.
//!
//! On shutdown a running hook is killed (`kill_on_drop`); the orchestrator
//! will time the command out or ask again, and hooks are idempotent. An
//! agent killed outright (SIGKILL) cannot: its next process ends the hooks
//! it left running before it takes any command ([`crate::hook_groups`]),
//! and so everything else it ran and left running: rsync, replication
//! commands, command checks (`crate::leftovers`).
//! Said in the log, and in the outcome of the first command it finishes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::authority::{Authority, Heard};
use crate::book::{CommandBook, Offer};
use crate::checks::{describe_http_error, CheckSet};
use crate::error::AgentError;
use crate::peers::PeerViews;
use crate::settings::with_timeout_at_most;
pub use crate::settings::{AgentSettings, PeerEndpoints};
use crate::state_lock::StateLock;
use crate::wire::{AgentReport, ApiError, Command, ReportResponse};

mod execute;
mod fit;
mod pages;
mod poll;
mod stream;

/// How long the tasks get to stop after shutdown before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Run the agent until `shutdown` is cancelled.
///
/// Returns `Ok(())` after a clean shutdown; an error only for settings that
/// cannot work or a bug (a panicked task). Orchestrator outages are not
/// errors: they are logged and retried. A rustls crypto provider must be
/// installed before calling this (the binary does it).
pub async fn run(settings: AgentSettings, shutdown: CancellationToken) -> Result<(), AgentError> {
    settings.validate()?;
    let interval = settings.interval;
    // A slow check must not hold up the schedule beyond one interval.
    let mut settings = settings;
    for c in settings.checks.iter().filter(|c| c.timeout > interval) {
        warn!(check = %c.name, timeout = ?c.timeout, report_interval = ?interval, "check timeout is longer than the report interval: cut to it (a slow check must not hold up a report)");
    }
    settings.checks = settings
        .checks
        .iter()
        .map(|c| with_timeout_at_most(c, interval))
        .collect();
    for p in &mut settings.peers {
        p.endpoints = p
            .endpoints
            .iter()
            .map(|c| with_timeout_at_most(c, interval))
            .collect();
    }

    let mut builder =
        reqwest::Client::builder().connect_timeout(interval.max(Duration::from_secs(1)));
    if let Some(tls) = settings.tls.clone() {
        builder = builder.tls_backend_preconfigured(tls);
    }
    let orchestrator = builder.build().map_err(AgentError::Client)?;
    // Probes measure direct reachability of local services and peer
    // sites: no proxy, no redirect followed (see `probe_client`).
    let probe = crate::checks::probe_client().map_err(AgentError::Client)?;

    // One agent per state directory, for as long as this one runs: a
    // second would run every order again (see `state_lock`).
    let _state_lock = StateLock::acquire(&settings.state_dir, &settings.site)?;
    let authority = Arc::new(Authority::open(
        &settings.state_dir,
        &settings.site,
        &settings.groups,
    )?);
    // Until the orchestrator has said the groups' epochs, the epochs here
    // may be older than a failover made while this site was down or cut
    // off: the rsync gate takes no push meanwhile (`authority::told`).
    authority.untold();
    if let Some(r) = &settings.replication {
        r.attach_authority(authority.clone());
    }
    // Before any command is taken: a hook of this agent's previous process
    // (killed with SIGKILL) still running would fight the next command's.
    let mut leftovers = crate::hook_groups::end_leftovers(&settings.state_dir).await;
    // So would everything else it ran (`crate::leftovers`): a push into a
    // peer that may be promoted by now, a pull into this site, a
    // replication script, a check command.
    let held = crate::hook_groups::held_marks(&settings.state_dir);
    leftovers.extend(crate::leftovers::end_leftovers(&settings.state_dir, &held).await);
    let (queue, queued) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        authority,
        targets: settings
            .orchestrator_urls
            .iter()
            .map(|u| Target {
                base: u.clone(),
                reports_url: format!("{u}/v1/reports"),
                commands_url: format!("{u}/v1/agents/commands"),
            })
            .collect(),
        boot: format!("{:032x}", rand::random::<u128>()),
        started_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        checks: CheckSet::new(settings.checks.clone()).bound_to(&settings.state_dir),
        settings,
        orchestrator,
        probe,
        book: Mutex::new(CommandBook::default()),
        unfit: crate::volumes::Unfit::default(),
        queue,
        finished: Notify::new(),
        peer_views: PeerViews::default(),
        leftovers: Mutex::new(leftovers),
    });

    info!(
        site = %shared.settings.site,
        orchestrator = %shared.settings.orchestrator_urls.join(", "),
        interval = %humantime::format_duration(interval),
        checks = shared.settings.checks.len(),
        peers = shared.settings.peers.len(),
        "agent ready"
    );

    let replication = shared.settings.replication.clone();
    let token = shutdown.child_token();
    let mut tasks = JoinSet::new();
    tasks.spawn(report_loop(shared.clone(), token.clone()));
    if !shared.settings.peers.is_empty() {
        let (s, t) = (shared.clone(), token.clone());
        tasks.spawn(async move {
            s.peer_views
                .run(&s.settings.peers, &s.probe, s.settings.interval, t)
                .await
        });
    }
    for i in 0..shared.targets.len() {
        tasks.spawn(poll::poll_loop(shared.clone(), i, token.clone()));
    }
    tasks.spawn(crate::volumes::watch(
        shared.settings.state_dir.clone(),
        shared.settings.volumes.clone(),
        shared.settings.interval,
        shared.unfit.clone(),
        token.clone(),
    ));
    tasks.spawn(execute::execute(shared, queued, token.clone()));

    let mut result = Ok(());
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            Some(joined) = tasks.join_next() => {
                if let Err(e) = joined {
                    result = Err(AgentError::Task(e.to_string()));
                    break;
                }
            }
        }
    }
    token.cancel();
    if let Some(r) = &replication {
        r.shutdown().await;
    }
    let drain = async {
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                if result.is_ok() {
                    result = Err(AgentError::Task(e.to_string()));
                }
            }
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        warn!(grace = ?SHUTDOWN_GRACE, "agent tasks did not stop in time; aborting them");
        tasks.abort_all();
    }
    info!("agent stopped");
    result
}

/// One orchestrator's endpoints.
struct Target {
    base: String,
    reports_url: String,
    commands_url: String,
}

/// State shared by the agent's tasks.
struct Shared {
    settings: AgentSettings,
    /// The site's checks with their schedules (each report runs those due).
    checks: CheckSet,
    /// Highest epochs, roles, may-push: checked before every command, and
    /// by a start's background work (shared with the replication).
    authority: Arc<Authority>,
    /// Every orchestrator: reports go to all; commands come from the leader
    /// (the others answer with none and ack nothing).
    targets: Vec<Target>,
    started_unix_ms: u64,
    /// This process's random id, sent with every report (see `AgentReport::boot`).
    boot: String,
    /// Talks to the orchestrator (honours proxy settings).
    orchestrator: reqwest::Client,
    /// Runs http checks and probes.
    probe: crate::checks::ProbeClient,
    /// Dedup and outcome bookkeeping, written by all three tasks.
    book: Mutex<CommandBook>,
    /// New commands for the executor (ids already marked active in `book`).
    queue: mpsc::UnboundedSender<Command>,
    /// Wakes the report loop early when a command has finished.
    finished: Notify,
    /// The latest probes of the peer sites (their own schedule; see [`crate::peers`]).
    peer_views: PeerViews,
    /// Per group, why this site cannot be promoted now (see [`crate::volumes`]).
    unfit: crate::volumes::Unfit,
    /// The hooks of the agent's previous process ended at start
    /// ([`crate::hook_groups`]): said in the next command's outcome.
    leftovers: Mutex<Vec<String>>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, CommandBook> {
        // The book stays consistent even if a holder panicked: every method
        // completes its few updates without awaiting.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply an answer of orchestrator `target`: drop acked outcomes, take
    /// new commands. Returns how many commands were new. A deposed
    /// orchestrator's (a leader term below one taken here, see
    /// `authority::told`) counts for its acks only.
    fn handle(&self, mut resp: ReportResponse, via: &'static str, target: usize) -> usize {
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
    async fn report(&self, seq: u64) -> AgentReport {
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
    async fn post_report(&self, target: usize, body: &str) -> Result<ReportResponse, AgentError> {
        let req = self
            .orchestrator
            .post(&self.targets[target].reports_url)
            .timeout(self.settings.interval.max(Duration::from_secs(1)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        self.call(req).await
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<ReportResponse, AgentError> {
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

async fn report_loop(shared: Arc<Shared>, token: CancellationToken) {
    let mut ticker = tokio::time::interval(shared.settings.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // One courier per orchestrator, each with the latest report.
    let (latest, _) = watch::channel(None);
    let mut couriers = JoinSet::new();
    for i in 0..shared.targets.len() {
        couriers.spawn(stream::courier(
            shared.clone(),
            i,
            latest.subscribe(),
            token.clone(),
        ));
    }
    let mut seq = 0u64;
    // Outcomes left out of the last report to keep it within the limit.
    let mut waiting = 0usize;
    let limit = shared.settings.max_report_bytes;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
            _ = shared.finished.notified() => {}
            _ = shared.peer_views.changed.notified() => {}
        }
        seq += 1;
        let report = tokio::select! {
            _ = token.cancelled() => break,
            r = shared.report(seq) => r,
        };
        match fit::encode_within(report, limit) {
            Ok((body, left_out)) => {
                if left_out > 0 && waiting == 0 {
                    warn!(left_out, limit, "command outcomes left for later reports: all of them would make a report over orchestrator.max_body_bytes");
                } else if left_out == 0 && waiting > 0 {
                    info!("every command outcome fits in a report again");
                }
                waiting = left_out;
                latest.send_replace(Some(Arc::new(stream::Outgoing { seq, body })));
            }
            Err(e) => warn!(error = %e, "cannot encode a report"),
        }
    }
    while couriers.join_next().await.is_some() {}
}

/// Health of one connection to the orchestrator, so that failures are
/// logged once per change of cause rather than once per attempt.
struct Link {
    what: &'static str,
    url: String,
    /// The cause last logged; `None` while requests succeed.
    failing: Option<String>,
}

impl Link {
    fn new(what: &'static str, url: &str) -> Self {
        Link {
            what,
            url: url.to_string(),
            failing: None,
        }
    }

    fn down(&mut self, e: &AgentError) {
        let cause = e.to_string();
        if self.failing.as_deref() == Some(cause.as_str()) {
            debug!(request = self.what, url = %self.url, cause = %cause, "orchestrator request failed again");
        } else {
            warn!(request = self.what, url = %self.url, cause = %cause, "orchestrator request failed");
            self.failing = Some(cause);
        }
    }

    fn up(&mut self) {
        if self.failing.take().is_some() {
            info!(request = self.what, url = %self.url, "orchestrator reachable again");
        }
    }
}
