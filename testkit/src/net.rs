//! Loopback addresses for tests: ones that must find nothing there, and
//! ports for the daemons tests start.

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

/// A port on 127.0.0.1 for a daemon a test starts (BIND, Knot, etcd, rsync,
/// Swift, an orchestrator), free for both TCP and UDP when picked.
///
/// Ports are taken below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), from a per-process sequence that
/// starts at an offset drawn from the process id: a port bound to `:0` and
/// released instead is one the kernel hands out again to any socket of a
/// test running beside (a resolver's UDP client, an HTTP client), which
/// then takes the daemon's port between the check and the daemon's bind —
/// or, with `SO_REUSEPORT`, shares it and swallows its answers. Below the
/// ephemeral range only explicit binds land, and within a process the
/// sequence never repeats a port until the range wraps.
pub fn daemon_port() -> u16 {
    daemon_ports(1)
}

/// `n` consecutive ports (the first returned), as [`daemon_port`], each
/// free for TCP and UDP when picked.
pub fn daemon_ports(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let (lo, hi) = fixed_range();
    let span = u32::from(hi - lo);
    assert!(
        span > u32::from(n) * 16,
        "the range below the ephemeral ports ({lo}..{hi}) is too small for {n} ports"
    );
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let at = NEXT.fetch_add(u32::from(n), Ordering::SeqCst) % span;
        if at + u32::from(n) > span {
            continue;
        }
        let base = lo + at as u16;
        if (0..n).all(|i| free_both(base + i)) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports in {lo}..{hi}");
}

/// The ports tests may bind by number: from 10000 to the start of the
/// kernel's ephemeral range (read from procfs; 32768 when unreadable).
fn fixed_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    (10_000, ephemeral_low.max(12_000))
}

fn free_both(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}
