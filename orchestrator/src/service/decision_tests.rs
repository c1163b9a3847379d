//! What the live service decides above the detector, on paused time:
//! manual mode, the failover budget, lag and approval, switchovers, and
//! pending decisions taken as they stand when approved.
use super::harness::*;
use super::*;
use crate::store::MemStore;

#[tokio::test(start_paused = true)]
async fn manual_mode_turns_a_confirmed_disaster_into_a_pending_decision() {
    let (s, fake, _dir) = setup(false, 5);
    for _ in 0..4 {
        round(&s, true).await;
    }
    for _ in 0..10 {
        round(&s, false).await;
    }
    let g = group(&s);
    assert_eq!(g.phase, Phase::PendingApproval);
    assert_eq!(g.active, "a");
    let p = g.pending.expect("pending decision");
    assert_eq!((p.kind, p.to.as_str()), (RunbookKind::Failover, "b"));
    assert!(p.reason.contains("automatic = false"), "{}", p.reason);
    assert!(
        s.lock().runbooks.is_empty(),
        "nothing moves without the operator"
    );
    assert!(
        s.lock()
            .recent
            .iter()
            .any(|e| e.kind == EventKind::PendingApproval && !e.evidence.is_empty()),
        "the pending decision carries its evidence"
    );
    // The operator approves: the failover runs.
    s.operator_approve("web", "operator").expect("approve");
    rounds_until(&s, false, 40, "failover after approval", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    assert_eq!(*fake.route.lock().unwrap(), (Some("b".into()), 2));
}

#[tokio::test(start_paused = true)]
async fn failover_budget_stops_automatic_moves_until_approved() {
    let (s, fake, _dir) = setup(true, 1);
    for _ in 0..4 {
        round(&s, true).await;
    }
    // Move 1: automatic failover.
    rounds_until(&s, false, 40, "automatic failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    assert_eq!(group(&s).moves_unix_ms.len(), 1);
    // a recovers: a failback would be move 2, over the budget of 1.
    rounds_until(&s, true, 60, "pending failback", |g| {
        g.phase == Phase::PendingApproval
    })
    .await;
    let g = group(&s);
    assert_eq!(g.active, "b");
    let p = g.pending.expect("pending");
    assert_eq!(p.kind, RunbookKind::Failback);
    assert!(p.reason.contains("budget exhausted"), "{}", p.reason);
    for _ in 0..20 {
        round(&s, true).await;
    }
    assert_eq!(group(&s).phase, Phase::PendingApproval, "still waiting");
    assert_eq!(s.lock().runbooks.len(), 1);
    // An approval that cannot start the runbook (no epoch left) is refused
    // and changes nothing: no `approved` event, the budget window kept.
    let approvals = |s: &Shared| {
        s.lock()
            .recent
            .iter()
            .filter(|e| e.kind == EventKind::Approved)
            .count()
    };
    let (epoch, approved_before) = (group(&s).epoch, approvals(&s));
    // At the ceiling: no epoch an agent or frontend would take is left.
    s.lock().groups.get_mut("web").unwrap().epoch = warden_proto::EPOCH_CEILING;
    let refused = s.operator_approve("web", "operator").unwrap_err();
    assert!(refused.to_string().contains("no later epoch"), "{refused}");
    s.lock().groups.get_mut("web").unwrap().epoch = epoch;
    let g = group(&s);
    assert_eq!(
        (g.phase, g.moves_unix_ms.len()),
        (Phase::PendingApproval, 1)
    );
    assert_eq!(
        approvals(&s),
        approved_before,
        "a refused approval recorded"
    );
    s.operator_approve("web", "operator").expect("approve");
    rounds_until(&s, true, 40, "failback after approval", |g| {
        g.phase == Phase::Steady && g.active == "a"
    })
    .await;
    assert_eq!(*fake.route.lock().unwrap(), (Some("a".into()), 3));
    assert!(
        s.operator_approve("web", "operator").is_err(),
        "nothing left to approve"
    );
}

/// A switchover to a site that answers again but is not judged recovered
/// yet is refused (it would be failed straight back away from).
#[tokio::test(start_paused = true)]
async fn a_switchover_waits_for_the_target_to_be_recovered() {
    let (s, _fake, _dir) = setup(true, 5);
    for _ in 0..4 {
        round(&s, true).await;
    }
    rounds_until(&s, false, 40, "automatic failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    // a serves again: healthy rounds, but not rise + hold_down of them yet.
    round(&s, true).await;
    round(&s, true).await;
    match s.operator_switchover("web", "a", "operator") {
        Err(OrchestratorError::Conflict(m)) => {
            assert!(m.contains("still confirmed down"), "{m}")
        }
        other => panic!("a switchover to a site still down: {other:?}"),
    }
    assert_eq!(s.lock().runbooks.len(), 1, "nothing started");
}

/// A lag the agent reports is its word (a `command` plan's script prints
/// it): `u64::MAX` saturates the RPO instead of wrapping it to the report's
/// age (or panicking in a debug build), in status and in /metrics, and a
/// failover to that standby waits for approval.
#[tokio::test(start_paused = true)]
async fn an_absurd_lag_saturates_the_rpo_and_holds_the_failover() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "")
        + "[groups.web.replication]\nplan = \"none\"\nmax_lag_on_failover = \"30s\"\n";
    let (s, _fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    for _ in 0..4 {
        round_lag(&s, true, true, Some(u64::MAX)).await;
    }
    let rpo = {
        let st = s.lock();
        s.rpo_ms(&st, "web", s.clock.now_ms())
    };
    assert_eq!(rpo, Some(u64::MAX));
    let view = s.group_view("web").expect("view");
    let shown = view.replication.expect("replication view").rpo_ms;
    assert_eq!(shown, Some(u64::MAX));
    let metrics = s.metrics_text(false);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("warden_rpo_seconds{"))
        .unwrap_or_else(|| panic!("no rpo gauge in {metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().expect(line);
    assert!(value > 1e15, "{line}");
    for _ in 0..12 {
        round_lag(&s, false, true, Some(u64::MAX)).await;
    }
    let g = group(&s);
    assert_eq!(g.phase, Phase::PendingApproval, "{g:#?}");
}

/// A standby whose agent says it cannot be promoted now (its data volume
/// is not mounted: the promote would be refused): an automatic failover
/// to it waits for approval with that reason, and the group's alerts say
/// it while it lasts; approved, or ordered by an operator, while it says
/// so, the move is refused before anything is fenced, and approved once it
/// says nothing more, it goes ahead. A standby that says nothing is failed
/// over to at once. Before, the failover started, fenced a, and failed at
/// b's promote.
#[tokio::test(start_paused = true)]
async fn a_standby_that_cannot_be_promoted_is_not_failed_over_to_without_approval() {
    let why = "this site's directory /srv/b of group web is declared a mount point \
               (mount_point = true) and is not one now (its volume unmounted?)";
    for unfit in [Some(why), None] {
        let dir = test_dir(true, 5);
        let text = config_text(&dir, true, 5, "");
        let (s, fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
        for _ in 0..4 {
            round_unfit(&s, true, unfit).await;
        }
        let alerts = s.alerts("web");
        let said = alerts
            .iter()
            .any(|a| a.contains("site b cannot be promoted for group web now") && a.contains(why));
        assert_eq!(said, unfit.is_some(), "{unfit:?}: {alerts:?}");
        // a's service dies.
        for _ in 0..12 {
            round_unfit(&s, false, unfit).await;
        }
        let g = group(&s);
        if unfit.is_some() {
            assert_eq!(g.phase, Phase::PendingApproval, "{g:#?}");
            let p = g.pending.expect("pending");
            assert!(
                p.reason.contains("site b cannot be promoted") && p.reason.contains(why),
                "{}",
                p.reason
            );
            assert_eq!(fake.route.lock().unwrap().0, None, "nobody moved");
            // Approved, or ordered by an operator, while b still says so:
            // refused, nothing started, no epoch spent, no site fenced.
            let epoch = g.epoch;
            for e in [
                s.operator_approve("web", "operator").unwrap_err(),
                s.operator_failover("web", "b", "operator").unwrap_err(),
            ] {
                let e = e.to_string();
                assert!(
                    e.contains("site b cannot be promoted") && e.contains("nothing was started"),
                    "{e}"
                );
            }
            let g = group(&s);
            assert_eq!((g.phase, g.epoch), (Phase::PendingApproval, epoch));
            assert_eq!(s.lock().runbooks.len(), 0, "no runbook");
            // Nor said approved (before, the event was recorded, and the
            // failover budget reset, ahead of the refusal).
            let approved: Vec<String> = s
                .lock()
                .recent
                .iter()
                .filter(|e| e.kind == EventKind::Approved && e.message.contains(" approved "))
                .map(|e| e.message.clone())
                .collect();
            assert_eq!(
                approved,
                Vec::<String>::new(),
                "a refused approval was said approved"
            );
            // The volume is back (b says nothing): the approval moves users.
            round_unfit(&s, false, None).await;
            s.operator_approve("web", "operator").expect("approve");
            rounds_until(&s, false, 40, "failover after approval", |g| {
                g.phase == Phase::Steady && g.active == "b"
            })
            .await;
        } else {
            assert_eq!((g.phase, g.active.as_str()), (Phase::Steady, "b"), "{g:#?}");
            assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("b"));
        }
    }
}

/// An incident that ends without a move (a and b lost together, then
/// both back: no standby could take a's place, and a recovered) is over:
/// the next failover's RTO counts from its own first failing evidence.
/// Before, the first incident's start stayed on the group (cleared only by
/// a successful move) and the next failover — however much later — said
/// an RTO counted from it.
#[tokio::test(start_paused = true)]
async fn an_incident_that_ended_without_a_move_is_no_start_of_the_next() {
    let (s, _fake, _dir) = setup(true, 5);
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    sites_rounds(&s, 10, (false, false), &answer_all).await;
    assert!(
        group(&s).incident_started_unix_ms.is_some(),
        "{:#?}",
        group(&s)
    );
    sites_rounds(&s, 20, (true, true), &answer_all).await;
    assert!(s.lock().detector.is_recovered("a", Instant::now()));
    assert_eq!(group(&s).incident_started_unix_ms, None, "{:#?}", group(&s));
    let second = s.clock.now_ms();
    sites_until(&s, (false, true), &answer_all, 40, "failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    let rb = s
        .runbooks(Some("web"))
        .into_iter()
        .find(|r| r.kind == RunbookKind::Failover)
        .expect("the failover");
    assert!(
        rb.incident_started_unix_ms >= second,
        "counted from {} (the second incident began at {second})",
        rb.incident_started_unix_ms
    );
    assert!(rb.rto_ms.is_some_and(|r| r < 10_000), "{:?}", rb.rto_ms);
}

/// `max_lag_on_failover` judges the lag toward the standby failed over
/// to: the active site reporting a small lag toward another site (here
/// "c": in a group of three, a replicates into c, and b is the one
/// healthy) says nothing of what b holds — unknown, so the failover to b
/// waits for approval. Before, the 1 s toward c passed the 30 s limit and
/// b, never replicated into, was promoted at once.
#[tokio::test(start_paused = true)]
async fn a_lag_toward_another_site_is_no_lag_of_the_standby() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "")
        + "[groups.web.replication]\nplan = \"none\"\nmax_lag_on_failover = \"30s\"\n";
    let (s, fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    for _ in 0..4 {
        round_lag_toward(&s, true, 1_000, "c").await;
    }
    for _ in 0..12 {
        round_lag_toward(&s, false, 1_000, "c").await;
    }
    let g = group(&s);
    assert_eq!(g.phase, Phase::PendingApproval, "{g:#?}");
    let p = g.pending.expect("pending");
    assert!(
        p.reason.contains("toward standby b is unknown")
            && p.reason.contains("max_lag_on_failover"),
        "{}",
        p.reason
    );
    assert_eq!(fake.route.lock().unwrap().0, None, "nobody moved");
}

/// `max_lag_on_failover`: an automatic failover to a standby that was too far
/// behind (or whose lag is unknown) waits for approval, the lag in the reason;
/// a standby within it is failed over to at once.
#[tokio::test(start_paused = true)]
async fn a_lagging_standby_is_not_promoted_without_approval() {
    for (lag, held) in [
        (Some(90_000), Some("1m 30s behind")),
        (None, Some("unknown")),
        (Some(2_000), None),
    ] {
        let dir = test_dir(true, 5);
        let text = config_text(&dir, true, 5, "")
            + "[groups.web.replication]\nplan = \"none\"\nmax_lag_on_failover = \"30s\"\n";
        let (s, fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
        for _ in 0..4 {
            round_lag(&s, true, true, lag).await;
        }
        // a's service dies; its agent still says how far behind b is.
        for _ in 0..12 {
            round_lag(&s, false, true, lag).await;
        }
        let g = group(&s);
        match held {
            Some(why) => {
                assert_eq!(g.phase, Phase::PendingApproval, "lag {lag:?}: {g:#?}");
                let p = g.pending.expect("pending");
                assert!(
                    p.reason.contains(why) && p.reason.contains("max_lag_on_failover"),
                    "{}",
                    p.reason
                );
                assert_eq!(fake.route.lock().unwrap().0, None, "nobody moved");
                s.operator_approve("web", "operator").expect("approve");
                rounds_until(&s, false, 40, "failover after approval", |g| {
                    g.phase == Phase::Steady && g.active == "b"
                })
                .await;
            }
            None => {
                rounds_until(&s, false, 40, "automatic failover", |g| {
                    g.phase == Phase::Steady && g.active == "b"
                })
                .await;
            }
        }
        assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("b"));
        // the failover records the writes at risk it was decided with: the
        // lag a last reported plus that report's age; nothing when unknown
        let rb = s
            .runbooks(Some("web"))
            .into_iter()
            .find(|r| r.kind == RunbookKind::Failover)
            .expect("the failover");
        let metrics = s.metrics().encode();
        let rto = rb.rto_ms.expect("an RTO") as f64 / 1000.0;
        assert!(
            metrics.contains(&format!(
                "warden_group_last_rto_seconds{{group=\"web\",kind=\"failover\"}} {rto}"
            )),
            "{metrics}"
        );
        match lag {
            Some(l) => {
                let rpo = rb.rpo_ms.expect("an RPO");
                assert!((l..l + 5_000).contains(&rpo), "lag {l}, RPO {rpo}");
                let shown = format!(
                    "warden_group_last_failover_rpo_seconds{{group=\"web\"}} {}",
                    rpo as f64 / 1000.0
                );
                assert!(metrics.contains(&shown), "{shown} in {metrics}");
            }
            None => {
                assert_eq!(rb.rpo_ms, None);
                assert!(!metrics.contains("warden_group_last_failover_rpo_seconds{"));
            }
        }
    }
}

/// A planned switchover away from the primary stays put with automatic
/// failback: the primary did not fail, so there is nothing to recover
/// from. `warden failback` brings the group back and ends it.
#[tokio::test(start_paused = true)]
async fn a_switchover_is_not_undone_by_automatic_failback() {
    let (s, _fake, _dir) = setup(true, 5);
    for _ in 0..8 {
        round(&s, true).await;
    }
    s.operator_switchover("web", "b", "operator")
        .expect("switchover to a healthy standby");
    rounds_until(&s, true, 40, "the switchover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    assert!(group(&s).switched_over);
    // Far beyond rise + hold_down (3 rounds, 2 s) of a healthy primary.
    for _ in 0..40 {
        round(&s, true).await;
    }
    let g = group(&s);
    assert_eq!(g.active, "b", "the operator's placement is kept");
    assert_eq!(s.lock().runbooks.len(), 1, "no automatic failback started");
    s.operator_failback("web", "operator")
        .expect("an operator's failback");
    rounds_until(&s, true, 60, "the failback", |g| {
        g.phase == Phase::Steady && g.active == "a"
    })
    .await;
    assert!(!group(&s).switched_over, "back on the primary");
}

/// An operator's move carries the group as the operator saw it (its active
/// site, its epoch): asked after the group moved on — the failback a drill
/// posts at the end of its stay, after a real move in between — it is
/// refused and nothing starts. Before, it ran against whatever the group
/// had become.
#[tokio::test(start_paused = true)]
async fn an_operators_move_for_a_group_that_moved_on_is_refused() {
    let (s, _fake, _dir) = setup(true, 5);
    for _ in 0..8 {
        round(&s, true).await;
    }
    let before = group(&s);
    let seen = |from: &str, epoch: u64| SeenGroup {
        from: Some(from.into()),
        epoch: Some(epoch),
    };
    let e = s
        .operator_switchover_seen("web", "b", "operator", &seen("a", before.epoch + 1))
        .unwrap_err();
    assert!(
        matches!(e, OrchestratorError::Conflict(_)) && e.to_string().contains("moved on"),
        "{e}"
    );
    assert!(s.lock().runbooks.is_empty(), "nothing started");
    s.operator_switchover_seen("web", "b", "operator", &seen("a", before.epoch))
        .expect("as seen");
    rounds_until(&s, true, 40, "the switchover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    let on_b = group(&s);
    // What an operator who looked before the switchover would send.
    for stale in [
        seen("a", before.epoch),
        seen("b", before.epoch),
        seen("a", on_b.epoch),
    ] {
        let e = s
            .operator_failback_seen("web", "operator", &stale)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("it now runs on b at epoch {}", on_b.epoch)),
            "{stale:?}: {e}"
        );
    }
    assert_eq!(s.lock().runbooks.len(), 1, "no failback started");
    s.operator_failback_seen("web", "operator", &seen("b", on_b.epoch))
        .expect("as seen");
    rounds_until(&s, true, 60, "the failback", |g| {
        g.phase == Phase::Steady && g.active == "a"
    })
    .await;
}

/// An operator's failover carries the group as the operator saw it too: a
/// failover to b asked while a was active, replayed (a proxy retry, a
/// shell history re-run) after a failed, users went to b and came back
/// to a, would move them off a site that just became active again. It is
/// refused and nothing changes; one for the group as it is now is taken.
/// Before, the expectation was ignored and the stale order ran.
#[tokio::test(start_paused = true)]
async fn a_failover_asked_of_a_group_that_moved_on_is_refused() {
    let (s, _fake, _dir) = setup(true, 5);
    for _ in 0..8 {
        round(&s, true).await;
    }
    let looked = group(&s);
    assert_eq!(looked.active, "a");
    let seen = |from: &str, epoch: u64| SeenGroup {
        from: Some(from.into()),
        epoch: Some(epoch),
    };
    // Since the operator looked: a failed, users went to b, and back to a.
    fail_over_to_b(&s).await;
    rounds_until(&s, true, 80, "the automatic failback", |g| {
        g.phase == Phase::Steady && g.active == "a"
    })
    .await;
    let now = group(&s);
    assert!(now.epoch > looked.epoch, "{} > {}", now.epoch, looked.epoch);
    let runbooks = s.lock().runbooks.len();
    for stale in [
        seen("a", looked.epoch),
        seen("b", now.epoch),
        SeenGroup {
            from: None,
            epoch: Some(looked.epoch),
        },
    ] {
        let e = s
            .operator_failover_seen("web", "b", "operator", &stale)
            .unwrap_err();
        assert!(
            matches!(e, OrchestratorError::Conflict(_))
                && e.to_string().contains("failover")
                && e.to_string()
                    .contains(&format!("it now runs on a at epoch {}", now.epoch)),
            "{stale:?}: {e}"
        );
    }
    assert_eq!(s.lock().runbooks.len(), runbooks, "nothing started");
    let after = group(&s);
    assert_eq!(
        (after.active.as_str(), after.epoch, after.phase),
        ("a", now.epoch, Phase::Steady),
        "the group is unchanged"
    );
    let id = s
        .operator_failover_seen("web", "b", "operator", &seen("a", now.epoch))
        .expect("as seen");
    let rb = s.lock().runbooks[&id].clone();
    assert_eq!(
        (rb.kind, rb.from.as_str(), rb.to.as_str()),
        (RunbookKind::Failover, "a", "b")
    );
}

/// A pending failback is void once the site users are on is confirmed
/// down (it would resync from it): it is withdrawn, a failover to the
/// healthy site is decided instead (pending here: the budget is used up),
/// and approving it moves users.
#[tokio::test(start_paused = true)]
async fn a_pending_failback_gives_way_to_a_failover_when_the_active_site_dies() {
    let (s, _fake, _dir) = setup(true, 1);
    fail_over_to_b(&s).await;
    rounds_until(&s, true, 60, "pending failback", |g| {
        g.phase == Phase::PendingApproval
    })
    .await;
    assert_eq!(group(&s).pending.unwrap().kind, RunbookKind::Failback);
    // b dies while the failback waits for approval.
    sites_until(
        &s,
        (true, false),
        &answer_all,
        40,
        "the pending failback replaced by a failover",
        |g| {
            g.pending
                .as_ref()
                .is_some_and(|p| p.kind == RunbookKind::Failover)
        },
    )
    .await;
    let p = group(&s).pending.unwrap();
    assert_eq!(p.to, "a");
    assert!(s
        .lock()
        .recent
        .iter()
        .any(|e| e.kind == EventKind::PendingApproval
            && e.message.contains("withdrawn: b is confirmed down")));
    s.operator_approve("web", "operator")
        .expect("approve the failover");
    sites_until(
        &s,
        (true, false),
        &answer_all,
        40,
        "failed over to a",
        |g| g.phase == Phase::Steady && g.active == "a",
    )
    .await;
}

/// A failback the operator asked for but that cannot start (no later
/// epoch) changes nothing: a stopped automatic failback stays stopped.
#[tokio::test(start_paused = true)]
async fn a_refused_failback_keeps_the_automatic_failback_stopped() {
    let (s, _fake, _dir) = setup(true, 5);
    fail_over_to_b(&s).await;
    let blocked = Some("the same failure twice".to_string());
    s.lock().groups.get_mut("web").unwrap().failback_blocked = blocked.clone();
    // a recovers; the automatic failback stays stopped.
    for _ in 0..12 {
        round(&s, true).await;
    }
    assert!(!s.lock().detector.confirmed_down("a"));
    assert_eq!(group(&s).active, "b");
    s.lock().groups.get_mut("web").unwrap().epoch = warden_proto::EPOCH_CEILING;
    let e = s.operator_failback("web", "operator").unwrap_err();
    assert!(e.to_string().contains("no later epoch"), "{e}");
    assert_eq!(
        group(&s).failback_blocked,
        blocked,
        "a refused failback unblocked it"
    );
}

/// Both sites lost together (a shared uplink, a regional power cut): a is
/// confirmed down with no standby to take it. a comes back first, then b:
/// a serves again, so nothing moves. Before, the confirmation (which
/// stands until rise rounds and the hold-down) moved users off a healthy a
/// the first round b was healthy.
#[tokio::test(start_paused = true)]
async fn a_confirmed_site_that_serves_again_before_a_standby_is_ready_is_not_failed_over() {
    let (s, _fake, _dir) = setup(true, 5);
    sites_rounds(&s, 8, (true, true), &answer_all).await;
    sites_rounds(&s, 6, (false, false), &answer_all).await;
    assert!(s.lock().detector.confirmed_down("a"));
    assert!(s.lock().runbooks.is_empty(), "no standby to move to");
    // a first, then b.
    sites_rounds(&s, 2, (true, false), &answer_all).await;
    for i in 0..4 {
        round_sites(&s, true, true, &answer_all).await;
        assert!(
            s.lock().runbooks.is_empty(),
            "round {i}: users moved off a, which serves them: {:#?}",
            group(&s)
        );
    }
    // a recovers (rise and hold-down): the incident is over.
    sites_rounds(&s, 10, (true, true), &answer_all).await;
    assert!(!s.lock().detector.confirmed_down("a"));
    let g = group(&s);
    assert_eq!((g.active.as_str(), g.phase), ("a", Phase::Steady));
    assert!(s.lock().runbooks.is_empty());
    // Lost again, with b ready this time: failed over as ever.
    fail_over_to_b(&s).await;
}

/// Nothing is decided while the orchestrator is isolated — the frontend
/// layer of a `hybrid` group included. Its prompt rounds (a failing probe
/// of a frontend from here) counted while the site detector knew itself
/// cut off: with `fall = 1` one failing probe from an orchestrator that
/// reaches nothing confirmed a frontend down (and moved the DNS name).
#[tokio::test(start_paused = true)]
async fn an_isolated_orchestrator_counts_no_frontend_in_prompt_rounds() {
    let dir = test_dir(true, 5);
    let text = hybrid_text(&dir).replace("fall = 3", "fall = 1");
    let (s, _fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    assert!(
        !s.frontend_probes.is_empty(),
        "a hybrid group's frontends are probed"
    );
    // Nothing heard, every probe from here failing: isolated.
    {
        let mut st = s.lock();
        let now = Instant::now();
        for site in ["a", "b"] {
            st.evidence
                .external
                .insert(site.into(), (now, vec![check(false)]));
        }
    }
    s.detect_round().await;
    assert!(s.lock().detector.is_isolated());
    // The probe of fe1 fails too (nothing is reached from here).
    {
        let mut st = s.lock();
        let now = Instant::now();
        st.fe_evidence
            .external
            .insert("fe1".into(), (now, vec![check(false)]));
        st.fe_evidence
            .external
            .insert("fe2".into(), (now, vec![check(true)]));
    }
    let sites: std::collections::BTreeSet<String> = ["fe1".to_string()].into();
    s.detect_prompt(&sites);
    let st = s.lock();
    assert!(
        !st.fe_detector.confirmed_down("fe1"),
        "confirmed by an isolated orchestrator: {:?}",
        st.fe_detector.track("fe1")
    );
    assert_eq!(st.fe_detector.track("fe1").unwrap().down_rounds, 0);
}

/// The frontend layer of a `hybrid` group, like the site layer: fe1 and
/// fe2 lost together (a shared uplink), fe1 is confirmed down with no
/// other frontend to take the name. fe1 serves again first, then fe2:
/// nothing moves. Before, the confirmation (which stands until rise rounds
/// and the hold-down) moved the name off a serving fe1 the first round fe2
/// was healthy.
#[tokio::test(start_paused = true)]
async fn a_confirmed_frontend_that_serves_again_before_another_is_ready_keeps_the_name() {
    let dir = test_dir(true, 5);
    let (s, dns) = start_hybrid(&hybrid_text(&dir), &dir).expect("config");
    let moved = |s: &Shared| s.lock().groups["web"].frontend.clone();
    for _ in 0..8 {
        frontends_round(&s, (true, true)).await;
    }
    for _ in 0..6 {
        frontends_round(&s, (false, false)).await;
    }
    assert!(s.lock().fe_detector.confirmed_down("fe1"));
    assert_eq!(moved(&s), None, "no other frontend to move to");
    // fe1 first, then fe2.
    for _ in 0..2 {
        frontends_round(&s, (true, false)).await;
    }
    for i in 0..4 {
        frontends_round(&s, (true, true)).await;
        assert_eq!(
            (moved(&s), dns.0.lock().unwrap().clone()),
            (None, vec![]),
            "round {i}: the name moved off fe1, which serves"
        );
    }
    // fe1 recovers (rise and hold-down): the incident is over.
    for _ in 0..10 {
        frontends_round(&s, (true, true)).await;
    }
    assert!(!s.lock().fe_detector.confirmed_down("fe1"));
    // Lost again, with fe2 ready this time: moved as ever.
    for _ in 0..4 {
        frontends_round(&s, (false, true)).await;
    }
    assert_eq!(moved(&s).as_deref(), Some("fe2"));
    assert_eq!(
        dns.0.lock().unwrap().last().map(|m| m.0.as_str()),
        Some("fe2")
    );
}

/// Every move of a `hybrid` group's DNS name has an epoch of its own,
/// durable before it is written and above the last, so the marker (kept
/// strictly, as BIND's and Knot's by the rfc2136 provider, and by the fake
/// here) refuses a move decided before it: a deposed leader's late write.
/// fe1 is lost (the name moves to fe2), comes back, then fe2 is lost: the
/// name moves back to fe1 at a newer epoch. Before, both moves carried the
/// group's epoch, the marker had to take any frontend at that epoch, and a
/// deposed leader's late move at it was taken too.
#[tokio::test(start_paused = true)]
async fn every_move_of_a_hybrid_name_has_an_epoch_of_its_own() {
    let dir = test_dir(true, 5);
    let (s, dns) = start_hybrid(&hybrid_text(&dir), &dir).expect("config");
    let last_move = |dns: &FakeDns| dns.0.lock().unwrap().last().cloned();
    for _ in 0..8 {
        frontends_round(&s, (true, true)).await;
    }
    let site_epoch = group(&s).epoch;
    for _ in 0..4 {
        frontends_round(&s, (false, true)).await;
    }
    let (to, first) = last_move(&dns).expect("a move to fe2");
    assert_eq!(to, "fe2");
    assert!(
        first > site_epoch,
        "moved at {first}, the group is at {site_epoch}"
    );
    assert_eq!(
        group(&s).frontend_epoch,
        first,
        "the move's epoch is stored"
    );
    assert_eq!(
        group(&s).epoch,
        site_epoch,
        "the site layer's epoch is its own"
    );
    // fe1 recovers (rise and hold-down), then fe2 is lost.
    for _ in 0..10 {
        frontends_round(&s, (true, true)).await;
    }
    assert!(!s.lock().fe_detector.confirmed_down("fe1"));
    for _ in 0..4 {
        frontends_round(&s, (true, false)).await;
    }
    let (to, second) = last_move(&dns).expect("a move back to fe1");
    assert_eq!(
        (to.as_str(), group(&s).frontend.as_deref()),
        ("fe1", Some("fe1")),
        "the name did not move back: {:?}",
        dns.0.lock().unwrap()
    );
    assert!(second > first, "moved back at {second}, after {first}");
}
