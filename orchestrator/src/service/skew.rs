//! Wall-clock times in the state a store holds, written by a clock ahead of
//! this process's: another node of the cluster, or this host before its
//! clock was set right. Within a process every time comes from one
//! monotonic [`Clock`], so a time ahead of it can only come from the store:
//! it holds decisions back no longer than it could have when written — an
//! automatic move counts toward the failover budget for one window from
//! now at most, a failback retry waits the longest back-off at most.

use super::*;

/// Bring the times of `loaded`'s groups that are ahead of `now_ms` back
/// within what they could mean; each group changed is to be written.
pub(crate) fn times_ahead(loaded: &mut Loaded, cfg: &Config, now_ms: u64) {
    // The longest back-off a failback retry (or a switchover's) is set to.
    let longest = crate::retry::BACKOFF_MAX
        .max(cfg.detection.hold_down.max(Duration::from_secs(5)))
        .as_millis();
    let retry_bound = now_ms.saturating_add(u64::try_from(longest).unwrap_or(u64::MAX));
    for g in loaded.groups.values_mut() {
        let mut changed = false;
        for t in g.moves_unix_ms.iter_mut().filter(|t| **t > now_ms) {
            *t = now_ms;
            changed = true;
        }
        if let Some(t) = g
            .failback_retry_unix_ms
            .as_mut()
            .filter(|t| **t > retry_bound)
        {
            *t = retry_bound;
            changed = true;
        }
        if let Some(t) = g.incident_started_unix_ms.as_mut().filter(|t| **t > now_ms) {
            *t = now_ms;
            changed = true;
        }
        if changed {
            warn!(group = %g.name, now_unix_ms = now_ms,
                  "the stored group holds times ahead of this clock (written by a clock ahead): taken as now");
            loaded.to_write.retain(|w| w.name != g.name);
            loaded.to_write.push(g.clone());
        }
    }
}
