//! The runbook state machine against a simulated world, on paused time.
use super::*;
use crate::model::Event;
use crate::store::MemStore;
use crate::OrchestratorError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use warden_proto::agent::{HookOutcome, JournalReport};

#[derive(Default)]
struct World {
    route: Mutex<(Option<String>, u64, u64)>,
    outcomes: Mutex<HashMap<String, CommandOutcome>>,
    hook_runs: Mutex<HashMap<(String, CommandKind), u32>>,
    stale: Mutex<Vec<String>>,
    failing_promote: Mutex<Vec<String>>,
    unhealthy: Mutex<Vec<String>>,
    /// What the checks a promote outcome carries say (none when unset:
    /// an agent older than the field).
    fresh_checks: Mutex<Option<bool>>,
    /// The promote's outcome carries this id instead of the command's
    /// (an answer to another command or epoch).
    answer_as: Mutex<Option<String>>,
    /// Calls of `wait_healthy` (the step waited for a report).
    waited: std::sync::atomic::AtomicU32,
    events: Mutex<Vec<(EventKind, String)>>,
    /// The group has a replication plan (replication steps run).
    replication: AtomicBool,
    /// What a demote with `journal_since` answers.
    journaled: Mutex<Option<Vec<String>>>,
    /// The demote answers for another journal than it was asked about
    /// (a late or replayed outcome, a restarted agent's new journal).
    other_journal: AtomicBool,
    /// Every command sent, with its site.
    sent: Mutex<Vec<(String, Command)>>,
    /// Hold orders (epoch, ttl) and the commands sent before each.
    holds: Mutex<Vec<(u64, Duration, usize)>>,
    /// When the site users are on is confirmed down (`active_lost`).
    lost_at: Mutex<Option<tokio::time::Instant>>,
    /// How long a resync takes (300 ms when unset).
    resync_takes: Mutex<Option<Duration>>,
    /// Resyncs and final passes answer as an agent older than
    /// `kept_in_place` (they do not say what they left in place).
    old_agent: AtomicBool,
}

impl World {
    fn runs(&self, site: &str, k: CommandKind) -> u32 {
        *self
            .hook_runs
            .lock()
            .unwrap()
            .get(&(site.to_string(), k))
            .unwrap_or(&0)
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
            _ => None,
        };
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
        let mut r = self.route.lock().unwrap();
        if epoch < r.1 {
            return Err(StrategyError::StaleEpoch {
                element: "fe1".into(),
                sent: epoch,
                seen: r.1,
            });
        }
        if epoch == r.1 && r.0.as_deref() != Some(route.site.as_str()) {
            return Err(StrategyError::Rejected {
                element: "fe1".into(),
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
    async fn current(&self, _group: &str) -> Result<Observed, StrategyError> {
        let r = self.route.lock().unwrap();
        Ok(Observed {
            site: r.0.clone(),
            epoch: r.1,
            drift: vec![],
        })
    }
    async fn probe_entry(&self, _group: &str, _site: &str) -> Result<String, String> {
        Ok("entry answers".into())
    }
    async fn fence_command(&self, argv: &[String], _timeout: Duration) -> Result<String, String> {
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
/// given step was persisted as running: the process died mid-step.
struct CrashStore {
    inner: MemStore,
    crash_in: Option<StepName>,
    crashed: AtomicBool,
}

impl Store for CrashStore {
    fn groups(&self) -> Result<Vec<crate::model::GroupState>, OrchestratorError> {
        self.inner.groups()
    }
    fn put_group(&self, g: &crate::model::GroupState) -> Result<(), OrchestratorError> {
        self.inner.put_group(g)
    }
    fn put_group_and_runbook(
        &self,
        g: &crate::model::GroupState,
        rb: &Runbook,
    ) -> Result<(), OrchestratorError> {
        self.inner.put_group_and_runbook(g, rb)
    }
    fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(OrchestratorError::store(
                "write",
                std::io::Error::other("process killed"),
            ));
        }
        self.inner.put_runbook(rb)?;
        if let Some(step) = self.crash_in {
            if rb
                .steps
                .iter()
                .any(|s| s.name == step && s.status == StepStatus::Running)
            {
                self.crashed.store(true, Ordering::SeqCst);
            }
        }
        Ok(())
    }
    fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError> {
        self.inner.runbooks()
    }
    fn put_event(&self, e: &Event) -> Result<(), OrchestratorError> {
        self.inner.put_event(e)
    }
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError> {
        self.inner.events(after, limit)
    }
    fn last_event_id(&self) -> Result<u64, OrchestratorError> {
        self.inner.last_event_id()
    }
    fn prune_events(
        &self,
        keep: usize,
        before_unix_ms: u64,
        max: usize,
    ) -> Result<usize, OrchestratorError> {
        self.inner.prune_events(keep, before_unix_ms, max)
    }
}

fn policy(fencing: Fencing, fence_command: Option<Vec<String>>) -> Policy {
    Policy {
        fencing,
        fence_command,
        step_timeout: Duration::from_secs(5),
        resync_timeout: Duration::from_secs(5),
    }
}

fn world_on(site: &str, epoch: u64) -> World {
    let w = World::default();
    *w.route.lock().unwrap() = (Some(site.into()), epoch, 0);
    w
}

/// [`failover_rb`] run to its end in `w` under `p`, on a fresh store.
async fn failover(w: &World, p: Policy) -> Runbook {
    execute(failover_rb(), w, &MemStore::default(), &p).await
}

fn failover_rb() -> Runbook {
    Runbook::new(
        1,
        "web",
        RunbookKind::Failover,
        "a",
        "b",
        2,
        "detector",
        1_000_000,
        999_000,
    )
}

/// The failback b → a at epoch 3, run to its end in `w` on a fresh store
/// (best-effort fencing).
async fn failback(w: &World) -> Runbook {
    execute(
        failback_rb(),
        w,
        &MemStore::default(),
        &policy(Fencing::BestEffort, None),
    )
    .await
}

/// The failback b → a at epoch 3.
fn failback_rb() -> Runbook {
    Runbook::new(
        1,
        "web",
        RunbookKind::Failback,
        "b",
        "a",
        3,
        "failback",
        1_000_000,
        1_000_000,
    )
}

fn statuses(rb: &Runbook) -> Vec<(StepName, StepStatus)> {
    rb.steps.iter().map(|s| (s.name, s.status)).collect()
}

#[tokio::test(start_paused = true)]
async fn failover_runs_every_step_in_order_and_switches_once() {
    let w = world_on("a", 1);
    let store = MemStore::default();
    let rb = execute(
        failover_rb(),
        &w,
        &store,
        &policy(Fencing::BestEffort, None),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    use StepName::*;
    use StepStatus::*;
    assert_eq!(
        statuses(&rb),
        vec![
            (Decide, Done),
            (Fence, Done),
            (StopReplication, Skipped),
            (Promote, Done),
            (Switch, Done),
            (Verify, Done)
        ]
    );
    assert_eq!(*w.route.lock().unwrap(), (Some("b".into()), 2, 1));
    assert_eq!(w.runs("a", CommandKind::Demote), 1);
    assert_eq!(w.runs("b", CommandKind::Promote), 1);
    assert!(
        rb.rto_ms.unwrap() >= 1000,
        "RTO counts from the incident start"
    );
    // persisted copy equals the returned one
    assert_eq!(store.runbooks().unwrap()[0], rb);
}

#[tokio::test(start_paused = true)]
async fn best_effort_fencing_goes_on_when_the_old_site_is_unreachable() {
    let w = world_on("a", 1);
    w.stale.lock().unwrap().push("a".into());
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    assert!(
        rb.steps[1].detail.contains("unreachable"),
        "{}",
        rb.steps[1].detail
    );
    assert_eq!(w.runs("a", CommandKind::Demote), 0);
}

#[tokio::test(start_paused = true)]
async fn required_fencing_stops_the_runbook_before_any_switch() {
    let w = world_on("a", 1);
    w.stale.lock().unwrap().push("a".into());
    let rb = execute(
        failover_rb(),
        &w,
        &MemStore::default(),
        &policy(Fencing::Required, Some(vec!["false".into()])),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    assert_eq!(rb.steps[1].status, StepStatus::Failed);
    assert!(rb.steps[1].detail.contains("required"));
    assert_eq!(
        *w.route.lock().unwrap(),
        (Some("a".into()), 1, 0),
        "traffic untouched"
    );
    assert_eq!(w.runs("b", CommandKind::Promote), 0);
    // ...and a working fence command satisfies it.
    let rb = execute(
        failover_rb(),
        &w,
        &MemStore::default(),
        &policy(Fencing::Required, Some(vec!["true".into()])),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_hold_is_ordered_before_the_old_site_is_touched_and_withdrawn_when_no_switch_comes() {
    // Failover: before the fence (the first command), for the steps up to the switch.
    let w = world_on("a", 1);
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    // Fence, stop_replication, promote, switch: 4 × 5 s, plus 1 s.
    assert_eq!(
        *w.holds.lock().unwrap(),
        vec![(2, Duration::from_secs(21), 0)],
        "one order, at the new epoch, before any command"
    );

    // Switchover: before the demote, not during the resync.
    let w = world_on("a", 1);
    let mut so = failover_rb();
    so.kind = RunbookKind::Switchover;
    so.steps = Runbook::new(1, "web", RunbookKind::Switchover, "a", "b", 2, "op", 0, 0).steps;
    let rb = execute(so, &w, &MemStore::default(), &policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let holds = w.holds.lock().unwrap().clone();
    let sent = w.sent.lock().unwrap().clone();
    assert_eq!(holds.len(), 1, "{holds:?}");
    let (_, cmd) = &sent[holds[0].2];
    assert_eq!(
        cmd.kind,
        CommandKind::Demote,
        "the hold comes right before the demote"
    );

    // A failover that fails before its switch withdraws the order.
    let w = world_on("a", 1);
    w.failing_promote.lock().unwrap().push("b".into());
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let holds = w.holds.lock().unwrap().clone();
    assert_eq!(holds.len(), 2, "{holds:?}");
    assert!(
        holds[0].1 > Duration::ZERO && holds[1].1 == Duration::ZERO,
        "{holds:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_promote_never_switches() {
    let w = world_on("a", 1);
    w.failing_promote.lock().unwrap().push("b".into());
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    assert_eq!(p.status, StepStatus::Failed);
    assert!(p.detail.contains("promote failed"), "{}", p.detail);
    assert_eq!(w.route.lock().unwrap().2, 0);
    assert!(w
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|(k, _)| *k == EventKind::RunbookFailed));
}

#[tokio::test(start_paused = true)]
async fn promote_whose_checks_never_pass_times_out() {
    let w = world_on("a", 1);
    w.unhealthy.lock().unwrap().push("b".into());
    let t0 = tokio::time::Instant::now();
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    assert!(p.detail.contains("timed out"), "{}", p.detail);
    assert!(t0.elapsed() >= Duration::from_secs(5));
    assert_eq!(w.route.lock().unwrap().2, 0);
}

#[tokio::test(start_paused = true)]
async fn promote_whose_outcome_carries_passing_checks_does_not_wait_for_a_report() {
    let w = world_on("a", 1);
    // Reports would never show b healthy: only the outcome's checks can end the step.
    w.unhealthy.lock().unwrap().push("b".into());
    *w.fresh_checks.lock().unwrap() = Some(true);
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    assert!(
        p.detail.contains("checks run after the hooks pass"),
        "{}",
        p.detail
    );
    assert_eq!(w.waited.load(Ordering::Relaxed), 0, "no report waited for");
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("b"));
}

fn promote_step(rb: &Runbook) -> &crate::model::StepRecord {
    rb.steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn promote_whose_fresh_checks_fail_ends_on_a_later_passing_report() {
    // The outcome's checks fail (the service is still starting); a later
    // report shows them pass: the step ends then, through the reports.
    let w = world_on("a", 1);
    *w.fresh_checks.lock().unwrap() = Some(false);
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    let p = promote_step(&rb);
    assert!(p.detail.ends_with("; checks pass"), "{}", p.detail);
    assert_eq!(w.waited.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn fresh_checks_answering_another_command_or_epoch_do_not_end_the_promote() {
    // Passing checks in an outcome for an older epoch's promote, or for
    // another command of this epoch, say nothing about this promote.
    for other in ["web:1:promote", "web:2:promote_back", "db:2:promote"] {
        let w = world_on("a", 1);
        w.unhealthy.lock().unwrap().push("b".into());
        *w.fresh_checks.lock().unwrap() = Some(true);
        *w.answer_as.lock().unwrap() = Some(other.into());
        let t0 = tokio::time::Instant::now();
        let rb = failover(&w, policy(Fencing::Off, None)).await;
        assert_eq!(rb.status, RunbookStatus::Failed, "{other}");
        let p = promote_step(&rb);
        assert!(p.detail.contains("timed out"), "{other}: {}", p.detail);
        assert!(t0.elapsed() >= Duration::from_secs(5), "{other}");
        assert_eq!(w.waited.load(Ordering::Relaxed), 1, "{other}");
        assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("a"), "{other}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_older_agent_without_fresh_checks_is_promoted_through_the_reports() {
    // An agent older than `CommandOutcome::checks` sends none: the step
    // waits for a report, as it always did.
    let w = world_on("a", 1);
    assert!(w.fresh_checks.lock().unwrap().is_none());
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded);
    let p = promote_step(&rb);
    assert!(p.detail.ends_with("; checks pass"), "{}", p.detail);
    assert_eq!(w.waited.load(Ordering::Relaxed), 1);
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn promote_whose_outcome_carries_failing_checks_waits_for_reports() {
    let w = world_on("a", 1);
    w.unhealthy.lock().unwrap().push("b".into());
    *w.fresh_checks.lock().unwrap() = Some(false);
    let t0 = tokio::time::Instant::now();
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    // It waited for a report to show them pass, until the step's timeout.
    assert!(p.detail.contains("timed out"), "{}", p.detail);
    assert!(t0.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_stale_epoch_at_the_switch_is_a_fencing_event_not_a_retry_loop() {
    let w = world_on("a", 7); // a newer decision already reached the frontend
    let rb = failover(&w, policy(Fencing::Off, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    let s = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Switch)
        .unwrap();
    assert_eq!(s.attempts, 1);
    assert!(
        s.detail.contains("epoch 2 is older than the 7"),
        "{}",
        s.detail
    );
    assert!(w
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|(k, _)| *k == EventKind::Fencing));
    assert_eq!(*w.route.lock().unwrap(), (Some("a".into()), 7, 0));
}

async fn crash_and_resume(kind: RunbookKind, crash_in: StepName) {
    let (from, to, epoch0) = match kind {
        RunbookKind::Failover => ("a", "b", 1),
        RunbookKind::Failback | RunbookKind::Switchover | RunbookKind::Resync => ("b", "a", 2),
    };
    let w = world_on(from, epoch0);
    w.replication.store(true, Ordering::Relaxed);
    *w.journaled.lock().unwrap() = Some(vec!["x".into()]);
    let rb0 = Runbook::new(
        1,
        "web",
        kind,
        from,
        to,
        epoch0 + 1,
        "detector",
        1_000_000,
        1_000_000,
    );
    let store = CrashStore {
        inner: MemStore::default(),
        crash_in: Some(crash_in),
        crashed: AtomicBool::new(false),
    };
    let p = policy(Fencing::BestEffort, None);
    let died = execute(rb0, &w, &store, &p).await;
    assert_ne!(
        died.status,
        RunbookStatus::Succeeded,
        "crash injected in {crash_in:?}"
    );
    // The restarted process reads the store and resumes.
    let persisted = store.inner.runbooks().unwrap().pop().unwrap();
    let at = persisted.next_step().unwrap();
    assert_eq!(persisted.steps[at].name, crash_in);
    assert_eq!(persisted.steps[at].status, StepStatus::Running);
    let fresh = MemStore::default();
    let done = execute(persisted, &w, &fresh, &p).await;
    assert_eq!(
        done.status,
        RunbookStatus::Succeeded,
        "{kind:?} crash in {crash_in:?}: {done:#?}"
    );
    assert_eq!(done.steps[at].attempts, 2);
    let r = w.route.lock().unwrap().clone();
    assert_eq!(
        r,
        (
            Some(done.users_site().to_string()),
            epoch0 + 1,
            u64::from(kind != RunbookKind::Resync)
        ),
        "{kind:?} crash in {crash_in:?}: exactly one switch"
    );
    if kind == RunbookKind::Resync {
        // Users stay on the active site: nobody is demoted or promoted.
        for site in [from, to] {
            assert_eq!(w.runs(site, CommandKind::Promote), 0);
            assert_eq!(w.runs(site, CommandKind::Demote), 0);
        }
        return;
    }
    assert_eq!(
        w.runs(to, CommandKind::Promote),
        1,
        "promote hooks ran once"
    );
    assert!(w.runs(from, CommandKind::Demote) <= 1);
    if kind != RunbookKind::Failover {
        // The journal's mark and names live in the store across the crash.
        let sent = w.sent.lock().unwrap();
        let fin = sent
            .iter()
            .rev()
            .find(|(_, c)| c.kind == CommandKind::FinalSync)
            .expect("a final sync");
        assert_eq!(
            fin.1.changed,
            Some(vec!["x".to_string()]),
            "{kind:?} crash in {crash_in:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_in_every_failover_step() {
    for &step in StepName::for_kind(RunbookKind::Failover) {
        crash_and_resume(RunbookKind::Failover, step).await;
    }
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_in_every_resync_step() {
    for &step in StepName::for_kind(RunbookKind::Resync) {
        crash_and_resume(RunbookKind::Resync, step).await;
    }
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_in_every_failback_step() {
    for &step in StepName::for_kind(RunbookKind::Failback) {
        crash_and_resume(RunbookKind::Failback, step).await;
    }
}

/// A failback with replication: the old active site's journal starts
/// before the resync, its demote is asked for the names since that mark,
/// and the final sync gets them — or none when the journal could not say.
async fn failback_with_journal(names: Option<Vec<String>>) -> (Runbook, Vec<(String, Command)>) {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    *w.journaled.lock().unwrap() = names;
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let sent = w.sent.lock().unwrap().clone();
    (rb, sent)
}

fn first<'a>(sent: &'a [(String, Command)], site: &str, kind: CommandKind) -> (usize, &'a Command) {
    sent.iter()
        .enumerate()
        .find(|(_, (s, c))| s == site && c.kind == kind)
        .map(|(i, (_, c))| (i, c))
        .unwrap_or_else(|| panic!("no {kind:?} to {site} in {sent:#?}"))
}

#[tokio::test(start_paused = true)]
async fn a_failback_hands_the_names_journaled_at_the_old_site_to_the_final_pass() {
    let (rb, sent) = failback_with_journal(Some(vec!["docs/a.txt".into()])).await;
    let (j, _) = first(&sent, "b", CommandKind::Journal);
    let (r, _) = first(&sent, "a", CommandKind::Resync);
    assert!(j < r, "the journal starts before the resync: {sent:#?}");
    let (_, demote) = first(&sent, "b", CommandKind::Demote);
    assert_eq!(demote.journal_since, Some(JournalMark { id: 7, seq: 3 }));
    let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
    assert_eq!(fin.changed, Some(vec!["docs/a.txt".to_string()]));
    assert_eq!(rb.changed, Some(vec!["docs/a.txt".to_string()]));
    let d = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Demote)
        .unwrap();
    assert!(d.detail.contains("names 1 changed"), "{}", d.detail);
}

#[tokio::test(start_paused = true)]
async fn a_switchover_to_a_replica_says_so_to_its_resync_and_final_sync() {
    let w = world_on("a", 2);
    w.replication.store(true, Ordering::Relaxed);
    let mut rb = Runbook::new(
        1,
        "web",
        RunbookKind::Switchover,
        "a",
        "b",
        3,
        "operator",
        1_000_000,
        1_000_000,
    );
    rb.replica = true;
    let rb = execute(
        rb,
        &w,
        &MemStore::default(),
        &policy(Fencing::BestEffort, None),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let sent = w.sent.lock().unwrap().clone();
    assert!(first(&sent, "b", CommandKind::Resync).1.replica);
    assert!(first(&sent, "b", CommandKind::FinalSync).1.replica);
    assert!(!first(&sent, "b", CommandKind::StartReplication).1.replica);
}

#[tokio::test(start_paused = true)]
async fn names_for_another_journal_are_not_taken() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    w.other_journal.store(true, Ordering::Relaxed);
    *w.journaled.lock().unwrap() = Some(vec!["only-this.txt".into()]);
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let sent = w.sent.lock().unwrap().clone();
    let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
    assert_eq!(
        fin.changed, None,
        "names of another journal: a full final pass"
    );
}

#[tokio::test(start_paused = true)]
async fn a_journal_that_cannot_say_means_a_full_final_pass() {
    let (rb, sent) = failback_with_journal(None).await;
    let (_, fin) = first(&sent, "a", CommandKind::FinalSync);
    assert_eq!(fin.changed, None);
    let d = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Demote)
        .unwrap();
    assert!(
        d.detail.contains("cannot say what changed (overflow)"),
        "{}",
        d.detail
    );
}

/// The site users are on dies while a failback resyncs (a resync may be
/// allowed an hour): the failback is given up at once, before anything
/// was demoted or routed, so that the failover it needs is not held.
#[tokio::test(start_paused = true)]
async fn a_failback_is_given_up_when_the_site_users_are_on_goes_down_during_its_resync() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    *w.resync_takes.lock().unwrap() = Some(Duration::from_secs(3600));
    let start = tokio::time::Instant::now();
    *w.lost_at.lock().unwrap() = Some(start + Duration::from_secs(2));
    let mut p = policy(Fencing::BestEffort, None);
    p.resync_timeout = Duration::from_secs(3600);
    let rb = execute(failback_rb(), &w, &MemStore::default(), &p).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "given up when b was lost, not after the resync's hour: {:?}",
        start.elapsed()
    );
    assert_eq!(rb.status, RunbookStatus::Failed);
    assert!(rb.preempted && rb.aborted, "{rb:#?}");
    assert_eq!(
        statuses(&rb)[..3],
        [
            (StepName::Decide, StepStatus::Done),
            (StepName::Resync, StepStatus::Failed),
            (StepName::Demote, StepStatus::Pending),
        ]
    );
    let detail = &rb.steps[1].detail;
    assert!(
        detail.contains("b, where users are, was confirmed down"),
        "{detail}"
    );
    let sent: Vec<CommandKind> = w.sent.lock().unwrap().iter().map(|(_, c)| c.kind).collect();
    assert!(
        !sent
            .iter()
            .any(|k| matches!(k, CommandKind::Demote | CommandKind::Promote)),
        "nothing demoted or promoted: {sent:?}"
    );
    assert_eq!(
        w.route.lock().unwrap().0.as_deref(),
        Some("b"),
        "nothing routed"
    );
}

/// From its demote on, a failback is a cut-over that runs to its end or
/// rolls back: the old active site going down then is what the cut-over
/// does, not a reason to give up.
#[tokio::test(start_paused = true)]
async fn a_failback_past_its_resync_is_not_given_up() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    // The journal and the resync take 300 ms each: lost during the demote.
    *w.lost_at.lock().unwrap() = Some(tokio::time::Instant::now() + Duration::from_millis(700));
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    assert!(!rb.preempted);
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("a"));
}

/// A failover is never given up that way (its old site is down by design).
#[tokio::test(start_paused = true)]
async fn a_failover_is_not_given_up_for_its_old_site_being_down() {
    let w = world_on("a", 1);
    *w.lost_at.lock().unwrap() = Some(tokio::time::Instant::now());
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    assert!(!rb.preempted);
}

/// `warden resync` at a standby whose agent does not say it left nothing
/// in place (older than the field): the runbook stops before replication
/// is started into it, saying why; users never moved.
#[tokio::test(start_paused = true)]
async fn a_resync_into_an_agent_that_cannot_say_what_it_kept_starts_no_replication() {
    let w = world_on("b", 2);
    w.replication.store(true, Ordering::Relaxed);
    w.old_agent.store(true, Ordering::Relaxed);
    let rb = Runbook::new(
        1,
        "web",
        RunbookKind::Resync,
        "b",
        "a",
        3,
        "operator",
        1_000_000,
        1_000_000,
    );
    let rb = execute(
        rb,
        &w,
        &MemStore::default(),
        &policy(Fencing::BestEffort, None),
    )
    .await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    assert!(rb.aborted, "nothing moved: {rb:#?}");
    let detail = &rb.steps[1].detail;
    assert!(detail.contains("upgrade it first"), "{detail}");
    let sent: Vec<(String, CommandKind)> = w
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(s, c)| (s.clone(), c.kind))
        .collect();
    assert_eq!(
        sent,
        [("a".to_string(), CommandKind::Resync)],
        "no start: {sent:?}"
    );
    assert_eq!(
        *w.route.lock().unwrap(),
        (Some("b".into()), 2, 0),
        "not routed"
    );
}
