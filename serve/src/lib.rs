//! The HTTP listeners of warden's APIs (the orchestrator's, the frontend's
//! control API), hardened against clients that hold resources without
//! finishing anything:
//!
//! - a **connection cap**: beyond [`Limits::max_connections`] open
//!   connections a new one takes the place of the oldest connection no
//!   request has vouched for ([`Standing`]: the router's authentication
//!   vouches for a connection once a request on it came with a known
//!   credential), or is closed at once when every open one is vouched for
//!   (the process keeps its descriptors for the connections it serves).
//!   So a client without a credential that opens connections and sends
//!   nothing (or only refused requests) cannot keep agents and operators
//!   out: it only ever displaces its own kind — and an address that holds
//!   more than its share ([`per_address`]) displaces its own oldest, so a
//!   flood from one address cannot push out a slow newcomer from another;
//! - a **header read timeout**: the request line and headers must arrive
//!   within [`Limits::header_read_timeout`] (a slowloris client sending a
//!   byte a second is cut off), and it also bounds the idle time of a
//!   kept-alive connection before its next request;
//! - a **request timeout**: from the headers to the start of the answer
//!   (reading the body included) at most [`Limits::request_timeout`];
//! - **size limits with JSON answers**: a request URI over
//!   [`Limits::max_uri_bytes`] gets 414 and headers over
//!   [`Limits::max_header_bytes`] get 431, both with the `{"error": …}` body
//!   every API error has (hyper's own limit, [`HYPER_BUF_BYTES`], is far
//!   above them and only answers without a body).
//!
//! With [`tls::ServerTls`] the listener speaks TLS only (the handshake
//! within the header timeout); a verified client certificate reaches the
//! router as a [`PeerCertificate`] extension. Authentication before the body
//! is read is the router's part (a middleware that runs before any
//! extractor). [`raise_fd_limit`] lifts the process's soft descriptor limit
//! to its hard limit at start; [`catch_hangup`] keeps SIGHUP (a reload of
//! the TLS files) from ending the process, with TLS or without.

pub mod accept;
mod standing;
pub mod tls;

use standing::{client_of, Open, Registered};
pub use standing::{per_address, per_credential, Standing};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::{debug, warn};

/// What can go wrong setting a listener up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TLS file (certificate, key, CA) cannot be used: fix the file.
    #[error("TLS file {path}: {reason}")]
    Tls { path: String, reason: String },
}

/// The connection's place under [`Limits::max_connections`], in every
/// request's extensions: a handler that takes the connection over (a
/// WebSocket upgrade) keeps a clone for as long as it uses it, so the
/// connection still counts against the cap after hyper has let it go.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(pub Arc<tokio::sync::OwnedSemaphorePermit>);

/// The client certificate (DER, the leaf) a TLS client presented and the
/// listener verified; in the request extensions of TLS connections.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<Vec<u8>>);

/// hyper's read buffer: the hard cap on a request head, well above
/// [`Limits::max_header_bytes`] so that warden's own JSON 431 answers first.
pub const HYPER_BUF_BYTES: usize = 64 * 1024;

/// What one listener allows.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most; a new one beyond displaces the oldest
    /// not vouched for ([`Standing`]), or is closed at once.
    pub max_connections: usize,
    /// Time for a request's line and headers (and a kept-alive connection's
    /// idle time before its next request).
    pub header_read_timeout: Duration,
    /// Time from the headers to the start of the answer, body read included.
    pub request_timeout: Duration,
    /// Longest request URI (path and query).
    pub max_uri_bytes: usize,
    /// Largest total of header names and values.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// A JSON error answer: `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// What the listener refuses before the router sees the request.
fn precheck(req: &Request<Incoming>, limits: &Limits) -> Option<Response<Body>> {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Some(json_error(
            StatusCode::URI_TOO_LONG,
            &format!(
                "request URI of {uri_len} bytes; at most {} are accepted",
                limits.max_uri_bytes
            ),
        ));
    }
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_len > limits.max_header_bytes {
        return Some(json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!(
                "request headers of {header_len} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        ));
    }
    None
}

/// Serves `app` (an axum `Router`, or a router inside tower layers that
/// wrap it once rather than every route) on `listener` within `limits`
/// until `shutdown` fires, then lets open requests finish (at most 5 s).
/// The service sees each client's address as [`ConnectInfo<SocketAddr>`].
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: Limits,
    tls: Option<Arc<tls::ServerTls>>,
    shutdown: CancellationToken,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open = Arc::new(Open::new(limits.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    // Caught before the first connection, TLS or not (see `catch_hangup`).
    if let Some(hup) = catch_hangup() {
        conns.spawn(on_hangup(hup, tls.clone(), shutdown.clone()));
    }
    let mut refused: u64 = 0;
    let mut failed: u64 = 0;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                match accept::accept_fault(&e) {
                    // That connection's own failure: on to the next.
                    accept::AcceptFault::Connection => {
                        debug!(error = %e, "a connection failed before it was accepted");
                    }
                    // Out of descriptors: wait a little instead of spinning.
                    accept::AcceptFault::Resources => {
                        failed += 1;
                        if failed.is_power_of_two() {
                            warn!(error = %e, failed, "accept failed; trying again in 50 ms");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                            _ = shutdown.cancelled() => break,
                        }
                    }
                }
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            // At the cap: this one takes the place of the oldest connection
            // nobody vouched for, once that one has let its slot go.
            Err(_) if open.displace_for(client_of(peer.ip())) => None,
            Err(_) => {
                refused += 1;
                if refused.is_power_of_two() {
                    warn!(
                        peer = %peer,
                        max_connections = limits.max_connections,
                        refused,
                        "connection cap reached, every open connection vouched for: connection closed"
                    );
                }
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let limits = limits.clone();
        let stop = shutdown.clone();
        let tls = tls.clone();
        let slots = slots.clone();
        let (id, standing, displace) = open.add(client_of(peer.ip()));
        let registered = Registered(open.clone(), id, standing.clone());
        conns.spawn(async move {
            let _registered = registered;
            let connection = async move {
                let slot = match slot {
                    Some(slot) => slot,
                    None => match tokio::time::timeout(
                        limits.header_read_timeout,
                        slots.acquire_owned(),
                    )
                    .await
                    {
                        Ok(Ok(slot)) => slot,
                        _ => return,
                    },
                };
                let slot = ConnectionSlot(Arc::new(slot));
                let Some(tls) = tls else {
                    serve_connection(stream, peer, None, slot, standing, app, limits, stop).await;
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let handshake =
                    tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                let stream = match handshake.await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        debug!(peer = %peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        debug!(peer = %peer, "TLS handshake not done within the header timeout");
                        return;
                    }
                };
                let cert = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| PeerCertificate(Arc::new(c.as_ref().to_vec())));
                serve_connection(stream, peer, cert, slot, standing, app, limits, stop).await;
            };
            tokio::select! {
                _ = connection => {}
                _ = displace.cancelled() => {
                    debug!(peer = %peer, "connection displaced at the cap: nothing on it was vouched for");
                }
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection<I, S>(
    stream: I,
    peer: SocketAddr,
    cert: Option<PeerCertificate>,
    slot: ConnectionSlot,
    standing: Standing,
    app: S,
    limits: Limits,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let request_timeout = limits.request_timeout;
    let header_timeout = limits.header_read_timeout;
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let mut app = app.clone();
        let limits = limits.clone();
        let cert = cert.clone();
        let slot = slot.clone();
        let standing = standing.clone();
        async move {
            if let Some(refused) = precheck(&req, &limits) {
                return Ok::<_, Infallible>(refused);
            }
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(slot);
            req.extensions_mut().insert(standing);
            if let Some(c) = cert {
                req.extensions_mut().insert(c);
            }
            let answer = async {
                std::future::poll_fn(|cx| app.poll_ready(cx)).await?;
                app.call(req.map(Body::new)).await
            };
            match tokio::time::timeout(request_timeout, answer).await {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(never)) => match never {},
                Err(_) => Ok(json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "request not complete within {} s",
                        request_timeout.as_secs_f64()
                    ),
                )),
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(HYPER_BUF_BYTES);
    // With upgrades: a WebSocket handler takes the connection over after
    // its 101 answer (the agents' report streams).
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stop.cancelled() => None,
    };
    let result = match done {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

/// Raises this process's soft limit of open descriptors as far as the hard
/// limit allows (a busy listener needs more than the usual 1024); returns
/// the limit now.
pub fn raise_fd_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// Makes SIGHUP harmless to this process from now on and returns its
/// stream (none: the handler cannot be installed, said in a warning).
/// SIGHUP is what a certificate renewal's `kill -HUP`, a `systemctl reload`
/// or a log rotation sends, and the docs name it as the reload of the TLS
/// files; its default action ends the process. Once caught, tokio keeps the
/// handler for the life of the process, whatever becomes of the stream.
/// Call it first thing, within the runtime: [`serve`] calls it too.
pub fn catch_hangup() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hup) => Some(hup),
        Err(e) => {
            warn!(error = %e, "cannot install the SIGHUP handler: a SIGHUP would end this process; TLS files reload only when they change");
            None
        }
    }
}

/// SIGHUP: read the TLS files again (a rotated certificate), until `stop`;
/// without TLS, say there is nothing to read again.
async fn on_hangup(
    mut hup: tokio::signal::unix::Signal,
    tls: Option<Arc<tls::ServerTls>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                match &tls {
                    Some(tls) => match tls.reload() {
                        Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                        Err(e) => warn!(error = %e, "SIGHUP: the TLS files do not load; keeping the previous ones"),
                    },
                    None => tracing::info!("SIGHUP: no TLS files to read again (the configuration is read at start only: restart to change it)"),
                }
            }
        }
    }
}
