//! Reconciliation of `hybrid` groups, both layers: the site layer (each
//! frontend's own route, compared and re-applied frontend by frontend) and
//! the frontend layer (the DNS name pointed at the decided frontend).
//! While a runbook runs and has not begun its cut-over, only the site
//! layer, at the epoch before the runbook's (see `reconcile_running`).

use super::reconcile_running::BeforeCutOver;
use super::*;

impl Shared {
    /// Reconcile both layers of a hybrid group. Site layer: every frontend
    /// that answers must route to the active site at the group's epoch (a
    /// restarted, empty frontend gets its route back); unreachable frontends
    /// are left to the frontend layer. Frontend layer: the DNS name must
    /// point at the decided frontend (a hand edit or a failed move is redone),
    /// unless that frontend is confirmed down (the detector moves it).
    ///
    /// `before`: the group's runbook runs and has not begun its cut-over
    /// ([`Shared::before_cut_over`]). Each frontend is then compared with,
    /// and given, the active site at the epoch before the runbook's (a
    /// frontend restarted during a failback's resync serves users again);
    /// one that took the runbook's own orders is left to it, the step is
    /// checked again under the state lock before each write, and the DNS
    /// name is the runbook's.
    pub(super) async fn reconcile_hybrid(
        &self,
        g: &GroupState,
        h: &warden_strategies::hybrid::HybridStrategy,
        before: Option<&BeforeCutOver>,
        term: &CancellationToken,
    ) {
        // The epoch each frontend is compared and re-applied at.
        let at = before.map_or(g.epoch, |b| b.epoch);
        let route = SiteRoute {
            site: g.active.clone(),
            mode: SwitchMode::Immediate,
        };
        // Reads under the term's gate, as the other schemes' (see
        // `reconcile_groups`): what a read leaves for later asks the licence.
        let Some(routes) = self.licence.gated(term, h.routes()).await else {
            return;
        };
        for (fe, read) in routes {
            let (site, epoch) = match read {
                Ok(x) => x,
                Err(e) if e.is_transient() => continue,
                Err(e) => {
                    self.event_level(
                        &format!("reconcile/{}/read/{fe}", g.name),
                        EventKind::ReconcileFailed,
                        &g.name,
                        None,
                        format!("site layer: cannot read {fe}'s route: {e}"),
                    );
                    continue;
                }
            };
            let said = format!("{HYBRID_DRIFT}{}/site/{fe}", g.name);
            let persists = format!("{said}/persists");
            if epoch > g.epoch {
                // An epoch above the group's, as the other schemes' routing
                // layer (see `reconcile_groups`): another orchestrator, or a
                // store older than what it decided, routes this frontend.
                // Recorded (decisions and replication orders held until
                // `warden adopt-epoch`), never re-applied over — judged
                // against the group as it is now (a move decided since
                // the snapshot is no epoch seen ahead).
                let mut st = self.lock();
                let now = st.groups.get(&g.name).cloned();
                if let Some(now) = now.filter(|x| epoch > x.epoch && x.phase != Phase::Running) {
                    self.note_epoch_ahead_locked(&mut st, &now, epoch, &format!("frontend {fe}"));
                }
                continue;
            }
            if before.is_some_and(|b| b.reached_by_runbook(epoch)) {
                continue;
            }
            if site.as_deref() == Some(g.active.as_str()) && epoch == at {
                self.levels_cleared(&[
                    &format!("reconcile/{}/read/{fe}", g.name),
                    &format!("reconcile/{}/site/{fe}", g.name),
                    &said,
                    &persists,
                ]);
                continue;
            }
            let drift = match &site {
                None => format!("{fe} has no route (restarted empty?) at epoch {epoch}"),
                Some(s) => format!("{fe} routes to {s} at epoch {epoch}"),
            };
            let unchanged = match before {
                Some(b) => self.still_before_cut_over(g, b),
                None => self.unchanged(g),
            };
            if !unchanged || !self.licence.holds(term) {
                return;
            }
            let Some(set) = self.licence.gated(term, h.set_route(&fe, &route, at)).await else {
                return;
            };
            let (reapplied, failed) = before.map_or_else(Default::default, |b| {
                (b.reapplied_words(), b.failed_words())
            });
            match set {
                // Said as observed: corrected once; the same drift seen
                // again after this re-apply, once as persisting (see
                // `reapplied_said`), not "corrected" every pass.
                Ok(()) => self.reapplied_said(
                    &said,
                    &persists,
                    &g.name,
                    Some(&g.active),
                    &drift,
                    format!("site layer: routing drift corrected: {drift}; re-applied {} at epoch {at} to {fe}{reapplied}", g.active),
                    format!(
                        "site layer: routing drift persists after re-applying {} at epoch {at} to {fe}{reapplied}: \
                         {drift}; {fe} answers but does not change (re-applied every pass)",
                        g.active
                    ),
                ),
                // The frontend holds another site at the group's own epoch:
                // only a newer epoch moves it (see `split`). Not at the
                // epoch before a runbook's: that is the runbook's to move.
                Err(e @ StrategyError::EpochTaken { epoch, .. })
                    if epoch == g.epoch && before.is_none() =>
                {
                    let seen = format!("site layer: {drift}; {e}");
                    let key = format!("reconcile/{}/site/{fe}", g.name);
                    // The group moved on (or the licence ended): the next
                    // pass judges it anew.
                    let _ = self.mend_split(g, h, term, &key, &seen).await;
                    return;
                }
                // The runbook's cut-over began since the re-check: its
                // orders fenced this route, as they should.
                Err(e) if self.fenced_by_cut_over(g, before, &e) => {
                    info!(group = %g.name, frontend = %fe, cause = %e, "route from before the runbook refused: its cut-over began meanwhile");
                }
                Err(e) if e.is_fencing() => self.event_level(&format!("reconcile/{}/site/{fe}", g.name), EventKind::Fencing, &g.name, None, format!("site layer: reconcile of {fe} refused: {e}{failed}")),
                Err(e) => self.event_level(&format!("reconcile/{}/site/{fe}", g.name), EventKind::ReconcileFailed, &g.name, None, format!("site layer: cannot correct {fe} ({drift}): {e}{failed}")),
            }
        }
        // The DNS name is the runbook's while it runs.
        if before.is_some() {
            return;
        }
        let frontends = h.frontend_names();
        let want = g.frontend.clone().unwrap_or_else(|| frontends[0].clone());
        {
            let st = self.lock();
            if st.dns_moving.contains(&g.name)
                || st
                    .fe_detector
                    .track(&want)
                    .is_some_and(|t| t.confirmed_down)
            {
                return;
            }
        }
        let Some(observed) = self.licence.gated(term, h.dns_current()).await else {
            return;
        };
        if let Some(o) = observed.as_ref().ok().filter(|o| o.epoch > g.dns_epoch()) {
            // As the site layer's frontends: the name written at an epoch
            // above the group's (another orchestrator, or a store older
            // than what it decided) is an epoch seen ahead — recorded
            // (decisions held until `warden adopt-epoch`), never pointed
            // over; judged against the group as it is now.
            let mut st = self.lock();
            let moving = st.dns_moving.contains(&g.name);
            let now = st.groups.get(&g.name).cloned();
            if let Some(now) =
                now.filter(|x| o.epoch > x.dns_epoch() && x.phase != Phase::Running && !moving)
            {
                self.note_epoch_ahead_locked(&mut st, &now, o.epoch, super::adopt_dns::DNS_SEEN_AT);
            }
            return;
        }
        // Unread DNS is not a drift: a re-point is then a precaution.
        let blind = observed.is_err();
        let said = format!("{HYBRID_DRIFT}{}/dns", g.name);
        let persists = format!("{said}/persists");
        let drift = match observed {
            Ok(o) if o.site.as_deref() == Some(want.as_str()) && o.drift.is_empty() => {
                self.levels_cleared(&[&format!("reconcile/{}/dns", g.name), &said, &persists]);
                return;
            }
            Ok(o) => format!(
                "the name resolves to {}{}",
                o.site.as_deref().unwrap_or("no frontend"),
                if o.drift.is_empty() {
                    String::new()
                } else {
                    format!(" (drift: {})", o.drift.join("; "))
                }
            ),
            Err(e) => format!("cannot observe DNS: {e}"),
        };
        // As the site layer: nothing is re-pointed once the licence has
        // ended or lapsed (the DNS was read meanwhile, perhaps for long),
        // and the update asks the term's gate as it leaves.
        if !self.unchanged(g) || !self.licence.holds(term) {
            return;
        }
        let epoch = g.dns_epoch();
        let Some(pointed) = self.licence.gated(term, h.point_dns(&want, epoch)).await else {
            return;
        };
        match pointed {
            // A precaution is recorded when it changes, not every pass (the
            // DNS may stay unreadable for hours); the next reading clears it.
            Ok(()) if blind => self.event_level(
                &format!("reconcile/{}/dns", g.name),
                EventKind::Reconciled,
                &g.name,
                None,
                format!("frontend layer: {drift}; pointed the name at {want} (epoch {epoch}) as a precaution (no drift was seen)"),
            ),
            // Said as observed: corrected once; the same drift seen again
            // after this re-point (a provider that answers Ok and keeps its
            // own idea, nameservers that are not the provider's), once as
            // persisting — not "corrected" every pass.
            Ok(()) => {
                self.level_cleared(&format!("reconcile/{}/dns", g.name));
                self.reapplied_said(
                    &said,
                    &persists,
                    &g.name,
                    None,
                    &drift,
                    format!("frontend layer: DNS drift corrected: {drift}; the name points at {want} again (epoch {epoch})"),
                    format!(
                        "frontend layer: DNS drift persists after pointing the name at {want} (epoch {epoch}): {drift}; \
                         the DNS answers but does not change (pointed again every pass)"
                    ),
                )
            }
            Err(e) if e.is_fencing() => self.event_level(&format!("reconcile/{}/dns", g.name), EventKind::Fencing, &g.name, None, format!("frontend layer: DNS reconcile refused: {e}")),
            Err(e) if matches!(e, StrategyError::Blocked { .. }) => self.event_level(&format!("reconcile/{}/dns", g.name), EventKind::Alert, &g.name, None, format!("frontend layer: cannot correct DNS drift ({drift}): {e}")),
            Err(e) => self.event_level(&format!("reconcile/{}/dns", g.name), EventKind::ReconcileFailed, &g.name, None, format!("frontend layer: cannot correct DNS drift ({drift}): {e}")),
        }
    }
}

/// Key prefix of a hybrid group's drift last re-applied and of one that
/// persisted after its re-apply (see [`Shared::reapplied_said`]):
/// `reconcile-hybrid/GROUP/dns` and `…/site/FRONTEND`, each with
/// `…/persists`; forgotten once that layer reads right.
const HYBRID_DRIFT: &str = "reconcile-hybrid/";
