//! The agent's view of its peer sites: their public endpoints probed every
//! interval on a schedule of their own, so that a dead peer (whose probes
//! run into their timeout) never delays this site's reports — the
//! heartbeat stays on its tick and a command's outcome travels at once.
//! Each report carries the latest completed views with their age
//! ([`PeerProbe::age_ms`]); a view whose verdict changed (reached ↔
//! failing) wakes the report loop, so the change is told at once.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::agent::PeerEndpoints;
use crate::checks::run_all;
use crate::wire::PeerProbe;

/// The latest completed probe of each peer.
#[derive(Default)]
pub(crate) struct PeerViews {
    latest: Mutex<Vec<(Instant, PeerProbe)>>,
    /// A view changed verdict (or arrived for the first time).
    pub(crate) changed: Notify,
}

impl PeerViews {
    fn lock(&self) -> MutexGuard<'_, Vec<(Instant, PeerProbe)>> {
        // Replaced whole under the lock: never half-written.
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The views for a report, each with its age now.
    pub(crate) fn snapshot(&self) -> Vec<PeerProbe> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(at, p)| PeerProbe {
                age_ms: u64::try_from(now.saturating_duration_since(*at).as_millis())
                    .unwrap_or(u64::MAX),
                ..p.clone()
            })
            .collect()
    }

    /// Store one round of probes taken now; wakes the report loop if a
    /// peer's verdict changed.
    pub(crate) fn store(&self, probes: Vec<PeerProbe>) {
        let now = Instant::now();
        let changed = {
            let mut latest = self.lock();
            let changed = probes.iter().any(|p| {
                latest
                    .iter()
                    .find(|(_, old)| old.site == p.site)
                    .is_none_or(|(_, old)| old.failing() != p.failing())
            });
            *latest = probes.into_iter().map(|p| (now, p)).collect();
            changed
        };
        if changed {
            self.changed.notify_one();
        }
    }

    /// Probe every peer each `interval` until `stop` (each probe is bounded
    /// by the interval, so a round ends before the next one is due).
    pub(crate) async fn run(
        &self,
        peers: &[PeerEndpoints],
        client: &crate::checks::ProbeClient,
        interval: Duration,
        stop: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let round = join_all(peers.iter().map(|p| async {
                PeerProbe {
                    site: p.site.clone(),
                    results: run_all(&p.endpoints, client).await,
                    age_ms: 0,
                }
            }));
            let probes = tokio::select! {
                _ = stop.cancelled() => return,
                r = round => r,
            };
            self.store(probes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CheckResult;

    fn probe(site: &str, ok: bool) -> PeerProbe {
        PeerProbe {
            site: site.into(),
            results: vec![CheckResult {
                name: "web".into(),
                ok,
                critical: true,
                detail: String::new(),
                elapsed_ms: 1,
            }],
            age_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_change_of_verdict_wakes_the_reports_and_views_carry_their_age() {
        let v = PeerViews::default();
        let woke = || async {
            tokio::time::timeout(Duration::from_millis(50), v.changed.notified())
                .await
                .is_ok()
        };
        v.store(vec![probe("b", true)]);
        assert!(woke().await, "a first view is news");
        v.store(vec![probe("b", true)]);
        assert!(!woke().await, "the same verdict again is not");
        std::thread::sleep(Duration::from_millis(30));
        let snap = v.snapshot();
        assert_eq!(snap.len(), 1);
        assert!(snap[0].age_ms >= 30, "age {}", snap[0].age_ms);
        v.store(vec![probe("b", false)]);
        assert!(woke().await, "b turned failing: told at once");
        assert!(v.snapshot()[0].failing());
    }
}
