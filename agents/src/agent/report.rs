//! The report loop (a report every interval, or at once when a command
//! finished or a peer's verdict changed, handed to one courier per
//! orchestrator) and [`Link`], the health of one connection to an
//! orchestrator, logged once per change of cause.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::AgentError;

use super::{fit, stream, Shared};

pub(super) async fn report_loop(shared: Arc<Shared>, token: CancellationToken) {
    let mut ticker = tokio::time::interval(shared.settings.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // One courier per orchestrator, each with the latest report.
    let (latest, _) = watch::channel(None);
    let mut couriers = JoinSet::new();
    for i in 0..shared.targets.len() {
        couriers.spawn(stream::courier(
            shared.clone(),
            i,
            latest.subscribe(),
            token.clone(),
        ));
    }
    let mut seq = 0u64;
    // Outcomes left out of the last report to keep it within the limit.
    let mut waiting = 0usize;
    let limit = shared.settings.max_report_bytes;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
            _ = shared.finished.notified() => {}
            _ = shared.peer_views.changed.notified() => {}
        }
        seq += 1;
        let report = tokio::select! {
            _ = token.cancelled() => break,
            r = shared.report(seq) => r,
        };
        match fit::encode_within(report, limit) {
            Ok((body, left_out)) => {
                if left_out > 0 && waiting == 0 {
                    warn!(left_out, limit, "command outcomes left for later reports: all of them would make a report over orchestrator.max_body_bytes");
                } else if left_out == 0 && waiting > 0 {
                    info!("every command outcome fits in a report again");
                }
                waiting = left_out;
                latest.send_replace(Some(Arc::new(stream::Outgoing { seq, body })));
            }
            Err(e) => warn!(error = %e, "cannot encode a report"),
        }
    }
    while couriers.join_next().await.is_some() {}
}

/// Health of one connection to the orchestrator, so that failures are
/// logged once per change of cause rather than once per attempt.
pub(super) struct Link {
    what: &'static str,
    url: String,
    /// The cause last logged; `None` while requests succeed.
    failing: Option<String>,
}

impl Link {
    pub(super) fn new(what: &'static str, url: &str) -> Self {
        Link {
            what,
            url: url.to_string(),
            failing: None,
        }
    }

    pub(super) fn down(&mut self, e: &AgentError) {
        let cause = e.to_string();
        if self.failing.as_deref() == Some(cause.as_str()) {
            debug!(request = self.what, url = %self.url, cause = %cause, "orchestrator request failed again");
        } else {
            warn!(request = self.what, url = %self.url, cause = %cause, "orchestrator request failed");
            self.failing = Some(cause);
        }
    }

    pub(super) fn up(&mut self) {
        if self.failing.take().is_some() {
            info!(request = self.what, url = %self.url, "orchestrator reachable again");
        }
    }
}
