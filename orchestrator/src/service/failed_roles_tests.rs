//! Roles in a group whose last runbook failed: the group is the operator's,
//! and its `active` may not be where users are, so a site reporting the
//! `active` role elsewhere is demoted only when the group's active site
//! reports `active` too — never two sites holding the role; and a failed
//! group is brought back to steady on its own active site by a failover
//! to it, which fences the other end of the move that failed.
use super::harness::{answer_all, group, setup, sites_until};
use super::*;

/// A report of `site` that says its `role` in web at `epoch`.
fn says(site: &str, seq: u64, epoch: u64, role: &str) -> AgentReport {
    super::state_tests::role_report(site, seq, epoch, role, vec![])
}

fn told(s: &Shared, site: &str) -> Vec<(CommandKind, u64)> {
    s.commands_for(site)
        .into_iter()
        .map(|c| (c.kind, c.epoch))
        .collect()
}

/// A failover to b failed (its promote timed out), so the group stays on a
/// at the failover's epoch, `failed`; b's promote finished late and b holds
/// the `active` role. While a is silent or says it is not active, b is
/// left for the operator (demoting it would leave no site holding the
/// role). Once a reports `active` too — back, never fenced — two sites
/// hold the role: b is told to demote, at the group's epoch, with an event
/// that says why; a is told nothing. Before, a failed group's roles were
/// never looked at: both stayed active until an operator moved the group.
#[tokio::test(start_paused = true)]
async fn in_a_failed_group_a_second_active_site_is_demoted() {
    let (s, _fake, _dir) = setup(true, 5);
    let epoch = {
        let mut st = s.lock();
        let mut g = st.groups["web"].clone();
        g.epoch += 1;
        g.phase = Phase::Failed;
        let epoch = g.epoch;
        // Stored: agents are told only epochs the store holds.
        s.put_group_locked(&mut st, g);
        epoch
    };
    s.writer_settled().await;
    assert_eq!(group(&s).active, "a");
    // b promoted late; a not heard from (or demoted by the fence).
    s.accept_report(says("b", 1, epoch, "active"));
    assert_eq!(told(&s, "b"), vec![], "a does not hold the role: b is left");
    s.accept_report(says("a", 1, epoch, "standby"));
    s.accept_report(says("b", 2, epoch, "active"));
    assert_eq!(told(&s, "b"), vec![], "a standby at a: b is left");
    // a's claim counts only while fresh.
    s.accept_report(says("a", 2, epoch - 1, "active"));
    tokio::time::advance(Duration::from_secs(5)).await;
    s.accept_report(says("b", 3, epoch, "active"));
    assert_eq!(
        told(&s, "b"),
        vec![],
        "a's claim is older than agent_timeout"
    );
    // Both hold the role now.
    s.accept_report(says("a", 3, epoch - 1, "active"));
    assert_eq!(
        told(&s, "a"),
        vec![],
        "the group's active site keeps its role"
    );
    s.accept_report(says("b", 4, epoch, "active"));
    assert_eq!(told(&s, "b"), vec![(CommandKind::Demote, epoch)]);
    let last = s.lock().recent.back().cloned().unwrap();
    assert_eq!(last.kind, EventKind::Fencing);
    assert!(
        last.message.contains("two sites hold the role") && last.message.contains("demoting b"),
        "{}",
        last.message
    );
    assert_eq!(group(&s).phase, Phase::Failed, "still the operator's");
}

/// Not while the group is in maintenance, nor while an epoch above the
/// group's was seen (a decision this orchestrator did not make may hold
/// the routing layer: which site users are on is not known here).
#[tokio::test(start_paused = true)]
async fn in_a_failed_group_nothing_is_demoted_in_maintenance_or_behind_an_epoch_ahead() {
    let (s, _fake, _dir) = setup(true, 5);
    let epoch = {
        let mut st = s.lock();
        let g = st.groups.get_mut("web").unwrap();
        g.phase = Phase::Failed;
        g.epoch
    };
    s.operator_maintenance("web", true, "operator").unwrap();
    s.accept_report(says("a", 1, epoch, "active"));
    s.accept_report(says("b", 1, epoch, "active"));
    assert_eq!(told(&s, "b"), vec![], "in maintenance");
    s.operator_maintenance("web", false, "operator").unwrap();
    s.accept_report(says("a", 2, epoch + 3, "active"));
    assert!(s.lock().epoch_ahead.contains_key("web"));
    s.accept_report(says("a", 3, epoch, "active"));
    s.accept_report(says("b", 2, epoch, "active"));
    assert_eq!(told(&s, "b"), vec![], "an epoch ahead was seen");
}

/// A failover a → b fails at b's promote (never answered: b's hooks hang),
/// leaving the group `failed` on a, which its fence demoted: users are on a
/// site that is not writable, and b may yet finish its promote. A failover
/// to a itself now fences b (demote, at a new epoch) and promotes a again:
/// the group is steady on a. Before, it was refused ("a is already the
/// active site"): the only way out of the failed group was the move that
/// had just failed.
#[tokio::test(start_paused = true)]
async fn a_failed_group_fails_over_to_its_own_active_site_fencing_the_other_end() {
    let (s, _fake, _dir) = setup(false, 5);
    assert!(
        matches!(
            s.operator_failover("web", "a", "operator"),
            Err(OrchestratorError::Conflict(m)) if m.contains("already the active site")
        ),
        "a steady group on a: nothing to fail over"
    );
    s.operator_failover("web", "b", "operator").unwrap();
    let hung = |c: &Command| c.kind == CommandKind::Promote && c.site == "b";
    let first = sites_until(&s, (true, true), &hung, 200, "the failover failed", |g| {
        g.phase == Phase::Failed
    })
    .await;
    let failed_at = group(&s).epoch;
    assert_eq!(group(&s).active, "a");
    let alert = s
        .alerts("web")
        .into_iter()
        .find(|a| a.contains("the last runbook"))
        .expect("an alert for the failed group");
    assert!(
        alert.contains("failover a → b")
            && alert.contains("at step promote")
            && alert.contains("`warden failover web --to a` to stay on a (b is fenced"),
        "{alert}"
    );
    assert!(
        first
            .iter()
            .any(|(site, c)| site == "a" && c.kind == CommandKind::Demote),
        "a was fenced by the failover: {first:?}"
    );
    s.operator_failover("web", "a", "operator").unwrap();
    let sent = sites_until(&s, (true, true), &answer_all, 200, "back on a", |g| {
        g.phase == Phase::Steady && g.active == "a"
    })
    .await;
    let epoch = group(&s).epoch;
    assert!(epoch > failed_at, "a new epoch: {epoch} after {failed_at}");
    let at = |site: &str, kind: CommandKind| {
        sent.iter()
            .any(|(s, c)| s == site && c.kind == kind && c.epoch == epoch)
    };
    assert!(at("b", CommandKind::Demote), "b fenced: {sent:?}");
    assert!(at("a", CommandKind::Promote), "a promoted again: {sent:?}");
    assert!(
        !s.alerts("web")
            .iter()
            .any(|a| a.contains("the last runbook")),
        "steady again: no alert"
    );
    let rb = s
        .lock()
        .runbooks
        .values()
        .max_by_key(|r| r.id)
        .cloned()
        .unwrap();
    assert_eq!(
        (rb.kind, rb.from.as_str(), rb.to.as_str(), rb.status),
        (RunbookKind::Failover, "b", "a", RunbookStatus::Succeeded)
    );
}

/// The same failed group, the orchestrator started again on its store:
/// a failover to its own active site still fences the other end of the
/// move that failed (found in the store) and promotes a again. Checked
/// after a restart that the memory of the failed runbook comes from the
/// store, not from the process that ran it.
#[tokio::test(start_paused = true)]
async fn after_a_restart_a_failed_group_still_fails_over_to_its_own_active_site() {
    use crate::store::{MemStore, Store};
    let dir = super::harness::test_dir(false, 5);
    let text = super::harness::config_text(&dir, false, 5, "");
    let store = Arc::new(MemStore::default());
    let (s, _fake) = super::harness::start_from(&text, &dir, store.clone()).unwrap();
    s.operator_failover("web", "b", "operator").unwrap();
    let hung = |c: &Command| c.kind == CommandKind::Promote && c.site == "b";
    sites_until(&s, (true, true), &hung, 200, "the failover failed", |g| {
        g.phase == Phase::Failed
    })
    .await;
    s.writer_settled().await;
    s.licence().revoke("test: the process is stopped");
    let copy = MemStore::default();
    for g in store.groups().unwrap() {
        copy.put_group(&g).unwrap();
    }
    for rb in store.runbooks().unwrap() {
        copy.put_runbook(&rb).unwrap();
    }
    let (s2, _fake2) = super::harness::start_from(&text, &dir, Arc::new(copy)).unwrap();
    assert_eq!(
        (group(&s2).phase, group(&s2).active.as_str()),
        (Phase::Failed, "a")
    );
    let failed_at = group(&s2).epoch;
    super::harness::sites_rounds(&s2, 4, (true, true), &answer_all).await;
    s2.operator_failover("web", "a", "operator")
        .expect("a failover to the failed group's own site after a restart");
    let sent = sites_until(&s2, (true, true), &answer_all, 200, "back on a", |g| {
        g.phase == Phase::Steady && g.active == "a"
    })
    .await;
    let epoch = group(&s2).epoch;
    assert!(epoch > failed_at);
    assert!(
        sent.iter()
            .any(|(site, c)| site == "b" && c.kind == CommandKind::Demote && c.epoch == epoch),
        "b fenced: {sent:?}"
    );
}
