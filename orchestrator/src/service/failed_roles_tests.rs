//! Roles in a group whose last runbook failed: the group is the operator's,
//! and its `active` may not be where users are, so a site reporting the
//! `active` role elsewhere is demoted only when the group's active site
//! reports `active` too — never two sites holding the role.
use super::harness::{group, setup};
use super::*;
use warden_proto::agent::AuthorityWire;

/// A report of `site` that says its `role` in web at `epoch`.
fn says(site: &str, seq: u64, epoch: u64, role: &str) -> AgentReport {
    AgentReport {
        site: site.into(),
        seq,
        boot: "boot".into(),
        started_unix_ms: 0,
        checks: vec![super::harness::check(true)],
        peers: vec![],
        outcomes: vec![],
        replication: vec![],
        authority: vec![AuthorityWire {
            group: "web".into(),
            epoch,
            role: role.into(),
            demoted_at: None,
            may_push: role == "active",
        }],
    }
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
        let g = st.groups.get_mut("web").unwrap();
        g.epoch += 1;
        g.phase = Phase::Failed;
        g.epoch
    };
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
