//! A routing layer split at the group's own epoch (`split`): two
//! frontends routing different sites at epoch N, each refusing the other
//! site at N as a frontend does. Reconciliation mends it at the group's
//! next epoch, stored first — only when the active site says it is active.

use super::harness::{config_text, start_with_routing, test_dir, TestDir};
use super::*;
use crate::store::MemStore;
use warden_proto::agent::AuthorityWire;
use warden_strategies::frontend::{FrontendDriver, FrontendStrategy};

/// A frontend that keeps the epoch fence of `warden frontend`'s route
/// table: an older epoch is stale, another site at the epoch it holds is
/// another decision's ([`StrategyError::EpochTaken`], as the builtin and
/// HAProxy drivers say it).
struct Fenced(String, Mutex<(Option<String>, u64)>);

#[async_trait]
impl FrontendDriver for Fenced {
    fn name(&self) -> &str {
        &self.0
    }
    async fn set_route(&self, site: &str, epoch: u64, _: SwitchMode) -> Result<(), StrategyError> {
        let mut r = self.1.lock().unwrap();
        if epoch < r.1 {
            return Err(StrategyError::StaleEpoch {
                element: format!("frontend {}", self.0),
                sent: epoch,
                seen: r.1,
            });
        }
        if let Some(held) = r.0.as_ref().filter(|s| epoch == r.1 && *s != site) {
            return Err(StrategyError::EpochTaken {
                element: format!("frontend {}", self.0),
                epoch,
                reason: format!(
                    "conflicting decision for epoch {epoch}: routed to {held:?} at this epoch, refused {site:?}"
                ),
            });
        }
        *r = (Some(site.to_string()), epoch);
        Ok(())
    }
    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        Ok(self.1.lock().unwrap().clone())
    }
}

/// Group web on frontends fe1 at (b, 3) and fe2 at (a, 3): a failback
/// a → b at epoch 3 carried forward (b active, promoted) after its late
/// switch landed on fe1 while the rollback's route back to a landed on fe2.
fn split_at_3() -> (Arc<Shared>, [Arc<Fenced>; 2], TestDir) {
    let dir = test_dir(false, 3);
    let fe1 = Arc::new(Fenced("fe1".into(), Mutex::new((Some("b".into()), 3))));
    let fe2 = Arc::new(Fenced("fe2".into(), Mutex::new((Some("a".into()), 3))));
    let drivers: Vec<Arc<dyn FrontendDriver>> = vec![fe1.clone(), fe2.clone()];
    let s = start_with_routing(
        &config_text(&dir, false, 3, ""),
        &dir,
        Arc::new(MemStore::default()),
        Mode::Local,
        move |_, name| {
            crate::routing::Routing::Single(Arc::new(
                FrontendStrategy::new(name, drivers.clone()).expect("strategy"),
            ))
        },
    )
    .expect("config");
    {
        let mut st = s.lock();
        let g = st.groups.get_mut("web").expect("web");
        g.active = "b".into();
        g.epoch = 3;
        g.phase = Phase::Failed;
    }
    (s, [fe1, fe2], dir)
}

/// `site`'s agent reports its role in group web.
fn reports(s: &Arc<Shared>, site: &str, role: &str, seq: u64) {
    s.accept_report(AgentReport {
        site: site.into(),
        seq,
        started_unix_ms: 0,
        boot: String::new(),
        checks: vec![super::harness::check(true)],
        peers: vec![],
        outcomes: vec![],
        replication: vec![],
        authority: vec![AuthorityWire {
            group: "web".into(),
            epoch: 3,
            role: role.into(),
            ..AuthorityWire::default()
        }],
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
    });
}

fn events(s: &Shared, kind: EventKind) -> Vec<String> {
    s.lock()
        .recent
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.message.clone())
        .collect()
}

/// Before, reconciliation re-applied (b, 3) every pass, fe2 refused it
/// every pass (another site at its epoch), and the group kept users on
/// two sites until an operator moved it: now the split is mended at epoch
/// 4, the group's next, stored before any frontend is told it.
#[tokio::test(start_paused = true)]
async fn a_routing_layer_split_at_the_groups_epoch_is_mended_at_the_next() {
    let (s, [fe1, fe2], _dir) = split_at_3();
    reports(&s, "b", "active", 1);
    s.reconcile_once().await;
    s.reconcile_once().await;
    let routes = (fe1.1.lock().unwrap().clone(), fe2.1.lock().unwrap().clone());
    let want = (Some("b".to_string()), 4);
    assert_eq!(
        routes,
        (want.clone(), want),
        "the layer converges on the active site; events: {:#?}",
        s.lock().recent
    );
    let g = s.lock().groups["web"].clone();
    assert_eq!(
        (g.active.as_str(), g.epoch),
        ("b", 4),
        "the epoch is the group's"
    );
    s.writer_settled().await;
    let fencing = events(&s, EventKind::Fencing);
    assert!(
        fencing.iter().any(|m| m.contains("split at epoch 3")
            && m.contains("fe2 routes to a at epoch 3")
            && m.contains("epoch 4")),
        "{fencing:#?}"
    );
    let mended = events(&s, EventKind::Reconciled);
    assert!(
        mended.iter().any(|m| m.contains("split mended")),
        "{mended:#?}"
    );
}

/// The active site does not say it holds the role (a move left to the
/// operator, its active site demoted): nobody is moved at a new epoch, and
/// the refusal is one fencing event that says what was seen, not a
/// `reconcile_failed` every pass.
#[tokio::test(start_paused = true)]
async fn a_split_is_not_mended_toward_a_site_that_does_not_say_it_is_active() {
    let (s, [fe1, fe2], _dir) = split_at_3();
    reports(&s, "b", "standby", 1);
    for _ in 0..3 {
        s.reconcile_once().await;
    }
    assert_eq!(fe1.1.lock().unwrap().clone(), (Some("b".into()), 3));
    assert_eq!(fe2.1.lock().unwrap().clone(), (Some("a".into()), 3));
    assert_eq!(s.lock().groups["web"].epoch, 3);
    let fencing = events(&s, EventKind::Fencing);
    assert_eq!(fencing.len(), 1, "{fencing:#?}");
    assert!(
        fencing[0].contains("split at epoch 3")
            && fencing[0].contains("does not report itself active"),
        "{fencing:#?}"
    );
    assert!(
        events(&s, EventKind::ReconcileFailed).is_empty(),
        "{:#?}",
        s.lock().recent
    );
}

/// The same split in a `hybrid` group's site layer: mended the same way.
#[tokio::test(start_paused = true)]
async fn a_hybrid_site_layer_split_is_mended_at_the_next_epoch() {
    let dir = test_dir(true, 5);
    let fe1 = Arc::new(Fenced("fe1".into(), Mutex::new((Some("b".into()), 3))));
    let fe2 = Arc::new(Fenced("fe2".into(), Mutex::new((Some("a".into()), 3))));
    let drivers: Vec<Arc<dyn FrontendDriver>> = vec![fe1.clone(), fe2.clone()];
    let s = start_with_routing(
        &super::harness::hybrid_text(&dir),
        &dir,
        Arc::new(MemStore::default()),
        Mode::Local,
        move |_, name| {
            super::harness::hybrid_routing(
                name,
                &["fe1", "fe2"],
                drivers.clone(),
                Arc::new(super::harness::FakeDns::default()),
            )
        },
    )
    .expect("config");
    {
        let mut st = s.lock();
        let g = st.groups.get_mut("web").expect("web");
        g.active = "b".into();
        g.epoch = 3;
    }
    reports(&s, "b", "active", 1);
    s.reconcile_once().await;
    s.reconcile_once().await;
    let want = (Some("b".to_string()), 4);
    assert_eq!(
        (fe1.1.lock().unwrap().clone(), fe2.1.lock().unwrap().clone()),
        (want.clone(), want),
        "{:#?}",
        s.lock().recent
    );
    assert_eq!(s.lock().groups["web"].epoch, 4);
}
