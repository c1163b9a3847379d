//! How the agent's reports reach one orchestrator: the report courier.
//!
//! One courier per orchestrator takes the latest report from the report
//! loop and delivers it on a **report stream** (`GET /v1/reports/stream`
//! upgraded to a WebSocket, [`REPORT_STREAM_PATH`]): one text message per
//! report, and an answer back only when it has news (commands, acks, new
//! epochs, a refusal). Where no stream can be had — an orchestrator without
//! the endpoint, a failed upgrade, an HTTP proxy in the environment (which
//! the stream would bypass) — the report goes as `POST /v1/reports`, and the
//! stream is tried again after a back-off (doubling up to [`RETRY_MAX`]).
//!
//! The stream is pinged every [`PING_PERIOD`]; a ping without its pong by
//! the next one, a failed write or a close ends it, and the next report
//! opens a new one. A report whose write failed is not sent again (its seq
//! may have arrived; the replay guard would refuse a second copy): the next
//! report, one interval later or at once after a command finished, carries
//! everything it carried. A report older than the latest is never sent:
//! a courier that is behind skips to the newest.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{Link, Shared};
use crate::error::AgentError;
use crate::wire::{StreamAnswer, REPORT_STREAM_PATH};

/// A ping every this long; no pong by the next ping ends the stream.
pub(crate) const PING_PERIOD: Duration = Duration::from_secs(10);
/// The first wait before a stream is tried again after it could not be opened.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between tries (an orchestrator without streams is asked
/// this often, reports going by POST meanwhile).
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(300);

/// How an error of [`ReportStream::open`] starts when the orchestrator
/// answered the upgrade with an HTTP status instead of a stream.
const REFUSED: &str = "upgrade refused with status";

/// One report, encoded once for every courier.
pub(super) struct Outgoing {
    pub seq: u64,
    pub body: String,
}

/// The socket under a stream: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open report stream.
pub(super) struct ReportStream {
    ws: WebSocketStream<Box<dyn Io>>,
    next_ping: Instant,
    /// A ping sent and not answered yet.
    awaiting_pong: bool,
}

/// Environment variables through which reqwest would send the agent's
/// requests to a proxy; the stream cannot follow them.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether reports may use a stream here: not when a proxy is configured
/// for the agent's requests (the stream connects directly).
pub(super) fn streams_allowed() -> bool {
    !PROXY_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

impl ReportStream {
    /// Opens the stream of `base` (an orchestrator's URL) with the agent's
    /// token; TLS with `tls` for an `https` URL.
    pub(super) async fn open(
        base: &str,
        token: &str,
        tls: Option<&rustls::ClientConfig>,
    ) -> Result<ReportStream, String> {
        let url = reqwest::Url::parse(base).map_err(|e| format!("orchestrator URL: {e}"))?;
        let secure = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("orchestrator URL scheme {other:?}")),
        };
        let host = url
            .host_str()
            .ok_or("orchestrator URL without a host")?
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or("orchestrator URL without a port")?;
        // The same URL with the WebSocket scheme and the stream's path
        // (after any path the orchestrator's URL has).
        let mut ws_url = url.clone();
        ws_url.set_path(&format!(
            "{}{REPORT_STREAM_PATH}",
            url.path().trim_end_matches('/')
        ));
        ws_url
            .set_scheme(if secure { "wss" } else { "ws" })
            .map_err(|()| "orchestrator URL: no WebSocket form".to_string())?;
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if secure {
            let Some(tls) = tls else {
                return Err("an https orchestrator without a TLS configuration".into());
            };
            let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']))
                .map_err(|e| format!("TLS server name {host:?}: {e}"))?
                .to_owned();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.clone()));
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?,
            )
        } else {
            Box::new(tcp)
        };
        let mut request = ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("stream request: {e}"))?;
        let mut auth = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the agent token is not a valid header value".to_string())?;
        auth.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, auth);
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, io, Some(config))
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => {
                    let body: String = resp
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).chars().take(200).collect())
                        .unwrap_or_default();
                    format!("{REFUSED} {}: {body}", resp.status())
                }
                other => format!("upgrade: {other}"),
            })?;
        Ok(ReportStream {
            ws,
            next_ping: Instant::now() + PING_PERIOD,
            awaiting_pong: false,
        })
    }

    /// Sends one report.
    pub(super) async fn send(&mut self, body: &str) -> Result<(), String> {
        self.ws
            .send(Message::Text(body.to_owned().into()))
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// The next answer; pings on schedule meanwhile. An error means the
    /// stream is over. Cancel-safe between messages (a ping being written
    /// when cancelled is finished by the next write).
    pub(super) async fn next(&mut self) -> Result<StreamAnswer, String> {
        loop {
            tokio::select! {
                m = self.ws.next() => match m {
                    None => return Err("closed by the orchestrator".into()),
                    Some(Err(e)) => return Err(format!("read: {e}")),
                    Some(Ok(Message::Text(t))) => {
                        return serde_json::from_str(t.as_str())
                            .map_err(|e| format!("unreadable answer: {e}"));
                    }
                    Some(Ok(Message::Pong(_))) => self.awaiting_pong = false,
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                        return Err(format!("closed by the orchestrator: {why}"));
                    }
                    Some(Ok(_)) => {}
                },
                _ = tokio::time::sleep_until(self.next_ping) => {
                    if self.awaiting_pong {
                        return Err(format!(
                            "no answer to a ping within {} s",
                            PING_PERIOD.as_secs()
                        ));
                    }
                    self.ws
                        .send(Message::Ping(Default::default()))
                        .await
                        .map_err(|e| format!("ping: {e}"))?;
                    self.awaiting_pong = true;
                    self.next_ping = Instant::now() + PING_PERIOD;
                }
            }
        }
    }

    /// A clean close (at shutdown), bounded.
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

/// Waits for the next answer of `stream`, or forever when there is none.
async fn answer_of(stream: &mut Option<ReportStream>) -> Result<StreamAnswer, String> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Delivers the reports of `reports` to orchestrator `target` until
/// `token` is cancelled (see the module doc).
pub(super) async fn courier(
    shared: Arc<Shared>,
    target: usize,
    mut reports: watch::Receiver<Option<Arc<Outgoing>>>,
    token: CancellationToken,
) {
    let t = &shared.targets[target];
    let mut link = Link::new("report", &t.reports_url);
    let mut stream: Option<ReportStream> = None;
    let mut retry_at = Instant::now();
    let mut backoff = RETRY_FIRST;
    let allowed = streams_allowed();
    if !allowed {
        info!(url = %t.base, "an HTTP proxy is configured: reports go by POST, not on a stream");
    }
    let send_timeout = shared.settings.interval.max(Duration::from_secs(1));
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                if let Some(s) = stream.take() {
                    s.close().await;
                }
                return;
            }
            changed = reports.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            a = answer_of(&mut stream) => {
                match a {
                    Ok(StreamAnswer::Answer { answer, .. }) => {
                        link.up();
                        shared.handle(answer, "report", target);
                    }
                    Ok(StreamAnswer::Refused { seq, status, error }) => {
                        debug!(seq, status, "report refused on the stream");
                        link.down(&AgentError::Rejected { status, message: error });
                    }
                    Err(why) => {
                        debug!(url = %t.base, why, "report stream ended");
                        stream = None;
                        retry_at = Instant::now();
                    }
                }
                continue;
            }
        }
        let Some(out) = reports.borrow_and_update().clone() else {
            continue;
        };
        if allowed && stream.is_none() && Instant::now() >= retry_at {
            let secret = shared.settings.token.expose();
            let opened = tokio::select! {
                _ = token.cancelled() => return,
                o = tokio::time::timeout(
                    send_timeout,
                    ReportStream::open(&t.base, secret, shared.settings.tls.as_ref()),
                ) => o,
            };
            match opened {
                Ok(Ok(s)) => {
                    debug!(url = %t.base, "report stream open");
                    stream = Some(s);
                    backoff = RETRY_FIRST;
                }
                Ok(Err(why)) if why.starts_with(REFUSED) => {
                    // The orchestrator answered, without a stream (one from
                    // before streams, or a refusal): ask again less and less often.
                    debug!(url = %t.base, why, retry_in = ?backoff, "no report stream; reporting by POST");
                    retry_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
                Ok(Err(why)) => {
                    // Not reached at all: the POST will tell; try again soon.
                    debug!(url = %t.base, why, "report stream not opened; reporting by POST");
                    retry_at = Instant::now() + RETRY_FIRST;
                }
                Err(_) => {
                    debug!(url = %t.base, retry_in = ?backoff, "report stream not open in time; reporting by POST");
                    retry_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
        if let Some(s) = stream.as_mut() {
            match tokio::time::timeout(send_timeout, s.send(&out.body)).await {
                Ok(Ok(())) => continue,
                Ok(Err(why)) => {
                    link.down(&AgentError::Unreachable(format!("report stream: {why}")));
                }
                Err(_) => link.down(&AgentError::Unreachable(
                    "report stream: the report was not taken in time".into(),
                )),
            }
            // Not sent again: it may have arrived (see the module doc).
            debug!(
                seq = out.seq,
                "report stream broken; the next report opens a new one"
            );
            stream = None;
            retry_at = Instant::now();
            continue;
        }
        let answer = tokio::select! {
            _ = token.cancelled() => return,
            a = shared.post_report(target, &out.body) => a,
        };
        match answer {
            Ok(resp) => {
                link.up();
                shared.handle(resp, "report", target);
            }
            Err(e) => link.down(&e),
        }
    }
}
