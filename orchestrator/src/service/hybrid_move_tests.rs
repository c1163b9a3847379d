//! Where a `hybrid` group's DNS name moves: to a frontend that holds an
//! older route (it missed the last switch: unreachable then, or restarted
//! since) only once it is given the group's route; in a prompt round, to a
//! frontend the last round judged healthy. And a frontend ahead of the
//! group: an epoch seen ahead.

use super::harness::{
    frontends_round, frontends_seen, hybrid_text, start_hybrid, start_with_routing, test_dir,
};
use super::*;
use crate::store::MemStore;
use warden_strategies::dns::{DnsProvider, ProviderView, RecordValue};
use warden_strategies::frontend::FrontendDriver;

/// A frontend's route: the site, the epoch.
type Route = (Option<String>, u64);

/// A frontend that takes every route not older than its own.
struct Fe(String, Mutex<Route>);

#[async_trait]
impl FrontendDriver for Fe {
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
        *r = (Some(site.to_string()), epoch);
        Ok(())
    }
    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        Ok(self.1.lock().unwrap().clone())
    }
}

/// The DNS provider: each publish, with the route of the frontend it
/// points at, as that frontend holds it then (what users get from then on).
struct Dns {
    frontends: BTreeMap<String, Arc<Fe>>,
    published: Mutex<Vec<(String, Route)>>,
}

#[async_trait]
impl DnsProvider for Dns {
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn publish(&self, frontend: &str, _: &RecordValue, _: u64) -> Result<(), StrategyError> {
        let route = self.frontends[frontend].1.lock().unwrap().clone();
        self.published
            .lock()
            .unwrap()
            .push((frontend.to_string(), route));
        Ok(())
    }
    async fn observe(&self) -> Result<Option<ProviderView>, StrategyError> {
        Ok(None)
    }
}

/// The orchestrator of a hybrid group `web` over frontends `fe1` and
/// `fe2` (not automatic: nothing moves the group while a test looks).
fn hybrid(dir: &std::path::Path, fe1: &Arc<Fe>, fe2: &Arc<Fe>) -> (Arc<Shared>, Arc<Dns>) {
    let (fe1, fe2) = (fe1.clone(), fe2.clone());
    let dns = Arc::new(Dns {
        frontends: BTreeMap::from([("fe1".into(), fe1.clone()), ("fe2".into(), fe2.clone())]),
        published: Mutex::default(),
    });
    let provider = dns.clone();
    // Not automatic: no failback to a moves the group while fe1 is judged.
    let text = hybrid_text(dir).replace("automatic = true", "automatic = false");
    let s = start_with_routing(
        &text,
        dir,
        Arc::new(MemStore::default()),
        Mode::Local,
        move |_, name| {
            let drivers: Vec<Arc<dyn FrontendDriver>> = vec![fe1.clone(), fe2.clone()];
            super::harness::hybrid_routing(name, &["fe1", "fe2"], drivers, provider.clone())
        },
    )
    .expect("config");
    (s, dns)
}

/// Before, the name moved to fe2 while fe2 still routed users to a at
/// epoch 1 (it missed the failover to b at 2): every user then went to
/// the site failed away from, until a later reconciliation pass.
#[tokio::test(start_paused = true)]
async fn the_name_moves_to_a_frontend_only_once_it_routes_the_active_site() {
    let dir = test_dir(true, 5);
    let fe1 = Arc::new(Fe("fe1".into(), Mutex::new((Some("b".into()), 2))));
    let fe2 = Arc::new(Fe("fe2".into(), Mutex::new((Some("a".into()), 1))));
    let (s, dns) = hybrid(&dir, &fe1, &fe2);
    {
        let mut st = s.lock();
        let g = st.groups.get_mut("web").expect("web");
        g.active = "b".into();
        g.epoch = 2;
    }
    for _ in 0..8 {
        frontends_round(&s, (true, true)).await;
    }
    for _ in 0..6 {
        frontends_round(&s, (false, true)).await;
    }
    let g = s.lock().groups["web"].clone();
    assert_eq!(
        (g.frontend.as_deref(), g.active.as_str(), g.epoch),
        (Some("fe2"), "b", 2)
    );
    let published = dns.published.lock().unwrap().clone();
    assert!(!published.is_empty(), "the name moved");
    for (fe, route) in &published {
        assert_eq!(
            (fe.as_str(), route),
            ("fe2", &(Some("b".to_string()), 2)),
            "the name pointed at a frontend routing elsewhere: {published:?}"
        );
    }
}

/// While an epoch above the group's is seen (another orchestrator acting,
/// or a store older than what it decided), automatic decisions wait for
/// `warden adopt-epoch`: the frontend layer's move of the DNS name is one
/// (it takes an epoch of its own, and a dyndns2 server keeps none to
/// refuse it with). Before, fe1 confirmed down moved the name to fe2 at
/// this orchestrator's `dns_epoch() + 1`, over whatever the one ahead
/// had published; now nothing is published and an alert says why.
#[tokio::test(start_paused = true)]
async fn the_name_does_not_move_while_an_epoch_is_seen_ahead() {
    let dir = test_dir(true, 5);
    let fe1 = Arc::new(Fe("fe1".into(), Mutex::new((Some("b".into()), 2))));
    let fe2 = Arc::new(Fe("fe2".into(), Mutex::new((Some("b".into()), 2))));
    let (s, dns) = hybrid(&dir, &fe1, &fe2);
    {
        let mut st = s.lock();
        let g = st.groups.get_mut("web").expect("web");
        g.active = "b".into();
        g.epoch = 2;
        let g = g.clone();
        s.note_epoch_ahead_locked(&mut st, &g, 7, "the routing layer");
    }
    for _ in 0..8 {
        frontends_round(&s, (true, true)).await;
    }
    for _ in 0..6 {
        frontends_round(&s, (false, true)).await;
    }
    assert!(s.lock().fe_detector.confirmed_down("fe1"));
    s.writer_settled().await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    let g = s.lock().groups["web"].clone();
    assert_eq!(
        (g.frontend.as_deref(), g.frontend_epoch),
        (None, 0),
        "no move decided"
    );
    assert_eq!(*dns.published.lock().unwrap(), vec![], "nothing published");
    let said: Vec<String> = s
        .lock()
        .recent
        .iter()
        .filter(|e| e.kind == EventKind::Alert && e.message.contains("fe1 is confirmed down"))
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(said.len(), 1, "said once: {said:?}");
    assert!(said[0].contains("epoch 7"), "{said:?}");
}

/// With `fall = 1` a prompt round confirms a frontend down at once; it
/// judges only that frontend, and the others stand as the last regular
/// round left them (as for sites). fe2 was healthy there: the name moves
/// to it now. Before, fe2 — not judged in the prompt round — counted as
/// not healthy: an event said "no other frontend of group web is healthy;
/// DNS stays" while fe2 was, and the name waited for the next round.
#[tokio::test(start_paused = true)]
async fn a_prompt_round_moves_the_name_to_a_frontend_healthy_in_the_last_round() {
    let dir = test_dir(true, 5);
    let text = hybrid_text(&dir).replace("fall = 3", "fall = 1");
    let (s, dns) = start_hybrid(&text, &dir).expect("config");
    for _ in 0..8 {
        frontends_round(&s, (true, true)).await;
    }
    assert_eq!(
        s.lock()
            .fe_detector
            .track("fe2")
            .and_then(|t| t.last.clone()),
        Some(Verdict::Healthy)
    );
    // fe1 is lost: every vantage point's probe of it fails, at once.
    frontends_seen(&s, (false, true), (false, true));
    assert!(s.detect_prompt(&std::collections::BTreeSet::from(["fe1".to_string()])));
    assert!(s.lock().fe_detector.confirmed_down("fe1"));
    let no_standby: Vec<String> = s
        .lock()
        .recent
        .iter()
        .filter(|e| e.kind == EventKind::NoStandby)
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(no_standby, Vec::<String>::new(), "fe2 was healthy");
    assert_eq!(
        s.lock().groups["web"].frontend.as_deref(),
        Some("fe2"),
        "the name moves in the round that confirmed fe1 down"
    );
    // The move acts once its decision is durable: the store's writer
    // works on a thread of its own, in real time, however loaded.
    s.writer_settled().await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::advance(Duration::from_millis(50)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        dns.0.lock().unwrap().last().map(|m| m.0.as_str()),
        Some("fe2")
    );
}

/// A frontend of a `hybrid` group that routes at an epoch above the
/// group's (another orchestrator acting, or a store older than what it
/// decided) is an epoch seen ahead, as the other schemes' routing layer
/// is: automatic decisions and replication orders wait for `warden
/// adopt-epoch`, and the frontend is not sent the group's older route.
/// Before, reconciliation sent it the route at the group's epoch every
/// pass (refused as stale) and held nothing: the next failover was
/// decided at an epoch that frontend refuses.
#[tokio::test(start_paused = true)]
async fn a_frontend_ahead_of_the_group_is_an_epoch_seen_ahead() {
    let dir = test_dir(true, 5);
    let fe1 = Arc::new(Fe("fe1".into(), Mutex::new((Some("a".into()), 7))));
    let fe2 = Arc::new(Fe("fe2".into(), Mutex::new((Some("b".into()), 2))));
    let (s, _dns) = hybrid(&dir, &fe1, &fe2);
    {
        let mut st = s.lock();
        let g = st.groups.get_mut("web").expect("web");
        g.active = "b".into();
        g.epoch = 2;
        // Every site has reported: nothing else holds its decisions.
        g.hold = None;
    }
    s.reconcile_once().await;
    let held = {
        let st = s.lock();
        s.held_locked(&st, "web")
    };
    let held = held.expect("decisions held");
    assert!(
        held.contains("frontend fe1 holds epoch 7 for web"),
        "{held}"
    );
    assert_eq!(
        *fe1.1.lock().unwrap(),
        (Some("a".to_string()), 7),
        "fe1 keeps what it holds"
    );
    assert_eq!(
        s.operator_adopt_epoch("web", "operator")
            .await
            .expect("adopted"),
        7
    );
}

/// An orchestrator on etcd that has just started and leads at once makes
/// no automatic move of a hybrid group's DNS name before one evidence
/// window (agent_timeout + fall × interval) has passed — its frontends
/// were judged on the vantage points heard so far, as sites are (DESIGN
/// §7) — and the same evidence moves it after. Before, only the sites'
/// decisions waited: a fresh leader whose own path to fe1 failed, with
/// one agent's, moved the name off a serving frontend.
#[tokio::test(start_paused = true)]
async fn a_fresh_leader_moves_no_dns_name_before_one_evidence_window() {
    use crate::etcd::leader::{Leadership, Role};
    let dir = test_dir(true, 5);
    let text = hybrid_text(&dir).replace("fall = 3", "fall = 1");
    let dns = Arc::new(super::harness::FakeDns::default());
    let provider = dns.clone();
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_with_routing(
        &text,
        &dir,
        Arc::new(MemStore::default()),
        Mode::Elected(view),
        move |_, name| {
            let drivers: Vec<Arc<dyn FrontendDriver>> = ["fe1", "fe2"]
                .iter()
                .map(|f| Arc::new(Fe(f.to_string(), Mutex::default())) as _)
                .collect();
            super::harness::hybrid_routing(name, &["fe1", "fe2"], drivers, provider.clone())
        },
    )
    .expect("config");
    let role = HaRole(s.clone());
    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(1, None).await.unwrap();
    // fe1 is lost as far as the vantage points heard so far see it.
    frontends_round(&s, (false, true)).await;
    assert!(s.lock().fe_detector.confirmed_down("fe1"));
    assert_eq!(
        s.lock().groups["web"].frontend.as_deref(),
        None,
        "the name moved before one evidence window had passed"
    );
    // After the window, the same evidence moves it.
    tokio::time::advance(Duration::from_secs(3)).await;
    frontends_round(&s, (false, true)).await;
    assert_eq!(s.lock().groups["web"].frontend.as_deref(), Some("fe2"));
    role.step_down("test: done");
}
