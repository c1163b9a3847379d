//! The simulated world the engine's tests run in: the routing layer, the
//! agents' answers (hooks, fresh checks, journals, what a resync left in
//! place), stale sites, holds and events ([`World`]), and a store that
//! "crashes" after a given step was persisted ([`CrashStore`]).
use super::*;
use crate::wrapped_store::{Wrapped, Write};
use crate::OrchestratorError;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use warden_proto::agent::{HookOutcome, JournalReport};

#[derive(Default)]
pub(super) struct World {
    pub(super) route: Mutex<(Option<String>, u64, u64)>,
    pub(super) outcomes: Mutex<HashMap<String, CommandOutcome>>,
    pub(super) hook_runs: Mutex<HashMap<(String, CommandKind), u32>>,
    pub(super) stale: Mutex<Vec<String>>,
    /// Sites not heard for two report intervals, though not stale yet.
    pub(super) silent: Mutex<Vec<String>>,
    pub(super) failing_promote: Mutex<Vec<String>>,
    pub(super) unhealthy: Mutex<Vec<String>>,
    /// What the checks a promote outcome carries say (none when unset:
    /// an agent older than the field).
    pub(super) fresh_checks: Mutex<Option<bool>>,
    /// The promote's outcome carries this id instead of the command's
    /// (an answer to another command or epoch).
    pub(super) answer_as: Mutex<Option<String>>,
    /// Calls of `wait_healthy` (the step waited for a report).
    pub(super) waited: std::sync::atomic::AtomicU32,
    pub(super) events: Mutex<Vec<(EventKind, String)>>,
    /// The group has a replication plan (replication steps run).
    pub(super) replication: AtomicBool,
    /// What a demote with `journal_since` answers.
    pub(super) journaled: Mutex<Option<Vec<String>>>,
    /// The demote answers for another journal than it was asked about
    /// (a late or replayed outcome, a restarted agent's new journal).
    pub(super) other_journal: AtomicBool,
    /// Every command sent, with its site.
    pub(super) sent: Mutex<Vec<(String, Command)>>,
    /// Hold orders (epoch, ttl) and the commands sent before each.
    pub(super) holds: Mutex<Vec<(u64, Duration, usize)>>,
    /// When the site users are on is confirmed down (`active_lost`).
    pub(super) lost_at: Mutex<Option<tokio::time::Instant>>,
    /// How long a resync takes (300 ms when unset).
    pub(super) resync_takes: Mutex<Option<Duration>>,
    /// How long a demote's hooks take (an agent that never answers: longer
    /// than any wait); its outcome comes only within the caller's timeout.
    pub(super) demote_takes: Mutex<Option<Duration>>,
    /// Resyncs and final passes answer as an agent older than
    /// `kept_in_place` (they do not say what they left in place).
    pub(super) old_agent: AtomicBool,
    /// Every fence command run: the site it was told to fence, the target
    /// and the epoch.
    pub(super) fenced: Mutex<Vec<(String, String, u64)>>,
    /// How every switch (`activate`) fails, when it does.
    pub(super) switch_fault: Mutex<Option<SwitchFault>>,
    /// A route (site, epoch) that lands right after the next read of the
    /// routing layer (a deposed leader's late switch), fenced as any.
    pub(super) late_route: Mutex<Option<(String, u64)>>,
    /// The group's sites besides a and b, and how long each takes to
    /// report a new epoch (`None`: it never does).
    pub(super) others: Mutex<Vec<(String, Option<Duration>)>>,
    /// Each epoch a site reported, with the number of commands sent
    /// before it did.
    pub(super) took_epoch: Mutex<Vec<(String, u64, usize)>>,
}

/// A switch that fails, and what the routing layer shows afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SwitchFault {
    /// No element took the route; every one can be read.
    Nowhere,
    /// One frontend took the route, another timed out (and cannot be read).
    Partly,
    /// No element took the route, and the layer cannot be read either.
    Unreadable,
    /// A `hybrid` group's reading: fe1 answers at the old route, fe2 timed
    /// out on the switch and cannot be read — left out of the reading and
    /// listed as unread (it may have taken the route, its answer lost).
    HybridUnread,
    /// Routes to this site time out and are not taken (the switch's; a
    /// deposed leader's may still land later); other routes are taken.
    LostTo(&'static str),
}

impl World {
    /// Every command sent so far: its site and kind.
    pub(super) fn sent_kinds(&self) -> Vec<(String, CommandKind)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(s, c)| (s.clone(), c.kind))
            .collect()
    }

    pub(super) fn runs(&self, site: &str, k: CommandKind) -> u32 {
        *self
            .hook_runs
            .lock()
            .unwrap()
            .get(&(site.to_string(), k))
            .unwrap_or(&0)
    }
    /// What the routing layer shows now.
    fn read(&self) -> Result<Observed, StrategyError> {
        let fault = *self.switch_fault.lock().unwrap();
        let r = self.route.lock().unwrap();
        match fault {
            Some(SwitchFault::Unreadable) => Err(StrategyError::Unreachable {
                element: "fe1".into(),
                reason: "request timed out".into(),
            }),
            Some(SwitchFault::Partly) => Ok(Observed {
                site: r.0.clone(),
                epoch: r.1,
                drift: vec!["fe2 unreachable: request timed out".into()],
                unread: vec![],
                unread_elements: vec![],
            }),
            Some(SwitchFault::HybridUnread) => Ok(Observed {
                site: r.0.clone(),
                epoch: r.1,
                drift: vec![],
                unread: vec!["fe2: request timed out".into()],
                unread_elements: vec![],
            }),
            _ => Ok(Observed {
                site: r.0.clone(),
                epoch: r.1,
                drift: vec![],
                unread: vec![],
                unread_elements: vec![],
            }),
        }
    }

    /// Take `route` at `epoch` as a fenced frontend does: an older epoch
    /// is stale, another site at the same epoch a conflicting decision.
    fn fenced(
        r: &mut (Option<String>, u64, u64),
        route: &SiteRoute,
        epoch: u64,
    ) -> Result<(), StrategyError> {
        if epoch < r.1 {
            return Err(StrategyError::StaleEpoch {
                element: "fe1".into(),
                sent: epoch,
                seen: r.1,
            });
        }
        if epoch == r.1 && r.0.as_deref() != Some(route.site.as_str()) {
            return Err(StrategyError::EpochTaken {
                element: "fe1".into(),
                epoch,
                reason: "conflicting route for the same epoch".into(),
            });
        }
        if r.0.as_deref() != Some(route.site.as_str()) {
            r.2 += 1;
        }
        r.0 = Some(route.site.clone());
        r.1 = epoch;
        Ok(())
    }
}

#[async_trait]
impl RunbookEnv for World {
    fn now_ms(&self) -> u64 {
        tokio::time::Instant::now().elapsed().as_millis() as u64 + 1_000_000
    }
    fn agent_fresh(&self, site: &str) -> bool {
        !self.stale.lock().unwrap().iter().any(|s| s == site)
    }
    fn agent_heard(&self, site: &str) -> bool {
        self.agent_fresh(site) && !self.silent.lock().unwrap().iter().any(|s| s == site)
    }
    fn sites_of(&self, _group: &str) -> Vec<String> {
        let mut sites = vec!["a".to_string(), "b".to_string()];
        sites.extend(self.others.lock().unwrap().iter().map(|(s, _)| s.clone()));
        sites
    }
    async fn wait_epoch(
        &self,
        site: &str,
        _group: &str,
        epoch: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        let takes = self
            .others
            .lock()
            .unwrap()
            .iter()
            .find(|(s, _)| s == site)
            .and_then(|(_, t)| *t);
        match takes.filter(|t| *t <= timeout) {
            Some(t) => {
                tokio::time::sleep(t).await;
                let sent = self.sent.lock().unwrap().len();
                self.took_epoch
                    .lock()
                    .unwrap()
                    .push((site.to_string(), epoch, sent));
                Ok(())
            }
            None => {
                tokio::time::sleep(timeout).await;
                Err("it last reported epoch 1".into())
            }
        }
    }
    fn hold(&self, _group: &str, epoch: u64, ttl: Duration) {
        let sent = self.sent.lock().unwrap().len();
        self.holds.lock().unwrap().push((epoch, ttl, sent));
    }
    async fn command(
        &self,
        site: &str,
        cmd: Command,
        timeout: Duration,
    ) -> Result<CommandOutcome, String> {
        if !self.agent_fresh(site) {
            tokio::time::sleep(timeout).await;
            return Err(format!("no outcome from {site}"));
        }
        self.sent
            .lock()
            .unwrap()
            .push((site.to_string(), cmd.clone()));
        if let Some(o) = self.outcomes.lock().unwrap().get(&cmd.id) {
            return Ok(o.clone());
        }
        let takes = match cmd.kind {
            CommandKind::Resync => *self.resync_takes.lock().unwrap(),
            CommandKind::Demote => *self.demote_takes.lock().unwrap(),
            _ => None,
        };
        // (a timeout of zero: queued, not waited for)
        if takes.unwrap_or(Duration::from_millis(300)) > timeout {
            tokio::time::sleep(timeout).await;
            return Err(format!("no outcome from {site} within {timeout:?}"));
        }
        // Hooks and passes take time.
        tokio::time::sleep(takes.unwrap_or(Duration::from_millis(300))).await;
        *self
            .hook_runs
            .lock()
            .unwrap()
            .entry((site.to_string(), cmd.kind))
            .or_default() += 1;
        let ok = !(cmd.kind == CommandKind::Promote
            && self
                .failing_promote
                .lock()
                .unwrap()
                .iter()
                .any(|s| s == site));
        let answer_as = match cmd.kind {
            CommandKind::Promote => self.answer_as.lock().unwrap().clone(),
            _ => None,
        };
        let o = CommandOutcome {
            id: answer_as.unwrap_or_else(|| cmd.id.clone()),
            ok,
            detail: String::new(),
            hooks: vec![HookOutcome {
                name: "hook".into(),
                ok,
                exit_code: Some(if ok { 0 } else { 1 }),
                detail: format!("exit {}", if ok { 0 } else { 1 }),
                elapsed_ms: 300,
            }],
            checks: self.fresh_checks.lock().unwrap().map(|pass| {
                vec![warden_proto::agent::CheckResult {
                    name: "web".into(),
                    ok: pass,
                    critical: true,
                    detail: if pass { "status 200" } else { "status 503" }.into(),
                    elapsed_ms: 2,
                }]
            }),
            journal: match (cmd.kind, cmd.journal_since) {
                (CommandKind::Journal, _) => Some(JournalReport {
                    mark: JournalMark { id: 7, seq: 3 },
                    names: None,
                    note: String::new(),
                }),
                (CommandKind::Demote, Some(mark)) => Some(JournalReport {
                    mark: if self.other_journal.load(Ordering::Relaxed) {
                        JournalMark { id: 99, ..mark }
                    } else {
                        mark
                    },
                    names: self.journaled.lock().unwrap().clone(),
                    note: "overflow".into(),
                }),
                _ => None,
            },
            kept_in_place: match cmd.kind {
                CommandKind::Resync | CommandKind::FinalSync
                    if !self.old_agent.load(Ordering::Relaxed) =>
                {
                    Some(0)
                }
                _ => None,
            },
        };
        self.outcomes.lock().unwrap().insert(cmd.id, o.clone());
        Ok(o)
    }
    async fn wait_healthy(&self, site: &str, timeout: Duration) -> Result<(), String> {
        self.waited.fetch_add(1, Ordering::Relaxed);
        if self.unhealthy.lock().unwrap().iter().any(|s| s == site) {
            tokio::time::sleep(timeout).await;
            return Err("web: status 503".into());
        }
        Ok(())
    }
    async fn activate(
        &self,
        _group: &str,
        route: &SiteRoute,
        epoch: u64,
    ) -> Result<(), StrategyError> {
        let fault = *self.switch_fault.lock().unwrap();
        let mut r = self.route.lock().unwrap();
        let unreachable = || StrategyError::Unreachable {
            element: "fe2".into(),
            reason: "request timed out".into(),
        };
        if matches!(
            fault,
            Some(SwitchFault::Nowhere | SwitchFault::Unreadable | SwitchFault::HybridUnread)
        ) || matches!(fault, Some(SwitchFault::LostTo(s)) if s == route.site)
        {
            return Err(unreachable());
        }
        Self::fenced(&mut r, route, epoch)?;
        match fault {
            Some(SwitchFault::Partly) => Err(unreachable()),
            _ => Ok(()),
        }
    }
    async fn current(&self, _group: &str) -> Result<Observed, StrategyError> {
        let seen = self.read();
        let late = self.late_route.lock().unwrap().take();
        if let Some((site, epoch)) = late {
            let route = SiteRoute {
                site,
                mode: warden_strategies::SwitchMode::Drain,
            };
            let _ = Self::fenced(&mut self.route.lock().unwrap(), &route, epoch);
        }
        seen
    }
    async fn probe_entry(&self, _group: &str, _site: &str) -> Result<String, String> {
        Ok("entry answers".into())
    }
    async fn fence_command(
        &self,
        argv: &[String],
        order: &FenceOrder<'_>,
        timeout: Duration,
    ) -> Result<String, String> {
        // A real command takes a moment, and is killed at its timeout.
        let takes = Duration::from_millis(100);
        if timeout < takes {
            tokio::time::sleep(timeout).await;
            return Err(format!("timed out after {timeout:?}"));
        }
        tokio::time::sleep(takes).await;
        self.fenced.lock().unwrap().push((
            order.site.to_string(),
            order.target.to_string(),
            order.epoch,
        ));
        if argv[0] == "true" {
            Ok("exit 0".into())
        } else {
            Err("exit 1".into())
        }
    }
    fn has_replication(&self, _group: &str) -> bool {
        self.replication.load(Ordering::Relaxed)
    }
    async fn active_lost(&self, rb: &Runbook) -> String {
        let at = *self.lost_at.lock().unwrap();
        match at {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                format!("{} down: 3 rounds", rb.from)
            }
            None => std::future::pending().await,
        }
    }
    fn event(
        &self,
        kind: EventKind,
        _group: &str,
        _site: Option<&str>,
        message: String,
        _runbook: Option<u64>,
    ) {
        self.events.lock().unwrap().push((kind, message));
    }
}

/// A store that "crashes" (refuses every later write) right after the
/// given step was persisted as running, or once `dies_when` says so (it
/// is asked at every write): the process died.
#[derive(Default)]
pub(super) struct CrashStore {
    pub(super) inner: MemStore,
    pub(super) crash_in: Option<StepName>,
    pub(super) crashed: AtomicBool,
    #[allow(clippy::type_complexity)]
    pub(super) dies_when: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl Wrapped for CrashStore {
    fn inner(&self) -> &MemStore {
        &self.inner
    }
    fn before(&self, w: Write<'_>) -> Result<(), OrchestratorError> {
        if !matches!(w, Write::Runbook(_)) {
            return Ok(());
        }
        if self.dies_when.as_ref().is_some_and(|dies| dies()) {
            self.crashed.store(true, Ordering::SeqCst);
        }
        if self.crashed.load(Ordering::SeqCst) {
            return Err(OrchestratorError::store(
                "write",
                std::io::Error::other("process killed"),
            ));
        }
        Ok(())
    }
    fn after(&self, w: Write<'_>) {
        let (Write::Runbook(rb), Some(step)) = (w, self.crash_in) else {
            return;
        };
        if rb
            .steps
            .iter()
            .any(|s| s.name == step && s.status == StepStatus::Running)
        {
            self.crashed.store(true, Ordering::SeqCst);
        }
    }
}
