//! What a site says keeps it from being promoted for a group now (its data
//! volume is not mounted: `AuthorityWire::unfit` in its reports): an
//! automatic move to it waits for the operator, with that reason, and the
//! group's alerts say it while it lasts. A report older than
//! `agent_timeout` says nothing.

use super::*;

impl Shared {
    /// Why `site`, by its last report within `agent_timeout`, cannot be
    /// promoted for `group` now.
    pub(super) fn unfit_locked(&self, st: &State, group: &str, site: &str) -> Option<String> {
        let (at, rep) = st.evidence.report(site)?;
        if at.elapsed() > self.cfg.detection.agent_timeout {
            return None;
        }
        let a = rep.authority.iter().find(|a| a.group == group)?;
        let why = a.unfit.as_deref()?;
        Some(format!(
            "site {site} cannot be promoted for group {group} now (its last report): {}",
            crate::text::printable(why)
        ))
    }

    /// One alert per site of `group` that cannot be promoted now.
    pub(super) fn unfit_alerts_locked(&self, st: &State, group: &str) -> Vec<String> {
        let Some(gc) = self.cfg.groups.get(group) else {
            return Vec::new();
        };
        gc.site_names()
            .iter()
            .filter_map(|site| self.unfit_locked(st, group, site))
            .collect()
    }
}
