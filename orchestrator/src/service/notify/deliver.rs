//! One `[[orchestrator.notify]]` entry's delivery task: events taken from
//! its queue in order, each retried until `retry_for` after it was
//! recorded while this node holds the licence, then sent as a signed
//! webhook POST or a command's stdin (see the parent module).

use super::*;

/// One entry's delivery task (see [`Worker::run`]).
pub(crate) struct Worker {
    pub(super) cfg: NotifyConfig,
    pub(super) secret: Option<Secret>,
    pub(super) queue: Arc<Queue>,
    pub(super) http: reqwest::Client,
    /// This process's tag in delivery ids.
    pub(super) boot: String,
    /// What its command's mark is bound to (`super::super::leftovers`).
    pub(super) run_dir: std::path::PathBuf,
}

/// How one delivery failed.
pub(super) enum Failure {
    /// Worth trying again (network, 408, 429, 5xx, a command's exit).
    Again(String),
    /// Worth trying again after the pause the receiver asked for (429 or
    /// 503 with `Retry-After`, seconds or an HTTP date).
    Later(String, Duration),
    /// Not worth it (a redirect, another 4xx, a program that cannot start).
    GiveUp(String),
}

impl Worker {
    pub(super) fn take(&self) -> Option<Arc<Event>> {
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
            let body = match self.body(&e) {
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
                    warn!(notify = %self.cfg.name, events = n, "notifications dropped: this orchestrator no longer holds the licence to act; they are not sent by the next leader either (counted in warden_notify_failed_total, reason not_leader; the events stay in the event log)");
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
                    Err(f @ (Failure::Again(_) | Failure::Later(..))) => {
                        let (why, asked) = match f {
                            Failure::Later(why, asked) => (why, asked),
                            Failure::Again(why) | Failure::GiveUp(why) => (why, Duration::ZERO),
                        };
                        let now_ms = shared.clock.now_ms();
                        let left = give_up_unix_ms.saturating_sub(now_ms);
                        if left == 0 {
                            shared
                                .metrics
                                .notify_failed(&self.cfg.name, "retries_exhausted");
                            warn!(notify = %self.cfg.name, event = e.id, cause = %why, retry_for = ?self.cfg.retry_for, "notification given up: retry_for has passed since the event");
                            break;
                        }
                        // A receiver's Retry-After is kept (within retry_for).
                        let pause = backoff.max(asked).min(Duration::from_millis(left));
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

    /// `e`'s delivery id: this process's boot tag and the event id.
    pub(super) fn delivery(&self, e: &Event) -> String {
        format!("{}-{}", self.boot, e.id)
    }

    /// What is sent of `e`: the event as JSON with its `delivery` id in
    /// it, so the signature covers the id a receiver drops repeats by (a
    /// replayed body under a fresh `X-Warden-Delivery` header is still a
    /// repeat).
    pub(super) fn body(&self, e: &Event) -> serde_json::Result<Vec<u8>> {
        #[derive(serde::Serialize)]
        struct Sent<'a> {
            #[serde(flatten)]
            event: &'a Event,
            delivery: String,
        }
        serde_json::to_vec(&Sent {
            event: e,
            delivery: self.delivery(e),
        })
    }

    pub(super) async fn deliver(&self, e: &Event, body: &[u8]) -> Result<(), Failure> {
        let kind = kind_name(e.kind);
        if let Some(url) = &self.cfg.url {
            let mut req = self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .header("X-Warden-Event", &kind)
                .header("X-Warden-Delivery", self.delivery(e))
                .body(body.to_vec());
            if let Some(s) = &self.secret {
                req = req.header("X-Warden-Signature-256", signature(s, body));
            }
            // The URL is left out of every message (it may be the secret).
            let resp = req.send().await.map_err(|err| {
                Failure::Again(crate::text::printable(&describe(&err)).into_owned())
            })?;
            let status = resp.status();
            let asked = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, std::time::SystemTime::now()));
            return match (status.as_u16(), asked) {
                (429 | 503, Some(after)) => Err(Failure::Later(
                    format!("HTTP {status}, Retry-After {}s", after.as_secs()),
                    after,
                )),
                (200..=299, _) => Ok(()),
                (408 | 429 | 500..=599, _) => Err(Failure::Again(format!("HTTP {status}"))),
                (300..=399, _) => Err(Failure::GiveUp(format!(
                    "HTTP {status}: redirects are not followed; give the final URL"
                ))),
                _ => Err(Failure::GiveUp(format!("HTTP {status}"))),
            };
        }
        let Some(argv) = &self.cfg.command else {
            return Err(Failure::GiveUp("neither url nor command".into()));
        };
        let env = [
            ("WARDEN_DELIVERY", self.delivery(e)),
            ("WARDEN_EVENT_ID", e.id.to_string()),
            ("WARDEN_EVENT_KIND", kind),
            ("WARDEN_GROUP", e.group.clone().unwrap_or_default()),
            ("WARDEN_SITE", e.site.clone().unwrap_or_default()),
            (
                "WARDEN_EPOCH",
                e.epoch.map(|n| n.to_string()).unwrap_or_default(),
            ),
            ("WARDEN_TERM", e.term.to_string()),
        ];
        let mut input = body.to_vec();
        input.push(b'\n');
        let run = warden_checks::child::run(warden_checks::child::Command {
            argv,
            env: &env,
            stdin: Some(input),
            timeout: self.cfg.timeout,
            output: warden_checks::child::Output::Stderr,
            started: None,
            mark: Some(super::super::leftovers::mark(
                super::super::leftovers::NOTIFY,
                &self.run_dir,
            )),
            keep_left: false,
        })
        .await;
        use warden_checks::child::Failure as Run;
        match run {
            Ok(f) if f.status.success() => Ok(()),
            // Its output may echo the event (agent-reported text): escaped,
            // so it can start no forged line in the log.
            Ok(f) => Err(Failure::Again(format!(
                "{}: {}",
                f.status,
                crate::text::printable(&f.output)
            ))),
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
pub(super) fn signature(secret: &Secret, body: &[u8]) -> String {
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

/// The pause a `Retry-After` value asks for (RFC 9110 §10.2.3): a number
/// of seconds, or an HTTP date (what many receivers behind a gateway
/// send), counted from `now` on the wall clock — a date already passed
/// asks for no pause. `None` for anything else.
pub(super) fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
