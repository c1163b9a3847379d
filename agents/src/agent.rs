//! The agent process: [`AgentSettings`] taken from the config, and [`run`],
//! which reports to the orchestrator and carries out its commands.
//!
//! Four tasks share one `Shared` and stop on the shutdown token:
//! - **report** ([`report`]): every interval, run the local checks (each bounded by the
//!   interval), then hand an [`AgentReport`](crate::wire::AgentReport) with the latest peer views to
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

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::authority::Authority;
use crate::book::CommandBook;
use crate::checks::CheckSet;
use crate::error::AgentError;
use crate::peers::PeerViews;
use crate::settings::with_timeout_at_most;
pub use crate::settings::{AgentSettings, PeerEndpoints};
use crate::state_lock::StateLock;

mod execute;
mod fit;
mod pages;
mod poll;
mod report;
mod shared;
mod stream;

use report::{report_loop, Link};
use shared::{Shared, Target};

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
    // Every peer probe runs at once (a hub site probes many primaries,
    // each name raced over its addresses): with the usual soft limit of
    // 1024 descriptors, "too many open files" would read as peers failing
    // and make this site a false outside witness.
    if let Some(n) = warden_serve::raise_fd_limit() {
        debug!(fd_limit = n, "open-file limit");
    }
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

    // The orchestrators' names are looked up without the blocking pool,
    // which the volume and journal looks use (see `SystemNames`).
    let mut builder = reqwest::Client::builder()
        .connect_timeout(interval.max(Duration::from_secs(1)))
        .dns_resolver(Arc::new(warden_checks::SystemNames::new()));
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
        // before any command: a header change the previous process had
        // not landed (a promote's fence) is retried again
        r.resume_header_changes();
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
