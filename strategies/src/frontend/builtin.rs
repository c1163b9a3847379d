//! The `builtin` frontend driver: the control API of `warden frontend`
//! ([`warden_proto::frontend`]), one group per driver, over plain HTTP with a
//! bearer token; an answer that redirects is a refusal, never followed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use tracing::{debug, warn};
use warden_config::Secret;
use warden_proto::frontend::{ErrorBody, Hold, RouteMode, RouteState, SetRoute};

use super::FrontendDriver;
use crate::pass::TableError;
use crate::text::chain;
use crate::{HoldPlace, ReadPass, RouteTable, StrategyError, SwitchMode};

fn quote_body(text: &str) -> String {
    crate::text::quote(text, QUOTE_MAX, "body")
}

/// Drives one `warden frontend` through its control API (see
/// [`warden_proto::frontend`]), for one group.
pub struct BuiltinDriver {
    /// Frontend name.
    name: String,
    /// Element name in errors: `frontend NAME`.
    element: String,
    group: String,
    /// `http://ADDR`, no trailing slash.
    base: String,
    token: Secret,
    client: reqwest::Client,
    /// The client's time for one request.
    timeout: Duration,
    /// The highest hold `seq` the frontend reported taken for the group (a
    /// route read back, a refusal of an order placed before it): the
    /// orchestrator places its later orders above it
    /// ([`crate::Strategy::hold_seq_taken`]).
    hold_seq_taken: AtomicU64,
    /// The leader term and etcd cluster route orders state
    /// ([`crate::Strategy::leads_under`]): none until one is given.
    leads_under: std::sync::Mutex<(u64, Option<u64>)>,
    /// This frontend refused a route order's term and cluster as unknown
    /// fields (an older version): they are left out from then on.
    route_fields_refused: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for BuiltinDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinDriver")
            .field("name", &self.name)
            .field("group", &self.group)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Longest piece of an unexpected answer quoted in an error.
const QUOTE_MAX: usize = 200;

/// Longest answer read about one group's route (a few hundred bytes).
const MAX_ROUTE_ANSWER: usize = 64 * 1024;

/// Longest route table read (a frontend of 10,000 groups answers about
/// 2 MB): what answers more is not a frontend of warden's, and reading it
/// all would only cost the orchestrator its memory.
const MAX_TABLE_ANSWER: usize = 16 * 1024 * 1024;

impl BuiltinDriver {
    /// Time allowed for one control request (connect included).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Time allowed for the whole route table (a frontend of 10,000 groups
    /// answers about 2 MB; over a slow link that needs longer than one
    /// group's route, and it is read once per pass, not once per group).
    pub const TABLE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A driver for `group` on the frontend `name` whose control API listens on `control`.
    pub fn new(
        name: &str,
        group: &str,
        control: SocketAddr,
        token: Secret,
        timeout: Duration,
    ) -> Result<BuiltinDriver, StrategyError> {
        // One client (connection pool, TLS config) per process for the default
        // timeout: an orchestrator with 10,000 groups must not hold 10,000 pools.
        static SHARED: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
        let built = if timeout == Self::DEFAULT_TIMEOUT {
            match SHARED.get() {
                Some(c) => Ok(c.clone()),
                None => http_client(timeout).map(|c| SHARED.get_or_init(|| c).clone()),
            }
        } else {
            http_client(timeout)
        };
        let client = built.map_err(|e| {
            StrategyError::Config(format!(
                "cannot build the HTTP client for frontend {name}: {}",
                chain(&e)
            ))
        })?;
        Ok(BuiltinDriver {
            name: name.to_string(),
            element: format!("frontend {name}"),
            group: group.to_string(),
            base: format!("http://{control}"),
            token,
            client,
            timeout,
            hold_seq_taken: AtomicU64::new(0),
            leads_under: std::sync::Mutex::new((0, None)),
            route_fields_refused: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The frontend reported a hold order placed at `seq` taken.
    fn taken(&self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.hold_seq_taken.fetch_max(seq, Ordering::Relaxed);
        }
    }

    /// Speaks https to the control API with `tls` (the frontend's CA, the
    /// orchestrator's client certificate if the frontend verifies clients);
    /// its own connection pool.
    pub fn with_tls(mut self, tls: rustls::ClientConfig) -> Result<BuiltinDriver, StrategyError> {
        let control = self.base.trim_start_matches("http://").to_string();
        self.client = control_client(self.timeout)
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| {
                StrategyError::Config(format!(
                    "cannot build the HTTPS client for frontend {}: {}",
                    self.name,
                    chain(&e)
                ))
            })?;
        self.base = format!("https://{control}");
        Ok(self)
    }

    fn url(&self) -> String {
        format!("{}/v1/routes/{}", self.base, self.group)
    }

    fn unreachable(&self, e: &reqwest::Error) -> StrategyError {
        StrategyError::Unreachable {
            element: self.element.clone(),
            reason: chain(e),
        }
    }

    fn rejected(&self, reason: String) -> StrategyError {
        StrategyError::Rejected {
            element: self.element.clone(),
            reason,
        }
    }

    /// Turn a non-2xx answer into an error; `sent` is the epoch of a PUT,
    /// `route` whether it was a route order (a 409 at its own epoch is then
    /// another decision holding that epoch: [`StrategyError::EpochTaken`]).
    async fn refusal(
        &self,
        resp: reqwest::Response,
        sent: Option<u64>,
        route: bool,
    ) -> StrategyError {
        let status = resp.status();
        let text = match self.body(resp, MAX_ROUTE_ANSWER, "the refusal").await {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) => return e,
        };
        self.refusal_text(status, &text, sent, route)
    }

    /// [`BuiltinDriver::refusal`] of an answer already read.
    fn refusal_text(
        &self,
        status: StatusCode,
        text: &str,
        sent: Option<u64>,
        route: bool,
    ) -> StrategyError {
        let body: Option<ErrorBody> = serde_json::from_str(text).ok();
        // An order placed before the newest of its epoch: later ones are
        // placed above that one (the refused one is not sent again).
        self.taken(body.as_ref().and_then(|b| b.newest_seq));
        if let (
            StatusCode::CONFLICT,
            Some(sent),
            Some(ErrorBody {
                seen_epoch: Some(seen),
                ..
            }),
        ) = (status, sent, &body)
        {
            if *seen > sent {
                return StrategyError::StaleEpoch {
                    element: self.element.clone(),
                    sent,
                    seen: *seen,
                };
            }
            // The frontend routes another site at this very epoch (see
            // `warden_frontend`'s route table): not a malformed order, a
            // fencing refusal — another orchestrator or leader acted at it.
            if *seen == sent && route {
                return StrategyError::EpochTaken {
                    element: self.element.clone(),
                    epoch: sent,
                    reason: body.as_ref().map(|b| b.error.clone()).unwrap_or_default(),
                };
            }
        }
        let reason = match body {
            Some(b) => b.error,
            None => quote_body(text),
        };
        let hint = match status {
            StatusCode::UNAUTHORIZED => " (check frontends.NAME.token: the orchestrator and the frontend must hold the same token)",
            StatusCode::NOT_FOUND => " (is this frontend configured to serve the group? restart it after changing failover.conf)",
            s if s.is_redirection() => " (a redirect, not followed: warden's control API never redirects; frontends.NAME.control must be the frontend's own control address)",
            _ => "",
        };
        self.rejected(format!("HTTP {}: {reason}{hint}", status.as_u16()))
    }
}

#[async_trait]
impl FrontendDriver for BuiltinDriver {
    fn name(&self) -> &str {
        &self.name
    }

    async fn set_route(
        &self,
        site: &str,
        epoch: u64,
        mode: SwitchMode,
    ) -> Result<(), StrategyError> {
        let (term, cluster) = *self.leads_under.lock().unwrap_or_else(|p| p.into_inner());
        let mut body = SetRoute {
            site: site.to_string(),
            epoch,
            mode: match mode {
                SwitchMode::Immediate => RouteMode::Immediate,
                SwitchMode::Drain => RouteMode::Drain,
            },
            term,
            cluster,
        };
        // A frontend older than the route order's term and cluster (a
        // rolling upgrade, a rollback) refuses them as unknown fields:
        // it is sent the order without them, as before they existed.
        if self.route_fields_refused.load(Ordering::Relaxed) {
            (body.term, body.cluster) = (0, None);
        }
        let resp = loop {
            crate::gate::check(&self.element)?;
            let resp = self
                .client
                .put(self.url())
                .bearer_auth(self.token.expose())
                .json(&body)
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = resp.status();
            if status.is_success() {
                break resp;
            }
            let text = match self.body(resp, MAX_ROUTE_ANSWER, "the refusal").await {
                Ok(t) => String::from_utf8_lossy(&t).into_owned(),
                Err(e) => return Err(e),
            };
            let stated = body.term != 0 || body.cluster.is_some();
            if status == StatusCode::BAD_REQUEST && stated && text.contains("unknown field") {
                self.route_fields_refused.store(true, Ordering::Relaxed);
                warn!(frontend = %self.name, "this frontend is older than route orders' term and cluster: sent without them (it cannot refuse a deposed etcd cluster's routes; upgrade it)");
                (body.term, body.cluster) = (0, None);
                continue;
            }
            return Err(self.refusal_text(status, &text, Some(epoch), true));
        };
        let body = self.body(resp, MAX_ROUTE_ANSWER, "PUT").await?;
        let state: RouteState = serde_json::from_slice(&body)
            .map_err(|e| self.rejected(format!("unreadable answer to PUT: {e}")))?;
        self.taken(state.hold_seq);
        // A frontend that took the order holds exactly it (its epoch is the
        // route's, see `warden_frontend`'s route table): anything else is
        // not the route asked for, whatever the status says.
        if state.site.as_deref() != Some(site) || state.epoch != epoch {
            return Err(self.rejected(format!(
                "accepted the route to {site:?} at epoch {epoch} but reports {:?} at epoch {}",
                state.site, state.epoch
            )));
        }
        debug!(frontend = %self.name, group = %self.group, site, epoch, "frontend route set");
        Ok(())
    }

    async fn hold(
        &self,
        epoch: u64,
        place: HoldPlace,
        ttl: Duration,
        pause: bool,
    ) -> Result<(), StrategyError> {
        let body = Hold {
            epoch,
            seq: place.seq,
            term: place.term,
            cluster: place.cluster,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            pause,
        };
        crate::gate::check(&self.element)?;
        let resp = self
            .client
            .put(format!("{}/hold", self.url()))
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !resp.status().is_success() {
            return Err(self.refusal(resp, Some(epoch), false).await);
        }
        debug!(frontend = %self.name, group = %self.group, epoch, term = place.term, seq = place.seq, ttl_ms = body.ttl_ms, "frontend hold order sent");
        Ok(())
    }

    fn hold_seq_taken(&self) -> u64 {
        self.hold_seq_taken.load(Ordering::Relaxed)
    }

    fn leads_under(&self, term: u64, cluster: Option<u64>) {
        *self.leads_under.lock().unwrap_or_else(|p| p.into_inner()) = (term, cluster);
    }

    /// Within a pass, the frontend's whole route table (`GET /v1/routes`)
    /// is read once for every group it serves.
    async fn route_in(&self, pass: &ReadPass) -> Result<(Option<String>, u64), StrategyError> {
        let key = format!("builtin {} {}", self.name, self.base);
        let table = pass
            .table(&key, || async {
                self.route_table().await.map_err(TableError::of)
            })
            .await
            .map_err(|e| e.error(&self.element))?;
        let (site, epoch, seq) = table.get(&self.group).cloned().ok_or_else(|| {
            self.rejected(format!(
                "its route table has no group {:?} ({} groups served)",
                self.group,
                table.len()
            ))
        })?;
        self.taken(seq);
        Ok((site, epoch))
    }

    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        let resp = self.get(self.url(), self.timeout).await?;
        let body = self.body(resp, MAX_ROUTE_ANSWER, "GET").await?;
        let state: RouteState = serde_json::from_slice(&body)
            .map_err(|e| self.rejected(format!("unreadable answer to GET: {e}")))?;
        self.taken(state.hold_seq);
        Ok((state.site, state.epoch))
    }
}

impl BuiltinDriver {
    /// `GET url` with the token within `timeout`: a 2xx answer, or the error.
    async fn get(
        &self,
        url: String,
        timeout: Duration,
    ) -> Result<reqwest::Response, StrategyError> {
        let resp = self
            .client
            .get(url)
            .timeout(timeout)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !resp.status().is_success() {
            return Err(self.refusal(resp, None, false).await);
        }
        Ok(resp)
    }

    /// The body of `resp`, refused once it is longer than `limit` (before
    /// it is read, when its length is announced): an answer is read into
    /// memory, and the peer may not be the frontend it should be.
    async fn body(
        &self,
        resp: reqwest::Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, StrategyError> {
        crate::capped::body(resp, limit).await.map_err(|e| match e {
            crate::capped::Capped::TooLong => self.rejected(format!(
                "the answer to {what} is longer than {limit} bytes: not warden's control API?"
            )),
            crate::capped::Capped::Transport(e) => self.unreachable(&e),
        })
    }

    /// Every group's route as the frontend holds it (`GET /v1/routes`).
    async fn route_table(&self) -> Result<RouteTable, StrategyError> {
        let url = format!("{}/v1/routes", self.base);
        let resp = self.get(url, Self::TABLE_TIMEOUT.max(self.timeout)).await?;
        let body = self.body(resp, MAX_TABLE_ANSWER, "GET /v1/routes").await?;
        // A frontend of 10,000 groups answers megabytes: parsed off the
        // runtime's workers, which serve agent reports meanwhile.
        let parsed = tokio::task::spawn_blocking(move || {
            serde_json::from_slice::<BTreeMap<String, RouteState>>(&body).map(|states| {
                states
                    .into_iter()
                    .map(|(group, st)| (group, (st.site, st.epoch, st.hold_seq)))
                    .collect::<RouteTable>()
            })
        })
        .await
        .map_err(|e| self.rejected(format!("reading GET /v1/routes failed: {e}")))?;
        parsed.map_err(|e| self.rejected(format!("unreadable answer to GET /v1/routes: {e}")))
    }
}

/// What every client of a frontend's control API is, plain or TLS: bounded
/// by `timeout`; straight to the frontend's address, never through an
/// HTTP proxy, and never on to where an answer points (warden's control
/// API does not redirect, and what answers elsewhere is not the frontend
/// the order is for).
fn control_client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// An HTTP client for control requests. reqwest is built with
/// `rustls-no-provider`: when the process installed no rustls crypto provider,
/// TLS is configured here with `ring` and no trusted roots, which is enough for
/// the plain-HTTP control API and installs nothing process-wide.
fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let builder = control_client(timeout);
    let builder = if rustls::crypto::CryptoProvider::get_default().is_some() {
        builder
    } else {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(b) => builder.tls_backend_preconfigured(
                b.with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
            // Not reachable with ring's defaults; let reqwest report its own error then.
            Err(_) => builder,
        }
    };
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A control API that answers every request with `200` and `body`.
    async fn answering(body: &'static str) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    /// A control API that answers every request with `status` and a
    /// `Location` of `to` (a redirect).
    async fn redirecting(status: &'static str, to: String) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let to = to.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    /// A control API that keeps each request's body and answers with
    /// what `answer` says of it (status line, body).
    async fn keeping(
        answer: fn(&str) -> (&'static str, &'static str),
    ) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let kept = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    // The whole request: headers, then content-length bytes.
                    let mut req = Vec::new();
                    let mut buf = vec![0u8; 8192];
                    let body = loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        req.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&req).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().to_string())
                                })
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0);
                            if body.len() >= len || n == 0 {
                                break body.to_string();
                            }
                        }
                        if n == 0 {
                            break String::new();
                        }
                    };
                    let (status, answer) = answer(&body);
                    kept.lock().unwrap().push(body);
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        (addr, seen)
    }

    const ROUTED: &str =
        r#"{"site":"b","backend":"127.0.0.1:9","epoch":7,"switches":1,"active_connections":0}"#;

    fn driver(addr: SocketAddr) -> BuiltinDriver {
        BuiltinDriver::new(
            "fe1",
            "web",
            addr,
            Secret::new("driver-test-token"),
            BuiltinDriver::DEFAULT_TIMEOUT,
        )
        .expect("driver")
    }

    fn bodies(seen: &std::sync::Mutex<Vec<String>>) -> Vec<serde_json::Value> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).expect("a JSON body"))
            .collect()
    }

    /// A route order states the term and etcd cluster this orchestrator
    /// leads under once it was told them (a frontend that left the
    /// cluster refuses it); before that (one orchestrator alone), neither.
    #[tokio::test]
    async fn a_route_order_states_the_term_and_cluster_it_is_given_under() {
        let (addr, seen) = keeping(|_| ("200 OK", ROUTED)).await;
        let d = driver(addr);
        d.set_route("b", 7, SwitchMode::Immediate)
            .await
            .expect("set");
        d.leads_under(40, Some(0xb));
        d.set_route("b", 7, SwitchMode::Immediate)
            .await
            .expect("set");
        assert_eq!(
            bodies(&seen),
            vec![
                serde_json::json!({"site": "b", "epoch": 7, "mode": "immediate"}),
                serde_json::json!({"site": "b", "epoch": 7, "mode": "immediate", "term": 40, "cluster": 11}),
            ]
        );
    }

    /// A frontend older than those fields (a rolling upgrade, a rollback)
    /// refuses them as unknown (400): the order is sent again without
    /// them, and so are the later ones. Before, every route order of an
    /// orchestrator on etcd was refused by it: no switch through it.
    #[tokio::test]
    async fn an_older_frontend_gets_route_orders_without_term_and_cluster() {
        let (addr, seen) = keeping(|body| {
            if body.contains("\"term\"") {
                (
                    "400 Bad Request",
                    r#"{"error":"invalid SetRoute: unknown field `term`, expected one of `site`, `epoch`, `mode`"}"#,
                )
            } else {
                ("200 OK", ROUTED)
            }
        })
        .await;
        let d = driver(addr);
        d.leads_under(40, Some(0xb));
        d.set_route("b", 7, SwitchMode::Immediate)
            .await
            .expect("set without the fields");
        d.set_route("b", 7, SwitchMode::Immediate)
            .await
            .expect("set");
        let plain = serde_json::json!({"site": "b", "epoch": 7, "mode": "immediate"});
        assert_eq!(
            bodies(&seen),
            vec![
                serde_json::json!({"site": "b", "epoch": 7, "mode": "immediate", "term": 40, "cluster": 11}),
                plain.clone(),
                plain,
            ]
        );
    }

    /// Whatever answers on a frontend's control address with a redirect
    /// (not warden's control API, which never redirects: another service
    /// on the port, a proxy in the way) has not taken the order, and what
    /// answers where it points is not the frontend the orchestrator
    /// addresses: neither a route order nor a read follows it. Before, the
    /// driver followed it, and a `200` there with the route asked for was
    /// taken as the route set at this frontend.
    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let elsewhere = answering(
            r#"{"site":"b","backend":"127.0.0.1:9","epoch":7,"switches":1,"active_connections":0}"#,
        )
        .await;
        for status in ["307 Temporary Redirect", "302 Found"] {
            let addr = redirecting(status, format!("http://{elsewhere}/v1/routes/web")).await;
            let d = BuiltinDriver::new(
                "fe1",
                "web",
                addr,
                Secret::new("driver-test-token"),
                BuiltinDriver::DEFAULT_TIMEOUT,
            )
            .expect("driver");
            let e = d
                .set_route("b", 7, SwitchMode::Immediate)
                .await
                .expect_err("the frontend did not take the route");
            let code = &status[..3];
            assert!(e.to_string().contains(&format!("HTTP {code}")), "{e}");
            assert!(!e.is_transient(), "{e}");
            let e = d.route().await.expect_err("not the frontend's route");
            assert!(e.to_string().contains(&format!("HTTP {code}")), "{e}");
        }
    }

    /// A peer on the control address that streams an endless answer (no
    /// length announced): the driver stops reading at its limit and says
    /// so, instead of holding all of it in the orchestrator's memory.
    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_limit() {
        let (addr, sent) = crate::capped::endless_server(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"web\": ",
            br#"{"site":"b","backend":"x","epoch":7,"switches":1,"active_connections":0}}"#,
        )
        .await;
        let d = BuiltinDriver::new(
            "fe1",
            "web",
            addr,
            Secret::new("driver-test-token"),
            BuiltinDriver::DEFAULT_TIMEOUT,
        )
        .expect("driver");
        let e = d
            .route_in(&ReadPass::new())
            .await
            .expect_err("cut at the limit");
        assert!(e.to_string().contains("is longer than"), "{e}");
        assert!(
            sent.load(std::sync::atomic::Ordering::Relaxed) < 32 * 1024 * 1024,
            "read on past the limit"
        );
    }

    /// A frontend that answers `200` to a route at epoch 7 but reports
    /// epoch 3 did not take the order's fence (an old build, something
    /// else on the port): the route is not reported as set.
    #[tokio::test]
    async fn an_answer_at_another_epoch_is_not_the_route_asked_for() {
        let addr = answering(
            r#"{"site":"b","backend":"127.0.0.1:9","epoch":3,"switches":1,"active_connections":0}"#,
        )
        .await;
        let d = BuiltinDriver::new(
            "fe1",
            "web",
            addr,
            Secret::new("driver-test-token"),
            BuiltinDriver::DEFAULT_TIMEOUT,
        )
        .expect("driver");
        let e = d
            .set_route("b", 7, SwitchMode::Immediate)
            .await
            .expect_err("not the route asked for");
        assert!(
            e.to_string().contains(
                "accepted the route to \"b\" at epoch 7 but reports Some(\"b\") at epoch 3"
            ),
            "{e}"
        );
    }
}
