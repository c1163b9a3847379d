//! How a `noip` / `dyndns2` provider is built from its configuration:
//! [`DyndnsProvider::from_config`] and [`DyndnsProvider::new`], every
//! setting checked (the server URL, the credentials, the names, the
//! User-Agent) before the first request.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::Url;
use warden_config::{DnsProviderKind, DnsScheme, Secret};

use super::request::http_client;
use super::state::State;
use super::{blocks, names_of, DyndnsProvider, Flavor, DEFAULT_USER_AGENT, NOIP_SERVER};
use crate::StrategyError;

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
        // Shown without its query and fragment: a token may be in them.
        let shown = {
            let mut u = url.clone();
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(cfg(format!(
                "server: {shown:?} is not an http:// or https:// URL with a host"
            )));
        }
        if url.fragment().is_some() {
            return Err(cfg(format!("server: {shown:?} has a #fragment; remove it")));
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
}
