//! A group's listening sockets: one per proxy worker thread
//! ([`crate::workers`]), all bound to the group's address with
//! `SO_REUSEPORT`, so the kernel spreads new connections over as many accept
//! loops as there are workers instead of queueing them all behind one. The sockets carry `TCP_NODELAY`, which the
//! connections they accept inherit (Linux), so no per-connection call sets it.
//!
//! `SO_REUSEPORT` would also let another process of the same user bind the
//! same address and take a share of the connections — a second frontend
//! started with the same config, with routes of its own. So the address is
//! first bound once without it (and not listened on): that fails while
//! anything listens there, as a plain bind always did.

use std::net::SocketAddr;

use tokio::net::TcpSocket;

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
