//! Rolling upgrades: records a newer version wrote are loaded, changed
//! and written back by this one without losing what it does not know.
//! The records are put in the store file by hand, as JSON, the way a
//! newer node leaves them.
use super::harness::*;
use super::*;
use crate::store::LocalStore;

const GROUPS: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("groups");
const RUNBOOKS: redb::TableDefinition<'_, u64, &[u8]> = redb::TableDefinition::new("runbooks");

/// A local store in `data` holding `group` (and `runbook`) as given, JSON
/// written by hand.
pub(super) fn store_holding(
    data: &std::path::Path,
    group: serde_json::Value,
    runbook: Option<serde_json::Value>,
) -> Arc<LocalStore> {
    std::fs::create_dir_all(data).unwrap();
    {
        let db = redb::Database::create(data.join("warden.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let name = group["name"].as_str().unwrap().to_string();
            let bytes = serde_json::to_vec(&group).unwrap();
            tx.open_table(GROUPS)
                .unwrap()
                .insert(name.as_str(), bytes.as_slice())
                .unwrap();
            if let Some(rb) = runbook {
                let bytes = serde_json::to_vec(&rb).unwrap();
                tx.open_table(RUNBOOKS)
                    .unwrap()
                    .insert(rb["id"].as_u64().unwrap(), bytes.as_slice())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    Arc::new(LocalStore::open(data).unwrap())
}

/// The stored record of group web, as JSON.
pub(super) fn stored_web(store: &LocalStore) -> serde_json::Value {
    let g = store.groups().unwrap();
    serde_json::to_value(g.iter().find(|g| g.name == "web").unwrap()).unwrap()
}

/// Group web's record as a version stored it: steady on a at epoch 3, no
/// hold, with `fields` (an object: a newer version's fields, or another
/// site, epoch or phase) set over it.
pub(super) fn stored_group_with(fields: serde_json::Value) -> serde_json::Value {
    let mut group = serde_json::json!({
        "name": "web", "active": "a", "epoch": 3, "phase": "steady", "hold": null,
    });
    for (k, v) in fields.as_object().expect("an object of fields") {
        group[k] = v.clone();
    }
    group
}

/// Runbook `id` of group web, `kind` from `from` to `to` at `epoch`,
/// started by `trigger`, as JSON for a test to change the way a newer
/// version wrote it.
pub(super) fn runbook_json(
    id: u64,
    kind: RunbookKind,
    (from, to): (&str, &str),
    epoch: u64,
    trigger: &str,
) -> serde_json::Value {
    serde_json::to_value(Runbook::new(
        id, "web", kind, from, to, epoch, trigger, 1, 1,
    ))
    .unwrap()
}

/// A newer version's failover of web from a to b at epoch 4 (runbook
/// `id`), with a step this version does not know (`snapshot`).
fn newer_runbook(id: u64) -> serde_json::Value {
    let mut rb = runbook_json(id, RunbookKind::Failover, ("a", "b"), 4, "detector");
    rb["steps"][1]["name"] = serde_json::json!("snapshot");
    rb
}

/// Both sites report healthy a while, then a is down until web has failed
/// over to b and is steady there; the store's writes have settled.
pub(super) async fn fail_web_over_to_b(s: &Arc<Shared>) {
    sites_rounds(s, 8, (true, true), &answer_all).await;
    rounds_until(s, false, 80, "web failed over to b", |g| {
        g.active == "b" && g.phase == Phase::Steady
    })
    .await;
    s.writer_settled().await;
}

/// A newer version kept `quorum_witness` in group web's record (steady on
/// a, epoch 3). This version loads it, fails web over to b (a down) and
/// writes the record back: the field is still there, with the move.
/// Before, the record was rewritten with the fields this version knows
/// only: the newer node's state was gone once it led again.
#[tokio::test(start_paused = true)]
async fn a_group_record_keeps_a_newer_versions_field_across_a_failover() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let witness = serde_json::json!({"site": "c", "since_unix_ms": 5});
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({"quorum_witness": witness})),
        None,
    );
    let (s, _fake) = start_from(&text, &dir, store.clone()).unwrap();
    fail_web_over_to_b(&s).await;

    let stored = stored_web(&store);
    assert_eq!(
        (&stored["active"], &stored["epoch"]),
        (&serde_json::json!("b"), &serde_json::json!(4)),
        "{stored:#}"
    );
    assert_eq!(stored["quorum_witness"], witness, "{stored:#}");
}

/// A newer version decided a failover of web to b (runbook 1, its decide
/// step done) and wrote, in the runbook, `approved_by` and, in its fence
/// step, `fence_token`; then it stopped. This version resumes the runbook
/// to its end and writes each step: both fields are still in the record.
/// Before, the first step this version recorded dropped them.
#[tokio::test(start_paused = true)]
async fn a_runbook_record_keeps_a_newer_versions_fields_when_resumed() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let mut rb = runbook_json(1, RunbookKind::Failover, ("a", "b"), 2, "detector");
    rb["steps"][0]["status"] = serde_json::json!("done");
    rb["approved_by"] = serde_json::json!("alice");
    rb["steps"][1]["fence_token"] = serde_json::json!("t-77");
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({"epoch": 2, "phase": "running", "runbook": 1})),
        Some(rb),
    );
    let (s, _fake) = start_from(&text, &dir, store.clone()).unwrap();
    s.resume();
    rounds_until(&s, false, 80, "runbook 1 resumed to its end", |g| {
        g.active == "b" && g.phase == Phase::Steady
    })
    .await;
    s.writer_settled().await;

    let stored = store.runbooks().unwrap();
    let stored = serde_json::to_value(stored.iter().find(|r| r.id == 1).unwrap()).unwrap();
    assert_eq!(stored["status"], "succeeded", "{stored:#}");
    assert_eq!(stored["steps"][1]["status"], "done", "{stored:#}");
    assert_eq!(stored["approved_by"], "alice", "{stored:#}");
    assert_eq!(stored["steps"][1]["fence_token"], "t-77", "{stored:#}");
}

/// The status's alerts and group web's `alert` events, as an operator
/// reads them (web, left as stored, is not among the status's groups).
fn web_alerts(s: &Shared) -> (Vec<String>, Vec<String>) {
    let events = s
        .lock()
        .recent
        .iter()
        .filter(|e| e.kind == EventKind::Alert && e.group.as_deref() == Some("web"))
        .map(|e| e.message.clone())
        .collect();
    let status = s.status_view();
    assert!(status.groups.iter().all(|g| g.name != "web"));
    (status.alerts, events)
}

/// An operator's failover of web to b, through the API: its status and body.
async fn failover_web(s: &Arc<Shared>) -> (axum::http::StatusCode, String) {
    use tower::ServiceExt;
    let req = axum::http::Request::post("/v1/groups/web/failover")
        .header("authorization", "Bearer operator-secret")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"to":"b"}"#))
        .unwrap();
    let r = crate::api::router(s.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Orchestrators on etcd, mid rolling upgrade: a newer node's config added
/// site c and web was moved there (active c, epoch 5). This node's config
/// lists a and b only, and it wins the lease. It leaves web where the
/// record says — no reset to its primary, no failover while a is down —
/// writes nothing over the record, says why (an alert in the status and an
/// `alert` event naming web, c and that its config does not list c) and
/// refuses an operator's move of web with that reason. Once the configs
/// agree (this node restarted with c in web's sites) it acts on web as
/// stored. Before, the take-over reset web to a at epoch 6: users were
/// moved off c with no failure and no operator order.
#[tokio::test(start_paused = true)]
async fn a_leader_whose_config_lacks_the_stored_active_site_leaves_the_group_as_stored() {
    use crate::etcd::leader::{Leadership, Role};
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let cfg = warden_config::parse(&text, &dir.join("failover.conf")).unwrap();
    let fresh = load_state(&cfg, &crate::store::MemStore::default())
        .unwrap()
        .groups["web"]
        .clone();
    let store = Arc::new(crate::store::MemStore::shared());
    let on_c = GroupState {
        active: "c".into(),
        epoch: 5,
        hold: None,
        ..fresh
    };
    store.put_group(&on_c).unwrap();

    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_routed_as(
        &text,
        &dir,
        store.clone(),
        |_| Arc::new(FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();
    let role = crate::service::HaRole(s.clone());
    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(7, None).await.unwrap();
    sites_rounds(&s, 16, (false, true), &answer_all).await;
    s.writer_settled().await;

    let stored = store.groups().unwrap();
    assert_eq!(stored, vec![on_c.clone()], "the record was written over");
    assert!(store.runbooks().unwrap().is_empty(), "web was moved");
    let (alerts, events) = web_alerts(&s);
    let said = |m: &String| {
        !m.contains("  ")
            && m.contains("group web")
            && m.contains("site c")
            && m.contains("does not list")
    };
    assert!(alerts.iter().any(said), "{alerts:#?}");
    assert!(events.iter().any(said), "{events:#?}");
    let (status, body) = failover_web(&s).await;
    assert_eq!(status, axum::http::StatusCode::CONFLICT, "{body}");
    assert!(body.contains("does not list"), "{body}");

    // The configs agree: web's sites include c.
    let d = dir.display();
    std::fs::write(dir.join("c"), "agent-c-secret").unwrap();
    std::fs::set_permissions(
        dir.join("c"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let agreed = text
        .replace(
            "[sites.b]",
            &format!("[sites.c]\nagent_token = {{ file = \"{d}/c\" }}\n[sites.b]"),
        )
        .replace(r#"sites = ["a", "b"]"#, r#"sites = ["a", "b", "c"]"#)
        .replace(
            r#"b = "127.0.0.1:2" }"#,
            r#"b = "127.0.0.1:2", c = "127.0.0.1:3" }"#,
        );
    let cfg = warden_config::parse(&agreed, &dir.join("failover.conf")).unwrap();
    let loaded = load_state(&cfg, store.as_ref()).unwrap();
    assert!(loaded.untouched.is_empty(), "{:?}", loaded.untouched);
    assert_eq!(loaded.groups["web"], on_c);
}

/// A newer version's failover of web (runbook 3), with its group record
/// in `store` as `group` says and a step this version does not know
/// (`snapshot`) in the runbook.
fn newer_failover(dir: &std::path::Path, group: serde_json::Value) -> Arc<LocalStore> {
    store_holding(&dir.join("data"), group, Some(newer_runbook(3)))
}

/// A newer version left web in a phase this one does not know
/// (`quarantined`). This version starts (before, it refused to: "cannot
/// decode the record of group \"web\" … unknown variant `quarantined`"),
/// does not act on web (a is down) and writes nothing over the record
/// (still unreadable to it, as stored), and says what it cannot read,
/// naming the group and serde's reason. An order about web is refused
/// with that reason.
#[tokio::test(start_paused = true)]
async fn a_group_record_this_version_cannot_read_is_left_as_stored_and_said() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({"epoch": 4, "phase": "quarantined"})),
        None,
    );
    let (s, _fake) = start_from(&text, &dir, store.clone()).unwrap();
    sites_rounds(&s, 16, (false, true), &answer_all).await;
    s.writer_settled().await;

    let groups = store.groups_read().unwrap();
    assert!(groups.read.is_empty(), "{:?}", groups.read);
    assert_eq!(groups.unreadable.len(), 1, "{:?}", groups.unreadable);
    assert!(
        groups.unreadable[0].cause.contains("quarantined"),
        "{:?}",
        groups.unreadable
    );
    assert!(store.runbooks().unwrap().is_empty(), "web was moved");
    let (alerts, events) = web_alerts(&s);
    let said = |m: &String| {
        !m.contains("  ")
            && m.contains("group web")
            && m.contains("cannot be read by this version")
            && m.contains("quarantined")
    };
    assert!(alerts.iter().any(said), "{alerts:#?}");
    assert!(events.iter().any(said), "{events:#?}");
    let (status, body) = failover_web(&s).await;
    assert_eq!(status, axum::http::StatusCode::CONFLICT, "{body}");
    assert!(body.contains("quarantined"), "{body}");
}

/// A newer version runs a failover of web (runbook 3) with a step this
/// one does not know (`snapshot`), and stops. This version cannot resume
/// it: it starts (before, it refused to: "cannot decode runbook 3 …
/// unknown variant `snapshot`", no group acted on), leaves web running
/// runbook 3 as stored — not marked failed as running a runbook the store
/// does not hold — and the runbook's record too, and says so naming
/// runbook 3.
#[tokio::test(start_paused = true)]
async fn a_running_runbook_this_version_cannot_read_leaves_its_group_as_stored() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let store = newer_failover(
        &dir,
        stored_group_with(serde_json::json!({"epoch": 4, "phase": "running", "runbook": 3})),
    );
    let (s, _fake) = start_from(&text, &dir, store.clone()).unwrap();
    s.resume();
    sites_rounds(&s, 16, (false, true), &answer_all).await;
    s.writer_settled().await;

    let web = stored_web(&store);
    assert_eq!(
        (&web["phase"], &web["runbook"], &web["epoch"]),
        (
            &serde_json::json!("running"),
            &serde_json::json!(3),
            &serde_json::json!(4)
        ),
        "{web:#}"
    );
    let runbooks = store.runbooks_read().unwrap();
    assert!(runbooks.read.is_empty(), "{:?}", runbooks.read);
    assert_eq!(runbooks.unreadable[0].key, "3");
    let (alerts, events) = web_alerts(&s);
    let said = |m: &String| {
        !m.contains("  ")
            && m.contains("group web")
            && m.contains("runbook 3")
            && m.contains("snapshot")
    };
    assert!(alerts.iter().any(said), "{alerts:#?}");
    assert!(events.iter().any(said), "{events:#?}");
}

/// A `hybrid` group on etcd whose DNS name a newer node pointed at
/// frontend fe3, which that node's config added to web: a leader whose
/// config serves web from fe1 and fe2 only leaves the record as stored,
/// naming fe3, where a single orchestrator forgets fe3 (and points the
/// name anew). Before, the leader forgot it too and wrote that over the
/// newer node's record.
#[test]
fn a_leader_whose_config_lacks_the_stored_frontend_leaves_the_group_as_stored() {
    let dir = test_dir(true, 5);
    let cfg = warden_config::parse(&hybrid_text(&dir), &dir.join("failover.conf")).unwrap();
    let fresh = load_state(&cfg, &crate::store::MemStore::default())
        .unwrap()
        .groups["web"]
        .clone();
    let on_fe3 = GroupState {
        frontend: Some("fe3".into()),
        epoch: 3,
        hold: None,
        ..fresh
    };
    let shared = crate::store::MemStore::shared();
    shared.put_group(&on_fe3).unwrap();
    let loaded = load_state(&cfg, &shared).unwrap();
    assert!(loaded.to_write.is_empty(), "{:#?}", loaded.to_write);
    assert!(!loaded.groups.contains_key("web"), "web is acted on");
    let why = loaded.untouched.get("web").cloned().unwrap_or_default();
    assert!(
        why.contains("frontend fe3") && why.contains("does not list") && !why.contains("  "),
        "{why}"
    );

    let alone = crate::store::MemStore::default();
    alone.put_group(&on_fe3).unwrap();
    let loaded = load_state(&cfg, &alone).unwrap();
    assert_eq!(loaded.groups["web"].frontend, None);
    assert!(loaded.untouched.is_empty());
}

/// A follower of a newer leader (etcd, mid rolling upgrade): the leader
/// moved web to b (epoch 5) by runbook 4, whose record has a step this
/// version does not know. The follower mirrors web as stored, and says
/// which record it cannot read (runbook 4). Before, the whole mirror
/// failed on that record: the follower showed web as it was before the
/// move (here: not at all), for good.
#[tokio::test(start_paused = true)]
async fn a_follower_mirrors_what_it_reads_beside_a_record_it_cannot() {
    use crate::etcd::leader::Leadership;
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({"active": "b", "epoch": 5})),
        Some(newer_runbook(4)),
    );
    let (_tx, view) = watch::channel(Leadership::new("n2", Duration::from_secs(3)));
    let s = start_routed_as(
        &text,
        &dir,
        store,
        |_| Arc::new(FakeRoute::default()),
        Mode::Elected(view),
    )
    .unwrap();
    s.mirror_store().await;

    let status = s.status_view();
    let web = status.groups.iter().find(|g| g.name == "web");
    assert_eq!(
        web.map(|g| (g.active.as_str(), g.epoch)),
        Some(("b", 5)),
        "{status:#?}"
    );
    let alerts = s.alerts("web");
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("runbook 4 cannot be read by this version") && !a.contains("  ")),
        "{alerts:#?}"
    );
}

/// A newer version's failover of web (runbook 3, a step this version does
/// not know) ended long ago: web's record is at its epoch, steady on b.
/// This version acts on web (the runbook is history), and numbers its next
/// runbook above 3, never over it.
#[test]
fn an_ended_runbook_this_version_cannot_read_is_history_and_its_id_is_kept() {
    let dir = test_dir(true, 5);
    let cfg = test_config(&dir);
    let mut rb = newer_runbook(3);
    rb["status"] = serde_json::json!("succeeded");
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({"active": "b", "epoch": 4})),
        Some(rb),
    );
    let loaded = load_state(&cfg, store.as_ref()).unwrap();
    assert!(loaded.untouched.is_empty(), "{:?}", loaded.untouched);
    assert_eq!(loaded.groups["web"].active, "b");
    assert_eq!(loaded.next_runbook, 4);
}
