//! The `rsync` plan's failback side: [`RsyncResyncer`] runs at the returning
//! (stale) site and pulls the active peer's rsync daemon module into the
//! local directory (DESIGN §4 failback 2–3).
//!
//! One [`Resyncer::pass`]:
//! 1. loads the pair [`Manifest`] and lists the peer (`rsync --list-only -r
//!    --no-h`, `TZ=UTC`, names unescaped from rsync's `\#ooo`) — a wrong
//!    password or a missing module fails here, before anything local changes;
//! 2. lists the local tree in the same form (files and symlinks, whole-second
//!    mtimes) and [`classify`]s; names are bytes throughout, keyed by their
//!    lossless [`escape_name`] form (also what reports show);
//! 3. asks the mass-delete guard ([`GuardHold`]): a pass that would delete
//!    more than `max_delete_share` *and* `max_delete_count` of the local
//!    items, or any item the manifest calls in sync when the peer module is
//!    empty, does not run ([`AgentError::DeleteGuard`], nothing changed here)
//!    until the cause is fixed or the operator releases it once;
//! 4. applies the [`DivergentPolicy`] to divergent items *before* anything is
//!    overwritten: `quarantine` moves them to `<quarantine>/<unix-ms>/<name>`,
//!    `discard` deletes them (a conflicting version is left for the peer's to
//!    overwrite), `keep` leaves them in place under an rsync protect rule
//!    (`P /name`, raw bytes, wildcards escaped) — except a conflict (the peer has the name too), which is
//!    moved to the quarantine because the peer's version wins;
//! 5. runs ONE `rsync -a --delete --force` pull from the module, reporting
//!    [`ResyncProgress`] from rsync's itemized lines;
//! 6. records the manifest: the items now equal on both sides.
//!
//! [`Resyncer::verify`] is a checksum dry-run pull (`-n -a -c --delete`),
//! excluding the kept names. Both only read the peer.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::guard::GuardHold;
use super::manifest::{
    classify, escape_name, now_ms, unescape_name, DivergentItem, DivergentPolicy, Item, Listing,
    Manifest,
};
use super::rsync::{
    attribute_args, list_local, parse_difference, rsync_unescape, run_rsync, source_arg,
    RsyncSettings,
};
use super::{
    Difference, DifferenceKind, PassReport, Progress, ResyncProgress, Resyncer, VerifyReport,
};
use crate::AgentError;

/// The rsync [`Resyncer`]: `settings.source` is the local (stale) directory,
/// host/port/module/user/password name the active peer's daemon module,
/// `settings.manifest` the pair manifest (required), `settings.quarantine`
/// where divergent items go (default `<source>.warden-quarantine`).
pub struct RsyncResyncer {
    settings: RsyncSettings,
    manifest: PathBuf,
    quarantine: PathBuf,
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
        Ok(RsyncResyncer {
            settings,
            manifest,
            quarantine,
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

    /// The peer module's files and symlinks.
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

    /// Moves `name` (relative to the local root) to `<quarantine>/<stamp>/<name>`.
    fn move_aside(&self, name: &str, stamp: u64) -> Result<PathBuf, AgentError> {
        let from = self.local(name);
        let to = self
            .quarantine
            .join(stamp.to_string())
            .join(OsStr::from_bytes(&unescape_name(name)));
        let moved = (|| {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&from, &to)
        })();
        moved.map_err(|e| AgentError::Divergent {
            action: "quarantine".into(),
            name: name.into(),
            reason: format!("moving it to {}: {e}", to.display()),
        })?;
        Ok(to)
    }

    /// The mass-delete guard for a pass that deletes `deletes` of the `here`
    /// local items (the peer deleted them, says the manifest).
    fn guard(&self, deletes: &[String], here: u64, peer_empty: bool) -> Result<(), AgentError> {
        let s = &self.settings;
        let hold: &GuardHold = &s.hold;
        if deletes.is_empty() {
            hold.passed();
            return Ok(());
        }
        let local = format!("{} (here)", s.source.display());
        let verdict = if peer_empty {
            hold.trip(format!(
                "mass-delete guard: the peer module {} is empty while the manifest says {} of the {here} \
                 items in {local} are in sync with it; nothing was deleted here. Check the peer (wrong \
                 module, emptied, unmounted?): the resync goes on by itself once its data is back; run \
                 `warden clear GROUP` only if the peer's data was really deleted",
                s.target(),
                deletes.len()
            ))
        } else {
            hold.check(&s.guard, deletes.len() as u64, here, &local)
        };
        verdict.map_err(AgentError::DeleteGuard)?;
        hold.passed();
        Ok(())
    }

    /// Writes NUL-separated filter rules to a temp file; removed on drop.
    fn filter_file(&self, rules: &[Vec<u8>]) -> Result<Option<TempFile>, AgentError> {
        if rules.is_empty() {
            return Ok(None);
        }
        let path = std::env::temp_dir().join(format!(
            "warden-resync-{}-{}.filter",
            std::process::id(),
            now_ms_unique()
        ));
        let mut body = Vec::new();
        for r in rules {
            body.extend_from_slice(r);
            body.push(0);
        }
        std::fs::write(&path, body).map_err(|e| AgentError::LocalTarget {
            path: path.display().to_string(),
            reason: format!("cannot write the rsync filter file: {e}"),
        })?;
        Ok(Some(TempFile(path)))
    }
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Unix ms plus a per-process counter, for unique temp names.
fn now_ms_unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", now_ms(), N.fetch_add(1, Ordering::Relaxed))
}

/// The rsync filter rule `RULE /NAME` (NAME: the raw bytes of an
/// [`escape_name`]d name), anchored at the transfer root, matching NAME literally.
fn rule(rule: &str, name: &str) -> Vec<u8> {
    let mut out = rule.as_bytes().to_vec();
    out.push(b' ');
    out.extend(anchored(&unescape_name(name)));
    out
}

/// An rsync filter pattern anchored at the transfer root that matches the
/// byte name `name` literally.
fn anchored(name: &[u8]) -> Vec<u8> {
    let mut out = vec![b'/'];
    // Backslashes only escape when the pattern holds a wildcard.
    if name.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        for &b in name {
            if matches!(b, b'*' | b'?' | b'[' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
    } else {
        out.extend_from_slice(name);
    }
    out
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
        let manifest = Manifest::load_escaped(&self.manifest)?;
        let peer = self.list_peer(&cancel).await?;
        self.prepare_local()?;
        let here = self.list_here().await?;
        let plan = classify(&manifest, &here, &peer);
        self.guard(&plan.delete, here.len() as u64, peer.is_empty())?;

        // Divergent items first: nothing is overwritten before they are safe.
        let stamp = now_ms();
        let mut divergent = Vec::new();
        let mut protect = Vec::new();
        for (name, reason, peer_has) in &plan.divergent {
            let (action, moved_to) = match (policy, peer_has) {
                (DivergentPolicy::Keep, false) => {
                    protect.push(rule("P", name));
                    ("kept", None)
                }
                (DivergentPolicy::Keep, true) | (DivergentPolicy::Quarantine, _) => {
                    let to = self.move_aside(name, stamp)?;
                    // Shown like the names: non-UTF-8 bytes as `\xNN`.
                    ("quarantined", Some(escape_name(to.as_os_str().as_bytes())))
                }
                (DivergentPolicy::Discard, true) => ("discarded", None),
                (DivergentPolicy::Discard, false) => {
                    std::fs::remove_file(self.local(name)).map_err(|e| AgentError::Divergent {
                        action: "discard".into(),
                        name: name.clone(),
                        reason: e.to_string(),
                    })?;
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

        // One pull.
        let filter = self.filter_file(&protect)?;
        let mut args: Vec<OsString> = vec![
            "-a".into(),
            "--delete".into(),
            "--force".into(),
            "--out-format=%i %l %n".into(),
        ];
        args.extend(attribute_args(s));
        if let Some(f) = &filter {
            args.push("--from0".into());
            let mut rule = OsString::from("--filter=merge ");
            rule.push(&f.0);
            args.push(rule);
        }
        args.push(s.url().into());
        args.push(source_arg(&s.source));
        let total_items = (plan.fetch.len() + plan.delete.len()) as u64;
        let mut now = ResyncProgress {
            items_left: total_items,
            bytes_left: plan.fetch_bytes,
            ..Default::default()
        };
        if let Some(tx) = &progress {
            tx.send_replace(now);
        }
        let mut fetched = Progress::default();
        run_rsync(s, args, None, &cancel, |line| {
            let Some((flags, rest)) = line.split_at_checked(11) else {
                return;
            };
            let fb = flags.as_bytes();
            if flags.starts_with("*deleting") {
                if !rest.trim_end().ends_with('/') {
                    now.items_done += 1;
                }
            } else if fb[0] == b'>' || (fb[0] == b'c' && fb[1] == b'L') {
                let len = rest
                    .trim_start()
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                fetched.items += 1;
                fetched.bytes += len;
                now.items_done += 1;
                now.bytes_done += len;
            } else {
                return;
            }
            now.items_left = total_items.saturating_sub(now.items_done);
            now.bytes_left = plan.fetch_bytes.saturating_sub(now.bytes_done);
            if let Some(tx) = &progress {
                tx.send_replace(now);
            }
        })
        .await?;
        drop(filter);
        now.items_left = 0;
        now.bytes_left = 0;
        if let Some(tx) = &progress {
            tx.send_replace(now);
        }

        // The manifest: what is now equal on both sides.
        let after = self.list_here().await?;
        let equal: Listing = after
            .into_iter()
            .filter(|(name, item)| peer.get(name) == Some(item))
            .collect();
        let (path, m) = (self.manifest.clone(), Manifest::confirmed_escaped(equal));
        tokio::task::spawn_blocking(move || m.save(&path))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))??;

        let report = PassReport {
            fetched,
            deleted: plan.delete.len() as u64,
            divergent,
            peer_items: peer.len() as u64,
            elapsed: started.elapsed(),
        };
        info!(
            target = %s.target(),
            fetched = report.fetched.items,
            bytes = report.fetched.bytes,
            deleted = report.deleted,
            divergent = report.divergent.len(),
            policy = policy.as_str(),
            "resync pass done"
        );
        Ok(report)
    }

    async fn verify(&self, except: &[String]) -> Result<VerifyReport, AgentError> {
        let s = &self.settings;
        let cancel = CancellationToken::new();
        let peer = self.list_peer(&cancel).await?;
        let rules: Vec<Vec<u8>> = except.iter().map(|n| rule("-", n)).collect();
        let filter = self.filter_file(&rules)?;
        let mut args: Vec<OsString> = vec![
            "-n".into(),
            "-a".into(),
            "-c".into(),
            "--delete".into(),
            "--out-format=%i %n".into(),
        ];
        args.extend(attribute_args(s));
        if let Some(f) = &filter {
            args.push("--from0".into());
            let mut rule = OsString::from("--filter=merge ");
            rule.push(&f.0);
            args.push(rule);
        }
        args.push(s.url().into());
        args.push(source_arg(&s.source));
        let mut differences = Vec::new();
        run_rsync(s, args, None, &cancel, |line| {
            if let Some(d) = parse_difference(line) {
                differences.push(d);
            }
        })
        .await?;
        // A directory kept only because it holds a kept item is not a difference.
        differences.retain(|d: &Difference| {
            let p = escape_name(d.path.as_os_str().as_bytes());
            let dir = p.trim_end_matches('/');
            !(d.kind == DifferenceKind::ExtraAtTarget
                && p.ends_with('/')
                && except.iter().any(|e| e.starts_with(&format!("{dir}/"))))
        });
        let here = self.list_here().await?;
        Ok(VerifyReport {
            items: peer.len() as u64,
            bytes: peer.values().map(|i| i.size).sum(),
            excepted: except
                .iter()
                .filter(|n| here.contains_key(*n) && !peer.contains_key(*n))
                .count() as u64,
            differences,
        })
    }
}

/// One line of `rsync --list-only -r --no-h` (with `TZ=UTC`) → a file or symlink.
/// Directories and anything else give `None`.
pub(crate) fn parse_list_line(line: &str) -> Option<(String, Item)> {
    let (perms, rest) = line.split_once(' ')?;
    let kind = perms.as_bytes().first()?;
    if !matches!(kind, b'-' | b'l') || perms.len() != 10 {
        return None;
    }
    let (size, rest) = rest.trim_start().split_once(' ')?;
    let size: u64 = size.parse().ok()?;
    let (date, rest) = rest.split_once(' ')?;
    let (time, name) = rest.split_once(' ')?;
    let mtime = epoch_utc(date, time)?;
    let name = match (*kind == b'l', name.find(" -> ")) {
        (true, Some(i)) => &name[..i],
        _ => name,
    };
    if name.is_empty() {
        return None;
    }
    Some((
        escape_name(&rsync_unescape(name)),
        Item {
            size,
            version: mtime.to_string(),
        },
    ))
}

/// `YYYY/MM/DD`, `HH:MM:SS` in UTC → unix seconds.
fn epoch_utc(date: &str, time: &str) -> Option<i64> {
    let mut d = date.split('/').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_only_lines() {
        let it = |s: u64, v: i64| Item {
            size: s,
            version: v.to_string(),
        };
        assert_eq!(
            parse_list_line("-rw-r--r--           2 2020/01/02 03:04:05 sub/b\\#ack"),
            Some(("sub/b\\\\#ack".into(), it(2, 1_577_934_245)))
        );
        assert_eq!(
            parse_list_line("-rw-r--r--     2097152 1970/01/01 00:00:01  two  spaces "),
            Some((" two  spaces ".into(), it(2_097_152, 1)))
        );
        assert_eq!(
            parse_list_line("-rw-r--r--           1 2026/11/22 00:30:36 new\\#012line"),
            Some(("new\nline".into(), it(1, 1_795_307_436)))
        );
        assert_eq!(
            parse_list_line("-rw-r--r--           1 2026/11/22 00:30:36 lit\\#134#101"),
            Some(("lit\\\\#101".into(), it(1, 1_795_307_436)))
        );
        assert_eq!(
            parse_list_line("lrwxrwxrwx           7 2024/02/29 12:00:00 link -> x y.txt"),
            Some(("link".into(), it(7, 1_709_208_000)))
        );
        assert_eq!(
            parse_list_line("drwxr-xr-x        4096 2026/11/22 00:30:34 sub"),
            None
        );
        assert_eq!(parse_list_line("garbage"), None);
        assert_eq!(
            parse_list_line("-rw-r--r--     1,234 2026/11/22 00:30:34 commas"),
            None
        );
    }

    #[test]
    fn filter_patterns_match_literally() {
        assert_eq!(anchored(b"a/b c.txt"), b"/a/b c.txt");
        assert_eq!(anchored(b"x*[y]\\z"), b"/x\\*\\[y]\\\\z");
        assert_eq!(anchored(b"raw\xff"), b"/raw\xff");
        assert_eq!(rule("P", "raw\\xff?"), b"P /raw\xff\\?");
        assert_eq!(
            parse_list_line("-rw-r--r--           1 2026/11/22 00:30:36 n\\#377\\#376"),
            Some((
                "n\\xff\\xfe".into(),
                Item {
                    size: 1,
                    version: "1795307436".into()
                }
            ))
        );
    }

    #[test]
    fn needs_a_manifest_and_defaults_the_quarantine_to_a_sibling() {
        let mut s = RsyncSettings::new(
            "/srv/data/",
            "127.0.0.1",
            "m",
            "u",
            warden_config::Secret::new("p"),
        );
        assert!(matches!(
            RsyncResyncer::new(s.clone()),
            Err(AgentError::InvalidSetting { .. })
        ));
        s.manifest = Some("/var/lib/warden/m.json".into());
        let r = RsyncResyncer::new(s).unwrap();
        assert_eq!(r.quarantine(), Path::new("/srv/data.warden-quarantine"));
    }
}
