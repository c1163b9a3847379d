//! The executor: each group's commands run one at a time, in arrival
//! order, in a lane of the group's own — groups side by side, so a slow
//! hook of one group does not hold another's promote while its step clock
//! runs at the orchestrator (a site that takes over several groups at once
//! runs their hooks together, as separate hosts would) — each first
//! checked (withdrawn while it waited, refused by the site's authority), a
//! promote's role written to disk and a pull into the site stopped before
//! its hooks (and the checks made again after that wait, right before
//! them), replication commands in tasks of their own (one whose task
//! panics still ends, failed) — and each outcome recorded in the book
//! for the next report.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{AgentSettings, Shared};
use crate::hooks::{run_hooks, HookContext};
use crate::wire::{Command, CommandKind, CommandOutcome};

/// Outcome detail of replication commands at a site without a replication plan.
const NO_REPLICATION: &str = "replication is not configured for this site";

/// Runs queued commands: replication commands in tasks of their own, the
/// others in their group's lane ([`lane`]), one at a time per group.
pub(super) async fn execute(
    shared: Arc<Shared>,
    mut queued: mpsc::UnboundedReceiver<Command>,
    token: CancellationToken,
) {
    // Replication commands run in their own tasks, tracked here: dropping
    // the set on shutdown aborts them.
    let mut replication = Replicating::default();
    // Each group's lane (its hooks' commands, in arrival order); dropping
    // the set on shutdown aborts them.
    let mut lanes: JoinSet<()> = JoinSet::new();
    let mut senders: HashMap<String, mpsc::UnboundedSender<Command>> = HashMap::new();
    loop {
        let cmd = tokio::select! {
            _ = token.cancelled() => return,
            ended = replication.next(), if !replication.is_empty() => {
                if let Some((cmd, outcome)) = ended {
                    finish(&shared, &cmd, outcome);
                }
                continue;
            }
            // A lane ends only on shutdown, or by a bug (a panic): its
            // group gets a new one with its next command.
            _ = lanes.join_next(), if !lanes.is_empty() => {
                senders.retain(|_, tx| !tx.is_closed());
                continue;
            }
            c = queued.recv() => match c {
                Some(c) => c,
                None => return,
            },
        };
        if !is_replication(cmd.kind) {
            let group = cmd.group.clone();
            let cmd = match senders.get(&group) {
                Some(tx) => match tx.send(cmd) {
                    Ok(()) => continue,
                    // Its lane ended (a panic): a new one below.
                    Err(mpsc::error::SendError(cmd)) => cmd,
                },
                None => cmd,
            };
            let (tx, rx) = mpsc::unbounded_channel();
            lanes.spawn(lane(shared.clone(), rx, token.clone()));
            // (The lane holds the receiver: this send cannot fail.)
            let _ = tx.send(cmd);
            senders.insert(group, tx);
            continue;
        }
        // Taken back while it waited here (its runbook ended, the epoch
        // moved on, a demote superseded it): started now, it would act on
        // a decision the orchestrator no longer stands by.
        if let Some(note) = withdrawn(&shared, &cmd.id, "before it started") {
            withhold(&shared, CommandOutcome::failed(&cmd.id, note));
            continue;
        }
        if let Err(refusal) = shared.authority.admit(&cmd) {
            warn!(command = %cmd.id, "{refusal}");
            finish(&shared, &cmd, CommandOutcome::failed(&cmd.id, refusal));
            continue;
        }
        {
            // Replication commands can run for minutes (a resync): they get
            // their own task, so hooks and reports are not held up. Each
            // group runs one replication command at a time.
            let shared = shared.clone();
            let token = token.clone();
            replication.spawn(cmd.clone(), async move {
                // Asked again when its turn comes (behind the group's
                // running command, maybe a long resync): a withdrawal that
                // came meanwhile stops it as one before its start does.
                let was_withdrawn = std::sync::atomic::AtomicBool::new(false);
                let admit = |c: &Command| {
                    if let Some(note) = withdrawn(&shared, &c.id, "while it waited for its turn") {
                        was_withdrawn.store(true, std::sync::atomic::Ordering::SeqCst);
                        return Err(note);
                    }
                    shared.authority.admit(c)
                };
                let outcome = tokio::select! {
                    _ = token.cancelled() => return,
                    o = run_command(&shared.settings, &cmd, &token, &admit) => o,
                };
                if was_withdrawn.load(std::sync::atomic::Ordering::SeqCst) {
                    withhold(&shared, outcome);
                } else {
                    finish(&shared, &cmd, outcome);
                }
            });
            continue;
        }
    }
}

/// One group's lane: its commands one at a time, in arrival order, until
/// shutdown (or the executor ends).
async fn lane(
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    token: CancellationToken,
) {
    loop {
        let cmd = tokio::select! {
            _ = token.cancelled() => return,
            c = commands.recv() => match c {
                Some(c) => c,
                None => return,
            },
        };
        run_in_lane(shared.clone(), cmd, token.clone()).await;
    }
}

/// A command of a group's lane (not a replication command): checked at its
/// turn, then its hooks; its outcome recorded. Returns early on shutdown.
async fn run_in_lane(shared: Arc<Shared>, cmd: Command, token: CancellationToken) {
    // Taken back while it waited here (its runbook ended, the epoch
    // moved on, a demote superseded it): started now, it would act on
    // a decision the orchestrator no longer stands by.
    if let Some(note) = withdrawn(&shared, &cmd.id, "before it started") {
        withhold(&shared, CommandOutcome::failed(&cmd.id, note));
        return;
    }
    if let Err(refusal) = shared.authority.admit(&cmd) {
        warn!(command = %cmd.id, "{refusal}");
        finish(&shared, &cmd, CommandOutcome::failed(&cmd.id, refusal));
        return;
    }
    // A hook of the agent's previous process that SIGKILL did not end
    // still runs: no hook of its group runs beside it.
    if matches!(cmd.kind, CommandKind::Promote | CommandKind::Demote) {
        if let Some(why) = crate::hook_groups::blocking(&shared.settings.state_dir, &cmd.group) {
            warn!(command = %cmd.id, "{why}");
            finish(&shared, &cmd, CommandOutcome::failed(&cmd.id, why));
            return;
        }
    }
    // Not onto the directory under a data volume that is gone.
    if cmd.kind == CommandKind::Promote {
        let s = &shared.settings;
        if let Err(e) = crate::volumes::before_promote(&s.state_dir, &s.volumes, &cmd.group).await {
            warn!(command = %cmd.id, "{e}");
            finish(&shared, &cmd, CommandOutcome::failed(&cmd.id, e));
            return;
        }
    }
    // A promote's role goes to disk first: from now on the rsync gate
    // refuses pushes into this site.
    if let Err(e) = shared.authority.promoting(&cmd) {
        warn!(command = %cmd.id, "{e}");
        finish(&shared, &cmd, CommandOutcome::failed(&cmd.id, e));
        return;
    }
    // A pull into this site (a resync of a failback given up) stops,
    // and a push into it still running from before (the gate judged
    // it when it began) ends, before the promote's hooks open the site
    // to users' writes.
    let mut pull_stopped = None;
    if let (CommandKind::Promote, Some(r)) = (cmd.kind, &shared.settings.replication) {
        pull_stopped = tokio::select! {
            _ = token.cancelled() => return,
            s = r.promoted(&cmd.group, cmd.epoch) => s,
        };
        if let Some(s) = &pull_stopped {
            info!(command = %cmd.id, "{s}");
        }
    }
    if cmd.kind == CommandKind::Promote && stopped_before_hooks(&shared, &cmd, &pull_stopped) {
        return;
    }
    // Cancelling drops the hook run, which kills the running hook.
    let mut outcome = tokio::select! {
        _ = token.cancelled() => return,
        o = run_command(&shared.settings, &cmd, &token, &|_| Ok(())) => o,
    };
    if let Some(s) = pull_stopped {
        outcome.detail = if outcome.detail.is_empty() {
            s
        } else {
            format!("{}; {s}", outcome.detail)
        };
    }
    if outcome.ok && cmd.kind == CommandKind::Promote && !shared.settings.checks.is_empty() {
        // Checks taken after the hooks travel with the outcome: the
        // orchestrator need not wait for the next report to see them.
        let checks = tokio::select! {
            _ = token.cancelled() => return,
            c = shared.checks.run_all_now(&shared.probe) => c,
        };
        outcome.checks = Some(checks);
    }
    if let (true, Some(r)) = (
        outcome.ok && cmd.kind == CommandKind::Demote,
        &shared.settings.replication,
    ) {
        // A demoted site must not push its data to the peer.
        if let Some(stopped) = r.demoted(&cmd.group).await {
            info!(command = %cmd.id, "{stopped}");
            outcome.detail = format!("{}; {stopped}", outcome.detail);
        }
        // The hooks stopped the writes: what changed since the resync
        // began is now final.
        if let Some(mark) = cmd.journal_since {
            outcome.journal = Some(r.journal_since(&cmd.group, mark).await);
        }
    }
    finish(&shared, &cmd, outcome);
}

/// A promote about to run its hooks after it waited (its volumes looked
/// at, a pull into the site stopped, pushes into it ended, containers
/// fenced): a withdrawal or a newer epoch that came meanwhile stops it
/// here, before its hooks open the site to users' writes. The outcome is
/// recorded (with what the wait did: `waited`) and `true` returned. Its
/// role stays `active` on disk (pushes stay refused: the safe side, as
/// after a promote whose hooks failed) until the orchestrator says
/// otherwise.
fn stopped_before_hooks(shared: &Shared, cmd: &Command, waited: &Option<String>) -> bool {
    let with_wait = |note: String| match waited {
        Some(w) => format!("{note}; {w}"),
        None => note,
    };
    let when = "before its hooks ran, while the promote waited for the site to be handed over";
    if let Some(note) = withdrawn(shared, &cmd.id, when) {
        withhold(shared, CommandOutcome::failed(&cmd.id, with_wait(note)));
        return true;
    }
    if let Err(refusal) = shared.authority.admit(cmd) {
        let note = format!("{refusal} (seen while the promote waited, before its hooks ran)");
        warn!(command = %cmd.id, "{note}");
        finish(
            shared,
            cmd,
            CommandOutcome::failed(&cmd.id, with_wait(note)),
        );
        return true;
    }
    false
}

/// The replication commands running in tasks of their own, each task with
/// its command: one whose task panicked (a bug) still ends, failed, instead
/// of staying "running" in the book while the orchestrator waits for it.
#[derive(Default)]
struct Replicating {
    tasks: JoinSet<()>,
    commands: HashMap<tokio::task::Id, Command>,
}

impl Replicating {
    fn spawn(&mut self, cmd: Command, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.commands.insert(handle.id(), cmd);
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for the next task to end (cancel safe). A task that ended on
    /// its own finished its command itself; one that panicked did not:
    /// its command and the failed outcome to finish it with.
    async fn next(&mut self) -> Option<(Command, CommandOutcome)> {
        let joined = self.tasks.join_next_with_id().await?;
        let (id, panic) = match joined {
            Ok((id, ())) => (id, None),
            Err(e) => (e.id(), e.try_into_panic().ok()),
        };
        let cmd = self.commands.remove(&id)?;
        let panic = panic?;
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        // It goes into events: no loaded secret in it.
        let why: String = warden_config::child::scrub(&why)
            .chars()
            .take(300)
            .collect();
        let detail = format!(
            "{} failed: the agent's task running it panicked ({why}), a bug in the agent; \
             what it had done is not known, see the agent's log",
            cmd.kind.as_str()
        );
        let outcome = CommandOutcome::failed(&cmd.id, detail);
        Some((cmd, outcome))
    }
}

/// The outcome's note for a command the orchestrator took back, found so
/// `when` (before its start, at its turn, before its hooks); `None` while
/// it stands.
fn withdrawn(shared: &Shared, id: &str, when: &str) -> Option<String> {
    let why = shared.book().recalled(id)?.to_string();
    Some(format!(
        "not run: withdrawn by the orchestrator {when} ({why})"
    ))
}

/// Records a command the orchestrator took back as not run (withheld: it
/// runs when asked anew only once this outcome is acked) and wakes the
/// report loop.
fn withhold(shared: &Shared, outcome: CommandOutcome) {
    warn!(command = %outcome.id, detail = %outcome.detail, "command not run");
    shared.book().withheld(outcome);
    shared.finished.notify_one();
}

/// Records a finished command's outcome and wakes the report loop.
fn finish(shared: &Shared, cmd: &Command, mut outcome: CommandOutcome) {
    if outcome.ok {
        outcome = settled(cmd, outcome, shared.authority.record(cmd));
    }
    // The first outcome after a start tells the orchestrator which hooks
    // of the previous process were still running, and were ended.
    let leftovers =
        std::mem::take(&mut *shared.leftovers.lock().unwrap_or_else(|p| p.into_inner()));
    for line in leftovers {
        outcome.detail = if outcome.detail.is_empty() {
            line
        } else {
            format!("{}; {line}", outcome.detail)
        };
    }
    if outcome.ok {
        info!(command = %cmd.id, detail = %outcome.detail, "command succeeded");
    } else {
        warn!(command = %cmd.id, detail = %outcome.detail, "command failed");
    }
    shared.book().finish(outcome);
    shared.finished.notify_one();
}

/// A successful command's outcome, once what it changed was (or could not
/// be) written to the authority state (`recorded`).
fn settled(
    cmd: &Command,
    mut outcome: CommandOutcome,
    recorded: Result<(), String>,
) -> CommandOutcome {
    match recorded {
        Ok(()) => {}
        // The hooks stopped the site (and its pushes ended): it is fenced,
        // only its memory of it is not on disk. Its role there stays
        // `active` — the gate keeps refusing pushes into it, the safe
        // side — and it reports that role, so the orchestrator tells it to
        // demote again. Counted: a failover off a site whose disk is full,
        // often why it is failed away from, goes on under a required fence.
        Err(e) if cmd.kind == CommandKind::Demote => {
            outcome.detail = format!(
                "{}; the site is demoted (its hooks ran), but {e}",
                outcome.detail
            );
        }
        // Done but not recorded: the orchestrator must not count on it.
        Err(e) => {
            outcome.ok = false;
            outcome.detail = format!("{}; but {e}", outcome.detail);
        }
    }
    outcome
}

/// Run `cmd`; a replication command's start asks `admit` again when its
/// turn comes (see [`crate::replication::Replication::run_checked`]).
async fn run_command(
    settings: &AgentSettings,
    cmd: &Command,
    token: &CancellationToken,
    admit: &(dyn Fn(&Command) -> Result<(), String> + Sync),
) -> CommandOutcome {
    let hooks = match cmd.kind {
        CommandKind::Promote => &settings.promote,
        CommandKind::Demote => &settings.demote,
        CommandKind::StartReplication
        | CommandKind::StopReplication
        | CommandKind::Resync
        | CommandKind::FinalSync
        | CommandKind::Clear
        | CommandKind::Journal => {
            return match &settings.replication {
                Some(r) => r.run_checked(cmd, token, admit).await,
                None => CommandOutcome::failed(&cmd.id, NO_REPLICATION),
            };
        }
    };
    info!(command = %cmd.id, group = %cmd.group, epoch = cmd.epoch, hooks = hooks.len(), "running {} hooks", cmd.kind.as_str());
    let cx = HookContext {
        group: cmd.group.clone(),
        epoch: cmd.epoch,
        site: settings.site.clone(),
        action: cmd.kind,
        state_dir: Some(settings.state_dir.clone()),
    };
    run_hooks(&cmd.id, hooks, &cx).await
}

fn is_replication(kind: CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::StartReplication
            | CommandKind::StopReplication
            | CommandKind::Resync
            | CommandKind::FinalSync
            | CommandKind::Clear
            | CommandKind::Journal
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site whose disk is full (often why it is failed away from) is
    /// told to demote: its hooks run and succeed — its service stopped,
    /// its pushes ended — but its new role cannot be written. The outcome
    /// says so and still counts: the site is fenced (a `fencing =
    /// "required"` failover goes on; its role on disk stays `active`, so
    /// the gate keeps refusing pushes into it, and the orchestrator tells
    /// it to demote again while it reports that role). A promote that
    /// cannot be recorded does not count (the gate still sees a standby).
    /// Before, the demote's outcome said it failed: a required fence
    /// failed, the failover stopped with the old site already stopped and
    /// nobody promoted — and did so again at every new try while the disk
    /// stayed full.
    #[test]
    fn a_demote_whose_role_cannot_be_written_still_counts() {
        let ok = |id: &str| CommandOutcome {
            id: id.into(),
            ok: true,
            detail: "1 demote hook succeeded".into(),
            hooks: vec![],
            checks: None,
            journal: None,
            kept_in_place: None,
        };
        let full = || Err("No space left on device (os error 28)".to_string());
        let demote = Command::new("g", 5, CommandKind::Demote);
        let o = settled(&demote, ok(&demote.id), full());
        assert!(o.ok, "{o:?}");
        assert!(
            o.detail.contains("demoted") && o.detail.contains("No space left"),
            "{}",
            o.detail
        );
        let promote = Command::new("g", 5, CommandKind::Promote);
        let o = settled(&promote, ok(&promote.id), full());
        assert!(!o.ok && o.detail.contains("No space left"), "{o:?}");
        let o = settled(&demote, ok(&demote.id), Ok(()));
        assert_eq!(o, ok(&demote.id));
    }

    /// A replication command whose task panics (a bug: an unexpected
    /// state, an arithmetic overflow) must still end. Before, the panic
    /// was swallowed with the task: the command stayed "running" in the
    /// book for good, never reported, and the orchestrator waited for it
    /// until its own timeout (or for ever where there is none).
    #[tokio::test]
    async fn a_replication_command_whose_task_panics_ends_failed() {
        let mut running = Replicating::default();
        let resync = Command::new("g", 4, CommandKind::Resync);
        running.spawn(resync.clone(), async {
            panic!("index out of bounds: the len is 0 but the index is 0")
        });
        let start = Command::new("g", 4, CommandKind::StartReplication);
        running.spawn(start, async {});
        let mut ended = vec![];
        while !running.is_empty() {
            ended.extend(running.next().await);
        }
        let [(cmd, outcome)] = &ended[..] else {
            panic!("the panicked command was not finished: {ended:?}");
        };
        assert_eq!(cmd.id, resync.id);
        assert_eq!(outcome.id, resync.id);
        assert!(!outcome.ok);
        assert!(
            outcome
                .detail
                .starts_with("resync failed: the agent's task running it panicked")
                && outcome.detail.contains("index out of bounds"),
            "{}",
            outcome.detail
        );
        assert!(running.commands.is_empty(), "every ended task forgotten");
    }

    #[tokio::test]
    async fn replication_commands_are_refused() {
        let settings = AgentSettings::bare("ca", "http://127.0.0.1:1");
        for kind in [
            CommandKind::StartReplication,
            CommandKind::StopReplication,
            CommandKind::Resync,
            CommandKind::FinalSync,
        ] {
            let out = run_command(
                &settings,
                &Command::new("g", 3, kind),
                &CancellationToken::new(),
                &|_| Ok(()),
            )
            .await;
            assert!(!out.ok);
            assert_eq!(out.detail, NO_REPLICATION);
            assert_eq!(out.id, format!("g:3:{}", kind.as_str()));
        }
    }
}
