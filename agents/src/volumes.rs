//! A site's memory of its data volumes, for the receiving side of the
//! rsync plan (DESIGN §10: a peer that is unmounted). For each group whose
//! rsync plan gives this site a directory (`path`), whether that directory
//! has been seen as a mount point: recorded in `STATE_DIR/volumes.json`
//! once seen (the agent looks at its start and every report interval,
//! [`watch`]), and never forgotten by the agent. `warden rsync-gate` — a
//! process of its own, run for each push — then refuses a push into a
//! directory recorded as a mount point that is not one now
//! ([`unmounted`]): with the volume gone, a push would write the peer's
//! data into the empty directory under it (on the root filesystem), a
//! full pass with `--delete` would make that directory the copy a
//! failover starts from, and the volume, mounted again, would hold stale
//! data nobody replicated. The pusher's replication shows the refusal
//! with its reason; pushes land again once the volume is back. A directory
//! that is meant to stay unmounted is forgotten by removing its entry (or
//! the file) while the agent is stopped (docs/rsyncd.md). A directory the
//! config declares a mount point (`mount_point = true`, [`Dir::declared`])
//! is judged so from the first start, seen mounted or not; and a site is
//! not promoted onto such a directory that is not mounted
//! ([`before_promote`]). A damaged record, recorded afresh, keeps each
//! directory not mounted at that moment as unsure: pushes into it stay
//! refused until it is seen mounted, a promote onto it is not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warden_config::model::ReplicationPlan;
use warden_config::Config;
use warden_proto::agent::AuthorityWire;

/// The file in the agent's state directory.
pub const FILE_NAME: &str = "volumes.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// Group → its directory at this site, seen as a mount point.
    mounted: BTreeMap<String, PathBuf>,
    /// Group → its directory at this site, not mounted when a damaged
    /// record was recorded afresh: it may have been a mount point the
    /// damage made the agent forget. Pushes and a resync's pulls into it
    /// are refused while it is not one ([`unmounted`]); a promote is not
    /// ([`before_promote`]: a failover is never stopped by a damaged
    /// file). Moved to `mounted` once seen mounted. Absent from an older
    /// version's file (and ignored by an older version).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    unsure: BTreeMap<String, PathBuf>,
}

/// Whether `path` is a mount point: on another device than its parent
/// (the root directory always is).
pub fn is_mount_point(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(path)?;
    let Some(parent) = path.parent() else {
        return Ok(true);
    };
    Ok(std::fs::metadata(&path)?.dev() != std::fs::metadata(parent)?.dev())
}

/// This site's directory of a group with an rsync plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    /// The group.
    pub group: String,
    /// Its directory at this site (`path`).
    pub path: PathBuf,
    /// The config declares it a mount point (`mount_point = true`).
    pub declared: bool,
}

/// This site's directory of each group with an rsync plan.
pub fn directories(config: &Config, site: &str) -> Vec<Dir> {
    config
        .groups
        .iter()
        .filter_map(|(name, g)| {
            let r = g.replication()?;
            let here = r.sites.get(site)?;
            let path = here.path.clone()?;
            (r.plan == ReplicationPlan::Rsync).then(|| Dir {
                group: name.clone(),
                path,
                declared: here.is_mount_point(),
            })
        })
        .collect()
}

fn read(state_dir: &Path) -> Result<File, String> {
    let path = state_dir.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(body) => serde_json::from_slice(&body)
            .map_err(|e| format!("{} cannot be read: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(format!("{} cannot be read: {e}", path.display())),
    }
}

/// Look at each of `dirs`: record those that are mount points now and are
/// not recorded yet (with their group). The groups of `dirs` recorded now,
/// newly or before (not those only unsure).
///
/// A damaged record is recorded afresh from what is mounted now; each of
/// `dirs` not mounted at that moment may have been a mount point the
/// record knew, so it is kept as unsure ([`File::unsure`]): pushes into it
/// stay refused until it is seen mounted — forgotten, they would land in
/// the directory under the volume (the gate failing open).
pub fn note(state_dir: &Path, dirs: &[Dir]) -> Result<Vec<String>, String> {
    let (mut file, damaged) = match read(state_dir) {
        Ok(f) => (f, false),
        Err(e) => {
            // Not the gate's file to fix; the agent's: said, then replaced
            // by what is mounted now (the gate refuses pushes meanwhile).
            warn!(cause = %e, "the record of this site's data volumes is damaged; recording them afresh (pushes into a directory not mounted now stay refused until it is)");
            (File::default(), true)
        }
    };
    let mut recorded = Vec::new();
    let mut new = damaged;
    for Dir {
        group, path: dir, ..
    } in dirs
    {
        if file.mounted.get(group) != Some(dir) {
            if !is_mount_point(dir).unwrap_or(false) {
                if damaged {
                    file.unsure.insert(group.clone(), dir.clone());
                }
                continue;
            }
            info!(group = %group, "this site's directory of the group is a mount point: pushes into it are refused while it is not");
            file.mounted.insert(group.clone(), dir.clone());
            new = true;
        }
        if file.unsure.get(group) == Some(dir) {
            file.unsure.remove(group);
            new = true;
        }
        recorded.push(group.clone());
    }
    if new {
        let body = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        warden_config::durable::replace(&state_dir.join(FILE_NAME), &body)
            .map_err(|e| format!("cannot record this site's data volumes: {e}"))?;
    }
    Ok(recorded)
}

/// Per group: why this site cannot be promoted now (its directory is
/// declared or was seen a mount point and is not one), as [`watch`] last
/// looked; carried by every report ([`Unfit::mark`]) so the orchestrator
/// knows before it orders a promote that would be refused.
#[derive(Debug, Clone, Default)]
pub struct Unfit(Arc<Mutex<BTreeMap<String, String>>>);

impl Unfit {
    /// `wire` with each group's reason, if it has one.
    pub fn mark(&self, mut wire: Vec<AuthorityWire>) -> Vec<AuthorityWire> {
        let now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for a in &mut wire {
            a.unfit = now.get(&a.group).cloned();
        }
        wire
    }

    fn set(&self, now: BTreeMap<String, String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }
}

/// The agent's part, at start and every `every` until `stop`, off the
/// runtime (a hung filesystem blocks only this look): [`note`] the
/// directories not recorded yet (a record is never taken back), and set
/// `unfit` for each directory declared or recorded a mount point that is
/// not one now.
pub async fn watch(
    state_dir: PathBuf,
    dirs: Vec<Dir>,
    every: Duration,
    unfit: Unfit,
    stop: CancellationToken,
) {
    let mut recorded: Vec<String> = Vec::new();
    while !dirs.is_empty() {
        let (s, d, r) = (state_dir.clone(), dirs.clone(), recorded.clone());
        let looked = tokio::select! {
            _ = stop.cancelled() => return,
            l = tokio::task::spawn_blocking(move || look(&s, &d, r)) => l,
        };
        match looked {
            Ok((now, why)) => {
                recorded = now;
                unfit.set(why);
            }
            Err(e) => warn!(cause = %e, "the look at this site's data volumes failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One look of [`watch`]: the groups recorded now, and why each group
/// whose volume is gone cannot be promoted.
fn look(
    state_dir: &Path,
    dirs: &[Dir],
    mut recorded: Vec<String>,
) -> (Vec<String>, BTreeMap<String, String>) {
    // Damaged since the last look: every directory is looked at again and
    // the record rewritten whole ([`note`] keeps those not mounted now as
    // unsure). Rewritten from the fresh ones alone, it forgot the others
    // (their pushes then let in), and left unread until then, it kept
    // every promote refused.
    if read(state_dir).is_err() {
        recorded.clear();
    }
    let fresh: Vec<Dir> = dirs
        .iter()
        .filter(|d| !recorded.contains(&d.group))
        .cloned()
        .collect();
    if !fresh.is_empty() {
        match note(state_dir, &fresh) {
            Ok(now) => recorded.extend(now),
            Err(e) => warn!(cause = %e, "cannot record this site's data volumes"),
        }
    }
    let why = dirs
        .iter()
        .filter_map(|d| {
            let seen = recorded.contains(&d.group);
            judge(&d.group, &d.path, d.declared, seen)
                .err()
                .map(|why| (d.group.clone(), why))
        })
        .collect();
    (recorded, why)
}

/// Whether the record holds `group`'s directory `dir` at this site as a
/// mount point (seen mounted, or unsure after a damaged record): the
/// source side's guard then sends nothing from it while it is not one,
/// as if it were declared. A record that cannot be read says no (the
/// agent records it afresh, keeping what is not mounted as unsure).
pub fn recorded(state_dir: &Path, group: &str, dir: &Path) -> bool {
    read(state_dir).is_ok_and(|f| {
        f.mounted.get(group).map(PathBuf::as_path) == Some(dir)
            || f.unsure.get(group).map(PathBuf::as_path) == Some(dir)
    })
}

/// Why a push into `group`'s directory `dir` at this site must be refused:
/// it is declared a mount point (`mount_point = true`: `declared`) or was
/// seen as one, and is not one now (or cannot be looked at), or the record
/// cannot be read (the gate fails closed).
pub fn unmounted(state_dir: &Path, group: &str, dir: &Path, declared: bool) -> Result<(), String> {
    not_mounted(state_dir, group, dir, declared).map_err(|why| {
        format!(
            "{why}: a push would write into the directory under it; mount the volume again \
             (pushes land again by themselves)"
        )
    })
}

/// Whether `group`'s directory `dir` at this site is declared a mount point
/// or recorded as one (seen, or unsure) and is not one now: `Err` says so
/// (or that the record cannot be read), for [`unmounted`] and the gate's
/// reads.
pub fn not_mounted(
    state_dir: &Path,
    group: &str,
    dir: &Path,
    declared: bool,
) -> Result<(), String> {
    let file = read(state_dir)?;
    let seen = if file.mounted.get(group).map(PathBuf::as_path) == Some(dir) {
        Seen::Mounted
    } else if file.unsure.get(group).map(PathBuf::as_path) == Some(dir) {
        Seen::Unsure
    } else {
        Seen::No
    };
    judge(group, dir, declared, seen)
}

/// What the record says of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Nothing.
    No,
    /// Seen as a mount point.
    Mounted,
    /// Not mounted when a damaged record was recorded afresh ([`File::unsure`]).
    Unsure,
}

impl From<bool> for Seen {
    fn from(mounted: bool) -> Seen {
        if mounted {
            Seen::Mounted
        } else {
            Seen::No
        }
    }
}

/// Whether `group`'s directory `dir` is a mount point if it must be one
/// (`declared`, or `seen`: recorded as one or unsure): `Err` says it is not.
fn judge(group: &str, dir: &Path, declared: bool, seen: impl Into<Seen>) -> Result<(), String> {
    let was = match (declared, seen.into()) {
        (true, _) => "is declared a mount point (mount_point = true)",
        (false, Seen::Mounted) => "was a mount point",
        (false, Seen::Unsure) => {
            "may have been a mount point (the record of this site's volumes, \
             volumes.json, was damaged and recorded afresh while it was not mounted; \
             remove its entry from `unsure` there, the agent stopped, if it is meant \
             to stay unmounted)"
        }
        (false, Seen::No) => return Ok(()),
    };
    match is_mount_point(dir) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "this site's directory {} of group {group} {was} and is not one now \
             (its volume unmounted?)",
            dir.display()
        )),
        Err(e) => Err(format!(
            "this site's directory {} of group {group} {was} and cannot be looked at now ({e})",
            dir.display()
        )),
    }
}

/// Why `group` must not be promoted here: its directory at this site is
/// declared or was seen a mount point and is not one now. Promoted on the
/// directory under the mount point (on the root filesystem), the site
/// would serve what is there — nothing, or stale data — take users'
/// writes into it, and the volume, mounted again, would hide them. Looked
/// at off the runtime (a hung filesystem blocks only this look).
pub async fn before_promote(state_dir: &Path, dirs: &[Dir], group: &str) -> Result<(), String> {
    let Some(d) = dirs.iter().find(|d| d.group == group).cloned() else {
        return Ok(());
    };
    let state_dir = state_dir.to_path_buf();
    let looked = tokio::task::spawn_blocking(move || {
        let seen = read(&state_dir)?.mounted.get(&d.group) == Some(&d.path);
        judge(&d.group, &d.path, d.declared, seen)
    })
    .await
    .map_err(|e| format!("the look at this site's data volume failed: {e}"))?;
    looked.map_err(|why| {
        format!(
            "not promoted: {why}. Promoted on the directory under the mount point, this site \
             would serve what is there and take users' writes the volume would hide once \
             mounted again; mount the volume, then move the group again"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &Path, declared: bool) -> Dir {
        Dir {
            group: "web".into(),
            path: path.to_path_buf(),
            declared,
        }
    }

    /// A promote onto a directory declared a mount point that is not one
    /// is refused with the reason; undeclared and never seen mounted, or
    /// declared and mounted (`/` always is), it goes ahead, and another
    /// group's promote is not judged by this one's directory.
    #[tokio::test]
    async fn a_promote_onto_a_declared_volume_that_is_not_mounted_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let data = state.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let e = before_promote(state.path(), &[dir(&data, true)], "web")
            .await
            .unwrap_err();
        assert!(
            e.starts_with("not promoted: ")
                && e.contains("declared a mount point (mount_point = true) and is not one now"),
            "{e}"
        );
        before_promote(state.path(), &[dir(&data, true)], "api")
            .await
            .unwrap();
        before_promote(state.path(), &[dir(&data, false)], "web")
            .await
            .unwrap();
        before_promote(state.path(), &[dir(Path::new("/"), true)], "web")
            .await
            .unwrap();
    }

    /// A damaged volumes.json recorded afresh while one group's volume is
    /// mounted (`/` always is) and another's is not: pushes into the one
    /// not mounted stay refused (it may have been a mount point the
    /// record knew), with the reason; a promote onto it is not refused.
    /// Before, the record kept only what was mounted at that moment, and
    /// the gate took pushes into the directory under the volume.
    #[tokio::test]
    async fn a_damaged_record_keeps_refusing_pushes_into_a_directory_not_mounted() {
        let state = tempfile::tempdir().unwrap();
        let data = state.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            state.path().join(FILE_NAME),
            b"{\"mounted\": {\"web\": \"/sr",
        )
        .unwrap();
        let dirs = [
            Dir {
                group: "root".into(),
                path: PathBuf::from("/"),
                declared: false,
            },
            dir(&data, false),
        ];
        let recorded = note(state.path(), &dirs).unwrap();
        assert_eq!(recorded, ["root"]);
        let e = unmounted(state.path(), "web", &data, false)
            .expect_err("a push into a directory the damaged record may have known was let in");
        assert!(
            e.contains("may have been a mount point") && e.contains("is not one now"),
            "{e}"
        );
        unmounted(state.path(), "root", Path::new("/"), false).unwrap();
        before_promote(state.path(), &dirs, "web").await.unwrap();
        // Read again at the next look: still unsure, still refused.
        assert_eq!(note(state.path(), &dirs).unwrap(), ["root"]);
        assert!(unmounted(state.path(), "web", &data, false).is_err());
        // Seen mounted: recorded as any other volume, and a push into it
        // refused again once it is gone.
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&data)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs"
            );
            eprintln!("note: cannot mount a tmpfs (not root?), skipping the rest");
            return;
        }
        let recorded = note(state.path(), &dirs);
        let pushed = unmounted(state.path(), "web", &data, false);
        let _ = std::process::Command::new("umount").arg(&data).status();
        assert_eq!(recorded.unwrap(), ["root", "web"]);
        pushed.unwrap();
        let e = unmounted(state.path(), "web", &data, false).unwrap_err();
        assert!(e.contains("was a mount point and is not one now"), "{e}");
        let body = std::fs::read_to_string(state.path().join(FILE_NAME)).unwrap();
        assert!(!body.contains("unsure"), "{body}");
    }

    /// The record damaged while the agent runs, every directory already
    /// recorded: the next look rewrites it whole, so a promote is not
    /// refused for it and pushes into a recorded directory not mounted now
    /// stay refused. Before, a look noted only directories not recorded
    /// yet: the damaged file stayed, and every promote was refused ("cannot
    /// be read") until the agent restarted.
    #[tokio::test]
    async fn a_record_damaged_while_the_agent_runs_is_rewritten_whole() {
        let state = tempfile::tempdir().unwrap();
        let data = state.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let dirs = [
            Dir {
                group: "root".into(),
                path: PathBuf::from("/"),
                declared: false,
            },
            dir(&data, false),
        ];
        // web recorded by an earlier look, its volume gone since
        let body = format!(
            r#"{{"mounted": {{"root": "/", "web": "{}"}}}}"#,
            data.display()
        );
        std::fs::write(state.path().join(FILE_NAME), body).unwrap();
        let (recorded, _) = look(state.path(), &dirs, Vec::new());
        assert_eq!(recorded, ["root", "web"]);
        std::fs::write(state.path().join(FILE_NAME), b"{\"mounted\": {\"ro").unwrap();
        let (recorded, unfit) = look(state.path(), &dirs, recorded);
        before_promote(state.path(), &dirs, "root")
            .await
            .expect("a promote refused for a damaged record");
        before_promote(state.path(), &dirs, "web").await.unwrap();
        let e = unmounted(state.path(), "web", &data, false).unwrap_err();
        assert!(e.contains("may have been a mount point"), "{e}");
        assert_eq!(recorded, ["root"]);
        assert!(unfit.is_empty(), "{unfit:?}");
    }
}
