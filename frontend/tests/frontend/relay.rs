//! How the proxy relays bytes and ends connections: every byte of a backend
//! that closes reaches the client, half-closes are passed on while the other
//! side still has bytes to send, every proxy worker's accept loop serves
//! connections, and a frontend with no group keeps running.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::harness::{ask_new, group, start, start_web};

const DRAIN: Duration = Duration::from_secs(5);
const PATIENCE: Duration = Duration::from_secs(10);

/// A backend that runs `serve` on its first connection.
async fn backend<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = l.local_addr().expect("backend addr");
    tokio::spawn(async move {
        if let Ok((s, _)) = l.accept().await {
            serve(s).await;
        }
    });
    addr
}

/// A frontend whose group "web" routes to `addr` (site a).
async fn through(addr: SocketAddr) -> (crate::harness::Frontend, SocketAddr) {
    let groups = BTreeMap::from([("web".to_string(), group(&[("a", addr)], DRAIN))]);
    let fe = start(groups).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let listen = fe.listen("web");
    (fe, listen)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_closing_backend_delivers_every_byte_then_the_end() {
    let sent = pattern(4 << 20);
    let body = sent.clone();
    let addr = backend(move |mut s| async move {
        let _ = s.write_all(&body).await;
        // Dropped: closed without a shutdown, as many servers do.
    })
    .await;
    let (_fe, listen) = through(addr).await;
    let mut c = TcpStream::connect(listen).await.expect("connect");
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, c.read_to_end(&mut got))
        .await
        .expect("the end arrives")
        .expect("no error");
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "the bytes arrive intact and in order");
}

#[tokio::test]
async fn short_answers_that_end_at_once_arrive_whole_then_the_end() {
    // A backend that writes its answer and ends right after, as an HTTP
    // server with `Connection: close` does: the proxy often reads the last
    // bytes and the end at once, and closes the client right after writing
    // them. Every client must get its whole answer, then the end, never a
    // reset; on some connections the client is still sending when the
    // backend ends.
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = l.local_addr().expect("backend addr");
    let serving = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut ask = [0u8; 8];
                if s.read_exact(&mut ask).await.is_err() {
                    return;
                }
                let n = u64::from_be_bytes(ask);
                let answer = format!("answer {n}\n").repeat(1 + (n % 3) as usize * 500);
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let _ = s.shutdown().await;
                // Take whatever the client still sends, to its end.
                let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
            });
        }
    });
    let (_fe, listen) = through(addr).await;
    for n in 0..120u64 {
        let mut c = TcpStream::connect(listen).await.expect("connect");
        c.write_all(&n.to_be_bytes()).await.expect("ask");
        if n % 2 == 1 {
            // Still sending when the answer comes: the end reaches the
            // client as a half-close, and these bytes still go through.
            c.write_all(&pattern(10_000)).await.expect("more");
        }
        let mut got = String::new();
        tokio::time::timeout(PATIENCE, c.read_to_string(&mut got))
            .await
            .expect("the answer and its end arrive")
            .unwrap_or_else(|e| panic!("connection {n}: {e}"));
        let want = format!("answer {n}\n").repeat(1 + (n % 3) as usize * 500);
        assert!(
            got == want,
            "connection {n}: got {} bytes, want {}",
            got.len(),
            want.len()
        );
    }
    serving.abort();
}

#[tokio::test]
async fn a_client_half_close_reaches_the_backend_and_the_answer_still_flows() {
    let addr = backend(|mut s| async move {
        let mut got = Vec::new();
        if s.read_to_end(&mut got).await.is_ok() {
            let _ = s
                .write_all(format!("{} bytes\n", got.len()).as_bytes())
                .await;
        }
    })
    .await;
    let (_fe, listen) = through(addr).await;
    let mut c = TcpStream::connect(listen).await.expect("connect");
    c.write_all(&pattern(100_000)).await.expect("write");
    c.shutdown().await.expect("half-close");
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, c.read_to_string(&mut answer))
        .await
        .expect("answer and end arrive")
        .expect("no error");
    assert_eq!(answer, "100000 bytes\n");
}

#[tokio::test]
async fn a_backend_half_close_is_passed_on_while_client_bytes_are_still_on_their_way() {
    const LEN: usize = 64 << 20;
    let (count_tx, count_rx) = oneshot::channel();
    let addr = backend(move |mut s| async move {
        let mut first = [0u8; 1];
        if s.read_exact(&mut first).await.is_err() {
            return;
        }
        // Read nothing for a while: the client's bytes pile up in the proxy
        // and the sockets' queues.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = s.shutdown().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut rest = Vec::new();
        let n = s.read_to_end(&mut rest).await.map(|n| n + 1);
        let _ = count_tx.send(n.ok());
    })
    .await;
    let (_fe, listen) = through(addr).await;
    let mut c = TcpStream::connect(listen).await.expect("connect");
    let data = pattern(LEN);
    let mut end = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        c.write_all(&data).await.expect("every byte is accepted");
        c.shutdown().await.expect("half-close");
        c.read_to_end(&mut end)
            .await
            .expect("the backend's end arrives");
    })
    .await
    .expect("in time");
    assert!(end.is_empty());
    let count = tokio::time::timeout(PATIENCE, count_rx)
        .await
        .expect("the backend reports")
        .expect("the backend ran");
    assert_eq!(count, Some(LEN), "the backend read every client byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accept_loop_serves_and_shutdown_closes_them_all() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let listen = fe.listen("web");
    // Connections from many source ports: the kernel spreads them over both
    // sockets; one without a running accept loop would leave some unanswered.
    let asks: Vec<_> = (0..200)
        .map(|_| tokio::spawn(tokio::time::timeout(PATIENCE, ask_new(listen))))
        .collect();
    for ask in asks {
        let answer = ask.await.expect("task").expect("answered in time");
        assert_eq!(answer.as_deref(), Some("a"));
    }
    fe.stop().await.expect("clean stop");
    for _ in 0..20 {
        assert!(
            TcpStream::connect(listen).await.is_err(),
            "every listening socket is closed"
        );
    }
}

#[tokio::test]
async fn a_frontend_with_no_group_keeps_its_control_api() {
    let fe = start(BTreeMap::new()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = fe.get("/v1/health", Some(crate::harness::TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !fe.handle.as_ref().expect("running").is_finished(),
        "no worker ended the frontend"
    );
    fe.stop().await.expect("clean stop");
}

/// A backend that echoes every byte of its first connection until the end.
async fn echo_backend() -> SocketAddr {
    backend(|s| async move {
        let (mut r, mut w) = s.into_split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn bytes_sent_with_the_connect_arrive_whole_and_in_order() {
    // The first bytes are read and passed on before the runtime reports the
    // sockets ready (relay.rs, `early`); the rest through the event loop.
    // A request larger than the first read must still arrive in order.
    let (_fe, listen) = through(echo_backend().await).await;
    let sent = pattern(300_000);
    let mut c = TcpStream::connect(listen).await.expect("connect");
    let (mut r, mut w) = c.split();
    let reading = async {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.map(|_| got)
    };
    let writing = async {
        w.write_all(&sent).await?;
        w.shutdown().await
    };
    let (got, wrote) = tokio::time::timeout(PATIENCE, async { tokio::join!(reading, writing) })
        .await
        .expect("the echo and its end arrive");
    wrote.expect("every byte written");
    let got = got.expect("no error");
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "the bytes come back intact and in order");
}

#[tokio::test]
async fn a_backend_whose_handshake_completes_late_is_still_reached() {
    // A backend whose accept queue is full drops the proxy's SYN: the
    // backend connect does not complete within the call (as it does on
    // loopback otherwise) and is waited for — the SYN is sent again after
    // about a second — not taken for a failure.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let l = socket.listen(0).expect("listen with no room");
    let addr = l.local_addr().expect("addr");
    // Fills the queue (one connection, never accepted yet).
    let _filler = TcpStream::connect(addr).await.expect("filler connects");
    let (_fe, listen) = through(addr).await;
    let mut c = TcpStream::connect(listen).await.expect("connect");
    c.write_all(b"late hello").await.expect("write");
    // Give the proxy's connect time to be dropped, then make room.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let echo = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let mut got = [0u8; 10];
    tokio::time::timeout(PATIENCE, c.read_exact(&mut got))
        .await
        .expect("the echo arrives once the backend accepts")
        .expect("no error");
    assert_eq!(&got, b"late hello");
    echo.abort();
}

/// `warden_frontend_worker_connections` by worker, from `/metrics`.
async fn worker_loads(fe: &crate::harness::Frontend) -> Vec<u64> {
    let text = crate::harness::http_client()
        .get(fe.url("/metrics"))
        .bearer_auth(crate::harness::TOKEN)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("warden_frontend_worker_connections{"))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a count in {l:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_are_spread_evenly_over_the_workers() {
    // The kernel picks a worker's socket by a hash of the addresses (60
    // connections came out 18/42 in one of six tries); a worker serving
    // more than another hands new connections over, and they are served
    // there like any other, so the split is exact: a split of 27/23 would
    // last as long as the connections do. Several batches, as one may be
    // even by chance.
    let (fe, _a, _b) = start_web(DRAIN).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let listen = fe.listen("web");
    for batch in 0..8 {
        let mut conns = Vec::new();
        for _ in 0..60 {
            let mut c = crate::harness::Conn::open(listen).await;
            assert_eq!(c.ask().await.as_deref(), Some("a"), "served");
            conns.push(c);
        }
        let loads = worker_loads(&fe).await;
        assert_eq!(
            loads.iter().sum::<u64>(),
            60,
            "batch {batch}: every open connection counted once: {loads:?}"
        );
        let (lo, hi) = (
            loads.iter().min().copied().unwrap_or(0),
            loads.iter().max().copied().unwrap_or(0),
        );
        // Opened one after the other, each placed knowing the others.
        assert!(
            hi - lo <= 1,
            "batch {batch}: workers unevenly loaded: {loads:?}"
        );
        // Every connection, moved or not, still answers; then all close.
        for c in &mut conns {
            assert_eq!(c.ask().await.as_deref(), Some("a"));
        }
        drop(conns);
        let mut loads = worker_loads(&fe).await;
        for _ in 0..100 {
            if loads.iter().sum::<u64>() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            loads = worker_loads(&fe).await;
        }
        assert_eq!(
            loads.iter().sum::<u64>(),
            0,
            "batch {batch}: closed connections are no longer counted: {loads:?}"
        );
    }
    fe.stop().await.expect("clean stop");
}

#[tokio::test]
async fn an_answer_sent_before_the_client_finishes_sending_reaches_the_client() {
    // A backend that answers after the first bytes of a large upload and
    // closes without reading the rest, as an HTTP server answering `413` or
    // `401` does: its close resets the connection (unread bytes were
    // waiting), so the proxy's next write to it fails. The answer it sent
    // first must still reach the client.
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = l.local_addr().expect("backend addr");
    let serving = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 16];
                if s.read_exact(&mut head).await.is_err() {
                    return;
                }
                let _ = s.write_all(b"413 too large\n").await;
                // Closed at once with the client's bytes unread: a reset.
            });
        }
    });
    let (_fe, listen) = through(addr).await;
    for round in 0..5 {
        let c = TcpStream::connect(listen).await.expect("connect");
        let (mut r, mut w) = c.into_split();
        let upload = tokio::spawn(async move {
            // Fails once the connection is reset; that is expected.
            let _ = w.write_all(&pattern(32 << 20)).await;
            w
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let _ = tokio::time::timeout(PATIENCE, async {
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        upload.abort();
        assert_eq!(
            String::from_utf8_lossy(&got),
            "413 too large\n",
            "round {round}: the backend's answer arrives"
        );
    }
    serving.abort();
}

/// Close `s` with a reset (`SO_LINGER` 0), as a crashed peer or a
/// middlebox does.
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(s);
}

#[tokio::test]
async fn a_backend_reset_mid_stream_reaches_the_client_as_a_reset() {
    // A backend that crashes (or is reset by the network) mid-answer: the
    // client must see the answer cut, not a clean end that makes a
    // truncated download look whole.
    let addr = backend(|mut s| async move {
        let _ = s.write_all(&pattern(10_000)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        reset(s);
    })
    .await;
    let (_fe, listen) = through(addr).await;
    let mut c = TcpStream::connect(listen).await.expect("connect");
    let mut got = Vec::new();
    let r = tokio::time::timeout(PATIENCE, c.read_to_end(&mut got))
        .await
        .expect("the end arrives");
    assert_eq!(got.len(), 10_000, "what was sent before the reset arrives");
    assert!(r.is_err(), "a clean end instead of a reset: {r:?}");
}

/// A download backed up behind a client that does not read yet (32 MiB:
/// more than the sockets' buffers hold on the way); the
/// backend is reset meanwhile (its reset waits unread at the frontend),
/// and then the client sends a byte: the frontend's write of it to the
/// backend fails — and takes the socket's error, so the backend socket
/// then reads to a clean end. The client must still see the download cut
/// (what arrived, then a reset), never a clean end. Before, the refused
/// write ended the relay with an error and the client was closed cleanly:
/// a truncated download looked whole. The same when the client
/// half-closes instead (the half-close passed on fails).
#[tokio::test]
async fn a_backend_reset_seen_through_a_refused_write_reaches_the_client_as_a_reset() {
    for half_close in [false, true] {
        // More than loopback's socket buffers hold along the way.
        let total = 32 << 20;
        let addr = backend(move |mut s| async move {
            let _ = tokio::time::timeout(Duration::from_millis(500), s.write_all(&pattern(total)))
                .await;
            reset(s);
        })
        .await;
        let (_fe, listen) = through(addr).await;
        let mut c = TcpStream::connect(listen).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        if half_close {
            c.shutdown().await.expect("half-close");
        } else {
            c.write_all(b"x").await.expect("one byte");
        }
        let mut got = Vec::new();
        let r = tokio::time::timeout(PATIENCE, c.read_to_end(&mut got))
            .await
            .expect("the end arrives");
        assert!(got.len() < total, "the backend's reset cut the download");
        assert!(
            r.is_err(),
            "half-close {half_close}: a clean end after {} of {total} bytes: {r:?}",
            got.len()
        );
    }
}

#[tokio::test]
async fn a_client_reset_mid_upload_reaches_the_backend_as_a_reset() {
    // A client whose upload is cut by a reset: the backend must not see a
    // clean end and take the partial upload for a whole one.
    let (tx, rx) = oneshot::channel();
    let addr = backend(|mut s| async move {
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got).await;
        let _ = tx.send((got.len(), r.map_err(|e| e.kind())));
    })
    .await;
    let (_fe, listen) = through(addr).await;
    let mut c = TcpStream::connect(listen).await.expect("connect");
    c.write_all(&pattern(10_000)).await.expect("upload");
    tokio::time::sleep(Duration::from_millis(100)).await;
    reset(c);
    let (len, r) = tokio::time::timeout(PATIENCE, rx)
        .await
        .expect("the backend sees the end")
        .expect("the backend ran");
    assert_eq!(len, 10_000, "what was sent before the reset arrives");
    assert!(r.is_err(), "a clean end instead of a reset: {r:?}");
}

/// A connection cut by an immediate switch (a failover: the old site is
/// lost or fenced) in the middle of a download and an upload: both ends
/// see the cut as a reset. Before, both saw a clean end, so a download of
/// unknown length looked whole to the client and a partial upload whole to
/// the backend.
#[tokio::test]
async fn a_transfer_cut_by_an_immediate_switch_ends_as_a_reset_at_both_ends() {
    let (tx, rx) = oneshot::channel();
    let addr = backend(|s| async move {
        let (mut r, mut w) = s.into_split();
        // Down: a stream with no end of its own.
        tokio::spawn(async move {
            let chunk = pattern(1024);
            while w.write_all(&chunk).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        // Up: read the client's upload to its end.
        let mut got = Vec::new();
        let end = r.read_to_end(&mut got).await;
        let _ = tx.send((got.len(), end.map_err(|e| e.kind())));
    })
    .await;
    let groups = BTreeMap::from([("web".to_string(), group(&[("a", addr), ("b", addr)], DRAIN))]);
    let fe = start(groups).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let mut c = TcpStream::connect(fe.listen("web")).await.expect("connect");
    c.write_all(&pattern(10_000)).await.expect("upload");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, c.read(&mut buf))
        .await
        .expect("the download starts")
        .expect("read");
    assert!(n > 0);
    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    // The client reads what was on its way, then the cut.
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(e.kind()),
            }
        }
    })
    .await
    .expect("the cut reaches the client");
    assert_eq!(
        end,
        Err(std::io::ErrorKind::ConnectionReset),
        "the client saw a clean end of a download that was cut"
    );
    let (len, up) = tokio::time::timeout(PATIENCE, rx)
        .await
        .expect("the cut reaches the backend")
        .expect("the backend ran");
    assert_eq!(len, 10_000, "what was sent before the cut arrives");
    assert!(
        up.is_err(),
        "the backend saw a clean end of an upload that was cut: {up:?}"
    );
}
