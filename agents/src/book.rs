//! The agent's command book: delivery made idempotent by command id (an id
//! queued or running is ignored, one already finished gets its stored
//! outcome again, never a second run), the commands the orchestrator took
//! back while they waited here (reported not run; asked anew, they run),
//! and the outcomes that travel with every report until the orchestrator
//! acks them.
//!
//! An answer is taken whole ([`CommandBook::answer`]); one placed before
//! the newest already taken from the same orchestrator process (its
//! [`AnswerOrder`]) — made earlier, late on the other channel — starts
//! nothing and takes nothing back: only its acks count.

use std::collections::{HashMap, VecDeque};

use crate::wire::{AnswerOrder, Command, CommandOutcome, ReportResponse, Withdrawn};

/// How many finished outcomes are kept for answering a repeated command id.
pub(crate) const FINISHED_KEPT: usize = 256;

/// How many orchestrator processes' newest answers are remembered (a few
/// orchestrators, each restarted now and then).
const MAKERS_KEPT: usize = 16;

/// What an answer brought (see [`CommandBook::answer`]).
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// Made before the newest answer already taken from its maker: its
    /// commands and withdrawals were passed over.
    pub stale: bool,
    /// The withdrawals that took back a command held here.
    pub recalled: Vec<Withdrawn>,
    /// Every command listed, with what to do with it.
    pub offers: Vec<(Command, Offer)>,
}

/// What to do with a delivered command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// New id: queue it.
    Run,
    /// Already finished: its stored outcome is reported again.
    Resend,
    /// Already queued or running: nothing to do.
    Ignore,
}

/// Command bookkeeping that makes delivery idempotent by id.
#[derive(Debug, Default)]
pub(crate) struct CommandBook {
    /// Ids queued or running (a second delivery is ignored), each with the
    /// highest leader term that handed it out: only an answer of that term
    /// or a later one may take it back (see [`CommandBook::recall`]).
    active: HashMap<String, u64>,
    /// Ids among `active` the orchestrator withdrew, why, and the leader
    /// term of the answer that withdrew them: one not started yet is not
    /// started (see [`CommandBook::recalled`]), unless an answer of that
    /// term or a later one hands it out again.
    recalled: HashMap<String, (String, u64)>,
    /// The last [`FINISHED_KEPT`] outcomes, oldest first: a repeated id gets
    /// its outcome again instead of a second run. Kept without the checks a
    /// promote ran after its hooks: those were fresh once, not at a resend.
    finished: VecDeque<CommandOutcome>,
    /// Outcomes sent with every report until the orchestrator acks them.
    /// A promote's checks go with the first report only (see
    /// [`CommandBook::for_report`]).
    unacked: Vec<CommandOutcome>,
    /// Ids among `finished` that never ran (taken back before they
    /// started, see [`CommandBook::withheld`]), each with the leader term
    /// that took it back: handed out again by that term or a later one
    /// (the orchestrator asks a withdrawn command anew), it runs.
    withheld: HashMap<String, u64>,
    /// The newest answer taken from each orchestrator process, the one
    /// heard from last at the back (see [`CommandBook::answer`]).
    newest: VecDeque<AnswerOrder>,
}

impl CommandBook {
    /// Takes an orchestrator's answer: its acks always (facts, whenever
    /// they arrive); its withdrawals ([`CommandBook::recall`]) and commands
    /// ([`CommandBook::offer`]) only if it is not older than the newest
    /// answer already taken from the same orchestrator process. Two
    /// answers of one leader travel on two channels (the report stream or
    /// POST, and the command long-poll); one made before a take-back and
    /// late would otherwise start the command taken back — also when the
    /// take-back came before the command was held here at all. The
    /// orchestrator lists its pending commands in every answer, so one
    /// passed over costs nothing a newer answer does not carry.
    pub(crate) fn answer(&mut self, resp: ReportResponse) -> Taken {
        self.ack(&resp.acked);
        if !self.in_place(resp.order.as_ref()) {
            return Taken {
                stale: true,
                ..Taken::default()
            };
        }
        let mut taken = Taken::default();
        if self.recall(&resp.withdrawn, resp.term) > 0 {
            taken.recalled = resp
                .withdrawn
                .into_iter()
                .filter(|w| self.recalled(&w.id).is_some())
                .collect();
        }
        for cmd in resp.commands {
            let offer = self.offer(&cmd, resp.term);
            taken.offers.push((cmd, offer));
        }
        taken
    }

    /// Whether an answer placed at `order` is not older than the newest
    /// taken from its maker (and, if so, now the newest). Without a place
    /// (an older orchestrator's answer) it is taken as it comes.
    fn in_place(&mut self, order: Option<&AnswerOrder>) -> bool {
        let Some(order) = order else {
            return true;
        };
        if let Some(i) = self.newest.iter().position(|o| o.maker == order.maker) {
            if order.n < self.newest[i].n {
                return false;
            }
            self.newest.remove(i);
        }
        self.newest.push_back(order.clone());
        if self.newest.len() > MAKERS_KEPT {
            self.newest.pop_front();
        }
        true
    }

    /// A command delivered in an answer made under leader term `term`.
    pub(crate) fn offer(&mut self, cmd: &Command, term: u64) -> Offer {
        if let Some(by) = self.active.get_mut(&cmd.id) {
            // Listed as waiting again by the term that took it back or a
            // later one: asked anew, no longer taken back. A deposed
            // leader's answer made before the take-over and delayed in
            // transit asks nothing anew.
            *by = (*by).max(term);
            if self
                .recalled
                .get(&cmd.id)
                .is_some_and(|(_, at)| term >= *at)
            {
                self.recalled.remove(&cmd.id);
            }
            return Offer::Ignore;
        }
        // Asked anew only once the orchestrator has heard that it never
        // ran (that outcome acked): a copy of an answer made before the
        // take-back, late on the other channel (the stream and the
        // long-poll), lists it under the same term, and must not run a
        // promote the orchestrator withdrew.
        let heard = !self.unacked.iter().any(|o| o.id == cmd.id);
        if heard && self.withheld.get(&cmd.id).is_some_and(|at| term >= *at) {
            // Never run: asked anew, it runs now; the outcome that said
            // it was not run answers nothing any more.
            self.withheld.remove(&cmd.id);
            self.finished.retain(|o| o.id != cmd.id);
            self.unacked.retain(|o| o.id != cmd.id);
            self.active.insert(cmd.id.clone(), term);
            return Offer::Run;
        }
        if let Some(done) = self.finished.iter().find(|o| o.id == cmd.id) {
            if !self.unacked.iter().any(|o| o.id == cmd.id) {
                self.unacked.push(done.clone());
            }
            return Offer::Resend;
        }
        self.active.insert(cmd.id.clone(), term);
        Offer::Run
    }

    /// The orchestrators moved to a new etcd cluster, whose leader terms
    /// start over: the terms kept with held and withheld commands (of the
    /// cluster left) rank below every term of the new one, so its leader
    /// may take back or hand out again what the old cluster's handed out
    /// or took back (its terms would be judged older otherwise, until a
    /// restart). The old cluster's leaders are refused whole meanwhile
    /// (`crate::authority`).
    pub(crate) fn clusters_moved(&mut self) {
        self.active.values_mut().for_each(|t| *t = 0);
        self.recalled.values_mut().for_each(|(_, t)| *t = 0);
        self.withheld.values_mut().for_each(|t| *t = 0);
    }

    /// Notes the commands the orchestrator took back in an answer made
    /// under leader term `term`; only those held here (queued or running)
    /// and last handed out under that term or an earlier one are kept: a
    /// deposed leader's answer delayed in transit does not take back what
    /// a later leader handed out again, nor (see [`CommandBook::offer`])
    /// hand out again what a later leader took back. Returns how many
    /// were kept.
    pub(crate) fn recall(&mut self, withdrawn: &[Withdrawn], term: u64) -> usize {
        let mut held = 0;
        for w in withdrawn {
            if self.active.get(&w.id).is_some_and(|by| *by <= term) {
                // The latest recalling term counts (answers may arrive out of order).
                match self.recalled.get_mut(&w.id) {
                    Some((why, at)) if *at <= term => (*why, *at) = (w.why.clone(), term),
                    Some(_) => {}
                    None => {
                        self.recalled.insert(w.id.clone(), (w.why.clone(), term));
                        held += 1;
                    }
                }
            }
        }
        held
    }

    /// Why command `id`, about to start, was taken back by the
    /// orchestrator, if it was: it is then not run.
    pub(crate) fn recalled(&self, id: &str) -> Option<&str> {
        self.recalled.get(id).map(|(why, _)| why.as_str())
    }

    /// Command `outcome.id`, taken back before it started, is reported not
    /// run: like [`CommandBook::finish`], but asked anew by the term that
    /// took it back or a later one, it runs (see [`CommandBook::offer`]).
    pub(crate) fn withheld(&mut self, outcome: CommandOutcome) {
        let at = self.recalled.get(&outcome.id).map(|(_, at)| *at);
        let id = outcome.id.clone();
        self.finish(outcome);
        if let Some(at) = at {
            self.withheld.insert(id, at);
        }
    }

    pub(crate) fn finish(&mut self, outcome: CommandOutcome) {
        self.active.remove(&outcome.id);
        self.withheld.remove(&outcome.id);
        self.recalled.remove(&outcome.id);
        self.finished.retain(|o| o.id != outcome.id);
        self.finished.push_back(CommandOutcome {
            checks: None,
            ..outcome.clone()
        });
        while self.finished.len() > FINISHED_KEPT {
            if let Some(gone) = self.finished.pop_front() {
                self.withheld.remove(&gone.id);
            }
        }
        self.unacked.retain(|o| o.id != outcome.id);
        self.unacked.push(outcome);
        // The orchestrator refuses reports with more than 256 outcomes.
        if self.unacked.len() > FINISHED_KEPT {
            let extra = self.unacked.len() - FINISHED_KEPT;
            self.unacked.drain(..extra);
        }
    }

    pub(crate) fn ack(&mut self, ids: &[String]) {
        self.unacked.retain(|o| !ids.contains(&o.id));
    }

    #[cfg(test)]
    fn unacked(&self) -> Vec<CommandOutcome> {
        self.unacked.clone()
    }

    /// The outcomes for the next report. A promote's checks travel in this
    /// one only: as fresh as the report's own checks; a resend (the report
    /// was lost, or the orchestrator asks again after a restart) carries the
    /// outcome without them, and the orchestrator waits for a report.
    pub(crate) fn for_report(&mut self) -> Vec<CommandOutcome> {
        let out = self.unacked.clone();
        for o in &mut self.unacked {
            o.checks = None;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CommandKind;

    fn cmd(id: &str) -> Command {
        Command {
            id: id.into(),
            ..Command::new("g", 1, CommandKind::Promote)
        }
    }

    fn outcome(id: &str) -> CommandOutcome {
        CommandOutcome {
            id: id.into(),
            ok: true,
            checks: None,
            journal: None,
            detail: String::new(),
            hooks: Vec::new(),
            kept_in_place: None,
        }
    }

    #[test]
    fn book_dedups_resends_and_acks() {
        let mut b = CommandBook::default();
        assert_eq!(b.offer(&cmd("a"), 0), Offer::Run);
        assert_eq!(b.offer(&cmd("a"), 0), Offer::Ignore);
        assert!(b.unacked().is_empty());
        b.finish(outcome("a"));
        assert_eq!(b.unacked(), vec![outcome("a")]);
        assert_eq!(b.offer(&cmd("a"), 0), Offer::Resend);
        assert_eq!(
            b.unacked().len(),
            1,
            "a resend does not duplicate an unacked outcome"
        );
        b.ack(&["a".to_string()]);
        assert!(b.unacked().is_empty());
        assert_eq!(b.offer(&cmd("a"), 0), Offer::Resend);
        assert_eq!(b.unacked(), vec![outcome("a")]);
    }

    #[test]
    fn a_promotes_fresh_checks_go_with_the_first_report_only() {
        let mut b = CommandBook::default();
        assert_eq!(b.offer(&cmd("p"), 0), Offer::Run);
        let fresh = vec![crate::wire::CheckResult {
            name: "web".into(),
            ok: true,
            critical: true,
            detail: "status 200".into(),
            elapsed_ms: 1,
        }];
        b.finish(CommandOutcome {
            checks: Some(fresh.clone()),
            ..outcome("p")
        });
        let first = b.for_report();
        assert_eq!(first[0].checks.as_ref(), Some(&fresh));
        // Not acked yet: resent, without the checks (they are older now).
        let again = b.for_report();
        assert_eq!(again, vec![outcome("p")]);
        // Asked again after the ack (a restarted orchestrator): the stored
        // outcome, without the checks of the first run.
        b.ack(&["p".to_string()]);
        assert_eq!(b.offer(&cmd("p"), 0), Offer::Resend);
        assert_eq!(b.for_report(), vec![outcome("p")]);
    }

    #[test]
    fn book_keeps_the_last_256() {
        let mut b = CommandBook::default();
        for i in 0..=FINISHED_KEPT {
            let id = i.to_string();
            assert_eq!(b.offer(&cmd(&id), 0), Offer::Run);
            b.finish(outcome(&id));
        }
        assert_eq!(b.finished.len(), FINISHED_KEPT);
        assert_eq!(
            b.unacked().len(),
            FINISHED_KEPT,
            "a report carries at most 256 outcomes"
        );
        assert_eq!(
            b.offer(&cmd("0"), 0),
            Offer::Run,
            "the oldest was forgotten"
        );
        assert_eq!(b.offer(&cmd("1"), 0), Offer::Resend);
    }

    fn withdrawn(id: &str) -> Vec<Withdrawn> {
        vec![Withdrawn {
            id: id.into(),
            why: "runbook 3 ended".into(),
        }]
    }

    /// The orchestrators moved to a new etcd cluster (terms start over):
    /// a promote the old cluster's leader handed out at term 17, still
    /// queued here, is taken back by the new cluster's leader at term 3.
    /// Before, the book judged term 3 older than 17 and kept it, to run.
    #[test]
    fn after_a_move_to_a_new_cluster_its_leader_takes_back_the_old_clusters_commands() {
        let mut b = CommandBook::default();
        assert_eq!(b.offer(&cmd("p"), 17), Offer::Run);
        assert_eq!(
            b.recall(&withdrawn("p"), 3),
            0,
            "term 3 of the same cluster: older"
        );
        b.clusters_moved();
        assert_eq!(b.recall(&withdrawn("p"), 3), 1);
        assert_eq!(b.recalled("p"), Some("runbook 3 ended"));
    }

    #[test]
    fn a_withdrawal_counts_only_from_the_term_that_handed_the_command_out_or_a_later_one() {
        let mut b = CommandBook::default();
        // Handed out by the leader of term 7, and again by term 9's after
        // a take-over (the same id: the same group, epoch and kind).
        assert_eq!(b.offer(&cmd("p"), 7), Offer::Run);
        assert_eq!(b.offer(&cmd("p"), 9), Offer::Ignore);
        // Term 7's leader had withdrawn it; its answer arrives late.
        assert_eq!(
            b.recall(&withdrawn("p"), 7),
            0,
            "a deposed leader's late answer"
        );
        assert_eq!(b.recalled("p"), None, "still to run for term 9's leader");
        // Term 9's leader withdraws it: taken back.
        assert_eq!(b.recall(&withdrawn("p"), 9), 1);
        assert_eq!(b.recalled("p"), Some("runbook 3 ended"));
        // Handed out anew (by a later term): no longer taken back, and an
        // older term's withdrawal cannot take it back again.
        assert_eq!(b.offer(&cmd("p"), 10), Offer::Ignore);
        assert_eq!(b.recalled("p"), None);
        assert_eq!(b.recall(&withdrawn("p"), 9), 0);
        // A single orchestrator answers under term 0, as ever.
        assert_eq!(b.offer(&cmd("q"), 0), Offer::Run);
        assert_eq!(b.recall(&withdrawn("q"), 0), 1);
        // An id not held is not kept.
        assert_eq!(b.recall(&withdrawn("r"), 99), 0);
    }

    /// A command the leader of term 9 took back stays taken back when a
    /// deposed leader's answer (term 7), made before the take-over and
    /// delayed in transit, lists it among the commands again: only an
    /// answer of the recalling term or a later one asks it anew.
    #[test]
    fn a_deposed_leaders_late_answer_does_not_hand_out_again_what_a_later_leader_took_back() {
        let mut b = CommandBook::default();
        assert_eq!(b.offer(&cmd("p"), 7), Offer::Run);
        assert_eq!(b.recall(&withdrawn("p"), 9), 1);
        assert_eq!(b.offer(&cmd("p"), 7), Offer::Ignore);
        assert_eq!(
            b.recalled("p"),
            Some("runbook 3 ended"),
            "a deposed leader's late answer asked it anew"
        );
        // The deposed leader's own late withdrawal does not lower the bar.
        assert_eq!(b.recall(&withdrawn("p"), 7), 0);
        assert_eq!(b.offer(&cmd("p"), 8), Offer::Ignore);
        assert!(b.recalled("p").is_some(), "term 8 is older than term 9");
        // The recalling term (or a later one) asks it anew: it runs.
        assert_eq!(b.offer(&cmd("p"), 9), Offer::Ignore);
        assert_eq!(b.recalled("p"), None);
        // A single orchestrator (term 0) asks anew as ever.
        assert_eq!(b.offer(&cmd("q"), 0), Offer::Run);
        assert_eq!(b.recall(&withdrawn("q"), 0), 1);
        assert_eq!(b.offer(&cmd("q"), 0), Offer::Ignore);
        assert_eq!(b.recalled("q"), None);
    }

    /// A promote waiting behind another command's hooks is taken back
    /// (its runbook ended) and reported not run; the orchestrator later
    /// asks the same id anew (its ledger queues a withdrawn command
    /// again). It must run then: answering with the old "not run" would
    /// make the orchestrator record a failure of an order never tried.
    /// Only the term that took it back, or a later one, asks it anew.
    #[test]
    fn a_command_withdrawn_before_it_ran_runs_when_asked_anew() {
        let mut b = CommandBook::default();
        assert_eq!(b.offer(&cmd("p"), 9), Offer::Run);
        assert_eq!(b.recall(&withdrawn("p"), 9), 1);
        let not_run = CommandOutcome::failed("p", "not run: withdrawn");
        b.withheld(not_run.clone());
        assert_eq!(b.unacked(), vec![not_run.clone()]);
        // A deposed leader's late answer still listing it: not asked anew.
        assert_eq!(b.offer(&cmd("p"), 7), Offer::Resend);
        assert_eq!(b.unacked(), vec![not_run.clone()]);
        // An answer of the same leader made before the take-back, late on
        // the other channel: its "not run" is not acked yet, so this is
        // no new ask.
        assert_eq!(b.offer(&cmd("p"), 9), Offer::Resend);
        assert_eq!(b.unacked(), vec![not_run]);
        b.ack(&["p".to_string()]);
        // The leader asks it anew: it runs, and only its new outcome goes.
        assert_eq!(
            b.offer(&cmd("p"), 9),
            Offer::Run,
            "a command that never ran was answered with its old outcome"
        );
        assert!(b.unacked().is_empty());
        assert_eq!(b.offer(&cmd("p"), 9), Offer::Ignore);
        b.finish(outcome("p"));
        assert_eq!(b.unacked(), vec![outcome("p")]);
        // Run once: from now on its outcome is resent, never a second run.
        assert_eq!(b.offer(&cmd("p"), 10), Offer::Resend);
        // A command that ran and failed is not run again.
        assert_eq!(b.offer(&cmd("q"), 0), Offer::Run);
        b.finish(CommandOutcome::failed("q", "hook failed"));
        assert_eq!(b.offer(&cmd("q"), 0), Offer::Resend);
    }

    /// An answer of maker `maker` at place `n` (`None`: an older
    /// orchestrator's, without a place) under term 9.
    fn answer(
        maker: &str,
        n: Option<u64>,
        commands: &[Command],
        withdrawn: Vec<Withdrawn>,
    ) -> ReportResponse {
        ReportResponse {
            commands: commands.to_vec(),
            withdrawn,
            term: 9,
            order: n.map(|n| AnswerOrder {
                maker: maker.into(),
                n,
            }),
            ..ReportResponse::default()
        }
    }

    /// The ids an answer had queued to run.
    fn runs(t: &Taken) -> Vec<String> {
        t.offers
            .iter()
            .filter(|(_, o)| *o == Offer::Run)
            .map(|(c, _)| c.id.clone())
            .collect()
    }

    /// The leader hands out promote `p` (answer 1, made for a long-poll),
    /// then takes it back (answer 2, a report's, its runbook ended). Answer
    /// 2 arrives first: the agent does not hold `p` yet, so there is
    /// nothing to take back — and answer 1, late, must not start it.
    #[test]
    fn a_withdrawal_that_arrived_first_stops_the_older_answers_offer() {
        let mut b = CommandBook::default();
        let t = b.answer(answer("m", Some(2), &[], withdrawn("p")));
        assert!(!t.stale && t.recalled.is_empty(), "{t:?}");
        let t = b.answer(answer("m", Some(1), &[cmd("p")], vec![]));
        assert!(
            runs(&t).is_empty(),
            "a withdrawn order was started by an older answer: {t:?}"
        );
        assert!(t.stale, "{t:?}");
        // The leader queues it again (asked anew): its next answer lists
        // it, and it runs.
        let t = b.answer(answer("m", Some(3), &[cmd("p")], vec![]));
        assert_eq!(runs(&t), vec!["p".to_string()]);
    }

    /// Held already (from answer 1), `p` is taken back by answer 3; answer
    /// 2, made before the take-back and late on the other channel, still
    /// lists it: that must not ask it anew (the term alone says it may).
    #[test]
    fn an_older_answer_does_not_undo_a_withdrawal_of_a_held_command() {
        let mut b = CommandBook::default();
        let t = b.answer(answer("m", Some(1), &[cmd("p")], vec![]));
        assert_eq!(runs(&t), vec!["p".to_string()]);
        let t = b.answer(answer("m", Some(3), &[], withdrawn("p")));
        assert_eq!(t.recalled, withdrawn("p"));
        let t = b.answer(answer("m", Some(2), &[cmd("p")], vec![]));
        assert_eq!(
            b.recalled("p"),
            Some("runbook 3 ended"),
            "an older answer asked a withdrawn command anew"
        );
        assert!(t.stale && t.offers.is_empty(), "{t:?}");
        // A newer answer that lists it again does ask it anew.
        b.answer(answer("m", Some(4), &[cmd("p")], vec![]));
        assert_eq!(b.recalled("p"), None);
    }

    /// The leader first told the site to promote (answer 1), then, the
    /// failover given up, to demote (answer 2, the promote superseded).
    /// Answer 2 arrives first: the demote runs, and answer 1, late, does
    /// not start the promote after it. Answer 2's withdrawal, arriving
    /// after a newer answer 3 that asked the promote anew, is passed over
    /// too: it would take back what the leader asks for now.
    #[test]
    fn an_older_answers_promote_does_not_follow_the_newer_answers_demote() {
        let mut b = CommandBook::default();
        let demote = Command {
            id: "d".into(),
            ..Command::new("g", 2, CommandKind::Demote)
        };
        let t = b.answer(answer("m", Some(2), &[demote], withdrawn("p")));
        assert_eq!(runs(&t), vec!["d".to_string()]);
        let t = b.answer(answer("m", Some(1), &[cmd("p")], vec![]));
        assert!(runs(&t).is_empty(), "the superseded promote ran: {t:?}");

        let mut b = CommandBook::default();
        let t = b.answer(answer("m", Some(3), &[cmd("p")], vec![]));
        assert_eq!(runs(&t), vec!["p".to_string()]);
        let t = b.answer(answer("m", Some(2), &[], withdrawn("p")));
        assert_eq!(b.recalled("p"), None, "an older answer took it back");
        assert!(t.stale && t.recalled.is_empty(), "{t:?}");
    }

    /// A stale answer's acks still count: the orchestrator recorded those
    /// outcomes whenever the answer arrives.
    #[test]
    fn an_older_answers_acks_count() {
        let mut b = CommandBook::default();
        b.answer(answer("m", Some(1), &[cmd("a")], vec![]));
        b.finish(outcome("a"));
        b.answer(answer("m", Some(3), &[], vec![]));
        let late = ReportResponse {
            acked: vec!["a".into()],
            ..answer("m", Some(2), &[], vec![])
        };
        let t = b.answer(late);
        assert!(b.unacked().is_empty(), "{:?}", b.unacked());
        assert!(t.stale);
    }

    /// A single orchestrator (term 0) restarts: the new process is another
    /// maker, whose count starts again — its answers are not older than
    /// the previous life's. Answers of an orchestrator without places are
    /// taken as they come (as before places existed).
    #[test]
    fn a_restarted_orchestrator_and_an_older_one_are_heard() {
        let mut b = CommandBook::default();
        let mut old = answer("before", Some(500), &[], vec![]);
        old.term = 0;
        assert!(!b.answer(old).stale);
        let mut new = answer("after", Some(1), &[cmd("p")], vec![]);
        new.term = 0;
        let t = b.answer(new);
        assert_eq!(runs(&t), vec!["p".to_string()], "{t:?}");
        // The previous life's answers go on being judged among themselves.
        let t = b.answer(answer("before", Some(499), &[cmd("r")], vec![]));
        assert!(runs(&t).is_empty(), "{t:?}");
        // An older orchestrator: no place, taken as it comes.
        let t = b.answer(answer("", None, &[cmd("q")], vec![]));
        assert_eq!(runs(&t), vec!["q".to_string()]);
        let t = b.answer(answer("", None, &[], withdrawn("q")));
        assert_eq!(t.recalled, withdrawn("q"));
    }

    /// Only the last [`MAKERS_KEPT`] makers are remembered: one forgotten
    /// is heard again as a new one.
    #[test]
    fn the_makers_remembered_are_bounded() {
        let mut b = CommandBook::default();
        for i in 0..=MAKERS_KEPT {
            b.answer(answer(&i.to_string(), Some(10), &[], vec![]));
        }
        assert_eq!(b.newest.len(), MAKERS_KEPT);
        let t = b.answer(answer("0", Some(1), &[cmd("p")], vec![]));
        assert_eq!(runs(&t), vec!["p".to_string()], "maker 0 is forgotten");
        let t = b.answer(answer("5", Some(1), &[cmd("q")], vec![]));
        assert!(runs(&t).is_empty(), "maker 5 is remembered: {t:?}");
    }
}
