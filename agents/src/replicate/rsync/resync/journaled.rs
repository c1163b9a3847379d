//! The cut-over's final pass from the active peer's change journal: the
//! peer named what changed in its data since the resync began (its demote
//! answered with the names), so the pull covers only them — `rsync -a -r
//! --files-from --ignore-missing-args --delete` — and stats only what it
//! touched; the pause no longer grows with the size of the tree. A named
//! directory ends as the peer's (`--delete` acts inside the named
//! directories only: a directory swapped in by renames leaves none of its
//! old entries here). The pull's `-ii` lines say which of the names the
//! peer still has; the others are deleted here. Every deletion is within
//! the mass-delete guard's limits before anything goes: all of them are
//! among the items here at or under the names, and when those are more
//! than the limits a dry run of the pull counts what the peer lacks.
//!
//! It runs only when that is as safe as a full pass; otherwise it deletes
//! and sets aside nothing and says why (a full pass follows):
//! - a name to be replaced or deleted here must hold nothing the manifest
//!   does not call unchanged unless its content is the peer's (a local
//!   change would be overwritten without being set aside): every item here
//!   at or under a changed name is checked, moved ones by checksum;
//! - a kept divergent item at or under a changed name;
//! - deletions over the mass-delete guard's limits (the full pass's guard
//!   then holds them, with its alert);
//! - a full pass's pull cut off by a kill whose log is still there
//!   (`pull_log`): the full pass confirms what it settled first.
//!
//! Here: the pass itself; `local.rs` what is here under the names.

mod local;

use super::*;
use crate::replicate::journal::ROOT;
use crate::replicate::manifest::Stamp;
use crate::replicate::rsync::{dir_item, item_of};
use local::{inside, local_items, through_link};

impl RsyncResyncer {
    pub(super) async fn journaled_pass(
        &self,
        changed: &[String],
        kept: &[String],
        replica: bool,
        cancel: CancellationToken,
    ) -> Result<Result<PassReport, String>, AgentError> {
        let started = Instant::now();
        let s = &self.settings;
        // Names come from the peer through the orchestrator: each must stay
        // inside the tree.
        if let Some(bad) = changed.iter().find(|n| !inside(n)) {
            return Ok(Err(format!(
                "the journal names {bad:?}, which is not a relative path inside the tree"
            )));
        }
        // A name under another named one is pulled with it (`-r`); listed
        // too, it would have the daemon follow the other name when that is
        // a symlink at the peer (a directory replaced by a link after its
        // entries changed), and make it a directory here holding what the
        // link points at.
        let named: BTreeSet<&str> = changed.iter().map(String::as_str).collect();
        let changed: Vec<String> = changed
            .iter()
            .filter(|n| {
                let mut up = n.as_str();
                while let Some((parent, _)) = up.rsplit_once('/') {
                    if named.contains(parent) {
                        return false;
                    }
                    up = parent;
                }
                true
            })
            .cloned()
            .collect();
        let changed = &changed[..];
        if let Some(k) = kept.iter().find(|k| {
            changed
                .iter()
                .any(|c| *k == c || k.starts_with(&format!("{c}/")))
        }) {
            return Ok(Err(format!(
                "the kept divergent item {k} is among the journaled names"
            )));
        }
        if self.pull_cut_off() {
            return Ok(Err(
                "a pull was cut off before its pass ended (its log is there): a full pass confirms what it settled first".into(),
            ));
        }
        let manifest = std::sync::Arc::new(self.take_manifest().await?);
        // 1. What is here at or under the changed names, all unchanged since confirmed?
        let (root, names, old) = (s.source.clone(), changed.to_vec(), manifest.clone());
        let linked = s.hard_links;
        let checked = tokio::task::spawn_blocking(move || local_items(&root, &names, &old, linked))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?;
        let (here, stamps, moved) = match checked {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        // Items here that moved since confirmed: harmless only when their
        // content is the peer's (the old active site's own replication may
        // have brought it); a checksum dry run says.
        // At a replica they are the peer's older versions.
        if !moved.is_empty() && !replica {
            let at_peer = self.compare(&moved, &here, &cancel).await?;
            if let Some(n) = moved
                .iter()
                .find(|n| !matches!(at_peer.get(*n), Some(Same::Equal | Same::Identical)))
            {
                return Ok(Err(format!(
                    "{n} changed here since the last pass and differs from the peer's (a full pass sets it aside by the policy)"
                )));
            }
        }

        // 2. One pull of the names (directories with their subtrees); what
        //    it itemizes is what the peer has.
        let mut list = Vec::new();
        let mut top = false;
        for n in changed {
            if n == ROOT || !n.contains('/') {
                top = true;
            }
            if n != ROOT {
                list.extend_from_slice(&unescape_name(n));
                list.push(0);
            }
        }
        let rules: Vec<Vec<u8>> = kept.iter().map(|n| rule("-", n)).collect();
        let filter = self.filter_file(&rules)?;
        let mut settled: Vec<Settled> = Vec::new();
        let mut fetched = Progress::default();
        let mut deleted = 0u64;
        // `--delete`: a named directory ends as the peer's, without the
        // entries the peer no longer has (a directory swapped by renames
        // is named, its old entries are not); `--ignore-times`: named
        // because they changed, a same-size rewrite in the same second must
        // not pass the quick check; `--whole-file`: the delta algorithm
        // would read both copies of every named file to save bytes on a
        // fast link.
        const PULL: [&str; 10] = [
            "-r",
            "--files-from=-",
            "--from0",
            "--ignore-missing-args",
            "--delete",
            "--force",
            "--ignore-times",
            "--whole-file",
            "-ii",
            ITEMIZED,
        ];
        let local_label = format!("{} (here)", s.source.display());
        let total = (manifest.items.len() as u64).max(here.len() as u64);
        if !list.is_empty()
            && s.guard
                .check(here.len() as u64, total, &local_label)
                .is_err()
        {
            // What the pull and step 3 can delete here is among `here`
            // (all checked unchanged): within the guard's limits as a
            // whole it needs no count; else a dry run of the same pull says
            // which of them the peer no longer has, before anything goes.
            let mut args: Vec<OsString> = vec!["-n".into()];
            args.extend(self.pull_args(&PULL, filter.as_ref()));
            let mut listed: BTreeMap<String, bool> = BTreeMap::new();
            run_rsync(s, args, Some(list.clone()), &cancel, |line| {
                if let Some(item) = parse_settled(line) {
                    listed.insert(item.name, item.kind == b'd');
                }
            })
            .await?;
            let doomed = here
                .iter()
                .filter(|(k, i)| listed.get(*k) != Some(&i.is_dir()))
                .count() as u64;
            if let Err(held) = s.guard.check(doomed, total, &local_label) {
                return Ok(Err(format!(
                    "the journaled deletions are over the guard's limits ({held})"
                )));
            }
        }
        // Logged as a full pass's pull is: a kill during it leaves the next
        // pass what it settled, and what it wrote unlogged (`pull_log`).
        let mut log = (!list.is_empty()).then(|| self.start_pull_log(kept));
        if !list.is_empty() {
            let args = self.pull_args(&PULL, filter.as_ref());
            run_rsync(s, args, Some(list), &cancel, |line| {
                if line.starts_with("*deleting") {
                    deleted += 1;
                } else if let Some(item) = parse_settled(line) {
                    if let Some(log) = log.as_mut() {
                        log.append(line);
                    }
                    if item.fetched {
                        fetched.items += 1;
                        fetched.bytes += item.size;
                    }
                    settled.push(item);
                }
            })
            .await?;
        }
        drop(filter);

        // 3. Names the peer no longer has: deleted here (every item at or
        //    under them was checked unchanged), within the guard's limits.
        let at_peer: BTreeSet<&str> = settled.iter().map(|i| i.name.as_str()).collect();
        let gone: Vec<&String> = changed
            .iter()
            .filter(|n| *n != ROOT && !at_peer.contains(n.as_str()))
            .filter(|n| !through_link(&s.source, n) && self.local(n).symlink_metadata().is_ok())
            .collect();
        let doomed = here
            .keys()
            .filter(|k| {
                gone.iter()
                    .any(|g| k == g || k.starts_with(&format!("{g}/")))
            })
            .count() as u64;
        // (checked before the pull already, with the rest: this cannot
        // trip unless the peer changed since)
        if let Err(held) = s.guard.check(doomed, total, &local_label) {
            return Ok(Err(format!(
                "the journaled deletions are over the guard's limits ({held})"
            )));
        }
        for g in &gone {
            let p = self.local(g);
            let removed = match p.symlink_metadata() {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
                Ok(_) => std::fs::remove_file(&p),
                Err(_) => Ok(()),
            };
            removed.map_err(|e| AgentError::LocalTarget {
                path: p.display().to_string(),
                reason: format!("cannot delete what the peer deleted: {e}"),
            })?;
            deleted += 1;
        }
        // A deletion here changed its parent's mtime: the parents again,
        // without their content (`-d`), as the peer has them.
        let mut parents = Vec::new();
        for g in &gone {
            match g.rsplit_once('/') {
                Some((p, _)) => {
                    parents.extend_from_slice(&unescape_name(p));
                    parents.push(0);
                }
                None => top = true,
            }
        }
        if !parents.is_empty() {
            let args = self.pull_args(
                &[
                    "-d",
                    "--no-r",
                    "--files-from=-",
                    "--from0",
                    "--ignore-missing-args",
                    "-ii",
                    ITEMIZED,
                ],
                None,
            );
            run_rsync(s, args, Some(parents), &cancel, |line| {
                if let Some(item) = parse_settled(line) {
                    settled.push(item);
                }
            })
            .await?;
        }
        if top {
            // The root's own mtime, mode and xattrs (never sent by `--files-from`).
            let args = self.pull_args(&["--no-r", "-d", "--exclude=*"], None);
            run_rsync(s, args, None, &cancel, |_| {}).await?;
        }

        // Nothing named but the root (its attributes are no manifest
        // entry): the manifest stands as it is, unwritten.
        if changed.iter().all(|n| n == ROOT) {
            let (items, bytes) = (
                manifest.items.len() as u64,
                manifest.items.values().map(|i| i.size).sum::<u64>(),
            );
            let held = self.manifest.clone();
            let m = std::sync::Arc::unwrap_or_clone(manifest);
            tokio::task::spawn_blocking(move || held.put_back(m))
                .await
                .map_err(|e| AgentError::Task(e.to_string()))?;
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Delta {
                fetched: Vec::new(),
                missing: Vec::new(),
                extra: kept.to_vec(),
                items,
                bytes,
            });
            return Ok(Ok(PassReport {
                fetched,
                deleted,
                divergent: Vec::new(),
                peer_items: 0,
                elapsed: started.elapsed(),
            }));
        }

        // 4. The manifest: entries at or under the changed names are what
        //    the pull settled, confirmed by a stat now; the rest stays.
        let (root, old, settled_c, here_c, stamps_c) = (
            s.source.clone(),
            manifest.clone(),
            settled.clone(),
            here.clone(),
            stamps.clone(),
        );
        let (mut items, mut new_stamps, missing) = tokio::task::spawn_blocking(move || {
            confirm(&root, &settled_c, &old, &here_c, &stamps_c)
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?;
        // Everything at or under the names that the peer still has was
        // itemized (`-ii`); an item here it did not list is gone (deleted
        // by the pull's `--delete`, by step 3, or replaced), never confirmed.
        let listed: BTreeSet<&str> = settled.iter().map(|i| i.name.as_str()).collect();
        items.retain(|k, _| listed.contains(k.as_str()));
        new_stamps.retain(|k, _| listed.contains(k.as_str()));
        // Every other holder is done with it: no copy of the whole manifest.
        let mut next = std::sync::Arc::unwrap_or_clone(manifest);
        // (By range: a scan of the whole manifest per name would make the
        // pause grow with the tree again.)
        for n in changed.iter().filter(|n| *n != ROOT) {
            let under = format!("{n}/");
            let doomed: Vec<String> = std::iter::once(n.clone())
                .chain(
                    next.items
                        .range::<String, _>(&under..)
                        .map(|(k, _)| k)
                        .take_while(|k| k.starts_with(&under))
                        .cloned(),
                )
                .collect();
            for k in doomed {
                next.items.remove(&k);
                next.stamps.remove(&k);
            }
        }
        for (k, v) in items {
            next.items.insert(k, v);
        }
        // A directory that is no longer empty is its entries, not an item.
        for d in settled.iter().filter(|i| i.kind == b'd') {
            let full = std::fs::read_dir(self.local(&d.name))
                .map(|mut e| e.next().is_some())
                .unwrap_or(false);
            if full {
                next.items.remove(&d.name);
                next.stamps.remove(&d.name);
            }
        }
        for (k, v) in new_stamps {
            next.stamps.insert(k, v);
        }
        // The other names of inodes this pass deleted, replaced or linked
        // (hard links): their ctime moved with it (`restamp_linked`).
        let touched: BTreeSet<u64> = changed
            .iter()
            .flat_map(|n| [stamps.get(n), next.stamps.get(n)])
            .flatten()
            .map(|st| st.ino)
            .collect();
        restamp_linked(&s.source, &mut next, &touched);
        next.confirmed_unix_ms = now_ms();
        let (confirmed, confirmed_bytes) = (
            next.items.len() as u64,
            next.items.values().map(|i| i.size).sum::<u64>(),
        );
        self.store_manifest(next).await?;
        drop(log);
        self.end_pull_log().await?;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Delta {
            fetched: settled
                .iter()
                .filter(|i| i.fetched)
                .map(|i| i.name.clone())
                .collect(),
            missing,
            extra: kept.to_vec(),
            items: confirmed,
            bytes: confirmed_bytes,
        });
        let report = PassReport {
            fetched,
            deleted,
            divergent: Vec::new(),
            peer_items: settled.iter().filter(|i| i.kind != b'd').count() as u64,
            elapsed: started.elapsed(),
        };
        info!(
            target = %s.target(),
            names = changed.len(),
            fetched = report.fetched.items,
            deleted = report.deleted,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "journaled final pass done"
        );
        Ok(Ok(report))
    }
}
