//! The authority's rules, applied before and after every command: the
//! highest epoch raised on disk before acting ([`Authority::admit`]; by
//! the orchestrator's answers in `told.rs`), a promote's role on disk before its hooks
//! ([`Authority::promoting`]), what a successful command changed
//! ([`Authority::record`]), and whether a push still stands
//! ([`Authority::still_active`]).

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::{Authority, DemoteMark, Role};
use crate::wire::{Command, CommandKind};

/// The highest epoch an order may carry ([`warden_proto::EPOCH_CEILING`]):
/// no orchestrator decides one above it, so one above is refused in
/// orders and never raised to, whoever says it.
pub(crate) const FINAL_EPOCH: u64 = warden_proto::EPOCH_CEILING;

impl Authority {
    /// Raise the highest epochs to what the orchestrator says is current:
    /// on disk first, then here. When the file cannot be written nothing is
    /// raised (a command at the new epoch then raises and persists it itself,
    /// or is refused), so this agent never holds an epoch it would forget at
    /// a restart and then let an older order through.
    ///
    /// The answer of a single orchestrator (leader term 0), taken as
    /// [`Self::answered`] takes it: one that carries epochs no lower than
    /// those on disk, and whose epochs are on disk, is the orchestrator's
    /// word since the agent started (the `untold` marker goes, `told.rs`).
    /// A follower's answer carries none and says nothing.
    pub fn observe(&self, epochs: &BTreeMap<String, u64>) -> super::Heard {
        let answer = crate::wire::ReportResponse {
            epochs: epochs.clone(),
            ..Default::default()
        };
        self.answered(&answer, "the orchestrator")
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
        // No leader can have issued it: a move after it would need an
        // epoch above it, and there is none. Kept, it would make this
        // agent refuse every later order until its state file was edited
        // by hand.
        if let Some(why) = warden_proto::epoch_beyond_reach(cmd.epoch) {
            return Err(format!("refused: {}: {why}", cmd.id));
        }
        let mut g = self.lock();
        // Its state file still remembers a group the site was taken out
        // of (an orchestrator whose config still has the site in it).
        let in_config = self.configured.contains(&cmd.group);
        let Some(a) = g.get_mut(&cmd.group).filter(|_| in_config) else {
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
            match self.save(&next) {
                Ok(()) => *g = next,
                // A demote is the safe direction: a site whose disk is full
                // (often why it is failed away from) still stops taking
                // users' writes. Its epoch is written with its record
                // ([`Self::record`]); meanwhile nothing is raised unwritten.
                Err(e) if cmd.kind == CommandKind::Demote => {
                    warn!(path = %self.path.display(), cause = %e, command = %cmd.id, "cannot persist the demote's epoch before acting; demoting all the same");
                }
                Err(e) => {
                    return Err(format!(
                        "refused: cannot persist epoch {} before acting: {e}",
                        cmd.epoch
                    ))
                }
            }
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
        // Normally raised before acting already; a demote that could not
        // write it then writes it now, with what it changed.
        a.epoch = a.epoch.max(cmd.epoch);
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
}
