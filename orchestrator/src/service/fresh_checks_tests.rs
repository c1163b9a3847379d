//! The promote's fresh checks through the live service's command ledger:
//! they reach the runbook only from the site the command was queued for, and
//! only with the answer that arrived during the step's own attempt.
use super::harness::setup_with;
use super::runbooks::Env;
use super::*;
use crate::store::MemStore;
use warden_proto::agent::CheckResult;

pub(super) fn report(site: &str, seq: u64, outcomes: Vec<CommandOutcome>) -> AgentReport {
    AgentReport {
        site: site.into(),
        seq,
        boot: format!("boot-{site}"),
        started_unix_ms: 0,
        checks: vec![],
        peers: vec![],
        outcomes,
        replication: vec![],
        authority: vec![],
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
    }
}

fn promoted(id: &str) -> CommandOutcome {
    CommandOutcome {
        id: id.into(),
        ok: true,
        detail: "promote hooks ran".into(),
        hooks: vec![],
        checks: Some(vec![CheckResult {
            name: "web".into(),
            ok: true,
            critical: true,
            detail: "status 200".into(),
            elapsed_ms: 1,
        }]),
        journal: None,
        kept_in_place: None,
    }
}

pub(super) async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn fresh_checks_count_only_from_the_queued_site_and_only_in_their_own_attempt() {
    let (s, _fake, _dir) = setup_with(true, 5, "", Arc::new(MemStore::default()));
    s.accept_report(report("b", 1, vec![]));
    let cmd = Command::new("web", 2, CommandKind::Promote);
    let id = cmd.id.clone();
    let env = Env {
        shared: s.clone(),
        term: s.licence.token().expect("held"),
    };
    let asked = cmd.clone();
    let step = tokio::spawn(async move { env.command("b", asked, Duration::from_secs(5)).await });
    settle().await;
    assert_eq!(s.commands_for("b"), vec![cmd.clone().to_site("b")]);
    // Site a answers b's promote, passing checks and all: dropped.
    s.accept_report(report("a", 1, vec![promoted(&id)]));
    settle().await;
    assert!(
        !step.is_finished(),
        "an outcome from another site ends nothing"
    );
    // b answers: its outcome, with the checks taken after its hooks.
    s.accept_report(report("b", 2, vec![promoted(&id)]));
    let o = step.await.unwrap().expect("b's outcome");
    assert_eq!(o.checks, promoted(&id).checks);
    // A resumed attempt asks again: the recorded outcome stands, but the
    // checks it carried are the first attempt's, not fresh.
    let env = Env {
        shared: s.clone(),
        term: s.licence.token().expect("held"),
    };
    let again = env
        .command("b", cmd, Duration::from_secs(5))
        .await
        .expect("the recorded outcome");
    assert!(again.ok);
    assert_eq!(again.checks, None);
}
