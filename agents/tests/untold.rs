//! A group of three (a, b, c): standby b's agent starts at the epoch it
//! had (4) after a failover a → c (epoch 5) it was not there for, against
//! a fake orchestrator that does not answer at first. Deposed a, still
//! pushing, states epoch 4. b's rsync gate (`warden_agents::gate::check`,
//! reading the agent's state directory as the daemon's `pre-xfer exec`
//! does) refuses every push while b's agent has not heard the
//! orchestrator; once the fake answers with epoch 5, a's push is refused
//! as older and c's at 5 passes.

use std::collections::BTreeMap;

use warden_agents::authority::Authority;
use warden_agents::gate::check;
use warden_agents::wire::ReportResponse;

#[path = "support/answering.rs"]
#[allow(dead_code)] // orders and terms: untold_deposed's and cluster_moved's.
mod answering;
#[path = "support/lone_site.rs"]
#[allow(dead_code)] // its `settings` are site a's; b's config is written here.
mod lone_site;
#[path = "support/three_sites.rs"]
mod three_sites;
use answering::{start, stop};
use three_sites::{config, eventually, push};

/// Before, b's gate took a's push stated at epoch 4 as soon as b's agent
/// had started, until the orchestrator's answer raised the epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_standby_takes_no_push_until_the_orchestrator_has_answered() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("warden-untold-")
        .tempdir()
        .unwrap();
    let (fake, base) = answering::serve().await;
    let cfg = config(&base, dir.path());
    // b's previous life: standby at epoch 4.
    {
        let b = Authority::open(
            &dir.path().join("state"),
            "b",
            &[("web".into(), "a".into())],
        )
        .unwrap();
        b.observe(&BTreeMap::from([("web".to_string(), 4)]));
    }
    assert!(
        check(&cfg, "b", &push("a", 4)).is_ok(),
        "as the agent left it"
    );
    let agent = start(&cfg);
    eventually("b's agent reports, unanswered", || fake.reports() >= 3).await;
    for (site, epoch) in [("a", 4), ("c", 9)] {
        let e = check(&cfg, "b", &push(site, epoch)).unwrap_err();
        assert!(
            e.contains("site b's agent has not heard from the orchestrator since it started"),
            "{site} at {epoch}: {e}"
        );
    }
    fake.answer_with(ReportResponse {
        epochs: BTreeMap::from([("web".to_string(), 5)]),
        ..ReportResponse::default()
    });
    eventually("b takes epoch 5 from the answer", || {
        check(&cfg, "b", &push("c", 5)).is_ok()
    })
    .await;
    let e = check(&cfg, "b", &push("a", 4)).unwrap_err();
    assert!(
        e.contains("a push of group web from site a at epoch 4, but site b knows epoch 5"),
        "{e}"
    );
    stop(agent).await;
}
