//! How a replication command is run: one of a group's at a time, a
//! running start, resync or pass interrupted by the command that overrides
//! it, the agent's authority asked again when its turn comes, the outcome
//! and the group's error recorded; `clear`, never queued, releasing a pass
//! held by the mass-delete guard.

use super::*;

impl Replication {
    /// Carries out one replication command; never panics, always an outcome.
    pub async fn run(&self, cmd: &Command, shutdown: &CancellationToken) -> CommandOutcome {
        self.run_checked(cmd, shutdown, &|_| Ok(())).await
    }

    /// [`Replication::run`], with a start, resync or final pass asked again
    /// through `admit` (the agent's authority) once its turn comes — the
    /// group's lock taken, after any command it waited behind: a demote that
    /// came meanwhile (and waits for the same lock to stop the push) must not
    /// find a push started after it, nor a promote at a newer epoch a pull
    /// into the site. The command is then refused, not run.
    pub async fn run_checked(
        &self,
        cmd: &Command,
        shutdown: &CancellationToken,
        admit: &(dyn Fn(&Command) -> Result<(), String> + Sync),
    ) -> CommandOutcome {
        let out = |ok: bool, detail: String| CommandOutcome {
            id: cmd.id.clone(),
            ok,
            detail,
            hooks: Vec::new(),
            checks: None,
            journal: None,
            kept_in_place: None,
        };
        let Some(g) = self.groups.get(&cmd.group) else {
            return out(
                false,
                format!(
                    "group {} has no replication plan at site {}",
                    cmd.group, self.site
                ),
            );
        };
        if cmd.kind == CommandKind::Clear {
            // Never queued behind a held pass: it is what that pass waits for.
            let (ok, detail) = self.clear(g, &cmd.group, cmd.guard_seen.as_deref());
            return out(ok, detail);
        }
        if cmd.kind == CommandKind::Journal {
            // The peer pulls from here from now on: stop pushing into it
            // (its resync must not race this site's own transfers) and keep
            // a journal of what changes instead.
            let stopped = self.stop_pushing(g, &cmd.group).await;
            return match self.journal_start(g, cmd).await {
                Ok((detail, mark)) => CommandOutcome {
                    detail: format!("{stopped}; {detail}"),
                    journal: Some(JournalReport {
                        mark,
                        names: None,
                        note: String::new(),
                    }),
                    ..out(true, String::new())
                },
                Err(e) => out(false, e),
            };
        }
        if matches!(
            cmd.kind,
            CommandKind::StartReplication | CommandKind::Resync | CommandKind::FinalSync
        ) {
            // This site's data is now written by the peer or pushed from
            // here: a journal kept for a failback has no more use.
            lock(&g.journal).take();
        }
        // Override what runs now instead of waiting for it.
        if let Some((kind, token)) = g.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let overrides = match cmd.kind {
                CommandKind::StopReplication => true,
                CommandKind::Resync | CommandKind::FinalSync => {
                    *kind == CommandKind::StartReplication
                }
                _ => false,
            };
            if overrides {
                info!(group = %cmd.group, running = kind.as_str(), by = cmd.kind.as_str(), "interrupting the running replication command");
                token.cancel();
            }
        }
        let _one = g.busy.lock().await;
        // Said to be running before it is asked again: a promote or demote
        // admitted after the question finds it here and cancels it; one
        // admitted before makes the question refuse it.
        let token = shutdown.child_token();
        *lock(&g.current) = Some((cmd.kind, token.clone()));
        if matches!(
            cmd.kind,
            CommandKind::StartReplication | CommandKind::Resync | CommandKind::FinalSync
        ) {
            // A push or a pull that waited its turn: a demote (no push
            // after it) or a promote at a newer epoch (no pull into the
            // site users now write to) may have come meanwhile.
            if let Err(refusal) = admit(cmd) {
                lock(&g.current).take();
                return out(
                    false,
                    format!("{refusal} (asked again when its turn came, after the group's running command)"),
                );
            }
        }
        let result = match cmd.kind {
            CommandKind::StartReplication => self.start(g, cmd, &token).await,
            CommandKind::StopReplication => Ok(self.stop(g, &cmd.group).await),
            CommandKind::Resync => self.catch_up(g, cmd, &token).await,
            CommandKind::FinalSync => self.final_sync(g, cmd, &token).await,
            CommandKind::Clear => {
                let (ok, detail) = self.clear(g, &cmd.group, cmd.guard_seen.as_deref());
                if ok {
                    Ok(detail)
                } else {
                    Err(detail)
                }
            }
            CommandKind::Promote | CommandKind::Demote | CommandKind::Journal => Err(format!(
                "{} is not a replication command",
                cmd.kind.as_str()
            )),
        };
        g.current.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut run = g.run.lock().unwrap_or_else(|p| p.into_inner());
        // What this resync or final pass left in place, said in its outcome.
        let kept_in_place = matches!(cmd.kind, CommandKind::Resync | CommandKind::FinalSync)
            .then(|| resync::kept_names(&run.divergent).len() as u64);
        if cmd.stays_target && result.is_ok() && matches!(run.role, Role::Resync { .. }) {
            // No final pass follows a resync of `warden resync`: this site
            // is the peer's target again, not resyncing.
            run.role = Role::Idle;
        }
        let outcome = match result {
            Ok(detail) => {
                run.error = None;
                out(true, detail)
            }
            Err(e) => {
                run.error = Some(e.clone());
                out(false, e)
            }
        };
        CommandOutcome {
            kept_in_place,
            ..outcome
        }
    }

    /// `warden clear GROUP`: a pass held by the mass-delete guard goes ahead once.
    /// The operator's release of a held pass: of the hold they read
    /// (`seen`) only, when the order says which; `false` when that hold is
    /// not the one held now.
    fn clear(&self, g: &GroupRepl, group: &str, seen: Option<&str>) -> (bool, String) {
        let plan_held = {
            let run = g.run.lock().unwrap_or_else(|p| p.into_inner());
            match &run.role {
                Role::Source { replicator, .. } => match seen {
                    Some(seen) => replicator.clone().clear_guard_seen(seen),
                    None => replicator.clone().clear_guard(),
                },
                _ => false,
            }
        };
        if plan_held {
            warn!(group = %group, "operator released the round held by the plan's mass-delete guard");
            return (
                true,
                "released the round held by the mass-delete guard; it goes ahead once".to_string(),
            );
        }
        let released = match seen {
            Some(seen) => g.hold.release_seen(seen),
            None => g.hold.release().ok_or(None),
        };
        match released {
            Ok(held) => {
                warn!(group = %group, held = %held, "operator released the pass held by the mass-delete guard");
                (
                    true,
                    format!("released the pass held by the mass-delete guard; it goes ahead once (it was held: {held})"),
                )
            }
            Err(Some(now)) if seen.is_some() => (
                false,
                format!(
                    "not released: the pass held now is not the one the operator read (held now: \
                     {now}); read it again (`warden status`) and clear it if it is meant"
                ),
            ),
            Err(_) if seen.is_some() => (
                false,
                "not released: nothing is held by the mass-delete guard now (the hold the \
                 operator read has ended)"
                    .to_string(),
            ),
            Err(_) => (true, "nothing held by the mass-delete guard".to_string()),
        }
    }
}
