//! The end of a `Drain` switch on HAProxy: the pending end a driver keeps
//! ([`PendingDrain`], aborted by a newer route and on drop), its timer, a
//! drain found unended on a route read taken up again, and the end itself
//! (draining servers to maintenance while the fence still holds the route).

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use super::parse::ServerState;
use super::{HaproxyDriver, Inner};

pub(super) struct PendingDrain {
    epoch: u64,
    site: String,
    task: tokio::task::AbortHandle,
}

impl Drop for HaproxyDriver {
    fn drop(&mut self) {
        if let Ok(mut d) = self.drain.lock() {
            if let Some(p) = d.take() {
                p.task.abort();
            }
        }
    }
}

impl HaproxyDriver {
    /// End the drain of `servers` (see `Inner::finish_drain`) for the route
    /// (`epoch`, `site`) after `after`; the pending end, replacing any other.
    pub(super) fn end_drain_after(
        &self,
        epoch: u64,
        site: &str,
        servers: Vec<String>,
        after: Duration,
    ) {
        let task_inner = Arc::clone(&self.inner);
        let owned_site = site.to_string();
        // The drain ends under the licence of the route that began it: an
        // orchestrator deposed meanwhile cuts nothing (see `crate::gate`).
        let gate = crate::gate::current();
        let task = tokio::spawn(crate::gate::under_opt(gate, async move {
            tokio::time::sleep(after).await;
            task_inner.finish_drain(epoch, &owned_site, &servers).await;
        }));
        let mut d = self.drain.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = d.replace(PendingDrain {
            epoch,
            site: site.to_string(),
            task: task.abort_handle(),
        }) {
            old.task.abort();
        }
    }

    /// A route read that finds servers of other sites still draining under
    /// the route the fence names (`epoch`, `site`), with no end of that
    /// drain pending in this driver: their drain was started by an
    /// orchestrator that stopped since (its timer went with it), or its end
    /// failed (the Runtime API did not answer then). Nothing else would end
    /// it — the route reads right, so reconciliation sees no drift — and
    /// the old site would keep its connections for good. It is ended as
    /// the route ordered: once `drain_timeout` has passed since HAProxy
    /// began the drain (`srv_time_since_last_change`; from now when it
    /// does not say), and only while the fence still names that route.
    pub(super) fn resume_drain(&self, epoch: u64, site: &str, servers: &[(&str, &ServerState)]) {
        let draining: Vec<&ServerState> = servers
            .iter()
            .filter(|(s, st)| *s != site && st.draining())
            .map(|(_, st)| *st)
            .collect();
        if draining.is_empty() || self.supersede_drain(epoch, site) {
            return;
        }
        let drain = self.inner.settings.drain_timeout;
        let after = draining
            .iter()
            .map(|st| drain.saturating_sub(Duration::from_secs(st.since_change.unwrap_or(0))))
            .min()
            .unwrap_or(drain);
        let names: Vec<String> = draining.iter().map(|st| st.name.clone()).collect();
        warn!(
            group = %self.inner.settings.group,
            frontend = %self.inner.settings.frontend,
            servers = ?names,
            epoch,
            site,
            ending_in = ?after,
            "HAProxy servers still draining with no end pending (the orchestrator that began the drain stopped, or its end failed): ending the drain"
        );
        self.end_drain_after(epoch, site, names, after);
    }

    /// Abort the pending drain end unless it belongs to (`epoch`, `site`).
    /// Returns whether a pending drain for exactly that route is kept.
    pub(super) fn supersede_drain(&self, epoch: u64, site: &str) -> bool {
        let Ok(mut d) = self.drain.lock() else {
            return false;
        };
        match d.as_ref() {
            Some(p) if p.epoch == epoch && p.site == site && !p.task.is_finished() => true,
            Some(_) => {
                if let Some(p) = d.take() {
                    p.task.abort();
                }
                false
            }
            None => false,
        }
    }
}

impl Inner {
    /// The end of a drain: every server in `servers` that is still draining
    /// goes to maintenance and loses its connections, if the fence still
    /// holds (`epoch`, `site`). A newer route writes the fence before it
    /// touches any server, so the fence is read after the servers' states and
    /// again just before each server: a newer route is left alone (but for a
    /// race within one command's round trip, which reconciliation repairs).
    async fn finish_drain(&self, epoch: u64, site: &str, servers: &[String]) {
        let (g, fe) = (&self.settings.group, &self.settings.frontend);
        let state = match self.servers_state().await {
            Ok(s) => s,
            Err(e) => {
                warn!(group = %g, frontend = %fe, cause = %e, "cannot end the drain: servers stay in drain");
                return;
            }
        };
        for server in servers {
            if !state.iter().any(|s| &s.name == server && s.draining()) {
                continue;
            }
            match self.read_fence().await {
                Ok(Some(f)) if f.epoch == epoch && f.site == site => {}
                Ok(f) => {
                    debug!(group = %g, epoch, ?f, "route changed during the drain; leaving the servers alone");
                    return;
                }
                Err(e) => {
                    warn!(group = %g, frontend = %fe, cause = %e, "cannot end the drain: servers stay in drain");
                    return;
                }
            }
            match self.cut(server).await {
                Ok(()) => debug!(group = %g, frontend = %fe, server = %server, "drain ended"),
                Err(e) => {
                    warn!(group = %g, frontend = %fe, server = %server, cause = %e, "cannot end the drain of a server")
                }
            }
        }
    }
}
