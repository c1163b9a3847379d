//! The `rsync` plan's failback side: [`RsyncResyncer`] runs at the returning
//! (stale) site and pulls the active peer's rsync daemon module into the
//! local directory (DESIGN §4 failback 2–3).
//!
//! One [`Resyncer::pass`] (issue 11: it loses nothing, undoes nothing):
//! 1. loads the pair [`Manifest`] and lists the local tree with each item's
//!    [`Stamp`] (inode, ns mtime, ctime): files, symlinks, special files
//!    (FIFOs, sockets, device nodes), empty directories; names are bytes throughout, keyed by their lossless
//!    [`escape_name`] form (also what reports show);
//! 2. only a local item the manifest does not call unchanged
//!    ([`Manifest::unchanged`]) can be divergent, and only if its content
//!    differs from the peer's or the peer lacks it: one checksum dry run over
//!    those names (`-n -c -ii --files-from`) decides. What changes at the
//!    peer, even while the pass runs, is never divergent;
//! 3. applies the [`DivergentPolicy`] to divergent items *before* anything is
//!    overwritten: `quarantine` moves them to `<quarantine>/<unix-ms>/<name>`,
//!    `discard` deletes them (those the peer lacks only after its listing,
//!    through the mass-delete guard with the deletes: step 6), `keep`
//!    leaves them in place, excluded from the
//!    pull (`- /name`, raw bytes, wildcards escaped) — except a conflict (the
//!    peer has the name too), which is moved to the quarantine because the
//!    peer's version wins;
//! 4. runs ONE `rsync -a -ii` pull from the module (no `--delete`): its
//!    itemized lines (`%i %l %M %n`) name every item of the peer, fetched or
//!    not, so this single scan of the peer is also its listing, and report
//!    [`ResyncProgress`];
//! 5. records the manifest from what rsync settled: an item is confirmed
//!    with a stat taken after the pull that matches what rsync reported
//!    (size, mtime, kind), so a file the peer changed while the pass ran is
//!    confirmed at the version that arrived here, and one it deleted after
//!    sending is deleted by the next pass; recorded even when the pull
//!    failed midway (what it settled is confirmed), and even when the
//!    agent was killed during the pull: its itemized lines go to a log on
//!    disk as they come, which the next pass confirms first (`pull_log`);
//!    an item step 2's comparison found identical at the peer (content and
//!    attributes) that the pull no longer listed — deleted at the peer
//!    between the two — is confirmed as it is here, so the next pass
//!    deletes it instead of taking it for a write here;
//! 6. deletes here what is unchanged since confirmed and the peer no longer
//!    lists, and discards what `discard` drops that the peer lacks, after
//!    the mass-delete guard ([`GuardHold`]): a pass that would delete (or
//!    discard) more than `max_delete_share` *and* `max_delete_count` of the
//!    local items, or any when the peer module is empty, deletes nothing
//!    ([`AgentError::DeleteGuard`]) until the cause is fixed or the operator
//!    releases it once. A wrong password or a missing module fails at the
//!    first rsync, before anything local changes.
//!
//! [`Resyncer::verify`] after a pass of the same resyncer covers that pass's
//! delta (the items it fetched, by checksum; the items it could not confirm;
//! kept items unless excepted): what the cut-over waits for grows with what
//! changed, not with the data. On a fresh resyncer it is the whole tree, a
//! checksum dry run (`-n -a -c --delete`), run before the cut-over while
//! writes still flow. Both only read the peer.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    attribute_args, list_local, list_local_stamped, only_fresh_volume_dir, parse_whole_difference,
    rsync_unescape, run_rsync, source_arg, RsyncSettings,
};
use crate::replicate::guard::{GuardHold, RecentDeletes, Trip};
use crate::replicate::manifest::{
    escape_name, now_ms, unescape_name, DivergentItem, DivergentPolicy, DivergentReason, Item,
    Listing, Manifest, Stamps,
};
use crate::replicate::recent_deletes::Side;
use crate::replicate::sent::Sent;
use crate::replicate::{
    Difference, DifferenceKind, PassReport, Progress, ResyncProgress, Resyncer, VerifyReport,
};
use crate::AgentError;

use super::pull::*;

mod held;
mod journaled;
mod pull_log;
mod quarantine;
mod removals;
#[cfg(test)]
mod tests;
mod verify;

use held::HeldManifest;

/// Removes the log a cut-off resync pull left beside `manifest`, once the
/// site pushes (it was promoted: that resync is over, and the push's
/// first full pass confirms what it carries). Left there, a later
/// failback's first pass would read it as its own — every write since it
/// began taken for what that pull fetched.
pub(crate) fn drop_stale_pull_log(manifest: &Path) {
    let path = pull_log::path_of(manifest);
    match pull_log::remove(&path) {
        Ok(()) => {}
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot remove the log of a resync pull that was cut off before the site was promoted")
        }
    }
}

/// The itemized line of a pull that [`parse_settled`] reads (with `-ii`).
const ITEMIZED: &str = "--out-format=%i %l %M %n";

/// The rsync [`Resyncer`]: `settings.source` is the local (stale) directory,
/// host/port/module/user/password name the active peer's daemon module,
/// `settings.manifest` the pair manifest (required), `settings.quarantine`
/// where divergent items go (default `<source>.warden-quarantine`).
pub struct RsyncResyncer {
    settings: RsyncSettings,
    /// The pair manifest (its file, held in memory between passes).
    manifest: std::sync::Arc<HeldManifest>,
    quarantine: PathBuf,
    /// What this resyncer's last pass left to verify: set, [`Resyncer::verify`]
    /// covers that delta; unset (a fresh resyncer), the whole tree.
    last: Mutex<Option<Delta>>,
    /// The deletions of this resyncer's recent passes (they count with a
    /// pass's own against the guard).
    recent: Mutex<RecentDeletes>,
}

impl RsyncResyncer {
    /// A resyncer for `settings`; fails when `settings.manifest` is not set
    /// (without a manifest nothing could ever be deleted safely).
    pub fn new(settings: RsyncSettings) -> Result<Self, AgentError> {
        let manifest = settings
            .manifest
            .clone()
            .ok_or_else(|| AgentError::InvalidSetting {
                key: "replication.manifest".into(),
                reason: "the rsync resync needs the pair manifest path".into(),
            })?;
        let quarantine = settings.quarantine_dir();
        // The guard's window kept beside the manifest.
        let recent = RecentDeletes::beside(&manifest, Side::Resync);
        Ok(RsyncResyncer {
            settings,
            manifest: HeldManifest::of(manifest),
            quarantine,
            last: Mutex::new(None),
            recent: Mutex::new(recent),
        })
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &RsyncSettings {
        &self.settings
    }

    /// Where divergent items are moved.
    pub fn quarantine(&self) -> &Path {
        &self.quarantine
    }

    /// The peer module's files, symlinks and special files.
    async fn list_peer(&self, cancel: &CancellationToken) -> Result<Listing, AgentError> {
        let args = vec![
            "--list-only".into(),
            "-r".into(),
            "--no-h".into(),
            self.settings.url().into(),
        ];
        let mut out = Listing::new();
        run_rsync(&self.settings, args, None, cancel, |line| {
            if let Some((name, item)) = parse_list_line(line) {
                out.insert(name, item);
            }
        })
        .await?;
        Ok(out)
    }

    /// The local tree (blocking walk off the runtime).
    async fn list_here(&self) -> Result<Listing, AgentError> {
        let root = self.settings.source.clone();
        let listed = tokio::task::spawn_blocking(move || list_local(&root))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?;
        listed.map_err(|e| AgentError::LocalTarget {
            path: self.settings.source.display().to_string(),
            reason: format!("cannot list it: {e}"),
        })
    }

    /// Creates the local directory if needed and proves it is writable.
    fn prepare_local(&self) -> Result<(), AgentError> {
        let dir = &self.settings.source;
        let err = |e: std::io::Error| AgentError::LocalTarget {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        // Not into the directory under a volume that is gone: the pass
        // would fill it, the site would be promoted on it, and the volume,
        // mounted again, would hide what users then wrote.
        if let Some(v) = &self.settings.volume {
            crate::volumes::unmounted(&v.state_dir, &v.group, dir, v.declared).map_err(
                |reason| AgentError::LocalTarget {
                    path: dir.display().to_string(),
                    reason,
                },
            )?;
        }
        std::fs::create_dir_all(dir).map_err(err)?;
        let probe = dir.join(format!(".warden-write-probe-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(err)?;
        std::fs::remove_file(&probe).map_err(err)?;
        Ok(())
    }

    /// The local path of an [`escape_name`]d name.
    fn local(&self, name: &str) -> PathBuf {
        self.settings
            .source
            .join(OsStr::from_bytes(&unescape_name(name)))
    }

    /// `rsync -a FLAGS [-X -A -H -S as configured] [FILTER] URL/ LOCAL/`:
    /// every read of the peer's module (a pull, or with `-n` a comparison).
    fn pull_args(&self, flags: &[&str], filter: Option<&TempFile>) -> Vec<OsString> {
        let s = &self.settings;
        let mut args: Vec<OsString> = vec!["-a".into()];
        args.extend(flags.iter().map(OsString::from));
        args.extend(attribute_args(s));
        if let Some(f) = filter {
            args.extend(f.args());
        }
        args.push(s.url().into());
        args.push(source_arg(&s.source));
        args
    }

    /// Writes NUL-separated filter rules to a temp file; removed on drop.
    fn filter_file(&self, rules: &[Vec<u8>]) -> Result<Option<TempFile>, AgentError> {
        if rules.is_empty() {
            return Ok(None);
        }
        let mut body = Vec::new();
        for r in rules {
            body.extend_from_slice(r);
            body.push(0);
        }
        let file = TempFile::with("warden-resync-", ".filter", &body).map_err(|e| {
            AgentError::LocalTarget {
                path: std::env::temp_dir().display().to_string(),
                reason: format!("cannot write the rsync filter file: {e}"),
            }
        })?;
        Ok(Some(file))
    }
}

#[async_trait]
impl Resyncer for RsyncResyncer {
    async fn pass(
        &self,
        policy: DivergentPolicy,
        cancel: CancellationToken,
        progress: Option<watch::Sender<ResyncProgress>>,
    ) -> Result<PassReport, AgentError> {
        let started = Instant::now();
        let s = &self.settings;
        self.prepare_local()?;
        // The manifest and the local tree, read side by side.
        // A pull cut off by a kill: what it left half-written goes, and
        // what it settled is confirmed first.
        let cut = self.clear_cut_off().await?;
        let (manifest, listed) = tokio::join!(self.take_manifest(), self.list_here_stamped());
        let (here, stamps) = listed?;
        let (manifest, unlogged) = self.confirm_cut_off(cut, manifest?, &here, &stamps).await?;

        // 1. Only what changed here since it was confirmed can be divergent;
        //    its content decides (a checksum dry run, which also says
        //    whether the peer has it). Changes at the peer never do.
        let changed: Vec<String> = here
            .iter()
            .filter(|(n, i)| !manifest.unchanged(n, i, stamps.get(*n)))
            .map(|(n, _)| n.clone())
            .collect();
        let at_peer = self.compare(&changed, &here, &cancel).await?;
        // What this site's push sent and never saw confirmed: the peer
        // lacking it now may have deleted it after it arrived.
        let sent_file = Sent::beside(self.manifest.path());
        let sent = Sent::load(&sent_file);
        let mut div = Vec::new();
        for name in &changed {
            let reason = if manifest.items.contains_key(name) {
                DivergentReason::ChangedSinceSync
            } else {
                DivergentReason::NotInManifest
            };
            match at_peer.get(name) {
                Some(Same::Equal | Same::Identical) => {}
                Some(Same::Differs) => div.push((name.clone(), reason, true)),
                None if sent.covers(name) => {
                    div.push((name.clone(), DivergentReason::SentUnconfirmed, false))
                }
                None if unlogged.contains(name) => {
                    div.push((name.clone(), DivergentReason::FetchedUnconfirmed, false))
                }
                None => div.push((name.clone(), reason, false)),
            }
        }

        // 2. Divergent items first: nothing is overwritten before they are
        //    safe. Under `discard`, what the peer lacks is not overwritten by
        //    the pull: its discard waits for the peer's listing and the
        //    mass-delete guard (5), as a delete does — an emptied or wrong
        //    peer module must not empty this site through the discards.
        let stamp = now_ms();
        let mut divergent = Vec::new();
        let mut keep: BTreeSet<String> = BTreeSet::new();
        let mut discard_later: Vec<(String, DivergentReason)> = Vec::new();
        for (name, reason, peer_has) in &div {
            // Kept in place only what never reached the peer: a version the
            // peer has (a conflict) or may have deleted after it arrived
            // (sent, never confirmed) is moved aside, the active site's wins.
            let peer_may_have = *peer_has || reason.peer_may_have_had();
            let (action, moved_to) = match (policy, peer_has, peer_may_have) {
                (DivergentPolicy::Discard, false, _) => {
                    discard_later.push((name.clone(), *reason));
                    continue;
                }
                // Gone meanwhile: nothing to keep.
                (DivergentPolicy::Keep, _, false)
                    if self.local(name).symlink_metadata().is_err() =>
                {
                    continue
                }
                (DivergentPolicy::Keep, _, false) => {
                    keep.insert(name.clone());
                    ("kept", None)
                }
                (DivergentPolicy::Keep, _, true) | (DivergentPolicy::Quarantine, _, _) => {
                    let to = match self.move_aside(name, stamp).await {
                        Ok(to) => to,
                        // Gone meanwhile (a transfer's temporary file, a
                        // delete): nothing to set aside.
                        Err(_) if self.local(name).symlink_metadata().is_err() => continue,
                        Err(e) => return Err(e),
                    };
                    // Shown like the names: non-UTF-8 bytes as `\xNN`.
                    ("quarantined", Some(escape_name(to.as_os_str().as_bytes())))
                }
                // The peer has it: removed, not left to be overwritten —
                // with the same size and mtime, rsync's quick check would
                // keep it.
                (DivergentPolicy::Discard, true, _) => {
                    if !self.discard(name, &here)? {
                        // Gone meanwhile: nothing to discard.
                        continue;
                    }
                    ("discarded", None)
                }
            };
            warn!(item = %name, ?reason, action, "divergent item at the returning site");
            divergent.push(DivergentItem {
                name: name.clone(),
                reason: *reason,
                action: action.into(),
                moved_to,
            });
        }
        let divergent_names: BTreeSet<&String> = div.iter().map(|(n, _, _)| n).collect();
        self.remove_emptied_parents(divergent.iter().filter(|d| d.action != "kept"));

        // 3. One pull without --delete: `-ii` itemizes every item of the
        //    peer, so this one scan of the peer also tells what it lacks.
        //    Kept items are excluded (the peer's name, if it appears
        //    meanwhile, waits for the next pass).
        // So are the discards that wait (2): the pull must not overwrite
        // one (a peer that has the name by now) before it is counted,
        // discarded and reported; the peer's version comes next pass.
        let rules: Vec<Vec<u8>> = keep
            .iter()
            .chain(discard_later.iter().map(|(n, _)| n))
            .map(|n| rule("-", n))
            .collect();
        let filter = self.filter_file(&rules)?;
        let args = self.pull_args(&["--force", "-ii", ITEMIZED], filter.as_ref());
        let mut now = ResyncProgress::default();
        if let Some(tx) = &progress {
            tx.send_replace(now);
        }
        let mut fetched = Progress::default();
        let mut settled: Vec<Settled> = Vec::new();
        // Each line on disk as it comes: a kill before this pass stores
        // its manifest leaves the next pass what it settled (`pull_log`).
        let mut log = self.start_pull_log(keep.iter().chain(discard_later.iter().map(|(n, _)| n)));
        let pulled = run_rsync(s, args, None, &cancel, |line| {
            let Some(item) = parse_settled(line) else {
                return;
            };
            log.append(line);
            if item.fetched {
                fetched.items += 1;
                fetched.bytes += item.size;
                now.items_done += 1;
                now.bytes_done += item.size;
                if let Some(tx) = &progress {
                    tx.send_replace(now);
                }
            }
            settled.push(item);
        })
        .await;
        drop(filter);
        drop(log);
        let pulled = match pulled {
            // Nothing settled (wrong password, no module, unreachable): nothing to record.
            Err(e) if settled.is_empty() => {
                self.end_pull_log().await?;
                return Err(e);
            }
            r => r,
        };

        // 4. The manifest from what rsync settled, checked by a stat now;
        //    recorded even when the pull failed or was cancelled midway.
        let peer_names: BTreeSet<String> = settled.iter().map(|i| i.name.clone()).collect();
        let peer_items = settled.iter().filter(|i| i.kind != b'd').count() as u64;
        let fetched_names: Vec<String> = settled
            .iter()
            .filter(|i| i.fetched)
            .map(|i| i.name.clone())
            .collect();
        let (items, new_stamps, missing) = {
            let (root, old, here, stamps) = (
                s.source.clone(),
                manifest.clone(),
                here.clone(),
                stamps.clone(),
            );
            tokio::task::spawn_blocking(move || confirm(&root, &settled, &old, &here, &stamps))
                .await
                .map_err(|e| AgentError::Task(e.to_string()))?
        };
        let mut next = Manifest {
            stamps: new_stamps,
            ..Manifest::confirmed_escaped(items)
        };
        // What the comparison (1) found identical at the peer and the pull
        // no longer listed: deleted at the peer between the two. It was in
        // sync: confirmed as it is here, so the next pass deletes it too —
        // before, it stayed unconfirmed, and the next pass took it for a
        // write here (kept, then pushed back after the cut-over).
        for (name, same) in &at_peer {
            if *same != Same::Identical || peer_names.contains(name) {
                continue;
            }
            if let (Some(item), Some(st)) = (here.get(name), stamps.get(name)) {
                next.items.insert(name.clone(), item.clone());
                next.stamps.insert(name.clone(), *st);
            }
        }

        // 5. Deletions, only after a complete listing of the peer: what is
        //    here unchanged since confirmed and the peer did not list.
        let mut deletes: Vec<String> = Vec::new();
        let mut held = Ok(());
        if pulled.is_ok() {
            deletes = here
                .iter()
                .filter(|(n, _)| !peer_names.contains(*n) && !divergent_names.contains(n))
                .filter(|(n, i)| manifest.unchanged(n, i, stamps.get(*n)))
                .filter(|(n, i)| !(i.is_dir() && holds_under(&peer_names, n)))
                .map(|(n, _)| n.clone())
                .collect();
            let checked = self.guard(
                &deletes,
                discard_later.len(),
                here.len() as u64,
                only_fresh_volume_dir(peer_names.iter().map(String::as_str)),
            );
            if let Ok(released) = checked {
                self.delete_here(&deletes, &peer_names, &mut next)?;
                now.items_done += deletes.len() as u64;
                let first = divergent.len();
                for (name, reason) in &discard_later {
                    if self.discard(name, &here)? {
                        warn!(item = %name, ?reason, action = "discarded", "divergent item at the returning site");
                        divergent.push(DivergentItem {
                            name: name.clone(),
                            reason: *reason,
                            action: "discarded".into(),
                            moved_to: None,
                        });
                    }
                }
                self.remove_emptied_parents(divergent[first..].iter());
                // counted once done (a pass that failed before them is
                // retried and checks them again)
                self.recent.lock().unwrap().passed(
                    released,
                    Instant::now(),
                    (deletes.len() + discard_later.len()) as u64,
                );
            }
            held = checked.map(|_| ());
        }
        // What this pass removed, moved aside or fetched (a fetch with
        // `-H` may link a new name to an inode here): their inodes' other
        // names are stamped again (`restamp_linked`).
        let touched: BTreeSet<u64> = deletes
            .iter()
            .chain(
                divergent
                    .iter()
                    .filter(|d| d.action != "kept")
                    .map(|d| &d.name),
            )
            .chain(&fetched_names)
            .flat_map(|n| [stamps.get(n), next.stamps.get(n)])
            .flatten()
            .map(|st| st.ino)
            .collect();
        restamp_linked(&s.source, &mut next, &touched);
        let (confirmed, confirmed_bytes) = (
            next.items.len() as u64,
            next.items.values().map(|i| i.size).sum::<u64>(),
        );
        self.store_manifest(next).await?;
        self.end_pull_log().await?;
        pulled?;
        held?;
        // Settled with the peer: what the push once sent is decided.
        if !sent.is_empty() {
            if let Err(e) = Sent::default().save(&sent_file) {
                warn!(cause = %e, "cannot remove the record of what was sent unconfirmed (the next pass reads it again)");
            }
        }
        if let Some(tx) = &progress {
            tx.send_replace(now);
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Delta {
            fetched: fetched_names,
            missing,
            // Kept divergent items: here only (differences unless excepted).
            extra: keep.iter().cloned().collect(),
            items: confirmed,
            bytes: confirmed_bytes,
        });

        let report = PassReport {
            fetched,
            deleted: deletes.len() as u64,
            divergent,
            peer_items,
            elapsed: started.elapsed(),
        };
        info!(
            target = %s.target(),
            fetched = report.fetched.items,
            bytes = report.fetched.bytes,
            deleted = report.deleted,
            divergent = report.divergent.len(),
            policy = policy.as_str(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "resync pass done"
        );
        Ok(report)
    }

    async fn pass_changed(
        &self,
        changed: &[String],
        kept: &[String],
        replica: bool,
        cancel: CancellationToken,
    ) -> Result<Result<PassReport, String>, AgentError> {
        self.prepare_local()?;
        self.journaled_pass(changed, kept, replica, cancel).await
    }

    /// After a pass of this resyncer: that pass's delta (what it fetched,
    /// by checksum; what it could not confirm); on a fresh resyncer: the
    /// whole tree by checksum (`rsync -n -a -c --delete`).
    async fn verify(&self, except: &[String]) -> Result<VerifyReport, AgentError> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match last {
            Some(delta) => self.verify_delta(delta, except).await,
            None => self.verify_full(except).await,
        }
    }
}

impl RsyncResyncer {
    /// Compares the content of the local items `names` with the peer's
    /// (`rsync -n -a -c -ii --files-from`): `Equal`, `Differs`, or absent
    /// when the peer does not have the name.
    async fn compare(
        &self,
        names: &[String],
        here: &Listing,
        cancel: &CancellationToken,
    ) -> Result<BTreeMap<String, Same>, AgentError> {
        let mut out = BTreeMap::new();
        if names.is_empty() {
            return Ok(out);
        }
        let s = &self.settings;
        let mut list = Vec::new();
        for n in names {
            list.extend_from_slice(&unescape_name(n));
            list.push(0);
        }
        let args: Vec<OsString> = vec![
            "-n".into(),
            "-a".into(),
            "-c".into(),
            "-ii".into(),
            "--ignore-missing-args".into(),
            "--files-from=-".into(),
            "--from0".into(),
            "--out-format=%i %n".into(),
            s.url().into(),
            source_arg(&s.source),
        ];
        let wanted: BTreeSet<&String> = names.iter().collect();
        run_rsync(s, args, Some(list), cancel, |line| {
            let Some((flags, name)) = line.split_at_checked(11) else {
                return;
            };
            let Some(name) = name.strip_prefix(' ') else {
                return;
            };
            let fb = flags.as_bytes();
            let name = escape_name(&rsync_unescape(name.strip_suffix('/').unwrap_or(name)));
            if !wanted.contains(&name)
                || fb.len() < 3
                || !matches!(fb[0], b'>' | b'c' | b'.' | b'h')
            {
                return;
            }
            let here_dir = here.get(&name).is_some_and(Item::is_dir);
            let same = if here_dir {
                fb[1] == b'd' && fb[0] != b'c'
            } else {
                fb[0] == b'.' && fb[2] != b'+' && fb[1] != b'd'
            };
            let identical = same
                && !here_dir
                && matches!(fb[1], b'f' | b'L')
                && fb[2..].iter().all(|b| matches!(b, b' ' | b'.'));
            out.insert(
                name,
                match (same, identical) {
                    (true, true) => Same::Identical,
                    (true, false) => Same::Equal,
                    _ => Same::Differs,
                },
            );
        })
        .await?;
        Ok(out)
    }

    /// The local tree with stamps (blocking walk off the runtime).
    async fn list_here_stamped(&self) -> Result<(Listing, Stamps), AgentError> {
        let root = self.settings.source.clone();
        let listed = tokio::task::spawn_blocking(move || list_local_stamped(&root))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?;
        listed.map_err(|e| AgentError::LocalTarget {
            path: self.settings.source.display().to_string(),
            reason: format!("cannot list it: {e}"),
        })
    }
}
