//! What a failback's resync pass removes here, and what guards it: the
//! mass-delete guard over the deletes (what the peer deleted) and the
//! discards (divergent items the peer lacks, under `discard`) together
//! ([`RsyncResyncer::guard`]); the removals themselves, and the
//! directories they leave empty.

use super::*;

impl RsyncResyncer {
    /// The mass-delete guard for a pass that deletes `deletes` of the `here`
    /// local items (the peer deleted them, says the manifest) and discards
    /// `discards` more (divergent, the peer lacks them, under `discard`:
    /// as gone from here as a delete), counted with the deletions of the
    /// passes of the last
    /// [`DELETE_WINDOW`](crate::replicate::guard::DELETE_WINDOW): `Ok(true)`
    /// when the operator released the held pass.
    pub(super) fn guard(
        &self,
        deletes: &[String],
        discards: usize,
        here: u64,
        peer_empty: bool,
    ) -> Result<bool, AgentError> {
        let s = &self.settings;
        let hold: &GuardHold = &s.hold;
        let count = deletes.len() + discards;
        if count == 0 {
            hold.passed();
            return Ok(false);
        }
        let recent = self.recent.lock().unwrap().total(Instant::now());
        let local = format!("{} (here)", s.source.display());
        let verdict = if peer_empty {
            let what = match (deletes.len(), discards) {
                (d, 0) => format!("the manifest says {d} of the {here} items in {local} are in sync with it"),
                (0, x) => format!(
                    "{x} of the {here} items in {local} would be discarded (divergent: the peer lacks them)"
                ),
                (d, x) => format!(
                    "the manifest says {d} of the {here} items in {local} are in sync with it, and {x} more \
                     would be discarded (divergent: the peer lacks them)"
                ),
            };
            hold.trip(Trip::EmptyPeer, format!(
                "mass-delete guard: the peer module {} is empty while {what}; nothing was deleted here. \
                 Check the peer (wrong module, emptied, unmounted?): the resync goes on by itself once \
                 its data is back; run `warden clear GROUP --deletions SITE` only if the peer's data was \
                 really deleted",
                s.target(),
            ))
        } else {
            hold.check(&s.guard, count as u64, recent, here, &local)
        };
        let released = verdict.map_err(AgentError::DeleteGuard)?;
        hold.passed();
        Ok(released)
    }

    /// Discard the divergent item `name` (a file, a symlink, a special
    /// file, or an empty directory as `here` lists it): `false` when it
    /// was gone already.
    pub(super) fn discard(&self, name: &str, here: &Listing) -> Result<bool, AgentError> {
        let p = self.local(name);
        let removed = if here.get(name).is_some_and(Item::is_dir) {
            std::fs::remove_dir(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match removed {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AgentError::Divergent {
                action: "discard".into(),
                name: name.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Directories only the moved or discarded `items` were in go with them.
    pub(super) fn remove_emptied_parents<'a>(
        &self,
        items: impl Iterator<Item = &'a DivergentItem>,
    ) {
        for d in items {
            let mut up = d.name.as_str();
            while let Some((parent, _)) = up.rsplit_once('/') {
                if std::fs::remove_dir(self.local(parent)).is_err() {
                    break;
                }
                up = parent;
            }
        }
    }

    /// Deletes `names` here (files, symlinks, special files, empty
    /// directories), then the
    /// directories they leave empty that the peer does not have, and takes
    /// them out of `m`.
    pub(super) fn delete_here(
        &self,
        names: &[String],
        peer: &BTreeSet<String>,
        m: &mut Manifest,
    ) -> Result<(), AgentError> {
        let mut parents = BTreeSet::new();
        for name in names {
            let p = self.local(name);
            let gone = match p.symlink_metadata() {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir(&p),
                Ok(_) => std::fs::remove_file(&p),
                Err(e) => Err(e),
            };
            match gone {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(AgentError::LocalTarget {
                        path: p.display().to_string(),
                        reason: format!("cannot delete it (deleted at the peer): {e}"),
                    })
                }
            }
            m.items.remove(name);
            m.stamps.remove(name);
            let mut up = name.as_str();
            while let Some((parent, _)) = up.rsplit_once('/') {
                parents.insert(parent.to_string());
                up = parent;
            }
        }
        // Deepest first; a directory that still holds something stays.
        for dir in parents.iter().rev() {
            if !peer.contains(dir) {
                let _ = std::fs::remove_dir(self.local(dir));
            }
        }
        Ok(())
    }
}
