//! Notifications (DESIGN §8: "notify commands and webhooks on every state
//! change"): each `[[orchestrator.notify]]` entry gets the events of the
//! kinds it wants, in order, from the licence holder only (a follower's
//! events are its own log lines), through a bounded queue and a delivery
//! task of its own, so a slow or dead receiver never holds up the service
//! or another receiver.
//!
//! - A webhook gets `POST url` with the event as JSON (`id`, `kind`,
//!   `group`, `site`, `message`, `time_unix_ms`, `evidence`, `runbook`),
//!   `X-Warden-Event: KIND`, `X-Warden-Delivery: ID` (receivers drop
//!   repeats by it: a retried delivery may arrive twice) and, with a
//!   `secret`, `X-Warden-Signature-256: sha256=HEX`, the body's
//!   HMAC-SHA256 (GitHub's webhook form). 2xx is delivered; 408, 429, 5xx
//!   and network failures are retried; a redirect or another 4xx is given
//!   up at once (said in the log). The URL is never logged (a chat
//!   webhook's URL is often its secret): the entry's name is.
//! - A command gets the event as JSON on its standard input and
//!   `WARDEN_EVENT_ID`, `WARDEN_EVENT_KIND`, `WARDEN_GROUP`, `WARDEN_SITE`
//!   in a clean environment; exit 0 is delivered, anything else retried.
//! - Retries back off from 1 s to 1 min, for `retry_for`; then the event is
//!   given up for that entry. A full queue ([`QUEUE`] events) drops the new
//!   event. Both counted in `warden_notify_failed_total{notify, reason}`;
//!   deliveries in `warden_notify_sent_total{notify}`.

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::debug;
use warden_config::{NotifyConfig, Secret};

use super::*;
use crate::metrics::Metrics;

/// Events waiting per entry at most.
pub(crate) const QUEUE: usize = 1000;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// One entry: its settings, its secret, its queue's sending side.
struct Entry {
    cfg: NotifyConfig,
    tx: mpsc::Sender<Arc<Event>>,
}

/// The notify entries of the service.
#[derive(Default)]
pub(crate) struct Notify {
    entries: Vec<Entry>,
    /// The delivery tasks' ends, taken once by [`Notify::workers`].
    workers: Mutex<Vec<Worker>>,
}

/// One entry's delivery task (see [`Worker::run`]).
pub(crate) struct Worker {
    cfg: NotifyConfig,
    secret: Option<Secret>,
    rx: mpsc::Receiver<Arc<Event>>,
    http: reqwest::Client,
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
        let mut entries = Vec::new();
        let mut workers = Vec::new();
        for (cfg, secret) in list.iter().zip(secrets) {
            let (tx, rx) = mpsc::channel(QUEUE);
            let http = reqwest::Client::builder()
                .timeout(cfg.timeout)
                .redirect(reqwest::redirect::Policy::none())
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
                tx,
            });
            workers.push(Worker {
                cfg: cfg.clone(),
                secret,
                rx,
                http,
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

    /// Queue `e` for every entry that wants its kind (never waits).
    pub(crate) fn offer(&self, e: &Event, metrics: &Metrics) {
        if self.entries.is_empty() {
            return;
        }
        let kind = kind_name(e.kind);
        let mut shared: Option<Arc<Event>> = None;
        for entry in self.entries.iter().filter(|x| x.cfg.wants(&kind)) {
            let ev = shared.get_or_insert_with(|| Arc::new(e.clone())).clone();
            if let Err(mpsc::error::TrySendError::Full(_)) = entry.tx.try_send(ev) {
                metrics.notify_failed(&entry.cfg.name, "queue_full");
                warn!(notify = %entry.cfg.name, event = e.id, "notification dropped: {QUEUE} events wait for this receiver already");
            }
        }
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
    /// Deliver queued events in order until `stop`.
    pub(crate) async fn run(mut self, shared: Arc<Shared>, stop: CancellationToken) {
        loop {
            let e = tokio::select! {
                e = self.rx.recv() => match e { Some(e) => e, None => return },
                _ = stop.cancelled() => return,
            };
            let body = match serde_json::to_vec(&*e) {
                Ok(b) => b,
                Err(err) => {
                    warn!(notify = %self.cfg.name, event = e.id, cause = %err, "notification not sent: the event cannot be encoded");
                    continue;
                }
            };
            let give_up_at = Instant::now() + self.cfg.retry_for;
            let mut backoff = BACKOFF_MIN;
            loop {
                let result = tokio::select! {
                    r = self.deliver(&e, &body) => r,
                    _ = stop.cancelled() => return,
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
                        if Instant::now() + backoff > give_up_at {
                            shared
                                .metrics
                                .notify_failed(&self.cfg.name, "retries_exhausted");
                            warn!(notify = %self.cfg.name, event = e.id, cause = %why, retry_for = ?self.cfg.retry_for, "notification given up after retrying");
                            break;
                        }
                        debug!(notify = %self.cfg.name, event = e.id, cause = %why, retry_in = ?backoff, "notification failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.cancelled() => return,
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
                .header("X-Warden-Delivery", e.id.to_string())
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
        match super::fence::run_with(argv, &env, Some(input), self.cfg.timeout).await {
            Ok(_) => Ok(()),
            Err(super::fence::Run::NotStarted(why)) => Err(Failure::GiveUp(why)),
            Err(super::fence::Run::Failed(why)) => Err(Failure::Again(why)),
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
        let mut step = event();
        step.kind = EventKind::StepStarted;
        n.offer(&step, &metrics);
    }
}
