//! Concurrent command long-polls per agent token: each holds a connection
//! for up to `long_poll`, so one site's token (a stuck agent, or a stolen
//! token) may hold at most [`POLLS_PER_SITE`] of them at once; more are
//! answered 429 at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Long-polls one site may have open at once (an agent needs one).
pub const POLLS_PER_SITE: usize = 4;

/// Open long-polls per site.
#[derive(Default, Clone)]
pub struct Polls(Arc<Mutex<HashMap<String, usize>>>);

/// One open long-poll; the count drops when it is dropped.
pub struct PollSlot {
    polls: Polls,
    site: String,
}

impl Polls {
    /// A slot for a long-poll of `site`, or `None` at the cap.
    pub fn enter(&self, site: &str) -> Option<PollSlot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(site.to_string()).or_default();
        if *n >= POLLS_PER_SITE {
            return None;
        }
        *n += 1;
        Some(PollSlot {
            polls: self.clone(),
            site: site.to_string(),
        })
    }
}

impl Drop for PollSlot {
    fn drop(&mut self) {
        let mut open = self.polls.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.site) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_site_and_frees_on_drop() {
        let p = Polls::default();
        let held: Vec<_> = (0..POLLS_PER_SITE).map(|_| p.enter("a").unwrap()).collect();
        assert!(p.enter("a").is_none());
        assert!(p.enter("b").is_some(), "another site has its own slots");
        drop(held);
        assert!(p.enter("a").is_some());
    }
}
