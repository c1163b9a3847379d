//! Authority and stored state: an epoch too near the largest is not
//! adopted, a site that forgot its demote is demoted again, a damaged
//! store is read without going back on what it decided, and a failover
//! whose switch failed is completed toward the site it promoted.
use super::harness::{
    check, config_text, group, round, rounds_until, setup, start_from, test_config, test_dir,
};
use super::*;
use crate::store::MemStore;
use warden_proto::agent::AuthorityWire;

/// Four failing rounds of a, then rounds until the automatic failover has
/// made b active: the group's epoch then.
async fn failed_over_to_b(s: &Arc<Shared>) -> u64 {
    for _ in 0..4 {
        round(s, true).await;
    }
    rounds_until(s, false, 40, "automatic failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    group(s).epoch
}

/// A report of `site`'s restarted agent that says its `role` in web at `epoch`.
pub(super) fn role_report(
    site: &str,
    seq: u64,
    epoch: u64,
    role: &str,
    outcomes: Vec<CommandOutcome>,
) -> AgentReport {
    AgentReport {
        site: site.into(),
        seq,
        boot: "restarted".into(),
        started_unix_ms: 0,
        checks: vec![check(true)],
        peers: vec![],
        outcomes,
        replication: vec![],
        authority: vec![AuthorityWire {
            group: "web".into(),
            epoch,
            role: role.into(),
            demoted_at: None,
            may_push: role == "active",
            unfit: None,
        }],
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
    }
}

/// An epoch seen ahead is adoptable when far ahead (a frontend pushed to
/// 10^18 by mistake), but not one so near the largest that the group
/// would have only a few moves left: refused, nothing changed.
#[tokio::test(start_paused = true)]
async fn an_epoch_too_near_the_largest_is_not_adopted() {
    let (s, _fake, _dir) = setup(true, 5);
    let before = group(&s).epoch;
    let ahead = |epoch: u64| authority::EpochAhead {
        epoch,
        seen_at: "site b's agent".into(),
    };
    s.lock()
        .epoch_ahead
        .insert("web".into(), ahead(u64::MAX - 1));
    let refused = s.operator_adopt_epoch("web", "operator").await.unwrap_err();
    assert!(refused.to_string().contains("1 more move"), "{refused}");
    assert_eq!(group(&s).epoch, before);
    assert!(s.lock().epoch_ahead.contains_key("web"), "still alerted");
    s.lock()
        .epoch_ahead
        .insert("web".into(), ahead(1_000_000_000_000_000_000));
    assert_eq!(
        s.operator_adopt_epoch("web", "operator")
            .await
            .expect("far ahead, adoptable"),
        1_000_000_000_000_000_000
    );
}

/// A store new to the group finds the routing layer at an epoch near the
/// largest (a frontend's fence file damaged or forged): it takes where
/// users are routed (b), not the epoch — adopted, the epoch would leave the
/// group a few moves and stop every later start on the same store ("within
/// 2^32 of the largest") — and says so; the element is then an epoch seen
/// ahead (alerted), and an orchestrator started anew on the store runs.
#[tokio::test(start_paused = true)]
async fn a_new_store_does_not_adopt_an_epoch_near_the_largest() {
    let store: Arc<dyn crate::store::Store> = Arc::new(MemStore::default());
    let (s, fake, dir) = super::harness::setup_with(true, 5, "", store.clone());
    let before = group(&s).epoch;
    *fake.route.lock().unwrap() = (Some("b".into()), u64::MAX - 1);
    s.adopt_fresh_groups().await;
    let g = group(&s);
    assert_eq!((g.active.as_str(), g.epoch), ("b", before), "{g:#?}");
    let adopted = super::harness::newest_event(&s, EventKind::Adopted);
    assert!(
        adopted.contains("active b")
            && adopted.contains("1 below the largest there is, not adopted"),
        "{adopted}"
    );
    s.reconcile_once().await;
    assert_eq!(
        s.lock().epoch_ahead.get("web").map(|a| a.epoch),
        Some(u64::MAX - 1),
        "the element holding it is alerted"
    );
    s.writer_settled().await;
    let text = config_text(&dir, true, 5, "");
    let (again, _) = start_from(&text, &dir, store).expect("a later start on the same store");
    assert_eq!(group(&again).epoch, before);
}

/// An adoption names the epoch the operator saw ahead: once a higher one
/// is seen (whoever holds it still acts), a late or replayed order for
/// the first adopts nothing and keeps the alert; one naming the epoch
/// seen now is adopted.
#[tokio::test(start_paused = true)]
async fn an_adoption_of_an_epoch_since_outgrown_is_refused() {
    let (s, _fake, _dir) = setup(true, 5);
    let before = group(&s).epoch;
    let ahead = |epoch: u64| authority::EpochAhead {
        epoch,
        seen_at: "frontend fe1".into(),
    };
    s.lock().epoch_ahead.insert("web".into(), ahead(before + 5));
    s.lock().epoch_ahead.insert("web".into(), ahead(before + 9));
    let refused = s
        .operator_adopt_epoch_seen("web", "operator", Some(before + 5))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, OrchestratorError::Conflict(_)),
        "{refused}"
    );
    assert!(refused.to_string().contains("nothing adopted"), "{refused}");
    assert_eq!(group(&s).epoch, before);
    assert!(s.lock().epoch_ahead.contains_key("web"), "still alerted");
    assert_eq!(
        s.operator_adopt_epoch_seen("web", "operator", Some(before + 9))
            .await
            .expect("the epoch seen now"),
        before + 9
    );
    assert_eq!(group(&s).epoch, before + 9);
}

/// A site demoted by a failover that comes back believing it is active
/// (its state file lost, or restored from an older copy) is demoted again,
/// although the ledger holds the epoch's demote as finished: a fresh id of
/// the same epoch, one at a time, a bounded number of times.
#[tokio::test(start_paused = true)]
async fn a_site_that_forgot_its_demote_is_demoted_again() {
    let (s, _fake, _dir) = setup(true, 5);
    let epoch = failed_over_to_b(&s).await;
    let forgot =
        |seq: u64, outcomes: Vec<CommandOutcome>| role_report("a", seq, epoch, "active", outcomes);
    let done = |id: &str| CommandOutcome {
        id: id.into(),
        ok: true,
        detail: "1 demote hook succeeded".into(),
        hooks: vec![],
        checks: None,
        journal: None,
        kept_in_place: None,
    };
    let fencing = |s: &Shared| {
        s.lock()
            .recent
            .iter()
            .filter(|e| e.kind == EventKind::Fencing)
            .count()
    };
    let before = fencing(&s);
    s.accept_report(forgot(1, vec![]));
    let cmds = s.commands_for("a");
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let again = cmds[0].clone();
    assert_eq!(
        (again.kind, again.epoch, again.id.as_str()),
        (
            CommandKind::Demote,
            epoch,
            format!("web:{epoch}:demote:again-1").as_str()
        )
    );
    assert_eq!(fencing(&s), before + 1);
    // While it is queued, nothing more; once it ran and the site still
    // says active, the next one.
    s.accept_report(forgot(2, vec![]));
    assert_eq!(s.commands_for("a").len(), 1);
    s.accept_report(forgot(3, vec![done(&again.id)]));
    let next = s.commands_for("a");
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(next[0].id.ends_with(":again-2"), "{}", next[0].id);
    // Bounded: a demote that never takes is not asked for ever.
    for seq in 4..24 {
        let outcomes = s.commands_for("a").iter().map(|c| done(&c.id)).collect();
        s.accept_report(forgot(seq, outcomes));
    }
    assert!(s.commands_for("a").is_empty());
    assert!(fencing(&s) <= before + 1 + super::authority::REFENCE_MAX as usize);
    // Said once: the site was asked often enough.
    let alerts: Vec<String> = s
        .lock()
        .recent
        .iter()
        .filter(|e| e.kind == EventKind::Alert && e.message.contains("not asking again"))
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains("a ran demote 9 times")
            && alerts[0].contains("still reports role active"),
        "{}",
        alerts[0]
    );
}

/// After a failover, both sites lose their state files (restored disks):
/// their agents report role `unknown`. Not while the group is in
/// maintenance; then the active site b is promoted again (its gate then
/// refuses pushes into it), the old site a demoted again (it pushes
/// nothing until a resync). A b that says standby is not promoted (it may
/// have been demoted at this very epoch: a promote would let it push
/// again), and one that says active is left alone.
#[tokio::test(start_paused = true)]
async fn sites_that_forgot_their_roles_are_told_them_again() {
    let (s, _fake, _dir) = setup(true, 5);
    let epoch = failed_over_to_b(&s).await;
    let report = |site: &str, seq: u64, role: &str| role_report(site, seq, 0, role, vec![]);
    let told = |site: &str| {
        s.commands_for(site)
            .into_iter()
            .map(|c| (c.kind, c.epoch, c.id))
            .collect::<Vec<_>>()
    };
    let last_event = |s: &Shared| s.lock().recent.back().map(|e| (e.kind, e.message.clone()));
    s.accept_report(report("b", 1, "standby"));
    assert_eq!(
        told("b"),
        vec![],
        "a standby at the active site: no promote"
    );
    s.operator_maintenance("web", true, "operator").unwrap();
    s.accept_report(report("b", 2, "unknown"));
    s.accept_report(report("a", 2, "unknown"));
    assert_eq!((told("a"), told("b")), (vec![], vec![]), "in maintenance");
    s.operator_maintenance("web", false, "operator").unwrap();
    s.accept_report(report("b", 3, "unknown"));
    assert_eq!(
        told("b"),
        vec![(
            CommandKind::Promote,
            epoch,
            format!("web:{epoch}:promote:again-1")
        )],
        "the failover's own promote ran there: a fresh id"
    );
    let (kind, msg) = last_event(&s).unwrap();
    assert_eq!(kind, EventKind::Fencing);
    assert!(
        msg.contains("b is the active site") && msg.contains("reports its role unknown"),
        "{msg}"
    );
    s.accept_report(report("a", 3, "unknown"));
    let a = told("a");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!((a[0].0, a[0].1), (CommandKind::Demote, epoch));
    assert!(last_event(&s)
        .unwrap()
        .1
        .contains("role in group web unknown"));
    // A standby's report at a's place asks nothing more; an active b is
    // left alone.
    let before = s.lock().recent.len();
    s.accept_report(report("a", 4, "standby"));
    s.accept_report(report("b", 4, "active"));
    assert_eq!(told("a").len(), 1);
    assert_eq!(told("b").len(), 1, "still the one queued promote");
    assert_eq!(s.lock().recent.len(), before, "no new event");
}

/// The active site that forgot its role is not asked to replicate (it
/// would refuse, and spend its agent process's one start order) until it
/// has been promoted again; then it is.
#[tokio::test(start_paused = true)]
async fn replication_waits_until_a_forgotten_role_is_said_again() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "") + "[groups.web.replication]\nplan = \"none\"\n";
    let (s, _fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    for _ in 0..3 {
        round(&s, true).await;
    }
    assert_eq!(group(&s).active, "a");
    let epoch = group(&s).epoch;
    let report = |seq: u64, role: &str, outcomes: Vec<CommandOutcome>| {
        let mut r = role_report("a", seq, 0, role, outcomes);
        r.replication = vec![ReplicationStatus {
            group: "web".into(),
            role: "idle".into(),
            ..ReplicationStatus::default()
        }];
        r
    };
    let kinds = |s: &Shared| {
        s.commands_for("a")
            .into_iter()
            .map(|c| (c.kind, c.id))
            .collect::<Vec<_>>()
    };
    s.accept_report(report(1, "unknown", vec![]));
    s.detect_round().await;
    let asked = kinds(&s);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].0, CommandKind::Promote);
    // Promoted: the next round asks it to replicate to b.
    let done = CommandOutcome {
        id: asked[0].1.clone(),
        ok: true,
        detail: "1 promote hook succeeded".into(),
        hooks: vec![],
        checks: None,
        journal: None,
        kept_in_place: None,
    };
    s.accept_report(report(2, "active", vec![done]));
    s.detect_round().await;
    let asked = kinds(&s);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].0, CommandKind::StartReplication);
    assert_eq!(group(&s).epoch, epoch);
}

/// The group's epoch rises while its active site stays (a switchover
/// given up before its demote, a split mended, `adopt-epoch`): the active
/// site, still pushing to the standby under the older epoch's order — which
/// no longer stands there, it knows the newer epoch —, is asked to start
/// again at the group's epoch (its kept replicator takes the newer order).
/// Before, a site reporting `source → b` was never asked again, whatever
/// the epoch: its pushes stopped for good (the order stale at the site).
#[tokio::test(start_paused = true)]
async fn an_active_site_pushing_under_an_older_epoch_is_asked_to_start_at_the_groups() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "") + "[groups.web.replication]\nplan = \"none\"\n";
    let (s, _fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    for _ in 0..3 {
        round(&s, true).await;
    }
    let epoch = group(&s).epoch;
    let report = |seq: u64, group_epoch: u64, order_epoch: u64| {
        let mut r = role_report("a", seq, group_epoch, "active", vec![]);
        r.replication = vec![ReplicationStatus {
            group: "web".into(),
            role: "source".into(),
            peer: Some("b".into()),
            epoch: order_epoch,
            ..ReplicationStatus::default()
        }];
        r
    };
    let starts = |s: &Shared| {
        s.commands_for("a")
            .into_iter()
            .filter(|c| c.kind == CommandKind::StartReplication)
            .map(|c| (c.epoch, c.peer))
            .collect::<Vec<_>>()
    };
    s.accept_report(report(1, epoch, epoch));
    s.detect_round().await;
    assert_eq!(starts(&s), vec![], "already pushing under this epoch");
    {
        let mut st = s.lock();
        let mut g = st.groups["web"].clone();
        g.epoch = epoch + 1;
        s.put_group_locked(&mut st, g);
    }
    s.writer_settled().await;
    s.accept_report(report(2, epoch + 1, epoch));
    s.detect_round().await;
    assert_eq!(
        starts(&s),
        vec![(epoch + 1, Some("b".to_string()))],
        "a's pushes under epoch {epoch} no longer stand: it must be asked at {}",
        epoch + 1
    );
}

/// A store that lost or mangled records is read without going back on
/// anything it decided: a group's epoch is never below its own runbooks',
/// a group running a runbook the store does not hold is failed (the
/// operator decides) instead of stuck, and ids or epochs at the end of
/// the number range are a clear error, never wrapped around to 0.
#[tokio::test]
async fn a_damaged_store_is_read_without_going_back() {
    use crate::store::Store;
    let dir = test_dir(true, 5);
    let cfg = test_config(&dir);
    let fresh = load_state(&cfg, &MemStore::default()).unwrap().groups["web"].clone();
    let runbook = |id: u64, epoch: u64| {
        Runbook::new(
            id,
            "web",
            RunbookKind::Failover,
            "a",
            "b",
            epoch,
            "test",
            0,
            0,
        )
    };

    // The group's record is older than its runbook 5 (epoch 6), and says
    // it runs runbook 7, which the store does not hold.
    let store = MemStore::default();
    store
        .put_group(&GroupState {
            epoch: 3,
            phase: Phase::Running,
            runbook: Some(7),
            ..fresh.clone()
        })
        .unwrap();
    store.put_runbook(&runbook(5, 6)).unwrap();
    let loaded = load_state(&cfg, &store).unwrap();
    let g = &loaded.groups["web"];
    assert_eq!((g.epoch, g.phase, g.runbook), (6, Phase::Failed, None));
    assert!(loaded
        .to_write
        .iter()
        .any(|w| w.name == "web" && w.epoch == 6));
    assert_eq!(loaded.next_runbook, 6);

    // Ids and epochs at the end of the range.
    let store = MemStore::default();
    store.put_runbook(&runbook(u64::MAX, 2)).unwrap();
    let err = load_state(&cfg, &store).err().expect("refused").to_string();
    assert!(
        err.contains(&format!("runbook with id {}", u64::MAX)),
        "{err}"
    );
    let store = MemStore::default();
    store
        .put_group(&GroupState {
            epoch: u64::MAX - 5,
            ..fresh.clone()
        })
        .unwrap();
    let err = load_state(&cfg, &store).err().expect("refused").to_string();
    assert!(err.contains("group web at epoch"), "{err}");
}

/// A store whose group record is older than its runbooks (their
/// decisions never written), one of which moved users to a site the
/// config no longer has: the group is never left naming that site as its
/// active one (the runbook to resume from it is not usable: failed, the
/// operator decides).
#[tokio::test]
async fn a_stale_record_never_takes_a_site_the_group_no_longer_has() {
    use crate::store::Store;
    let dir = test_dir(true, 5);
    let cfg = test_config(&dir);
    let fresh = load_state(&cfg, &MemStore::default()).unwrap().groups["web"].clone();
    let store = MemStore::default();
    store
        .put_group(&GroupState {
            epoch: 2,
            ..fresh.clone()
        })
        .unwrap();
    let mut gone = Runbook::new(1, "web", RunbookKind::Failover, "a", "c", 3, "test", 0, 0);
    gone.status = RunbookStatus::Succeeded;
    for s in &mut gone.steps {
        s.status = StepStatus::Done;
    }
    store.put_runbook(&gone).unwrap();
    let back = Runbook::new(2, "web", RunbookKind::Failover, "c", "b", 4, "test", 0, 0);
    store.put_runbook(&back).unwrap();
    let g = load_state(&cfg, &store).unwrap().groups["web"].clone();
    assert_eq!(
        (g.active.as_str(), g.epoch, g.phase),
        ("a", 4, Phase::Failed),
        "{g:#?}"
    );
}

/// A new store adopts a group the routing layer shows on b (a planned
/// switchover under the old store, or a disaster: it cannot tell): users
/// stay on b through many healthy rounds, until an operator's failback.
#[tokio::test(start_paused = true)]
async fn a_group_adopted_away_from_its_primary_is_not_failed_back_by_itself() {
    let (s, fake, _dir) = setup(true, 5);
    *fake.route.lock().unwrap() = (Some("b".into()), 5);
    s.adopt_fresh_groups().await;
    let g = group(&s);
    assert_eq!(
        (g.active.as_str(), g.epoch, g.switched_over),
        ("b", 5, true),
        "{g:#?}"
    );
    for _ in 0..40 {
        round(&s, true).await;
    }
    let g = group(&s);
    assert_eq!((g.active.as_str(), g.runbook), ("b", None), "{g:#?}");
    assert!(s.lock().runbooks.is_empty(), "no automatic failback");
    s.operator_failback("web", "operator").expect("failback");
    rounds_until(&s, true, 60, "the failback", |g| {
        g.phase == Phase::Steady && g.active == "a"
    })
    .await;
    assert!(!group(&s).switched_over);
}

/// Group `name` as the store holds it.
fn stored_group(store: &dyn crate::store::Store, name: &str) -> GroupState {
    store
        .groups()
        .unwrap()
        .into_iter()
        .find(|g| g.name == name)
        .unwrap()
}

/// A provider's block (a fatal answer from No-IP) is stored with the group
/// at the next reconciliation, and an orchestrator started on the same
/// store gives it back to the strategy before it acts; lifted, it is
/// stored as lifted.
#[tokio::test(start_paused = true)]
async fn a_provider_block_is_stored_and_given_back_at_start() {
    let store: Arc<dyn crate::store::Store> = Arc::new(MemStore::default());
    let (s, fake, _dir) = super::harness::setup_with(true, 5, "", store.clone());
    let block = warden_strategies::ProviderStop {
        kind: warden_strategies::StopKind::Block,
        reason: "updates stopped after `badauth`".into(),
        line: "dns/noip group web: updates stopped after `badauth`".into(),
        until_unix_ms: None,
        config: "digest".into(),
    };
    *fake.stops.lock().unwrap() = vec![block.clone()];
    s.reconcile_once().await;
    s.writer_settled().await;
    assert_eq!(
        stored_group(store.as_ref(), "web").provider_stops,
        vec![block.clone().into()]
    );

    // A new orchestrator on the same store (a restart).
    let (s2, fake2, _dir2) = super::harness::setup_with(true, 5, "", store.clone());
    s2.restore_provider_stops();
    assert_eq!(*fake2.restored.lock().unwrap(), vec![vec![block.clone()]]);
    assert_eq!(group(&s2).provider_stops, vec![block.into()]);

    // Lifted (`warden clear`): stored as lifted.
    fake2.stops.lock().unwrap().clear();
    s2.sync_provider_stops(Some("web"));
    s2.writer_settled().await;
    let web = stored_group(store.as_ref(), "web");
    assert!(web.provider_stops.is_empty(), "{web:?}");
}

/// An elected node takes the stored stops back at its take-over, with a
/// stop its strategy still holds from when it last led (its write was
/// discarded at the step-down): the union, never less. One the strategy
/// does not take back is an event. What it now holds is stored.
#[tokio::test(start_paused = true)]
async fn an_elected_node_takes_the_stored_stops_back_with_its_own() {
    use crate::etcd::leader::{Leadership, Role};
    let stop = |line: &str, config: &str| warden_strategies::ProviderStop {
        kind: warden_strategies::StopKind::Block,
        reason: line.into(),
        line: line.into(),
        until_unix_ms: None,
        config: config.into(),
    };
    let (stored, changed, own) = (
        stop("stored block", "digest"),
        stop("block of old settings", "changed"),
        stop("block never written", "digest"),
    );
    let dir = super::harness::test_dir(true, 5);
    let text = super::harness::config_text(&dir, true, 5, "");
    let store: Arc<dyn crate::store::Store> = Arc::new(MemStore::default());
    let cfg = warden_config::parse(&text, &dir.join("failover.conf")).unwrap();
    let mut g = load_state(&cfg, store.as_ref()).unwrap().groups["web"].clone();
    g.provider_stops = vec![stored.clone().into(), changed.clone().into()];
    store.put_group(&g).unwrap();
    let fake = Arc::new(super::harness::FakeRoute::default());
    *fake.stops.lock().unwrap() = vec![own.clone()];
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let web = fake.clone();
    let s = super::harness::start_routed_as(
        &text,
        &dir,
        store.clone(),
        move |n| {
            if n == "web" {
                web.clone()
            } else {
                Arc::new(super::harness::FakeRoute::default())
            }
        },
        Mode::Elected(view),
    )
    .unwrap();
    assert!(
        fake.restored.lock().unwrap().is_empty(),
        "a follower restores nothing"
    );
    HaRole(s.clone()).take_over(1, None).await.unwrap();
    assert_eq!(
        *fake.restored.lock().unwrap(),
        vec![vec![stored.clone(), changed, own.clone()]]
    );
    assert_eq!(
        *fake.stops.lock().unwrap(),
        vec![stored.clone(), own.clone()]
    );
    assert!(s
        .lock()
        .recent
        .iter()
        .any(|e| e.kind == EventKind::AlertCleared
            && e.message
                .contains("stored alert not taken back: block of old settings")));
    s.writer_settled().await;
    let web = stored_group(store.as_ref(), "web");
    assert_eq!(web.provider_stops, vec![stored.into(), own.into()]);
}

/// A follower's mirror read that began before its take-over (it saw epoch
/// 1) and ends after it (the take-over loaded the deposed leader's last
/// write, epoch 2) is not applied: not while the node leads, and not once
/// it has stepped down again either (the licence alone cannot tell: a read
/// that ends between the take-over's load and its licence would put the
/// older state under the new leader, which would act on it, write it back
/// to etcd and reuse epoch 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_read_from_before_the_take_over_does_not_undo_it() {
    use crate::etcd::leader::{Leadership, Role};
    let dir = super::harness::test_dir(true, 5);
    let text = super::harness::config_text(&dir, true, 5, "");
    let store = Arc::new(super::store_fault_tests::FaultyStore::default());
    let cfg = warden_config::parse(&text, &dir.join("failover.conf")).unwrap();
    let mut g = load_state(&cfg, store.as_ref()).unwrap().groups["web"].clone();
    g.epoch = 1;
    store.put_group(&g).unwrap();
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = super::harness::start_routed_as(
        &text,
        &dir,
        store.clone(),
        |_| Arc::new(super::harness::FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();

    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let mirror = tokio::spawn({
        let s = s.clone();
        async move { s.mirror_store().await }
    });
    while !store.entered.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The deposed leader's last write, then this node's take-over.
    g.epoch = 2;
    store.put_group(&g).unwrap();
    HaRole(s.clone()).take_over(1, None).await.unwrap();
    assert_eq!(s.lock().groups["web"].epoch, 2, "loaded at the take-over");
    HaRole(s.clone()).step_down("test: lease lost");
    store.release();
    mirror.await.unwrap();
    assert_eq!(
        s.lock().groups["web"].epoch,
        2,
        "the mirror read from before the take-over put an older state back"
    );
}

/// A runbook resumed at start (local store) waits for its sites' first
/// reports before it acts: under required fencing, a failover resumed at
/// its fence step demotes the old site whose agent reports a moment after
/// the start, instead of judging it silent (no report heard yet) and
/// failing at once.
#[tokio::test(start_paused = true)]
async fn a_resumed_runbook_waits_for_the_first_reports() {
    use super::fresh_checks_tests::report;
    use crate::store::Store;
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "").replace(
        "step_timeout = \"5s\"",
        "step_timeout = \"5s\"\nfencing = \"required\"",
    );
    let cfg = warden_config::parse(&text, &dir.join("failover.conf")).expect("config");
    let fresh = load_state(&cfg, &MemStore::default()).unwrap().groups["web"].clone();
    let store = Arc::new(MemStore::default());
    let rb = Runbook::new(1, "web", RunbookKind::Failover, "a", "b", 2, "test", 0, 0);
    store
        .put_group_and_runbook(
            &GroupState {
                epoch: 2,
                phase: Phase::Running,
                runbook: Some(1),
                ..fresh
            },
            &rb,
        )
        .unwrap();
    let (s, _fake) = super::harness::start_from(&text, &dir, store).expect("start");
    s.resume();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.accept_report(report("a", 1, vec![]));
    s.accept_report(report("b", 1, vec![]));
    let mut demote = false;
    for seq in 2..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = s.accept_report(report("a", seq, vec![]));
        demote |= answer
            .commands
            .iter()
            .any(|c| c.kind == CommandKind::Demote);
        if demote {
            break;
        }
    }
    let rb = s.lock().runbooks[&1].clone();
    assert!(demote, "no demote ordered: {rb:#?}");
    assert_ne!(rb.status, RunbookStatus::Failed, "{rb:#?}");
}

/// The same for a runbook an operator starts right after the start (best-
/// effort fencing, the default): `warden failover web --to b` within the
/// first `agent_timeout` waits for a's first report, and a — live, still
/// active — is ordered to demote. Before, only resumed runbooks waited:
/// the fence step judged a's live agent silent ("demote not sent"), and b
/// was promoted with a still active.
#[tokio::test(start_paused = true)]
async fn a_move_started_right_after_the_start_waits_for_the_first_reports() {
    use super::fresh_checks_tests::report;
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let (s, _fake) =
        super::harness::start_from(&text, &dir, Arc::new(MemStore::default())).expect("start");
    s.operator_failover("web", "b", "operator")
        .expect("failover");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.accept_report(report("a", 1, vec![]));
    s.accept_report(report("b", 1, vec![]));
    let mut demote = false;
    for seq in 2..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = s.accept_report(report("a", seq, vec![]));
        s.accept_report(report("b", seq, vec![]));
        demote |= answer
            .commands
            .iter()
            .any(|c| c.kind == CommandKind::Demote);
        if demote {
            break;
        }
    }
    let rb = s.lock().runbooks.values().next().cloned().expect("runbook");
    assert!(
        demote,
        "a, live and active, was not ordered to demote: {rb:#?}"
    );
}

/// A store written under another config: a running failover to a site the
/// group no longer has is not resumed (it would fence a, then fail at the
/// promote): the group is failed, for the operator; a pending decision to
/// such a site is withdrawn; a stored frontend the group no longer has
/// is forgotten (nothing would ever move DNS off it).
#[tokio::test]
async fn a_store_of_another_config_is_not_acted_on_blindly() {
    use crate::store::Store;
    let dir = test_dir(true, 5);
    let cfg = test_config(&dir);
    let fresh = load_state(&cfg, &MemStore::default()).unwrap().groups["web"].clone();

    let store = MemStore::default();
    let rb = Runbook::new(1, "web", RunbookKind::Failover, "a", "c", 2, "test", 0, 0);
    store
        .put_group_and_runbook(
            &GroupState {
                epoch: 2,
                phase: Phase::Running,
                runbook: Some(1),
                frontend: Some("gone".into()),
                ..fresh.clone()
            },
            &rb,
        )
        .unwrap();
    let loaded = load_state(&cfg, &store).unwrap();
    let g = &loaded.groups["web"];
    assert_eq!((g.phase, g.runbook), (Phase::Failed, None), "{g:#?}");
    assert_eq!(g.frontend, None);
    // Pointing the name at a served frontend again is a decision of its
    // own, above the epoch the forgotten one was pointed at.
    assert_eq!(g.dns_epoch(), 3, "{g:#?}");
    assert!(loaded.to_write.iter().any(|w| w.name == "web"));

    let store = MemStore::default();
    store
        .put_group(&GroupState {
            phase: Phase::PendingApproval,
            pending: Some(Pending {
                kind: RunbookKind::Failover,
                to: "c".into(),
                reason: "automatic = false".into(),
                since_unix_ms: 0,
                unknown: Default::default(),
            }),
            ..fresh
        })
        .unwrap();
    let g = load_state(&cfg, &store).unwrap().groups["web"].clone();
    assert_eq!((g.phase, g.pending), (Phase::Steady, None));
}

/// A failover whose switch cannot reach the routing layer (every write
/// refused for the whole step) after b was promoted: the group is failed
/// for the operator, but b — promoted, a fenced — stays the active site,
/// and once the layer answers again reconciliation routes users to b.
/// Before, the group kept a as its active site and reconciliation routed
/// the layer to a, the site that was lost, fencing it against b at the
/// failover's epoch.
#[tokio::test(start_paused = true)]
async fn a_failover_whose_switch_failed_is_completed_toward_the_new_site() {
    use std::sync::atomic::Ordering::SeqCst;
    let (s, fake, _dir) = setup(true, 3);
    for _ in 0..8 {
        round(&s, true).await;
    }
    let before = group(&s).epoch;
    fake.refuse_writes.store(true, SeqCst);
    rounds_until(&s, false, 80, "the failover failed", |g| {
        g.phase == Phase::Failed
    })
    .await;
    let g = group(&s);
    assert_eq!(g.active, "b", "{g:#?}");
    assert!(g.epoch > before);
    fake.refuse_writes.store(false, SeqCst);
    s.reconcile_once().await;
    assert_eq!(
        *fake.route.lock().unwrap(),
        (Some("b".to_string()), g.epoch),
        "users routed to the site the failover promoted"
    );
}
