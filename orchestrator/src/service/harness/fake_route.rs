//! The fake routing layer of the service's tests (`FakeRoute`): routes,
//! hold orders fenced as `warden frontend` fences them, stops, alerts.
use super::*;

#[derive(Default)]
pub(in crate::service) struct FakeRoute {
    pub(in crate::service) route: Mutex<(Option<String>, u64)>,
    /// `current` fails as if the layer could not be reached.
    pub(in crate::service) blind: std::sync::atomic::AtomicBool,
    /// One element of the layer (this name) cannot be read; the rest
    /// answers as `route` says.
    pub(in crate::service) unread_one: Mutex<Option<String>>,
    /// Hold orders: (epoch, ttl, pause).
    pub(in crate::service) holds: Mutex<Vec<(u64, Duration, bool)>>,
    /// Each hold order's place (`seq`), as `holds` lists them.
    pub(in crate::service) hold_seqs: Mutex<Vec<u64>>,
    /// Each hold order's term and whether it was taken, as `holds` lists
    /// them: the fake fences hold orders as `warden frontend` does — one
    /// below the highest epoch is stale, one placed before the newest of
    /// its epoch is refused, naming that newest.
    pub(in crate::service) hold_taken: Mutex<Vec<(u64, bool)>>,
    /// The hold fence: the highest hold epoch and the newest place taken at it.
    pub(in crate::service) hold_fence: Mutex<(u64, warden_strategies::HoldPlace)>,
    /// The highest `seq` this layer reported taken (in a read, or in a
    /// refusal), as the builtin driver keeps it.
    pub(in crate::service) hold_reported: std::sync::atomic::AtomicU64,
    /// Runs at each `current` before it answers (what happens meanwhile).
    #[allow(clippy::type_complexity)]
    pub(in crate::service) on_read: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// While it says true, `current` waits (after `on_read`): a layer
    /// that does not answer yet, for as long as a test wants.
    pub(in crate::service) stalled: Mutex<Option<tokio::sync::watch::Receiver<bool>>>,
    /// `activate` fails as if the layer could not be reached.
    pub(in crate::service) refuse_writes: std::sync::atomic::AtomicBool,
    /// `activate` answers Ok and changes nothing (a layer that keeps its
    /// own idea: nameservers that are not the provider's, say).
    pub(in crate::service) ignore_writes: std::sync::atomic::AtomicBool,
    /// `activate` calls received.
    pub(in crate::service) activations: std::sync::atomic::AtomicUsize,
    /// The stops this layer says are in force (`Strategy::stops`).
    pub(in crate::service) stops: Mutex<Vec<warden_strategies::ProviderStop>>,
    /// What each `restore_stops` was given.
    pub(in crate::service) restored: Mutex<Vec<Vec<warden_strategies::ProviderStop>>>,
    /// The alerts this layer raises (a provider's block), until cleared.
    pub(in crate::service) alerts: Mutex<Vec<String>>,
    /// `term_began` calls received.
    pub(in crate::service) terms_began: std::sync::atomic::AtomicUsize,
    /// `leads_under` calls received: (term, cluster) each.
    pub(in crate::service) leads: Mutex<Vec<(u64, Option<u64>)>>,
}

#[async_trait]
impl Strategy for FakeRoute {
    fn name(&self) -> &str {
        "fake"
    }
    async fn activate(&self, target: &SiteRoute, epoch: u64) -> Result<(), StrategyError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.activations.fetch_add(1, SeqCst);
        if self.refuse_writes.load(SeqCst) {
            return Err(StrategyError::Unreachable {
                element: "fake".into(),
                reason: "connection refused".into(),
            });
        }
        let mut r = self.route.lock().unwrap();
        if epoch < r.1 {
            return Err(StrategyError::StaleEpoch {
                element: "fake".into(),
                sent: epoch,
                seen: r.1,
            });
        }
        if !self.ignore_writes.load(SeqCst) {
            *r = (Some(target.site.clone()), epoch);
        }
        Ok(())
    }
    fn stops(&self) -> Vec<warden_strategies::ProviderStop> {
        self.stops.lock().unwrap().clone()
    }
    fn alerts(&self) -> Vec<String> {
        self.alerts.lock().unwrap().clone()
    }
    fn clear_alerts(&self) -> Vec<String> {
        std::mem::take(&mut *self.alerts.lock().unwrap())
    }
    /// Takes back every stop but one whose `config` is "changed".
    fn term_began(&self) {
        self.terms_began
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn leads_under(&self, term: u64, cluster: Option<u64>) {
        self.leads.lock().unwrap().push((term, cluster));
    }
    fn restore_stops(&self, stops: &[warden_strategies::ProviderStop]) -> Vec<String> {
        self.restored.lock().unwrap().push(stops.to_vec());
        let (kept, dropped): (Vec<_>, Vec<_>) =
            stops.iter().cloned().partition(|s| s.config != "changed");
        *self.stops.lock().unwrap() = kept;
        dropped
            .into_iter()
            .map(|s| format!("{} — lifted", s.line))
            .collect()
    }
    async fn hold(
        &self,
        epoch: u64,
        place: warden_strategies::HoldPlace,
        ttl: Duration,
        pause: bool,
    ) -> Result<(), StrategyError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.holds.lock().unwrap().push((epoch, ttl, pause));
        self.hold_seqs.lock().unwrap().push(place.seq);
        let mut fence = self.hold_fence.lock().unwrap();
        let refused = if epoch < fence.0 {
            Some(StrategyError::StaleEpoch {
                element: "fake".into(),
                sent: epoch,
                seen: fence.0,
            })
        } else if epoch == fence.0 && place.seq > 0 && place < fence.1 {
            self.hold_reported.fetch_max(fence.1.seq, SeqCst);
            Some(StrategyError::Rejected {
                element: "fake".into(),
                reason: format!(
                    "hold order refused: an older order {place:?} than the newest {:?}",
                    fence.1
                ),
            })
        } else {
            None
        };
        self.hold_taken
            .lock()
            .unwrap()
            .push((place.term, refused.is_none()));
        if let Some(e) = refused {
            return Err(e);
        }
        *fence = if epoch == fence.0 {
            (epoch, fence.1.max(place))
        } else {
            (epoch, place)
        };
        Ok(())
    }
    fn hold_seq_taken(&self) -> u64 {
        self.hold_reported.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn current(&self) -> Result<Observed, StrategyError> {
        if let Some(f) = self.on_read.lock().unwrap().as_ref() {
            f();
        }
        let stalled = self.stalled.lock().unwrap().clone();
        if let Some(mut s) = stalled {
            let _ = s.wait_for(|held| !held).await;
        }
        if self.blind.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StrategyError::Unreachable {
                element: "fake".into(),
                reason: "request timed out".into(),
            });
        }
        let taken = self.hold_fence.lock().unwrap().1.seq;
        self.hold_reported
            .fetch_max(taken, std::sync::atomic::Ordering::SeqCst);
        let r = self.route.lock().unwrap();
        let unread_elements: Vec<(String, String)> = self
            .unread_one
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.clone(), format!("{e} unreachable: request timed out")))
            .collect();
        Ok(Observed {
            site: r.0.clone(),
            epoch: r.1,
            drift: unread_elements.iter().map(|(_, l)| l.clone()).collect(),
            unread: vec![],
            unread_elements,
        })
    }
}
