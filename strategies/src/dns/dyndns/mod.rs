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
//!   [`DnsProvider::alerts`](super::DnsProvider::alerts) says what to fix,
//!   until the configuration is reloaded (a new provider) or the operator
//!   clears the alert.
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
//! would be a needless update. Another value is sent at once, also the
//! one the server confirmed before: the unanswered update may be in force,
//! so what was confirmed for its hostnames is forgotten. The
//! password never reaches a log line, an error or `Debug` output.
//!
//! Here: the provider and its settings. `config.rs`: building it from the
//! configuration; `publish.rs`: [`DnsProvider`](super::DnsProvider)
//! (`publish` decides what is pending, then sends one request);
//! `answer.rs`: return codes, answer parsing and quoting; `request.rs`: the HTTP side;
//! `state.rs`: what the server confirmed and the pauses; `blocks.rs`: the
//! stops in force (blocks, holds) and taking them back from the store.

mod answer;
mod blocks;
mod config;
mod publish;
mod request;
mod state;

pub use answer::*;
pub use state::{FAILED_PAUSE, FAILED_PAUSE_MAX};

use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Url;
use tracing::{debug, info};
use warden_config::Secret;

use super::{names_of, RecordValue};
use crate::{Epoch, StrategyError};
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
            // Without its query, as errors and logs show it: a provider
            // may take a token there.
            .field("server", &self.element)
            .field("names", &self.names)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl DyndnsProvider {
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
}

#[cfg(test)]
mod tests {
    use super::request::encode;
    use super::state::value_of;
    use super::*;

    /// A token a provider takes in the update URL's query is a secret:
    /// the provider's `Debug` (what a `?provider` in a log line prints)
    /// shows the URL as errors do, without it, and masks the password.
    #[test]
    fn debug_shows_no_token_of_the_url() {
        let p = DyndnsProvider::new(
            Flavor::Dyndns2,
            "web",
            Some("https://members.example.net/nic/update?token=tok-s3cr3t-xyz"),
            &["www.example.net".to_string()],
            &Secret::new("user:pw-s3cr3t-xyz"),
            None,
            Duration::from_secs(5),
        )
        .expect("provider");
        let shown = format!("{p:?}");
        assert!(shown.contains("members.example.net/nic/update"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
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
