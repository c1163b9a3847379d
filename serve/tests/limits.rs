//! The listener's limits against a real socket on loopback: long URIs and
//! headers get JSON 414/431, a connection beyond the cap displaces the
//! oldest one nobody vouched for, or is closed at once when all are,
//! headers that trickle in are cut at the header timeout, a slow answer at
//! the request timeout (JSON 408), and the router sees the client address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use warden_serve::{serve, Limits, Standing};

async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
    let app = Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        // Stands for an authenticated request: the router vouches for its
        // connection, as the APIs' token checks do.
        .route(
            "/vouch/{who}",
            get(
                |axum::Extension(standing): axum::Extension<Standing>,
                 axum::extract::Path(who): axum::extract::Path<String>| async move {
                    if standing.vouch_as(&who) {
                        "vouched"
                    } else {
                        "not vouched"
                    }
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, app, limits, None, stop.clone()));
    (addr, stop)
}

/// Sends `req`, returns everything the server sends until it closes (or 3 s).
async fn exchange(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn limits() -> Limits {
    Limits {
        max_connections: 4,
        header_read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        max_uri_bytes: 100,
        max_header_bytes: 1000,
    }
}

#[tokio::test]
async fn sizes_are_refused_with_json_and_the_router_sees_the_client() {
    let (addr, _stop) = start(limits()).await;
    let ok = exchange(
        addr,
        b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.ends_with("127.0.0.1"),
        "{ok}"
    );

    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(200)
    );
    let r = exchange(addr, long.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 414"), "{r}");
    assert!(
        r.contains("application/json")
            && r.contains(r#"{"error":"request URI of 201 bytes; at most 100 are accepted"}"#),
        "{r}"
    );

    let big = format!(
        "GET /peer HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(2000)
    );
    let r = exchange(addr, big.as_bytes()).await;
    assert!(
        r.starts_with("HTTP/1.1 431") && r.contains(r#""error":"request headers of"#),
        "{r}"
    );
}

#[tokio::test]
async fn slow_clients_and_slow_answers_are_cut() {
    let (addr, _stop) = start(limits()).await;
    // Headers a byte at a time, never finished: closed at the header timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let mut closed = false;
    for b in b"GET /peer HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling header was never cut");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // An answer later than the request timeout: 408 with a JSON body.
    let r = exchange(
        addr,
        b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 408")
            && r.contains(r#"{"error":"request not complete within 0.5 s"}"#),
        "{r}"
    );
}

/// Sends a keep-alive request for `path` on `s` and reads its answer.
async fn ask(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .map_or(0, |r| r.unwrap_or(0));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Whether the server closed `s` (or reset it) within 2 s.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    matches!(n, Ok(Ok(0)) | Ok(Err(_)))
}

/// Four connections vouched for (an authenticated request each) fill the
/// cap: a fifth is closed at once, and the four keep being served.
#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let (addr, stop) = start(Limits {
        header_read_timeout: Duration::from_secs(10),
        ..limits()
    })
    .await;
    let mut held = Vec::new();
    for i in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let a = ask(&mut s, &format!("/vouch/agent{i}")).await;
        assert!(
            a.starts_with("HTTP/1.1 200") && a.ends_with("\nvouched"),
            "{a}"
        );
        held.push(s);
    }
    let mut extra = TcpStream::connect(addr).await.unwrap();
    assert!(closed(&mut extra).await, "the fifth connection stays open");
    for s in &mut held {
        let a = ask(s, "/peer").await;
        assert!(
            a.starts_with("HTTP/1.1 200"),
            "a vouched connection was cut: {a}"
        );
    }
    // One of the four leaves: a new one is served.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = exchange(
        addr,
        b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    stop.cancel();
}

/// A client without a credential that holds every connection the cap
/// allows, sending nothing, does not keep others out: each newcomer takes
/// the place of the oldest connection nobody vouched for. Before, the
/// newcomer was closed at once (an agent's report, an operator's failover,
/// refused for as long as the idle connections were held and re-opened).
/// A connection vouched for is never displaced.
#[tokio::test]
async fn idle_connections_at_the_cap_give_way_to_a_newcomer() {
    let (addr, stop) = start(Limits {
        header_read_timeout: Duration::from_secs(10),
        ..limits()
    })
    .await;
    let mut vouched = TcpStream::connect(addr).await.unwrap();
    assert!(ask(&mut vouched, "/vouch/agent0")
        .await
        .ends_with("\nvouched"));
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The cap is full. A newcomer is served...
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    let a = ask(&mut newcomer, "/peer").await;
    assert!(
        a.starts_with("HTTP/1.1 200"),
        "the newcomer was not served: {a:?}"
    );
    // ... in the place of the oldest idle connection, closed; the others
    // and the vouched one stay.
    assert!(
        closed(&mut idle[0]).await,
        "the oldest idle connection stays open"
    );
    let a = ask(&mut vouched, "/peer").await;
    assert!(
        a.starts_with("HTTP/1.1 200"),
        "the vouched connection was cut: {a:?}"
    );
    for s in &mut idle[1..] {
        let a = ask(s, "/peer").await;
        assert!(
            a.starts_with("HTTP/1.1 200"),
            "a younger idle connection was cut: {a:?}"
        );
    }
    stop.cancel();
}

/// One credential vouches for a bounded number of connections
/// (`per_credential`: 2 under a cap of 8): a holder of one token that
/// opens every connection the cap allows and authenticates on each cannot
/// keep a newcomer out — its connections past the bound are displaced like
/// any connection nobody vouched for. Before, every one of them was
/// vouched for and the newcomer (another agent, an operator) was closed at
/// once. A connection that ends gives its credential's place back.
#[tokio::test]
async fn one_credential_cannot_hold_every_connection() {
    let (addr, stop) = start(Limits {
        max_connections: 8,
        header_read_timeout: Duration::from_secs(10),
        ..limits()
    })
    .await;
    assert_eq!(warden_serve::per_credential(8), 2);
    let mut held = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let a = ask(&mut s, "/vouch/site-a").await;
        assert!(
            a.starts_with("HTTP/1.1 200"),
            "its requests are served: {a}"
        );
        answers.push(a.ends_with("\nvouched"));
        held.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        answers,
        [true, true, false, false, false, false, false, false],
        "two vouched for, the rest not"
    );
    // The cap is full. Another agent comes in, in the place of the oldest
    // of the token holder's connections nobody vouched for.
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    let a = ask(&mut newcomer, "/vouch/site-b").await;
    assert!(
        a.ends_with("\nvouched"),
        "the newcomer was not served: {a:?}"
    );
    assert!(
        closed(&mut held[2]).await,
        "the oldest unvouched one stays open"
    );
    for s in &mut held[..2] {
        let a = ask(s, "/peer").await;
        assert!(
            a.starts_with("HTTP/1.1 200"),
            "a vouched connection was cut: {a:?}"
        );
    }
    // A vouched connection ends: the credential may vouch for another.
    drop(held.remove(0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = ask(&mut held[2], "/vouch/site-a").await;
    assert!(a.ends_with("\nvouched"), "{a:?}");
    stop.cancel();
}

/// A connection to `addr` from `from` (another loopback address).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One address floods the cap with idle connections and goes on opening
/// more; a slow newcomer from another address (it has not sent its first
/// request yet — a lossy link, a dashboard that never carries a token)
/// takes the place of the flood's oldest and then keeps it: an address
/// that holds more than its share (`per_address`: 2 under a cap of 8)
/// displaces its own oldest connections. Before, each of the flood's new
/// connections displaced the oldest connection nobody vouched for, so the
/// newcomer was pushed out after eight of them.
#[tokio::test]
async fn a_flood_from_one_address_does_not_push_out_a_newcomer_from_another() {
    let (addr, stop) = start(Limits {
        max_connections: 8,
        header_read_timeout: Duration::from_secs(10),
        ..limits()
    })
    .await;
    assert_eq!(warden_serve::per_address(8), 2);
    let mut flood = Vec::new();
    for _ in 0..8 {
        flood.push(connect_from("127.0.0.2", addr).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut newcomer = connect_from("127.0.0.3", addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(closed(&mut flood[0]).await, "the flood's oldest stays open");
    for _ in 0..16 {
        flood.push(connect_from("127.0.0.2", addr).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = ask(&mut newcomer, "/peer").await;
    assert_eq!(
        a.lines().last(),
        Some("127.0.0.3"),
        "the newcomer was pushed out by the flood: {a:?}"
    );
    // The flood keeps its newest connections, not its oldest.
    let last = flood.len() - 1;
    let a = ask(&mut flood[last], "/peer").await;
    assert!(a.starts_with("HTTP/1.1 200"), "{a:?}");
    stop.cancel();
}
