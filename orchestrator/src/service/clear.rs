//! A group's alerts (strategy blocks and holds, epochs seen ahead, a failed
//! group, an unfit site, replication guards) and `warden clear`, which lifts
//! them: a mass-delete guard's held pass only where the operator names the
//! site, and only the hold the operator read.

use super::operator::operator_label;
use super::*;

impl Shared {
    /// Alerts of every group's strategy (blocked providers, holds).
    pub fn alerts(&self, group: &str) -> Vec<String> {
        let mut out = self
            .strategies
            .get(group)
            .map(|s| s.alerts())
            .unwrap_or_default();
        out.extend(self.store_alerts());
        let st = self.lock();
        if let Some(x) = st.epoch_ahead.get(group) {
            let own = st.groups.get(group).map(|g| g.epoch).unwrap_or_default();
            out.push(super::authority::epoch_ahead_alert(group, own, x));
        }
        if let Some(b) = st
            .groups
            .get(group)
            .and_then(|g| g.failback_blocked.clone())
        {
            out.push(b);
        }
        if let Some(f) = st
            .groups
            .get(group)
            .and_then(|g| super::failed::alert(&st, g))
        {
            out.push(f);
        }
        out.extend(self.unfit_alerts_locked(&st, group));
        if let Some(gc) = self.cfg.groups.get(group) {
            for site in gc.site_names() {
                if let Some((_, r)) = Self::replication_status(&st, &site, group) {
                    if let Some(guard) = r.guard {
                        out.push(format!("replication at {site}: {guard}"));
                    }
                    if let Some(drift) = r.drift {
                        out.push(format!("replication at {site}: {drift}"));
                    }
                    if r.refused_total > 0 {
                        out.push(format!(
                            "replication at {site}: {} item(s) refused (names that cannot be copied safely), e.g. {}; rename or remove them at the source (`warden clear` does not lift this)",
                            r.refused_total,
                            r.refused.join(", ")
                        ));
                    }
                }
            }
        }
        out
    }

    /// `warden clear GROUP [--deletions SITE]…`: lift the group's alerts
    /// (a DNS provider's block or hold, a stopped automatic failback, the
    /// list of divergent items). A pass held by the mass-delete guard goes
    /// ahead only at the sites named in `deletions`, once: releasing one
    /// lets it delete at the other side, so it is never a side effect of
    /// clearing something else (a guard that tripped after the operator
    /// looked stays held, and the answer says how to release it). A name
    /// that is not a site of the group is refused before anything changes.
    pub fn operator_clear(
        &self,
        group: &str,
        by: &str,
        deletions: &[String],
    ) -> Result<Cleared, OrchestratorError> {
        self.operator_clear_seen(group, by, deletions, &BTreeMap::new())
    }

    /// [`Shared::operator_clear`] of the holds the operator read: `seen`,
    /// per site, the held pass's message as read; a site whose hold is not
    /// that one (a new hold since, a clear replayed from shell history) is
    /// not released. Every release order names the hold it releases, so
    /// the agent lets nothing else go either.
    pub fn operator_clear_seen(
        &self,
        group: &str,
        by: &str,
        deletions: &[String],
        seen: &BTreeMap<String, String>,
    ) -> Result<Cleared, OrchestratorError> {
        self.operator_clear_read(group, by, deletions, seen, &AlertsRead::default())
    }

    /// [`Shared::operator_clear_seen`] of the alerts the operator read
    /// (`read`): a provider's block or hold, a stopped automatic failback
    /// or a divergent list raised after the reading (a clear delayed in
    /// transit, replayed from shell history) stays, said in `not_cleared`
    /// — never lifted or acknowledged unread.
    pub fn operator_clear_read(
        &self,
        group: &str,
        by: &str,
        deletions: &[String],
        seen: &BTreeMap<String, String>,
        read: &AlertsRead,
    ) -> Result<Cleared, OrchestratorError> {
        self.must_act()?;
        let strategy = self
            .strategies
            .get(group)
            .ok_or_else(|| OrchestratorError::NotFound(format!("group {group:?}")))?;
        let sites = self
            .cfg
            .groups
            .get(group)
            .map(|g| g.site_names())
            .unwrap_or_default();
        if let Some(other) = deletions.iter().find(|d| !sites.contains(d)) {
            return Err(OrchestratorError::Conflict(format!(
                "--deletions names {other:?}, not a site of group {group} [{}]; nothing was cleared",
                sites.join(", ")
            )));
        }
        let mut not_cleared = Vec::new();
        let unread = read.unread(strategy.alerts());
        let mut lifted = if unread.is_empty() {
            strategy.clear_alerts()
        } else {
            not_cleared.push(format!(
                "raised after you read the alerts, so nothing of the routing layer's was lifted: {}; \
                 read them again (`warden status {group}`) and clear if meant",
                unread.join("; ")
            ));
            Vec::new()
        };
        self.sync_provider_stops(Some(group));
        {
            let mut st = self.lock();
            // A pass held by an agent's mass-delete guard may go ahead
            // once where the operator named the site.
            let epoch = st.groups.get(group).map(|g| g.epoch).unwrap_or_default();
            let now_ms = self.clock.now_ms();
            let mut released = false;
            for site in &sites {
                let guard = Self::replication_status(&st, site, group).and_then(|(_, r)| r.guard);
                match guard {
                    Some(why)
                        if deletions.contains(site)
                            && seen.get(site).is_some_and(|read| *read != why) =>
                    {
                        not_cleared.push(format!(
                            "the pass held at {site} is not the one you read (held now: {why}); \
                             nothing released there: read it again (`warden status {group}`) and \
                             clear it if it is meant"
                        ))
                    }
                    // Nothing was held here when the operator read the
                    // group (no hold said for the site), and the alerts
                    // read do not show this one: it was raised since.
                    Some(why)
                        if deletions.contains(site)
                            && !seen.contains_key(site)
                            && read.alerts.as_ref().is_some_and(|a| {
                                !a.contains(&format!("replication at {site}: {why}"))
                            }) =>
                    {
                        not_cleared.push(format!(
                            "the pass held at {site} was held after you read the group's alerts \
                             (held now: {why}); nothing released there: read it again (`warden \
                             status {group}`) and clear it if it is meant"
                        ))
                    }
                    Some(why) if deletions.contains(site) => {
                        let mut cmd = Command::new(group, epoch, CommandKind::Clear).to_site(site);
                        cmd.id = format!("{}:{now_ms}", cmd.id);
                        cmd.guard_seen = Some(why.clone());
                        st.ledger.queue(cmd, None);
                        lifted.push(format!(
                            "the mass-delete guard at {site} lets the held pass go ahead once ({why})"
                        ));
                        released = true;
                    }
                    Some(why) => not_cleared.push(format!(
                        "the mass-delete guard at {site} still holds a pass ({why}); once you have checked, \
                         `warden clear {group} --deletions {site}` lets it go ahead once"
                    )),
                    None if deletions.contains(site) => {
                        not_cleared.push(format!("no pass is held by the mass-delete guard at {site}"))
                    }
                    None => {}
                }
            }
            if released {
                self.command_tick.send_modify(|v| *v += 1);
            }
            if let Some(g) = st.groups.get(group).cloned() {
                let blocked = g.failback_blocked.clone();
                if let Some(b) = blocked.filter(|b| !read.unread(vec![b.clone()]).is_empty()) {
                    not_cleared.push(format!(
                        "raised after you read the alerts, so automatic failback stays stopped: {b}"
                    ));
                } else if g.failback_blocked.is_some() {
                    let mut ng = g;
                    crate::retry::reset(&mut ng);
                    ng.failback_retry_unix_ms = None;
                    self.put_group_locked(&mut st, ng);
                    lifted.push("automatic failback may retry".to_string());
                }
            }
            if let Some(g) = st.groups.get(group).cloned() {
                let total = (g.divergent.len() as u64).saturating_add(g.divergent_not_stored);
                if let Some(n) = read.divergent.filter(|n| total > 0 && *n != total) {
                    not_cleared.push(format!(
                        "{total} divergent item(s) listed now, {n} when you read them: none acknowledged; \
                         read the list again (`warden status {group}`) and clear if meant"
                    ));
                } else if total > 0 {
                    lifted.push(format!("{total} divergent item(s) acknowledged"));
                    let mut ng = g;
                    ng.divergent.clear();
                    ng.divergent_not_stored = 0;
                    self.put_group_locked(&mut st, ng);
                }
            }
        }
        let still = if not_cleared.is_empty() {
            String::new()
        } else {
            format!("; not cleared: {}", not_cleared.join("; "))
        };
        self.event(
            EventKind::AlertCleared,
            Some(group),
            None,
            if lifted.is_empty() && not_cleared.is_empty() {
                format!("{} cleared alerts: nothing was blocked", operator_label(by))
            } else if lifted.is_empty() {
                format!(
                    "{} cleared alerts: nothing cleared{still}",
                    operator_label(by)
                )
            } else {
                format!(
                    "{} cleared alerts: {}{still}",
                    operator_label(by),
                    lifted.join("; ")
                )
            },
            vec![],
            None,
        );
        Ok(Cleared {
            cleared: lifted,
            not_cleared,
        })
    }
}

/// What the operator read before `warden clear` (its request names it):
/// the group's alerts and how many divergent items were listed. `None`:
/// not said (an older client, the API without a reading) — whatever is
/// raised is lifted, as before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsRead {
    /// The group's `alerts` as read.
    pub alerts: Option<Vec<String>>,
    /// The replication's `divergent_total` as read.
    pub divergent: Option<u64>,
}

impl AlertsRead {
    /// Which of `now` the operator did not read (none when no reading
    /// was said).
    fn unread(&self, now: Vec<String>) -> Vec<String> {
        match &self.alerts {
            None => Vec::new(),
            Some(read) => now.into_iter().filter(|a| !read.contains(a)).collect(),
        }
    }
}

/// What `warden clear` lifted, and what it did not (a mass-delete
/// guard's pass at a site it did not name, with how to release it; a site
/// named where nothing is held).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cleared {
    pub cleared: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_cleared: Vec<String>,
}
