//! A frontend restarted during a runbook's verify step: it comes back with
//! its fence (the epoch kept on disk) and no route. Reconciliation skips a
//! group whose runbook runs, so only the verify step can give it the
//! route back — the switch's own order again, idempotent everywhere else.

use super::harness::{answer_all, config_text, sites_rounds, sites_until, start_with_routing};
use super::*;
use crate::store::MemStore;
use warden_strategies::frontend::{FrontendDriver, FrontendStrategy};

/// A frontend with `warden frontend`'s fence that restarts once (routes
/// nothing, its epoch kept) at the first read after it took a route to
/// `restarts_after`.
struct Restarts {
    name: String,
    route: Mutex<(Option<String>, u64)>,
    restarts_after: Mutex<Option<String>>,
    armed: std::sync::atomic::AtomicBool,
}

impl Restarts {
    fn new(name: &str, restarts_after: Option<&str>) -> Arc<Restarts> {
        Arc::new(Restarts {
            name: name.into(),
            route: Mutex::default(),
            restarts_after: Mutex::new(restarts_after.map(String::from)),
            armed: Default::default(),
        })
    }
}

#[async_trait]
impl FrontendDriver for Restarts {
    fn name(&self) -> &str {
        &self.name
    }
    async fn set_route(&self, site: &str, epoch: u64, _: SwitchMode) -> Result<(), StrategyError> {
        let mut r = self.route.lock().unwrap();
        if epoch < r.1 {
            return Err(StrategyError::StaleEpoch {
                element: format!("frontend {}", self.name),
                sent: epoch,
                seen: r.1,
            });
        }
        if r.0.as_deref().is_some_and(|s| s != site) && epoch == r.1 {
            return Err(StrategyError::EpochTaken {
                element: format!("frontend {}", self.name),
                epoch,
                reason: "conflicting decision".into(),
            });
        }
        *r = (Some(site.to_string()), epoch);
        let mut after = self.restarts_after.lock().unwrap();
        if after.as_deref() == Some(site) {
            *after = None;
            self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        let mut r = self.route.lock().unwrap();
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            // Restarted: the fence kept on disk, no route until told.
            r.0 = None;
        }
        Ok(r.clone())
    }
}

/// Before, the verify step waited for a drift nothing could mend while it
/// ran ("fe1 has no route"), timed out, and the failover — users already
/// on b — ended failed, the group waiting for an operator.
#[tokio::test(start_paused = true)]
async fn a_frontend_restarted_during_verify_gets_the_route_again() {
    let dir = super::harness::test_dir(true, 3);
    let fe1 = Restarts::new("fe1", Some("b"));
    let fe2 = Restarts::new("fe2", None);
    let drivers: Vec<Arc<dyn FrontendDriver>> = vec![fe1.clone(), fe2.clone()];
    let s = start_with_routing(
        &config_text(&dir, true, 3, ""),
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
    sites_rounds(&s, 8, (true, true), &answer_all).await;
    sites_until(
        &s,
        (false, true),
        &answer_all,
        60,
        "not failed over to b",
        |g| g.active == "b" && g.phase != Phase::Running && g.epoch > 0,
    )
    .await;
    let g = s.lock().groups["web"].clone();
    let verify = s
        .lock()
        .recent
        .iter()
        .filter(|e| e.kind == EventKind::StepFinished && e.message.contains("verify"))
        .map(|e| e.message.clone())
        .collect::<Vec<_>>();
    assert_eq!(g.phase, Phase::Steady, "{verify:#?}");
    assert_eq!(*fe1.route.lock().unwrap(), (Some("b".into()), g.epoch));
    assert_eq!(*fe2.route.lock().unwrap(), (Some("b".into()), g.epoch));
}
