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
    let env = Env { shared: s.clone() };
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
