//! A group of three (a, b, c): standby b's agent took epoch 5 from the
//! leader of etcd cluster a (term 17). The orchestrators are moved to a
//! new etcd cluster b, whose revisions started over: its leader answers
//! at term 3, at the same epoch 5, with an order. b runs it (before, b
//! took it as a deposed leader's answer — term 3 below 17 — and ran
//! nothing until the group's next epoch), and reports term 3 of cluster
//! b. Restarted, b refuses a late answer of cluster a (term 17, an order
//! of epoch 5): its `untold` wait goes on, the order never runs.

use std::collections::BTreeMap;
use warden_agents::gate::check;
use warden_agents::wire::{Command, CommandKind, ReportResponse};

#[path = "support/answering.rs"]
#[allow(dead_code)] // reports: untold's.
mod answering;
#[path = "support/lone_site.rs"]
#[allow(dead_code)] // three_sites' secrets and tables; b's config is written there.
mod lone_site;
#[path = "support/three_sites.rs"]
mod three_sites;
use answering::{start, stop};
use three_sites::{config, eventually, push};

/// A leader's answer under `term` of etcd cluster `cluster`: group web
/// at `epoch`, and `commands`.
fn leader(cluster: u64, term: u64, epoch: u64, commands: Vec<Command>) -> ReportResponse {
    ReportResponse {
        epochs: BTreeMap::from([("web".to_string(), epoch)]),
        term,
        cluster: Some(cluster),
        commands,
        ..ReportResponse::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_etcd_clusters_leader_is_followed_at_the_current_epoch() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("warden-cluster-moved-")
        .tempdir()
        .unwrap();
    let (fake, base) = answering::serve().await;
    let cfg = config(&base, dir.path());
    let (a, b) = (0xa, 0xb);

    fake.answer_with(leader(a, 17, 5, vec![]));
    let agent = start(&cfg);
    eventually("b takes epoch 5 from cluster a's leader", || {
        check(&cfg, "b", &push("c", 5)).is_ok()
    })
    .await;
    eventually("b reports term 17 of cluster a", || {
        fake.taken_term() == Some(17)
    })
    .await;

    // The new cluster's leader, term 3, same epoch, with an order.
    let order = Command::new("web", 5, CommandKind::Clear).to_site("b");
    fake.answer_with(leader(b, 3, 5, vec![order.clone()]));
    eventually("b runs the new cluster's order", || fake.ran(&order)).await;
    eventually("b reports term 3 of cluster b", || {
        fake.taken_term() == Some(3) && fake.taken_cluster() == Some(serde_json::json!(b))
    })
    .await;
    stop(agent).await;

    // Restarted: a late answer of cluster a, with an order of epoch 5.
    let late = Command::new("web", 5, CommandKind::Journal).to_site("b");
    fake.answer_with(leader(a, 17, 5, vec![late.clone()]));
    let agent = start(&cfg);
    eventually("cluster a's answers reach b", || fake.answered() >= 5).await;
    let waiting = "site b's agent has not heard from the orchestrator since it started";
    let e = check(&cfg, "b", &push("a", 5)).unwrap_err();
    assert!(e.contains(waiting), "after cluster a's answers: {e}");
    assert!(!fake.ran(&late), "b ran cluster a's order {}", late.id);
    assert_eq!(
        fake.taken_term(),
        Some(3),
        "the term kept across the restart"
    );

    // Cluster b's leader again: the wait ends.
    fake.answer_with(leader(b, 3, 5, vec![]));
    eventually("b takes cluster b's answer after the restart", || {
        check(&cfg, "b", &push("c", 5)).is_ok()
    })
    .await;
    assert!(!fake.ran(&late), "b ran cluster a's order {}", late.id);
    stop(agent).await;
}
