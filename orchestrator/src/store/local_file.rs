//! The store's redb file under the data dir ([`super::LocalStore`]'s):
//! created with its tables, opened again after an error — the same file
//! only (its device and inode), never one found at the path since —, and
//! an emptied or damaged file refused with words that say so.

use std::path::Path;

use redb::Database;

use super::local::{se, EVENTS, GROUPS, RUNBOOKS};
use crate::OrchestratorError;

/// A file's identity: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId(u64, u64);

impl FileId {
    fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId(m.dev(), m.ino())
    }
}

/// The error for a store file redb panicked on.
pub(super) fn corrupt_file(path: &Path) -> OrchestratorError {
    OrchestratorError::store(
        format!("cannot read {}", path.display()),
        "the file is damaged (the database engine found an invalid page): \
         restore it from a backup, or move it away to start afresh",
    )
}

/// An empty store file is a store that lost its content, not a first
/// start (which finds no file): starting afresh would reset every epoch.
fn refuse_emptied(path: &Path) -> Result<(), OrchestratorError> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(OrchestratorError::store(
            format!("cannot open {}", path.display()),
            "the file is empty: the store lost its content (a first start finds no file). \
             Restore it from a backup, or move it away to start afresh at epoch 1 \
             (the routing layer's and the agents' epochs are then adopted)",
        ));
    }
    Ok(())
}

/// Open (or create) the store file at `path` with its tables, and its
/// identity: an emptied file is refused, a damaged one (redb panics on
/// some invalid pages) is an error that says so.
pub(super) fn create(path: &Path) -> Result<(Database, FileId), OrchestratorError> {
    refuse_emptied(path)?;
    let opened = std::panic::catch_unwind(|| -> Result<Database, OrchestratorError> {
        let db = Database::create(path)
            .map_err(|e| OrchestratorError::store(format!("cannot open {}", path.display()), e))?;
        let tx = db.begin_write().map_err(se)?;
        tx.open_table(GROUPS).map_err(se)?;
        tx.open_table(RUNBOOKS).map_err(se)?;
        tx.open_table(EVENTS).map_err(se)?;
        tx.commit().map_err(se)?;
        Ok(db)
    });
    let db = opened.unwrap_or_else(|_| Err(corrupt_file(path)))?;
    let file = std::fs::metadata(path)
        .map(|m| FileId::of(&m))
        .map_err(|e| OrchestratorError::store(format!("cannot open {}", path.display()), e))?;
    Ok((db, file))
}

/// Open the store's file again after an error: the file this process
/// opened at start (`file`: its device and inode), never another. A
/// file that is gone (moved or deleted while the orchestrator ran),
/// replaced or emptied is an error that says so: opening whatever is at
/// the path — redb would even create a fresh, empty store there — would
/// take every later write into a store that holds nothing else, and
/// the next start would find the groups never written there new, at
/// epoch 1.
pub(super) fn reopen(path: &Path, file: FileId) -> Result<Database, OrchestratorError> {
    let again = || format!("cannot open {} again", path.display());
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OrchestratorError::store(
                again(),
                "the file is gone (moved or deleted while the orchestrator ran): \
                 nothing is written until it is back at that path",
            ))
        }
        Err(e) => return Err(OrchestratorError::store(again(), e)),
    };
    if FileId::of(&meta) != file {
        return Err(OrchestratorError::store(
            again(),
            "another file is at that path (the store was replaced while the orchestrator \
             ran): nothing is written until the orchestrator is restarted, which reads it",
        ));
    }
    refuse_emptied(path)?;
    match std::panic::catch_unwind(|| Database::open(path)) {
        Ok(opened) => opened.map_err(|e| OrchestratorError::store(again(), e)),
        Err(_) => Err(corrupt_file(path)),
    }
}
