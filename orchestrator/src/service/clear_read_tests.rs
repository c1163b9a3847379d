//! `warden clear` lifts what the operator read: an alert raised, or a
//! divergent list grown, after the reading stays.
use super::harness::*;
use super::*;

/// The operator reads group web: one alert (the provider's block) and two
/// divergent items. Their clear is delayed (a proxy's retry; or re-run
/// later from shell history). Meanwhile automatic failback stops and a
/// third divergent item is listed. The clear lands: the block it read is
/// lifted, the stop and the list it never read stay, each said in
/// `not_cleared`. A clear naming a reading older than the provider's block
/// lifts nothing of the routing layer. Read again, everything is cleared.
#[tokio::test(start_paused = true)]
async fn a_clear_lifts_only_the_alerts_and_the_divergent_list_it_read() {
    let (s, fake, _dir) = setup(true, 5);
    let block = "dns/noip group web: account blocked (abuse): updates stopped".to_string();
    fake.alerts.lock().unwrap().push(block.clone());
    s.lock().groups.get_mut("web").unwrap().divergent_not_stored = 2;
    let read = AlertsRead {
        alerts: Some(s.alerts("web")),
        divergent: Some(2),
    };
    assert_eq!(read.alerts.as_deref(), Some(&[block.clone()][..]));
    // ... then, before the clear lands:
    let stopped =
        "failback to a failed twice in a row for the same reason (x): automatic failback stopped";
    {
        let mut st = s.lock();
        let g = st.groups.get_mut("web").unwrap();
        g.failback_blocked = Some(stopped.to_string());
        g.divergent_not_stored = 3;
    }
    let c = s
        .operator_clear_read("web", "operator", &[], &Default::default(), &read)
        .unwrap();
    assert_eq!(c.cleared, vec![block.clone()], "{c:?}");
    assert!(fake.alerts.lock().unwrap().is_empty());
    let g = group(&s);
    assert_eq!(g.failback_blocked.as_deref(), Some(stopped), "{c:?}");
    assert_eq!(g.divergent_not_stored, 3, "{c:?}");
    assert!(
        c.not_cleared
            .iter()
            .any(|n| n.contains("automatic failback stays stopped"))
            && c.not_cleared
                .iter()
                .any(|n| n.contains("3 divergent item(s) listed now, 2 when you read")),
        "{c:?}"
    );

    // A reading from before the provider's block: it stays.
    fake.alerts.lock().unwrap().push(block.clone());
    let before = AlertsRead {
        alerts: Some(vec![]),
        divergent: Some(3),
    };
    let c = s
        .operator_clear_read("web", "operator", &[], &Default::default(), &before)
        .unwrap();
    assert_eq!(
        fake.alerts.lock().unwrap().clone(),
        vec![block.clone()],
        "{c:?}"
    );
    assert!(
        c.not_cleared
            .iter()
            .any(|n| n.contains("raised after you read") && n.contains("account blocked")),
        "{c:?}"
    );
    assert_eq!(
        group(&s).divergent_not_stored,
        0,
        "the list read (3) acknowledged: {c:?}"
    );

    // Read again: all of it.
    let now = AlertsRead {
        alerts: Some(s.alerts("web")),
        divergent: Some(0),
    };
    let c = s
        .operator_clear_read("web", "operator", &[], &Default::default(), &now)
        .unwrap();
    assert!(c.not_cleared.is_empty(), "{c:?}");
    assert!(fake.alerts.lock().unwrap().is_empty());
    assert_eq!(group(&s).failback_blocked, None);
}
