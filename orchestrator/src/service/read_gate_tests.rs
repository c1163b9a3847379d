//! The routing layer is read under the licence's gate, as it is written:
//! a read may leave an order for later — the HAProxy driver ends a drain
//! it finds unended (`resume_drain`), in a task that runs under the gate
//! of the call that spawned it — and that order must not outlive the
//! licence (a deposed leader ends no drain).

use super::harness::{config_text, start_with_routing, test_dir};
use super::*;
use crate::store::MemStore;
use warden_strategies::frontend::{FrontendDriver, FrontendStrategy};
use warden_strategies::gate::Gate;

/// A frontend whose read keeps the gate it ran under, as the HAProxy
/// driver's read does for the drain end it leaves behind.
#[derive(Default)]
struct Keeps {
    gates: Mutex<Vec<Option<Gate>>>,
}

#[async_trait]
impl FrontendDriver for Keeps {
    fn name(&self) -> &str {
        "hx1"
    }
    async fn set_route(&self, _: &str, _: u64, _: SwitchMode) -> Result<(), StrategyError> {
        Ok(())
    }
    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        self.gates
            .lock()
            .unwrap()
            .push(warden_strategies::gate::current());
        Ok((Some("a".into()), 0))
    }
}

/// Before, reconciliation's and the adoption's reads ran outside any
/// gate: the drain end an HAProxy read left behind was sent by a leader
/// deposed meanwhile.
#[tokio::test(start_paused = true)]
async fn what_a_read_leaves_for_later_asks_the_licence_of_the_read() {
    let dir = test_dir(false, 3);
    let fe = Arc::new(Keeps::default());
    let driver: Arc<dyn FrontendDriver> = fe.clone();
    let s = start_with_routing(
        &config_text(&dir, false, 3, ""),
        &dir,
        Arc::new(MemStore::default()),
        Mode::Local,
        move |_, name| {
            crate::routing::Routing::Single(Arc::new(
                FrontendStrategy::new(name, vec![driver.clone()]).expect("strategy"),
            ))
        },
    )
    .expect("config");
    s.adopt_fresh_groups().await;
    s.reconcile_once().await;
    let gates: Vec<Option<Gate>> = fe.gates.lock().unwrap().drain(..).collect();
    // The adoption's read, reconciliation's, and the re-apply's (which
    // sends only where the route is not: `Strategy::reapply`).
    assert_eq!(
        gates.len(),
        3,
        "the adoption's read and reconciliation's two"
    );
    for (i, g) in gates.iter().enumerate() {
        let g = g
            .as_ref()
            .unwrap_or_else(|| panic!("read {i} ran outside the licence's gate"));
        assert!(g(), "open while the licence is held");
    }
    s.licence.revoke("test: deposed");
    for g in gates.iter().flatten() {
        assert!(!g(), "closed once the licence ended");
    }
}
