//! A group of three (a, b, c): standby b's agent took epoch 5 from leader
//! L1 (term 7), and restarts. The first orchestrator to answer it then is
//! L0, a leader deposed at term 6 that still believes it leads (paused or
//! cut off past its lease), with the epoch it knew (5) and an order of
//! that epoch; then a standby orchestrator (no epochs, no term). Neither
//! ends b's `untold` wait — its rsync gate (read as the daemon's
//! `pre-xfer exec` does) still refuses deposed a's push stated at 5 —,
//! and b runs no order of L0's: no outcome of it is ever reported. L1's
//! answer (epoch 6: a failover b was not there for) ends the wait.
//! Every report of b's says the leader term it took (7, kept across the
//! restart), so that L0's refusal can be seen at the orchestrators.

use std::collections::BTreeMap;
use warden_agents::gate::check;
use warden_agents::wire::{Command, CommandKind, ReportResponse};

#[path = "support/answering.rs"]
#[allow(dead_code)] // taken_cluster: cluster_moved's.
mod answering;
#[path = "support/lone_site.rs"]
#[allow(dead_code)] // three_sites' secrets and tables; b's config is written there.
mod lone_site;
#[path = "support/three_sites.rs"]
mod three_sites;
use answering::{start, stop};
use three_sites::{config, eventually, push};

/// A leader's answer under `term`: group web at `epoch`, and `commands`.
fn leader(term: u64, epoch: u64, commands: Vec<Command>) -> ReportResponse {
    ReportResponse {
        epochs: BTreeMap::from([("web".to_string(), epoch)]),
        term,
        commands,
        ..ReportResponse::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_orchestrator_neither_ends_a_restarted_standbys_wait_nor_orders_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("warden-untold-deposed-")
        .tempdir()
        .unwrap();
    let (fake, base) = answering::serve().await;
    let cfg = config(&base, dir.path());

    // b's previous life: L1 (term 7) said epoch 5.
    fake.answer_with(leader(7, 5, vec![]));
    let agent = start(&cfg);
    eventually("b takes epoch 5 from L1", || {
        check(&cfg, "b", &push("c", 5)).is_ok()
    })
    .await;
    eventually("b reports the term it took from L1 (7)", || {
        fake.taken_term() == Some(7)
    })
    .await;
    stop(agent).await;

    // Restarted: deposed L0 (term 6) answers first, with an order.
    let order = Command::new("web", 5, CommandKind::Clear).to_site("b");
    fake.answer_with(leader(6, 5, vec![order.clone()]));
    let agent = start(&cfg);
    eventually("L0 answers b's reports", || fake.answered() >= 5).await;
    let waiting = "site b's agent has not heard from the orchestrator since it started";
    let e = check(&cfg, "b", &push("a", 5)).unwrap_err();
    assert!(e.contains(waiting), "after L0's answers: {e}");
    assert_eq!(
        fake.taken_term(),
        Some(7),
        "b's reports while L0 (term 6) answers: the term taken before the restart"
    );
    assert!(!fake.ran(&order), "b ran L0's order {}", order.id);
    // A standby orchestrator's answer says nothing either.
    fake.answer_with(ReportResponse::default());
    eventually("the standby answers b's reports", || fake.answered() >= 5).await;
    let e = check(&cfg, "b", &push("a", 5)).unwrap_err();
    assert!(e.contains(waiting), "after the standby's answers: {e}");

    // L1 again, at epoch 6.
    fake.answer_with(leader(7, 6, vec![]));
    eventually("b takes epoch 6 from L1", || {
        check(&cfg, "b", &push("c", 6)).is_ok()
    })
    .await;
    let e = check(&cfg, "b", &push("a", 5)).unwrap_err();
    assert!(
        e.contains("a push of group web from site a at epoch 5, but site b knows epoch 6"),
        "{e}"
    );
    eventually("b reports again", || fake.answered() >= 3).await;
    assert!(!fake.ran(&order), "b ran L0's order {}", order.id);
    stop(agent).await;
}
