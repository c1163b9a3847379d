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
//! A success line naming other addresses than the ones sent (a server
//! that ignores `myip`) is [`StrategyError::Rejected`], and that update is
//! not sent again for [`HOLD`] (each resend would earn the same needless
//! answer) unless the operator clears the provider.
//!
//! The server keeps no epoch: the provider refuses an order older than the
//! last update it sent ([`StrategyError::StaleEpoch`], no request), also
//! when that update's answer was lost (it may be in force).
//!
//! Anything else is answered with [`StrategyError::Rejected`] quoting the
//! text; timeouts, connection failures and HTTP 5xx are
//! [`StrategyError::Unreachable`] (transient: the runbook retries). After
//! such a failure the same update is paused ([`FAILED_PAUSE`], doubling with
//! each failure in a row up to [`FAILED_PAUSE_MAX`]) and refused meanwhile
//! without a request, as the same kind of error: a slow server may apply
//! every request whose answer warden no longer waits for, and each resend
//! would be a needless update. Another value is sent at once. The
//! password never reaches a log line, an error or `Debug` output.
//!
//! Here: the provider, its configuration and [`DnsProvider`] (`publish`
//! decides what is pending, then sends one request). `answer.rs`: return
//! codes, answer parsing and quoting; `request.rs`: the HTTP side;
//! `state.rs`: what the server confirmed and the pauses; `blocks.rs`: the
//! stops in force (blocks, holds) and taking them back from the store.

mod answer;
mod blocks;
mod request;
mod state;

pub use answer::*;
pub use state::{FAILED_PAUSE, FAILED_PAUSE_MAX};

use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use tracing::{debug, info};
use warden_config::{DnsProviderKind, DnsScheme, Secret};

use super::{names_of, DnsProvider, ProviderView, RecordValue};
use crate::{Epoch, StrategyError};
use request::http_client;
use state::State;

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

/// The longest answer to an update read: a line per name (`good 10.77.2.1`)
/// is far shorter; a server sending more is not a dyndns2 update server.
const MAX_ANSWER: usize = 64 * 1024;

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
    /// The digest of the settings a block is earned with (`state.rs`).
    config_digest: String,
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
        let user_agent_configured = user_agent;
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
        let config_digest = blocks::config_digest(flavor, &url, names, user_agent_configured);
        Ok(DyndnsProvider {
            config_digest,
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

    /// Send one update of `pending` to `value` (the decision of `epoch`
    /// for `site`) and settle its answer.
    async fn send_update(
        &self,
        pending: &[String],
        site: &str,
        value: &RecordValue,
        epoch: Epoch,
    ) -> Result<(), StrategyError> {
        // After the wait for an update in flight: the caller may no longer act.
        crate::gate::check(&self.element)?;
        {
            let mut st = self.lock();
            st.sent_epoch = st.sent_epoch.max(epoch);
        }
        let url = self.update_url(pending, value);
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
        // An answer is a line per name: anything longer is not one, and
        // is not read into memory whole.
        let body = match crate::capped::body(resp, MAX_ANSWER).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(crate::capped::Capped::Transport(e)) => return Err(self.transport_error(&e)),
            Err(crate::capped::Capped::TooLong) => {
                return Err(self.rejected(format!(
                    "the answer to an update of {} (HTTP {}) is longer than {MAX_ANSWER} bytes: not a {} update server?",
                    pending.join(", "),
                    status.as_u16(),
                    self.flavor.label()
                )))
            }
        };
        if !status.is_success() {
            // Some servers put a return code in a 401/5xx body: honour it.
            if let Ok(lines) = parse_answer(&body, pending.len(), self.flavor) {
                if lines.iter().all(|l| l.code.class() != Class::Success) {
                    return self.settle(pending, value, epoch, &lines, &body);
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
        self.settle(pending, value, epoch, &lines, &body)
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
            // The server keeps no epoch: this provider is the fence. An
            // update that left may have been applied even when its answer
            // was lost (a timeout, a 5xx), so an order older than it is as
            // late as one older than a confirmed update.
            if epoch < st.epoch.max(st.sent_epoch) {
                let (seen, how) = if st.epoch >= st.sent_epoch {
                    (st.epoch, "confirmed")
                } else {
                    (
                        st.sent_epoch,
                        "sent (its answer was not a confirmation: it may be in force)",
                    )
                };
                return Err(StrategyError::StaleEpoch {
                    element: format!("{} (as last {how} by this orchestrator)", self.element),
                    sent: epoch,
                    seen,
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
            if let Some(e) = self.refused_again(&st, &pending, value) {
                debug!(group = %self.group, to = %value, epoch, "DNS update not sent: the server answered it with other addresses recently");
                return Err(e);
            }
            if let Some(e) = self.paused(&st, value) {
                debug!(group = %self.group, to = %value, epoch, "DNS update not sent: it failed recently");
                return Err(e);
            }
            pending
        };
        let r = self.send_update(&pending, site, value, epoch).await;
        self.note_outcome(value, &r);
        r
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
            site: None,
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
        let mut lifted: Vec<String> = st
            .block
            .take()
            .into_iter()
            .chain(st.hold.take())
            .map(|s| s.line)
            .collect();
        // The operator fixed the server: updates it answered with other
        // addresses may be sent again at once.
        lifted.extend(self.lift_pause(&mut st));
        for (h, (sent, said, _)) in std::mem::take(&mut st.mismatch) {
            lifted.push(format!(
                "dns/{} group {} ({}): {h} may be sent {sent} again (the server answered {said})",
                self.flavor.kind(),
                self.group,
                self.element
            ));
        }
        if !lifted.is_empty() {
            info!(group = %self.group, server = %self.element, lifted = lifted.len(), "DNS provider alerts cleared; updates resume");
        }
        lifted
    }

    fn stops(&self) -> Vec<crate::ProviderStop> {
        self.stored_stops()
    }

    fn restore_stops(&self, stops: &[crate::ProviderStop]) -> Vec<String> {
        self.take_back(stops)
    }

    fn skips_confirmed(&self) -> bool {
        true
    }

    fn forget(&self, names: &[String]) {
        self.doubt(names);
    }
}

#[cfg(test)]
mod tests {
    use super::request::encode;
    use super::state::value_of;
    use super::*;

    /// An update server that answers `200` with an endless body (no
    /// length announced): the provider stops reading at its limit and says
    /// so, instead of holding all of it in the orchestrator's memory.
    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_limit() {
        let (addr, sent) = crate::capped::endless_server(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\ngood 10.77.2.7",
            b"",
        )
        .await;
        let p = DyndnsProvider::new(
            Flavor::Dyndns2,
            "web",
            Some(&format!("http://{addr}/nic/update")),
            &["www.example.net".to_string()],
            &Secret::new("user:password"),
            None,
            Duration::from_secs(10),
        )
        .expect("provider");
        let value = RecordValue {
            v4: Some("10.77.2.7".parse().unwrap()),
            v6: None,
        };
        let e = p
            .publish("b", &value, 2)
            .await
            .expect_err("cut at the limit");
        assert!(e.to_string().contains("is longer than"), "{e}");
        assert!(
            sent.load(std::sync::atomic::Ordering::Relaxed) < 32 * 1024 * 1024,
            "read on past the limit"
        );
    }

    #[test]
    fn parses_one_line_per_host() {
        let l = parse_answer("good 1.2.3.4\r\nnochg 1.2.3.4\r\n", 2, Flavor::Noip).unwrap();
        assert_eq!(l[0].code, Code::Good);
        assert_eq!(l[1].code, Code::Nochg);
        assert_eq!(l[1].ips, vec!["1.2.3.4".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn parses_dual_stack() {
        let l = parse_answer("good 10.77.2.1,2001:db8::1", 1, Flavor::Noip).unwrap();
        assert_eq!(
            value_of(&l[0].ips),
            RecordValue {
                v4: Some("10.77.2.1".parse().unwrap()),
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
