//! Loopback addresses for tests that must find nothing there.

use std::net::SocketAddr;

/// An address on 127.0.0.1 that refuses connections: a port bound and
/// never listened on (the kernel answers a SYN with a reset), held for the
/// rest of the process. A port bound and released instead can be taken by
/// a test running beside, which then answers where a refusal was meant.
pub fn refusing() -> SocketAddr {
    let sock = tokio::net::TcpSocket::new_v4().expect("a socket");
    sock.bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind 127.0.0.1:0");
    let addr = sock.local_addr().expect("its address");
    std::mem::forget(sock);
    addr
}
