//! [`LocalStore`]: the store as one redb file under the data dir, held by
//! the directory's lock, opened again (the same file only) after an error;
//! a record read under another key than its own is an error.
//!
//! Every write is one ACID transaction, so a process killed at any point
//! leaves either the old or the new value, never a torn one.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{Event, GroupState, Runbook};
use crate::OrchestratorError;

use super::local_file::{self, corrupt_file, FileId};
use super::{Records, Store, Unreadable};

pub(super) const GROUPS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("groups");
pub(super) const RUNBOOKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("runbooks");
pub(super) const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");

/// redb-backed store at `DATA_DIR/warden.redb`.
#[derive(Clone)]
pub struct LocalStore {
    /// `Err` (why) between a failed reopen and the next attempt.
    db: Arc<std::sync::RwLock<Result<Database, String>>>,
    path: std::path::PathBuf,
    /// The file opened at start: the only one opened again after an error.
    file: FileId,
    /// `DATA_DIR/orchestrator.lock`, held while the store is open: redb's
    /// own lock on its file is let go while the file is opened again after
    /// an error (and stays off when that fails), and a second orchestrator
    /// started on the same directory then would open — or create — a store
    /// of its own beside this one's memory.
    _lock: Arc<warden_config::dir_lock::DirLock>,
}

/// The lock file's name in the orchestrator's `data_dir`.
const LOCK_NAME: &str = "orchestrator.lock";

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, OrchestratorError> {
    serde_json::to_vec(v).map_err(|e| OrchestratorError::store("encode", e))
}

/// Decode one stored record; an error names the record (`what`, e.g.
/// `runbook 12`) and the file, so that an operator can find it.
fn dec<T: DeserializeOwned>(b: &[u8], what: &str, file: &Path) -> Result<T, OrchestratorError> {
    serde_json::from_slice(b).map_err(|e| {
        OrchestratorError::store(format!("cannot decode {what} in {}", file.display()), e)
    })
}

/// Put `rb` (encoded: `bytes`) in `t`, unless the record there is of a
/// higher revision (see [`Store::put_runbook`]).
fn put_newest(
    t: &mut redb::Table<'_, u64, &[u8]>,
    rb: &Runbook,
    bytes: &[u8],
) -> Result<(), OrchestratorError> {
    let older = t
        .get(rb.id)
        .map_err(se)?
        .is_some_and(|stored| rb.older_than_stored(stored.value()));
    if older {
        tracing::debug!(
            runbook = rb.id,
            revision = rb.revision,
            "a newer record of the runbook is stored: kept"
        );
        return Ok(());
    }
    t.insert(rb.id, bytes).map_err(se)?;
    Ok(())
}

/// A record stored under another key than its own (`what`: where it was
/// found; `record`: what it says it is): a copy or a damaged record. Taken
/// as what it says, it would stand in for the real one (the later key
/// read wins: a group's epoch and active site put back), and be written
/// back over it.
fn misplaced(what: &str, record: &str, file: &Path) -> OrchestratorError {
    OrchestratorError::store(
        format!("cannot read {what} in {}", file.display()),
        format!(
            "the record under this key is {record}, which belongs under its own key: \
             a copy or a damaged record; restore the file from a backup"
        ),
    )
}

pub(super) fn se(e: impl Into<redb::Error>) -> OrchestratorError {
    OrchestratorError::store("redb", e.into())
}

impl LocalStore {
    /// Open (or create) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, OrchestratorError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            OrchestratorError::store(format!("cannot create data dir {}", data_dir.display()), e)
        })?;
        let lock = warden_config::dir_lock::DirLock::acquire(data_dir, LOCK_NAME).map_err(|r| {
            let why = match r {
                warden_config::dir_lock::Refused::Held(holder) => format!(
                    "another orchestrator ({holder}) runs on this data_dir: one orchestrator per data_dir"
                ),
                warden_config::dir_lock::Refused::Io(why) => why,
            };
            OrchestratorError::store(format!("cannot lock {}", data_dir.display()), why)
        })?;
        let path = data_dir.join("warden.redb");
        let (db, file) = local_file::create(&path)?;
        Ok(LocalStore {
            db: Arc::new(std::sync::RwLock::new(Ok(db))),
            path,
            file,
            _lock: Arc::new(lock),
        })
    }

    /// Run `f` on the database. After a failure the database is closed and
    /// opened again: redb refuses every operation after an I/O error (a full
    /// disk) until it is reopened, and the file is consistent (each commit
    /// is atomic), so the next write says what is wrong now — and succeeds
    /// once there is space again. A reopen that failed is tried again
    /// before the next operation.
    fn with<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, OrchestratorError>,
    ) -> Result<T, OrchestratorError> {
        if self.db.read().unwrap_or_else(|p| p.into_inner()).is_err() {
            self.open_again();
        }
        let result = {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                // redb panics on some corrupt pages ("invalid page type"):
                // a damaged file is a store error, not a crash.
                Ok(db) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(db)))
                    .unwrap_or_else(|_| Err(corrupt_file(&self.path))),
                Err(why) => {
                    return Err(OrchestratorError::store(
                        format!("cannot open {}", self.path.display()),
                        format!("the database could not be opened again after an error: {why}"),
                    ))
                }
            }
        };
        if result.is_err() {
            self.open_again();
        }
        result
    }

    /// Decode one record; one that is JSON this version's types refuse
    /// (another version's) is set aside in `aside` (`None`), one that is
    /// no JSON object is an error naming it (`what`).
    fn dec_or_set_aside<T: DeserializeOwned>(
        &self,
        key: String,
        b: &[u8],
        what: &str,
        aside: &mut Vec<Unreadable>,
    ) -> Result<Option<T>, OrchestratorError> {
        match serde_json::from_slice(b) {
            Ok(v) => Ok(Some(v)),
            Err(e) => match Unreadable::of(key, b, &e) {
                Some(u) => {
                    aside.push(u);
                    Ok(None)
                }
                None => dec(b, what, &self.path),
            },
        }
    }

    /// Close the database and open its file again ([`local_file::reopen`]).
    fn open_again(&self) {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The old handle is closed first: redb opens a file once per process.
        *guard = Err("not opened again yet".to_string());
        *guard = local_file::reopen(&self.path, self.file).map_err(|e| {
            tracing::warn!(path = %self.path.display(), cause = %e, "cannot open the store again; retrying at the next operation");
            e.to_string()
        });
    }
}

impl Store for LocalStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn may_act_unwritten(&self) -> bool {
        true
    }

    fn groups(&self) -> Result<Vec<GroupState>, OrchestratorError> {
        self.groups_read()?.all("group", &self.describe())
    }

    fn groups_read(&self) -> Result<Records<GroupState>, OrchestratorError> {
        self.with(|db| {
            let tx = db.begin_read().map_err(se)?;
            let t = tx.open_table(GROUPS).map_err(se)?;
            let mut out = Records {
                read: Vec::new(),
                unreadable: Vec::new(),
            };
            for item in t.iter().map_err(se)? {
                let (k, v) = item.map_err(se)?;
                let what = format!("the record of group {:?}", k.value());
                let Some(g) = self.dec_or_set_aside::<GroupState>(
                    k.value().to_string(),
                    v.value(),
                    &what,
                    &mut out.unreadable,
                )?
                else {
                    continue;
                };
                if g.name != k.value() {
                    return Err(misplaced(&what, &format!("group {:?}", g.name), &self.path));
                }
                out.read.push(g);
            }
            Ok(out)
        })
    }

    fn put_group(&self, g: &GroupState) -> Result<(), OrchestratorError> {
        self.with(|db| {
            let bytes = enc(g)?;
            let tx = db.begin_write().map_err(se)?;
            {
                let mut t = tx.open_table(GROUPS).map_err(se)?;
                t.insert(g.name.as_str(), bytes.as_slice()).map_err(se)?;
            }
            tx.commit().map_err(se)
        })
    }

    fn put_groups(&self, groups: &[GroupState]) -> Result<(), OrchestratorError> {
        self.with(|db| {
            let encoded = groups
                .iter()
                .map(|g| Ok((g.name.as_str(), enc(g)?)))
                .collect::<Result<Vec<_>, OrchestratorError>>()?;
            let tx = db.begin_write().map_err(se)?;
            {
                let mut t = tx.open_table(GROUPS).map_err(se)?;
                for (name, bytes) in &encoded {
                    t.insert(*name, bytes.as_slice()).map_err(se)?;
                }
            }
            tx.commit().map_err(se)
        })
    }

    fn put_group_and_runbook(&self, g: &GroupState, rb: &Runbook) -> Result<(), OrchestratorError> {
        self.with(|db| {
            let gb = enc(g)?;
            let rbb = enc(rb)?;
            let tx = db.begin_write().map_err(se)?;
            {
                let mut t = tx.open_table(GROUPS).map_err(se)?;
                t.insert(g.name.as_str(), gb.as_slice()).map_err(se)?;
                let mut r = tx.open_table(RUNBOOKS).map_err(se)?;
                put_newest(&mut r, rb, &rbb)?;
            }
            tx.commit().map_err(se)
        })
    }

    fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError> {
        self.with(|db| {
            let bytes = enc(rb)?;
            let tx = db.begin_write().map_err(se)?;
            {
                let mut t = tx.open_table(RUNBOOKS).map_err(se)?;
                put_newest(&mut t, rb, &bytes)?;
            }
            tx.commit().map_err(se)
        })
    }

    fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError> {
        self.runbooks_read()?.all("runbook", &self.describe())
    }

    fn delete_runbooks(&self, ids: &[u64]) -> Result<(), OrchestratorError> {
        self.with(|db| {
            let tx = db.begin_write().map_err(se)?;
            {
                let mut t = tx.open_table(RUNBOOKS).map_err(se)?;
                for id in ids {
                    t.remove(*id).map_err(se)?;
                }
            }
            tx.commit().map_err(se)
        })
    }

    fn runbooks_read(&self) -> Result<Records<Runbook>, OrchestratorError> {
        self.with(|db| {
            let tx = db.begin_read().map_err(se)?;
            let t = tx.open_table(RUNBOOKS).map_err(se)?;
            let mut out = Records {
                read: Vec::new(),
                unreadable: Vec::new(),
            };
            for item in t.iter().map_err(se)? {
                let (k, v) = item.map_err(se)?;
                let what = format!("runbook {}", k.value());
                let Some(rb) = self.dec_or_set_aside::<Runbook>(
                    k.value().to_string(),
                    v.value(),
                    &what,
                    &mut out.unreadable,
                )?
                else {
                    continue;
                };
                if rb.id != k.value() {
                    return Err(misplaced(&what, &format!("runbook {}", rb.id), &self.path));
                }
                out.read.push(rb);
            }
            Ok(out)
        })
    }

    fn put_event(&self, e: &Event) -> Result<(), OrchestratorError> {
        self.with(|db| {
            let bytes = enc(e)?;
            let tx = db.begin_write().map_err(se)?;
            {
                let mut t = tx.open_table(EVENTS).map_err(se)?;
                t.insert(e.id, bytes.as_slice()).map_err(se)?;
            }
            tx.commit().map_err(se)
        })
    }

    fn put_events(&self, events: &[Event]) -> Result<(), OrchestratorError> {
        self.with(|db| {
            let encoded = events
                .iter()
                .map(|e| Ok((e.id, enc(e)?)))
                .collect::<Result<Vec<_>, OrchestratorError>>()?;
            let tx = db.begin_write().map_err(se)?;
            {
                let mut t = tx.open_table(EVENTS).map_err(se)?;
                for (id, bytes) in &encoded {
                    t.insert(*id, bytes.as_slice()).map_err(se)?;
                }
            }
            tx.commit().map_err(se)
        })
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError> {
        self.with(|db| {
            let tx = db.begin_read().map_err(se)?;
            let t = tx.open_table(EVENTS).map_err(se)?;
            let mut out = Vec::new();
            for item in t.range(after.saturating_add(1)..).map_err(se)? {
                let (k, v) = item.map_err(se)?;
                out.push(dec(v.value(), &format!("event {}", k.value()), &self.path)?);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    fn last_event_id(&self) -> Result<u64, OrchestratorError> {
        self.with(|db| {
            let tx = db.begin_read().map_err(se)?;
            let t = tx.open_table(EVENTS).map_err(se)?;
            let last = t.last().map_err(se)?;
            Ok(last.map(|(k, _)| k.value()).unwrap_or(0))
        })
    }

    fn prune_events(
        &self,
        keep: usize,
        before_unix_ms: u64,
        max: usize,
    ) -> Result<usize, OrchestratorError> {
        self.with(|db| {
            let tx = db.begin_write().map_err(se)?;
            let mut removed = 0;
            {
                let mut t = tx.open_table(EVENTS).map_err(se)?;
                let mut excess = (t.len().map_err(se)? as usize).saturating_sub(keep);
                while removed < max {
                    let oldest = match t.first().map_err(se)? {
                        Some((k, v)) => {
                            // By its time alone (see `recorded_at`): an
                            // event of another version is judged like any
                            // other, a record with no time goes as the oldest.
                            let old = excess > 0
                                || crate::model::recorded_at(v.value())
                                    .is_none_or(|t| t < before_unix_ms);
                            old.then(|| k.value())
                        }
                        None => None,
                    };
                    let Some(id) = oldest else { break };
                    t.remove(id).map_err(se)?;
                    excess = excess.saturating_sub(1);
                    removed += 1;
                }
            }
            if removed == 0 {
                tx.abort().map_err(se)?;
                return Ok(0);
            }
            tx.commit().map_err(se)?;
            Ok(removed)
        })
    }
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod key_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind;
    use crate::store::MemStore;

    fn ev(id: u64) -> Event {
        Event {
            id,
            time_unix_ms: id,
            kind: EventKind::Started,
            group: None,
            site: None,
            message: format!("e{id}"),
            evidence: vec![],
            runbook: None,
            epoch: None,
            term: 0,
        }
    }

    #[test]
    fn batched_events_survive_reopen_and_page_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LocalStore::open(dir.path()).unwrap();
            s.put_events(&(1..=2500).map(ev).collect::<Vec<_>>())
                .unwrap();
        }
        let s = LocalStore::open(dir.path()).unwrap();
        assert_eq!(s.last_event_id().unwrap(), 2500);
        let page = s.events(1000, 1000).unwrap();
        assert_eq!(page.first().map(|e| e.id), Some(1001));
        assert_eq!(page.last().map(|e| e.id), Some(2000));
        assert_eq!(s.events(2400, 1000).unwrap().len(), 100);
    }

    /// A store file that lost its content or was damaged is an error that
    /// says so — not a first start at epoch 1, and not a crash.
    #[test]
    fn an_emptied_or_damaged_store_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LocalStore::open(dir.path()).unwrap();
            s.put_events(&(1..=300).map(ev).collect::<Vec<_>>())
                .unwrap();
        }
        let file = dir.path().join("warden.redb");
        let good = std::fs::read(&file).unwrap();
        std::fs::write(&file, b"").unwrap();
        let err = LocalStore::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("empty") && err.contains("warden.redb"),
            "{err}"
        );
        // Pages overwritten with garbage: whatever redb makes of it, an
        // error or data, never a panic out of the store.
        for at in [4096usize, 8192, good.len() / 2] {
            let mut bad = good.clone();
            for b in bad.iter_mut().skip(at).take(512) {
                *b = 0xA5;
            }
            std::fs::write(&file, &bad).unwrap();
            let opened = std::panic::catch_unwind(|| {
                LocalStore::open(dir.path()).map(|s| (s.last_event_id(), s.events(0, 1000)))
            });
            assert!(
                opened.is_ok(),
                "the store panicked on a damaged page at {at}"
            );
        }
    }

    /// A record that does not decode (written by a newer version, or
    /// edited by hand) is an error that names the record and the file.
    #[test]
    fn an_undecodable_record_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(LocalStore::open(dir.path()).unwrap());
        let file = dir.path().join("warden.redb");
        {
            let db = Database::create(&file).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut g = tx.open_table(GROUPS).unwrap();
                g.insert("web", b"{\"name\": 3".as_slice()).unwrap();
                let mut r = tx.open_table(RUNBOOKS).unwrap();
                r.insert(7, b"[]".as_slice()).unwrap();
                let mut e = tx.open_table(EVENTS).unwrap();
                e.insert(40, b"".as_slice()).unwrap();
            }
            tx.commit().unwrap();
        }
        let s = LocalStore::open(dir.path()).unwrap();
        for (err, what) in [
            (s.groups().err(), "the record of group \"web\""),
            (s.runbooks().err(), "runbook 7"),
            (s.events(0, 10).err(), "event 40"),
        ] {
            let err = err.expect("refused").to_string();
            assert!(
                err.contains(&format!("cannot decode {what} in ")) && err.contains("warden.redb"),
                "{err}"
            );
        }
    }

    /// The store's file moved away, or another put in its place, while
    /// the orchestrator runs: the reopen after an error opens nothing else
    /// instead (redb would create a fresh, empty store at the path, and
    /// every later write would go there: the next start would find the
    /// groups never written since new, at epoch 1) and says why; with the
    /// file back in place, the store works on.
    #[test]
    fn a_store_file_moved_away_while_open_is_not_replaced_by_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        drop(LocalStore::open(dir.path()).unwrap());
        let file = dir.path().join("warden.redb");
        {
            // An undecodable event: reading it fails, and the database
            // is opened again.
            let db = Database::create(&file).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(EVENTS)
                .unwrap()
                .insert(1_000, b"".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let s = LocalStore::open(dir.path()).unwrap();
        s.put_events(&(1..=3).map(ev).collect::<Vec<_>>()).unwrap();
        let moved = dir.path().join("moved.redb");
        std::fs::rename(&file, &moved).unwrap();
        assert!(s.events(0, 10).is_err(), "event 1000 does not decode");
        assert!(
            !file.exists(),
            "a fresh store was created in place of the one moved away"
        );
        let err = s.put_events(&[ev(4)]).unwrap_err().to_string();
        assert!(err.contains("gone") && err.contains("warden.redb"), "{err}");
        // A copy is another file: not taken for the one this process has.
        std::fs::copy(&moved, &file).unwrap();
        let err = s.put_events(&[ev(4)]).unwrap_err().to_string();
        assert!(err.contains("another file"), "{err}");
        std::fs::remove_file(&file).unwrap();
        // The store's file is closed (it could not be opened again): a
        // second orchestrator on the directory is still refused, not given
        // a store of its own beside this one.
        let err = LocalStore::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("another orchestrator")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(!file.exists(), "no store was created beside the open one");
        std::fs::rename(&moved, &file).unwrap();
        s.put_events(&[ev(4)]).unwrap();
        drop(s);
        let s = LocalStore::open(dir.path()).unwrap();
        let ids: Vec<u64> = s.events(0, 4).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
    }

    /// The retention's delete: the runbooks named go (ids not stored are no
    /// error), the others and the groups stay, also across a reopen.
    #[test]
    fn runbooks_deleted_are_gone_and_the_rest_stays() {
        use crate::model::RunbookKind;
        let dir = tempfile::tempdir().unwrap();
        let local = LocalStore::open(dir.path()).unwrap();
        let mem = MemStore::default();
        for s in [&local as &dyn Store, &mem] {
            for id in 1..=6 {
                let rb = Runbook::new(id, "web", RunbookKind::Failover, "a", "b", id, "op", 1, 1);
                s.put_runbook(&rb).unwrap();
            }
            s.put_group(&GroupState::fresh("web", "a")).unwrap();
            s.delete_runbooks(&[2, 4, 99]).unwrap();
            s.delete_runbooks(&[]).unwrap();
            let ids: Vec<u64> = s.runbooks().unwrap().iter().map(|r| r.id).collect();
            assert_eq!(ids, [1, 3, 5, 6]);
            assert_eq!(s.groups().unwrap().len(), 1);
        }
        drop(local);
        let local = LocalStore::open(dir.path()).unwrap();
        let ids: Vec<u64> = local.runbooks().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 3, 5, 6], "after a reopen");
    }

    /// A runbook's record is never put back to an older revision, alone or
    /// with its group (the group is written); the same revision is.
    #[test]
    fn an_older_runbook_record_is_never_written_over_a_newer_one() {
        use crate::model::RunbookKind;
        let dir = tempfile::tempdir().unwrap();
        let local = LocalStore::open(dir.path()).unwrap();
        let mem = MemStore::default();
        let first = Runbook::new(3, "web", RunbookKind::Failover, "a", "b", 2, "op", 1, 1);
        let mut newer = first.clone();
        newer.revision = 2;
        newer.resumes = 1;
        for s in [&local as &dyn Store, &mem] {
            s.put_runbook(&newer).unwrap();
            s.put_runbook(&first).unwrap();
            let mut g: GroupState = serde_json::from_value(serde_json::json!({
                "name": "web", "active": "a", "epoch": 2, "phase": "running",
                "maintenance": false, "pending": null, "runbook": 3,
            }))
            .unwrap();
            s.put_group_and_runbook(&g, &first).unwrap();
            assert_eq!(s.runbooks().unwrap(), vec![newer.clone()]);
            assert_eq!(
                s.groups().unwrap()[0].runbook,
                Some(3),
                "the group is written"
            );
            let mut same = newer.clone();
            same.resumes = 2;
            g.epoch = 3;
            s.put_group_and_runbook(&g, &same).unwrap();
            assert_eq!(s.runbooks().unwrap(), vec![same]);
            assert_eq!(s.groups().unwrap()[0].epoch, 3);
        }
    }

    #[test]
    fn events_are_pruned_by_count_and_age_in_both_stores() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalStore::open(dir.path()).unwrap();
        let mem = MemStore::default();
        for s in [&local as &dyn Store, &mem] {
            s.put_events(&(1..=500).map(ev).collect::<Vec<_>>())
                .unwrap();
            // Keep the newest 300: ids 201..=500 (bounded work per call).
            assert_eq!(s.prune_events(300, 0, 150).unwrap(), 150);
            assert_eq!(s.prune_events(300, 0, 1000).unwrap(), 50);
            assert_eq!(s.events(0, 1).unwrap()[0].id, 201);
            // By age: everything recorded before t = 450 (ev(id) at t = id).
            assert_eq!(s.prune_events(1000, 450, 1000).unwrap(), 249);
            assert_eq!(s.events(0, 1).unwrap()[0].id, 450);
            assert_eq!(s.prune_events(1000, 450, 1000).unwrap(), 0);
            assert_eq!(s.last_event_id().unwrap(), 500);
        }
    }
}
