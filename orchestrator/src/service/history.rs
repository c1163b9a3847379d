//! The time the retention of history (events past `events_max_age`,
//! runbooks past `runbooks_max_age`) counts age back from: this process's
//! wall clock, but never further than the newest time the store held when
//! this process loaded it plus the time really passed since (monotonic).
//!
//! A node whose clock runs ahead (a host booted with its clock wrong, a
//! step by a bad time source) would otherwise take the whole history for
//! old at its first pass and delete it — and everything it records itself
//! is stamped by that clock, so only what the store held before it can
//! bound it. A clock behind deletes less: the safe side. An empty store
//! gives no bound (the clock alone). Not covered: a process restarted (or
//! leading again) on a store it wrote while its clock was ahead — its own
//! records then are the newest and carry the time it was ahead; keeping a
//! bound of its own in the store would cover it.

use tokio::time::Instant;

use super::*;

/// The store's newest recorded time at a load and when it was read.
#[derive(Default)]
pub(crate) struct HistoryAnchor(Mutex<Option<(u64, Instant)>>);

impl HistoryAnchor {
    /// The state was (re)loaded: `newest_ms` is the newest time it holds.
    pub(crate) fn set(&self, newest_ms: Option<u64>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            newest_ms.map(|ms| (ms, Instant::now()));
    }

    /// `now_ms`, bounded by the anchor (see the module docs).
    pub(crate) fn bound(&self, now_ms: u64) -> u64 {
        match *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((ms, at)) => {
                let passed = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
                now_ms.min(ms.saturating_add(passed))
            }
            None => now_ms,
        }
    }
}

/// The newest time the loaded state records: a runbook's end or start, or
/// the last event's time (an event this version cannot read: none).
pub(crate) fn newest_recorded(loaded: &Loaded, store: &dyn crate::store::Store) -> Option<u64> {
    let runbooks = loaded
        .runbooks
        .values()
        .map(|r| r.finished_unix_ms.unwrap_or(r.started_unix_ms))
        .max();
    let last_event = loaded.next_event.saturating_sub(1);
    let event = (last_event > 0)
        .then(|| store.events(last_event - 1, 1).ok())
        .flatten()
        .and_then(|page| page.first().map(|e| e.time_unix_ms));
    runbooks.max(event)
}

impl Shared {
    /// The time history's age is counted back from (see the module docs).
    pub(crate) fn history_now_ms(&self) -> u64 {
        self.history.bound(self.clock.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bound_moves_with_the_time_passed_and_never_past_the_clock() {
        let a = HistoryAnchor::default();
        assert_eq!(a.bound(5_000), 5_000, "no anchor: the clock");
        a.set(Some(1_000));
        assert_eq!(a.bound(900_000_000), 1_000, "a clock far ahead is bounded");
        tokio::time::advance(std::time::Duration::from_secs(60)).await;
        assert_eq!(a.bound(900_000_000), 61_000, "plus the time passed");
        assert_eq!(a.bound(30_000), 30_000, "a clock behind stays");
        a.set(None);
        assert_eq!(a.bound(900_000_000), 900_000_000, "an empty store");
    }

    /// An orchestrator whose clock runs 400 days ahead starts on a store of
    /// 200 events of the last minute and writes its own: none of the 200
    /// goes (`events_max_age` 90 days). Before, its first batch deleted
    /// every stored event as older than 90 days by its clock.
    #[tokio::test]
    async fn a_clock_far_ahead_deletes_no_recent_event() {
        use crate::model::{Event, EventKind};
        use crate::store::{MemStore, Store};
        let store = Arc::new(MemStore::default());
        let now = Clock::new().now_ms();
        let events: Vec<Event> = (1..=200u64)
            .map(|id| Event {
                id,
                time_unix_ms: now - 60_000 + id,
                kind: EventKind::Maintenance,
                group: Some("web".into()),
                site: None,
                message: format!("e{id}"),
                evidence: vec![],
                runbook: None,
                epoch: None,
                term: 0,
            })
            .collect();
        store.put_events(&events).unwrap();
        let dir = super::super::harness::test_dir(true, 5);
        let text = super::super::harness::config_text(&dir, true, 5, "");
        let s = super::super::harness::start_clocked(
            &text,
            &dir,
            store.clone(),
            Mode::Local,
            Clock::new().ahead(400 * 86_400_000),
            |_, _| {
                crate::routing::Routing::Single(Arc::new(
                    super::super::harness::FakeRoute::default(),
                ))
            },
        )
        .expect("config");
        let stop = tokio_util::sync::CancellationToken::new();
        let writer = tokio::spawn(s.clone().write_events(stop.clone()));
        s.event(
            EventKind::Maintenance,
            Some("web"),
            None,
            "mine".into(),
            vec![],
            None,
        );
        let newest = s.lock().next_event - 1;
        for _ in 0..200 {
            if store.last_event_id().unwrap() >= newest {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        stop.cancel();
        let _ = writer.await;
        let kept = store.events(0, 10_000).unwrap();
        assert_eq!(kept.first().map(|e| e.id), Some(1), "the oldest stays");
        assert!(kept.len() > 200, "{} kept", kept.len());
    }
}
