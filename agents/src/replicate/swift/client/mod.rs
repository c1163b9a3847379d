//! [`SwiftClient`]: the few Swift API calls the Swift plans need, over
//! `reqwest`, logged in with tempauth v1 or a Keystone v3 token
//! ([`warden_openstack::SwiftAuth`]).
//!
//! - Auth: the login gives the storage URL (tempauth's `X-Storage-Url`, or
//!   the Keystone catalog's `object-store` endpoint of the site's region)
//!   and a token; `login.rs` keeps it, renews it ahead of time and holds
//!   back after a failed login. A 401 on any call renews it once and
//!   repeats the call. Keys, passwords and application-credential secrets
//!   are [`Secret`]s: they only ever go into the login request, never into
//!   an error, a log line or `Debug`. No redirect is followed.
//! - Listings are paged with `marker` (`?format=json&limit=…&marker=…`);
//!   a page is read up to a bound ([`read_bounded`]), never whole on trust.
//!   An SLO's listing `hash` is the MD5 of its stored manifest, which names
//!   each segment's `last_modified` and so differs per cluster: the listing
//!   gives such entries their `slo_etag` (the ETag a GET shows, the same
//!   wherever the segments are equal) as `hash` ([`ObjectEntry::hash`]).
//! - Objects are read with [`SwiftClient::open_object`] (headers now, the
//!   body as a stream) and written with [`SwiftClient::put_object_with`]
//!   (a streamed body with its length, or bytes): nothing holds a whole
//!   object in memory. A streamed PUT has no body to send twice, so a 401
//!   renews the token and answers the 401: the caller starts the copy again.
//! - Timeouts: `timeout` is the limit of an ordinary call and of every read
//!   (a stalled transfer); a streamed PUT may take `timeout` plus its size
//!   at [`MIN_TRANSFER_RATE`].
//! - Every URL comes from [`checked_url`] ([`super::url`]): names
//!   percent-encoded per path segment, unsafe names never sent, a URL the
//!   URL layer would rewrite refused.
//! - This file: the settings, the session (auth, token renewal) and the
//!   one place requests are sent; `containers.rs` the listings and the
//!   containers' calls; `objects.rs` the objects' calls; `answers.rs` what
//!   the answers say (listing entries, headers, timestamps).
//! - Errors say whose move it is: [`AgentError::SwiftAuth`] (wrong key,
//!   fatal), [`AgentError::SwiftUnreachable`] (connect/timeout, retryable),
//!   [`AgentError::SwiftStatus`] (retryable when 5xx/408/429).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tracing::debug;
use warden_config::Secret;
use warden_openstack::{KeystoneSettings, SwiftAuth};

use super::body::read_bounded;
pub(crate) use super::body::{OpenObject, SendBody};
use super::url::{checked_url, object_path, strip_query, Target};
use crate::AgentError;

mod answers;
mod clock;
mod containers;
mod login;
mod objects;

pub use answers::{
    format_x_timestamp, parse_listing_time, parse_x_timestamp, ContainerInfo, ObjectEntry,
    ObjectInfo, OBJECT_HEADERS,
};
use answers::{header_map, object_info, ContainerEntry};
use login::{Login, Session};

/// How to reach one Swift cluster. [`SwiftSettings::new`] (tempauth) and
/// [`SwiftSettings::keystone`] fill the defaults.
#[derive(Debug, Clone)]
pub struct SwiftSettings {
    /// How the client logs in (its secret never logged).
    pub auth: SwiftAuth,
    /// Timeout of one request, body included (default 60 s).
    pub timeout: Duration,
    /// Connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Entries per listing page (default 10 000, Swift's maximum).
    pub page_size: usize,
}

impl SwiftSettings {
    /// Tempauth settings (`auth_url` e.g. `http://127.0.0.1:8080/auth/v1.0`,
    /// `user` `account:user`) with the defaults: 60 s request timeout, 5 s
    /// connect timeout, pages of 10 000.
    pub fn new(auth_url: impl Into<String>, user: impl Into<String>, key: Secret) -> Self {
        Self::with_auth(SwiftAuth::Tempauth {
            auth_url: auth_url.into(),
            user: user.into(),
            key,
        })
    }

    /// Keystone v3 settings with the same defaults.
    pub fn keystone(k: KeystoneSettings) -> Self {
        Self::with_auth(SwiftAuth::Keystone(k))
    }

    fn with_auth(auth: SwiftAuth) -> Self {
        SwiftSettings {
            auth,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            page_size: 10_000,
        }
    }
}

/// The slowest transfer a streamed copy is allowed (bytes per second) on
/// top of `timeout`: 1 MiB/s, a 5 GiB object gets about 85 minutes.
pub const MIN_TRANSFER_RATE: u64 = 1 << 20;

/// The largest object Swift takes in one PUT by default
/// (`max_file_size`, 5 GiB): a streamed PUT of unknown length may take
/// as long as one of this size.
pub const MAX_OBJECT_BYTES: u64 = 5 << 30;

/// The largest listing page read (a page of 10 000 names of 1 KiB with
/// their fields is about 15 MiB).
const MAX_PAGE_BYTES: usize = 64 << 20;

/// A Swift API client for one cluster and one user. Cheap to share (`Arc`);
/// all calls are safe from many tasks at once.
pub struct SwiftClient {
    settings: SwiftSettings,
    http: reqwest::Client,
    login: Login,
    /// The cluster's clock as its answers' `Date` shows it.
    clock: clock::ClusterClock,
}

impl std::fmt::Debug for SwiftClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwiftClient")
            .field("auth_url", &self.settings.auth.auth_url())
            .field("user", &self.settings.auth.who())
            .finish_non_exhaustive()
    }
}

impl SwiftClient {
    /// A client; nothing is sent until the first call. Fails only when the
    /// HTTP client cannot be built (no TLS crypto provider installed).
    pub fn new(settings: SwiftSettings) -> Result<Self, AgentError> {
        // no total timeout on the client: each request sets its own
        // (`send`); every read of every request is bounded by `timeout`
        // no redirects followed: a token must not go where one points
        let http = warden_openstack::client_builder()
            .read_timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(AgentError::Client)?;
        Ok(SwiftClient {
            settings,
            http,
            login: Login::default(),
            clock: clock::ClusterClock::default(),
        })
    }

    /// The cluster's time now, as its last answer's `Date` tells it (this
    /// host's before any): what its objects' timestamps are compared with.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// [`SwiftClient::now`] in microseconds since the epoch.
    pub fn now_us(&self) -> u64 {
        self.now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }

    pub fn settings(&self) -> &SwiftSettings {
        &self.settings
    }

    /// How many times this client logged in, and how many of its tokens
    /// Swift refused (401): a token whose life the login said and that was
    /// renewed in time is never refused.
    pub async fn logins(&self) -> (u64, u64) {
        self.login.counts().await
    }

    /// The account's storage URL (authenticating first if needed), e.g.
    /// `http://127.0.0.1:8080/v1/AUTH_test`.
    pub async fn storage_url(&self) -> Result<String, AgentError> {
        Ok(self.session(None).await?.storage_url)
    }

    /// The account name (`AUTH_test`): the storage URL's last segment.
    pub async fn account(&self) -> Result<String, AgentError> {
        let url = self.storage_url().await?;
        Ok(url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string())
    }

    /// Authenticates now (a fresh token), so a wrong key shows at once.
    pub async fn authenticate(&self) -> Result<(), AgentError> {
        self.login
            .session(&self.http, &self.settings, None, true)
            .await
            .map(|_| ())
    }

    /// The current session; renews it when `stale` is the generation that got a 401.
    async fn session(&self, stale: Option<u64>) -> Result<Session, AgentError> {
        self.login
            .session(&self.http, &self.settings, stale, false)
            .await
    }

    /// Sends `method` to `target` with `query` ([`checked_url`]), renewing
    /// the token once on 401 (a streamed body is not sent again: the 401 is
    /// answered after the renewal). `timeout`: the whole request's limit,
    /// `None` for none (a streamed GET: its reads still time out).
    async fn send(
        &self,
        method: Method,
        target: Target<'_>,
        query: &[(&str, &str)],
        headers: &HeaderMap,
        mut body: SendBody,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, AgentError> {
        target.check_names()?;
        let mut session = self.session(None).await?;
        let mut attempt = 0;
        loop {
            let checked = checked_url(&session.storage_url, target, query)?;
            let url = checked.to_string();
            let mut req = self
                .http
                .request(method.clone(), checked)
                .header("X-Auth-Token", session.token.expose())
                .headers(headers.clone());
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            let mut replayable = true;
            match &mut body {
                SendBody::Empty if method == Method::PUT => {
                    req = req.header("Content-Length", "0");
                }
                SendBody::Empty => {}
                // an empty body would go without a length: Swift answers 411
                SendBody::Bytes(b) if b.is_empty() && method == Method::PUT => {
                    req = req.header("Content-Length", "0");
                }
                SendBody::Bytes(b) => req = req.body(b.clone()),
                SendBody::Stream(s) => {
                    replayable = false;
                    let Some(b) = s.take() else {
                        return Err(AgentError::SwiftBadResponse {
                            url: strip_query(&url),
                            detail: "a streamed body cannot be sent twice".into(),
                        });
                    };
                    req = req.body(b);
                }
            }
            let resp = req.send().await.map_err(|e| unreachable_err(&url, &e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.login.count_refusal();
                debug!(url = %strip_query(&url), "swift token refused, authenticating again");
                session = self.session(Some(session.generation)).await?;
                if replayable {
                    attempt += 1;
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// Like `send` (with the ordinary timeout), then fails on any status
    /// but 2xx (and `allow`).
    async fn call(
        &self,
        method: Method,
        target: Target<'_>,
        query: &[(&str, &str)],
        headers: &HeaderMap,
        body: SendBody,
        allow: &[StatusCode],
    ) -> Result<reqwest::Response, AgentError> {
        let timeout = Some(self.settings.timeout);
        self.call_with(method, target, query, headers, body, allow, timeout)
            .await
    }

    /// [`SwiftClient::call`] with its own `timeout` (see `send`).
    #[allow(clippy::too_many_arguments)]
    async fn call_with(
        &self,
        method: Method,
        target: Target<'_>,
        query: &[(&str, &str)],
        headers: &HeaderMap,
        body: SendBody,
        allow: &[StatusCode],
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, AgentError> {
        let resp = self
            .send(method.clone(), target, query, headers, body, timeout)
            .await?;
        self.clock.note(resp.headers());
        let status = resp.status();
        if status.is_success() || allow.contains(&status) {
            return Ok(resp);
        }
        let url = strip_query(resp.url().as_str());
        let text = read_bounded(resp, 4096, "an error message")
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Err(AgentError::SwiftStatus {
            method: method.to_string(),
            url,
            status: status.as_u16(),
            detail: short(&text),
        })
    }
}

pub(crate) fn bad_header(name: &str) -> AgentError {
    AgentError::InvalidSetting {
        key: name.to_string(),
        reason: "not a valid HTTP header value".into(),
    }
}

/// `Content-Type` (unless empty) and `meta` as request headers.
pub(crate) fn object_headers(
    content_type: &str,
    meta: &BTreeMap<String, String>,
) -> Result<HeaderMap, AgentError> {
    let mut h = to_headers(meta)?;
    if !content_type.is_empty() {
        h.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).map_err(|_| bad_header("content-type"))?,
        );
    }
    Ok(h)
}

pub(crate) fn to_headers(map: &BTreeMap<String, String>) -> Result<HeaderMap, AgentError> {
    let mut h = HeaderMap::new();
    for (k, v) in map {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad_header(k))?;
        let value = HeaderValue::from_str(v).map_err(|_| bad_header(k))?;
        h.insert(name, value);
    }
    Ok(h)
}

pub(super) fn unreachable_err(url: &str, e: &reqwest::Error) -> AgentError {
    use std::error::Error;
    let mut detail = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        detail = format!("{detail}: {s}");
        src = s.source();
    }
    AgentError::SwiftUnreachable {
        url: strip_query(url),
        detail,
    }
}

fn short(text: &str) -> String {
    let t = text.trim();
    let mut s: String = t.chars().take(200).collect();
    if s.len() < t.len() {
        s.push('…');
    }
    if s.is_empty() {
        s = "no message".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_and_format() {
        assert_eq!(
            parse_x_timestamp("1795307425.60651"),
            Some(1_795_307_425_606_510)
        );
        assert_eq!(parse_x_timestamp("1795307425"), Some(1_795_307_425_000_000));
        assert_eq!(
            parse_x_timestamp("1795307425.60651_0000000000000001"),
            Some(1_795_307_425_606_510)
        );
        assert_eq!(parse_x_timestamp("junk"), None);
        // past u64 microseconds (a user can set X-Object-Meta-Warden-Ts
        // to anything): no timestamp, not an overflow
        assert_eq!(parse_x_timestamp("18446744073709551.61"), None);
        assert_eq!(parse_x_timestamp("18446744073709551.615"), None);
        assert_eq!(
            parse_x_timestamp("18446744073709.55161"),
            Some(18_446_744_073_709_551_610)
        );
        assert_eq!(
            format_x_timestamp(1_795_307_425_606_510),
            "1795307425.60651"
        );
        // the same instant as the listing shows it (curl output in the recipe)
        assert_eq!(
            parse_listing_time("2026-11-22T00:30:25.606510"),
            Some(1_795_307_425_606_510)
        );
        assert_eq!(parse_listing_time("1970-01-01T00:00:00"), Some(0));
    }

    /// A server that answers tempauth, and every listing of container `c`
    /// with the same page of two names whatever the `marker` (as a proxy
    /// that drops the query would).
    async fn listing_ignoring_the_marker() -> String {
        listing_always(["a", "b"]).await
    }

    /// A server that answers tempauth, and every listing with a page of
    /// `names` (in that order) whatever the query.
    async fn listing_always(names: [&'static str; 2]) -> String {
        listing_server(names, false).await
    }

    /// [`listing_always`], but a page asked for with a `marker` is
    /// answered 404 when `later_404` (a container gone after its first
    /// page, or servers that do not serve it now; Swift's Object Storage
    /// API: `GET /v1/{account}/{container}` answers 404 Not Found when the
    /// container does not exist).
    async fn listing_server(names: [&'static str; 2], later_404: bool) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let b = base.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let base = b.clone();
                tokio::spawn(async move {
                    let mut conn = BufReader::new(conn);
                    loop {
                        let mut line = String::new();
                        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut h = String::new();
                            if conn.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if h.trim_end().is_empty() {
                                break;
                            }
                        }
                        let answer = if later_404 && line.contains("marker=") {
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
                        } else if line.contains("/auth") {
                            format!(
                                "HTTP/1.1 200 OK\r\nX-Storage-Url: {base}/v1/AUTH_t\r\n\
                                 X-Auth-Token: tk\r\nContent-Length: 0\r\n\r\n"
                            )
                        } else {
                            let entry = |n: &str| {
                                format!(
                                    r#"{{"name":"{n}","hash":"h","bytes":1,"content_type":"text/plain","last_modified":"2026-11-22T00:30:25.606510"}}"#
                                )
                            };
                            let body = format!("[{},{}]", entry(names[0]), entry(names[1]));
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                 Content-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        };
                        let _ = conn.get_mut().write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        base
    }

    /// A listing whose next page does not begin past the marker fails
    /// (retried by the round) instead of asking again forever while the
    /// names pile up in memory.
    #[tokio::test]
    async fn a_listing_that_does_not_advance_is_an_error_not_a_loop() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = listing_ignoring_the_marker().await;
        let mut s = SwiftSettings::new(format!("{base}/auth/v1.0"), "t:u", Secret::new("k"));
        s.page_size = 2;
        let c = SwiftClient::new(s).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), c.list_objects("c"))
            .await
            .expect("the listing ends (with an error), not a loop");
        let e = r.unwrap_err();
        assert!(
            e.to_string().contains("the listing does not advance") && e.is_retryable(),
            "{e}"
        );
        let r = tokio::time::timeout(Duration::from_secs(10), c.list_containers())
            .await
            .expect("the account's listing too");
        assert!(r.is_err(), "{r:?}");
    }

    /// A page whose names go back or repeat (the next marker is its last
    /// name) fails instead of being asked for again and again: with a
    /// server that answers it whatever the marker, the listing grew in
    /// memory without end.
    #[tokio::test]
    async fn a_listing_out_of_order_or_repeated_is_an_error_not_a_loop() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        for (names, shown) in [
            (["b", "a"], "names a after b"),
            (["a", "a"], "names a after a"),
        ] {
            let base = listing_always(names).await;
            let mut s = SwiftSettings::new(format!("{base}/auth/v1.0"), "t:u", Secret::new("k"));
            s.page_size = 2;
            let c = SwiftClient::new(s).unwrap();
            let r = tokio::time::timeout(Duration::from_secs(10), c.list_objects("c"))
                .await
                .expect("the listing ends (with an error), not a loop");
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains(shown) && e.contains("out of order or repeated"),
                "{names:?}: {e}"
            );
            let r = tokio::time::timeout(Duration::from_secs(10), c.list_containers())
                .await
                .expect("the account's listing too");
            assert!(r.is_err(), "{names:?}: {r:?}");
        }
    }

    /// A container that answers 404 after a full page of names fails the
    /// listing: taken for "no such container", every object of it was
    /// missing from that side (the copier copied them all again, or asked
    /// for their deletes at the other side; a failback fetched them all).
    #[tokio::test]
    async fn a_container_gone_after_its_first_page_is_an_error_not_missing() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = listing_server(["a", "b"], true).await;
        let mut s = SwiftSettings::new(format!("{base}/auth/v1.0"), "t:u", Secret::new("k"));
        s.page_size = 2;
        let c = SwiftClient::new(s).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), c.list_objects("c"))
            .await
            .expect("the listing ends");
        let e = r.expect_err("a listing cut short by a 404 is not a missing container");
        let text = e.to_string();
        assert!(
            text.contains("answered 404 to the page after b (2 names listed)") && e.is_retryable(),
            "{text}"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s = SwiftSettings::new(
            "http://127.0.0.1:1/auth/v1.0",
            "test:tester",
            Secret::new("k3y-value"),
        );
        assert!(!format!("{s:?}").contains("k3y-value"));
        let c = SwiftClient::new(s).unwrap();
        assert!(!format!("{c:?}").contains("k3y-value"));
    }
}
