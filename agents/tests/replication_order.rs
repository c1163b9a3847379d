//! A start of replication that waited behind the group's running command
//! while a demote came: asked again when its turn comes, it is refused —
//! the demoted site pushes nothing after its demote. And a resync pulling
//! into a site that is promoted meanwhile (a failback given up, then a
//! failover to that site) stops before users write there. Real commands
//! (the `command` plan, `sh`), the agent's real authority state.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_agents::authority::Authority;
use warden_agents::replication::Replication;
use warden_agents::wire::{Command, CommandKind};

#[path = "support/web.rs"]
mod web;

const TOKEN_ENV: &str = "WARDEN_REPL_ORDER_TEST_TOKEN";

fn replication(log: &Path) -> Replication {
    std::env::set_var(TOKEN_ENV, "replication-order-test-token");
    let start = format!("sleep 1.5; echo start >> '{}'", log.display());
    let resync = format!("sleep 1.5; echo resync >> '{}'", log.display());
    let replication = format!(
        r#"plan = "command"
start = ["/bin/sh", "-c", {start:?}]
stop = ["/bin/true"]
resync = ["/bin/sh", "-c", {resync:?}]"#
    );
    let text = web::config_text(
        TOKEN_ENV,
        "/tmp/warden-replication-order-test",
        &replication,
    );
    let config =
        warden_config::parse(&text, Path::new("replication-order-test.conf")).expect("config");
    Replication::from_config(&config, "a").expect("group web replicates at a")
}

fn cmd(kind: CommandKind, epoch: u64, id: &str) -> Command {
    let mut c = Command::new("web", epoch, kind).to_site("a");
    c.peer = Some("b".into());
    c.id = id.into();
    c
}

/// Site a's replication (writing to `log`) and authority (group web with
/// `active` as its configured active site), in `dir`.
fn site_a(dir: &Path, log: &Path, active: &str) -> (Arc<Replication>, Arc<Authority>) {
    let r = Arc::new(replication(log));
    let authority = Arc::new(
        Authority::open(&dir.join("state"), "a", &[("web".into(), active.into())])
            .expect("authority"),
    );
    (r, authority)
}

/// Both commands admitted, then run as the agent runs them (asked again
/// through the authority at their turn): `first`, and `second` queued
/// behind it 200 ms later.
async fn run_two(
    r: &Arc<Replication>,
    authority: &Arc<Authority>,
    first: Command,
    second: Command,
) -> (
    tokio::task::JoinHandle<warden_agents::wire::CommandOutcome>,
    tokio::task::JoinHandle<warden_agents::wire::CommandOutcome>,
) {
    authority.admit(&first).unwrap();
    authority.admit(&second).unwrap();
    let run = |c: Command| {
        let (r, authority) = (Arc::clone(r), Arc::clone(authority));
        tokio::spawn(async move {
            let admit = |c: &Command| authority.admit(c);
            r.run_checked(&c, &CancellationToken::new(), &admit).await
        })
    };
    let first = run(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = run(second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_queued_before_a_demote_does_not_push_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (r, authority) = site_a(dir.path(), &log, "a");
    // Two starts at epoch 1 (the runbook's, and the replication round's
    // after the first timed out), both admitted while a may push.
    let (first, second) = run_two(
        &r,
        &authority,
        cmd(CommandKind::StartReplication, 1, "web:1:start_replication"),
        cmd(
            CommandKind::StartReplication,
            1,
            "web:1:start_replication:2",
        ),
    )
    .await;

    // The demote: admitted, its hooks done, then the push is stopped.
    let demote = cmd(CommandKind::Demote, 1, "web:1:demote");
    authority.admit(&demote).unwrap();
    authority.record(&demote).unwrap();
    let stopped = r.demoted("web").await;
    assert!(stopped.is_some(), "a start was under way");

    let first = first.await.unwrap();
    assert!(!first.ok, "the running start was cancelled: {first:?}");
    let second = second.await.unwrap();
    assert!(
        !second.ok,
        "the queued start ran after the demote: {second:?}"
    );
    assert!(
        second.detail.contains("demoted at epoch 1") && second.detail.contains("asked again"),
        "{}",
        second.detail
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.is_empty(), "a start command ran: {log:?}");
    let status = r.status();
    assert_eq!(status[0].role, "idle", "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_stops_a_pull_into_the_site_and_refuses_one_queued() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (r, authority) = site_a(dir.path(), &log, "b");
    // The failback's resync at a, pulling from b, at epoch 3; a second
    // one (the same step resumed) queued behind it.
    let (first, second) = run_two(
        &r,
        &authority,
        cmd(CommandKind::Resync, 3, "web:3:resync"),
        cmd(CommandKind::Resync, 3, "web:3:resync:2"),
    )
    .await;

    // The failback is given up (b went down); the failover promotes a at
    // epoch 4: the pull stops before the promote's hooks run.
    let promote = cmd(CommandKind::Promote, 4, "web:4:promote");
    authority.admit(&promote).unwrap();
    let said = r
        .promoted("web", promote.epoch)
        .await
        .expect("a resync was pulling");
    assert!(said.contains("stopped the resync"), "{said}");
    authority.record(&promote).unwrap();

    let first = first.await.unwrap();
    assert!(!first.ok, "the running resync was cancelled: {first:?}");
    let second = second.await.unwrap();
    assert!(
        !second.ok,
        "the queued resync ran after the promote: {second:?}"
    );
    assert!(
        second.detail.contains("epoch 3, older than epoch 4")
            && second.detail.contains("asked again"),
        "{}",
        second.detail
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.is_empty(),
        "a resync wrote into the promoted site: {log:?}"
    );
    assert!(
        r.promoted("web", promote.epoch).await.is_none(),
        "nothing left pulling"
    );
    assert_eq!(r.status()[0].role, "idle", "no longer said to resync");
}
