//! Reconciliation while a runbook runs: a routing layer restarted empty
//! during a failback's (or a `resync` runbook's) resync is routed again to
//! the site users are on, at the epoch it was routed at before the
//! runbook; from the cut-over on (and for a failover, throughout) the
//! group is the runbook's alone.
use std::sync::atomic::Ordering::SeqCst;

use super::harness::*;
use super::*;

/// The group's running runbook.
fn running(s: &Shared) -> Runbook {
    let st = s.lock();
    let id = st.groups["web"].runbook.expect("a runbook runs");
    st.runbooks[&id].clone()
}

/// Whether step `name` of the group's running runbook runs.
fn step_runs(s: &Shared, name: StepName) -> bool {
    let st = s.lock();
    st.groups["web"]
        .runbook
        .and_then(|id| st.runbooks.get(&id))
        .is_some_and(|rb| {
            rb.steps
                .iter()
                .any(|x| x.name == name && x.status == StepStatus::Running)
        })
}

/// Rounds with both sites up, commands `held` unanswered, until step
/// `name` of the group's runbook runs.
async fn until_step(s: &Arc<Shared>, held: &dyn Fn(&Command) -> bool, name: StepName) {
    sites_until(s, (true, true), held, 60, "the step runs", |_| {
        step_runs(s, name)
    })
    .await;
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

fn resync_held(c: &Command) -> bool {
    c.kind == CommandKind::Resync
}

/// Failed over to b; a returns and the automatic failback's resync runs
/// (long). The frontend restarts: it keeps its fence (the epoch before the
/// failback's) but routes nothing. Reconciliation routes b again at that
/// epoch — not the failback's, which would make the frontend refuse the
/// switch to a there — and says so; the failback then switches to a at its
/// own epoch.
#[tokio::test(start_paused = true)]
async fn a_frontend_restarted_during_a_failback_resync_routes_users_to_the_old_site_again() {
    let (s, fake, _dir) = replicated("auto", 2, "").await;
    fail_over_to_b(&s).await;
    until_step(&s, &resync_held, StepName::Resync).await;
    let rb = running(&s);
    assert_eq!((rb.kind, rb.from.as_str()), (RunbookKind::Failback, "b"));
    let before = rb.epoch - 1;
    assert_eq!(*fake.route.lock().unwrap(), (Some("b".into()), before));

    // Restarted: its fence kept, no route.
    *fake.route.lock().unwrap() = (None, before);
    s.reconcile_once().await;
    assert_eq!(
        *fake.route.lock().unwrap(),
        (Some("b".into()), before),
        "users through the restarted frontend reach b again, at the epoch before the failback's: {:#?}",
        reconcile_events(&s)
    );
    let said = reconcile_events(&s);
    let msg = said.last().expect("an event");
    assert!(
        msg.starts_with(&format!(
            "routing drift corrected: routing layer reports None at epoch {before}; \
             re-applied b at epoch {before}, the epoch it was routed at before the runbook: \
             failback b → a (runbook {}) has not begun its demote: users stay on b until its \
             switch at epoch {}",
            rb.id, rb.epoch
        )),
        "{said:#?}"
    );
    // Nothing more to say while it stays routed.
    s.reconcile_once().await;
    assert_eq!(reconcile_events(&s).len(), said.len());

    // The resync ends: the failback switches to a at its own epoch.
    sites_until(&s, (true, true), &answer_all, 60, "the failback", |g| {
        g.phase == Phase::Steady
    })
    .await;
    assert_eq!(s.lock().runbooks[&rb.id].status, RunbookStatus::Succeeded);
    assert_eq!(group(&s).active, "a");
    assert_eq!(*fake.route.lock().unwrap(), (Some("a".into()), rb.epoch));
}

/// `warden resync` (users stay on b): a frontend restarted during its
/// resync step is routed to b again at the epoch before the runbook's; its
/// switch then moves the fence to the runbook's epoch.
#[tokio::test(start_paused = true)]
async fn a_frontend_restarted_during_a_resync_runbook_is_routed_again_before_its_switch() {
    let (s, fake, _dir) = replicated("manual", 5, "").await;
    fail_over_to_b(&s).await;
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    let id = s.operator_resync("web", "operator").expect("resync");
    until_step(&s, &resync_held, StepName::Resync).await;
    let rb = running(&s);
    assert_eq!((rb.id, rb.kind), (id, RunbookKind::Resync));
    *fake.route.lock().unwrap() = (None, rb.epoch - 1);
    s.reconcile_once().await;
    assert_eq!(
        *fake.route.lock().unwrap(),
        (Some("b".into()), rb.epoch - 1),
        "{:#?}",
        reconcile_events(&s)
    );
    let said = reconcile_events(&s);
    assert!(
        said.last()
            .is_some_and(|m| m.contains("has not begun its switch")),
        "{said:#?}"
    );
    sites_until(&s, (true, true), &answer_all, 60, "the resync", |g| {
        g.phase == Phase::Steady
    })
    .await;
    assert_eq!(*fake.route.lock().unwrap(), (Some("b".into()), rb.epoch));
}

/// From the failback's demote on, and during a failover, a routing layer
/// that routes nothing is left to the runbook (its switch routes it): no
/// route of the old site is sent while it is being taken down.
#[tokio::test(start_paused = true)]
async fn from_the_cut_over_on_the_group_is_left_to_its_runbook() {
    let (s, fake, _dir) = replicated("auto", 2, "").await;
    // A failover whose promote is not answered yet.
    let promote_held = |c: &Command| c.kind == CommandKind::Promote;
    sites_until(&s, (false, true), &promote_held, 40, "the promote", |_| {
        step_runs(&s, StepName::Promote)
    })
    .await;
    let failover = running(&s);
    assert_eq!(failover.kind, RunbookKind::Failover);
    *fake.route.lock().unwrap() = (None, failover.epoch - 1);
    let sent = fake.activations.load(SeqCst);
    s.reconcile_once().await;
    assert_eq!(fake.activations.load(SeqCst), sent, "nothing sent");
    sites_until(&s, (false, true), &answer_all, 40, "the failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;

    // The failback's demote runs (not answered yet).
    let demote_held = |c: &Command| c.kind == CommandKind::Demote;
    until_step(&s, &demote_held, StepName::Demote).await;
    let rb = running(&s);
    assert_eq!(rb.kind, RunbookKind::Failback);
    *fake.route.lock().unwrap() = (None, rb.epoch - 1);
    let sent = fake.activations.load(SeqCst);
    s.reconcile_once().await;
    assert_eq!(fake.activations.load(SeqCst), sent, "nothing sent");
    assert_eq!(*fake.route.lock().unwrap(), (None, rb.epoch - 1));
}

/// The failback's demote begins between the reconciliation's read and its
/// write: the route from before the runbook is not sent.
#[tokio::test(start_paused = true)]
async fn a_cut_over_begun_after_the_read_is_not_routed_over() {
    let (s, fake, _dir) = replicated("auto", 2, "").await;
    fail_over_to_b(&s).await;
    until_step(&s, &resync_held, StepName::Resync).await;
    let rb = running(&s);
    *fake.route.lock().unwrap() = (None, rb.epoch - 1);
    // The engine records the demote as begun while the layer is read.
    let me = Arc::clone(&s);
    let id = rb.id;
    *fake.on_read.lock().unwrap() = Some(Box::new(move || {
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
    let sent = fake.activations.load(SeqCst);
    s.reconcile_once().await;
    assert_eq!(
        fake.activations.load(SeqCst),
        sent,
        "no route of b sent once the demote began: {:#?}",
        reconcile_events(&s)
    );
    assert_eq!(*fake.route.lock().unwrap(), (None, rb.epoch - 1));
}
