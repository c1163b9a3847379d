//! The epoch an event names: its runbook's, else its group's when
//! recorded, none for an event of no group.
use super::harness::*;
use super::*;

/// A runbook's event recorded after the group moved on (a rollback's
/// end, a late step) names the runbook's epoch, not the group's newer
/// one: a receiver comparing epochs must not take it for news of the
/// newer move. An event of the group alone names the group's epoch; a
/// site's event, none.
#[tokio::test(start_paused = true)]
async fn an_event_names_its_runbooks_epoch_else_its_groups() {
    let (s, _fake, _dir) = setup(false, 5);
    for _ in 0..4 {
        round(&s, true).await;
    }
    let id = s.operator_failover("web", "b", "operator").unwrap();
    let rb_epoch = s.lock().runbooks[&id].epoch;
    s.lock().groups.get_mut("web").unwrap().epoch = rb_epoch + 5;
    let last = |s: &Shared| s.lock().recent.back().cloned().expect("an event");
    s.event(
        EventKind::Alert,
        Some("web"),
        None,
        "late step".into(),
        vec![],
        Some(id),
    );
    assert_eq!(last(&s).epoch, Some(rb_epoch), "{:?}", last(&s));
    s.event(
        EventKind::Alert,
        Some("web"),
        None,
        "group".into(),
        vec![],
        None,
    );
    assert_eq!(last(&s).epoch, Some(rb_epoch + 5), "{:?}", last(&s));
    s.event(
        EventKind::SiteDown,
        None,
        Some("a"),
        "site".into(),
        vec![],
        None,
    );
    assert_eq!(last(&s).epoch, None, "{:?}", last(&s));
}
