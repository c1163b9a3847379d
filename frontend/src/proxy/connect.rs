//! Connecting to a backend: its address, or each address its name resolves
//! to in turn within one deadline, `TCP_NODELAY` set before the connect.
//! A name is looked up by this worker's own asynchronous resolver
//! ([`warden_checks::SystemNames`]: `/etc/hosts` first, then the
//! nameservers of `/etc/resolv.conf`, answers kept for their TTL), never on
//! the runtime's blocking pool: a lookup ends with its connection's
//! deadline, and a DNS outage holds no thread per connection.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;
use warden_checks::SystemNames;

use crate::route::Generation;

/// Time allowed to connect to a backend before the client is dropped (name
/// lookup included; shared between the addresses a name resolves to).
pub(super) const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connect to `generation`'s backend by `deadline`: its address when it is
/// one, else the addresses its `host:port` resolves to ([`connect_any`]),
/// with `TCP_NODELAY` set before the connect.
pub(super) async fn connect(generation: &Generation, deadline: Instant) -> io::Result<TcpStream> {
    if let Some(addr) = generation.backend_ip {
        return connect_to(addr).await;
    }
    thread_local! {
        /// This worker's lookups: a resolver per worker thread, whose
        /// connections live on that worker's own runtime.
        static NAMES: SystemNames = SystemNames::new();
    }
    let names = NAMES.with(SystemNames::clone);
    let addrs = names.lookup(generation.backend.as_str()).await?;
    connect_any(&addrs, deadline).await
}

/// Connect to each of `addrs` in turn until one answers, each given an
/// equal share of the time left until `deadline`: an address whose packets
/// vanish (a host down behind a name that has several) must not take the
/// whole connect timeout and leave the others untried.
async fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> io::Result<TcpStream> {
    let mut last = None;
    for (i, &addr) in addrs.iter().enumerate() {
        let left = u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        let share = deadline.saturating_duration_since(Instant::now()) / left;
        match tokio::time::timeout(share, connect_to(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr} did not answer within {}ms", share.as_millis()),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the backend address resolves to no address",
        )
    }))
}

/// Connect to `addr`. A connect that is complete when the call returns (a
/// backend on this host: the handshake ran within it) is used at once;
/// otherwise the socket is waited for until writable and its error read,
/// as tokio's own connect does. `TcpSocket::connect` always waits for the
/// runtime's next readiness event, a turn of the event loop per connection.
async fn connect_to(addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Err(e) = socket.set_tcp_nodelay(true) {
        debug!(%addr, cause = %e, "cannot set TCP_NODELAY on backend socket");
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(socket.into())?;
    // Connected already: the peer's address is known. (Bytes written to a
    // socket still connecting would wait in it, but a refused or silent
    // backend must fail here, where a hold or a retry can take over.)
    if stream.peer_addr().is_ok() {
        return Ok(stream);
    }
    stream.writable().await?;
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    // Writable without an error but not connected cannot happen on Linux;
    // say so rather than relay into a socket that is not one.
    stream.peer_addr()?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address whose connects hang, as to a host whose packets vanish:
    /// a loopback listener that never accepts, its queue full (Linux then
    /// drops new SYNs); keep the returned sockets alive while it is used.
    async fn blackhole() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let l = sock.listen(0).unwrap();
        let addr = l.local_addr().unwrap();
        let mut fill = Vec::new();
        for _ in 0..8 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => fill.push(s),
                _ => return (addr, l, fill),
            }
        }
        panic!("the accept queue of {addr} never filled");
    }

    /// A backend given by name is looked up without the runtime's blocking
    /// pool: on a worker whose one blocking thread is taken (by a lookup
    /// that waits for a silent nameserver, say), a connection to
    /// `localhost:PORT` (answered from `/etc/hosts`) still connects at
    /// once. Before, `tokio::net::lookup_host` queued behind it.
    #[test]
    fn a_backend_name_is_looked_up_off_the_blocking_pool() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = live.local_addr().unwrap().port();
            let busy = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_secs(3)));
            let deadline = Instant::now() + BACKEND_CONNECT_TIMEOUT;
            let g = crate::route::Generation::for_test(&format!("localhost:{port}"));
            let t = Instant::now();
            let s = tokio::time::timeout(Duration::from_secs(2), connect(&g, deadline))
                .await
                .expect("connected while the blocking pool is busy")
                .expect("localhost answers");
            assert_eq!(s.peer_addr().unwrap().port(), port);
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            let g = crate::route::Generation::for_test("no-port-here");
            let e = connect(&g, deadline).await.unwrap_err();
            assert!(e.to_string().contains("is not HOST:PORT"), "{e}");
            busy.await.unwrap();
        });
    }

    /// A name resolving to a dead address first and a live one second (a
    /// host down behind a name with several) still connects, within the
    /// connect timeout.
    #[tokio::test]
    async fn a_silent_address_does_not_keep_the_next_one_untried() {
        let _hole = blackhole().await;
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = [_hole.0, live.local_addr().unwrap()];
        let deadline = Instant::now() + BACKEND_CONNECT_TIMEOUT;
        let t = Instant::now();
        let got = tokio::time::timeout_at(deadline, connect_any(&addrs, deadline)).await;
        let s = got
            .expect("connected within the connect timeout")
            .expect("the live address answers");
        assert_eq!(s.peer_addr().unwrap(), addrs[1]);
        assert!(t.elapsed() < BACKEND_CONNECT_TIMEOUT, "{:?}", t.elapsed());
    }
}
