//! The command ledger: every command the orchestrator queued for an agent,
//! for which site, and its outcome (DESIGN §10, "who may give an order").
//!
//! Only this module decides whether an outcome counts:
//! - an outcome is recorded only for a command this orchestrator queued, and
//!   only when it comes from the site the command was queued for; anything
//!   else is dropped and tallied per reporting site (the service turns the
//!   tally into an event);
//! - commands belong to a runbook (or to the replication round): when the
//!   runbook ends or the group's epoch moves on, its queued commands are
//!   withdrawn and no agent is handed them again; a demote withdraws a
//!   promote of the same site and group still waiting (demotes are handed
//!   out first, so the older promote would run after it);
//! - a withdrawn command that was already handed out is recalled: the site's
//!   answers list it for [`RECALL_FOR`] (or until the site reports it), so an
//!   agent that holds it behind a running hook does not start it late;
//! - memory is bounded by what the orchestrator queued, never by what agents
//!   send: finished entries are evicted oldest first, outcome texts are cut.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

use crate::text::cut;
use warden_proto::agent::{Command, CommandKind, CommandOutcome, Withdrawn};

/// Finished or withdrawn entries kept (for a resumed runbook that asks again).
pub const FINISHED_KEPT: usize = 4096;
/// Longest outcome detail kept, in bytes.
const DETAIL_MAX: usize = 2048;
/// Most hook results kept per outcome.
const HOOKS_MAX: usize = 64;
/// The most changed names kept from a demote's journal, and their bytes
/// (more: the final pass covers the whole tree).
const JOURNAL_NAMES_MAX: usize = 4_096;
const JOURNAL_BYTES_MAX: usize = 48 * 1024;
/// The most check results kept from a promote outcome.
const CHECKS_MAX: usize = 64;
/// How long a withdrawn command that was handed out is recalled in its
/// site's answers: longer than an agent holds an order behind another's
/// hooks (their timeouts), short enough that answers stay small.
pub const RECALL_FOR: Duration = Duration::from_secs(600);
/// The most recalled commands listed per site (the newest).
const RECALLED_MAX: usize = 64;

/// Where a command stands.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandState {
    Queued,
    Finished(CommandOutcome),
    /// Taken back (its runbook ended or the epoch moved on); the reason.
    Withdrawn(String),
}

#[derive(Debug, Clone)]
struct Entry {
    cmd: Command,
    runbook: Option<u64>,
    state: CommandState,
    /// A long-poll already handed it out: it alone does not end the next
    /// poll early (the agent runs it; reports keep repeating it).
    polled: bool,
    /// An answer (report or poll) carried it: withdrawn, it is recalled.
    handed: bool,
}

/// What became of one outcome an agent sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Recorded: the command was queued for this site and waited for it.
    Recorded,
    /// Already recorded (an agent resends until acked).
    Repeated,
    /// A late outcome for a command that was withdrawn: ignored.
    Late,
    /// The command was queued for another site: dropped.
    Foreign { queued_for: String },
    /// No such command was queued: dropped.
    Unknown,
}

/// Outcomes dropped from one reporting site since the last event about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DroppedTally {
    pub count: u64,
    /// The first few ids, cut and escaped for display.
    pub examples: Vec<String>,
}

/// Commands queued for agents and their outcomes.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: HashMap<String, Entry>,
    /// Queued ids per site, in queue order.
    queued: BTreeMap<String, Vec<String>>,
    /// Finished and withdrawn ids, oldest first (eviction order).
    done: VecDeque<String>,
    dropped: BTreeMap<String, DroppedTally>,
    /// Per site: handed-out commands withdrawn since, newest last, with
    /// when (see [`Ledger::recalled_for`]).
    recalled: BTreeMap<String, VecDeque<(Withdrawn, Instant)>>,
}

impl Ledger {
    /// Queue `cmd` for `cmd.site`. A command already finished is not queued
    /// again (its outcome stands); a withdrawn one is queued again (asked
    /// anew, e.g. the demote of a site that was unreachable). Returns whether
    /// it is now queued and was not before.
    pub fn queue(&mut self, cmd: Command, runbook: Option<u64>) -> bool {
        debug_assert!(!cmd.site.is_empty(), "commands name their site");
        if let Some(e) = self.entries.get_mut(&cmd.id) {
            match e.state {
                CommandState::Queued | CommandState::Finished(_) => return false,
                CommandState::Withdrawn(_) => {
                    self.done.retain(|id| id != &cmd.id);
                    // Asked anew: no longer taken back.
                    self.unrecall(&cmd.site, &cmd.id);
                }
            }
        }
        if cmd.kind == CommandKind::Demote {
            // The newer order wins: a promote of the same site and group
            // still waiting (one whose step timed out, before a roll-back
            // demotes the site again) would otherwise be handed out after
            // this demote, which goes first, and leave the site promoted.
            let (site, group, epoch) = (cmd.site.clone(), cmd.group.clone(), cmd.epoch);
            self.withdraw(
                |e| {
                    e.cmd.kind == CommandKind::Promote
                        && e.cmd.site == site
                        && e.cmd.group == group
                        && e.cmd.epoch <= epoch
                },
                &format!("superseded by {}", cmd.id),
            );
        }
        let q = self.queued.entry(cmd.site.clone()).or_default();
        if cmd.kind == CommandKind::Demote {
            // A demote goes before anything else the site is told.
            q.insert(0, cmd.id.clone());
        } else {
            q.push(cmd.id.clone());
        }
        self.entries.insert(
            cmd.id.clone(),
            Entry {
                cmd,
                runbook,
                state: CommandState::Queued,
                polled: false,
                handed: false,
            },
        );
        true
    }

    /// The state of command `id`, if it is known.
    pub fn state(&self, id: &str) -> Option<&CommandState> {
        self.entries.get(id).map(|e| &e.state)
    }

    /// The outcome of command `id`, once its site reported it.
    pub fn outcome(&self, id: &str) -> Option<&CommandOutcome> {
        match self.state(id)? {
            CommandState::Finished(o) => Some(o),
            _ => None,
        }
    }

    /// The commands waiting for `site`, demotes first.
    pub fn pending_for(&self, site: &str) -> Vec<Command> {
        self.queued
            .get(site)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.entries.get(id))
                    .map(|e| e.cmd.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// For a report's answer: what [`Ledger::pending_for`] gives, all of it
    /// counted as handed out from now on (recalled if withdrawn).
    pub fn hand_out(&mut self, site: &str) -> Vec<Command> {
        let mut out = Vec::new();
        for id in self.queued.get(site).into_iter().flatten() {
            if let Some(e) = self.entries.get_mut(id) {
                e.handed = true;
                out.push(e.cmd.clone());
            }
        }
        out
    }

    /// The commands handed to `site` and withdrawn within [`RECALL_FOR`]
    /// before `now` that it has not reported since, oldest first: what its
    /// agent must not start if it still holds them.
    pub fn recalled_for(&mut self, site: &str, now: Instant) -> Vec<Withdrawn> {
        let Some(list) = self.recalled.get_mut(site) else {
            return Vec::new();
        };
        list.retain(|(_, at)| now.saturating_duration_since(*at) < RECALL_FOR);
        let out = list.iter().map(|(w, _)| w.clone()).collect();
        if list.is_empty() {
            self.recalled.remove(site);
        }
        out
    }

    fn unrecall(&mut self, site: &str, id: &str) {
        if let Some(list) = self.recalled.get_mut(site) {
            list.retain(|(w, _)| w.id != id);
            if list.is_empty() {
                self.recalled.remove(site);
            }
        }
    }

    /// For a long-poll: what [`Ledger::pending_for`] gives, and whether any
    /// of it was not handed out by a poll yet (only that ends a poll early:
    /// a command the agent already runs would otherwise answer every poll
    /// at once, and the agent would wait a report interval for the next
    /// one). All of them count as handed out from now on.
    pub fn take_for_poll(&mut self, site: &str) -> (Vec<Command>, bool) {
        let mut fresh = false;
        let mut out = Vec::new();
        for id in self.queued.get(site).into_iter().flatten() {
            if let Some(e) = self.entries.get_mut(id) {
                fresh |= !e.polled;
                e.polled = true;
                e.handed = true;
                out.push(e.cmd.clone());
            }
        }
        (out, fresh)
    }

    /// Whether `site` has a demote waiting for `group`.
    pub fn demote_pending(&self, site: &str, group: &str) -> bool {
        self.pending_for(site)
            .iter()
            .any(|c| c.group == group && c.kind == CommandKind::Demote)
    }

    /// Take one outcome reported by `site`'s agent.
    pub fn accept(&mut self, site: &str, outcome: &CommandOutcome) -> Accepted {
        let verdict = match self.entries.get(&outcome.id) {
            None => Accepted::Unknown,
            Some(e) if e.cmd.site != site => Accepted::Foreign {
                queued_for: e.cmd.site.clone(),
            },
            Some(e) => match e.state {
                CommandState::Queued => Accepted::Recorded,
                CommandState::Finished(_) => Accepted::Repeated,
                CommandState::Withdrawn(_) => Accepted::Late,
            },
        };
        match &verdict {
            Accepted::Recorded => {
                if let Some(q) = self.queued.get_mut(site) {
                    q.retain(|id| id != &outcome.id);
                }
                if let Some(e) = self.entries.get_mut(&outcome.id) {
                    e.state = CommandState::Finished(bounded(outcome));
                }
                self.retire(outcome.id.clone());
            }
            Accepted::Foreign { .. } | Accepted::Unknown => {
                let t = self.dropped.entry(site.to_string()).or_default();
                t.count += 1;
                if t.examples.len() < 3 {
                    t.examples.push(display_id(&outcome.id));
                }
            }
            // The site ran it, or reports it not run: no longer held there.
            Accepted::Late => self.unrecall(site, &outcome.id),
            Accepted::Repeated => {}
        }
        verdict
    }

    /// Withdraw the queued commands of `group` below `epoch` (the epoch moved
    /// on). Returns the withdrawn commands.
    pub fn withdraw_below(&mut self, group: &str, epoch: u64, why: &str) -> Vec<Command> {
        self.withdraw(|e| e.cmd.group == group && e.cmd.epoch < epoch, why)
    }

    /// Withdraw the queued commands of runbook `id` (it ended).
    pub fn withdraw_runbook(&mut self, id: u64, why: &str) -> Vec<Command> {
        self.withdraw(|e| e.runbook == Some(id), why)
    }

    /// Take (and reset) the per-site tallies of dropped outcomes.
    pub fn take_dropped(&mut self) -> BTreeMap<String, DroppedTally> {
        std::mem::take(&mut self.dropped)
    }

    /// Queued commands, all sites (for tests and views).
    pub fn queued_count(&self) -> usize {
        self.queued.values().map(Vec::len).sum()
    }

    fn withdraw(&mut self, pick: impl Fn(&Entry) -> bool, why: &str) -> Vec<Command> {
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.state == CommandState::Queued && pick(e))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::new();
        let now = Instant::now();
        for id in ids {
            if let Some(e) = self.entries.get_mut(&id) {
                e.state = CommandState::Withdrawn(why.to_string());
                if let Some(q) = self.queued.get_mut(&e.cmd.site) {
                    q.retain(|x| x != &id);
                }
                if e.handed {
                    let mut why = why.to_string();
                    cut(&mut why, 200);
                    let list = self.recalled.entry(e.cmd.site.clone()).or_default();
                    list.retain(|(w, _)| w.id != id);
                    list.push_back((
                        Withdrawn {
                            id: id.clone(),
                            why,
                        },
                        now,
                    ));
                    while list.len() > RECALLED_MAX {
                        list.pop_front();
                    }
                }
                out.push(e.cmd.clone());
            }
            self.retire(id);
        }
        out
    }

    fn retire(&mut self, id: String) {
        self.done.push_back(id);
        while self.done.len() > FINISHED_KEPT {
            if let Some(old) = self.done.pop_front() {
                self.entries.remove(&old);
            }
        }
    }
}

/// An outcome with its texts cut to size (an agent's answer is untrusted input).
fn bounded(o: &CommandOutcome) -> CommandOutcome {
    let mut o = o.clone();
    cut(&mut o.detail, DETAIL_MAX);
    o.hooks.truncate(HOOKS_MAX);
    for h in &mut o.hooks {
        cut(&mut h.name, 256);
        cut(&mut h.detail, DETAIL_MAX / 4);
    }
    if let Some(j) = &mut o.journal {
        cut(&mut j.note, DETAIL_MAX / 4);
        let bytes: usize = j.names.iter().flatten().map(|n| n.len() + 3).sum();
        if j.names
            .as_ref()
            .is_some_and(|n| n.len() > JOURNAL_NAMES_MAX)
            || bytes > JOURNAL_BYTES_MAX
        {
            j.names = None;
            j.note = format!("{bytes} bytes of changed names, more than this orchestrator keeps");
        }
    }
    if o.checks.as_ref().is_some_and(|c| c.len() > CHECKS_MAX) {
        // Cut short, they could leave out the one critical check that
        // fails: none are kept, and the promote step waits for a report,
        // which carries every check (`fresh_checks_pass`).
        o.checks = None;
    }
    if let Some(checks) = &mut o.checks {
        for c in checks {
            cut(&mut c.name, 256);
            cut(&mut c.detail, DETAIL_MAX / 4);
        }
    }
    o
}

/// A reported id, cut and with control characters escaped, for events.
pub fn display_id(id: &str) -> String {
    let mut s: String = id.chars().take(80).flat_map(char::escape_debug).collect();
    if id.chars().count() > 80 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(group: &str, epoch: u64, kind: CommandKind, site: &str) -> Command {
        Command::new(group, epoch, kind).to_site(site)
    }

    fn ok(id: &str) -> CommandOutcome {
        CommandOutcome {
            id: id.into(),
            ok: true,
            detail: "done".into(),
            hooks: vec![],
            checks: None,
            journal: None,
            kept_in_place: None,
        }
    }

    /// A promote outcome with more checks than are kept (65: 64 that
    /// pass, then a critical one that fails) keeps none, so the promote
    /// step waits for a report (which carries every check). Before, the
    /// list was cut to the first 64 — all passing — and the step ended on
    /// "checks pass" with the site's failing critical check left out.
    #[test]
    fn a_promote_outcome_with_more_checks_than_kept_keeps_none() {
        let mut l = Ledger::default();
        let promote = cmd("web", 3, CommandKind::Promote, "b");
        l.queue(promote.clone(), Some(1));
        let check = |i: usize, ok: bool| warden_proto::agent::CheckResult {
            name: format!("c{i}"),
            ok,
            critical: true,
            detail: String::new(),
            elapsed_ms: 1,
        };
        let mut o = ok(&promote.id);
        o.checks = Some((0..CHECKS_MAX).map(|i| check(i, true)).collect());
        o.checks.as_mut().unwrap().push(check(CHECKS_MAX, false));
        assert_eq!(l.accept("b", &o), Accepted::Recorded);
        let kept = l.outcome(&promote.id).expect("recorded");
        assert_eq!(
            kept.checks.as_ref().map(Vec::len),
            None,
            "a cut list of checks, all passing, was kept"
        );
        // As many as are kept: all of them, the failing one too.
        let mut l = Ledger::default();
        l.queue(promote.clone(), Some(1));
        o.checks.as_mut().unwrap().remove(0);
        assert_eq!(l.accept("b", &o), Accepted::Recorded);
        let kept = l.outcome(&promote.id).expect("recorded");
        assert!(kept
            .checks
            .as_ref()
            .is_some_and(|c| c.len() == CHECKS_MAX && c.iter().any(|c| !c.ok)));
    }

    #[test]
    fn a_poll_ends_early_only_for_a_command_no_poll_handed_out_yet() {
        let mut l = Ledger::default();
        assert_eq!(l.take_for_poll("a"), (vec![], false));
        let first = cmd("web", 2, CommandKind::FinalSync, "a");
        l.queue(first.clone(), None);
        assert_eq!(l.take_for_poll("a"), (vec![first.clone()], true));
        // Running at the agent, still pending: not a reason to answer at once.
        assert_eq!(l.take_for_poll("a"), (vec![first.clone()], false));
        let next = cmd("web", 2, CommandKind::Promote, "a");
        l.queue(next.clone(), None);
        let (cmds, fresh) = l.take_for_poll("a");
        assert!(fresh);
        assert_eq!(cmds.len(), 2);
        // Reports still repeat every pending command.
        assert_eq!(l.pending_for("a").len(), 2);
    }

    #[test]
    fn outcomes_count_only_from_the_site_the_command_was_queued_for() {
        let mut l = Ledger::default();
        let demote = cmd("web", 2, CommandKind::Demote, "ca");
        // Sent before anything was queued: dropped, not remembered.
        assert_eq!(l.accept("tx", &ok(&demote.id)), Accepted::Unknown);
        assert!(l.queue(demote.clone(), Some(1)));
        assert!(l.outcome(&demote.id).is_none());
        assert_eq!(
            l.accept("tx", &ok(&demote.id)),
            Accepted::Foreign {
                queued_for: "ca".into()
            }
        );
        assert!(
            l.outcome(&demote.id).is_none(),
            "a foreign outcome never counts"
        );
        assert_eq!(l.pending_for("ca"), vec![demote.clone()]);
        assert_eq!(l.accept("ca", &ok(&demote.id)), Accepted::Recorded);
        assert!(l.outcome(&demote.id).is_some());
        assert!(l.pending_for("ca").is_empty());
        assert_eq!(l.accept("ca", &ok(&demote.id)), Accepted::Repeated);
        let d = l.take_dropped();
        assert_eq!(d["tx"].count, 2);
        assert!(l.take_dropped().is_empty());
    }

    #[test]
    fn a_flood_of_unknown_outcomes_keeps_nothing() {
        let mut l = Ledger::default();
        let real = cmd("web", 3, CommandKind::Promote, "ca");
        l.queue(real.clone(), Some(7));
        for i in 0..10_000 {
            let mut o = ok(&format!("~flood{i}"));
            o.detail = "x".repeat(62_000);
            assert_eq!(l.accept("ca", &o), Accepted::Unknown);
        }
        assert_eq!(
            l.entries.len(),
            1,
            "only what the orchestrator queued is kept"
        );
        assert_eq!(l.pending_for("ca"), vec![real]);
        assert_eq!(l.take_dropped()["ca"].count, 10_000);
    }

    #[test]
    fn recorded_outcomes_are_cut_to_size() {
        let mut l = Ledger::default();
        let c = cmd("web", 3, CommandKind::Promote, "ca");
        l.queue(c.clone(), None);
        let mut o = ok(&c.id);
        o.detail = "é".repeat(40_000);
        l.accept("ca", &o);
        assert!(l.outcome(&c.id).unwrap().detail.len() <= DETAIL_MAX + 3);
    }

    #[test]
    fn ending_a_runbook_or_moving_the_epoch_withdraws_its_commands() {
        let mut l = Ledger::default();
        let promote = cmd("web", 3, CommandKind::Promote, "ca");
        let repl = cmd("web", 3, CommandKind::StartReplication, "tx");
        let other = cmd("db", 3, CommandKind::Promote, "ca");
        l.queue(promote.clone(), Some(9));
        l.queue(repl.clone(), None);
        l.queue(other.clone(), Some(10));
        let w = l.withdraw_runbook(9, "runbook 9 ended");
        assert_eq!(w, vec![promote.clone()]);
        assert_eq!(l.pending_for("ca"), vec![other.clone()]);
        assert_eq!(l.accept("ca", &ok(&promote.id)), Accepted::Late);
        assert!(l.outcome(&promote.id).is_none());
        let w = l.withdraw_below("web", 4, "epoch 4");
        assert_eq!(w, vec![repl]);
        assert!(l.pending_for("tx").is_empty());
        assert_eq!(l.pending_for("ca"), vec![other]);
        // A withdrawn command may be asked anew.
        assert!(l.queue(promote.clone(), None));
        assert_eq!(l.pending_for("ca")[1], promote);
    }

    /// A promote that timed out at a site that was briefly silent, then the
    /// roll-back's demote of that site: when the site is heard again it
    /// must get the demote only, never the demote (first) and then the
    /// promote, which would leave it promoted beside the site the
    /// roll-back promotes back.
    #[test]
    fn a_demote_withdraws_a_promote_of_the_same_site_and_group_still_waiting() {
        let mut l = Ledger::default();
        let promote = cmd("web", 5, CommandKind::Promote, "b");
        let other_group = cmd("db", 5, CommandKind::Promote, "b");
        let other_site = cmd("web", 6, CommandKind::Promote, "a");
        l.queue(promote.clone(), Some(3));
        l.queue(other_group.clone(), Some(4));
        l.queue(other_site.clone(), Some(5));
        let mut back = cmd("web", 5, CommandKind::Demote, "b");
        back.id = "web:5:demote_back".into();
        assert!(l.queue(back.clone(), Some(3)));
        assert_eq!(l.pending_for("b"), vec![back.clone(), other_group]);
        assert!(matches!(
            l.state(&promote.id),
            Some(CommandState::Withdrawn(why)) if why.contains("web:5:demote_back")
        ));
        // The site ran the promote before it was withdrawn: a late outcome.
        assert_eq!(l.accept("b", &ok(&promote.id)), Accepted::Late);
        assert_eq!(l.pending_for("a"), vec![other_site]);
        // A promote of a newer epoch than the demote stays.
        let newer = cmd("web", 7, CommandKind::Promote, "b");
        l.queue(newer.clone(), None);
        l.queue(cmd("web", 6, CommandKind::Demote, "b"), None);
        assert!(l.pending_for("b").contains(&newer));
    }

    /// A command withdrawn after an answer carried it is listed in the
    /// site's answers (the agent may still hold it behind another's hooks)
    /// until the site reports it, it is asked anew, or `RECALL_FOR` passes;
    /// one never handed out is not listed (the agent never had it).
    #[test]
    fn a_withdrawn_command_that_was_handed_out_is_recalled() {
        let mut l = Ledger::default();
        let promote = cmd("web", 5, CommandKind::Promote, "b");
        let never = cmd("db", 5, CommandKind::Promote, "b");
        l.queue(promote.clone(), Some(3));
        assert_eq!(l.hand_out("b"), vec![promote.clone()]);
        l.queue(never.clone(), Some(3));
        l.withdraw_runbook(3, "runbook 3 ended: rolled back");
        let now = Instant::now();
        let ids = |l: &mut Ledger, at| {
            l.recalled_for("b", at)
                .into_iter()
                .map(|w| (w.id, w.why))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&mut l, now),
            vec![(promote.id.clone(), "runbook 3 ended: rolled back".into())]
        );
        assert!(l.recalled_for("a", now).is_empty(), "another site's");
        // Asked anew: no longer taken back.
        l.queue(promote.clone(), Some(4));
        assert!(ids(&mut l, now).is_empty());
        // Handed out by a poll this time, withdrawn again, then reported.
        let _ = l.take_for_poll("b");
        l.withdraw_below("web", 6, "the epoch moved on to 6");
        assert_eq!(ids(&mut l, now).len(), 1);
        assert_eq!(l.accept("b", &ok(&promote.id)), Accepted::Late);
        assert!(ids(&mut l, now).is_empty(), "the site reported it");
        // Withdrawn a third time and never reported: listed for RECALL_FOR.
        l.queue(promote.clone(), Some(5));
        let _ = l.hand_out("b");
        l.withdraw_runbook(5, "runbook 5 ended");
        let later = Instant::now();
        assert_eq!(ids(&mut l, later + RECALL_FOR / 2).len(), 1);
        assert!(ids(&mut l, later + RECALL_FOR).is_empty());
    }

    #[test]
    fn demotes_go_first() {
        let mut l = Ledger::default();
        l.queue(cmd("web", 2, CommandKind::StartReplication, "a"), None);
        l.queue(cmd("web", 2, CommandKind::Demote, "a"), None);
        assert_eq!(l.pending_for("a")[0].kind, CommandKind::Demote);
        assert!(l.demote_pending("a", "web"));
    }

    #[test]
    fn finished_entries_are_evicted_oldest_first() {
        let mut l = Ledger::default();
        for e in 0..(FINISHED_KEPT as u64 + 10) {
            let c = cmd("web", e, CommandKind::Promote, "a");
            l.queue(c.clone(), None);
            l.accept("a", &ok(&c.id));
        }
        assert!(l.entries.len() <= FINISHED_KEPT);
        assert!(l.outcome("web:0:promote").is_none());
        assert!(l
            .outcome(&format!("web:{}:promote", FINISHED_KEPT + 9))
            .is_some());
    }
}
