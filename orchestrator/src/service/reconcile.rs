//! Reconciliation: the routing layer is compared with what was decided and
//! re-applied on drift; an epoch seen above the group's is recorded, never
//! silently taken.

use std::collections::BTreeSet;

use super::reconcile_blind::Blind;
use super::reconcile_running::BeforeCutOver;
use super::*;

/// Groups copied, or compared, between two yields of a reconciliation
/// pass (see `reconcile_groups`).
const RECONCILE_PART: usize = 256;

impl Shared {
    /// Compare decided routing with what each strategy observes; re-apply on
    /// drift. Runs under the licence's term: a node that loses the licence
    /// stops mid-way (a re-apply in flight is abandoned, not finished late).
    pub async fn reconcile_once(&self) {
        let Some(term) = self.licence.token() else {
            return;
        };
        tokio::select! {
            _ = term.cancelled() => {
                info!("licence ended during reconciliation: stopped");
            }
            _ = self.reconcile_groups(&term) => {}
        }
    }

    async fn reconcile_groups(&self, term: &CancellationToken) {
        // The snapshot in parts, yielding between them, and the pass
        // yielding every `RECONCILE_PART` groups: with 10,000 groups the
        // copy and the comparison (each group's read is a look-up in the
        // table its frontend answered once) took tens of milliseconds of
        // the runtime's worker in one go, and every report waited for it
        // (a burst of slow reports every `reconcile_interval` in the load
        // bench).
        let mut groups: Vec<GroupState> = Vec::with_capacity(self.group_names.len());
        for part in self.group_names.chunks(RECONCILE_PART) {
            tokio::task::yield_now().await;
            let st = self.lock();
            groups.extend(part.iter().filter_map(|n| st.groups.get(n).cloned()));
        }
        // Made after the snapshot: every route read in this pass (a
        // frontend's table is read once for all its groups) is at least as
        // new as the state it is compared with.
        let pass = warden_strategies::ReadPass::new();
        let mut blind = Blind::default();
        // The drift keys of the groups that drifted in this pass: the
        // others' are forgotten at its end, under one lock (as the blind
        // elements are), not a look-up per group.
        let mut drifting = BTreeSet::new();
        // Groups read right this pass: a failure recorded for one is over,
        // so the same failure later is news again.
        let mut clean: Vec<String> = Vec::new();
        for (i, g) in groups.into_iter().enumerate() {
            if i % RECONCILE_PART == RECONCILE_PART - 1 {
                tokio::task::yield_now().await;
            }
            let Some(strategy) = self.strategies.get(&g.name) else {
                continue;
            };
            // A running group is its runbook's, except before its cut-over
            // (see `reconcile_running`): the route users had before it is
            // compared and re-applied, at the epoch it was routed at (a
            // hybrid group's: each frontend's; its DNS name is left to the
            // runbook).
            let before = if g.phase == Phase::Running {
                match self.before_cut_over(&g) {
                    Some(b) => Some(b),
                    None => continue,
                }
            } else {
                None
            };
            if let Some(h) = strategy.hybrid() {
                self.reconcile_hybrid(&g, h, before.as_ref(), term).await;
                continue;
            }
            // Under the term's gate: a read may leave an order for later
            // (the end of an HAProxy drain it found unended), which asks
            // the licence of the read that left it (`warden_strategies::gate`).
            let Some(observed) = self.licence.gated(term, strategy.current_in(&pass)).await else {
                return;
            };
            if let Ok(o) = &observed {
                if o.epoch > g.epoch {
                    // A move decided since the snapshot is not an epoch
                    // seen ahead: compare with the group as it is now.
                    let mut st = self.lock();
                    let now = st.groups.get(&g.name).cloned();
                    if let Some(now) =
                        now.filter(|x| o.epoch > x.epoch && x.phase != Phase::Running)
                    {
                        self.note_epoch_ahead_locked(&mut st, &now, o.epoch, "the routing layer");
                    }
                    continue;
                }
            }
            // The epoch the route is compared and re-applied at: the
            // group's, or before a runbook's cut-over the one before it.
            let epoch = before.as_ref().map_or(g.epoch, |b| b.epoch);
            if let Some(b) = &before {
                match &observed {
                    // At the runbook's epoch: its own orders (a hold, a
                    // switch) reached the layer; nothing older goes there.
                    Ok(o) if b.reached_by_runbook(o.epoch) => continue,
                    // Unread: no precaution while a runbook runs.
                    Err(_) => continue,
                    Ok(_) => {}
                }
            }
            // Say exactly what was seen: a drift, or nothing at all (the
            // layer could not be read; re-applying is then a precaution,
            // not a correction, said once for the element, see `Blind`).
            let drift = match &observed {
                Ok(o)
                    if o.site.as_deref() == Some(g.active.as_str())
                        && o.drift.is_empty()
                        && o.epoch == epoch =>
                {
                    None
                }
                Ok(o) => Some(format!(
                    "routing layer reports {:?} at epoch {}{}",
                    o.site,
                    o.epoch,
                    if o.drift.is_empty() {
                        String::new()
                    } else {
                        format!(" (drift: {})", o.drift.join("; "))
                    }
                )),
                Err(e) => Some(format!("cannot observe routing: {e}")),
            };
            let Some(drift) = drift else {
                clean.push(format!("reconcile/{}", g.name));
                continue;
            };
            let drift_key = format!("{DRIFT_PREFIX}{}", g.name);
            drifting.insert(drift_key.clone());
            drifting.insert(format!("{DRIFT_PREFIX}persists/{}", g.name));
            // Elements that could not be read: the whole layer, or only
            // some of it while the rest routes as decided (one frontend or
            // nameserver of several down) — nothing was seen to differ.
            let mut unread: Vec<String> = match &observed {
                Err(e) => vec![blind.element(e.element().unwrap_or(&g.name), &drift)],
                Ok(o)
                    if o.only_unread_drift()
                        && o.site.as_deref() == Some(g.active.as_str())
                        && o.epoch == epoch =>
                {
                    o.unread_elements
                        .iter()
                        .map(|(element, line)| blind.element(element, line))
                        .collect()
                }
                Ok(_) => vec![],
            };
            unread.sort();
            unread.dedup();
            if !unread.is_empty() && unread.iter().all(|b| blind.given_up(b)) {
                for b in &unread {
                    blind.skip(b, &g.name);
                }
                continue;
            }
            // Re-check that nothing started meanwhile (before a cut-over:
            // that it has still not begun).
            let unchanged = match &before {
                Some(b) => self.still_before_cut_over(&g, b),
                None => self
                    .lock()
                    .groups
                    .get(&g.name)
                    .is_some_and(|x| x.phase != Phase::Running && x.epoch == g.epoch),
            };
            if !unchanged {
                continue;
            }
            // Nothing is re-applied once the licence has ended (or lapsed:
            // a leader paused past its lease and resumed mid-pass), and
            // the re-apply's writes ask the term's gate as they leave.
            if !self.licence.holds(term) {
                return;
            }
            let route = SiteRoute {
                site: g.active.clone(),
                mode: SwitchMode::Immediate,
            };
            let key = format!("reconcile/{}", g.name);
            let Some(applied) = self
                .licence
                .gated(term, strategy.reapply(&route, epoch, &pass))
                .await
            else {
                return;
            };
            match applied {
                Ok(()) => {
                    self.level_cleared(&key);
                    if unread.is_empty() {
                        self.drift_reapplied(
                            &drift_key,
                            &g.name,
                            &g.active,
                            epoch,
                            &drift,
                            before.as_ref(),
                        );
                    }
                    for b in &unread {
                        blind.reapplied(b, &g.name);
                    }
                }
                // An element holds another site at the group's own epoch
                // (a late switch and a rollback's route back landed on
                // different elements): no order at this epoch moves it.
                Err(e @ StrategyError::EpochTaken { epoch, .. })
                    if epoch == g.epoch && before.is_none() =>
                {
                    let seen = format!("{drift}; {e}");
                    if self
                        .mend_split(&g, &**strategy, term, &key, &seen)
                        .await
                        .is_none()
                    {
                        return;
                    }
                }
                // The cut-over began since the re-check: its orders fenced
                // this route, as they should (nothing to say).
                Err(e) if self.fenced_by_cut_over(&g, before.as_ref(), &e) => {
                    info!(group = %g.name, cause = %e, "route from before the runbook refused: its cut-over began meanwhile");
                }
                Err(e) => {
                    let what = if !unread.is_empty() {
                        // The element can be neither read nor written:
                        // its other groups wait for the next pass.
                        for b in &unread {
                            blind.give_up(b);
                        }
                        format!("{drift}, and re-applying {} failed", g.active)
                    } else {
                        format!("cannot correct routing drift ({drift})")
                    };
                    let during = before
                        .as_ref()
                        .map(BeforeCutOver::failed_words)
                        .unwrap_or_default();
                    let (kind, msg) = if e.is_fencing() {
                        (
                            EventKind::Fencing,
                            format!("reconcile refused: {e}{during}"),
                        )
                    } else if matches!(e, StrategyError::Blocked { .. }) {
                        (EventKind::Alert, format!("{what}: {e}{during}"))
                    } else {
                        (EventKind::ReconcileFailed, format!("{what}: {e}{during}"))
                    };
                    // Recorded when the cause changes, not every cycle.
                    self.event_level(&key, kind, &g.name, None, msg);
                }
            }
        }
        self.record_blind(blind);
        self.levels_cleared(&clean.iter().map(String::as_str).collect::<Vec<_>>());
        // Gone (or never there): a later drift is news again.
        self.lock()
            .recorded
            .clear_prefix_except(DRIFT_PREFIX, &drifting);
        self.sync_provider_stops(None);
    }

    /// A drift seen and the decided route re-applied: said once per drift.
    /// The same drift seen again in a later pass was not corrected by the
    /// re-apply (a layer that answers Ok and keeps its own idea: a DNS
    /// name whose nameservers are not the provider's, a provider that
    /// declines to resend); that is said once too, as a failure, instead
    /// of "corrected" every pass.
    /// `during`: the running runbook whose cut-over has not begun (the
    /// route is the one users had before it), said in the events.
    fn drift_reapplied(
        &self,
        key: &str,
        group: &str,
        active: &str,
        epoch: u64,
        drift: &str,
        during: Option<&BeforeCutOver>,
    ) {
        let during = during
            .map(BeforeCutOver::reapplied_words)
            .unwrap_or_default();
        self.reapplied_said(
            key,
            &format!("{DRIFT_PREFIX}persists/{group}"),
            group,
            Some(active),
            drift,
            format!(
                "routing drift corrected: {drift}; re-applied {active} at epoch {epoch}{during}"
            ),
            format!(
                "routing drift persists after re-applying {active} at epoch {epoch}{during}: \
                 {drift}; the routing layer answers but does not change (re-applied every pass)"
            ),
        );
    }

    /// The event of a re-apply the layer answered Ok to, saying what was
    /// observed: `corrected` the first time drift `drift` is seen (kept
    /// under `key`); the same drift seen again, after that re-apply, was
    /// not corrected — `persists` is said once (kept under `persists_key`)
    /// as a failure, and nothing more while it stays. The caller forgets
    /// both keys once it sees no drift, so a later one is news again.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reapplied_said(
        &self,
        key: &str,
        persists_key: &str,
        group: &str,
        site: Option<&str>,
        drift: &str,
        corrected: String,
        persists: String,
    ) {
        let mut st = self.lock();
        let (kind, msg) = if st.recorded.observe(key, Some(drift)) {
            (EventKind::Reconciled, corrected)
        } else {
            if !st.recorded.observe(persists_key, Some(&persists)) {
                return;
            }
            (EventKind::ReconcileFailed, persists)
        };
        self.event_locked(&mut st, kind, Some(group), site, msg, vec![], None);
    }

    /// Whether `g` is still the decided state (nothing started meanwhile).
    pub(crate) fn unchanged(&self, g: &GroupState) -> bool {
        self.lock().groups.get(&g.name).is_some_and(|x| {
            x.phase != Phase::Running
                && x.epoch == g.epoch
                && x.frontend == g.frontend
                && x.frontend_epoch == g.frontend_epoch
        })
    }
}

/// Keys of a group's drift last seen (and of one that persisted after its
/// re-apply): `reconcile-drift/GROUP`, `reconcile-drift/persists/GROUP`.
const DRIFT_PREFIX: &str = "reconcile-drift/";

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::harness::FakeRoute;
    use super::super::harness::{many_groups_text, setup_with, start_routed, test_dir};
    use super::*;
    use crate::store::MemStore;

    /// `n` groups g0…g{n-1}, each on a fake route of its own.
    fn many_routed(
        n: usize,
    ) -> (
        Arc<Shared>,
        BTreeMap<String, Arc<FakeRoute>>,
        super::super::harness::TestDir,
    ) {
        let dir = test_dir(false, 1);
        let routes: BTreeMap<String, Arc<FakeRoute>> = (0..n)
            .map(|g| (format!("g{g}"), Arc::new(FakeRoute::default())))
            .collect();
        let of = routes.clone();
        let s = start_routed(
            &many_groups_text(&dir, n),
            &dir,
            Arc::new(MemStore::default()),
            move |name| of[name].clone(),
        )
        .expect("config");
        (s, routes, dir)
    }

    fn last_reconcile_event(s: &Shared) -> String {
        s.lock()
            .recent
            .iter()
            .rev()
            .find(|e| matches!(e.kind, EventKind::Reconciled | EventKind::ReconcileFailed))
            .map(|e| e.message.clone())
            .unwrap_or_default()
    }

    /// An epoch above the group's is an alert (decisions held) only when
    /// it is above the group as it is when read: a move decided while the
    /// pass went on is not an epoch seen ahead.
    #[tokio::test(start_paused = true)]
    async fn an_epoch_ahead_is_judged_against_the_group_as_it_is_now() {
        let (s, fake, _dir) = setup_with(true, 3, "", Arc::new(MemStore::default()));
        let epoch = s.lock().groups["web"].epoch;
        // A move decided after the pass took its snapshot, before the read.
        let me = Arc::clone(&s);
        let route = Arc::clone(&fake);
        *fake.on_read.lock().unwrap() = Some(Box::new(move || {
            if let Some(g) = me.lock().groups.get_mut("web") {
                g.epoch = epoch + 1;
                g.active = "b".into();
            }
            *route.route.lock().unwrap() = (Some("b".into()), epoch + 1);
        }));
        s.reconcile_once().await;
        assert!(s.lock().epoch_ahead.is_empty(), "not an epoch seen ahead");
        assert!(s.lock().recent.iter().all(|e| e.kind != EventKind::Alert));

        // An epoch above the group as it is now: the alert.
        *fake.on_read.lock().unwrap() = None;
        *fake.route.lock().unwrap() = (Some("a".into()), epoch + 5);
        s.reconcile_once().await;
        assert_eq!(s.lock().epoch_ahead["web"].epoch, epoch + 5);
        assert!(s.lock().recent.iter().any(|e| e.kind == EventKind::Alert));
    }

    /// An event says what was observed: a layer that could not be read is
    /// not reported as a corrected drift; a real drift is.
    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_could_not_observe_says_so() {
        let (s, fake, _dir) = setup_with(true, 3, "", Arc::new(MemStore::default()));
        *fake.route.lock().unwrap() = (Some("a".into()), 1);
        fake.blind.store(true, Ordering::SeqCst);
        s.reconcile_once().await;
        let msg = last_reconcile_event(&s);
        assert!(msg.contains("cannot observe routing"), "{msg}");
        assert!(msg.contains("no drift was seen"), "{msg}");
        assert!(!msg.contains("drift corrected"), "{msg}");

        fake.blind.store(false, Ordering::SeqCst);
        *fake.route.lock().unwrap() = (Some("b".into()), 1);
        s.reconcile_once().await;
        let msg = last_reconcile_event(&s);
        assert!(msg.starts_with("routing drift corrected"), "{msg}");
        assert!(msg.contains("\"b\""), "the drift seen is named: {msg}");
        assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("a"));
    }

    /// One element of several (a frontend, a nameserver) that cannot be
    /// read while the rest routes as decided: nothing was seen to differ,
    /// so no "drift corrected" — the element is named as unread, the
    /// route re-applied as a precaution, said once (not a correction and a
    /// "persists" failure every pass, as before). A real drift beside it
    /// is still a drift.
    #[tokio::test(start_paused = true)]
    async fn one_unreadable_element_of_several_is_unread_not_drift() {
        let (s, fake, _dir) = setup_with(true, 3, "", Arc::new(MemStore::default()));
        *fake.route.lock().unwrap() = (Some("a".into()), 1);
        *fake.unread_one.lock().unwrap() = Some("fe2".into());
        s.reconcile_once().await;
        let msg = last_reconcile_event(&s);
        assert!(
            msg.starts_with("fe2 unreachable")
                && msg.contains("as a precaution (no drift was seen)"),
            "{msg}"
        );
        let events = s.lock().recent.len();
        s.reconcile_once().await;
        s.reconcile_once().await;
        let after: Vec<String> = s
            .lock()
            .recent
            .iter()
            .skip(events)
            .map(|e| e.message.clone())
            .collect();
        assert!(after.is_empty(), "said once, not every pass: {after:?}");

        *fake.route.lock().unwrap() = (Some("b".into()), 1);
        s.reconcile_once().await;
        let msg = last_reconcile_event(&s);
        assert!(msg.starts_with("routing drift corrected"), "{msg}");
        assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("a"));
    }

    /// A drift that a re-apply does not change (the layer answers Ok and
    /// keeps its own idea) is said once as corrected and once as
    /// persisting — not "corrected" at every pass, which said more than
    /// was done and flooded the events; once it is gone, a new drift is
    /// news again.
    #[tokio::test(start_paused = true)]
    async fn a_drift_that_stays_is_said_once_not_corrected_every_pass() {
        let (s, fake, _dir) = setup_with(true, 3, "", Arc::new(MemStore::default()));
        let epoch = s.lock().groups["web"].epoch;
        let reconcile_events = |s: &Shared| {
            s.lock()
                .recent
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Reconciled | EventKind::ReconcileFailed))
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
        };
        *fake.route.lock().unwrap() = (Some("b".into()), epoch);
        fake.ignore_writes.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            s.reconcile_once().await;
        }
        assert_eq!(
            fake.activations.load(Ordering::SeqCst),
            5,
            "re-applied every pass"
        );
        let said = reconcile_events(&s);
        assert_eq!(said.len(), 2, "{said:#?}");
        assert!(said[0].starts_with("routing drift corrected"), "{said:#?}");
        assert!(said[1].starts_with("routing drift persists"), "{said:#?}");
        // The layer takes the route at last: corrected, nothing more said;
        // the next pass sees no drift.
        fake.ignore_writes.store(false, Ordering::SeqCst);
        s.reconcile_once().await;
        s.reconcile_once().await;
        assert_eq!(reconcile_events(&s).len(), 2);
        assert_eq!(fake.route.lock().unwrap().0.as_deref(), Some("a"));
        // A later drift is news again.
        *fake.route.lock().unwrap() = (Some("b".into()), epoch);
        s.reconcile_once().await;
        let said = reconcile_events(&s);
        assert_eq!(said.len(), 3, "{said:#?}");
        assert!(said[2].starts_with("routing drift corrected"), "{said:#?}");
    }

    /// A routing element that cannot be read is one event, not one per
    /// group and per pass: its groups are re-applied as a precaution until
    /// a re-apply fails, then left for the next pass (no request each).
    #[tokio::test(start_paused = true)]
    async fn an_element_that_cannot_be_read_is_one_event_not_one_per_group() {
        use std::sync::atomic::Ordering::SeqCst;
        const GROUPS: usize = 50;
        let dir = test_dir(false, 1);
        let fake = Arc::new(FakeRoute::default());
        let shared_route = fake.clone();
        let s = start_routed(
            &many_groups_text(&dir, GROUPS),
            &dir,
            Arc::new(MemStore::default()),
            move |_| shared_route.clone(),
        )
        .expect("config");
        let events = |s: &Shared| -> Vec<(EventKind, Option<String>, String)> {
            s.lock()
                .recent
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Reconciled | EventKind::ReconcileFailed))
                .map(|e| (e.kind, e.group.clone(), e.message.clone()))
                .collect()
        };
        let before = events(&s).len();
        fake.blind.store(true, SeqCst);
        s.reconcile_once().await;
        let seen = events(&s);
        assert_eq!(
            seen.len(),
            before + 1,
            "one event for the element: {seen:#?}"
        );
        let (kind, group, msg) = seen.last().unwrap();
        assert_eq!(*kind, EventKind::Reconciled);
        assert_eq!(*group, None, "about every group of the element");
        assert!(
            msg.starts_with("cannot observe routing: fake unreachable: request timed out"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("{GROUPS} groups (g0, g1, g10,")),
            "{msg}"
        );
        assert!(msg.contains("as a precaution (no drift was seen)"), "{msg}");
        assert_eq!(
            fake.activations.load(SeqCst),
            GROUPS,
            "each group re-applied"
        );

        // The same condition next pass: re-applied again, not recorded again.
        s.reconcile_once().await;
        assert_eq!(events(&s).len(), before + 1, "{:#?}", events(&s));
        assert_eq!(fake.activations.load(SeqCst), 2 * GROUPS);

        // Neither readable nor writable: one re-apply tried, the rest wait.
        fake.refuse_writes.store(true, SeqCst);
        s.reconcile_once().await;
        assert_eq!(fake.activations.load(SeqCst), 2 * GROUPS + 1);
        let seen = events(&s);
        assert_eq!(seen.len(), before + 3, "{seen:#?}");
        let failed = seen
            .iter()
            .find(|e| e.0 == EventKind::ReconcileFailed)
            .expect("the failed re-apply's event");
        assert_eq!(failed.1.as_deref(), Some("g0"));
        assert!(failed.2.contains("re-applying s0 failed"), "{}", failed.2);
        let (_, _, msg) = seen.last().unwrap();
        assert!(
            msg.contains(&format!("{} groups (g1, g10,", GROUPS - 1))
                && msg.contains("not re-applied this pass (a re-apply to it failed)"),
            "{msg}"
        );

        // Read again (the groups' one fake route cannot show each its own
        // site: they are re-applied for drift), then blind again: a new
        // condition, recorded again.
        let blind_events = |s: &Shared| {
            events(s)
                .iter()
                .filter(|e| e.0 == EventKind::Reconciled)
                .filter(|e| e.2.starts_with("cannot observe routing"))
                .count()
        };
        assert_eq!(blind_events(&s), 2);
        fake.refuse_writes.store(false, SeqCst);
        fake.blind.store(false, SeqCst);
        s.reconcile_once().await;
        assert_eq!(blind_events(&s), 2);
        fake.blind.store(true, SeqCst);
        s.reconcile_once().await;
        assert_eq!(blind_events(&s), 3);
    }

    /// A group reconciled clears its own condition only: g1 fixed does
    /// not make g10's unchanged failure an event again.
    #[tokio::test(start_paused = true)]
    async fn a_group_reconciled_clears_its_own_condition_not_its_namesakes() {
        use std::sync::atomic::Ordering::SeqCst;
        let (s, routes, _dir) = many_routed(11);
        for g in ["g1", "g10"] {
            *routes[g].route.lock().unwrap() = (Some("elsewhere".into()), 0);
            routes[g].refuse_writes.store(true, SeqCst);
        }
        let failed = |s: &Shared, g: &str| {
            s.lock()
                .recent
                .iter()
                .filter(|e| e.kind == EventKind::ReconcileFailed)
                .filter(|e| e.group.as_deref() == Some(g))
                .count()
        };
        s.reconcile_once().await;
        assert_eq!((failed(&s, "g1"), failed(&s, "g10")), (1, 1));
        routes["g1"].refuse_writes.store(false, SeqCst);
        s.reconcile_once().await;
        s.reconcile_once().await;
        assert_eq!(
            failed(&s, "g10"),
            1,
            "g10 still fails the same way: recorded once"
        );
    }

    /// A failure to correct a drift, then a pass that reads the layer right,
    /// then the same failure again (the same frontend cut off next week):
    /// the second is news — an event and its notification — not silenced
    /// by the first, whose condition was over.
    #[tokio::test]
    async fn the_same_failure_after_a_clean_read_is_recorded_again() {
        use std::sync::atomic::Ordering::SeqCst;
        let (s, routes, _dir) = many_routed(2);
        let failed = |s: &Shared| {
            s.lock()
                .recent
                .iter()
                .filter(|e| e.kind == EventKind::ReconcileFailed)
                .filter(|e| e.group.as_deref() == Some("g1"))
                .count()
        };
        routes["g1"].refuse_writes.store(true, SeqCst);
        *routes["g1"].route.lock().unwrap() = (Some("elsewhere".into()), 0);
        s.reconcile_once().await;
        assert_eq!(failed(&s), 1);
        let right = {
            let st = s.lock();
            let g = &st.groups["g1"];
            (Some(g.active.clone()), g.epoch)
        };
        *routes["g1"].route.lock().unwrap() = right;
        s.reconcile_once().await;
        assert_eq!(failed(&s), 1, "read right: nothing to say");
        *routes["g1"].route.lock().unwrap() = (Some("elsewhere".into()), 0);
        s.reconcile_once().await;
        assert_eq!(failed(&s), 2, "the same failure again, after a clean read");
    }
}
