//! A site (or a `hybrid` group's frontend) confirmed down while nothing
//! could take its place, and serving again before anything can: it is
//! moved from only in a round that judges it down again (DESIGN §3). A
//! round that cannot judge it — a path fault (the orchestrator's own probe
//! failing while everyone else reaches it), a dead agent — is no disaster
//! and moves nobody.
use super::harness::*;
use super::*;

fn last_verdict(s: &Shared, site: &str) -> Option<Verdict> {
    s.lock().detector.track(site).and_then(|t| t.last.clone())
}

/// a and b lost together; a, confirmed down with no standby, serves again
/// first, then b. A path fault to a — the orchestrator's probe fails while
/// a's agent and b reach it — is not a disaster: nothing moves. Before,
/// any round not judging a healthy was taken for a down one, and that
/// path fault failed the group over from a, which served its users.
#[tokio::test(start_paused = true)]
async fn a_path_fault_to_a_site_that_serves_again_moves_nobody() {
    let (s, fake, _dir) = setup(true, 5);
    sites_rounds(&s, 8, (true, true), &answer_all).await;
    sites_rounds(&s, 6, (false, false), &answer_all).await;
    assert!(s.lock().detector.confirmed_down("a"));
    assert!(s.lock().runbooks.is_empty(), "no standby to move to");
    sites_rounds(&s, 2, (true, false), &answer_all).await;
    sites_rounds(&s, 2, (true, true), &answer_all).await;
    assert!(s.lock().runbooks.is_empty(), "a serves: nothing moves");
    path_fault_to_a(&s).await;
    assert!(
        matches!(last_verdict(&s, "a"), Some(Verdict::PathFault(_))),
        "{:?}",
        last_verdict(&s, "a")
    );
    assert_eq!(
        last_verdict(&s, "b"),
        Some(Verdict::Healthy),
        "b could take a's place"
    );
    assert!(
        s.lock().runbooks.is_empty(),
        "a path fault moved users off a, which serves them: {:#?}",
        group(&s)
    );
    // a recovers: the incident is over, on a.
    sites_rounds(&s, 12, (true, true), &answer_all).await;
    assert!(!s.lock().detector.confirmed_down("a"));
    let g = group(&s);
    assert_eq!((g.active.as_str(), g.phase), ("a", Phase::Steady));
    assert!(s.lock().runbooks.is_empty());
    assert_eq!(
        fake.activations.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

/// A down round after it serves again still fails over (the standby is
/// ready by then): the wait is for a down round, not for ever.
#[tokio::test(start_paused = true)]
async fn a_site_lost_again_after_serving_again_is_failed_over() {
    let (s, fake, _dir) = setup(true, 5);
    sites_rounds(&s, 8, (true, true), &answer_all).await;
    sites_rounds(&s, 6, (false, false), &answer_all).await;
    sites_rounds(&s, 2, (true, false), &answer_all).await;
    path_fault_to_a(&s).await;
    assert!(s.lock().runbooks.is_empty());
    fail_over_to_b(&s).await;
    assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("b"));
}

/// The frontend layer, alike: fe1 and fe2 lost together, fe1 confirmed
/// down with no other frontend to take the name; fe1 serves again, then
/// fe2. A round in which only the orchestrator's probe of fe1 fails (both
/// agents reach it: a path fault) keeps the name on fe1. Before, it moved
/// to fe2.
#[tokio::test(start_paused = true)]
async fn a_path_fault_to_a_frontend_that_serves_again_keeps_the_name() {
    let dir = test_dir(true, 5);
    let (s, dns) = start_hybrid(&hybrid_text(&dir), &dir).expect("config");
    let moved = |s: &Shared| s.lock().groups["web"].frontend.clone();
    for _ in 0..8 {
        frontends_round(&s, (true, true)).await;
    }
    for _ in 0..6 {
        frontends_round(&s, (false, false)).await;
    }
    assert!(s.lock().fe_detector.confirmed_down("fe1"));
    for _ in 0..2 {
        frontends_round(&s, (true, false)).await;
    }
    frontends_round(&s, (true, true)).await;
    assert_eq!(moved(&s), None);
    // Only the orchestrator's probe of fe1 fails.
    frontends_seen(&s, (false, true), (true, true));
    round_sites(&s, true, true, &answer_all).await;
    let fe1 = s
        .lock()
        .fe_detector
        .track("fe1")
        .and_then(|t| t.last.clone());
    assert!(matches!(fe1, Some(Verdict::PathFault(_))), "{fe1:?}");
    assert_eq!(
        (moved(&s), dns.0.lock().unwrap().clone()),
        (None, vec![]),
        "a path fault moved the name off fe1, which serves"
    );
    // fe1 recovers: the name stays.
    for _ in 0..12 {
        frontends_round(&s, (true, true)).await;
    }
    assert!(!s.lock().fe_detector.confirmed_down("fe1"));
    assert_eq!(moved(&s), None);
}
