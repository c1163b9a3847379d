//! The command long-poll: `GET {base}/v1/agents/commands?wait_ms=N` to each
//! orchestrator, again at once after news, with a backoff that never
//! exceeds the interval while it is unreachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Link, Shared};
use crate::error::AgentError;
use crate::wire::ReportResponse;

impl Shared {
    async fn poll(&self, target: usize) -> Result<ReportResponse, AgentError> {
        let wait_ms = u64::try_from(self.settings.long_poll.as_millis()).unwrap_or(u64::MAX);
        let req = self
            .orchestrator
            .get(format!(
                "{}?wait_ms={wait_ms}",
                self.targets[target].commands_url
            ))
            .timeout(self.settings.long_poll + self.settings.interval.max(Duration::from_secs(2)));
        self.call(req).await
    }
}

pub(super) async fn poll_loop(shared: Arc<Shared>, target: usize, token: CancellationToken) {
    let interval = shared.settings.interval;
    let first_backoff = interval.min(Duration::from_millis(100));
    let mut backoff = first_backoff;
    let mut link = Link::new("command poll", &shared.targets[target].commands_url);
    // Answers in a row that brought nothing new.
    let mut quiet = 0u32;
    loop {
        let started = Instant::now();
        let answer = tokio::select! {
            _ = token.cancelled() => return,
            a = shared.poll(target) => a,
        };
        let pause = match answer {
            Ok(resp) => {
                link.up();
                backoff = first_backoff;
                // Poll again at once after news, and once after an early
                // answer without news (the report may have brought the same
                // command first); an orchestrator that does not hold the poll,
                // or repeats commands already taken, gets one per interval.
                let news = shared.handle(resp, "poll", target) > 0;
                if news || started.elapsed() >= interval {
                    quiet = 0;
                    Duration::ZERO
                } else {
                    quiet += 1;
                    if quiet == 1 {
                        Duration::ZERO
                    } else {
                        interval.saturating_sub(started.elapsed())
                    }
                }
            }
            Err(e) => {
                link.down(&e);
                let pause = backoff;
                backoff = (backoff * 2).min(interval);
                pause
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
