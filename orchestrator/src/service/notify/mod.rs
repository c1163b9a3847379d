//! Notifications (DESIGN §8: "notify commands and webhooks on every state
//! change"): each `[[orchestrator.notify]]` entry gets the events of the
//! kinds it wants, in order, from the licence holder only, through a
//! bounded queue and a delivery task of its own, so a slow or dead
//! receiver never holds up the service or another receiver.
//!
//! - A webhook gets `POST url` with the event as JSON (`id`, `kind`,
//!   `group`, `site`, `message`, `time_unix_ms`, `evidence`, `runbook`,
//!   `epoch` and `term` (the authority it was recorded under: see
//!   [`Event`]), `delivery`), `X-Warden-Event: KIND`, `X-Warden-Delivery: BOOT-ID`
//!   (the body's `delivery`: the process's random boot tag and the event
//!   id; receivers drop repeats by it — a retried delivery may arrive
//!   twice — and a restarted orchestrator, whose event ids may start
//!   again below ones it sent, has another tag) and, with a `secret`,
//!   `X-Warden-Signature-256: sha256=HEX`, the body's HMAC-SHA256
//!   (GitHub's webhook form), which so covers the delivery id. 2xx is
//!   delivered; 408, 429, 5xx and network failures are retried (a 429 or
//!   503 with `Retry-After` — seconds or an HTTP date — no sooner than it
//!   asks); a redirect
//!   or another 4xx is given up at once. No proxy from the environment
//!   is used. The URL is never logged (a chat webhook's URL is often its
//!   secret): the entry's name is.
//! - A command gets the same JSON on its standard input and
//!   `WARDEN_DELIVERY`, `WARDEN_EVENT_ID`, `WARDEN_EVENT_KIND`,
//!   `WARDEN_GROUP`, `WARDEN_SITE`, `WARDEN_EPOCH`, `WARDEN_TERM`
//!   in a clean environment; exit 0 is delivered, anything else retried (a
//!   program that is missing or not executable is given up at once).
//! - An event is retried (back-off 1 s to 1 min) until `retry_for` after
//!   it was recorded, then given up; an event already older than that when
//!   its turn comes is tried once. So a receiver that was down for hours
//!   holds its queue up for `retry_for` at most, and the newest events are
//!   the ones that arrive. A full queue ([`QUEUE`] events) drops its
//!   oldest event.
//! - Only the licence holder sends: an event recorded while following is
//!   not sent, and a node that loses the licence drops what it has queued.
//! - Counted in `warden_notify_sent_total{notify}` and
//!   `warden_notify_failed_total{notify, reason}` (`queue_full`,
//!   `refused`, `retries_exhausted`, `not_leader`, `shutdown`).
//!
//! Here: the entries, their queues and [`Notify::offer`]; `deliver.rs`
//! each entry's delivery task (retries, the webhook, the command);
//! `tests.rs`.

use std::collections::VecDeque;
use std::time::Duration;

use tracing::debug;
use warden_config::{NotifyConfig, Secret};

use super::*;
use crate::metrics::Metrics;

mod deliver;
#[cfg(test)]
mod tests;

pub(crate) use deliver::Worker;

/// Events waiting per entry at most.
pub(crate) const QUEUE: usize = 1000;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// One entry's queue, shared by the service (which offers) and the entry's
/// delivery task (which takes).
#[derive(Default)]
struct Queue {
    events: Mutex<VecDeque<Arc<Event>>>,
    ready: tokio::sync::Notify,
    /// Events dropped from a full queue (the first and every 100th said).
    dropped: std::sync::atomic::AtomicU64,
}

/// One entry: its settings and its queue.
struct Entry {
    cfg: NotifyConfig,
    queue: Arc<Queue>,
}

/// The notify entries of the service.
#[derive(Default)]
pub(crate) struct Notify {
    entries: Vec<Entry>,
    /// The delivery tasks, taken once by [`Notify::workers`].
    workers: Mutex<Vec<Worker>>,
}

impl Notify {
    /// The entries of `list`, each with its secret (loaded by the settings);
    /// their commands' marks bound to `run_dir` (`super::leftovers`).
    pub(crate) fn new(
        list: &[NotifyConfig],
        secrets: Vec<Option<Secret>>,
        run_dir: &std::path::Path,
    ) -> Result<Notify, OrchestratorError> {
        let mut tag = [0u8; 4];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut tag).map_err(
            |_| OrchestratorError::Setup("notify: no random bytes for the boot tag".into()),
        )?;
        let boot: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let mut entries = Vec::new();
        let mut workers = Vec::new();
        for (cfg, secret) in list.iter().zip(secrets) {
            let queue = Arc::new(Queue::default());
            let http = reqwest::Client::builder()
                .timeout(cfg.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| {
                    OrchestratorError::Setup(format!(
                        "notify {}: cannot build the HTTP client: {e}",
                        cfg.name
                    ))
                })?;
            entries.push(Entry {
                cfg: cfg.clone(),
                queue: queue.clone(),
            });
            workers.push(Worker {
                cfg: cfg.clone(),
                secret,
                queue,
                http,
                boot: boot.clone(),
                run_dir: run_dir.to_path_buf(),
            });
        }
        Ok(Notify {
            entries,
            workers: Mutex::new(workers),
        })
    }

    /// The delivery tasks (once: later calls get none).
    pub(crate) fn workers(&self) -> Vec<Worker> {
        std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Queue `e` for every entry that wants its kind (never waits; a full
    /// queue drops its oldest event).
    pub(crate) fn offer(&self, e: &Event, metrics: &Metrics) {
        if self.entries.is_empty() {
            return;
        }
        let kind = kind_name(e.kind);
        let mut shared: Option<Arc<Event>> = None;
        for entry in self.entries.iter().filter(|x| x.cfg.wants(&kind)) {
            let ev = shared.get_or_insert_with(|| Arc::new(e.clone())).clone();
            let dropped = {
                let mut q = entry.queue.events.lock().unwrap_or_else(|p| p.into_inner());
                q.push_back(ev);
                (q.len() > QUEUE).then(|| q.pop_front()).flatten()
            };
            if let Some(old) = dropped {
                metrics.notify_failed(&entry.cfg.name, "queue_full");
                let n = entry
                    .queue
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n % 100 == 0 {
                    warn!(notify = %entry.cfg.name, event = old.id, dropped = n + 1, "notification dropped: {QUEUE} events wait for this receiver; the oldest go first");
                }
            }
            entry.queue.ready.notify_one();
        }
    }

    /// Events waiting for `name` (tests).
    #[cfg(test)]
    fn waiting(&self, name: &str) -> usize {
        self.entries
            .iter()
            .find(|e| e.cfg.name == name)
            .map(|e| e.queue.events.lock().unwrap().len())
            .unwrap_or(0)
    }
}

/// An event kind as events and the config spell it.
pub(crate) fn kind_name(k: EventKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Shared {
    /// The notify entries' delivery tasks, to be run (once).
    pub(crate) fn notify_workers(&self) -> Vec<Worker> {
        self.notify.workers()
    }
}
