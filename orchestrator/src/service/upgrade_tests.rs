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
fn store_holding(
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
fn stored_web(store: &LocalStore) -> serde_json::Value {
    let g = store.groups().unwrap();
    serde_json::to_value(g.iter().find(|g| g.name == "web").unwrap()).unwrap()
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
        serde_json::json!({
            "name": "web", "active": "a", "epoch": 3, "phase": "steady",
            "hold": null, "quorum_witness": witness,
        }),
        None,
    );
    let (s, _fake) = start_from(&text, &dir, store.clone()).unwrap();
    sites_rounds(&s, 8, (true, true), &answer_all).await;
    rounds_until(&s, false, 80, "web failed over to b", |g| {
        g.active == "b" && g.phase == Phase::Steady
    })
    .await;
    s.writer_settled().await;

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
    let mut rb = serde_json::to_value(Runbook::new(
        1,
        "web",
        RunbookKind::Failover,
        "a",
        "b",
        2,
        "detector",
        1,
        1,
    ))
    .unwrap();
    rb["steps"][0]["status"] = serde_json::json!("done");
    rb["approved_by"] = serde_json::json!("alice");
    rb["steps"][1]["fence_token"] = serde_json::json!("t-77");
    let store = store_holding(
        &dir.join("data"),
        serde_json::json!({
            "name": "web", "active": "a", "epoch": 2, "phase": "running",
            "runbook": 1, "hold": null,
        }),
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
