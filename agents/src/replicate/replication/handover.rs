//! The active site's part in a failback or switchover cut-over: it stops
//! pushing into the site that now pulls from it (`journal` command, and any
//! demote), keeps a [`ChangeJournal`] of its data from a mark taken before
//! the peer's resync, and answers the cut-over demote with the names
//! changed since that mark (read once, bounded). And the promoted site's
//! part: a pull into it stops, an rsync push into it still running from
//! before the promote ends (`rsync/receivers.rs`), and its containers are
//! fenced for the promote's epoch (`swift-container-sync`: keyed for it;
//! `swift`: marked active at it, so a deposed site's copier writes nothing
//! into them).

use super::*;
use crate::replicate::manifest::escape_name;

/// The most changed names a demote's outcome carries (more: a full final pass).
pub const JOURNAL_NAMES_MAX: usize = 2_000;

/// Their most bytes: the outcome travels in a report (64 KiB at most).
pub const JOURNAL_BYTES_MAX: usize = 24 * 1024;

impl Replication {
    /// Stops the group's continuous replication from this site, cancelling
    /// a start still in its initial pass (a demoted site, or one a peer now
    /// pulls from, must not push).
    pub(super) async fn stop_pushing(&self, g: &GroupRepl, group: &str) -> String {
        if let Some((kind, token)) = lock(&g.current).as_ref() {
            if *kind == CommandKind::StartReplication {
                token.cancel();
            }
        }
        let _one = g.busy.lock().await;
        self.stop(g, group).await
    }

    /// A demote at this site: its replication of `group` stops (see
    /// `stop_pushing`); what to say in the outcome. With the
    /// `swift-container-sync` plan always, whatever the role: after a
    /// restart the agent remembers none, while its containers may still
    /// point at the peer. `None` when nothing was to stop.
    pub async fn demoted(&self, group: &str) -> Option<String> {
        let g = self.groups.get(group)?;
        if g.cfg.plan == ReplicationPlan::Swift {
            // A promote's fence still retried here no longer matters: the
            // next active site's epoch supersedes it.
            self.headers_settled(g).await;
        }
        let running = matches!(lock(&g.run).role, Role::Source { .. })
            || lock(&g.current)
                .as_ref()
                .is_some_and(|(k, _)| *k == CommandKind::StartReplication);
        if running {
            return Some(self.stop_pushing(g, group).await);
        }
        // Not pushing as far as this agent knows (it may have restarted):
        // the `command` plan's stop runs all the same (what its start
        // launched may still push), without waiting behind a pull.
        if let Some(said) = self.stop_unheld(g, group).await {
            return Some(said);
        }
        // the headers go all the same, without waiting behind a pull that
        // may hold the group for minutes (it removed them when it began).
        let said = self.remove_sync_to(g, group).await?;
        Some(format!(
            "no replication was running from {}; {said}",
            self.site
        ))
    }

    /// A promote at this site: a resync or final pass still pulling the
    /// group's data from the peer into this site is stopped, and the
    /// promote waits until it has (a failback given up because the peer
    /// went down, then a failover here: from now on users write here, and
    /// the pull would overwrite or delete what they write). What to say in
    /// the outcome; `None` when nothing was pulling. A pull queued behind is
    /// refused when its turn comes (its epoch is older than the promote's).
    /// With the `swift-container-sync` plan, the site's containers are then
    /// keyed for `epoch`: a site keyed for an older one (the site failed
    /// away from, its containers still pointing here) can push nothing
    /// into them, whether or not its demote ever arrives; with the `swift`
    /// plan they are marked active at `epoch`, and the copier of an older
    /// start order (the site failed away from, still copying with this
    /// site's credentials) writes nothing more into them (a failure is
    /// retried, never fails the promote). With the `rsync` plan, every
    /// rsync still receiving a push into the group's directory here is
    /// ended (a push the gate let in while this site was a standby: the
    /// site failed away from, in the middle of a full pass): call this once
    /// the promote's role is on disk, so the gate refuses the pusher's next
    /// connection ([`crate::authority::Authority::promoting`]); said in the
    /// outcome, with a warning when this agent may not end them.
    pub async fn promoted(&self, group: &str, epoch: u64) -> Option<String> {
        let g = self.groups.get(group)?;
        let stopped = self.stop_pulling(g).await;
        self.drop_pull_log(g);
        let ended = self.end_pushes(g).await;
        let fenced = self.fence(g, group, epoch).await;
        let said: Vec<String> = [stopped, ended, fenced].into_iter().flatten().collect();
        (!said.is_empty()).then(|| said.join("; "))
    }

    /// The log a resync pull cut off by a kill left here (the rsync plan):
    /// once promoted, that resync is over — the site may stay active
    /// without pushing (replication paused) and a later failback's first
    /// pass would read the log as its own, every write made here since
    /// taken for what that pull fetched.
    fn drop_pull_log(&self, g: &GroupRepl) {
        if g.cfg.plan != ReplicationPlan::Rsync {
            return;
        }
        let Some(site) = g.cfg.sites.get(&self.site) else {
            return;
        };
        let Some(dir) = site.path.as_ref() else {
            return;
        };
        let manifest = crate::replicate::plan::manifest_path(site, dir);
        crate::replicate::rsync::resync::drop_stale_pull_log(&manifest);
    }

    /// The push part of [`Replication::promoted`] (the rsync plan).
    async fn end_pushes(&self, g: &GroupRepl) -> Option<String> {
        if g.cfg.plan != ReplicationPlan::Rsync {
            return None;
        }
        let dir = g.cfg.sites.get(&self.site)?.path.as_ref()?;
        crate::replicate::rsync::receivers::end_pushes_into(dir)
            .await
            .say(dir)
    }

    /// The pull part of [`Replication::promoted`].
    async fn stop_pulling(&self, g: &GroupRepl) -> Option<String> {
        let pulling = lock(&g.current).as_ref().and_then(|(kind, token)| {
            matches!(kind, CommandKind::Resync | CommandKind::FinalSync).then(|| {
                token.cancel();
                *kind
            })
        });
        if pulling.is_some() {
            let _one = g.busy.lock().await;
        }
        // No longer resyncing: a pull stopped here, or one that had failed
        // on its own (the status said `resync` until a next command).
        let mut run = lock(&g.run);
        if matches!(run.role, Role::Resync { .. }) && lock(&g.current).is_none() {
            run.role = Role::Idle;
        }
        pulling.map(|kind| {
            format!(
                "stopped the {} from the peer that was still running: this site's data is the group's from now on",
                kind.as_str()
            )
        })
    }

    /// Starts this site's change journal of the group's data (or keeps the
    /// one running): the outcome's detail and the journal's mark.
    pub(super) async fn journal_start(
        &self,
        g: &GroupRepl,
        cmd: &Command,
    ) -> Result<(String, JournalMark), String> {
        let running = lock(&g.journal).clone();
        if let Some(j) = running {
            let mark = j.mark_flushed().await?;
            return Ok((
                format!("change journal of {} already running", self.site),
                mark,
            ));
        }
        let paths =
            plan::journal_paths(&self.config, &cmd.group, &self.site).map_err(|e| e.to_string())?;
        let Some((root, barrier)) = paths else {
            return Err(format!(
                "the {} plan keeps no change journal: the final pass covers the whole tree",
                g.cfg.plan.as_str()
            ));
        };
        let j = tokio::task::spawn_blocking(move || ChangeJournal::start(&root, &barrier))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot start the change journal: {e}"))?;
        let j = Arc::new(j);
        let mark = j.mark_flushed().await?;
        *lock(&g.journal) = Some(j);
        info!(group = %cmd.group, journal = %format!("{:x}", mark.id), "change journal started");
        Ok((format!("change journal of {} started", self.site), mark))
    }

    /// What changed in the group's data here since `mark` (a demote at the
    /// cut-over asks, after its hooks stopped the writes). The journal is
    /// read once and dropped. `names: None` with the reason when it cannot
    /// say for certain, or when the list would be too long to carry.
    pub async fn journal_since(&self, group: &str, mark: JournalMark) -> JournalReport {
        let none = |note: String| JournalReport {
            mark,
            names: None,
            note,
        };
        let Some(g) = self.groups.get(group) else {
            return none(format!("group {group} has no replication plan here"));
        };
        let Some(j) = lock(&g.journal).take() else {
            return none(format!(
                "no change journal at {} (its agent restarted?)",
                self.site
            ));
        };
        let names = match j.since(mark).await {
            Ok(n) => n,
            Err(e) => return none(e),
        };
        if names.len() > JOURNAL_NAMES_MAX {
            return none(format!(
                "{} names changed, more than the {JOURNAL_NAMES_MAX} a demote carries",
                names.len()
            ));
        }
        // A changed file that has other names changed under all of them,
        // and the journal saw only the one written through: the full pass.
        // With or without `-H` (without, the returning site holds the other
        // names as copies of their own, which the journaled names leave stale;
        // with, it links only names sent together).
        let root = j.root();
        let linked = names.iter().find(|n| {
            root.join(n)
                .symlink_metadata()
                .is_ok_and(|m| m.is_file() && std::os::unix::fs::MetadataExt::nlink(&m) > 1)
        });
        if let Some(n) = linked {
            return none(format!(
                "{} changed and has other hard links",
                escape_name(n.as_os_str().as_encoded_bytes())
            ));
        }
        let escaped: Vec<String> = names
            .iter()
            .map(|n| escape_name(n.as_os_str().as_encoded_bytes()))
            .collect();
        let bytes: usize = escaped.iter().map(|n| n.len() + 3).sum();
        if bytes > JOURNAL_BYTES_MAX {
            return none(format!(
                "the changed names take {bytes} bytes, more than the {JOURNAL_BYTES_MAX} a demote carries"
            ));
        }
        JournalReport {
            mark,
            names: Some(escaped),
            note: String::new(),
        }
    }
}
