//! Reconciliation of a `hybrid` group while a runbook runs: a frontend of
//! the pair restarted empty during a failback's resync is routed again to
//! the site users are on, at the epoch it was routed at before the
//! runbook, and the DNS name is left as it is; from the failback's demote
//! on, the group is the runbook's alone.
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use super::harness::*;
use super::*;
use crate::store::MemStore;
use warden_strategies::frontend::FrontendDriver;

/// A frontend fenced as the built-in one is (an epoch below the one it
/// holds is stale; another site at that very epoch is taken), counting
/// the routes it takes; `on_read` runs whenever its route is read.
#[derive(Default)]
struct Fe {
    name: String,
    route: Mutex<(Option<String>, u64)>,
    taken: AtomicUsize,
    on_read: Mutex<Option<Box<dyn Fn() + Send>>>,
}

#[async_trait]
impl FrontendDriver for Fe {
    fn name(&self) -> &str {
        &self.name
    }
    async fn set_route(&self, site: &str, epoch: u64, _: SwitchMode) -> Result<(), StrategyError> {
        let mut route = self.route.lock().unwrap();
        if epoch < route.1 {
            return Err(StrategyError::StaleEpoch {
                element: self.name.clone(),
                sent: epoch,
                seen: route.1,
            });
        }
        if epoch == route.1 && route.0.as_deref().is_some_and(|s| s != site) {
            return Err(StrategyError::EpochTaken {
                element: self.name.clone(),
                epoch,
                reason: format!("{:?} at this epoch", route.0),
            });
        }
        *route = (Some(site.to_string()), epoch);
        self.taken.fetch_add(1, SeqCst);
        Ok(())
    }
    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        if let Some(f) = self.on_read.lock().unwrap().as_ref() {
            f();
        }
        Ok(self.route.lock().unwrap().clone())
    }
}

/// Hybrid group `web` over frontends fe1 and fe2 (the name at fe1), with
/// automatic failback and a replication plan, after 8 healthy rounds.
async fn hybrid_failback() -> (Arc<Shared>, [Arc<Fe>; 2], Arc<FakeDns>, TestDir) {
    let dir = test_dir(true, 2);
    let text = hybrid_text(&dir)
        .replace("automatic = true", "automatic = true\nfailback = \"auto\"")
        + "[groups.web.replication]\nplan = \"none\"\n";
    let fes = ["fe1", "fe2"].map(|n| {
        Arc::new(Fe {
            name: n.into(),
            ..Fe::default()
        })
    });
    let dns = Arc::new(FakeDns::default());
    let (drivers, provider) = (fes.clone(), dns.clone());
    let s = start_with_routing(
        &text,
        &dir,
        Arc::new(MemStore::default()),
        Mode::Local,
        move |_, name| {
            let drivers: Vec<Arc<dyn FrontendDriver>> =
                drivers.iter().map(|d| d.clone() as _).collect();
            hybrid_routing(name, &["fe1", "fe2"], drivers, provider.clone())
        },
    )
    .expect("config");
    for _ in 0..8 {
        round(&s, (true, true), &answer_all).await;
    }
    (s, fes, dns, dir)
}

/// One round ([`round_sites`]): sites up as `up` says, both frontends
/// seen healthy, commands `held` unanswered.
async fn round(s: &Arc<Shared>, (a_up, b_up): (bool, bool), held: &dyn Fn(&Command) -> bool) {
    frontends_seen(s, (true, true), (true, true));
    round_sites(s, a_up, b_up, held).await;
}

/// Rounds ([`round`]) until `done` holds, at most `max`, else a panic
/// saying `what`.
async fn until(
    s: &Arc<Shared>,
    up: (bool, bool),
    held: &dyn Fn(&Command) -> bool,
    max: usize,
    what: &str,
    done: impl Fn(&Shared) -> bool,
) {
    for _ in 0..max {
        if done(s) {
            return;
        }
        round(s, up, held).await;
    }
    assert!(done(s), "{what} after {max} rounds: {:#?}", group(s));
}

/// Rounds until step `name` of the group's runbook runs, a returned and
/// commands `held` unanswered.
async fn until_step(s: &Arc<Shared>, held: &dyn Fn(&Command) -> bool, name: StepName) {
    until(s, (true, true), held, 60, "the step runs", |s| {
        running(s).is_some_and(|rb| {
            rb.steps
                .iter()
                .any(|x| x.name == name && x.status == StepStatus::Running)
        })
    })
    .await;
}

/// The group's running runbook.
fn running(s: &Shared) -> Option<Runbook> {
    let st = s.lock();
    st.groups["web"]
        .runbook
        .and_then(|id| st.runbooks.get(&id))
        .cloned()
}

/// Rounds until a's service, dead, is failed over from: steady on b.
async fn failed_over_to_b(s: &Arc<Shared>) {
    until(
        s,
        (false, true),
        &answer_all,
        40,
        "not failed over to b",
        |s| {
            let g = group(s);
            g.active == "b" && g.phase == Phase::Steady
        },
    )
    .await;
}

/// Failed over to b, then a returns: the failback's resync runs (held).
async fn failback_resyncing(s: &Arc<Shared>) -> Runbook {
    failed_over_to_b(s).await;
    until_step(s, &|c| c.kind == CommandKind::Resync, StepName::Resync).await;
    let rb = running(s).expect("a runbook runs");
    assert_eq!((rb.kind, rb.from.as_str()), (RunbookKind::Failback, "b"));
    rb
}

fn reconcile_events(s: &Shared) -> Vec<String> {
    s.lock()
        .recent
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Reconciled | EventKind::ReconcileFailed | EventKind::Fencing
            )
        })
        .map(|e| e.message.clone())
        .collect()
}

fn route(fe: &Fe) -> (Option<String>, u64) {
    fe.route.lock().unwrap().clone()
}

/// Failed over to b; a returns and the failback's resync runs (hours for
/// a large data set). fe2 restarts: it keeps its fence (the epoch before
/// the failback's) but routes nobody. Reconciliation routes b through fe2
/// again at that epoch — not the failback's, at which fe2 would then
/// refuse the switch to a — leaves fe1 and the DNS name as they are, and
/// says so; the failback then switches both frontends to a.
#[tokio::test(start_paused = true)]
async fn a_hybrid_frontend_restarted_during_a_failback_resync_routes_users_to_the_old_site_again() {
    let (s, fes, dns, _dir) = hybrid_failback().await;
    let rb = failback_resyncing(&s).await;
    let before = rb.epoch - 1;
    for fe in &fes {
        assert_eq!(route(fe), (Some("b".into()), before), "{}", fe.name);
    }
    let named = dns.0.lock().unwrap().clone();
    let fe1_taken = fes[0].taken.load(SeqCst);

    // fe2 restarted: its fence kept, no route.
    *fes[1].route.lock().unwrap() = (None, before);
    s.reconcile_once().await;
    assert_eq!(
        route(&fes[1]),
        (Some("b".into()), before),
        "users through the restarted fe2 reach b again, at the epoch before the failback's: {:#?}",
        reconcile_events(&s)
    );
    assert_eq!(
        fes[0].taken.load(SeqCst),
        fe1_taken,
        "fe1 was left as it was"
    );
    assert_eq!(
        *dns.0.lock().unwrap(),
        named,
        "the DNS name is not re-pointed"
    );
    let said = reconcile_events(&s);
    let msg = said.last().expect("an event");
    assert!(
        msg.starts_with(&format!(
            "site layer: routing drift corrected: fe2 has no route (restarted empty?) at epoch \
             {before}; re-applied b at epoch {before} to fe2, the epoch it was routed at before \
             the runbook: failback b → a (runbook {}) has not begun its demote: users stay on b \
             until its switch at epoch {}",
            rb.id, rb.epoch
        )),
        "{said:#?}"
    );
    // Nothing more to say while it stays routed.
    s.reconcile_once().await;
    assert_eq!(
        reconcile_events(&s).len(),
        said.len(),
        "{:#?}",
        reconcile_events(&s)
    );

    // The resync ends: the failback switches both frontends to a.
    until(&s, (true, true), &answer_all, 60, "the failback", |s| {
        group(s).phase == Phase::Steady
    })
    .await;
    assert_eq!(s.lock().runbooks[&rb.id].status, RunbookStatus::Succeeded);
    assert_eq!(group(&s).active, "a");
    for fe in &fes {
        assert_eq!(route(fe), (Some("a".into()), rb.epoch), "{}", fe.name);
    }
}

/// Once the failback's demote runs, a frontend restarted empty is left to
/// the runbook (its switch routes it): no route of b is sent while b is
/// being taken down.
#[tokio::test(start_paused = true)]
async fn no_route_of_b_is_sent_to_a_hybrid_frontend_once_the_demote_began() {
    let (s, fes, _dns, _dir) = hybrid_failback().await;
    failed_over_to_b(&s).await;
    until_step(&s, &|c| c.kind == CommandKind::Demote, StepName::Demote).await;
    let rb = running(&s).expect("the failback");
    assert_eq!(rb.kind, RunbookKind::Failback);
    *fes[1].route.lock().unwrap() = (None, rb.epoch - 1);
    let taken = fes[1].taken.load(SeqCst);
    s.reconcile_once().await;
    assert_eq!(
        (fes[1].taken.load(SeqCst), route(&fes[1])),
        (taken, (None, rb.epoch - 1)),
        "no route of b sent once the demote began: {:#?}",
        reconcile_events(&s)
    );
}

/// The failback's demote begins while the frontends are read: the route
/// from before the runbook is not sent (checked again under the state
/// lock before the write).
#[tokio::test(start_paused = true)]
async fn a_demote_begun_while_the_hybrid_frontends_are_read_is_not_routed_over() {
    let (s, fes, _dns, _dir) = hybrid_failback().await;
    let rb = failback_resyncing(&s).await;
    *fes[1].route.lock().unwrap() = (None, rb.epoch - 1);
    let me = Arc::clone(&s);
    let id = rb.id;
    *fes[1].on_read.lock().unwrap() = Some(Box::new(move || {
        let mut st = me.lock();
        let r = st.runbooks.get_mut(&id).expect("the runbook");
        for step in r.steps.iter_mut() {
            if step.name == StepName::Resync {
                step.status = StepStatus::Done;
            }
            if step.name == StepName::Demote {
                step.status = StepStatus::Running;
            }
        }
    }));
    let taken = fes[1].taken.load(SeqCst);
    s.reconcile_once().await;
    assert_eq!(
        (fes[1].taken.load(SeqCst), route(&fes[1])),
        (taken, (None, rb.epoch - 1)),
        "no route of b sent once the demote began: {:#?}",
        reconcile_events(&s)
    );
}
