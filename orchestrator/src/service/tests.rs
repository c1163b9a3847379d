//! Decisions of the live service on paused time: manual mode and the
//! failover budget (the guards that live above the detector).
use super::harness::*;
use super::*;
use crate::store::MemStore;

#[tokio::test(start_paused = true)]
async fn hold_orders_at_the_first_sign_and_before_the_fence_and_none_otherwise() {
    let (s, fake, _dir) = setup(true, 5);
    for _ in 0..6 {
        round(&s, true).await;
    }
    assert!(
        fake.holds.lock().unwrap().is_empty(),
        "healthy rounds order no hold: {:?}",
        fake.holds.lock().unwrap()
    );
    // The first report showing a's critical check failing: a hold at once,
    // before any detection round, at the group's epoch, for (fall + 2) rounds.
    s.accept_report(AgentReport {
        site: "a".into(),
        seq: 2,
        started_unix_ms: 0,
        boot: String::new(),
        checks: vec![check(false)],
        peers: vec![],
        outcomes: vec![],
        replication: vec![],
        authority: vec![],
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        *fake.holds.lock().unwrap(),
        vec![(1, Duration::from_millis(1250), false)],
        "a suspected site: users still try it first (no pause)"
    );
    rounds_until(&s, false, 40, "automatic failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    let holds = fake.holds.lock().unwrap().clone();
    let suspect = holds.iter().filter(|h| h.0 == 1).count();
    assert!(
        (1..=4).contains(&suspect),
        "renewed at most every half ttl while suspected, not per report: {holds:?}"
    );
    assert_eq!(
        holds.iter().filter(|h| h.0 == 2).count(),
        1,
        "one order from the runbook, at its epoch: {holds:?}"
    );
    assert!(
        holds.iter().all(|h| h.2 == (h.0 == 2)),
        "the runbook's order pauses new users (a cut-over), the suspect orders do not: {holds:?}"
    );
    // a stays down but is no longer active: nothing more is held.
    for _ in 0..10 {
        round(&s, false).await;
    }
    assert_eq!(fake.holds.lock().unwrap().len(), holds.len());
}

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
    s.lock().groups.get_mut("web").unwrap().epoch = u64::MAX;
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

/// A node that does not hold the licence (a follower, a deposed leader)
/// orders no hold, however loudly a site fails: only the leader speaks to
/// the frontends.
#[tokio::test(start_paused = true)]
async fn no_hold_order_without_the_licence() {
    let (s, fake, _dir) = setup(true, 5);
    for _ in 0..4 {
        round(&s, true).await;
    }
    s.licence.revoke("test: deposed");
    for _ in 0..4 {
        round(&s, false).await;
    }
    assert!(
        fake.holds.lock().unwrap().is_empty(),
        "a deposed node ordered holds: {:?}",
        fake.holds.lock().unwrap()
    );
    assert_eq!(group(&s).active, "a", "nor moved anything");
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

/// A store whose writes fail while `full` is set (a full disk).
#[derive(Default)]
struct FullDisk {
    inner: MemStore,
    full: std::sync::atomic::AtomicBool,
    /// Acts when it cannot write, as the local file store does.
    volatile: bool,
    /// Writes are refused as etcd refuses a deposed leader's.
    deposed: std::sync::atomic::AtomicBool,
}

impl FullDisk {
    fn check(&self) -> Result<(), crate::OrchestratorError> {
        if self.deposed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::OrchestratorError::Deposed(
                "group state refused by etcd: the leader key is no longer this node's".into(),
            ));
        }
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::OrchestratorError::store(
                "write",
                std::io::Error::other("No space left on device (os error 28)"),
            ));
        }
        Ok(())
    }
}

impl crate::store::Store for FullDisk {
    fn may_act_unwritten(&self) -> bool {
        self.volatile
    }
    fn groups(&self) -> Result<Vec<GroupState>, crate::OrchestratorError> {
        self.inner.groups()
    }
    fn put_group(&self, g: &GroupState) -> Result<(), crate::OrchestratorError> {
        self.check()?;
        self.inner.put_group(g)
    }
    fn put_group_and_runbook(
        &self,
        g: &GroupState,
        rb: &Runbook,
    ) -> Result<(), crate::OrchestratorError> {
        self.check()?;
        self.inner.put_group_and_runbook(g, rb)
    }
    fn put_runbook(&self, rb: &Runbook) -> Result<(), crate::OrchestratorError> {
        self.check()?;
        self.inner.put_runbook(rb)
    }
    fn runbooks(&self) -> Result<Vec<Runbook>, crate::OrchestratorError> {
        self.inner.runbooks()
    }
    fn put_event(&self, e: &Event) -> Result<(), crate::OrchestratorError> {
        self.check()?;
        self.inner.put_event(e)
    }
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, crate::OrchestratorError> {
        self.inner.events(after, limit)
    }
    fn last_event_id(&self) -> Result<u64, crate::OrchestratorError> {
        self.inner.last_event_id()
    }
    fn prune_events(
        &self,
        keep: usize,
        before: u64,
        max: usize,
    ) -> Result<usize, crate::OrchestratorError> {
        self.check()?;
        self.inner.prune_events(keep, before, max)
    }
}

/// A write the store refuses because another orchestrator leads ends this
/// node's licence at once (not a third of a lease later, when the election
/// loop reads the key): nothing more is ordered from here.
#[tokio::test]
async fn a_write_refused_as_deposed_revokes_the_licence_at_once() {
    let store = Arc::new(FullDisk::default());
    let (s, _fake, _dir) = setup_with(false, 1, "", store.clone());
    assert!(s.licence.is_held());
    store
        .deposed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    s.operator_maintenance("web", true, "operator")
        .expect("maintenance");
    for _ in 0..500 {
        if !s.licence.is_held() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !s.licence.is_held(),
        "the licence is still held 5 s after a refused write"
    );
    assert!(s.commands_for("a").is_empty() && s.commands_for("b").is_empty());
}

#[tokio::test]
async fn events_are_kept_by_count_and_a_failing_store_is_an_alert() {
    let store = Arc::new(FullDisk::default());
    let (s, _fake, _dir) = setup_with(false, 1, "events_keep = 100", store.clone());
    let stop = CancellationToken::new();
    tokio::spawn(s.clone().write_events(stop.clone()));
    for i in 0..300 {
        s.event(
            EventKind::Maintenance,
            Some("web"),
            None,
            format!("e{i}"),
            vec![],
            None,
        );
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let newest = s.lock().next_event - 1;
    let mut kept = Vec::new();
    for _ in 0..100 {
        kept = store.inner.events(0, 10_000).unwrap();
        if kept.last().map(|e| e.id) == Some(newest) && kept.len() <= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kept.len(), 100, "the newest 100 are kept");
    assert_eq!(kept.last().map(|e| e.id), Some(newest));
    assert!(s.alerts("web").is_empty(), "{:?}", s.alerts("web"));

    // The disk fills: an alert on the group, saying what and where.
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    s.event(
        EventKind::Maintenance,
        Some("web"),
        None,
        "one more".into(),
        vec![],
        None,
    );
    let mut alerts = Vec::new();
    for _ in 0..100 {
        alerts = s.alerts("web");
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("cannot write events") && a.contains("No space left")),
        "{alerts:?}"
    );
    // Space again: the alert ends with the next write.
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    s.event(
        EventKind::Maintenance,
        Some("web"),
        None,
        "and one more".into(),
        vec![],
        None,
    );
    for _ in 0..100 {
        if s.alerts("web").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(s.alerts("web").is_empty(), "{:?}", s.alerts("web"));
    stop.cancel();
}

/// Issue 14, fuzzed parsers: agent reports. Arbitrary report bodies (JSON
/// built from the report's own field names and odd values) are parsed as
/// the API does, and whatever parses is handed to the service as a report
/// from site a: nothing panics, the service still answers. Cases:
/// `PROPTEST_CASES` (default 256; the long run is in FUZZING.md).
#[tokio::test(start_paused = true)]
async fn arbitrary_agent_reports_never_panic_the_service() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let (s, _fake, _dir) = setup(true, 1);
    // Reports shaped like real ones, with odd values where values go.
    let text = "\\PC{0,12}";
    let check = (text, any::<bool>(), any::<bool>(), text).prop_map(|(name, ok, critical, detail)| {
        serde_json::json!({ "name": name, "ok": ok, "critical": critical, "detail": detail })
    });
    let id = prop_oneof![
        prop::sample::select(
            &[
                "web:2:promote",
                "web:1:demote",
                "web:18446744073709551615:switch",
                "x:1:promote",
                ":::",
                ""
            ][..]
        )
        .prop_map(String::from),
        text.prop_map(String::from),
    ];
    let outcome = (id, any::<bool>(), text, prop::collection::vec(check.clone(), 0..3)).prop_map(
        |(id, ok, detail, checks)| serde_json::json!({ "id": id, "ok": ok, "detail": detail, "checks": checks }),
    );
    let authority = (
        prop::sample::select(&["web", "other", ""][..]),
        any::<u64>(),
        prop::sample::select(&["active", "standby", "resync", "", "\u{0}"][..]),
        proptest::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(group, epoch, role, demoted_at, may_push)| {
            serde_json::json!({ "group": group, "epoch": epoch, "role": role, "demoted_at": demoted_at, "may_push": may_push })
        });
    let peer = (
        prop::sample::select(&["a", "b", "zz"][..]),
        prop::collection::vec(check.clone(), 0..3),
    )
        .prop_map(|(site, results)| serde_json::json!({ "site": site, "results": results }));
    let body = (
        any::<u64>(),
        text,
        prop::collection::vec(check, 0..4),
        prop::collection::vec(peer, 0..3),
        prop::collection::vec(outcome, 0..4),
        prop::collection::vec(authority, 0..3),
    )
        .prop_map(|(seq, boot, checks, peers, outcomes, authority)| {
            serde_json::json!({ "site": "a", "seq": seq, "boot": boot, "checks": checks,
                "peers": peers, "outcomes": outcomes, "authority": authority })
            .to_string()
        });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let parsed = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&body, |text| {
            if warden_proto::require_object(text.as_bytes()).is_err() {
                return Ok(());
            }
            if let Ok(mut rep) = serde_json::from_str::<AgentReport>(&text) {
                parsed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                rep.site = "a".into();
                let _ = s.accept_report(rep);
            }
            Ok(())
        })
        .expect("no input panics the report path");
    // Still serving: a normal report is accepted and the status renders.
    round(&s, true).await;
    assert!(!s.status_view().groups.is_empty());
    eprintln!(
        "{} of {cases} bodies parsed as reports and were accepted",
        parsed.into_inner()
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_is_an_alert_and_the_failover_still_routes_users() {
    let store = Arc::new(FullDisk {
        volatile: true,
        ..FullDisk::default()
    });
    let (s, fake, _dir) = setup_with(true, 5, "", store.clone());
    for _ in 0..4 {
        round(&s, true).await;
    }
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut moved = false;
    for _ in 0..60 {
        round_inner(&s, false, false).await;
        let g = group(&s);
        if g.phase == Phase::Steady && g.active == "b" {
            moved = true;
            break;
        }
    }
    assert!(moved, "failover despite the full disk: {:#?}", group(&s));
    assert_eq!(
        *fake.route.lock().unwrap(),
        (Some("b".into()), 2),
        "users routed to b"
    );
    let alerts = s.alerts("web");
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("cannot write group state") && a.contains("No space left")),
        "{alerts:?}"
    );
    assert!(
        s.lock()
            .recent
            .iter()
            .any(|e| e.kind == EventKind::Alert && e.message.contains("from memory")),
        "the event says the runbook ran from memory"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_that_must_not_act_unwritten_holds_the_failover() {
    // As with etcd: an unwritable store is no licence to act.
    let store = Arc::new(FullDisk::default());
    let (s, fake, _dir) = setup_with(true, 5, "", store.clone());
    for _ in 0..4 {
        round(&s, true).await;
    }
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..40 {
        round_inner(&s, false, false).await;
    }
    // The disaster was confirmed and decided; the runbook waits for the
    // decision to be written, and routes nothing.
    let g = group(&s);
    assert_eq!(g.phase, Phase::Running, "a decision was made: {g:#?}");
    assert_eq!(fake.route.lock().unwrap().0, None, "nothing routed");
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

/// Every token names one role and one holder: a frontend's token that is
/// also a site's agent token (or an operator's) would let that site's host
/// drive the frontend's routes itself. Refused at start, naming both keys.
#[tokio::test]
async fn a_frontend_token_shared_with_an_agent_or_an_operator_is_refused() {
    for (shared_with, key) in [
        ("agent-a-secret", "sites.a.agent_token"),
        ("operator-secret", "operator token"),
    ] {
        let dir = test_dir(true, 5);
        std::fs::write(dir.join("fe"), shared_with).unwrap();
        let text = config_text(&dir, true, 5, "");
        let cfg = warden_config::parse(&text, &dir.join("failover.conf")).expect("config");
        let Err(err) = crate::settings::OrchestratorSettings::with_strategies(cfg, BTreeMap::new())
        else {
            panic!("a frontend token shared with {key} was taken");
        };
        let msg = err.to_string();
        assert!(
            msg.contains("frontends.fe1.token and ")
                && msg.contains(key)
                && msg.contains("same secret"),
            "{msg}"
        );
        assert!(
            !msg.contains(shared_with),
            "the secret itself is never shown: {msg}"
        );
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

/// What an alert rule reads off `/metrics`: each group's state and each
/// site's verdict (1 for the current one, 0 for the others), and the
/// runbooks finished by kind and status.
#[tokio::test(start_paused = true)]
async fn metrics_show_states_verdicts_and_runbook_outcomes() {
    let (s, _fake, _dir) = setup(true, 5);
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    for _ in 0..4 {
        round(&s, true).await;
    }
    let m = s.metrics_text(false);
    assert_eq!(
        value(&m, r#"warden_group_state{group="web",state="steady"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, r#"warden_group_state{group="web",state="failed"}"#),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        value(&m, r#"warden_site_verdict{site="a",verdict="healthy"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(value(&m, "warden_isolated"), Some(0.0), "{m}");
    rounds_until(&s, false, 40, "automatic failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    let m = s.metrics_text(false);
    assert_eq!(
        value(&m, r#"warden_site_verdict{site="a",verdict="down"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, r#"warden_site_verdict{site="a",verdict="healthy"}"#),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            r#"warden_runbooks_finished_total{kind="failover",status="succeeded"}"#
        ),
        Some(1.0),
        "{m}"
    );
}

/// An epoch is told to agents only once the store holds it: a failover
/// whose decision the store cannot write yet (etcd without quorum, a full
/// disk) moves the group to the next epoch in memory, but reports are
/// answered with the stored one — an agent that raised its floor to an
/// epoch then lost with a step-down would be ahead of every leader, and
/// every move would wait for `warden adopt-epoch`. Once written, it is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_is_told_to_agents_only_once_it_is_stored() {
    let store = Arc::new(FullDisk::default());
    let (s, _fake, _dir) = setup_with(false, 1, "", store.clone());
    let before = s.lock().groups["web"].epoch;
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    s.operator_failover("web", "b", "operator")
        .expect("failover");
    assert_eq!(
        s.lock().groups["web"].epoch,
        before + 1,
        "decided in memory"
    );
    let answer = s.accept_report(super::fresh_checks_tests::report("a", 1, vec![]));
    assert_eq!(
        answer.epochs.get("web"),
        Some(&before),
        "an epoch the store does not hold was told"
    );
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    s.writer_settled().await;
    let answer = s.accept_report(super::fresh_checks_tests::report("a", 2, vec![]));
    assert_eq!(answer.epochs.get("web"), Some(&(before + 1)));
}

/// A pending failback is void once the site users are on is confirmed
/// down (it would resync from it): it is withdrawn, a failover to the
/// healthy site is decided instead (pending here: the budget is used up),
/// and approving it moves users.
#[tokio::test(start_paused = true)]
async fn a_pending_failback_gives_way_to_a_failover_when_the_active_site_dies() {
    let (s, _fake, _dir) = setup(true, 1);
    for _ in 0..4 {
        round(&s, true).await;
    }
    rounds_until(&s, false, 40, "automatic failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
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

/// An approval is of the decision as it stands now: a pending failover to
/// b is refused once b is confirmed down (starting it would fence a and
/// then fail), and nothing is recorded.
#[tokio::test(start_paused = true)]
async fn approving_a_failover_to_a_site_now_down_is_refused() {
    let (s, _fake, _dir) = setup(false, 5);
    for _ in 0..4 {
        round(&s, true).await;
    }
    rounds_until(&s, false, 40, "pending failover", |g| {
        g.phase == Phase::PendingApproval
    })
    .await;
    assert_eq!(group(&s).pending.unwrap().to, "b");
    // Now b dies too (a stays down: the failover stays pending).
    sites_rounds(&s, 12, (false, false), &answer_all).await;
    assert!(s.lock().detector.confirmed_down("b"));
    let approvals = |s: &Shared| {
        s.lock()
            .recent
            .iter()
            .filter(|e| e.kind == EventKind::Approved)
            .count()
    };
    let before = approvals(&s);
    let e = s.operator_approve("web", "operator").unwrap_err();
    assert!(e.to_string().contains("confirmed down now"), "{e}");
    assert!(s.lock().runbooks.is_empty(), "nothing started");
    assert_eq!(approvals(&s), before, "a refused approval recorded");
}

/// A failback the operator asked for but that cannot start (no later
/// epoch) changes nothing: a stopped automatic failback stays stopped.
#[tokio::test(start_paused = true)]
async fn a_refused_failback_keeps_the_automatic_failback_stopped() {
    let (s, _fake, _dir) = setup(true, 5);
    for _ in 0..4 {
        round(&s, true).await;
    }
    rounds_until(&s, false, 40, "automatic failover", |g| {
        g.phase == Phase::Steady && g.active == "b"
    })
    .await;
    let blocked = Some("the same failure twice".to_string());
    s.lock().groups.get_mut("web").unwrap().failback_blocked = blocked.clone();
    // a recovers; the automatic failback stays stopped.
    for _ in 0..12 {
        round(&s, true).await;
    }
    assert!(!s.lock().detector.confirmed_down("a"));
    assert_eq!(group(&s).active, "b");
    s.lock().groups.get_mut("web").unwrap().epoch = u64::MAX;
    let e = s.operator_failback("web", "operator").unwrap_err();
    assert!(e.to_string().contains("no later epoch"), "{e}");
    assert_eq!(
        group(&s).failback_blocked,
        blocked,
        "a refused failback unblocked it"
    );
}
