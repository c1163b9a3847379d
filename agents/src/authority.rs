//! The agent's memory of authority (DESIGN §10): per group, the highest epoch
//! it has seen, its last role and whether it may push replicated data, kept
//! on disk so that a restart forgets nothing.
//!
//! Rules, applied before any command runs:
//! - a command for another site, or for a group this site is not in, is refused;
//! - a command below the highest epoch seen is refused (the outcome says so);
//!   the highest epoch is raised, and written to disk, *before* a command runs,
//!   so a replayed older id is refused even after a crash mid-command;
//! - a demote at the highest epoch or above always runs;
//! - a site that was demoted (failed away from) never pushes data again until
//!   a resync for a newer epoch than that demote has completed here
//!   (`start_replication` is refused until then).
//!
//! The state file is written whole to a temporary file, fsync'd, and renamed.
//! A lost state file is told from a first start by the agent's `agent.site`
//! marker, written beside it at the first start and never removed: with the
//! marker and without the file, every group's role starts as
//! [`Role::Unknown`], never as the configured one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::error::AgentError;
use crate::wire::{AuthorityWire, Command, CommandKind};

/// A site's last role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Active,
    Standby,
    /// Forgotten: the state file was lost from a state directory in use
    /// (a restored disk, a file removed by hand). The site may have been
    /// made active or failed away from since the config was written, so
    /// the configured role proves nothing: the gate refuses pushes into
    /// it, and the orchestrator says again what it is (a promote where it
    /// is the active site, a demote elsewhere).
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
            Role::Unknown => "unknown",
        }
    }
}

/// What the agent remembers of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAuthority {
    pub epoch: u64,
    pub role: Role,
    /// Epoch of the last successful demote.
    #[serde(default)]
    pub demoted_at: Option<u64>,
    /// Epoch of the last completed resync (final sync) at this site.
    #[serde(default)]
    pub resynced_at: Option<u64>,
    /// The last demote, undoable: a promote at its very epoch is a runbook
    /// rolled back before its switch (`promote_back`), when no other site
    /// took users' writes, and restores what the demote replaced. Absent
    /// (a file of an older agent): nothing is restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_demote: Option<DemoteMark>,
}

/// A demote at `epoch`, and the `demoted_at` it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoteMark {
    pub epoch: u64,
    pub replaced: Option<u64>,
}

impl GroupAuthority {
    /// A known role, and no demote since the last resync for a newer epoch.
    pub fn may_push(&self) -> bool {
        if self.role == Role::Unknown {
            return false;
        }
        match self.demoted_at {
            None => true,
            Some(d) => self.resynced_at.is_some_and(|r| r > d),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    site: String,
    groups: BTreeMap<String, GroupAuthority>,
}

/// The state file's name in the site's `state_dir`.
const FILE_NAME: &str = "authority.json";

/// Written beside the state file at the first start and never removed: a
/// directory that has it but no state file lost that file (its roles are
/// forgotten), while an empty one is a first start.
const MARKER_NAME: &str = "agent.site";

fn state_error(path: &Path, detail: String) -> AgentError {
    AgentError::State {
        path: path.display().to_string(),
        detail,
    }
}

/// The state file of `site` at `path`, checked; `None` when there is none.
fn read_file(path: &Path, site: &str) -> Result<Option<File>, AgentError> {
    let fail = |detail: String| state_error(path, detail);
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let file = serde_json::from_slice::<File>(&bytes).map_err(|e| {
        fail(format!(
            "unreadable ({e}); move it aside only if you know this site's role"
        ))
    })?;
    // Every file this agent writes names its site.
    if file.site.is_empty() {
        return Err(fail(
            "it names no site (edited by hand?): it cannot be known to be this \
             site's; move it aside only if you know this site's role"
                .into(),
        ));
    }
    if file.site != site {
        return Err(fail(format!(
            "it belongs to site {:?}, not {site:?}: give every site its own state_dir",
            file.site
        )));
    }
    Ok(Some(file))
}

/// What the agent of `site` remembers, per group, as its state file in
/// `dir` says now: read only, for another process of the site (the rsync
/// daemon's gate). No file is an error: that state is unknown.
pub fn read(dir: &Path, site: &str) -> Result<BTreeMap<String, GroupAuthority>, AgentError> {
    let path = dir.join(FILE_NAME);
    match read_file(&path, site)? {
        Some(file) => Ok(file.groups),
        None => Err(state_error(
            &path,
            "there is none: the agent of this site has never started with this state_dir".into(),
        )),
    }
}

/// The agent's authority state, shared by its tasks.
#[derive(Debug)]
pub struct Authority {
    site: String,
    path: PathBuf,
    groups: Mutex<BTreeMap<String, GroupAuthority>>,
}

impl Authority {
    /// Load (or start) the state of `site` in `dir`. `groups` are the site's
    /// groups with their primary site: a group never seen before starts at
    /// epoch 0, `active` at its primary and `standby` elsewhere.
    pub fn open(dir: &Path, site: &str, groups: &[(String, String)]) -> Result<Self, AgentError> {
        let path = dir.join(FILE_NAME);
        std::fs::create_dir_all(dir)
            .map_err(|e| state_error(&path, format!("cannot create it: {e}")))?;
        // Without the state file, the marker tells a lost file (roles
        // forgotten) from a first start. Other files prove nothing: a
        // volume's lost+found, a packager's placeholder, a shared
        // directory.
        let mut forgotten = false;
        let mut file = match read_file(&path, site)? {
            Some(file) => file,
            None => {
                forgotten = dir.join(MARKER_NAME).exists();
                if forgotten {
                    tracing::warn!(path = %path.display(), "authority.json is missing from a state directory that is in use: this site's roles are unknown until the orchestrator says them again (a promote where it is active, a demote elsewhere); until then the rsync gate refuses pushes into it");
                }
                File::default()
            }
        };
        for (group, primary) in groups {
            file.groups
                .entry(group.clone())
                .or_insert_with(|| GroupAuthority {
                    epoch: 0,
                    role: if forgotten {
                        Role::Unknown
                    } else if primary == site {
                        Role::Active
                    } else {
                        Role::Standby
                    },
                    demoted_at: None,
                    resynced_at: None,
                    last_demote: None,
                });
        }
        let a = Authority {
            site: site.to_string(),
            path,
            groups: Mutex::new(file.groups),
        };
        a.save(&a.lock())
            .map_err(|detail| state_error(&a.path, detail))?;
        let marker = dir.join(MARKER_NAME);
        warden_config::durable::mark(&marker, format!("{site}\n").as_bytes())
            .map_err(|e| state_error(&marker, format!("cannot write it: {e}")))?;
        Ok(a)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, GroupAuthority>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, groups: &BTreeMap<String, GroupAuthority>) -> Result<(), String> {
        let file = File {
            site: self.site.clone(),
            groups: groups.clone(),
        };
        let body = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        warden_config::durable::replace(&self.path, &body).map_err(|e| e.to_string())
    }

    /// Raise the highest epochs to what the orchestrator says is current:
    /// on disk first, then here. When the file cannot be written nothing is
    /// raised (a command at the new epoch then raises and persists it itself,
    /// or is refused), so this agent never holds an epoch it would forget at
    /// a restart and then let an older order through.
    pub fn observe(&self, epochs: &BTreeMap<String, u64>) {
        let mut g = self.lock();
        let mut next = g.clone();
        let mut changed = false;
        for (group, &epoch) in epochs {
            if let Some(a) = next.get_mut(group) {
                if epoch > a.epoch {
                    a.epoch = epoch;
                    changed = true;
                }
            }
        }
        if changed {
            match self.save(&next) {
                Ok(()) => *g = next,
                Err(e) => {
                    warn!(path = %self.path.display(), cause = %e, "cannot persist the highest epochs seen; not raised")
                }
            }
        }
    }

    /// May `cmd` run here? Raises (and persists) the highest epoch when it
    /// may; `Err` is the refusal, said in the command's outcome.
    pub fn admit(&self, cmd: &Command) -> Result<(), String> {
        if cmd.site.is_empty() {
            return Err(format!(
                "refused: {} names no site; an order must say which site it is for",
                cmd.id
            ));
        }
        if cmd.site != self.site {
            return Err(format!(
                "refused: {} is addressed to site {:?}, this agent is site {:?}",
                cmd.id, cmd.site, self.site
            ));
        }
        let mut g = self.lock();
        let Some(a) = g.get_mut(&cmd.group) else {
            return Err(format!(
                "refused: site {} is not in group {:?}",
                self.site, cmd.group
            ));
        };
        if cmd.epoch < a.epoch {
            return Err(format!(
                "refused: {} carries epoch {}, older than epoch {} this agent has already seen for group {} \
                 (a stale or replayed order)",
                cmd.id, cmd.epoch, a.epoch, cmd.group
            ));
        }
        if cmd.kind == CommandKind::StartReplication && a.role == Role::Unknown {
            return Err(format!(
                "refused: site {}'s role in group {} is unknown (its authority state was lost): \
                 it pushes nothing until the orchestrator has promoted it again",
                self.site, cmd.group
            ));
        }
        // After `warden resync` the peer was resynced from this site, the
        // active one: what the peer wrote on its own is safe there.
        let peer_resynced = cmd.peer_resynced && a.role == Role::Active;
        if cmd.kind == CommandKind::StartReplication && !a.may_push() && !peer_resynced {
            return Err(format!(
                "refused: site {} was demoted at epoch {} (failed away from) and has not completed a resync \
                 for a newer epoch since; it must not push its data to the peer",
                self.site,
                a.demoted_at.unwrap_or_default()
            ));
        }
        if cmd.epoch > a.epoch {
            // On disk before in memory: a failed write leaves both as they
            // were, so the next command at this epoch is refused again
            // instead of passing as "not newer".
            let mut next = g.clone();
            if let Some(a) = next.get_mut(&cmd.group) {
                a.epoch = cmd.epoch;
            }
            self.save(&next).map_err(|e| {
                format!(
                    "refused: cannot persist epoch {} before acting: {e}",
                    cmd.epoch
                )
            })?;
            *g = next;
        }
        Ok(())
    }

    /// A promote about to run its hooks: its role, `active`, on disk now
    /// (and here), before anything opens the site to users' writes, so the
    /// rsync gate refuses every push into the site from this moment — the
    /// promote then ends the pushes already running (`Replication::promoted`).
    /// The rest of the promote is recorded when it succeeds ([`Self::record`]);
    /// a promote that fails keeps the role (pushes stay refused: the safe
    /// side) until the orchestrator says otherwise (a site reporting
    /// `active` where another is the group's active site is demoted). An
    /// error when the file cannot be written: nothing changed, and the
    /// promote must not open the site while the gate still sees a standby.
    /// Anything but a promote changes nothing.
    pub fn promoting(&self, cmd: &Command) -> Result<(), String> {
        if cmd.kind != CommandKind::Promote {
            return Ok(());
        }
        let mut g = self.lock();
        let Some(a) = g.get(&cmd.group) else {
            return Ok(());
        };
        if a.role == Role::Active {
            return Ok(());
        }
        let mut next = g.clone();
        if let Some(a) = next.get_mut(&cmd.group) {
            a.role = Role::Active;
        }
        self.save(&next).map_err(|e| {
            format!(
                "cannot write role active (epoch {}) to {} before opening the site: {e}; \
                 the promote's hooks did not run",
                cmd.epoch,
                self.path.display()
            )
        })?;
        *g = next;
        info!(group = %cmd.group, epoch = cmd.epoch, "role active on disk: pushes into this site are refused from now on");
        Ok(())
    }

    /// Record what a successful command changed, durably: an error when the
    /// state file cannot be written, and then nothing changed (memory stays
    /// what the file — the rsync gate's view — says), so that a promote the
    /// site could not record is not reported as done while the gate still
    /// sees a standby that takes pushes.
    pub fn record(&self, cmd: &Command) -> Result<(), String> {
        let mut g = self.lock();
        let Some(a) = g.get_mut(&cmd.group) else {
            return Ok(());
        };
        let before = a.clone();
        match cmd.kind {
            CommandKind::Promote => {
                a.role = Role::Active;
                // Promoted back at the epoch it was demoted at: the runbook
                // rolled back before its switch (no other site took users'
                // writes), so the demote no longer bars pushing — but what
                // barred it before that demote still does.
                if let Some(m) = a.last_demote.take() {
                    if m.epoch == cmd.epoch && a.demoted_at == Some(m.epoch) {
                        a.demoted_at = m.replaced;
                    }
                }
            }
            CommandKind::Demote => {
                a.role = Role::Standby;
                let replaced = a.demoted_at;
                a.demoted_at = Some(a.demoted_at.map_or(cmd.epoch, |d| d.max(cmd.epoch)));
                if a.demoted_at != replaced {
                    a.last_demote = Some(DemoteMark {
                        epoch: cmd.epoch,
                        replaced,
                    });
                }
            }
            CommandKind::FinalSync => {
                a.resynced_at = Some(a.resynced_at.map_or(cmd.epoch, |r| r.max(cmd.epoch)));
            }
            // The peer was resynced from this active site (`warden resync`):
            // pushing to it is as safe as after a final pass of its own.
            CommandKind::StartReplication if cmd.peer_resynced && a.role == Role::Active => {
                a.resynced_at = Some(a.resynced_at.map_or(cmd.epoch, |r| r.max(cmd.epoch)));
            }
            _ => {}
        }
        if *a == before {
            return Ok(());
        }
        let (role, may_push) = (a.role.as_str(), a.may_push());
        if let Err(e) = self.save(&g) {
            warn!(path = %self.path.display(), cause = %e, "cannot persist the authority state; the change is not made");
            if let Some(a) = g.get_mut(&cmd.group) {
                *a = before;
            }
            return Err(format!(
                "the new authority state (role {role}, epoch {}) could not be written to {}: {e}",
                cmd.epoch,
                self.path.display()
            ));
        }
        info!(group = %cmd.group, epoch = cmd.epoch, role, may_push, "authority state changed");
        Ok(())
    }

    /// Does an order of `group` at `epoch` that made this site push (a
    /// start) still stand? `Err` says why not: this site is no longer
    /// `active` in the group (demoted, or its role forgotten), or a newer
    /// epoch is known (a promote elsewhere, seen in a command or in the
    /// orchestrator's answer). A group this agent does not know: it stands
    /// (nothing to judge by). Memory only.
    pub fn still_active(&self, group: &str, epoch: u64) -> Result<(), String> {
        let g = self.lock();
        let Some(a) = g.get(group) else {
            return Ok(());
        };
        if a.epoch > epoch {
            return Err(format!(
                "epoch {} of group {group} is known at site {}, newer than the order's epoch {epoch}",
                a.epoch, self.site
            ));
        }
        if a.role != Role::Active {
            return Err(format!(
                "site {} is no longer active in group {group} (its role is {})",
                self.site,
                a.role.as_str()
            ));
        }
        Ok(())
    }

    /// What the agent reports.
    pub fn wire(&self) -> Vec<AuthorityWire> {
        self.lock()
            .iter()
            .map(|(group, a)| AuthorityWire {
                group: group.clone(),
                epoch: a.epoch,
                role: a.role.as_str().to_string(),
                demoted_at: a.demoted_at,
                may_push: a.may_push(),
                unfit: None,
            })
            .collect()
    }

    /// One group's state (tests, status).
    pub fn get(&self, group: &str) -> Option<GroupAuthority> {
        self.lock().get(group).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<(String, String)> {
        vec![("web".into(), "a".into())]
    }

    fn cmd(epoch: u64, kind: CommandKind, site: &str) -> Command {
        Command::new("web", epoch, kind).to_site(site)
    }

    #[test]
    fn a_start_stands_while_the_site_is_active_at_its_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        let start = cmd(1, CommandKind::StartReplication, "a");
        a.admit(&start).unwrap();
        assert_eq!(a.still_active("web", 1), Ok(()));
        assert_eq!(a.still_active("other", 1), Ok(()), "nothing to judge by");
        // a newer epoch seen in the orchestrator's answer: superseded
        a.observe(&[("web".to_string(), 2)].into());
        let why = a.still_active("web", 1).unwrap_err();
        assert!(why.contains("epoch 2 of group web is known"), "{why}");
        assert_eq!(a.still_active("web", 2), Ok(()));
        // demoted: no order of this site's stands
        let demote = cmd(2, CommandKind::Demote, "a");
        a.admit(&demote).unwrap();
        a.record(&demote).unwrap();
        let why = a.still_active("web", 2).unwrap_err();
        assert!(why.contains("no longer active"), "{why}");
    }

    #[test]
    fn older_epochs_are_refused_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        assert_eq!(
            a.get("web").unwrap().role,
            Role::Active,
            "the primary starts active"
        );
        a.admit(&cmd(3, CommandKind::Promote, "a")).unwrap();
        drop(a);
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        let e = a.admit(&cmd(2, CommandKind::Promote, "a")).unwrap_err();
        assert!(e.contains("epoch 2, older than epoch 3"), "{e}");
        // Same epoch (several commands of one runbook) is fine.
        a.admit(&cmd(3, CommandKind::Demote, "a")).unwrap();
        // A replayed or late journal order (it stops this site's push) is
        // refused like any other, and so is one addressed to another site.
        let e = a.admit(&cmd(2, CommandKind::Journal, "a")).unwrap_err();
        assert!(e.contains("stale or replayed"), "{e}");
        let e = a.admit(&cmd(3, CommandKind::Journal, "b")).unwrap_err();
        assert!(e.contains("addressed to site"), "{e}");
        // An order that names no site is addressed to nobody: refused too.
        let e = a.admit(&cmd(3, CommandKind::Journal, "")).unwrap_err();
        assert!(e.contains("names no site"), "{e}");
        a.admit(&cmd(3, CommandKind::Journal, "a")).unwrap();
        // The release of a held mass-delete guard is an order too: a
        // deposed leader's late `clear` (older epoch) lets nothing go.
        let e = a.admit(&cmd(2, CommandKind::Clear, "a")).unwrap_err();
        assert!(e.contains("stale or replayed"), "{e}");
        a.admit(&cmd(3, CommandKind::Clear, "a")).unwrap();
    }

    #[test]
    fn the_orchestrators_epochs_raise_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "b", &groups()).unwrap();
        assert_eq!(a.get("web").unwrap().role, Role::Standby);
        a.observe(&BTreeMap::from([
            ("web".to_string(), 5),
            ("other".to_string(), 9),
        ]));
        assert!(a.admit(&cmd(4, CommandKind::Promote, "b")).is_err());
        a.admit(&cmd(5, CommandKind::Promote, "b")).unwrap();
        assert!(
            a.get("other").is_none(),
            "groups of other sites are not kept"
        );
    }

    #[test]
    fn commands_for_another_site_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        let e = a.admit(&cmd(2, CommandKind::Promote, "b")).unwrap_err();
        assert!(e.contains("addressed to site \"b\""), "{e}");
        let e = a
            .admit(&Command::new("nope", 2, CommandKind::Promote).to_site("a"))
            .unwrap_err();
        assert!(e.contains("not in group"), "{e}");
    }

    /// A runbook rolled back before its switch promotes the old active site
    /// again at the epoch it demoted it at: that site may push again (no
    /// other site took users' writes), across a restart — but a bar from an
    /// earlier demote, never resynced, stays.
    #[test]
    fn a_demote_rolled_back_at_its_own_epoch_lets_the_site_push_again() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        for c in [
            cmd(3, CommandKind::Demote, "a"),
            cmd(3, CommandKind::Promote, "a"),
        ] {
            a.admit(&c).unwrap();
            a.record(&c).unwrap();
        }
        drop(a);
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        a.admit(&cmd(3, CommandKind::StartReplication, "a"))
            .unwrap();
        assert!(a.wire()[0].may_push);

        // Failed away from at 4 and never resynced; promoted at 6 (a failover
        // back to it), then a switchover at 7 rolled back: still barred.
        for c in [
            cmd(4, CommandKind::Demote, "a"),
            cmd(6, CommandKind::Promote, "a"),
            cmd(7, CommandKind::Demote, "a"),
            cmd(7, CommandKind::Promote, "a"),
        ] {
            a.admit(&c).unwrap();
            a.record(&c).unwrap();
        }
        let e = a
            .admit(&cmd(7, CommandKind::StartReplication, "a"))
            .unwrap_err();
        assert!(e.contains("demoted at epoch 4"), "{e}");
        // A promote at a later epoch than the demote is no roll-back.
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        for c in [
            cmd(3, CommandKind::Demote, "a"),
            cmd(5, CommandKind::Promote, "a"),
        ] {
            a.admit(&c).unwrap();
            a.record(&c).unwrap();
        }
        assert!(a
            .admit(&cmd(5, CommandKind::StartReplication, "a"))
            .is_err());
    }

    /// A promote whose new role cannot be written fails, and changes
    /// nothing: the agent's memory and the gate's read of the file both
    /// still say standby (pushes into the site are what a standby takes).
    #[test]
    fn a_role_that_cannot_be_written_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "b", &groups()).unwrap();
        let promote = cmd(4, CommandKind::Promote, "b");
        a.admit(&promote).unwrap();
        // The next write's temporary file cannot be created.
        let tmp = dir
            .path()
            .join(format!("authority.json.tmp.{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        let e = a.record(&promote).unwrap_err();
        assert!(
            e.contains("role active, epoch 4") && e.contains("authority.json"),
            "{e}"
        );
        assert_eq!(a.get("web").unwrap().role, Role::Standby);
        assert_eq!(a.wire()[0].role, "standby");
        let on_disk = read(dir.path(), "b").unwrap();
        assert_eq!(on_disk["web"].role, Role::Standby);
        assert_eq!(
            on_disk["web"].epoch, 4,
            "the epoch was written before acting"
        );
        // Once the disk takes writes again, the same promote is recorded.
        std::fs::remove_dir(&tmp).unwrap();
        a.record(&promote).unwrap();
        assert_eq!(read(dir.path(), "b").unwrap()["web"].role, Role::Active);
    }

    /// A promote's role is on disk before its hooks run (the gate refuses
    /// pushes from then on), or the promote does not go on; the rest of it
    /// (a demote rolled back) is recorded when it succeeds.
    #[test]
    fn a_promotes_role_is_on_disk_before_its_hooks() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        let demote = cmd(3, CommandKind::Demote, "a");
        a.admit(&demote).unwrap();
        a.record(&demote).unwrap();
        let promote = cmd(3, CommandKind::Promote, "a");
        a.admit(&promote).unwrap();
        // Not a promote: nothing changes.
        a.promoting(&cmd(3, CommandKind::Demote, "a")).unwrap();
        assert_eq!(read(dir.path(), "a").unwrap()["web"].role, Role::Standby);
        // A file that cannot be written: refused, nothing changed.
        let tmp = dir
            .path()
            .join(format!("authority.json.tmp.{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        let e = a.promoting(&promote).unwrap_err();
        assert!(e.contains("hooks did not run"), "{e}");
        assert_eq!(a.get("web").unwrap().role, Role::Standby);
        std::fs::remove_dir(&tmp).unwrap();
        a.promoting(&promote).unwrap();
        let on_disk = read(dir.path(), "a").unwrap();
        assert_eq!(on_disk["web"].role, Role::Active);
        assert_eq!(on_disk["web"].demoted_at, Some(3), "only the role so far");
        assert!(!a.wire()[0].may_push);
        // The promote succeeds: a roll-back of the demote at its epoch.
        a.record(&promote).unwrap();
        assert_eq!(read(dir.path(), "a").unwrap()["web"].demoted_at, None);
        assert!(a.wire()[0].may_push);
    }

    /// An epoch this agent could not write down is not held in memory
    /// either: neither the orchestrator's word (`observe`) nor a command
    /// raises it unwritten, so the next order at that epoch is refused
    /// until the disk takes it, and a restart cannot forget an epoch the
    /// agent acted on (an older order would then pass).
    #[test]
    fn an_epoch_that_cannot_be_written_is_not_raised() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "b", &groups()).unwrap();
        a.admit(&cmd(4, CommandKind::Promote, "b")).unwrap();
        let tmp = dir
            .path()
            .join(format!("authority.json.tmp.{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        a.observe(&BTreeMap::from([("web".to_string(), 5)]));
        assert_eq!(a.get("web").unwrap().epoch, 4, "not raised unwritten");
        let e = a.admit(&cmd(5, CommandKind::Promote, "b")).unwrap_err();
        assert!(e.contains("cannot persist epoch 5"), "{e}");
        let e = a.admit(&cmd(5, CommandKind::Promote, "b")).unwrap_err();
        assert!(e.contains("cannot persist epoch 5"), "refused again: {e}");
        assert_eq!(a.get("web").unwrap().epoch, 4);
        // The disk is back: the order at 5 is written, then admitted, and
        // a restart still refuses the older one.
        std::fs::remove_dir(&tmp).unwrap();
        a.admit(&cmd(5, CommandKind::Promote, "b")).unwrap();
        drop(a);
        let a = Authority::open(dir.path(), "b", &groups()).unwrap();
        let e = a.admit(&cmd(4, CommandKind::Demote, "b")).unwrap_err();
        assert!(e.contains("older than epoch 5"), "{e}");
    }

    #[test]
    fn a_demoted_site_pushes_only_after_a_newer_resync() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        a.admit(&cmd(1, CommandKind::StartReplication, "a"))
            .unwrap();
        let demote = cmd(2, CommandKind::Demote, "a");
        a.admit(&demote).unwrap();
        a.record(&demote).unwrap();
        let e = a
            .admit(&cmd(2, CommandKind::StartReplication, "a"))
            .unwrap_err();
        assert!(e.contains("demoted at epoch 2"), "{e}");
        // A resync at the same epoch as the demote does not count…
        a.record(&cmd(2, CommandKind::FinalSync, "a")).unwrap();
        assert!(a
            .admit(&cmd(2, CommandKind::StartReplication, "a"))
            .is_err());
        // …one for a newer epoch does, and survives a restart.
        let fs = cmd(3, CommandKind::FinalSync, "a");
        a.admit(&fs).unwrap();
        a.record(&fs).unwrap();
        drop(a);
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        a.admit(&cmd(3, CommandKind::StartReplication, "a"))
            .unwrap();
        let w = a.wire();
        assert_eq!(w[0].role, "standby");
        assert!(w[0].may_push);
    }

    /// Failed away from (demoted at 2), made active again by a failover
    /// back (promoted at 4): it pushes only once the orchestrator says its
    /// peer was resynced from it (`warden resync`), never on a plain start,
    /// and never as a standby; from then on plain starts are admitted.
    #[test]
    fn a_site_promoted_after_its_demote_pushes_once_its_peer_was_resynced_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        let demote = cmd(2, CommandKind::Demote, "a");
        a.admit(&demote).unwrap();
        a.record(&demote).unwrap();
        let mut vouched = cmd(3, CommandKind::StartReplication, "a");
        vouched.peer_resynced = true;
        let e = a.admit(&vouched).unwrap_err();
        assert!(e.contains("demoted at epoch 2"), "a standby never: {e}");
        let promote = cmd(4, CommandKind::Promote, "a");
        a.admit(&promote).unwrap();
        a.record(&promote).unwrap();
        let e = a
            .admit(&cmd(4, CommandKind::StartReplication, "a"))
            .unwrap_err();
        assert!(e.contains("demoted at epoch 2"), "{e}");
        // The order of an older epoch (a replay, a deposed leader's) is
        // refused even with the peer's word.
        let mut replayed = cmd(3, CommandKind::StartReplication, "a");
        replayed.peer_resynced = true;
        let e = a.admit(&replayed).unwrap_err();
        assert!(e.contains("epoch 3, older than epoch 4"), "{e}");
        let mut vouched = cmd(5, CommandKind::StartReplication, "a");
        vouched.peer_resynced = true;
        a.admit(&vouched).unwrap();
        a.record(&vouched).unwrap();
        drop(a);
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        a.admit(&cmd(5, CommandKind::StartReplication, "a"))
            .expect("a plain start after the agent restarted");
        assert!(a.wire()[0].may_push);
    }

    /// A state file lost from a directory in use: every role is unknown
    /// (the configured one proves nothing), nothing is pushed, and the
    /// orchestrator's promote or demote makes it known again. A first
    /// start (no marker, whatever else the directory holds) takes the
    /// configured roles.
    #[test]
    fn a_lost_state_file_forgets_the_roles_until_the_orchestrator_says_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        assert_eq!(a.get("web").unwrap().role, Role::Active, "first start");
        let demote = cmd(4, CommandKind::Demote, "a");
        a.admit(&demote).unwrap();
        a.record(&demote).unwrap();
        drop(a);
        // Only the state file goes: the agent's marker says the directory
        // was in use.
        std::fs::remove_file(dir.path().join("authority.json")).unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        let w = a.wire();
        assert_eq!((w[0].role.as_str(), w[0].may_push), ("unknown", false));
        assert_eq!(read(dir.path(), "a").unwrap()["web"].role, Role::Unknown);
        let e = a
            .admit(&cmd(0, CommandKind::StartReplication, "a"))
            .unwrap_err();
        assert!(e.contains("role in group web is unknown"), "{e}");
        // The orchestrator says its epoch, then demotes it again there.
        a.observe(&BTreeMap::from([("web".to_string(), 4)]));
        let again = cmd(4, CommandKind::Demote, "a");
        a.admit(&again).unwrap();
        a.record(&again).unwrap();
        let w = a.wire();
        assert_eq!((w[0].role.as_str(), w[0].may_push), ("standby", false));
        // Where it is the active site, a promote makes it active again.
        let dir = tempfile::tempdir().unwrap();
        drop(Authority::open(dir.path(), "b", &groups()).unwrap());
        std::fs::remove_file(dir.path().join("authority.json")).unwrap();
        let b = Authority::open(dir.path(), "b", &groups()).unwrap();
        assert_eq!(b.get("web").unwrap().role, Role::Unknown);
        let promote = cmd(6, CommandKind::Promote, "b");
        b.admit(&promote).unwrap();
        b.record(&promote).unwrap();
        assert_eq!(read(dir.path(), "b").unwrap()["web"].role, Role::Active);
        b.admit(&cmd(6, CommandKind::StartReplication, "b"))
            .unwrap();
        // Other files in a directory without the marker are no sign of
        // use (a volume's lost+found): a first start.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lost+found")).unwrap();
        let a = Authority::open(dir.path(), "a", &groups()).unwrap();
        assert_eq!(a.get("web").unwrap().role, Role::Active);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("agent.site")).unwrap(),
            "a\n"
        );
    }

    #[test]
    fn a_state_dir_of_another_site_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Authority::open(dir.path(), "a", &groups()).unwrap();
        let e = Authority::open(dir.path(), "b", &groups()).unwrap_err();
        assert!(e.to_string().contains("belongs to site \"a\""), "{e}");
    }

    #[test]
    fn a_state_file_that_names_no_site_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("authority.json");
        let text = r#"{"site": "", "groups": {"web": {"epoch": 9, "role": "active"}}}"#;
        std::fs::write(&file, text).unwrap();
        let e = Authority::open(dir.path(), "a", &groups()).unwrap_err();
        assert!(e.to_string().contains("names no site"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            text,
            "left as it was"
        );
    }
}
