//! Shared test harness: echo backends that answer their name, a frontend
//! started on 127.0.0.1 port 0, and a control API client.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warden_config::Secret;
use warden_frontend::{BoundAddrs, FrontendError, FrontendSettings, GroupSettings};

pub(crate) const TOKEN: &str = "test-token-0123456789";

/// A TCP backend that answers every line with its name.
pub(crate) struct Echo {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) async fn echo(name: &'static str) -> Echo {
    echo_at(name, "127.0.0.1:0".parse().expect("addr")).await
}

/// [`echo`] on `addr` (a backend coming back where it was).
pub(crate) async fn echo_at(name: &'static str, addr: SocketAddr) -> Echo {
    let held = held_ports().lock().expect("held ports").remove(&addr);
    let listener = match held {
        Some(sock) => sock.listen(1024).expect("listen on the held port"),
        None => TcpListener::bind(addr).await.expect("bind echo backend"),
    };
    let addr = listener.local_addr().expect("echo addr");
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = tokio::select! {
                _ = s.cancelled() => return,
                r = listener.accept() => match r { Ok(c) => c, Err(_) => return },
            };
            let s = s.clone();
            tokio::spawn(async move {
                let (r, mut w) = conn.into_split();
                let mut lines = BufReader::new(r).lines();
                loop {
                    let line = tokio::select! {
                        _ = s.cancelled() => return,
                        l = lines.next_line() => l,
                    };
                    match line {
                        Ok(Some(_)) => {
                            if w.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            });
        }
    });
    Echo { addr, stop }
}

/// A running frontend; stopped on drop.
pub(crate) struct Frontend {
    pub addrs: BoundAddrs,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<Result<(), FrontendError>>>,
    client: reqwest::Client,
}

impl Drop for Frontend {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) fn group(backends: &[(&str, SocketAddr)], drain: Duration) -> GroupSettings {
    GroupSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        backends: backends
            .iter()
            .map(|(s, a)| (s.to_string(), a.to_string()))
            .collect(),
        drain_timeout: drain,
        hold_connections: Duration::from_secs(2),
        connect_retry: Duration::ZERO,
    }
}

pub(crate) fn settings(groups: BTreeMap<String, GroupSettings>) -> FrontendSettings {
    FrontendSettings {
        name: "fe-test".into(),
        control: "127.0.0.1:0".parse().expect("addr"),
        token: Secret::new(TOKEN),
        tls: None,
        groups,
        state_dir: None,
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider`; plain http needs no TLS, but
    // building a client needs a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("http client")
}

pub(crate) async fn start(groups: BTreeMap<String, GroupSettings>) -> Frontend {
    start_settings(settings(groups)).await
}

pub(crate) async fn start_settings(settings: FrontendSettings) -> Frontend {
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(warden_frontend::run(settings, shutdown.clone(), Some(tx)));
    let addrs = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("frontend ready in time")
        .expect("frontend reported ready");
    Frontend {
        addrs,
        shutdown,
        handle: Some(handle),
        client: http_client(),
    }
}

/// One group "web" with sites a and b, drained for `drain`.
pub(crate) async fn start_web(drain: Duration) -> (Frontend, Echo, Echo) {
    let (a, b) = (echo("a").await, echo("b").await);
    let groups = BTreeMap::from([(
        "web".to_string(),
        group(&[("a", a.addr), ("b", b.addr)], drain),
    )]);
    (start(groups).await, a, b)
}

impl Frontend {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs.control)
    }

    pub(crate) fn listen(&self, group: &str) -> SocketAddr {
        self.addrs.groups[group]
    }

    /// PUT a route with the right token.
    pub(crate) async fn put(
        &self,
        group: &str,
        site: &str,
        epoch: u64,
        mode: &str,
    ) -> (StatusCode, Value) {
        let body = serde_json::json!({ "site": site, "epoch": epoch, "mode": mode });
        self.put_raw(group, body.to_string(), Some(TOKEN)).await
    }

    /// PUT a hold order with the right token.
    pub(crate) async fn hold(&self, group: &str, epoch: u64, ttl_ms: u64) -> (StatusCode, Value) {
        let body = serde_json::json!({ "epoch": epoch, "ttl_ms": ttl_ms });
        self.put_path(
            &format!("/v1/routes/{group}/hold"),
            body.to_string(),
            Some(TOKEN),
        )
        .await
    }

    /// PUT a cut-over hold order (`pause`: new users wait for the switch).
    pub(crate) async fn pause(&self, group: &str, epoch: u64, ttl_ms: u64) -> (StatusCode, Value) {
        let body = serde_json::json!({ "epoch": epoch, "ttl_ms": ttl_ms, "pause": true });
        self.put_path(
            &format!("/v1/routes/{group}/hold"),
            body.to_string(),
            Some(TOKEN),
        )
        .await
    }

    /// PUT a hold order with its place among the orders of its epoch (`seq`).
    pub(crate) async fn hold_seq(
        &self,
        group: &str,
        epoch: u64,
        seq: u64,
        ttl_ms: u64,
        pause: bool,
    ) -> (StatusCode, Value) {
        let body =
            serde_json::json!({ "epoch": epoch, "seq": seq, "ttl_ms": ttl_ms, "pause": pause });
        self.put_path(
            &format!("/v1/routes/{group}/hold"),
            body.to_string(),
            Some(TOKEN),
        )
        .await
    }

    /// PUT a hold order placed by its giver's licence term and `seq`.
    pub(crate) async fn hold_placed(
        &self,
        group: &str,
        epoch: u64,
        (term, seq): (u64, u64),
        ttl_ms: u64,
        pause: bool,
    ) -> (StatusCode, Value) {
        let body = serde_json::json!({
            "epoch": epoch, "term": term, "seq": seq, "ttl_ms": ttl_ms, "pause": pause
        });
        self.put_path(
            &format!("/v1/routes/{group}/hold"),
            body.to_string(),
            Some(TOKEN),
        )
        .await
    }

    /// A hold order placed at (`term`, `seq`) of etcd cluster `cluster`
    /// (`None`: the field absent, no cluster).
    pub(crate) async fn hold_of(
        &self,
        epoch: u64,
        (cluster, term, seq): (Option<u64>, u64, u64),
        ttl_ms: u64,
    ) -> (StatusCode, Value) {
        let mut body = serde_json::json!({
            "epoch": epoch, "term": term, "seq": seq, "ttl_ms": ttl_ms
        });
        if let Some(c) = cluster {
            body["cluster"] = c.into();
        }
        self.put_path("/v1/routes/web/hold", body.to_string(), Some(TOKEN))
            .await
    }

    pub(crate) async fn put_raw(
        &self,
        group: &str,
        body: String,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        self.put_path(&format!("/v1/routes/{group}"), body, token)
            .await
    }

    pub(crate) async fn put_path(
        &self,
        path: &str,
        body: String,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .put(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("control API answers");
        let status = resp.status();
        let body = resp.json::<Value>().await.expect("JSON body");
        (status, body)
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("control API answers");
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// The group's route as the control API reports it.
    pub(crate) async fn route(&self, group: &str) -> Value {
        let (status, body) = self.get("/v1/routes", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body[group].clone()
    }

    /// Stop and wait for `run` to return.
    pub(crate) async fn stop(mut self) -> Result<(), FrontendError> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("run returns promptly after shutdown")
            .expect("run did not panic")
    }
}

/// An open client connection through the frontend.
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr)
            .await
            .expect("connect to frontend listener");
        Conn {
            reader: BufReader::new(s),
        }
    }

    /// Send a line without waiting for an answer.
    pub(crate) async fn send(&mut self) {
        self.reader
            .get_mut()
            .write_all(b"who\n")
            .await
            .expect("write to the frontend");
    }

    /// The answer to a line sent earlier, or `None` if the connection closed.
    pub(crate) async fn answer(&mut self) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(3), self.reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => Some(line.trim().to_string()),
            Err(_) => panic!("no answer and no close within 3s"),
        }
    }

    /// Send a line and return the backend's answer (its name), or `None` if the connection closed.
    pub(crate) async fn ask(&mut self) -> Option<String> {
        if self.reader.get_mut().write_all(b"who\n").await.is_err() {
            return None;
        }
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(3), self.reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => Some(line.trim().to_string()),
            Err(_) => panic!("no answer and no close within 3s"),
        }
    }

    /// Wait until the frontend closes the connection; panics after `within`.
    pub(crate) async fn closed_within(&mut self, within: Duration) {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(within, self.reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("expected a close, read {n} bytes"),
            Err(_) => panic!("connection still open after {within:?}"),
        }
    }
}

/// Sockets bound by [`refusing`] and not listening, kept so that no other
/// test (they run in parallel) can take their ports; [`echo_at`] turns one
/// into its listener when a backend comes back there.
fn held_ports() -> &'static Mutex<HashMap<SocketAddr, TcpSocket>> {
    static HELD: OnceLock<Mutex<HashMap<SocketAddr, TcpSocket>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// An address that refuses connections: a port bound and never listened on
/// (the kernel answers a SYN with a reset), held for the rest of the run.
pub(crate) async fn refusing() -> SocketAddr {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = sock.local_addr().expect("addr");
    held_ports().lock().expect("held ports").insert(addr, sock);
    addr
}

/// An address whose connects hang, as to a host whose packets vanish: a
/// loopback listener that never accepts, its queue already full (Linux
/// then drops new SYNs). Keep the returned value alive while it is used.
pub(crate) async fn blackhole() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let l = sock.listen(0).expect("listen");
    let addr = l.local_addr().expect("addr");
    let mut fill = Vec::new();
    // Fill the accept queue until a connect no longer completes at once.
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fill.push(s),
            _ => return (addr, l, fill),
        }
    }
    panic!("the accept queue of {addr} never filled");
}

/// One new connection's answer.
pub(crate) async fn ask_new(addr: SocketAddr) -> Option<String> {
    Conn::open(addr).await.ask().await
}

/// Retry `$cond` (an async bool expression) until it holds or `$patience` runs out.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $patience:expr, $($msg:tt)+) => {{
        let deadline = tokio::time::Instant::now() + $patience;
        loop {
            if $cond {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!($($msg)+);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

/// A 409 whose error says `says` (every refusal of an order names why).
pub(crate) fn assert_refused(status: StatusCode, body: &Value, says: &str) {
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(says), "{body}");
}
