//! The live service on paused time, beside its decisions and its store:
//! hold orders and who may give them, reports that must never panic it,
//! tokens shared between roles, what /metrics shows, and what `warden
//! clear` releases.
use super::harness::*;
use super::*;

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
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
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

/// Hold orders are sent by tasks of their own and may land out of order;
/// each carries its place, taken when it is given: a withdrawal given
/// after a hold — in the same millisecond too — is placed after it, and a
/// cut-over given next after both, so a frontend can refuse whichever
/// lands late.
#[tokio::test(start_paused = true)]
async fn each_hold_order_is_placed_after_the_one_given_before_it() {
    let (s, fake, _dir) = setup(true, 5);
    let ttl = Duration::from_secs(30);
    s.order_hold("web", 1, ttl, false);
    s.order_hold("web", 1, Duration::ZERO, false);
    s.order_hold("web", 1, ttl, true);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    let holds = fake.holds.lock().unwrap().clone();
    let seqs = fake.hold_seqs.lock().unwrap().clone();
    let place = |ttl: Duration, pause: bool| {
        let i = holds
            .iter()
            .position(|h| h.1 == ttl && h.2 == pause)
            .unwrap_or_else(|| panic!("order ({ttl:?}, {pause}) not sent: {holds:?}"));
        seqs[i]
    };
    let (hold, release, cut_over) = (
        place(ttl, false),
        place(Duration::ZERO, false),
        place(ttl, true),
    );
    assert!(
        0 < hold && hold < release && release < cut_over,
        "placed in the order given: {holds:?} {seqs:?}"
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

/// A pass held by a's mass-delete guard is released only when the
/// operator names a: `warden clear` for something else (a DNS block, a
/// stopped failback) leaves it held and says how to release it; a name
/// that is not a site of the group changes nothing.
/// Site a reports, as the active site replicating to b, a pass its
/// mass-delete guard holds (`held`).
fn report_held(s: &Shared, held: &str) {
    s.accept_report(AgentReport {
        site: "a".into(),
        seq: 100,
        started_unix_ms: 0,
        boot: String::new(),
        checks: vec![check(true)],
        peers: vec![],
        outcomes: vec![],
        replication: vec![warden_proto::agent::ReplicationStatus {
            group: "web".into(),
            role: "source".into(),
            peer: Some("b".into()),
            epoch: 1,
            guard: Some(held.into()),
            ..Default::default()
        }],
        authority: vec![],
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
    });
}

/// A clear names the hold the operator read: one whose hold changed since
/// (a new trip; the command replayed from shell history) releases nothing
/// there and says what is held now; one that matches queues a release
/// order naming that hold, so the agent lets nothing else go either.
#[tokio::test(start_paused = true)]
async fn clear_releases_only_the_hold_the_operator_read() {
    let (s, _fake, _dir) = replicated("manual", 5, "").await;
    let held = "a pass would delete 700 of b's 1000 items";
    report_held(&s, held);
    let clears = |s: &Shared| {
        s.lock()
            .ledger
            .pending_for("a")
            .into_iter()
            .filter(|c| c.kind == CommandKind::Clear)
            .collect::<Vec<_>>()
    };
    // The status says what is held, per site.
    let view = s.group_view("web").expect("view");
    let shown = view.replication.expect("replication").held;
    assert_eq!(shown.get("a").map(String::as_str), Some(held));

    let read: BTreeMap<String, String> = [(
        "a".to_string(),
        "a pass would delete 500 of b's 1000 items".to_string(),
    )]
    .into();
    let c = s
        .operator_clear_seen("web", "operator", &["a".to_string()], &read)
        .expect("clear");
    assert!(clears(&s).is_empty(), "released a hold nobody read: {c:?}");
    assert!(
        c.not_cleared
            .iter()
            .any(|k| k.contains("not the one you read") && k.contains("700 of b's 1000")),
        "{c:?}"
    );

    let read: BTreeMap<String, String> = [("a".to_string(), held.to_string())].into();
    let c = s
        .operator_clear_seen("web", "operator", &["a".to_string()], &read)
        .expect("clear");
    let queued = clears(&s);
    assert_eq!(queued.len(), 1, "{c:?}");
    assert_eq!(queued[0].guard_seen.as_deref(), Some(held));
}

/// `warden clear --deletions a` read the group while nothing was held at
/// a (no hold said for a; its alerts read without one); a's guard trips
/// before the clear reaches the leader. Nothing is released there, and it
/// says why. Before, a site named without a hold read released whatever
/// was held by then: a pass nobody read went ahead.
#[tokio::test(start_paused = true)]
async fn clear_releases_no_hold_raised_after_the_alerts_were_read() {
    let (s, _fake, _dir) = replicated("manual", 5, "").await;
    let read = AlertsRead {
        alerts: Some(s.alerts("web")),
        divergent: None,
    };
    let held = "a pass would delete 900 of b's 1000 items";
    report_held(&s, held);
    let c = s
        .operator_clear_read(
            "web",
            "operator",
            &["a".to_string()],
            &BTreeMap::new(),
            &read,
        )
        .expect("clear");
    let released = s
        .lock()
        .ledger
        .pending_for("a")
        .into_iter()
        .any(|c| c.kind == CommandKind::Clear);
    assert!(!released, "released a hold raised after the reading: {c:?}");
    assert!(
        c.not_cleared
            .iter()
            .any(|k| k.contains("held after you read") && k.contains("900 of b's 1000")),
        "{c:?}"
    );
    // Read again (the hold among the alerts): released.
    let read = AlertsRead {
        alerts: Some(s.alerts("web")),
        divergent: None,
    };
    s.operator_clear_read(
        "web",
        "operator",
        &["a".to_string()],
        &BTreeMap::new(),
        &read,
    )
    .expect("clear");
    assert!(s
        .lock()
        .ledger
        .pending_for("a")
        .into_iter()
        .any(|c| c.kind == CommandKind::Clear && c.guard_seen.as_deref() == Some(held)));
}

#[tokio::test(start_paused = true)]
async fn clear_releases_a_held_deletion_only_at_the_sites_it_names() {
    let (s, _fake, _dir) = replicated("manual", 5, "").await;
    report_held(&s, "a pass would delete 500 of b's 1000 items");
    let clears = |s: &Shared| {
        s.lock()
            .ledger
            .pending_for("a")
            .into_iter()
            .filter(|c| c.kind == CommandKind::Clear)
            .count()
    };

    let c = s.operator_clear("web", "operator", &[]).expect("clear");
    assert_eq!(clears(&s), 0, "released without being named: {c:?}");
    assert!(
        c.not_cleared
            .iter()
            .any(|k| k.contains("500 of b's 1000") && k.contains("warden clear web --deletions a")),
        "{c:?}"
    );

    let e = s
        .operator_clear("web", "operator", &["x".to_string()])
        .unwrap_err();
    assert!(e.to_string().contains("not a site of group web"), "{e}");
    assert_eq!(clears(&s), 0);

    let c = s
        .operator_clear("web", "operator", &["a".to_string()])
        .expect("clear");
    assert_eq!(clears(&s), 1, "{c:?}");
    assert!(
        c.cleared
            .iter()
            .any(|l| l.contains("at a lets the held pass go ahead once")),
        "{c:?}"
    );
    assert!(c.not_cleared.is_empty(), "{c:?}");
}
