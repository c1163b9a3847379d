//! A group's listening sockets: one per proxy worker thread
//! ([`crate::workers`]), all bound to the group's address with
//! `SO_REUSEPORT`, so the kernel spreads new connections over as many accept
//! loops as there are workers instead of queueing them all behind one. The
//! sockets carry `TCP_NODELAY`, which the connections they accept inherit
//! (Linux), so no per-connection call sets it.
//!
//! An [`Acceptor`] takes connections already queued without registering
//! them with the worker's event loop: a connection handed to another worker
//! ([`crate::balance`]) is registered once, there, instead of registered
//! here, taken out again and registered there (two `epoll_ctl` calls per
//! hand-over saved; about every other new connection is handed over when
//! connections are short).
//!
//! `SO_REUSEPORT` would also let another process of the same user bind the
//! same address and take a share of the connections — a second frontend
//! started with the same config, with routes of its own. So the address is
//! first bound once without it (and not listened on): that fails while
//! anything listens there, as a plain bind always did.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::FrontendError;

/// Pending connections each socket's kernel queue holds (as `TcpListener::bind`).
const BACKLOG: u32 = 1024;

/// `count` listening sockets sharing `addr` (its port chosen by the first
/// when it is 0), non-blocking and registered with no runtime yet (each
/// worker takes its own with `TcpListener::from_std`); `label` names the
/// listener in errors. Call within a runtime.
pub(crate) fn bind(
    label: &str,
    addr: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, FrontendError> {
    let err = |source| FrontendError::Bind {
        listener: label.to_string(),
        addr,
        source,
    };
    if addr.port() != 0 {
        // Dropped at once: only the exclusive bind matters.
        socket(addr, false)
            .and_then(|s| s.bind(addr))
            .map_err(err)?;
    }
    let first = listen(addr).map_err(err)?;
    let shared = first.local_addr().map_err(err)?;
    let mut listeners = vec![first];
    for _ in 1..count.max(1) {
        listeners.push(listen(shared).map_err(err)?);
    }
    Ok(listeners)
}

fn socket(addr: SocketAddr, reuseport: bool) -> std::io::Result<TcpSocket> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind`: a restart may bind while old connections linger.
    s.set_reuseaddr(true)?;
    s.set_reuseport(reuseport)?;
    Ok(s)
}

fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket(addr, true)?;
    s.set_nodelay(true)?;
    s.bind(addr)?;
    s.listen(BACKLOG)?.into_std()
}

/// One listening socket on a worker's event loop, accepting connections
/// onto no event loop while more are queued.
pub(crate) struct Acceptor {
    listener: TcpListener,
}

/// An accepted connection: on this worker's event loop, or on none yet.
pub(crate) enum Accepted {
    /// Registered here (it came through the runtime's own accept).
    Here(TcpStream),
    /// On no event loop.
    Loose(std::net::TcpStream),
}

impl Accepted {
    /// The connection on this worker's event loop.
    pub(crate) fn here(self) -> io::Result<TcpStream> {
        match self {
            Accepted::Here(s) => Ok(s),
            Accepted::Loose(s) => TcpStream::from_std(s),
        }
    }

    /// The connection on no event loop, to be sent to another worker.
    pub(crate) fn loose(self) -> io::Result<std::net::TcpStream> {
        match self {
            Accepted::Here(s) => s.into_std(),
            Accepted::Loose(s) => Ok(s),
        }
    }
}

impl Acceptor {
    /// Take `socket` (non-blocking, from [`bind`]) onto this runtime.
    pub(crate) fn new(socket: std::net::TcpListener) -> io::Result<Acceptor> {
        Ok(Acceptor {
            listener: TcpListener::from_std(socket)?,
        })
    }

    /// The next connection, non-blocking, close-on-exec, with `TCP_NODELAY`
    /// from the listener. One already queued is taken with a plain
    /// `accept4` and left on no event loop; when none is queued, the
    /// runtime's accept waits for one (and registers it). Each plain accept
    /// counts against the task's budget, so a long queue does not keep the
    /// worker from its connections.
    pub(crate) async fn accept(&self) -> io::Result<(Accepted, SocketAddr)> {
        tokio::task::coop::consume_budget().await;
        match socket2::SockRef::from(&self.listener)
            .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        {
            Ok((socket, addr)) => {
                let peer = addr.as_socket().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "accepted a connection whose peer is not an IP address",
                    )
                })?;
                Ok((Accepted::Loose(socket.into()), peer))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let (s, peer) = self.listener.accept().await?;
                Ok((Accepted::Here(s), peer))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sockets_share_the_port_and_accepted_connections_have_nodelay() {
        let l: Vec<_> = bind("test", "127.0.0.1:0".parse().unwrap(), 3)
            .unwrap()
            .into_iter()
            .map(|s| tokio::net::TcpListener::from_std(s).unwrap())
            .collect();
        let addr = l[0].local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        for other in &l[1..] {
            assert_eq!(other.local_addr().unwrap(), addr);
        }
        // Whichever socket the kernel picks, the connection has TCP_NODELAY.
        let (_c, (_, (accepted, _))) =
            tokio::join!(tokio::net::TcpStream::connect(addr), accept_any(&l));
        assert!(accepted.nodelay().unwrap(), "inherited from the listener");
    }

    #[tokio::test]
    async fn an_acceptor_takes_queued_connections_onto_no_event_loop() {
        use std::os::fd::AsRawFd;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut l = bind("test", "127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let addr = l[0].local_addr().unwrap();
        let acceptor = Acceptor::new(l.remove(0)).unwrap();

        // Queued before the accept (the kernel completed the handshake).
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, peer) = acceptor.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let Accepted::Loose(accepted) = accepted else {
            panic!("a queued connection is taken with a plain accept");
        };
        assert!(accepted.nodelay().unwrap(), "inherited from the listener");
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", accepted.as_raw_fd())).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|v| i32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        assert_ne!(flags & libc::O_NONBLOCK, 0, "non-blocking: {info}");
        assert_ne!(flags & libc::O_CLOEXEC, 0, "no hook inherits it: {info}");
        // It goes onto a runtime and carries bytes.
        let mut accepted = Accepted::Loose(accepted).here().unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        // None queued: the accept waits for the next one.
        let (accepted, client) = tokio::join!(acceptor.accept(), async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            tokio::net::TcpStream::connect(addr).await.unwrap()
        });
        let (accepted, peer) = accepted.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // Either way it can leave for another worker, non-blocking.
        let loose = accepted.loose().unwrap();
        let err = std::io::Read::read(&mut &loose, &mut buf).expect_err("nothing sent");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[tokio::test]
    async fn a_taken_address_is_refused_even_to_a_reuseport_bind() {
        let held = bind("first", "127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = held[0].local_addr().unwrap();
        let err = bind("second", addr, 2).expect_err("the address is in use");
        assert!(
            matches!(&err, FrontendError::Bind { listener, .. } if listener == "second"),
            "{err:?}"
        );
        drop(held);
        assert_eq!(bind("again", addr, 2).unwrap().len(), 2);
    }

    async fn accept_any(
        l: &[tokio::net::TcpListener],
    ) -> (usize, (tokio::net::TcpStream, SocketAddr)) {
        loop {
            for (i, x) in l.iter().enumerate() {
                if let Ok(Ok(c)) =
                    tokio::time::timeout(std::time::Duration::from_millis(10), x.accept()).await
                {
                    return (i, c);
                }
            }
        }
    }
}
