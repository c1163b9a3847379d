//! What a failed cut-over leaves: a switch that reached none of the
//! routing layer is rolled back (the new site demoted, then the old one
//! promoted again); one that may have reached part of it is carried
//! forward (the new site stays active, the old one demoted), so users are
//! never on two promoted sites or on a demoted one.
use super::*;

/// The failback b → a at epoch 3 whose switch fails as `fault` says.
async fn failback_whose_switch_fails(fault: SwitchFault) -> (World, Runbook) {
    let w = world_on("b", 2);
    *w.switch_fault.lock().unwrap() = Some(fault);
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Failed, "{rb:#?}");
    let switch = rb
        .steps
        .iter()
        .find(|s| s.name == StepName::Switch)
        .unwrap();
    assert_eq!(switch.status, StepStatus::Failed, "{rb:#?}");
    (w, rb)
}

fn events_of(w: &World, kind: EventKind) -> Vec<String> {
    w.events
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, m)| m.clone())
        .collect()
}

/// One frontend took the route to a, the other timed out: users behind
/// the first write at a. Promoting b again would leave users on two
/// sites (and a's writes at neither's peer): the runbook carries on
/// instead — a stays promoted, b stays demoted, nothing is undone.
#[tokio::test(start_paused = true)]
async fn a_switch_that_reached_part_of_the_routing_layer_is_carried_forward() {
    let (w, rb) = failback_whose_switch_fails(SwitchFault::Partly).await;
    assert!(rb.rolled_forward, "{rb:#?}");
    assert!(!rb.aborted, "{rb:#?}");
    let sent = w.sent_kinds();
    assert_eq!(
        w.runs("b", CommandKind::Promote),
        0,
        "b promoted again: {sent:?}"
    );
    assert_eq!(w.runs("a", CommandKind::Demote), 0, "a demoted: {sent:?}");
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("a"));
    let alerts = events_of(&w, EventKind::Alert).join("\n");
    assert!(
        alerts.contains("not rolled back")
            && alerts.contains("fe2 unreachable")
            && alerts.contains("warden resync web"),
        "{alerts}"
    );
    assert!(events_of(&w, EventKind::FailbackAborted).is_empty());
}

/// The switch failed and the routing layer cannot be read: nobody can
/// tell whether users reach a already, so nothing is undone either.
#[tokio::test(start_paused = true)]
async fn a_switch_whose_reach_cannot_be_read_is_carried_forward() {
    let (w, rb) = failback_whose_switch_fails(SwitchFault::Unreadable).await;
    assert!(rb.rolled_forward && !rb.aborted, "{rb:#?}");
    assert_eq!(w.runs("b", CommandKind::Promote), 0);
    let alerts = events_of(&w, EventKind::Alert).join("\n");
    assert!(alerts.contains("cannot be read"), "{alerts}");
}

/// A `hybrid` group: fe1 reads at the old route, fe2 timed out on the
/// switch and cannot be read (the hybrid reading leaves unreachable
/// frontends out). fe2 may have taken the route — its users then write at
/// a —, so nothing is undone. Before, the reading looked whole (fe1 only,
/// no drift) and b was promoted again while fe2 may route to a.
#[tokio::test(start_paused = true)]
async fn a_hybrid_switch_with_an_unread_frontend_is_carried_forward() {
    let (w, rb) = failback_whose_switch_fails(SwitchFault::HybridUnread).await;
    assert!(rb.rolled_forward && !rb.aborted, "{rb:#?}");
    assert_eq!(
        w.runs("b", CommandKind::Promote),
        0,
        "b promoted again: {:?}",
        w.sent_kinds()
    );
    assert_eq!(w.runs("a", CommandKind::Demote), 0, "{:?}", w.sent_kinds());
    let alerts = events_of(&w, EventKind::Alert).join("\n");
    assert!(
        alerts.contains("could not all be read") && alerts.contains("fe2: request timed out"),
        "{alerts}"
    );
    assert!(events_of(&w, EventKind::FailbackAborted).is_empty());
}

/// Every frontend read, none at the runbook's epoch: the switch reached
/// nobody. The rollback demotes a (promoted by the failback) before b is
/// promoted again: never two sites promoted.
#[tokio::test(start_paused = true)]
async fn a_switch_that_reached_nobody_is_rolled_back_new_site_demoted_first() {
    let (w, rb) = failback_whose_switch_fails(SwitchFault::Nowhere).await;
    assert!(!rb.rolled_forward, "{rb:#?}");
    assert!(rb.aborted, "{rb:#?}");
    let sent = w.sent.lock().unwrap().clone();
    let at = |site: &str, id: &str| {
        sent.iter()
            .position(|(s, c)| s == site && c.id == id)
            .unwrap_or_else(|| panic!("no {id} to {site}: {sent:#?}"))
    };
    let demote = at("a", "web:3:demote_back");
    let promote = at("b", "web:3:promote_back");
    assert!(demote < promote, "{sent:#?}");
    assert_eq!(w.route.lock().unwrap().0.as_deref(), Some("b"));
    let aborted = events_of(&w, EventKind::FailbackAborted).join("\n");
    assert!(
        aborted.contains("still routes to b at epoch 2") && aborted.contains("a demoted again"),
        "{aborted}"
    );
}

/// A failback whose new site's promote fails never reaches the switch:
/// the new site (its hooks may have run) is demoted, then the old one
/// promoted again.
#[tokio::test(start_paused = true)]
async fn a_failed_promote_is_rolled_back_with_the_new_site_demoted() {
    let w = world_on("b", 2);
    w.failing_promote.lock().unwrap().push("a".into());
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Failed);
    assert!(rb.aborted && !rb.rolled_forward, "{rb:#?}");
    let sent = w.sent_kinds();
    let demote_a = sent
        .iter()
        .rposition(|(s, k)| s == "a" && *k == CommandKind::Demote);
    let promote_b = sent
        .iter()
        .position(|(s, k)| s == "b" && *k == CommandKind::Promote);
    assert!(
        matches!((demote_a, promote_b), (Some(d), Some(p)) if d < p),
        "{sent:?}"
    );
}

/// A failover whose switch fails after b was promoted: b stays the
/// active site (a is fenced or down), and the rest of the routing layer
/// is routed to b by reconciliation, not back to a.
#[tokio::test(start_paused = true)]
async fn a_failover_whose_switch_fails_after_its_promote_is_carried_forward() {
    let w = world_on("a", 1);
    *w.switch_fault.lock().unwrap() = Some(SwitchFault::Partly);
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed, "{rb:#?}");
    assert!(rb.rolled_forward, "{rb:#?}");
    let alerts = events_of(&w, EventKind::Alert).join("\n");
    assert!(alerts.contains("b stays the active site"), "{alerts}");
}

/// A failover whose promote failed never switched: it is not carried
/// forward (b is not known to be serving).
#[tokio::test(start_paused = true)]
async fn a_failover_whose_promote_failed_is_not_carried_forward() {
    let w = world_on("a", 1);
    w.failing_promote.lock().unwrap().push("b".into());
    let rb = failover(&w, policy(Fencing::BestEffort, None)).await;
    assert_eq!(rb.status, RunbookStatus::Failed, "{rb:#?}");
    assert!(!rb.rolled_forward, "{rb:#?}");
}

/// A failback b → a at epoch 3 whose switch to a timed out without
/// reaching anyone is rolled back. A deposed leader's route to a at
/// epoch 3 (its switch, still in flight) that lands after the rollback is
/// refused as a conflicting decision: the rollback itself routed b at
/// epoch 3 before it undid anything. Before, the layer stayed at b's
/// route of epoch 2 until reconciliation's pass: the late route was taken
/// (users on a, demoted again), and reconciliation's route back to b at
/// epoch 3 was then refused as the conflict, for good.
#[tokio::test(start_paused = true)]
async fn a_rollback_routes_the_old_site_at_its_epoch_so_a_late_switch_is_refused() {
    let (w, rb) = failback_whose_switch_fails(SwitchFault::LostTo("a")).await;
    assert!(rb.aborted && !rb.rolled_forward, "{rb:#?}");
    // The deposed leader's late switch lands now.
    *w.switch_fault.lock().unwrap() = None;
    let late = SiteRoute {
        site: "a".into(),
        mode: warden_strategies::SwitchMode::Drain,
    };
    let refused = w.activate("web", &late, 3).await;
    assert!(
        refused.is_err(),
        "a deposed leader's late route to a at epoch 3 was taken: {:?}",
        w.route.lock().unwrap()
    );
    // Reconciliation's route (b at the group's epoch 3) is a no-op.
    let back = SiteRoute {
        site: "b".into(),
        mode: warden_strategies::SwitchMode::Immediate,
    };
    w.activate("web", &back, 3).await.expect("b at epoch 3");
    let route = w.route.lock().unwrap().clone();
    assert_eq!(
        (route.0.as_deref(), route.1),
        (Some("b"), 3),
        "b routed at the runbook's epoch"
    );
    assert_eq!(route.2, 0, "users never moved");
    // The route was written before a was demoted again and b promoted.
    let aborted = events_of(&w, EventKind::FailbackAborted).join("\n");
    assert!(
        aborted.contains("the routing layer names b at epoch 3"),
        "{aborted}"
    );
}

/// The deposed leader's late route to a lands between the rollback's
/// read of the layer and its own route to b: b's route is refused, the
/// layer routes to a at epoch 3, so users reach a — nothing is undone
/// (a stays promoted, b demoted), as for a switch that reached part of
/// the layer.
#[tokio::test(start_paused = true)]
async fn a_late_switch_that_lands_before_the_rollbacks_route_is_carried_forward() {
    let w = world_on("b", 2);
    *w.switch_fault.lock().unwrap() = Some(SwitchFault::LostTo("a"));
    *w.late_route.lock().unwrap() = Some(("a".into(), 3));
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Failed, "{rb:#?}");
    assert!(rb.rolled_forward && !rb.aborted, "{rb:#?}");
    assert_eq!(
        w.runs("b", CommandKind::Promote),
        0,
        "b promoted again: {:?}",
        w.sent_kinds()
    );
    assert_eq!(w.runs("a", CommandKind::Demote), 0, "{:?}", w.sent_kinds());
    let alerts = events_of(&w, EventKind::Alert).join("\n");
    assert!(
        alerts.contains("b's route at epoch 3 was refused")
            && alerts.contains("routes to a at epoch 3")
            && alerts.contains("not rolled back"),
        "{alerts}"
    );
}

/// A rollback cut short after its route to b at epoch 3 (the process
/// died) is finished by the resume: b at the runbook's epoch is the
/// rollback's own route, not the switch's, so a is demoted again and b
/// promoted — not carried forward to a demoted site.
#[tokio::test(start_paused = true)]
async fn a_resumed_rollback_takes_its_own_route_for_a_switch_that_reached_nobody() {
    let w = world_on("b", 3);
    let mut rb = failback_rb();
    for s in rb.steps.iter_mut() {
        s.status = match s.name {
            StepName::Switch => StepStatus::Failed,
            StepName::Verify | StepName::StartReplication => StepStatus::Pending,
            _ => StepStatus::Done,
        };
    }
    rb.status = RunbookStatus::Failed;
    rb.rolling_back = true;
    let rb = run(&w, rb).await;
    assert!(rb.aborted && !rb.rolled_forward, "{rb:#?}");
    assert_eq!(w.runs("b", CommandKind::Promote), 1, "{:?}", w.sent_kinds());
    assert_eq!(w.runs("a", CommandKind::Demote), 1, "{:?}", w.sent_kinds());
    assert!(events_of(&w, EventKind::Alert).is_empty());
}

/// A newer decision (epoch 4) holds the routing layer when the rollback
/// routes b at epoch 3: this orchestrator is stale, and nothing is undone
/// from it — neither b promoted again nor the move carried forward.
#[tokio::test(start_paused = true)]
async fn a_rollback_that_finds_a_newer_decision_undoes_nothing() {
    let w = world_on("b", 2);
    *w.switch_fault.lock().unwrap() = Some(SwitchFault::LostTo("a"));
    *w.late_route.lock().unwrap() = Some(("a".into(), 4));
    let rb = failback(&w).await;
    assert_eq!(rb.status, RunbookStatus::Failed, "{rb:#?}");
    assert!(!rb.rolled_forward && !rb.aborted, "{rb:#?}");
    assert_eq!(w.runs("b", CommandKind::Promote), 0, "{:?}", w.sent_kinds());
    assert_eq!(w.runs("a", CommandKind::Demote), 0, "{:?}", w.sent_kinds());
    let alerts = events_of(&w, EventKind::Alert).join("\n");
    assert!(
        alerts.contains("is not rolled back") && alerts.contains("routes to a at epoch 4"),
        "{alerts}"
    );
}
