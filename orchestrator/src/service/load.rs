//! The state as the store has it, completed from the config
//! ([`load_state`], [`Loaded`]): groups new to the store, sites and
//! frontends the config no longer has, runbooks to resume or fail, and
//! what is left as stored (`untouched`).

use super::*;

/// The state as the store has it, completed from the config.
pub(crate) struct Loaded {
    pub(crate) groups: BTreeMap<String, GroupState>,
    /// Groups new to the store.
    pub(crate) fresh: std::collections::BTreeSet<String>,
    /// Groups created or corrected from the config, to be written.
    pub(crate) to_write: Vec<GroupState>,
    pub(crate) runbooks: BTreeMap<u64, Runbook>,
    pub(crate) next_runbook: u64,
    pub(crate) next_event: u64,
    /// Groups left as stored, not acted on (see `untouched`), with their alerts.
    pub(crate) untouched: BTreeMap<String, String>,
}

/// Read groups, runbooks and event ids from `store`: groups the config no
/// longer has are left out, new ones start at their primary, and a stored
/// active site the group no longer has moves to the primary at a new epoch;
/// a running runbook or a pending decision naming a site the group no
/// longer has is not acted on (failed, withdrawn), nor a stored frontend
/// it no longer has. On a store other orchestrators share, and for records
/// this version cannot read, a group is left as stored instead
/// ([`untouched::set_aside`]).
pub(crate) fn load_state(cfg: &Config, store: &dyn Store) -> Result<Loaded, OrchestratorError> {
    let read = store.groups_read()?;
    let mut groups: BTreeMap<String, GroupState> =
        read.read.into_iter().map(|g| (g.name.clone(), g)).collect();
    groups.retain(|k, _| cfg.groups.contains_key(k));
    let runbooks_read = store.runbooks_read()?;
    let runbooks: BTreeMap<u64, Runbook> =
        runbooks_read.read.into_iter().map(|r| (r.id, r)).collect();
    let mut untouched = untouched::set_aside(
        cfg,
        store,
        &mut groups,
        &runbooks,
        &read.unreadable,
        &runbooks_read.unreadable,
    );
    let mut fresh_groups = std::collections::BTreeSet::new();
    let mut to_write = Vec::new();
    for (name, g) in &cfg.groups {
        if untouched.contains_key(name) {
            continue;
        }
        let sites = g.site_names();
        let fresh = GroupState {
            hold: Some(
                "the group is new to the store: automatic decisions wait until every site has reported"
                    .to_string(),
            ),
            // written so until adopted (see `GroupState::adopting`)
            adopting: true,
            ..GroupState::fresh(name, g.primary())
        };
        let mut changed = !groups.contains_key(name);
        // New to the store, or stored by a start that ended before it
        // adopted the group: adopted by this one.
        // (Only its placeholder: a record that moved since — a node of an
        // earlier version, which keeps the flag it does not know, acted
        // on it — is the group's state.)
        if changed
            || groups
                .get(name)
                .is_some_and(|g| g.adopting && g.epoch <= 1 && g.phase == Phase::Steady)
        {
            fresh_groups.insert(name.clone());
        }
        let entry = groups.entry(name.clone()).or_insert_with(|| fresh.clone());
        if !sites.contains(&entry.active) {
            warn!(group = %name, active = %entry.active, "stored active site is no longer in the group; starting from the primary");
            let epoch = entry.epoch.saturating_add(1);
            // A provider's stops are its own, whatever the sites.
            let provider_stops = std::mem::take(&mut entry.provider_stops);
            // The DNS layer's epochs never go back (its marker would refuse
            // them): pointing the name anew is a decision above the last.
            let frontend_epoch = entry.dns_epoch() + 1;
            // What a newer version keeps in the record is its own too.
            let unknown = std::mem::take(&mut entry.unknown);
            *entry = GroupState {
                epoch,
                provider_stops,
                frontend_epoch,
                // adopted by this start only if it was not yet
                adopting: entry.adopting,
                unknown,
                ..fresh
            };
            changed = true;
        }
        // Hybrid: the frontend DNS was last pointed at, no longer one of the
        // group's (the detector never tracks it, so DNS would never move off
        // it): forgotten; reconciliation points DNS at a served one.
        if let Some(fe) = entry.frontend.clone() {
            if !g
                .frontend
                .as_ref()
                .is_some_and(|f| f.get_ref().is_served_by(&fe))
            {
                warn!(group = %name, frontend = %fe, "stored frontend is no longer one of the group's; forgotten");
                entry.frontend = None;
                // Pointing the name at a served one is a decision of its own.
                entry.frontend_epoch = entry.dns_epoch() + 1;
                changed = true;
            }
        }
        // A decision waiting for approval to a site the group no longer
        // has cannot be approved: withdrawn.
        if entry
            .pending
            .as_ref()
            .is_some_and(|p| !sites.contains(&p.to))
        {
            warn!(group = %name, "a pending decision names a site no longer in the group; withdrawn");
            entry.pending = None;
            if entry.phase == Phase::PendingApproval {
                entry.phase = Phase::Steady;
            }
            changed = true;
        }
        if changed {
            to_write.push(entry.clone());
        }
    }
    newest::run_newest_runbooks(cfg, &mut groups, &runbooks, &mut to_write);
    // A store that lost a group's record (or holds an older one) still
    // holds the runbooks it decided: the epoch never goes below theirs.
    for rb in runbooks.values() {
        if let Some(g) = groups.get_mut(&rb.group) {
            if g.epoch < rb.epoch {
                warn!(group = %g.name, stored = g.epoch, runbook = rb.id, epoch = rb.epoch,
                      "the stored group is at an epoch below its own runbook's: raised to it (epochs never go back)");
                g.epoch = rb.epoch;
                to_write.retain(|w| w.name != g.name);
                to_write.push(g.clone());
            }
        }
    }
    // A group running a runbook the store does not hold (or one of another
    // group, or one between sites the group no longer has: resumed, it
    // would fence one and fail at the promote) would stay `running` for
    // ever, refusing every move: it is failed instead, so the operator
    // decides.
    let mut steps_aside = Vec::new();
    for g in groups.values_mut() {
        // A runbook to resume whose steps this version does not run as
        // stored (written by another version, or damaged): refused before
        // anything acts or is written, naming it — on a store other nodes
        // share (a rolling upgrade), its group alone is left as stored
        // (the node of the version that wrote it resumes it).
        let live = g.runbook.and_then(|id| runbooks.get(&id)).filter(|rb| {
            g.phase == Phase::Running && (rb.status == RunbookStatus::Running || rb.rolling_back)
        });
        if let Some(rb) = live.filter(|rb| !rb.steps_as_run()) {
            let names = |steps: &mut dyn Iterator<Item = StepName>| {
                steps.map(runbook::step_str).collect::<Vec<_>>().join(", ")
            };
            let why = format!(
                "the state store ({}) holds runbook {} of group {} ({} {} → {} at epoch {}, to be resumed) \
                 with the steps [{}], not those this version runs for a {} [{}]: written by another \
                 version of warden, or damaged. Nothing was resumed or written: finish it with the \
                 version that wrote it, or restore the store from a backup",
                store.describe(),
                rb.id,
                g.name,
                runbook::kind_str(rb.kind),
                rb.from,
                rb.to,
                rb.epoch,
                names(&mut rb.steps.iter().map(|s| s.name)),
                runbook::kind_str(rb.kind),
                names(&mut StepName::for_kind(rb.kind).iter().copied()),
            );
            if !store.shared() {
                return Err(OrchestratorError::Setup(why));
            }
            steps_aside.push((g.name.clone(), why));
            continue;
        }
        let sites = cfg
            .groups
            .get(&g.name)
            .map(|c| c.site_names())
            .unwrap_or_default();
        let usable = g
            .runbook
            .and_then(|id| runbooks.get(&id))
            .is_some_and(|rb| {
                rb.group == g.name && sites.contains(&rb.from) && sites.contains(&rb.to)
            });
        if g.phase == Phase::Running && !usable {
            warn!(group = %g.name, runbook = ?g.runbook,
                  "the group is running a runbook the store does not hold for it: marked failed, the operator decides");
            g.phase = Phase::Failed;
            g.runbook = None;
            to_write.retain(|w| w.name != g.name);
            to_write.push(g.clone());
        }
    }
    for (name, why) in steps_aside {
        warn!(group = %name, "{why}");
        groups.remove(&name);
        to_write.retain(|w| w.name != name);
        untouched.insert(name.clone(), format!("group {name}: {why}"));
    }
    // Ids and epochs near the largest number are a corrupt store (one is
    // used per runbook, event or decision): refused, never wrapped around.
    let corrupt = |what: String| {
        OrchestratorError::Setup(format!(
            "the state store ({}) holds {what}: a corrupt or tampered store; \
             restore it from a backup or fix that record",
            store.describe()
        ))
    };
    for g in groups.values() {
        // The frontend layer's epoch too: its next pointing adds one.
        if g.dns_epoch() > warden_proto::EPOCH_CEILING {
            return Err(corrupt(format!(
                "group {} at epoch {}, within 2^32 of the largest",
                g.name,
                g.dns_epoch()
            )));
        }
    }
    let last_runbook = runbooks.keys().next_back().copied().unwrap_or(0).max(
        untouched::highest_unreadable_runbook(&runbooks_read.unreadable),
    );
    let next_runbook = last_runbook
        .checked_add(1)
        .ok_or_else(|| corrupt(format!("a runbook with id {last_runbook}")))?;
    let last_event = store.last_event_id()?;
    let next_event = last_event
        .checked_add(1)
        .ok_or_else(|| corrupt(format!("an event with id {last_event}")))?;
    Ok(Loaded {
        groups,
        fresh: fresh_groups,
        to_write,
        runbooks,
        next_runbook,
        next_event,
        untouched,
    })
}
