//! A `hybrid` group's reconciliation says what it observed: a drift that a
//! re-apply does not change (the layer answers Ok and keeps its own idea)
//! is said once as corrected and once as persisting, not "corrected" at
//! every pass — in the frontend layer (the DNS name) and the site layer
//! (each frontend's route) alike.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use super::harness::{hybrid_text, start_with_routing, test_dir};
use super::*;
use crate::store::MemStore;
use warden_strategies::dns::{DnsProvider, DnsStrategy, ProviderView, RecordValue};
use warden_strategies::frontend::{FrontendDriver, FrontendStrategy};
use warden_strategies::hybrid::HybridStrategy;

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
}

fn address(frontend: &str) -> RecordValue {
    RecordValue::parse(if frontend == "fe1" {
        "192.0.2.1"
    } else {
        "192.0.2.2"
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
        Ok(Some(ProviderView {
            value: Some(address(&self.points_at.lock().unwrap())),
            epoch: 0,
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

#[tokio::test(start_paused = true)]
async fn a_hybrid_drift_that_stays_is_said_once_not_corrected_every_pass() {
    let dir = test_dir(true, 5);
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
    });
    let (drivers, provider) = (fes.clone(), dns.clone());
    let s = start_with_routing(
        &hybrid_text(&dir),
        &dir,
        Arc::new(MemStore::default()),
        Mode::Local,
        move |_, name| {
            let drivers: Vec<Arc<dyn FrontendDriver>> =
                drivers.iter().map(|d| d.clone() as _).collect();
            let addresses = ["fe1", "fe2"]
                .iter()
                .map(|f| (f.to_string(), address(f)))
                .collect();
            crate::routing::Routing::Hybrid(Arc::new(HybridStrategy::new(
                name,
                FrontendStrategy::new(name, drivers).unwrap(),
                DnsStrategy::new(
                    name,
                    vec!["www.example.net".into()],
                    addresses,
                    vec![],
                    Duration::from_secs(1),
                    provider.clone(),
                ),
            )))
        },
    )
    .expect("config");
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
