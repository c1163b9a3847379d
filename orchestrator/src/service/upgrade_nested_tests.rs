//! Rolling upgrades, one level down: fields a newer version wrote into
//! what a stored record nests — a divergent item, a provider's stop in a
//! group's record, a runbook's journal mark — are written back by this
//! version as read, whatever it changed around them. The records are put
//! in the store file by hand, as JSON, the way a newer node leaves them.
use super::harness::*;
use super::upgrade_tests::{
    fail_web_over_to_b, runbook_json, store_holding, stored_group_with, stored_web,
};
use super::*;

/// A block of web's DNS provider, as this version stores it.
fn block(line: &str) -> warden_strategies::ProviderStop {
    warden_strategies::ProviderStop {
        kind: warden_strategies::StopKind::Block,
        reason: line.into(),
        line: line.into(),
        until_unix_ms: None,
        config: "digest".into(),
    }
}

/// A newer version wrote, in group web's record (steady on a, epoch 3),
/// `checksum` into a divergent item and `earned_by` into a provider's
/// block. This version takes the block back at start, then its provider
/// earns a second stop (the stops are stored again, whole), then fails web
/// over to b: the record written back still holds both fields, each in
/// its own element. Before, the group's own fields were kept but not
/// those of the elements it nests: the first rewrite dropped them.
#[tokio::test(start_paused = true)]
async fn a_group_records_divergent_items_and_stops_keep_a_newer_versions_fields() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let mut stop = serde_json::to_value(block("dns/noip group web: badauth")).unwrap();
    stop["earned_by"] = serde_json::json!("o-tx");
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({
            "divergent": [
                {"name": "data/x", "reason": "not_in_manifest", "action": "kept", "checksum": "c1"},
                {"name": "data/y", "reason": "not_in_manifest", "action": "kept"},
            ],
            "provider_stops": [stop],
        })),
        None,
    );
    let (s, fake) = start_from(&text, &dir, store.clone()).unwrap();
    s.restore_provider_stops();
    assert_eq!(
        *fake.stops.lock().unwrap(),
        vec![block("dns/noip group web: badauth")]
    );
    fake.stops
        .lock()
        .unwrap()
        .push(block("dns/noip group web: abuse"));
    s.sync_provider_stops(Some("web"));
    fail_web_over_to_b(&s).await;

    let stored = stored_web(&store);
    assert_eq!(stored["active"], "b", "{stored:#}");
    assert_eq!(stored["divergent"][0]["checksum"], "c1", "{stored:#}");
    assert_eq!(stored["divergent"][1].get("checksum"), None, "{stored:#}");
    let stops = stored["provider_stops"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(stops.len(), 2, "{stored:#}");
    assert_eq!(
        stops[0]["line"], "dns/noip group web: badauth",
        "{stored:#}"
    );
    assert_eq!(stops[0]["earned_by"], "o-tx", "{stored:#}");
    assert_eq!(stops[1].get("earned_by"), None, "{stored:#}");
}

/// A newer version decided a failback of web to a (runbook 2, epoch 5):
/// its decide and resync steps done, the journal mark b answered kept in
/// the runbook with `since_unix_ms`, a field this version does not know;
/// then it stopped. This version resumes the runbook to its end — the
/// demote names the mark to b — and writes each step: the mark in the
/// record still holds the field. Before, the first step this version
/// recorded dropped it.
#[tokio::test(start_paused = true)]
async fn a_runbooks_journal_mark_keeps_a_newer_versions_field_when_resumed() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let mut rb = runbook_json(2, RunbookKind::Failback, ("b", "a"), 5, "failback");
    rb["steps"][0]["status"] = serde_json::json!("done");
    rb["steps"][1]["status"] = serde_json::json!("done");
    rb["journal"] = serde_json::json!({"id": 7, "seq": 3, "since_unix_ms": 99});
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({
            "active": "b", "epoch": 5, "phase": "running", "runbook": 2,
        })),
        Some(rb),
    );
    let (s, _fake) = start_from(&text, &dir, store.clone()).unwrap();
    s.resume();
    let sent = sites_rounds(&s, 40, (true, true), &answer_all).await;
    s.writer_settled().await;

    let demote = sent
        .iter()
        .find(|(_, c)| c.kind == warden_proto::agent::CommandKind::Demote)
        .map(|(_, c)| c.journal_since);
    assert_eq!(
        demote,
        Some(Some(warden_proto::agent::JournalMark { id: 7, seq: 3 })),
        "{sent:#?}"
    );
    let stored = store.runbooks().unwrap();
    let stored = serde_json::to_value(stored.iter().find(|r| r.id == 2).unwrap()).unwrap();
    assert_eq!(stored["status"], "succeeded", "{stored:#}");
    assert_eq!(
        stored["journal"],
        serde_json::json!({"id": 7, "seq": 3, "since_unix_ms": 99}),
        "{stored:#}"
    );
}

/// A newer version stored, with web, a provider stop of a kind this one
/// does not know (`quota`). The group is left as stored, said naming the
/// kind — not acted on with the stop dropped, which would send to a
/// provider that said stop (see `stops.rs`). The decision this pins: an
/// unknown element of a stored list is not skipped.
#[test]
fn a_stop_of_a_kind_this_version_does_not_know_leaves_its_group_as_stored() {
    let dir = test_dir(true, 5);
    let cfg = test_config(&dir);
    let mut stop = serde_json::to_value(block("dns/noip group web: over quota")).unwrap();
    stop["kind"] = serde_json::json!("quota");
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({"provider_stops": [stop]})),
        None,
    );
    let loaded = load_state(&cfg, store.as_ref()).unwrap();
    assert!(!loaded.groups.contains_key("web"), "web is acted on");
    let why = loaded.untouched.get("web").cloned().unwrap_or_default();
    assert!(why.contains("quota") && !why.contains("  "), "{why}");
}

/// A newer leader stored web's divergent list with `checksum` in an item.
/// Under this version the agent at b reports the same list again (an
/// agent sends its list in pages, report after report): the stored items
/// are kept as they are, field and all. A different list replaces them
/// (a new resync's, as this version reads it).
#[tokio::test(start_paused = true)]
async fn the_same_divergent_list_reported_again_keeps_a_newer_versions_fields() {
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "");
    let store = store_holding(
        &dir.join("data"),
        stored_group_with(serde_json::json!({
            "divergent": [
                {"name": "data/x", "reason": "not_in_manifest", "action": "kept", "checksum": "c1"},
            ],
        })),
        None,
    );
    let (s, _fake) = start_from(&text, &dir, store.clone()).unwrap();
    let page = |name: &str, digest| warden_proto::agent::ReplicationStatus {
        group: "web".into(),
        role: "resync".into(),
        divergent: vec![warden_proto::agent::DivergentWire {
            name: name.into(),
            reason: "not_in_manifest".into(),
            action: "kept".into(),
            moved_to: None,
        }],
        divergent_total: 1,
        divergent_digest: digest,
        ..Default::default()
    };
    {
        let mut st = s.lock();
        s.divergent_intake_locked(&mut st, "b", &[page("data/x", 9)]);
    }
    s.writer_settled().await;
    let stored = stored_web(&store);
    assert_eq!(stored["divergent"][0]["checksum"], "c1", "{stored:#}");

    {
        let mut st = s.lock();
        s.divergent_intake_locked(&mut st, "b", &[page("data/z", 10)]);
    }
    s.writer_settled().await;
    let stored = stored_web(&store);
    assert_eq!(
        stored["divergent"],
        serde_json::json!([{"name": "data/z", "reason": "not_in_manifest", "action": "kept", "moved_to": null}]),
        "{stored:#}"
    );
}
