//! The `noip` and `dyndns2` providers: the dyndns2 HTTP update protocol,
//! spoken to No-IP or to any DynDNS-compatible server.
//!
//! The request (No-IP, <https://www.noip.com/integrate/request>):
//! `GET /nic/update?hostname=H1,H2&myip=IPV4&myipv6=IPV6` with HTTP Basic
//! authentication (`user:password` of an account or a DDNS key) and a
//! `User-Agent: Company NameOfProgram/Version contact@example`. No-IP's server
//! is [`NOIP_SERVER`]; over plain HTTP it also listens on port 8245
//! ([`NOIP_SERVER_8245`]) for networks whose HTTP proxies get in the way.
//!
//! The answer (<https://www.noip.com/integrate/response>; Dyn's family,
//! <https://help.dyn.com/return-codes.html>), one line per hostname in the
//! order sent (a failure of the account or the system may come once):
//! - `good IP` / `nochg IP`: success. `nochg` is legitimate once after a
//!   start, but "excessive nochg responses may result in your client being
//!   blocked": the provider remembers what the server confirmed and sends
//!   nothing when asked to publish it again.
//! - `nohost`, `badauth`, `badagent`, `!donator`, `abuse` (and Dyn's
//!   `notfqdn`, `numhost`): fatal. The provider **blocks**: every later
//!   `publish` returns [`StrategyError::Blocked`] without a request, and
//!   [`DnsProvider::alerts`] says what to fix, until the configuration is
//!   reloaded (a new provider) or the operator clears the alert.
//! - `911` (and Dyn's `dnserr`): a failure on the provider's side. The
//!   provider **holds** for 30 minutes ([`HOLD`]): `Blocked` without a
//!   request until then, measured on tokio's clock.
//!
//! Anything else is answered with [`StrategyError::Rejected`] quoting the
//! text; timeouts, connection failures and HTTP 5xx are
//! [`StrategyError::Unreachable`] (transient: the runbook retries). The
//! password never reaches a log line, an error or `Debug` output.

mod answer;

pub use answer::*;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use warden_config::{DnsProviderKind, DnsScheme, Secret};

use super::{names_of, DnsProvider, ProviderView, RecordValue};
use crate::{Epoch, StrategyError};

/// No-IP's update URL, the default server of provider `noip`.
pub const NOIP_SERVER: &str = "https://dynupdate.no-ip.com/nic/update";
/// No-IP's alternative port (plain HTTP), to get past HTTP proxies.
pub const NOIP_SERVER_8245: &str = "http://dynupdate.no-ip.com:8245/nic/update";
/// The User-Agent sent when `user_agent` is not configured, in No-IP's
/// `Company NameOfProgram/Version contact` form.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "warden warden/",
    env!("CARGO_PKG_VERSION"),
    " warden@localhost"
);
/// How long `911` or `dnserr` (or HTTP 429) stops updates: No-IP asks to
/// "retry the update no sooner than 30 minutes".
pub const HOLD: Duration = Duration::from_secs(30 * 60);

/// Longest piece of an unexpected answer quoted in an error.
const QUOTE_MAX: usize = 200;

/// A stop in force (fatal code or hold).
#[derive(Debug, Clone)]
struct Stop {
    /// What happened and what to do (the reason of [`StrategyError::Blocked`]).
    reason: String,
    /// The alert line: `reason` with the group and the server.
    line: String,
    /// Holds only: when sending is allowed again.
    until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    /// Per hostname: the value the server last confirmed (`good`/`nochg`).
    confirmed: BTreeMap<String, RecordValue>,
    /// The highest epoch whose publish every hostname confirmed.
    epoch: Epoch,
    /// A fatal answer: nothing is sent until `clear()` or a reload.
    block: Option<Stop>,
    /// A `911`/`dnserr`: nothing is sent until `until` (or `clear()`).
    hold: Option<Stop>,
}

/// The `noip` / `dyndns2` provider of one group.
pub struct DyndnsProvider {
    flavor: Flavor,
    group: String,
    /// `No-IP update server URL`, the element named in errors.
    element: String,
    /// The update URL (no credentials in it).
    url: Url,
    /// Managed hostnames, the main one first.
    names: Vec<String>,
    user: String,
    password: Secret,
    user_agent: String,
    timeout: Duration,
    client: reqwest::Client,
    /// One update at a time: two concurrent publishes must not both send.
    flight: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

impl fmt::Debug for DyndnsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DyndnsProvider")
            .field("kind", &self.flavor.kind())
            .field("group", &self.group)
            .field("url", &self.url.as_str())
            .field("names", &self.names)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl DyndnsProvider {
    /// Build from `[groups.GROUP.dns]` (provider `noip` or `dyndns2`), loading the credentials.
    pub fn from_config(group: &str, dns: &DnsScheme) -> Result<DyndnsProvider, StrategyError> {
        let flavor = match dns.provider {
            DnsProviderKind::Noip => Flavor::Noip,
            DnsProviderKind::Dyndns2 => Flavor::Dyndns2,
            DnsProviderKind::Rfc2136 => {
                return Err(StrategyError::Config(format!(
                    "groups.{group}.dns: provider \"rfc2136\" is not a dyndns2 provider"
                )))
            }
        };
        let key = format!("groups.{group}.dns.credentials");
        let cred = dns.credentials.as_ref().ok_or_else(|| {
            StrategyError::Config(format!(
                "{key}: provider \"{}\" needs credentials (USER:PASSWORD)",
                flavor.kind()
            ))
        })?;
        let secret = Secret::load(&key, cred).map_err(|e| StrategyError::Config(e.to_string()))?;
        DyndnsProvider::new(
            flavor,
            group,
            dns.server.as_deref(),
            &names_of(dns),
            &secret,
            dns.user_agent.as_deref(),
            dns.timeout,
        )
    }

    /// A provider for `names` of `group`, updated at `server` (`None`: No-IP's
    /// [`NOIP_SERVER`]; required for dyndns2) with `credentials` holding
    /// `USER:PASSWORD`, sending `user_agent` (`None`: [`DEFAULT_USER_AGENT`]);
    /// `timeout` bounds each request.
    pub fn new(
        flavor: Flavor,
        group: &str,
        server: Option<&str>,
        names: &[String],
        credentials: &Secret,
        user_agent: Option<&str>,
        timeout: Duration,
    ) -> Result<DyndnsProvider, StrategyError> {
        let cfg = |m: String| StrategyError::Config(format!("groups.{group}.dns.{m}"));
        let server = match (server, flavor) {
            (Some(s), _) => s.trim(),
            (None, Flavor::Noip) => NOIP_SERVER,
            (None, Flavor::Dyndns2) => {
                return Err(cfg(
                    "server: provider \"dyndns2\" needs the update URL, e.g. \"https://members.example.net/nic/update\"".into(),
                ))
            }
        };
        let url = Url::parse(server).map_err(|e| {
            // A URL with credentials in it is not echoed.
            cfg(format!(
                "server: not a URL ({e}); expected e.g. \"{NOIP_SERVER}\""
            ))
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(cfg(
                "server: the URL holds credentials; put them in credentials (a file or an environment variable) and remove them from the URL".into(),
            ));
        }
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(cfg(format!(
                "server: {:?} is not an http:// or https:// URL with a host",
                url.as_str()
            )));
        }
        if url.fragment().is_some() {
            return Err(cfg(format!(
                "server: {:?} has a #fragment; remove it",
                url.as_str()
            )));
        }
        let (user, password) = match credentials.expose().split_once(':') {
            Some((u, p)) if !u.trim().is_empty() && !p.is_empty() => {
                (u.trim().to_string(), Secret::new(p))
            }
            _ => {
                return Err(cfg(
                    "credentials: the secret must be USER:PASSWORD (the account's or DDNS key's username, a colon, its password)".into(),
                ))
            }
        };
        if names.is_empty() {
            return Err(cfg("name: no hostname to update".into()));
        }
        for n in names {
            if n.is_empty() || n.contains(|c: char| c.is_whitespace() || c == ',') {
                return Err(cfg(format!("name: {n:?} is not a hostname")));
            }
        }
        let user_agent = user_agent.unwrap_or(DEFAULT_USER_AGENT).trim().to_string();
        if user_agent.is_empty() || reqwest::header::HeaderValue::from_str(&user_agent).is_err() {
            return Err(cfg(format!(
                "user_agent: {user_agent:?} cannot be sent as a User-Agent header"
            )));
        }
        let client = http_client(timeout).map_err(|e| {
            StrategyError::Config(format!(
                "group {group}: cannot build the HTTP client for {}: {e}",
                flavor.label()
            ))
        })?;
        let mut shown = url.clone();
        shown.set_query(None);
        Ok(DyndnsProvider {
            flavor,
            group: group.to_string(),
            element: format!("{} update server {shown}", flavor.label()),
            url,
            names: names.to_vec(),
            user,
            password,
            user_agent,
            timeout,
            client,
            flight: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
        })
    }

    /// `noip` or `dyndns2`.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The User-Agent sent.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// The managed hostnames, the main one first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop(&self, reason: &str, until: Option<Instant>) -> Stop {
        Stop {
            reason: reason.to_string(),
            line: format!(
                "dns/{} group {} ({}): {reason}",
                self.flavor.kind(),
                self.group,
                self.element
            ),
            until,
        }
    }

    fn unreachable(&self, reason: String) -> StrategyError {
        StrategyError::Unreachable {
            element: self.element.clone(),
            reason,
        }
    }

    fn rejected(&self, reason: String) -> StrategyError {
        StrategyError::Rejected {
            element: self.element.clone(),
            reason,
        }
    }

    fn blocked(&self, line: &str) -> StrategyError {
        StrategyError::Blocked {
            element: self.element.clone(),
            reason: line.to_string(),
        }
    }

    /// The stop in force, if any (an expired hold is dropped).
    fn stopped(&self, st: &mut State) -> Option<String> {
        if let Some(b) = &st.block {
            return Some(b.reason.clone());
        }
        if let Some(h) = &st.hold {
            if h.until.is_some_and(|u| Instant::now() < u) {
                return Some(h.reason.clone());
            }
            info!(group = %self.group, server = %self.element, "update hold expired; updates resume");
            st.hold = None;
        }
        None
    }

    /// `(what, why)` of the failed hostnames: "`nohost` for a, b" and the
    /// advice of each code.
    fn describe(&self, failed: &[(Code, &str)]) -> (String, String) {
        let mut codes: Vec<Code> = Vec::new();
        for (c, _) in failed {
            if !codes.contains(c) {
                codes.push(*c);
            }
        }
        let what = codes
            .iter()
            .map(|c| {
                let hs: Vec<&str> = failed
                    .iter()
                    .filter(|(x, _)| x == c)
                    .map(|(_, h)| *h)
                    .collect();
                format!("`{}` for {}", c.as_str(), hs.join(", "))
            })
            .collect::<Vec<_>>()
            .join(" and ");
        let why = codes
            .iter()
            .map(|c| c.advice(self.flavor, &self.group))
            .collect::<Vec<_>>()
            .join("; ");
        (what, why)
    }

    /// Stop for good (until `clear()` or a reload) after a fatal answer.
    fn block(&self, what: &str, why: &str) -> StrategyError {
        let reason = format!(
            "updates stopped after {what}: {why}; nothing is sent through this provider until the configuration is fixed and reloaded, or this alert is cleared"
        );
        warn!(group = %self.group, server = %self.element, answer = what, "DNS updates stopped: the provider answered a fatal code");
        self.lock().block = Some(self.stop(&reason, None));
        self.blocked(&reason)
    }

    /// Hold for [`HOLD`] after `911`/`dnserr`/HTTP 429.
    fn hold(&self, what: &str, why: &str) -> StrategyError {
        let reason = format!(
            "updates held until {} (30 min) after {what}: {why}; clear this alert to retry earlier",
            wall_clock_after(HOLD),
        );
        warn!(group = %self.group, server = %self.element, answer = what, hold = "30m", "DNS updates held");
        self.lock().hold = Some(self.stop(&reason, Some(Instant::now() + HOLD)));
        self.blocked(&reason)
    }

    /// The update URL for `hosts` and `value` (commas and colons left as
    /// they are: servers of this family expect them literally).
    fn update_url(&self, hosts: &[String], value: &RecordValue) -> Url {
        let mut q = String::new();
        if let Some(existing) = self.url.query() {
            if !existing.is_empty() {
                q.push_str(existing);
                q.push('&');
            }
        }
        q.push_str("hostname=");
        q.push_str(&encode(&hosts.join(",")));
        if let Some(a) = value.v4 {
            q.push_str("&myip=");
            q.push_str(&a.to_string());
        }
        if let Some(a) = value.v6 {
            q.push_str("&myipv6=");
            q.push_str(&a.to_string());
        }
        let mut url = self.url.clone();
        url.set_query(Some(&q));
        url
    }

    /// Turn a transport failure into an error.
    fn transport_error(&self, e: &reqwest::Error) -> StrategyError {
        if e.is_timeout() {
            return self.unreachable(format!(
                "no answer within {:?} (the update may or may not have been applied; it is retried); check the network path to the server or raise groups.{}.dns.timeout",
                self.timeout, self.group
            ));
        }
        let hint = if e.is_connect() {
            match self.flavor {
                Flavor::Noip => format!(
                    " (check server and the network path; No-IP also listens on port 8245: server = \"{NOIP_SERVER_8245}\")"
                ),
                Flavor::Dyndns2 => " (check server and the network path)".to_string(),
            }
        } else {
            String::new()
        };
        self.unreachable(format!("{}{hint}", error_text(e)))
    }

    /// Handle an HTTP answer that is not `200` with return codes.
    fn status_error(
        &self,
        status: StatusCode,
        text: &str,
        location: Option<String>,
    ) -> StrategyError {
        let s = status.as_u16();
        let q = quote(text);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let why = format!(
                "the server refused the request's credentials ({q}); fix the secret named by groups.{}.dns.credentials (USER:PASSWORD)",
                self.group
            );
            return self.block(&format!("HTTP {s}"), &why);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return self.hold(
                &format!("HTTP {s}"),
                "the server is rate-limiting this client",
            );
        }
        if status.is_server_error() {
            return self.unreachable(format!(
                "HTTP {s} ({q}): the update server has a problem; the update is retried"
            ));
        }
        if status.is_redirection() {
            return self.rejected(format!(
                "HTTP {s} redirect to {}: set groups.{}.dns.server to the update URL itself (credentials are not sent across redirects)",
                location.unwrap_or_else(|| "(no Location)".into()),
                self.group
            ));
        }
        self.rejected(format!(
            "HTTP {s} ({q}): is groups.{}.dns.server the update URL (…/nic/update)?",
            self.group
        ))
    }

    /// Apply the answer lines of an update of `hosts` to `value` at `epoch`.
    fn settle(
        &self,
        hosts: &[String],
        value: &RecordValue,
        epoch: Epoch,
        lines: &[Line],
        body: &str,
    ) -> Result<(), StrategyError> {
        let mut fatal: Vec<(Code, &str)> = Vec::new();
        let mut held: Vec<(Code, &str)> = Vec::new();
        let mut mismatch = Vec::new();
        let mut nochg = 0;
        {
            let mut st = self.lock();
            for (h, l) in hosts.iter().zip(lines) {
                match l.code.class() {
                    Class::Success => {
                        if l.code == Code::Nochg {
                            nochg += 1;
                        }
                        let got = value_of(&l.ips);
                        if l.ips.is_empty() || got == *value {
                            st.confirmed.insert(h.clone(), *value);
                        } else {
                            st.confirmed.insert(h.clone(), got);
                            mismatch.push(format!(
                                "{h}: `{} {}` but {value} was sent",
                                l.code.as_str(),
                                got
                            ));
                        }
                    }
                    Class::Fatal => {
                        st.confirmed.remove(h);
                        fatal.push((l.code, h));
                    }
                    Class::Hold => {
                        st.confirmed.remove(h);
                        held.push((l.code, h));
                    }
                }
            }
        }
        if !fatal.is_empty() {
            let (what, why) = self.describe(&fatal);
            return Err(self.block(&what, &why));
        }
        if !held.is_empty() {
            let (what, why) = self.describe(&held);
            return Err(self.hold(&what, &why));
        }
        if !mismatch.is_empty() {
            return Err(self.rejected(format!(
                "the server set other addresses than the ones sent ({}); answer {}: does groups.{}.dns.server accept myip/myipv6?",
                mismatch.join("; "),
                quote(body),
                self.group
            )));
        }
        {
            let mut st = self.lock();
            st.epoch = st.epoch.max(epoch);
        }
        info!(
            group = %self.group,
            server = %self.element,
            hosts = %hosts.join(","),
            to = %value,
            epoch,
            nochg,
            "DNS update confirmed"
        );
        Ok(())
    }
}

#[async_trait]
impl DnsProvider for DyndnsProvider {
    fn kind(&self) -> &'static str {
        self.flavor.kind()
    }

    async fn publish(
        &self,
        site: &str,
        value: &RecordValue,
        epoch: Epoch,
    ) -> Result<(), StrategyError> {
        if value.is_empty() {
            return Err(StrategyError::Config(format!(
                "groups.{}.dns.addresses.{site}: no address to publish",
                self.group
            )));
        }
        let _flight = self.flight.lock().await;
        let pending: Vec<String> = {
            let mut st = self.lock();
            if let Some(line) = self.stopped(&mut st) {
                debug!(group = %self.group, "DNS update not sent: provider stopped");
                return Err(self.blocked(&format!("{line} (no request was sent)")));
            }
            if epoch < st.epoch {
                return Err(StrategyError::StaleEpoch {
                    element: format!("{} (as last confirmed by this orchestrator)", self.element),
                    sent: epoch,
                    seen: st.epoch,
                });
            }
            let pending: Vec<String> = self
                .names
                .iter()
                .filter(|n| st.confirmed.get(*n) != Some(value))
                .cloned()
                .collect();
            if pending.is_empty() {
                // Already confirmed: sending again would only earn a needless `nochg`.
                st.epoch = st.epoch.max(epoch);
                debug!(group = %self.group, to = %value, epoch, "DNS update not sent: already confirmed");
                return Ok(());
            }
            pending
        };
        let url = self.update_url(&pending, value);
        debug!(group = %self.group, server = %self.element, hosts = %pending.join(","), to = %value, epoch, site, "sending DNS update");
        let resp = self
            .client
            .get(url)
            .basic_auth(&self.user, Some(self.password.expose()))
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            // Some servers put a return code in a 401/5xx body: honour it.
            if let Ok(lines) = parse_answer(&body, pending.len(), self.flavor) {
                if lines.iter().all(|l| l.code.class() != Class::Success) {
                    return self.settle(&pending, value, epoch, &lines, &body);
                }
            }
            return Err(self.status_error(status, &body, location));
        }
        let lines = parse_answer(&body, pending.len(), self.flavor).map_err(|why| {
            self.rejected(format!(
                "unexpected answer {} to an update of {}: {why}; is groups.{}.dns.server a {} update URL?",
                quote(&body),
                pending.join(", "),
                self.group,
                self.flavor.label()
            ))
        })?;
        self.settle(&pending, value, epoch, &lines, &body)
    }

    async fn observe(&self) -> Result<Option<ProviderView>, StrategyError> {
        let st = self.lock();
        if st.confirmed.is_empty() {
            return Ok(None);
        }
        let main = &self.names[0];
        let reference = st.confirmed.get(main).copied();
        let mut drift = Vec::new();
        for n in &self.names {
            match (st.confirmed.get(n), &reference) {
                (None, _) => drift.push(format!(
                    "{n}: no address confirmed by {} since start",
                    self.element
                )),
                (Some(v), Some(r)) if v == r => {}
                (Some(v), Some(r)) => drift.push(format!("{n} holds {v} but {main} holds {r}")),
                (Some(_), None) => {}
            }
        }
        Ok(Some(ProviderView {
            value: if drift.is_empty() { reference } else { None },
            epoch: st.epoch,
            drift,
        }))
    }

    fn alerts(&self) -> Vec<String> {
        let mut st = self.lock();
        self.stopped(&mut st);
        st.block
            .iter()
            .chain(st.hold.iter())
            .map(|s| s.line.clone())
            .collect()
    }

    fn clear(&self) -> Vec<String> {
        let mut st = self.lock();
        let lifted: Vec<String> = st
            .block
            .take()
            .into_iter()
            .chain(st.hold.take())
            .map(|s| s.line)
            .collect();
        if !lifted.is_empty() {
            info!(group = %self.group, server = %self.element, lifted = lifted.len(), "DNS provider alerts cleared; updates resume");
        }
        lifted
    }

    fn forget(&self, names: &[String]) {
        let mut st = self.lock();
        for n in names {
            st.confirmed.remove(n);
        }
    }
}

/// The addresses named by a success line.
fn value_of(ips: &[IpAddr]) -> RecordValue {
    let mut v = RecordValue::default();
    for ip in ips {
        match ip {
            IpAddr::V4(a) if v.v4.is_none() => v.v4 = Some(*a),
            IpAddr::V6(a) if v.v6.is_none() => v.v6 = Some(*a),
            _ => {}
        }
    }
    v
}

/// Percent-encode a query value, leaving unreserved characters, `,` and `:` as they are.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b',' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `HH:MM UTC`, `after` from now on the wall clock (for people reading alerts).
fn wall_clock_after(after: Duration) -> String {
    let secs = SystemTime::now()
        .checked_add(after)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:02}:{:02} UTC", (secs / 3600) % 24, (secs / 60) % 60)
}

/// A reqwest error and its causes, `a: b: c`, without the URL (reqwest
/// writes `… for url (URL)`; the URL carries the query).
fn error_text(e: &reqwest::Error) -> String {
    let full = e.to_string();
    let mut s = match full.find(" for url (") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// `text` quoted, cut after [`QUOTE_MAX`] characters.
fn quote(text: &str) -> String {
    quote_max(text, QUOTE_MAX)
}

fn quote_max(text: &str, max: usize) -> String {
    crate::text::quote(text, max, "body")
}

/// The HTTP client: redirects not followed (credentials stay with the
/// configured URL), certificates checked against the system's roots.
fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_line_per_host() {
        let l = parse_answer("good 1.2.3.4\r\nnochg 1.2.3.4\r\n", 2, Flavor::Noip).unwrap();
        assert_eq!(l[0].code, Code::Good);
        assert_eq!(l[1].code, Code::Nochg);
        assert_eq!(l[1].ips, vec!["1.2.3.4".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn parses_dual_stack() {
        let l = parse_answer("good 192.0.2.1,2001:db8::1", 1, Flavor::Noip).unwrap();
        assert_eq!(
            value_of(&l[0].ips),
            RecordValue {
                v4: Some("192.0.2.1".parse().unwrap()),
                v6: Some("2001:db8::1".parse().unwrap())
            }
        );
    }

    #[test]
    fn one_failure_line_applies_to_all() {
        let l = parse_answer("badauth\n", 3, Flavor::Noip).unwrap();
        assert_eq!(l.len(), 3);
        assert!(l.iter().all(|x| x.code == Code::Badauth));
        assert!(parse_answer("good 1.2.3.4", 2, Flavor::Noip).is_err());
    }

    #[test]
    fn refuses_unknown_text() {
        assert!(parse_answer("<html>hello</html>", 1, Flavor::Noip).is_err());
        assert!(parse_answer("", 1, Flavor::Noip).is_err());
        assert!(parse_answer("good banana", 1, Flavor::Noip).is_err());
        assert!(parse_answer("good", 1, Flavor::Noip).is_err());
        assert!(parse_answer("good", 1, Flavor::Dyndns2).is_ok());
    }

    #[test]
    fn classes() {
        for c in [
            "nohost", "badauth", "badagent", "!donator", "abuse", "notfqdn", "numhost",
        ] {
            assert_eq!(Code::parse(c).unwrap().class(), Class::Fatal, "{c}");
        }
        for c in ["911", "dnserr"] {
            assert_eq!(Code::parse(c).unwrap().class(), Class::Hold, "{c}");
        }
    }

    #[test]
    fn encoding_keeps_commas() {
        assert_eq!(
            encode("a.example.net,b.example.net"),
            "a.example.net,b.example.net"
        );
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn default_agent_has_the_documented_form() {
        let parts: Vec<&str> = DEFAULT_USER_AGENT.split_whitespace().collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[1].contains('/'));
        assert!(parts[2].contains('@'));
    }
}
