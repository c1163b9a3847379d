//! Orders go out only under the licence: a command queued while this node
//! led is handed to no agent once the licence is gone — neither in a
//! report's answer nor to a command poll — even before the ledger is
//! emptied (a deposed node between the two, or one shutting down).
use super::fresh_checks_tests::{report, settle};
use super::harness::setup_with;
use super::runbooks::Env;
use super::*;
use crate::store::MemStore;

/// A leading node with b's promote queued (a runbook step waiting for it):
/// the node, that step, the command as queued for b, the test's directory.
async fn leading_with_a_promote_for_b() -> (
    Arc<Shared>,
    tokio::task::JoinHandle<Result<CommandOutcome, String>>,
    Command,
    super::harness::TestDir,
) {
    let (s, _fake, dir) = setup_with(true, 5, "", Arc::new(MemStore::default()));
    let cmd = Command::new("web", 2, CommandKind::Promote);
    let env = Env {
        shared: s.clone(),
        term: s.licence.token().expect("held"),
    };
    let asked = cmd.clone();
    let step = tokio::spawn(async move { env.command("b", asked, Duration::from_secs(5)).await });
    settle().await;
    (s, step, cmd.to_site("b"), dir)
}

#[tokio::test(start_paused = true)]
async fn no_order_is_handed_out_once_the_licence_is_gone() {
    let (s, step, queued, _dir) = leading_with_a_promote_for_b().await;
    // While leading: the poll and the report's answer both carry it.
    let (polled, fresh) = s.commands_for_poll("b");
    assert_eq!(polled, vec![queued]);
    assert!(fresh, "new to b's polls");
    assert_eq!(s.accept_report(report("b", 1, vec![])).commands.len(), 1);

    s.licence.revoke("test: deposed");
    assert_eq!(
        s.commands_for_poll("b"),
        (vec![], false),
        "a node without the licence handed out an order to a poll"
    );
    let answer = s.accept_report(report("b", 2, vec![]));
    assert!(answer.commands.is_empty(), "{:?}", answer.commands);
    assert!(answer.epochs.is_empty(), "no epoch told either");
    step.abort();
}

/// The same for a node shutting down: the licence's term ends with the
/// shutdown, before anything empties the ledger.
#[tokio::test(start_paused = true)]
async fn no_order_is_handed_out_once_shutdown_began() {
    let (s, step, queued, _dir) = leading_with_a_promote_for_b().await;
    assert_eq!(s.commands_for_poll("b").0, vec![queued]);
    s.shutdown_token().cancel();
    assert_eq!(
        s.commands_for_poll("b"),
        (vec![], false),
        "a node shutting down handed out an order to a poll"
    );
    assert!(s.accept_report(report("b", 1, vec![])).commands.is_empty());
    step.abort();
}

/// A promote handed to b in a report's answer and taken back while b may
/// still hold it (the epoch moved on) is listed as withdrawn in b's
/// answers — reports and polls alike — until b reports it; a node without
/// the licence lists nothing (only the leader takes orders back, as only
/// it gives them).
#[tokio::test(start_paused = true)]
async fn an_order_taken_back_after_it_was_handed_out_is_recalled_in_the_answers() {
    let (s, step, queued, _dir) = leading_with_a_promote_for_b().await;
    assert_eq!(
        s.accept_report(report("b", 1, vec![])).commands,
        vec![queued.clone()]
    );
    s.lock()
        .ledger
        .withdraw_below("web", 3, "the epoch moved on to 3");
    let answer = s.accept_report(report("b", 2, vec![]));
    assert!(answer.commands.is_empty(), "{:?}", answer.commands);
    let recalled: Vec<_> = answer
        .withdrawn
        .iter()
        .map(|w| (&w.id[..], &w.why[..]))
        .collect();
    assert_eq!(recalled, vec![(&queued.id[..], "the epoch moved on to 3")]);
    assert_eq!(s.recalled_for("b").len(), 1, "a poll's answer lists it too");
    assert!(
        s.accept_report(report("a", 1, vec![])).withdrawn.is_empty(),
        "not a's"
    );
    // b reports it not run: no longer listed.
    let not_run = CommandOutcome::failed(&queued.id, "not run: withdrawn".to_string());
    assert!(s
        .accept_report(report("b", 3, vec![not_run]))
        .withdrawn
        .is_empty());
    // Taken back again after another hand-out; a deposed node says nothing.
    s.lock().ledger.queue(queued.clone(), None);
    let _ = s.commands_for_poll("b");
    s.lock()
        .ledger
        .withdraw_below("web", 4, "the epoch moved on to 4");
    assert_eq!(s.recalled_for("b").len(), 1);
    s.licence.revoke("test: deposed");
    assert!(s.recalled_for("b").is_empty());
    assert!(s.accept_report(report("b", 4, vec![])).withdrawn.is_empty());
    step.abort();
}
