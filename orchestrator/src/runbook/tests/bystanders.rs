//! A group of three: the site that is neither the old active one nor the
//! new one takes the runbook's epoch before the promote, and one that
//! cannot does not hold the move.
use super::*;

/// c (a third site, reporting) has reported epoch 2 before b's promote
/// is sent, and the promote step says so. Before, nothing waited for it:
/// c learnt the epoch whenever its next report was answered, and a push
/// stated at epoch 1 (deposed a's replication, were c its peer) could
/// land at c after b was promoted.
#[tokio::test(start_paused = true)]
async fn a_third_site_takes_the_epoch_before_the_promote() {
    let w = world_on("a", 1);
    w.others
        .lock()
        .unwrap()
        .push(("c".into(), Some(Duration::from_millis(600))));
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    let took = w.took_epoch.lock().unwrap().clone();
    assert_eq!(took.len(), 1, "{took:?}");
    let (site, epoch, sent_before) = took[0].clone();
    assert_eq!((site.as_str(), epoch), ("c", 2));
    let sent = w.sent_kinds();
    let promote = sent
        .iter()
        .position(|(s, k)| s == "b" && *k == CommandKind::Promote)
        .expect("b promoted");
    assert!(
        promote >= sent_before,
        "b's promote was sent before c took epoch 2: {sent:?}"
    );
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    assert!(
        p.detail.starts_with("c took epoch 2; b promoted"),
        "{}",
        p.detail
    );
}

/// c reports but never epoch 2 (a full disk), d is silent: the move goes
/// on after a bounded wait (a quarter of the 5 s step), and the promote
/// step says what each of them may still take.
#[tokio::test(start_paused = true)]
async fn a_third_site_that_cannot_take_it_does_not_hold_the_move() {
    let w = world_on("a", 1);
    w.others.lock().unwrap().push(("c".into(), None));
    w.others.lock().unwrap().push(("d".into(), None));
    w.stale.lock().unwrap().push("d".into());
    let t0 = tokio::time::Instant::now();
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Succeeded, "{rb:#?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let p = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Promote)
        .unwrap();
    assert!(
        p.detail.contains(
            "c has not reported epoch 2 within 1.2s (it last reported epoch 1): it takes it \
             from the answer to its next report"
        ) && p.detail.contains("d's agent is silent: it takes epoch 2")
            && p.detail.contains("b promoted")
            && !p.detail.contains("  "),
        "{}",
        p.detail
    );
    assert_eq!(w.runs("b", CommandKind::Promote), 1);
}
