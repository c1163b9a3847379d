//! The agents' report streams (`GET /v1/reports/stream`, upgraded to a
//! WebSocket; the wire is in `warden_proto::agent::REPORT_STREAM_PATH`).
//!
//! A stream belongs to the site of the token that opened it. Every text (or
//! binary) message is one report, taken exactly as `POST /v1/reports` takes
//! it (`super::agent::take_report`: the same site check, limits and replay guard).
//! An answer goes back only when it says something the agent has not been
//! told on this stream: commands, acked outcomes, epochs other than the last
//! ones sent, or a refusal. A steady agent thus costs one read per report
//! and no write, where a `POST` costs a read and a write (on loopback, the
//! write also runs the receiver's wake-up: most of a report's CPU under the
//! 20,000-agent load bench).
//!
//! A stream ends when the agent closes it, after [`IDLE`] without any
//! message (agents ping every few seconds), when an answer cannot be
//! written within [`SEND_TIMEOUT`] or does not fit beside what waits to be
//! written ([`WRITE_BUFFER_MAX`]), or at shutdown (a close frame "going
//! away"), or when the site opens more than `super::seats::PER_SITE`
//! streams (the oldest ends, close code 1008). While open it keeps its
//! connection's place under `max_connections` and is tracked by
//! `Shared::streams`.
//!
//! The pongs tungstenite writes by itself wait in the stream's write buffer
//! while the client does not read them; that buffer is bounded by
//! [`WRITE_BUFFER_MAX`], so a client that floods pings and never reads
//! costs at most that much memory (the pongs that do not fit are dropped:
//! only the latest waits), not a pong for every ping it sent.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use warden_proto::agent::StreamAnswer;
use warden_serve::ConnectionSlot;

use super::agent::take_report;
use super::auth::AgentSite;
use super::{err, S};
use crate::service::Shared;

/// A stream that has received nothing (no report, no ping) for this long
/// is closed: the agent is gone without a close (agents ping every 10 s).
pub(crate) const IDLE: Duration = Duration::from_secs(60);
/// An answer the agent does not take within this long ends the stream.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from the socket at a time (tungstenite zeroes this much per
/// read; its default of 128 KiB cost more than the report).
const READ_BUFFER: usize = 4096;
/// The most a stream's write buffer holds: an answer, and the pongs to the
/// client's pings while it does not read. 16 MiB is the largest frame an
/// agent reads (tungstenite's default `max_frame_size`, which agents keep),
/// so no answer an agent could take is refused; the rest is room for the
/// pongs of an agent that reads a little late. Unbounded (tungstenite's
/// default), a client that sent pings without reading grew the
/// orchestrator's memory by a pong for every ping, for as long as it liked.
pub(crate) const WRITE_BUFFER_MAX: usize = (16 << 20) + (64 << 10);

/// `GET /v1/reports/stream`: the agent token's site, then the upgrade.
pub(super) async fn report_stream(
    State(s): S,
    AgentSite(site): AgentSite,
    slot: Option<Extension<ConnectionSlot>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => {
            s.metrics().rejected.inc();
            return err(
                r.status(),
                format!(
                    "{}: this endpoint is a WebSocket (a GET with `Upgrade: websocket`); \
                     reports without one go to POST /v1/reports",
                    r.body_text()
                ),
            );
        }
    };
    if s.shutdown_token().is_cancelled() || s.streams().is_closed() {
        return err(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let limit = s.config().orchestrator.max_body_bytes;
    let tracked = s.streams().token();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(WRITE_BUFFER_MAX)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let _tracked = tracked;
            let _slot = slot;
            serve(s, site, socket).await;
        })
        .into_response()
}

/// Counts an open stream in the `report_streams` gauge while it lives.
struct Open<'a>(&'a Shared);
impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.metrics().report_streams.dec();
    }
}

async fn serve(s: Arc<Shared>, site: String, mut socket: WebSocket) {
    s.metrics().report_streams.inc();
    let _open = Open(&s);
    let seat = s.stream_seats().take(&site);
    tracing::debug!(site = %site, "report stream opened");
    let stop = s.shutdown_token().clone();
    // The epochs last told on this stream: an answer with the same ones and
    // nothing else is not sent.
    let mut told: Option<std::collections::BTreeMap<String, u64>> = None;
    // The recalled commands last sent: a change is news.
    let mut recalled: Vec<warden_proto::agent::Withdrawn> = Vec::new();
    let why = loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => {
                let bye = Message::Close(Some(CloseFrame {
                    code: axum::extract::ws::close_code::AWAY,
                    reason: "orchestrator shutting down".into(),
                }));
                let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(bye)).await;
                break "shutdown";
            }
            _ = seat.displaced.cancelled() => {
                let bye = Message::Close(Some(CloseFrame {
                    code: axum::extract::ws::close_code::POLICY,
                    reason: "replaced by a newer report stream of this site".into(),
                }));
                let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(bye)).await;
                break "replaced by a newer stream of the site";
            }
            m = tokio::time::timeout(IDLE, socket.recv()) => m,
        };
        let body = match msg {
            Err(_) => break "idle",
            Ok(None) => break "closed",
            Ok(Some(Err(_))) => break "broken",
            Ok(Some(Ok(Message::Text(t)))) => t.into(),
            Ok(Some(Ok(Message::Binary(b)))) => b,
            // tungstenite answers pings itself (with the next read).
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Close(_)))) => break "closed",
        };
        let answer = match take_report(&s, &site, &body) {
            Ok((seq, answer)) => {
                let news = !answer.commands.is_empty()
                    || !answer.acked.is_empty()
                    || told.as_ref() != Some(&answer.epochs)
                    || recalled != answer.withdrawn;
                if !news {
                    continue;
                }
                told = Some(answer.epochs.clone());
                recalled.clone_from(&answer.withdrawn);
                StreamAnswer::Answer { seq, answer }
            }
            Err(r) => StreamAnswer::Refused {
                seq: r.seq,
                status: r.status.as_u16(),
                error: r.error,
            },
        };
        let text = match serde_json::to_string(&answer) {
            Ok(t) => t,
            Err(_) => break "unencodable answer",
        };
        match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => {}
            // Broken, or no room: the client left too much unread.
            Ok(Err(_)) => break "answer not written",
            Err(_) => break "answer not taken in time",
        }
    };
    tracing::debug!(site = %site, why, "report stream ended");
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
