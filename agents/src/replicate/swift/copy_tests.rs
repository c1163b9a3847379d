//! [`copy_object`] against a small local HTTP server standing in for both
//! clusters (tempauth, one GET, one PUT): what the streamed PUT carries, and
//! that a source body cut short never becomes a stored object. Everything
//! else is tested against real Swift (agents/tests/swift.rs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::*;
use crate::replicate::swift::SwiftSettings;

const BODY: &[u8] = b"hello world";
/// MD5 of [`BODY`].
const BODY_MD5: &str = "5eb63bbbe01eeed093cb22bb8f5acdc3";

/// One PUT as the server received it.
#[derive(Debug, Clone)]
struct Put {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The whole `Content-Length` arrived.
    complete: bool,
}

impl Put {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves tempauth, `GET /v1/AUTH_t/c/o` (announcing `BODY`'s length but
/// sending only `send` bytes of it, then closing when short) and PUTs
/// (recorded; answered 201 with the request's ETag only when whole).
async fn server(send: usize) -> (String, Arc<Mutex<Vec<Put>>>) {
    let (base, puts, _) = server_with(send, false).await;
    (base, puts)
}

/// [`server`]; with `hold`, the GET sends the first half of `BODY`, then
/// waits (at most 3 s) for a PUT to begin before it sends the rest. The
/// flag answers whether it had to wait the whole 3 s: a copy through
/// memory would (it reads the whole GET before its PUT), a stream not.
async fn server_with(send: usize, hold: bool) -> (String, Arc<Mutex<Vec<Put>>>, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let puts = Arc::new(Mutex::new(Vec::new()));
    let waited_out = Arc::new(AtomicBool::new(false));
    let hold = hold.then(|| (Arc::new(Notify::new()), waited_out.clone()));
    let (b, p) = (base.clone(), puts.clone());
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let h = hold.clone();
            tokio::spawn(connection(conn, b.clone(), p.clone(), send, h));
        }
    });
    (base, puts, waited_out)
}

/// The PUT's start, and whether the held GET waited it out.
type Hold = Option<(Arc<Notify>, Arc<AtomicBool>)>;

async fn connection(
    conn: TcpStream,
    base: String,
    puts: Arc<Mutex<Vec<Put>>>,
    send: usize,
    hold: Hold,
) {
    let mut conn = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split(' ');
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if conn.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        if method == "PUT" {
            if let Some((began, _)) = &hold {
                began.notify_one();
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let length: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        let mut got = 0;
        while got < length {
            match conn.read(&mut body[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        body.truncate(got);
        let out = conn.get_mut();
        if path.starts_with("/auth") {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nX-Storage-Url: {base}/v1/AUTH_t\r\nX-Auth-Token: tk\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = out.write_all(answer.as_bytes()).await;
        } else if method == "GET" {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nEtag: {BODY_MD5}\r\nContent-Type: text/plain\r\nX-Timestamp: 1795307425.60651\r\nX-Object-Meta-Color: blue\r\n\r\n",
                BODY.len()
            );
            let _ = out.write_all(head.as_bytes()).await;
            if let Some((began, waited_out)) = &hold {
                let half = BODY.len() / 2;
                let _ = out.write_all(&BODY[..half]).await;
                let _ = out.flush().await;
                let put = tokio::time::timeout(Duration::from_secs(3), began.notified()).await;
                waited_out.store(put.is_err(), Ordering::SeqCst);
                let _ = out.write_all(&BODY[half..]).await;
                continue;
            }
            let _ = out.write_all(&BODY[..send]).await;
            if send < BODY.len() {
                let _ = out.flush().await;
                return; // cut short: the connection closes mid-body
            }
        } else if method == "PUT" {
            let complete = got == length;
            puts.lock().unwrap().push(Put {
                headers: headers.clone(),
                body,
                complete,
            });
            if !complete {
                return;
            }
            let etag = get("etag").unwrap_or_default();
            let answer =
                format!("HTTP/1.1 201 Created\r\nEtag: {etag}\r\nContent-Length: 0\r\n\r\n");
            let _ = out.write_all(answer.as_bytes()).await;
        } else {
            let _ = out
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    }
}

fn client(base: &str) -> SwiftClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut s = SwiftSettings::new(
        format!("{base}/auth/v1.0"),
        "t:u",
        warden_config::Secret::new("k"),
    );
    s.timeout = Duration::from_secs(5);
    SwiftClient::new(s).unwrap()
}

#[tokio::test]
async fn a_streamed_copy_carries_length_etag_and_metadata() {
    let (base, puts) = server(BODY.len()).await;
    let c = client(&base);
    let item = copy_object(&c, &c, "c", "o").await.unwrap().unwrap();
    assert_eq!(item.size, BODY.len() as u64);
    assert_eq!(item.version, format!("{BODY_MD5}@1795307425.60651"));
    let puts = puts.lock().unwrap();
    let put = &puts[0];
    assert!(put.complete && put.body == BODY, "{put:?}");
    assert_eq!(put.header("content-length"), Some("11"));
    assert_eq!(put.header("etag"), Some(BODY_MD5), "Swift checks the MD5");
    assert_eq!(put.header("content-type"), Some("text/plain"));
    assert_eq!(put.header("x-object-meta-color"), Some("blue"));
    assert_eq!(put.header(ORIGIN_TS_HEADER), Some("1795307425.60651"));
    assert_eq!(put.header("transfer-encoding"), None, "{put:?}");
}

#[tokio::test]
async fn a_source_body_cut_short_is_never_stored() {
    let (base, puts) = server(5).await;
    let c = client(&base);
    let r = copy_object(&c, &c, "c", "o").await;
    assert!(r.is_err(), "{r:?}");
    let e = r.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    // the PUT started (streaming) but never delivered the announced length
    let puts = puts.lock().unwrap();
    assert!(puts.iter().all(|p| !p.complete), "{puts:?}");
}

/// The copy is a stream: the PUT begins while the GET's body is still
/// arriving (the source holds back its second half until a PUT starts,
/// for up to 3 s), and what arrives is the whole body.
#[tokio::test]
async fn the_put_begins_before_the_get_has_ended() {
    let (base, puts, waited_out) = server_with(BODY.len(), true).await;
    let c = client(&base);
    copy_object(&c, &c, "c", "o").await.unwrap().unwrap();
    assert!(
        !waited_out.load(Ordering::SeqCst),
        "the source waited 3 s for a PUT: the copy read the whole GET first"
    );
    let puts = puts.lock().unwrap();
    assert!(puts[0].complete && puts[0].body == BODY, "{:?}", puts[0]);
}
