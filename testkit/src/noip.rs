//! [`FakeNoip`]: a strict stand-in for No-IP's dynamic DNS update server, for
//! tests that cannot reach No-IP.
//!
//! It implements the protocol as No-IP publishes it:
//! - the request, <https://www.noip.com/integrate/request>: `GET /nic/update?hostname=H1,H2&myip=IPV4&myipv6=IPV6`,
//!   HTTP Basic authentication with `username:password` (an account or a DDNS
//!   key), and a `User-Agent: Company NameOfProgram/Version contact@example`;
//! - the response, <https://www.noip.com/integrate/response>: `good IP` and
//!   `nochg IP` (success; with both `myip` and `myipv6` the two addresses come
//!   back comma separated), `nohost`, `badauth`, `badagent`, `!donator`,
//!   `abuse`, `911`; with several hostnames, one code per line in the order
//!   the hostnames were given.
//!
//! The [`Flavor::Dyndns2`] flavour follows Dyn's return codes,
//! <https://help.dyn.com/return-codes.html>, as other DynDNS-compatible
//! servers do: it adds `notfqdn` (a hostname without a dot, or no hostname:
//! then once), `numhost` (more hostnames than allowed, once) and `dnserr`.
//!
//! How strict, exactly (what the documents leave open is decided and said here):
//! - only `GET /nic/update` updates; another method there is `405`, another path `404`;
//! - a request without `Authorization: Basic …` (or one that does not decode
//!   to `user:password`) gets the HTTP challenge `401` with
//!   `WWW-Authenticate: Basic realm="No-IP DNS Update"` and no return code,
//!   as an HTTP server asking for basic authentication does; well-formed but
//!   wrong credentials get `200 badauth`, the documented answer;
//! - then the User-Agent: missing, or not three or more words whose middle
//!   holds `Program/Version` and whose last holds an `@` → `badagent`;
//! - `offline=YES` is a paid feature → `!donator` (the fake account is a free one);
//! - a `myip`/`myipv6` that is not an IPv4/IPv6 address → `400` (undocumented; refused so client bugs surface);
//!   without either, the request's source address is used, as No-IP does;
//! - `nochg` when the hostname already holds every address sent, else `good`;
//!   `myipv6` alone leaves the IPv4 address as it was (and `myip` alone the IPv6).
//!
//! Tests script failures ([`FakeNoip::fail_next`], [`FakeNoip::answer_next`],
//! [`FakeNoip::status_next`], [`FakeNoip::stall_next`]) and read what reached
//! the server ([`FakeNoip::requests`], [`FakeNoip::ip_of`], [`FakeNoip::stats`]),
//! in-process or over HTTP: `GET /test/stats` (path configurable) returns
//! [`Stats`] as JSON and `POST /test/fail?code=911&count=2` scripts failures.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use data_encoding::BASE64;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Every return code of the protocol family (No-IP's, then Dyn's additions).
pub const CODES: [&str; 11] = [
    "good", "nochg", "nohost", "badauth", "badagent", "!donator", "abuse", "911", "notfqdn",
    "numhost", "dnserr",
];

/// The realm of the HTTP challenge sent to a request without basic authentication.
pub const REALM: &str = "No-IP DNS Update";

/// Default path of the statistics endpoint.
pub const DEFAULT_STATS_PATH: &str = "/test/stats";

/// Most log entries kept (the counters keep counting).
const LOG_MAX: usize = 1000;

/// Which server the fake plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// No-IP (`dynupdate.no-ip.com`): No-IP's codes only.
    #[default]
    Noip,
    /// A DynDNS-compatible server: adds `notfqdn`, `numhost` and `dnserr`.
    Dyndns2,
}

/// The addresses one hostname holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostIps {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// One request as the fake saw it (never the credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The `hostname` parameter split at commas (empty when absent).
    pub hostnames: Vec<String>,
    pub myip: Option<String>,
    pub myipv6: Option<String>,
    pub user_agent: Option<String>,
    /// Whether valid credentials came with the request.
    pub authorized: bool,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The answer's body.
    pub answer: String,
}

/// What the fake has seen, for tests to assert on (also `GET /test/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Stats {
    /// Every request received (counted on arrival), except the `/test/…` endpoints.
    pub requests: u64,
    /// `good` lines answered.
    pub good: u64,
    /// `nochg` lines answered (No-IP may block a client that causes many).
    pub nochg: u64,
    /// Error-code lines and HTTP errors answered.
    pub errors: u64,
    /// The addresses of every hostname of the account.
    pub ips: BTreeMap<String, HostIps>,
    /// The last requests, oldest first (at most 1000).
    pub log: Vec<RequestRecord>,
}

/// A scripted answer that replaces the next request's normal one.
#[derive(Debug, Clone)]
enum Scripted {
    /// This code on one line per hostname (one line when there is no hostname).
    Code(String),
    /// This body, as is, with status 200.
    Raw(String),
    /// This HTTP status and body.
    Status(u16, String),
    /// This redirect status, to `https://` this host with the request's
    /// own path and query (nginx's `return 301 https://$host$request_uri`).
    RedirectEcho(u16),
    /// No answer for an hour (a client's timeout fires first).
    Stall,
}

struct Inner {
    account: String,
    password: String,
    flavor: Flavor,
    /// Most hostnames in one update (dyndns2 flavour: `numhost` above it).
    max_hosts: usize,
    stats_path: String,
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    stats: Stats,
    script: VecDeque<Scripted>,
}

/// A fake No-IP account: its credentials, its hostnames and their addresses,
/// plus scripted failures. Cheap to clone (shared state); serve it with
/// [`serve`] or [`start`].
#[derive(Clone)]
pub struct FakeNoip {
    inner: Arc<Inner>,
}

impl fmt::Debug for FakeNoip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeNoip")
            .field("account", &self.inner.account)
            .field("flavor", &self.inner.flavor)
            .field("stats_path", &self.inner.stats_path)
            .finish_non_exhaustive()
    }
}

impl FakeNoip {
    /// A No-IP account `account` with `password` owning `hosts` (no address yet).
    pub fn new(account: &str, password: &str, hosts: &[&str]) -> FakeNoip {
        FakeNoip::build(
            account,
            password,
            hosts,
            Flavor::Noip,
            20,
            DEFAULT_STATS_PATH,
        )
    }

    /// The same account served as `flavor`.
    pub fn with_flavor(self, flavor: Flavor) -> FakeNoip {
        self.rebuild(|i| i.flavor = flavor)
    }

    /// At most `n` hostnames per update (dyndns2 flavour answers `numhost` above; default 20).
    pub fn with_max_hosts(self, n: usize) -> FakeNoip {
        self.rebuild(|i| i.max_hosts = n)
    }

    /// Serve the statistics at `path` instead of `/test/stats`.
    pub fn with_stats_path(self, path: &str) -> FakeNoip {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        self.rebuild(|i| i.stats_path = path)
    }

    fn build(
        account: &str,
        password: &str,
        hosts: &[&str],
        flavor: Flavor,
        max_hosts: usize,
        stats_path: &str,
    ) -> FakeNoip {
        let mut state = FakeState::default();
        for h in hosts {
            state
                .stats
                .ips
                .insert(h.to_ascii_lowercase(), HostIps::default());
        }
        FakeNoip {
            inner: Arc::new(Inner {
                account: account.to_string(),
                password: password.to_string(),
                flavor,
                max_hosts,
                stats_path: stats_path.to_string(),
                state: Mutex::new(state),
            }),
        }
    }

    /// Change a setting before serving (the state is copied over).
    fn rebuild(self, change: impl FnOnce(&mut Settings)) -> FakeNoip {
        let mut s = Settings {
            flavor: self.inner.flavor,
            max_hosts: self.inner.max_hosts,
            stats_path: self.inner.stats_path.clone(),
        };
        change(&mut s);
        let state = std::mem::take(&mut *self.lock());
        FakeNoip {
            inner: Arc::new(Inner {
                account: self.inner.account.clone(),
                password: self.inner.password.clone(),
                flavor: s.flavor,
                max_hosts: s.max_hosts,
                stats_path: s.stats_path,
                state: Mutex::new(state),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The path of the statistics endpoint.
    pub fn stats_path(&self) -> &str {
        &self.inner.stats_path
    }

    /// Set what `host` holds (as if updated earlier). Adds the host to the account.
    pub fn set_ip(&self, host: &str, ips: HostIps) {
        self.lock().stats.ips.insert(host.to_ascii_lowercase(), ips);
    }

    /// What `host` holds now (`None`: not a host of the account).
    pub fn ip_of(&self, host: &str) -> Option<HostIps> {
        self.lock()
            .stats
            .ips
            .get(&host.to_ascii_lowercase())
            .copied()
    }

    /// How many requests reached the server (the `/test/…` endpoints excepted).
    pub fn requests(&self) -> u64 {
        self.lock().stats.requests
    }

    /// The requests seen, oldest first.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.lock().stats.log.clone()
    }

    /// Everything at once.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Answer each of the next `count` requests with `code`, one line per
    /// hostname (e.g. `911`, `abuse`, `badagent`, `!donator`, `dnserr`).
    pub fn fail_next(&self, code: &str, count: usize) {
        let mut s = self.lock();
        for _ in 0..count {
            s.script.push_back(Scripted::Code(code.to_string()));
        }
    }

    /// Answer the next request with `body` as is (status 200).
    pub fn answer_next(&self, body: &str) {
        self.lock()
            .script
            .push_back(Scripted::Raw(body.to_string()));
    }

    /// Answer the next request with HTTP `status` and `body`.
    pub fn status_next(&self, status: u16, body: &str) {
        self.lock()
            .script
            .push_back(Scripted::Status(status, body.to_string()));
    }

    /// Answer the next request with redirect `status` to `https://` the
    /// same host and the request's own path and query, as a server that
    /// sends plain HTTP to HTTPS does.
    pub fn redirect_echo_next(&self, status: u16) {
        self.lock().script.push_back(Scripted::RedirectEcho(status));
    }

    /// Do not answer the next request (for an hour): the client's timeout fires.
    pub fn stall_next(&self) {
        self.lock().script.push_back(Scripted::Stall);
    }

    /// Drop every scripted answer not used yet.
    pub fn heal(&self) {
        self.lock().script.clear();
    }

    /// The router serving this fake (needs `ConnectInfo<SocketAddr>`: use [`serve`]).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/nic/update", any(update))
            .route(&self.inner.stats_path, get(stats))
            .route("/test/fail", post(fail))
            .fallback(not_found)
            .with_state(self.clone())
    }

    /// Record a request and its answer; returns the answer as a response.
    fn finish(&self, mut rec: RequestRecord, status: StatusCode, body: String) -> Response {
        rec.status = status.as_u16();
        rec.answer = body.clone();
        tracing::info!(
            hostnames = %rec.hostnames.join(","),
            status = rec.status,
            answer = %body.replace('\n', " | "),
            "fake-noip answered"
        );
        {
            let mut s = self.lock();
            if status.is_success() {
                for line in body.lines() {
                    match line.split_whitespace().next() {
                        Some("good") => s.stats.good += 1,
                        Some("nochg") => s.stats.nochg += 1,
                        _ => s.stats.errors += 1,
                    }
                }
            } else {
                s.stats.errors += 1;
            }
            if s.stats.log.len() >= LOG_MAX {
                s.stats.log.remove(0);
            }
            s.stats.log.push(rec);
        }
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }

    /// Whether `headers` carry this account's basic credentials: `None` when
    /// there is no well-formed `Basic` header at all.
    fn authorized(&self, headers: &HeaderMap) -> Option<bool> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, b64) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = BASE64.decode(b64.trim().as_bytes()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some(user == self.inner.account && password == self.inner.password)
    }

    /// The answer lines of a well-formed, authorised update.
    fn apply(&self, hosts: &[String], v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Vec<String> {
        let flavor = self.inner.flavor;
        let mut s = self.lock();
        hosts
            .iter()
            .map(|h| {
                let h = h.to_ascii_lowercase();
                if flavor == Flavor::Dyndns2 && !is_fqdn(&h) {
                    return "notfqdn".to_string();
                }
                let Some(cur) = s.stats.ips.get_mut(&h) else {
                    return "nohost".to_string();
                };
                let changed =
                    v4.is_some_and(|a| cur.v4 != Some(a)) || v6.is_some_and(|a| cur.v6 != Some(a));
                if let Some(a) = v4 {
                    cur.v4 = Some(a);
                }
                if let Some(a) = v6 {
                    cur.v6 = Some(a);
                }
                let ips = match (v4, v6) {
                    (Some(a), Some(b)) => format!("{a},{b}"),
                    (Some(a), None) => a.to_string(),
                    (None, Some(b)) => b.to_string(),
                    (None, None) => String::new(),
                };
                if changed {
                    format!("good {ips}")
                } else {
                    format!("nochg {ips}")
                }
            })
            .collect()
    }
}

struct Settings {
    flavor: Flavor,
    max_hosts: usize,
    stats_path: String,
}

/// `host.domain`: at least one dot, no empty label.
fn is_fqdn(h: &str) -> bool {
    let h = h.trim_end_matches('.');
    h.contains('.') && h.split('.').all(|l| !l.is_empty())
}

/// No-IP's form: `Company NameOfProgram/Version contact@example` (three or
/// more words; a middle word `Program/Version`; the last holds an `@`).
pub fn agent_is_valid(ua: &str) -> bool {
    let parts: Vec<&str> = ua.split_whitespace().collect();
    if parts.len() < 3 {
        return false;
    }
    let contact = parts[parts.len() - 1];
    let program = parts[1..parts.len() - 1]
        .iter()
        .any(|p| matches!(p.split_once('/'), Some((a, b)) if !a.is_empty() && !b.is_empty()));
    let contact_ok =
        matches!(contact.split_once('@'), Some((a, b)) if !a.is_empty() && !b.is_empty());
    program && contact_ok
}

async fn update(
    State(fake): State<FakeNoip>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // application/x-www-form-urlencoded: `%XX` and `+` decoded, an
    // invalid escape kept as is.
    let params: Vec<(String, String)> = query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    let hostnames: Vec<String> = param("hostname")
        .map(|h| h.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut rec = RequestRecord {
        method: method.to_string(),
        path: "/nic/update".into(),
        hostnames: hostnames.clone(),
        myip: param("myip"),
        myipv6: param("myipv6"),
        user_agent: user_agent.clone(),
        authorized: false,
        status: 0,
        answer: String::new(),
    };
    let auth = fake.authorized(&headers);
    rec.authorized = auth == Some(true);

    let scripted = {
        let mut s = fake.lock();
        s.stats.requests += 1;
        s.script.pop_front()
    };
    if let Some(s) = scripted {
        return match s {
            Scripted::Code(code) => {
                let n = hostnames.len().max(1);
                fake.finish(rec, StatusCode::OK, vec![code; n].join("\n"))
            }
            Scripted::Raw(body) => fake.finish(rec, StatusCode::OK, body),
            Scripted::Status(st, body) => fake.finish(
                rec,
                StatusCode::from_u16(st).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            ),
            Scripted::RedirectEcho(st) => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("localhost")
                    .to_string();
                let to = format!(
                    "https://{host}/nic/update{}",
                    query
                        .as_deref()
                        .map(|q| format!("?{q}"))
                        .unwrap_or_default()
                );
                let mut r = fake.finish(
                    rec,
                    StatusCode::from_u16(st).unwrap_or(StatusCode::MOVED_PERMANENTLY),
                    String::new(),
                );
                if let Ok(v) = axum::http::HeaderValue::from_str(&to) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Scripted::Stall => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                fake.finish(rec, StatusCode::OK, "911".into())
            }
        };
    }

    if method != Method::GET {
        return fake.finish(rec, StatusCode::METHOD_NOT_ALLOWED, "use GET".into());
    }
    match auth {
        None => {
            let mut resp = fake.finish(
                rec,
                StatusCode::UNAUTHORIZED,
                "401 Unauthorized: this service requires HTTP basic authentication".into(),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return resp;
        }
        Some(false) => return fake.finish(rec, StatusCode::OK, "badauth".into()),
        Some(true) => {}
    }
    if !user_agent.as_deref().is_some_and(agent_is_valid) {
        return fake.finish(rec, StatusCode::OK, "badagent".into());
    }
    if param("offline").is_some() {
        return fake.finish(rec, StatusCode::OK, "!donator".into());
    }
    let flavor = fake.inner.flavor;
    if hostnames.is_empty() || hostnames.iter().all(|h| h.is_empty()) {
        let code = match flavor {
            Flavor::Noip => "nohost",
            Flavor::Dyndns2 => "notfqdn",
        };
        return fake.finish(rec, StatusCode::OK, code.into());
    }
    if flavor == Flavor::Dyndns2 && hostnames.len() > fake.inner.max_hosts {
        return fake.finish(rec, StatusCode::OK, "numhost".into());
    }
    let mut v4 = None;
    let mut v6 = None;
    if let Some(ip) = &rec.myip {
        match ip.parse::<Ipv4Addr>() {
            Ok(a) => v4 = Some(a),
            Err(_) => {
                return fake.finish(
                    rec.clone(),
                    StatusCode::BAD_REQUEST,
                    "myip is not an IPv4 address".into(),
                )
            }
        }
    }
    if let Some(ip) = &rec.myipv6 {
        match ip.parse::<Ipv6Addr>() {
            Ok(a) => v6 = Some(a),
            Err(_) => {
                return fake.finish(
                    rec.clone(),
                    StatusCode::BAD_REQUEST,
                    "myipv6 is not an IPv6 address".into(),
                )
            }
        }
    }
    if v4.is_none() && v6.is_none() {
        match peer.ip() {
            IpAddr::V4(a) => v4 = Some(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(m) => v4 = Some(m),
                None => v6 = Some(a),
            },
        }
    }
    let lines = fake.apply(&hostnames, v4, v6);
    fake.finish(rec, StatusCode::OK, lines.join("\n"))
}

async fn stats(State(fake): State<FakeNoip>) -> Json<Stats> {
    Json(fake.stats())
}

#[derive(Deserialize)]
struct FailParams {
    code: String,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

async fn fail(State(fake): State<FakeNoip>, Query(p): Query<FailParams>) -> StatusCode {
    fake.fail_next(&p.code, p.count);
    StatusCode::NO_CONTENT
}

async fn not_found(State(fake): State<FakeNoip>, method: Method, uri: axum::http::Uri) -> Response {
    fake.lock().stats.requests += 1;
    let rec = RequestRecord {
        method: method.to_string(),
        path: uri.path().to_string(),
        hostnames: vec![],
        myip: None,
        myipv6: None,
        user_agent: None,
        authorized: false,
        status: 0,
        answer: String::new(),
    };
    fake.finish(rec, StatusCode::NOT_FOUND, "not found".into())
}

/// Serve `fake` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    fake: FakeNoip,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = fake
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A fake served in the background on `127.0.0.1:0`; stopped when dropped.
pub struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/nic/update`.
    pub fn update_url(&self) -> String {
        format!("http://{}/nic/update", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// Serve `fake` on a fresh loopback port in a background task.
pub async fn start(fake: FakeNoip) -> std::io::Result<Running> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, fake, async move {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        stop: Some(tx),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents() {
        assert!(agent_is_valid("warden warden/0.1.0 ops@example.net"));
        assert!(agent_is_valid(
            "Bobs Update Client WindowsXP/1.2 bob@example.com"
        ));
        assert!(!agent_is_valid("curl/8.0"));
        assert!(!agent_is_valid("warden warden/0.1.0"));
        assert!(!agent_is_valid("warden warden 0.1.0 ops@example.net"));
        assert!(!agent_is_valid("warden warden/0.1.0 nobody"));
    }

    #[test]
    fn fqdn() {
        assert!(is_fqdn("www.example.net"));
        assert!(!is_fqdn("www"));
        assert!(!is_fqdn("www..net"));
    }
}
