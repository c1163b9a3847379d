//! Notifications (DESIGN §8: "notify commands and webhooks on every state
//! change"): each `[[orchestrator.notify]]` entry gets the events of the
//! kinds it wants, in order, from the licence holder only, through a
//! bounded queue and a delivery task of its own, so a slow or dead
//! receiver never holds up the service or another receiver.
//!
//! - A webhook gets `POST url` with the event as JSON (`id`, `kind`,
//!   `group`, `site`, `message`, `time_unix_ms`, `evidence`, `runbook`),
//!   `X-Warden-Event: KIND`, `X-Warden-Delivery: BOOT-ID` (the process's
//!   random boot tag and the event id: receivers drop repeats by it — a
//!   retried delivery may arrive twice — and a restarted orchestrator,
//!   whose event ids may start again below ones it sent, has another tag)
//!   and, with a `secret`, `X-Warden-Signature-256: sha256=HEX`, the
//!   body's HMAC-SHA256 (GitHub's webhook form). 2xx is delivered; 408,
//!   429, 5xx and network failures are retried; a redirect or another 4xx
//!   is given up at once. No proxy from the environment is used. The URL
//!   is never logged (a chat webhook's URL is often its secret): the
//!   entry's name is.
//! - A command gets the event as JSON on its standard input and
//!   `WARDEN_EVENT_ID`, `WARDEN_EVENT_KIND`, `WARDEN_GROUP`, `WARDEN_SITE`
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

use std::collections::VecDeque;
use std::time::Duration;

use tracing::debug;
use warden_config::{NotifyConfig, Secret};

use super::*;
use crate::metrics::Metrics;

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

/// One entry's delivery task (see [`Worker::run`]).
pub(crate) struct Worker {
    cfg: NotifyConfig,
    secret: Option<Secret>,
    queue: Arc<Queue>,
    http: reqwest::Client,
    /// This process's tag in delivery ids.
    boot: String,
}

/// How one delivery failed.
enum Failure {
    /// Worth trying again (network, 408, 429, 5xx, a command's exit).
    Again(String),
    /// Not worth it (a redirect, another 4xx, a program that cannot start).
    GiveUp(String),
}

impl Notify {
    /// The entries of `list`, each with its secret (loaded by the settings).
    pub(crate) fn new(
        list: &[NotifyConfig],
        secrets: Vec<Option<Secret>>,
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

impl Worker {
    fn take(&self) -> Option<Arc<Event>> {
        self.queue
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Drop everything queued, counted as `reason`; how many.
    fn drop_all(&self, shared: &Shared, reason: &str) -> usize {
        let n =
            std::mem::take(&mut *self.queue.events.lock().unwrap_or_else(|p| p.into_inner())).len();
        for _ in 0..n {
            shared.metrics.notify_failed(&self.cfg.name, reason);
        }
        n
    }

    /// Deliver queued events in order until `stop`.
    pub(crate) async fn run(self, shared: Arc<Shared>, stop: CancellationToken) {
        loop {
            let e = loop {
                if let Some(e) = self.take() {
                    break e;
                }
                tokio::select! {
                    _ = self.queue.ready.notified() => {}
                    _ = stop.cancelled() => return,
                }
            };
            let body = match serde_json::to_vec(&*e) {
                Ok(b) => b,
                Err(err) => {
                    warn!(notify = %self.cfg.name, event = e.id, cause = %err, "notification not sent: the event cannot be encoded");
                    continue;
                }
            };
            // Until `retry_for` after the event was recorded (wall clock).
            let retry_ms = u64::try_from(self.cfg.retry_for.as_millis()).unwrap_or(u64::MAX);
            let give_up_unix_ms = e.time_unix_ms.saturating_add(retry_ms);
            let mut backoff = BACKOFF_MIN;
            loop {
                if stop.is_cancelled() {
                    let n = self.drop_all(&shared, "shutdown") + 1;
                    shared.metrics.notify_failed(&self.cfg.name, "shutdown");
                    warn!(notify = %self.cfg.name, events = n, "notifications not delivered: the orchestrator stops");
                    return;
                }
                if !shared.licence.is_held() {
                    let n = self.drop_all(&shared, "not_leader") + 1;
                    shared.metrics.notify_failed(&self.cfg.name, "not_leader");
                    warn!(notify = %self.cfg.name, events = n, "notifications dropped: this orchestrator no longer holds the licence to act (the leader tells)");
                    break;
                }
                let result = tokio::select! {
                    r = self.deliver(&e, &body) => r,
                    _ = stop.cancelled() => {
                        let n = self.drop_all(&shared, "shutdown") + 1;
                        shared.metrics.notify_failed(&self.cfg.name, "shutdown");
                        warn!(notify = %self.cfg.name, events = n, "notifications not delivered: the orchestrator stops");
                        return;
                    }
                };
                match result {
                    Ok(()) => {
                        shared.metrics.notify_sent(&self.cfg.name);
                        debug!(notify = %self.cfg.name, event = e.id, "notification delivered");
                        break;
                    }
                    Err(Failure::GiveUp(why)) => {
                        shared.metrics.notify_failed(&self.cfg.name, "refused");
                        warn!(notify = %self.cfg.name, event = e.id, cause = %why, "notification given up: not worth retrying");
                        break;
                    }
                    Err(Failure::Again(why)) => {
                        let now_ms = shared.clock.now_ms();
                        let left = give_up_unix_ms.saturating_sub(now_ms);
                        if left == 0 {
                            shared
                                .metrics
                                .notify_failed(&self.cfg.name, "retries_exhausted");
                            warn!(notify = %self.cfg.name, event = e.id, cause = %why, retry_for = ?self.cfg.retry_for, "notification given up: retry_for has passed since the event");
                            break;
                        }
                        let pause = backoff.min(Duration::from_millis(left));
                        debug!(notify = %self.cfg.name, event = e.id, cause = %why, retry_in = ?pause, "notification failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stop.cancelled() => {
                                let n = self.drop_all(&shared, "shutdown") + 1;
                                shared.metrics.notify_failed(&self.cfg.name, "shutdown");
                                warn!(notify = %self.cfg.name, events = n, "notifications not delivered: the orchestrator stops");
                                return;
                            }
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        }
    }

    async fn deliver(&self, e: &Event, body: &[u8]) -> Result<(), Failure> {
        let kind = kind_name(e.kind);
        if let Some(url) = &self.cfg.url {
            let mut req = self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .header("X-Warden-Event", &kind)
                .header("X-Warden-Delivery", format!("{}-{}", self.boot, e.id))
                .body(body.to_vec());
            if let Some(s) = &self.secret {
                req = req.header("X-Warden-Signature-256", signature(s, body));
            }
            // The URL is left out of every message (it may be the secret).
            let resp = req.send().await.map_err(|err| {
                Failure::Again(crate::text::printable(&describe(&err)).into_owned())
            })?;
            let status = resp.status();
            return match status.as_u16() {
                200..=299 => Ok(()),
                408 | 429 | 500..=599 => Err(Failure::Again(format!("HTTP {status}"))),
                300..=399 => Err(Failure::GiveUp(format!(
                    "HTTP {status}: redirects are not followed; give the final URL"
                ))),
                _ => Err(Failure::GiveUp(format!("HTTP {status}"))),
            };
        }
        let Some(argv) = &self.cfg.command else {
            return Err(Failure::GiveUp("neither url nor command".into()));
        };
        let env = [
            ("WARDEN_EVENT_ID", e.id.to_string()),
            ("WARDEN_EVENT_KIND", kind),
            ("WARDEN_GROUP", e.group.clone().unwrap_or_default()),
            ("WARDEN_SITE", e.site.clone().unwrap_or_default()),
        ];
        let mut input = body.to_vec();
        input.push(b'\n');
        let run = warden_checks::child::run(warden_checks::child::Command {
            argv,
            env: &env,
            stdin: Some(input),
            timeout: self.cfg.timeout,
            output: warden_checks::child::Output::Stderr,
        })
        .await;
        use warden_checks::child::Failure as Run;
        match run {
            Ok(f) if f.status.success() => Ok(()),
            Ok(f) => Err(Failure::Again(format!("{}: {}", f.status, f.output))),
            Err(Run::NotStarted {
                why,
                lasting: false,
            })
            | Err(Run::Wait(why)) => Err(Failure::Again(why)),
            Err(Run::NotStarted { why, lasting: true }) => Err(Failure::GiveUp(why)),
            Err(Run::TimedOut { .. }) => Err(Failure::Again(format!(
                "timed out after {:.1}s (killed with what it started)",
                self.cfg.timeout.as_secs_f64()
            ))),
        }
    }
}

/// `sha256=HEX` of the body's HMAC-SHA256 under `secret`.
fn signature(secret: &Secret, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A request error without its URL.
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind the config accepts is a kind the service records, and
    /// the other way round: the two lists cannot drift apart.
    #[test]
    fn the_configs_event_kinds_are_the_services() {
        let all: Vec<String> = warden_config::EVENT_KINDS
            .iter()
            .map(|k| {
                let kind: EventKind = serde_json::from_value(serde_json::json!(k))
                    .unwrap_or_else(|e| panic!("{k}: not an EventKind: {e}"));
                kind_name(kind)
            })
            .collect();
        assert_eq!(all, warden_config::EVENT_KINDS);
        // Every variant (the match fails to compile when one is added).
        let every = |k: EventKind| {
            use EventKind::*;
            match k {
                Started
                | SiteDown
                | SiteConfirmedDown
                | SiteRecovered
                | PathFault
                | DeadAgent
                | Unconfirmed
                | Isolated
                | IsolationEnded
                | PendingApproval
                | Approved
                | RunbookStarted
                | StepStarted
                | StepFinished
                | RunbookSucceeded
                | RunbookFailed
                | RunbookResumed
                | Reconciled
                | ReconcileFailed
                | Fencing
                | Maintenance
                | NoStandby
                | Alert
                | AlertCleared
                | FrontendDown
                | FrontendConfirmedDown
                | FrontendRecovered
                | FrontendMoved
                | Divergent
                | Replication
                | RpoExceeded
                | FailbackAborted
                | Adopted => kind_name(k),
            }
        };
        assert_eq!(warden_config::EVENT_KINDS.len(), 33, "one name per variant");
        for name in warden_config::EVENT_KINDS {
            let k: EventKind = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(every(k), *name);
        }
        for k in warden_config::DEFAULT_NOTIFY_KINDS {
            assert!(warden_config::EVENT_KINDS.contains(k), "{k}");
        }
    }

    /// The signature is GitHub's form: the HMAC-SHA256 of the body, hex.
    #[test]
    fn signature_is_the_bodys_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let s = signature(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn entry(url: Option<String>, command: Option<Vec<String>>) -> NotifyConfig {
        NotifyConfig {
            name: "t".into(),
            url,
            secret: None,
            command,
            kinds: None,
            timeout: Duration::from_secs(2),
            retry_for: Duration::from_secs(1),
        }
    }

    fn worker(cfg: NotifyConfig) -> Worker {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let n = Notify::new(std::slice::from_ref(&cfg), vec![None]).unwrap();
        n.workers().pop().unwrap()
    }

    fn event() -> Event {
        Event {
            id: 7,
            time_unix_ms: 1,
            kind: EventKind::RunbookFailed,
            group: Some("web".into()),
            site: Some("b".into()),
            message: "failover a → b failed".into(),
            evidence: vec![],
            runbook: Some(3),
        }
    }

    /// What is retried and what is given up at once: a redirect and a 404
    /// are given up, a 503 and a refused connection retried; a command
    /// that cannot start is given up, one that exits 1 retried.
    #[tokio::test]
    async fn failures_are_retried_or_given_up_by_what_they_are() {
        use axum::http::StatusCode;
        use axum::routing::post;
        let app = axum::Router::new()
            .route("/ok", post(|| async { StatusCode::NO_CONTENT }))
            .route(
                "/moved",
                post(|| async { (StatusCode::FOUND, [("location", "/ok")]) }),
            )
            .route("/gone", post(|| async { StatusCode::NOT_FOUND }))
            .route("/busy", post(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        let e = event();
        let body = serde_json::to_vec(&e).unwrap();
        let at = |p: &str| Some(format!("http://{addr}{p}"));
        assert!(worker(entry(at("/ok"), None))
            .deliver(&e, &body)
            .await
            .is_ok());
        for (p, again) in [("/moved", false), ("/gone", false), ("/busy", true)] {
            match worker(entry(at(p), None)).deliver(&e, &body).await {
                Err(Failure::Again(_)) if again => {}
                Err(Failure::GiveUp(why)) if !again => {
                    assert!(!why.contains(&addr.to_string()), "no URL in {why}")
                }
                Err(Failure::Again(w)) | Err(Failure::GiveUp(w)) => panic!("{p}: {w}"),
                Ok(()) => panic!("{p}: delivered"),
            }
        }
        // nothing listens there any more
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let w = worker(entry(Some(format!("http://{closed}/x")), None));
        assert!(matches!(w.deliver(&e, &body).await, Err(Failure::Again(_))));
        let w = worker(entry(None, Some(vec!["/nonexistent/notify".into()])));
        assert!(matches!(
            w.deliver(&e, &body).await,
            Err(Failure::GiveUp(_))
        ));
        let w = worker(entry(
            None,
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "cat >/dev/null; exit 1".into(),
            ]),
        ));
        assert!(matches!(w.deliver(&e, &body).await, Err(Failure::Again(_))));
        let w = worker(entry(
            None,
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "grep -q runbook_failed".into(),
            ]),
        ));
        assert!(w.deliver(&e, &body).await.is_ok(), "the event on stdin");
    }

    /// A receiver that never answers fills the queue: new events are
    /// dropped and counted, never waited for.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let n = Notify::new(
            &[entry(Some("http://127.0.0.1:9/".into()), None)],
            vec![None],
        )
        .unwrap();
        let metrics = Metrics::new();
        let e = event();
        for _ in 0..QUEUE + 5 {
            n.offer(&e, &metrics);
        }
        let failed = metrics
            .notify_failed
            .get_or_create(&vec![
                ("notify".to_string(), "t".to_string()),
                ("reason".to_string(), "queue_full".to_string()),
            ])
            .get();
        assert_eq!(failed, 5);
        // a kind it does not want is not queued at all
        let before = n.waiting("t");
        let mut step = event();
        step.kind = EventKind::StepStarted;
        n.offer(&step, &metrics);
        assert_eq!(n.waiting("t"), before);
    }

    /// A dead receiver holds its queue up for `retry_for` at most: the
    /// first event is retried until then, the ones recorded with it are
    /// by then as old and are tried once each — all three given up within
    /// about `retry_for` (one at a time they would take three times it).
    #[tokio::test]
    async fn a_dead_receiver_holds_its_queue_up_for_retry_for_at_most() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let dir = super::super::harness::test_dir(true, 5);
        let text = super::super::harness::config_text(&dir, true, 5, "")
            + &format!(
                "\n[[orchestrator.notify]]\nname = \"t\"\nurl = \"http://{closed}/x\"\nretry_for = \"2s\"\nkinds = [\"alert\"]\n"
            );
        let (s, _fake) = super::super::harness::start_from(
            &text,
            &dir,
            Arc::new(crate::store::MemStore::default()),
        )
        .unwrap();
        let started = std::time::Instant::now();
        for i in 0..3 {
            s.event(
                EventKind::Alert,
                Some("web"),
                None,
                format!("e{i}"),
                vec![],
                None,
            );
        }
        for w in s.notify_workers() {
            tokio::spawn(w.run(s.clone(), CancellationToken::new()));
        }
        let exhausted = || {
            s.metrics
                .notify_failed
                .get_or_create(&vec![
                    ("notify".to_string(), "t".to_string()),
                    ("reason".to_string(), "retries_exhausted".to_string()),
                ])
                .get()
        };
        while exhausted() < 3 && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(exhausted(), 3);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(4500),
            "three events given up in {took:?}: each waited its own retry_for"
        );
    }
}
