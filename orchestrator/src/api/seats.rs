//! The report streams each site may hold open: at most [`PER_SITE`]. A
//! stream beyond it ends the site's oldest one. An agent holds one stream
//! per orchestrator (the few more allow a reconnect while the old stream
//! has not timed out yet), so a holder of one site's agent token that
//! opens stream after stream only ever replaces its own: it cannot hold
//! every connection of the API (a stream keeps its connection's place
//! under `max_connections` for as long as it lives, and is never
//! displaced by a newcomer the way an idle connection is).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

/// Open report streams per site, at most.
pub(crate) const PER_SITE: usize = 4;

/// The open report streams, per site, oldest first.
#[derive(Default)]
pub(crate) struct Seats {
    open: Mutex<HashMap<String, VecDeque<(u64, CancellationToken)>>>,
    next: AtomicU64,
}

/// One stream's place: ended (its token cancelled) when a newer stream of
/// the same site takes it; given back when dropped.
pub(crate) struct Seat<'a> {
    seats: &'a Seats,
    site: String,
    id: u64,
    /// Cancelled when a newer stream of the site displaces this one.
    pub(crate) displaced: CancellationToken,
}

impl Seats {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<(u64, CancellationToken)>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new stream of `site`; the site's oldest stream is
    /// ended when it already holds [`PER_SITE`].
    pub(crate) fn take(&self, site: &str) -> Seat<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let displaced = CancellationToken::new();
        let mut open = self.lock();
        let held = open.entry(site.to_string()).or_default();
        while held.len() >= PER_SITE {
            if let Some((_, oldest)) = held.pop_front() {
                oldest.cancel();
            }
        }
        held.push_back((id, displaced.clone()));
        Seat {
            seats: self,
            site: site.to_string(),
            id,
            displaced,
        }
    }

    /// How many streams `site` holds open.
    #[cfg(test)]
    pub(crate) fn held(&self, site: &str) -> usize {
        self.lock().get(site).map_or(0, VecDeque::len)
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let mut open = self.seats.lock();
        if let Some(held) = open.get_mut(&self.site) {
            held.retain(|(id, _)| *id != self.id);
            if held.is_empty() {
                open.remove(&self.site);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_beyond_its_streams_ends_its_oldest_and_no_other_sites() {
        let seats = Seats::default();
        let other = seats.take("b");
        let mut a: Vec<Seat<'_>> = (0..PER_SITE).map(|_| seats.take("a")).collect();
        assert!(a.iter().all(|s| !s.displaced.is_cancelled()));
        a.push(seats.take("a"));
        assert!(
            a[0].displaced.is_cancelled(),
            "the oldest of a's streams ends"
        );
        assert!(a[1..].iter().all(|s| !s.displaced.is_cancelled()));
        assert!(
            !other.displaced.is_cancelled(),
            "b's stream is not a's to end"
        );
        assert_eq!(seats.held("a"), PER_SITE);
        drop(a);
        assert_eq!(seats.held("a"), 0, "every place given back");
        assert_eq!(seats.held("b"), 1);
    }
}
