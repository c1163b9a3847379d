//! The `command` plan: replication of anything warden has no plan for (a
//! database, a message queue) through one user command per phase
//! (DESIGN.md §6). [`CommandPlan`] is both the [`Replicator`] (start, stop,
//! resync, verify, lag) and the [`Resyncer`] (pass = the resync command,
//! verify = the verify command) of its pair.
//!
//! - A command is an argv run without a shell or a string run with `sh -c`
//!   ([`CommandLine`]); stdin is closed; it runs in its own process group so
//!   that a timeout or a cancel kills it with everything it started.
//! - Its environment tells it what it serves: `WARDEN_GROUP`, `WARDEN_PEER`,
//!   `WARDEN_PHASE` (`start`, `stop`, `resync`, `verify`, `lag`), and the
//!   authority it acts under — `WARDEN_SITE` (this site) and `WARDEN_EPOCH`
//!   (the epoch of the order it serves: a start's, a resync's), for a
//!   script to state to its receiver, which can refuse an older one
//!   (as warden's own rsync gate does); a resync
//!   pass adds `WARDEN_DIVERGENT_POLICY`, a verify `WARDEN_EXCEPT` (the kept
//!   names, one a line).
//! - Its `WARDEN_RUN` mark is bound to the agent's `state_dir`: a command
//!   the agent's death left running, and what it started, is ended by
//!   its next process (`crate::leftovers`); what a command that ended
//!   started (a daemon of `start`) is kept.
//! - Exit 0 is success; anything else (or the timeout) is
//!   [`AgentError::ReplicationCommand`] with the tail of its stderr.
//! - `lag` (optional) prints the replication lag in milliseconds; it runs
//!   every `lag_interval` while replication runs and [`Replicator::lag`]
//!   returns its last number; without a lag command, before its first
//!   number and after a run that fails or prints none, the lag is unknown
//!   ([`Replicator::lag_known`]), never a 0 or a frozen old value.
//!
//! Every command must be idempotent: the orchestrator may repeat any phase
//! (after an agent restart, `stop` runs even if this process never started).

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::manifest::DivergentPolicy;
use super::{
    Difference, PassReport, Progress, Replicator, ResyncProgress, ResyncReport, Resyncer,
    VerifyReport,
};
use crate::AgentError;

/// Most bytes of a command's stderr quoted in an error.
const STDERR_TAIL: usize = 2048;
/// Most bytes of a command's stdout kept (the lag command prints one number).
const STDOUT_KEEP: usize = 64 * 1024;

/// One command: an argv (no shell) or a `sh -c` string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// Run with `sh -c`.
    Shell(String),
    /// Program and arguments, no shell.
    Argv(Vec<String>),
}

impl CommandLine {
    /// How errors name it.
    fn describe(&self) -> String {
        match self {
            CommandLine::Shell(s) => s.clone(),
            CommandLine::Argv(v) => v.join(" "),
        }
    }
}

/// The commands and their context. [`CommandSettings::new`] fills the defaults.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// `WARDEN_GROUP`.
    pub group: String,
    /// `WARDEN_PEER`: the peer site of this direction.
    pub peer: String,
    /// `WARDEN_SITE`: this site (unset when empty).
    pub site: String,
    /// `WARDEN_EPOCH`: the epoch of the order served (unset when `None`).
    pub epoch: Option<u64>,
    /// Starts continuous replication towards the peer.
    pub start: CommandLine,
    /// Stops it.
    pub stop: CommandLine,
    /// One full resync (also a failback pass).
    pub resync: CommandLine,
    /// Exit 0 when both sides are equal.
    pub verify: CommandLine,
    /// Prints the lag in milliseconds; `None`: lag is reported as zero.
    pub lag: Option<CommandLine>,
    /// Longest run of any command; it is killed past this.
    pub timeout: Duration,
    /// The agent's `state_dir`, which every command's mark is bound to
    /// (`crate::leftovers`: the agent's next process ends one its death
    /// left running); `None`: unbound.
    pub state_dir: Option<std::path::PathBuf>,
    /// How often the lag command runs while replication runs.
    pub lag_interval: Duration,
}

impl CommandSettings {
    /// Settings with the defaults: no lag command, 10 min timeout, lag every 5 s.
    pub fn new(
        group: impl Into<String>,
        peer: impl Into<String>,
        start: CommandLine,
        stop: CommandLine,
        resync: CommandLine,
        verify: CommandLine,
    ) -> Self {
        CommandSettings {
            group: group.into(),
            peer: peer.into(),
            site: String::new(),
            epoch: None,
            start,
            stop,
            resync,
            verify,
            lag: None,
            timeout: Duration::from_secs(600),
            state_dir: None,
            lag_interval: Duration::from_secs(5),
        }
    }
}

/// The `command` plan. See the module docs.
pub struct CommandPlan {
    settings: Arc<CommandSettings>,
    /// The last lag the lag command printed, ms (shared with the poller);
    /// [`LAG_UNKNOWN`] before its first answer, after a failed one and
    /// without a lag command.
    lag_ms: Arc<AtomicU64>,
    /// Why the lag command's last run told no lag (shared with the poller).
    lag_failing: Arc<std::sync::Mutex<Option<String>>>,
    /// The lag poller (a token alone when there is no lag command).
    running: crate::replicate::task::TaskSlot,
}

impl CommandPlan {
    /// A stopped plan; nothing runs until a call.
    pub fn new(settings: CommandSettings) -> Self {
        CommandPlan {
            settings: Arc::new(settings),
            lag_ms: Arc::new(AtomicU64::new(LAG_UNKNOWN)),
            lag_failing: Arc::default(),
            running: Default::default(),
        }
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &CommandSettings {
        &self.settings
    }
}

impl Drop for CommandPlan {
    fn drop(&mut self) {
        self.running.cancel_now();
    }
}

/// Runs `cmd` for `phase` with the WARDEN_* environment plus `extra`; its
/// stdout on success, [`AgentError::ReplicationCommand`] otherwise.
async fn run(
    s: &CommandSettings,
    phase: &str,
    cmd: &CommandLine,
    extra: &[(&str, String)],
    cancel: &CancellationToken,
) -> Result<String, AgentError> {
    let started = Instant::now();
    let fail = |detail: String| AgentError::ReplicationCommand {
        phase: phase.into(),
        command: cmd.describe(),
        detail,
    };
    let mut c = match cmd {
        CommandLine::Shell(line) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(line);
            c
        }
        CommandLine::Argv(argv) => {
            let Some((program, args)) = argv.split_first() else {
                return Err(fail("empty command".into()));
            };
            let mut c = tokio::process::Command::new(program);
            c.args(args);
            c
        }
    };
    // The run's mark: what the command moves out of its process group (a
    // `setsid`, a daemon's double fork) is found by it and killed with the
    // group when the run is cut off (see `warden_config::run_mark`); bound
    // to the state directory, by it the agent's next process ends what
    // this one's death left running (`crate::leftovers`).
    let mark = match &s.state_dir {
        Some(dir) => warden_config::run_mark::RunMark::bound(dir),
        None => warden_config::run_mark::RunMark::new(),
    };
    c.env_clear()
        .envs(warden_config::child::clean_env())
        .env(warden_config::run_mark::VAR, mark.value())
        .env("WARDEN_GROUP", &s.group)
        .env("WARDEN_PEER", &s.peer)
        .env("WARDEN_PHASE", phase)
        .envs((!s.site.is_empty()).then(|| ("WARDEN_SITE", s.site.clone())))
        .envs(s.epoch.map(|e| ("WARDEN_EPOCH", e.to_string())))
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = warden_config::child::spawn_unless_busy(|| c.spawn())
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    // the whole process group (a shell's children too) unless it ends by itself
    let mut group = warden_config::child::GroupKill::with_mark(child.id(), mark);
    let out = tokio::spawn(keep_tail(child.stdout.take().expect("piped"), STDOUT_KEEP));
    let err = tokio::spawn(keep_tail(child.stderr.take().expect("piped"), STDERR_TAIL));
    let outcome = tokio::select! {
        st = child.wait() => Ok(st),
        _ = tokio::time::sleep(s.timeout) => Err(format!("timed out after {}, killed", humantime::format_duration(s.timeout))),
        _ = cancel.cancelled() => Err("cancelled, killed".to_string()),
    };
    if outcome.is_err() {
        group.kill_now();
        let _ = child.kill().await;
    } else {
        group.disarm();
    }
    let grace = Duration::from_millis(200);
    let stdout = tokio::time::timeout(grace, out)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = tokio::time::timeout(grace, err)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = warden_config::child::scrub(String::from_utf8_lossy(&stderr).trim());
    let with_stderr = |d: String| {
        if stderr.is_empty() {
            d
        } else {
            format!("{d}; stderr: {stderr}")
        }
    };
    let status = match outcome {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => return Err(fail(format!("cannot wait for it: {e}"))),
        Err(why) => {
            if cancel.is_cancelled() {
                return Err(AgentError::ReplicationCancelled);
            }
            return Err(fail(with_stderr(why)));
        }
    };
    debug!(phase, elapsed_ms = started.elapsed().as_millis() as u64, %status, "replication command ran");
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exit {code}"),
            None => format!("{status}"),
        };
        return Err(fail(with_stderr(how)));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Reads `pipe` to its end, keeping the last `keep` bytes (UTF-8 boundary fixed later by lossy decoding).
async fn keep_tail(mut pipe: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > keep {
                    kept.drain(..kept.len() - keep);
                }
            }
        }
    }
    kept
}

/// [`CommandPlan`]'s lag while none is known.
const LAG_UNKNOWN: u64 = u64::MAX;

/// Runs the lag command every `lag_interval` until cancelled. A run that
/// fails or prints no number leaves the lag unknown (not the last value:
/// a lag frozen at an old number would read as known) and says why.
async fn poll_lag(
    s: Arc<CommandSettings>,
    lag_ms: Arc<AtomicU64>,
    failing: Arc<std::sync::Mutex<Option<String>>>,
    cancel: CancellationToken,
) {
    let Some(cmd) = s.lag.clone() else {
        return;
    };
    let set = |lag: u64, why: Option<String>| {
        lag_ms.store(lag, Ordering::Relaxed);
        *failing.lock().unwrap_or_else(|p| p.into_inner()) = why;
    };
    loop {
        match run(&s, "lag", &cmd, &[], &cancel).await {
            Ok(out) => match out.trim().parse::<u64>() {
                Ok(ms) if ms != LAG_UNKNOWN => set(ms, None),
                _ => {
                    let why = format!(
                        "the lag command printed {:?}, not a number of milliseconds: the lag is unknown",
                        warden_config::child::scrub(&out.trim().chars().take(200).collect::<String>())
                    );
                    warn!("{why}");
                    set(LAG_UNKNOWN, Some(why));
                }
            },
            Err(AgentError::ReplicationCancelled) => return,
            Err(e) => {
                let why = format!("the lag command failed ({e}): the lag is unknown");
                warn!("{why}");
                set(LAG_UNKNOWN, Some(why));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(s.lag_interval) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

#[async_trait]
impl Replicator for CommandPlan {
    async fn start(&self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let mut running = self.running.lock().await;
        if running.is_running() {
            return Ok(());
        }
        let s = &self.settings;
        run(s, "start", &s.start, &[], &shutdown).await?;
        let cancel = shutdown.child_token();
        let task = s.lag.is_some().then(|| {
            tokio::spawn(poll_lag(
                self.settings.clone(),
                self.lag_ms.clone(),
                self.lag_failing.clone(),
                cancel.clone(),
            ))
        });
        running.set(cancel, task, ());
        info!(group = %s.group, peer = %s.peer, "command replication started");
        Ok(())
    }

    async fn stop(&self) {
        self.running.stop().await;
        let s = &self.settings;
        match run(s, "stop", &s.stop, &[], &CancellationToken::new()).await {
            Ok(_) => info!(group = %s.group, peer = %s.peer, "command replication stopped"),
            Err(e) => warn!(cause = %e, "stop command failed"),
        }
        self.lag_ms.store(LAG_UNKNOWN, Ordering::Relaxed);
        *self.lag_failing.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn resync(
        &self,
        cancel: CancellationToken,
        _progress: Option<watch::Sender<Progress>>,
    ) -> Result<ResyncReport, AgentError> {
        let started = Instant::now();
        let s = &self.settings;
        run(s, "resync", &s.resync, &[], &cancel).await?;
        Ok(ResyncReport {
            done: Progress::default(),
            elapsed: started.elapsed(),
        })
    }

    fn lag(&self) -> Duration {
        match self.lag_ms.load(Ordering::Relaxed) {
            LAG_UNKNOWN => Duration::ZERO,
            ms => Duration::from_millis(ms),
        }
    }

    /// Known once the lag command printed a number, until it fails; never
    /// without a lag command (a script's replication says nothing of how
    /// far behind the peer is).
    fn lag_known(&self) -> bool {
        self.lag_ms.load(Ordering::Relaxed) != LAG_UNKNOWN
    }

    /// Why the lag command told no lag at its last run.
    fn failing(&self) -> Option<String> {
        self.lag_failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn verify(&self) -> Result<Vec<Difference>, AgentError> {
        let s = &self.settings;
        run(s, "verify", &s.verify, &[], &CancellationToken::new()).await?;
        Ok(Vec::new())
    }
}

#[async_trait]
impl Resyncer for CommandPlan {
    async fn pass(
        &self,
        policy: DivergentPolicy,
        cancel: CancellationToken,
        _progress: Option<watch::Sender<ResyncProgress>>,
    ) -> Result<PassReport, AgentError> {
        let started = Instant::now();
        let s = &self.settings;
        let extra = [("WARDEN_DIVERGENT_POLICY", policy.as_str().to_string())];
        run(s, "resync", &s.resync, &extra, &cancel).await?;
        Ok(PassReport {
            elapsed: started.elapsed(),
            ..PassReport::default()
        })
    }

    async fn verify(&self, except: &[String]) -> Result<VerifyReport, AgentError> {
        let s = &self.settings;
        let extra = [("WARDEN_EXCEPT", except.join("\n"))];
        run(s, "verify", &s.verify, &extra, &CancellationToken::new()).await?;
        Ok(VerifyReport {
            excepted: except.len() as u64,
            ..VerifyReport::default()
        })
    }
}
