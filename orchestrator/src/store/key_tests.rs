//! The local store reads each record as what its key names: a record
//! under another key (a copy, a damaged record) is an error, never the
//! record it says it is.

use super::*;
use crate::model::RunbookKind;

fn group(name: &str, epoch: u64, active: &str) -> GroupState {
    serde_json::from_value(serde_json::json!({
        "name": name, "active": active, "epoch": epoch, "phase": "steady",
        "maintenance": false, "pending": null, "runbook": null,
    }))
    .unwrap()
}

/// Put `bytes` under `key` of `table` in the store file at `file`, by hand.
fn put_raw<K: redb::Key + 'static>(
    file: &Path,
    table: TableDefinition<'_, K, &[u8]>,
    key: K::SelfType<'_>,
    bytes: &[u8],
) {
    let db = Database::create(file).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(table).unwrap().insert(key, bytes).unwrap();
    tx.commit().unwrap();
}

/// Group `api` is at epoch 10 on b; a record under the key `web` says it
/// is `api` at epoch 3 on a (a copy made by hand, a damaged record). Read
/// as `api`, it came after the real one and stood in for it: the group's
/// epoch went back to 3 and users' site to a. It is refused, naming both;
/// the real record is kept. The same for a runbook under another id.
#[test]
fn a_record_under_another_key_than_its_own_is_refused_not_taken_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path()).unwrap();
    s.put_group(&group("api", 10, "b")).unwrap();
    let real = Runbook::new(9, "api", RunbookKind::Failover, "a", "b", 10, "op", 1, 1);
    s.put_runbook(&real).unwrap();
    drop(s);
    let file = dir.path().join("warden.redb");
    let copy = serde_json::to_vec(&group("api", 3, "a")).unwrap();
    put_raw(&file, GROUPS, "web", &copy);
    let mut stale = real.clone();
    stale.epoch = 4;
    put_raw(&file, RUNBOOKS, 12, &serde_json::to_vec(&stale).unwrap());

    let s = LocalStore::open(dir.path()).unwrap();
    let err = s
        .groups()
        .map(|g| format!("{g:?}"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the record of group \"web\"")
            && err.contains("group \"api\"")
            && err.contains("warden.redb"),
        "{err}"
    );
    let err = s
        .runbooks()
        .map(|r| format!("{r:?}"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("runbook 12") && err.contains("runbook 9"),
        "{err}"
    );
    drop(s);
    // The copies taken away, the real records are as they were.
    let db = Database::create(&file).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(GROUPS).unwrap().remove("web").unwrap();
    tx.open_table(RUNBOOKS).unwrap().remove(12).unwrap();
    tx.commit().unwrap();
    drop(db);
    let s = LocalStore::open(dir.path()).unwrap();
    let g = s.groups().unwrap();
    assert_eq!((g.len(), g[0].epoch, g[0].active.as_str()), (1, 10, "b"));
    assert_eq!(s.runbooks().unwrap(), vec![real]);
}

/// Event records this version cannot read whole (a newer version's kind,
/// a record that is no event) are pruned by their time, or as the oldest
/// when they have none: before, pruning failed at them for good
/// ("unknown variant") and the event log grew without bound.
#[test]
fn events_this_version_cannot_read_do_not_stop_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path()).unwrap();
    let event = |id: u64| Event {
        id,
        time_unix_ms: id * 10,
        kind: crate::model::EventKind::Started,
        group: None,
        site: None,
        message: format!("event {id}"),
        evidence: vec![],
        runbook: None,
        epoch: None,
        term: 0,
    };
    s.put_events(&(1..=10).map(event).collect::<Vec<_>>())
        .unwrap();
    drop(s);
    let file = dir.path().join("warden.redb");
    let newer = serde_json::json!({
        "id": 1, "time_unix_ms": 10, "kind": "quorum_regained",
        "message": "from a newer version", "shard": 3,
    });
    put_raw(&file, EVENTS, 1, newer.to_string().as_bytes());
    put_raw(&file, EVENTS, 2, b"not an event");
    let s = LocalStore::open(dir.path()).unwrap();
    let pruned = s.prune_events(100, 35, 10_000).unwrap();
    assert_eq!(pruned, 3, "ids 1 (newer), 2 (no event) and 3 (30 ms) go");
    let rest = s.events(0, 100).unwrap();
    assert_eq!(rest.first().map(|e| e.id), Some(4));
    assert_eq!(rest.len(), 7);
}
