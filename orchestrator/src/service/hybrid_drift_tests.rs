//! A `hybrid` group's reconciliation says what it observed: a drift that a
//! re-apply does not change (the layer answers Ok and keeps its own idea)
//! is said once as corrected and once as persisting, not "corrected" at
//! every pass — in the frontend layer (the DNS name) and the site layer
//! (each frontend's route) alike.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use super::harness::{hybrid_text, start_with_routing, test_dir};
use super::*;
use crate::store::MemStore;
use warden_strategies::dns::{DnsProvider, ProviderView, RecordValue};
use warden_strategies::frontend::FrontendDriver;

/// A frontend that ignores the routes it is sent while `ignore` is set.
struct Fe {
    name: String,
    route: Mutex<(Option<String>, u64)>,
    ignore: AtomicBool,
}

#[async_trait]
impl FrontendDriver for Fe {
    fn name(&self) -> &str {
        &self.name
    }
    async fn set_route(&self, site: &str, epoch: u64, _: SwitchMode) -> Result<(), StrategyError> {
        if !self.ignore.load(SeqCst) {
            *self.route.lock().unwrap() = (Some(site.to_string()), epoch);
        }
        Ok(())
    }
    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        Ok(self.route.lock().unwrap().clone())
    }
}

/// A DNS provider whose name holds the address of the frontend in
/// `points_at`, and that answers Ok to every publish but changes nothing
/// while `ignore` is set (a name whose nameservers are not the provider's).
struct Dns {
    points_at: Mutex<String>,
    ignore: AtomicBool,
    published: std::sync::atomic::AtomicUsize,
    /// The epoch of the decision that last wrote the name (rfc2136's marker).
    epoch: std::sync::atomic::AtomicU64,
    /// The authoritative servers do not answer while set.
    unread: AtomicBool,
}

fn address(frontend: &str) -> RecordValue {
    RecordValue::parse(if frontend == "fe1" {
        "10.77.2.1"
    } else {
        "10.77.2.2"
    })
    .unwrap()
}

#[async_trait]
impl DnsProvider for Dns {
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn publish(&self, frontend: &str, _: &RecordValue, _: u64) -> Result<(), StrategyError> {
        self.published.fetch_add(1, SeqCst);
        if !self.ignore.load(SeqCst) {
            *self.points_at.lock().unwrap() = frontend.to_string();
        }
        Ok(())
    }
    async fn observe(&self) -> Result<Option<ProviderView>, StrategyError> {
        if self.unread.load(SeqCst) {
            return Err(StrategyError::Unreachable {
                element: "ns1".into(),
                reason: "timed out".into(),
            });
        }
        Ok(Some(ProviderView {
            value: Some(address(&self.points_at.lock().unwrap())),
            epoch: self.epoch.load(SeqCst),
            site: None,
            drift: vec![],
        }))
    }
}

fn reconcile_events(s: &Shared) -> Vec<String> {
    s.lock()
        .recent
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Reconciled | EventKind::ReconcileFailed))
        .map(|e| e.message.clone())
        .collect()
}

/// The orchestrator of hybrid group `web` over frontends fe1 and fe2 and
/// the DNS provider, the name at fe1.
fn hybrid(dir: &std::path::Path) -> (Arc<Shared>, Vec<Arc<Fe>>, Arc<Dns>) {
    let fes: Vec<Arc<Fe>> = ["fe1", "fe2"]
        .iter()
        .map(|n| {
            Arc::new(Fe {
                name: n.to_string(),
                route: Mutex::default(),
                ignore: AtomicBool::new(false),
            })
        })
        .collect();
    let dns = Arc::new(Dns {
        points_at: Mutex::new("fe1".into()),
        ignore: AtomicBool::new(false),
        published: Default::default(),
        epoch: Default::default(),
        unread: AtomicBool::new(false),
    });
    let (drivers, provider) = (fes.clone(), dns.clone());
    let s = start_with_routing(
        &hybrid_text(dir),
        dir,
        Arc::new(MemStore::default()),
        Mode::Local,
        move |_, name| {
            let drivers: Vec<Arc<dyn FrontendDriver>> =
                drivers.iter().map(|d| d.clone() as _).collect();
            super::harness::hybrid_routing(name, &["fe1", "fe2"], drivers, provider.clone())
        },
    )
    .expect("config");
    (s, fes, dns)
}

/// A hybrid group (no start-up hold) whose frontends route it at its own
/// epoch while its DNS name points at fe2, written at epoch 9 (another
/// orchestrator's move, or one before the store was lost), after one
/// reconcile pass.
async fn name_moved_to_fe2_at_epoch_9() -> (super::harness::TestDir, Arc<Shared>, Arc<Dns>) {
    let dir = test_dir(true, 5);
    let (s, fes, dns) = hybrid(&dir);
    let g = {
        let mut st = s.lock();
        let g = st.groups.get_mut("web").expect("web");
        g.hold = None;
        g.clone()
    };
    for fe in &fes {
        *fe.route.lock().unwrap() = (Some(g.active.clone()), g.epoch);
    }
    *dns.points_at.lock().unwrap() = "fe2".into();
    dns.epoch.store(9, SeqCst);
    s.reconcile_once().await;
    (dir, s, dns)
}

#[tokio::test(start_paused = true)]
async fn a_hybrid_drift_that_stays_is_said_once_not_corrected_every_pass() {
    let dir = test_dir(true, 5);
    let (s, fes, dns) = hybrid(&dir);
    let g = s.lock().groups["web"].clone();
    for fe in &fes {
        *fe.route.lock().unwrap() = (Some(g.active.clone()), g.epoch);
    }
    s.reconcile_once().await;
    assert_eq!(reconcile_events(&s), Vec::<String>::new(), "nothing drifts");

    // The name is seen at fe2, and the provider keeps it there.
    *dns.points_at.lock().unwrap() = "fe2".into();
    dns.ignore.store(true, SeqCst);
    for _ in 0..5 {
        s.reconcile_once().await;
    }
    assert_eq!(dns.published.load(SeqCst), 5, "pointed again every pass");
    let said = reconcile_events(&s);
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(
        said[0].starts_with("frontend layer: DNS drift corrected"),
        "{said:#?}"
    );
    assert!(
        said[1].starts_with("frontend layer: DNS drift persists"),
        "{said:#?}"
    );
    // The provider takes it at last: nothing more is said, and a later
    // drift is news again.
    dns.ignore.store(false, SeqCst);
    s.reconcile_once().await;
    s.reconcile_once().await;
    assert_eq!(dns.points_at.lock().unwrap().as_str(), "fe1");
    assert_eq!(reconcile_events(&s).len(), 2);
    *dns.points_at.lock().unwrap() = "fe2".into();
    s.reconcile_once().await;
    let said = reconcile_events(&s);
    assert_eq!(said.len(), 3, "{said:#?}");
    assert!(
        said[2].starts_with("frontend layer: DNS drift corrected"),
        "{said:#?}"
    );

    // The site layer: fe2 routes elsewhere and keeps it.
    *fes[1].route.lock().unwrap() = (Some("b".into()), g.epoch);
    fes[1].ignore.store(true, SeqCst);
    for _ in 0..5 {
        s.reconcile_once().await;
    }
    let said: Vec<String> = reconcile_events(&s)
        .into_iter()
        .filter(|m| m.starts_with("site layer"))
        .collect();
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(
        said[0].starts_with("site layer: routing drift corrected"),
        "{said:#?}"
    );
    assert!(
        said[1].starts_with("site layer: routing drift persists"),
        "{said:#?}"
    );
}

/// The name was written at epoch 9 by another decision (another
/// orchestrator, or a store older than what it decided), at fe2 where this
/// orchestrator's group wants fe1 at its own epoch: an epoch seen ahead,
/// as a frontend ahead is — decisions held until `warden adopt-epoch`, and
/// the name not pointed back over the newer decision. Before, every pass
/// pointed it at fe1 at the group's older epoch (rfc2136's marker: the
/// zone's compare-and-set refused it as stale) and nothing was held: the
/// frontend layer and the site decisions went on at epochs the name's
/// writer had passed.
#[tokio::test(start_paused = true)]
async fn a_dns_name_written_at_a_newer_epoch_is_an_epoch_seen_ahead() {
    let (_dir, s, dns) = name_moved_to_fe2_at_epoch_9().await;
    assert_eq!(dns.published.load(SeqCst), 0, "not pointed over epoch 9");
    let held = {
        let st = s.lock();
        s.held_locked(&st, "web")
    };
    let held = held.expect("decisions held");
    assert!(held.contains("holds epoch 9 for web"), "{held}");
}

/// A store new to the group (lost, or another backend) adopts the
/// frontend layer as it adopts the site layer: the name at fe2, written
/// at epoch 9 by a move before the store was lost, is the group's
/// frontend at its own epoch — not an epoch seen ahead, and not pointed
/// back at fe1.
#[tokio::test(start_paused = true)]
async fn a_new_store_adopts_where_the_dns_name_points() {
    let dir = test_dir(true, 5);
    let (s, fes, dns) = hybrid(&dir);
    let g = s.lock().groups["web"].clone();
    for fe in &fes {
        *fe.route.lock().unwrap() = (Some(g.active.clone()), 3);
    }
    *dns.points_at.lock().unwrap() = "fe2".into();
    dns.epoch.store(9, SeqCst);
    s.lock().fresh.insert("web".into());
    s.adopt_fresh_groups().await;
    let g = s.lock().groups["web"].clone();
    assert_eq!(
        (g.epoch, g.frontend.as_deref(), g.frontend_epoch),
        (3, Some("fe2"), 9)
    );
    s.reconcile_once().await;
    assert_eq!(dns.published.load(SeqCst), 0, "left at fe2");
    assert!(s.lock().epoch_ahead.is_empty(), "no epoch seen ahead");
}

/// A DNS marker at the largest epoch there is (forged, or a hand edit):
/// a new store says it did not take the name's epoch. Before, it was
/// taken: the next pointing of the name added one to u64::MAX (a panic in
/// a debug build, epoch 0 in a release one), and the store was refused at
/// the next start ("within 2^32 of the largest").
#[tokio::test(start_paused = true)]
async fn a_new_store_does_not_adopt_a_dns_marker_at_the_largest_epoch() {
    let dir = test_dir(true, 5);
    let (s, fes, dns) = hybrid(&dir);
    let g = s.lock().groups["web"].clone();
    for fe in &fes {
        *fe.route.lock().unwrap() = (Some(g.active.clone()), 3);
    }
    *dns.points_at.lock().unwrap() = "fe2".into();
    dns.epoch.store(u64::MAX, SeqCst);
    s.lock().fresh.insert("web".into());
    s.adopt_fresh_groups().await;
    let g = s.lock().groups["web"].clone();
    assert_eq!((g.epoch, g.frontend_epoch), (3, 0), "{g:#?}");
    let adopted = super::harness::newest_event(&s, EventKind::Adopted);
    assert!(
        adopted.contains(
            "marker holds epoch 18446744073709551615, 0 below the largest there is: not adopted"
        ),
        "{adopted}"
    );
}

/// `warden adopt-epoch` of a DNS name written at a newer epoch (another
/// orchestrator moved it to fe2 at epoch 9) takes where the name points,
/// as a new store does: fe2 at epoch 9 is the group's frontend, and the
/// name is left there. Before, the adopt set the group's epoch to 9 and
/// kept fe1: the next pass pointed the name back at fe1 at epoch 9 (the
/// zone refuses another decision at the marker's epoch) and the frontend
/// layer watched fe1, where users no longer enter.
#[tokio::test(start_paused = true)]
async fn adopt_epoch_takes_where_the_dns_name_points() {
    let (_dir, s, dns) = name_moved_to_fe2_at_epoch_9().await;
    assert!(s.lock().epoch_ahead.contains_key("web"), "seen ahead");
    assert_eq!(
        s.operator_adopt_epoch_seen("web", "operator", Some(9))
            .await
            .expect("adopted"),
        9
    );
    let g = s.lock().groups["web"].clone();
    assert_eq!(
        (g.epoch, g.frontend.as_deref(), g.frontend_epoch),
        (9, Some("fe2"), 9)
    );
    let adopted = super::harness::newest_event(&s, EventKind::Adopted);
    assert!(adopted.contains("points at frontend fe2"), "{adopted}");
    s.reconcile_once().await;
    assert_eq!(dns.published.load(SeqCst), 0, "left at fe2");
    assert_eq!(dns.points_at.lock().unwrap().as_str(), "fe2");
    assert!(s.lock().epoch_ahead.is_empty(), "nothing seen ahead");
}

/// An adopt that cannot read the DNS name adopts nothing of it and says
/// so: when the name's is the epoch seen ahead, nothing at all (409, the
/// alert stays); when a frontend's is, that epoch is adopted and the
/// event says the frontend layer was not.
#[tokio::test(start_paused = true)]
async fn adopt_epoch_with_the_dns_name_unread_adopts_nothing_of_it() {
    let (_dir, s, dns) = name_moved_to_fe2_at_epoch_9().await;
    let g = s.lock().groups["web"].clone();
    dns.unread.store(true, SeqCst);
    let refused = s
        .operator_adopt_epoch("web", "operator")
        .await
        .expect_err("the name's epoch, unread");
    assert!(
        matches!(refused, OrchestratorError::Conflict(_)),
        "{refused}"
    );
    assert!(refused.to_string().contains("nothing adopted"), "{refused}");
    let now = s.lock().groups["web"].clone();
    assert_eq!(
        (now.epoch, now.frontend.as_deref()),
        (g.epoch, g.frontend.as_deref())
    );
    assert!(s.lock().epoch_ahead.contains_key("web"), "still alerted");

    // A frontend's epoch ahead: adopted, the frontend layer not.
    s.lock().epoch_ahead.insert(
        "web".into(),
        authority::EpochAhead {
            epoch: 12,
            seen_at: "frontend fe1".into(),
        },
    );
    assert_eq!(
        s.operator_adopt_epoch("web", "operator")
            .await
            .expect("adopted"),
        12
    );
    let now = s.lock().groups["web"].clone();
    assert_eq!(
        (now.epoch, now.frontend.as_deref(), now.frontend_epoch),
        (12, g.frontend.as_deref(), g.frontend_epoch)
    );
    let adopted = super::harness::newest_event(&s, EventKind::Adopted);
    assert!(
        adopted.contains("the DNS name could not be read"),
        "{adopted}"
    );
}

/// A store new to the group adopts where the DNS name points whatever the
/// routes' epoch: the name moved to fe2 at epoch 5 (fe1 down), then a
/// failover routed the frontends at epoch 9, then the store was lost. The
/// name is the group's frontend fe2 at its epoch 5, and left there. Before,
/// only a name above the routes' epoch was adopted: the group kept fe1,
/// and the next pass pointed the name at fe1 at epoch 9 — which the zone
/// takes (its marker is at 5) — sending users to the frontend the name had
/// been moved off, with no decision to do so.
#[tokio::test(start_paused = true)]
async fn a_new_store_adopts_a_dns_name_written_below_the_routes_epoch() {
    let dir = test_dir(true, 5);
    let (s, fes, dns) = hybrid(&dir);
    let g = s.lock().groups["web"].clone();
    for fe in &fes {
        *fe.route.lock().unwrap() = (Some(g.active.clone()), 9);
    }
    *dns.points_at.lock().unwrap() = "fe2".into();
    dns.epoch.store(5, SeqCst);
    s.lock().fresh.insert("web".into());
    s.adopt_fresh_groups().await;
    let g = s.lock().groups["web"].clone();
    assert_eq!(
        (g.epoch, g.frontend.as_deref(), g.frontend_epoch),
        (9, Some("fe2"), 5)
    );
    s.reconcile_once().await;
    assert_eq!(dns.published.load(SeqCst), 0, "left at fe2");
    assert_eq!(dns.points_at.lock().unwrap().as_str(), "fe2");
}
