//! `[[sites.NAME.checks]]` and `endpoints` as written: one [`CheckSpec`] per
//! check or probe, its [`CheckKind`], and the schedule of a site's own
//! checks ([`CheckSpec::every`]). Checked in [`crate::load`].

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{default_true, duration, KeystoneConfig};

/// What a check does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// HTTP or HTTPS GET of `url`.
    Http,
    /// TCP connect to `address`.
    Tcp,
    /// Run `command`; exit status 0 is healthy.
    Command,
    /// Issue a Keystone v3 token with the `keystone` table's login.
    Keystone,
    /// A Swift canary: log in with the `keystone` table, then PUT, GET
    /// (the same bytes back) and DELETE an object in `container`.
    Swift,
    /// Ask DNS server `server` for `query`'s `record_type` records (and
    /// that one is `expect`).
    Dns,
}

/// One check or endpoint probe. The fields used depend on `kind`
/// (validated in [`crate::load`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Name shown in reports and evidence tables.
    pub name: String,
    pub kind: Spanned<CheckKind>,
    /// `http`: the URL to GET.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// `http`: the expected status (default 200).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// `http`: a substring the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// `tcp`: host:port to connect to.
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// `command`: argv of the command.
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    /// `keystone`, `swift`: the Keystone v3 login.
    #[serde(default)]
    pub keystone: Option<KeystoneConfig>,
    /// `swift`: the canary's container (default `warden-canary`; created
    /// when missing).
    #[serde(default)]
    pub container: Option<String>,
    /// `dns`: the server asked, `IP` or `IP:PORT` (port 53 by default).
    #[serde(default)]
    pub server: Option<Spanned<String>>,
    /// `dns`: the name asked for.
    #[serde(default)]
    pub query: Option<String>,
    /// `dns`: the record type asked for (default `A`).
    #[serde(default)]
    pub record_type: Option<String>,
    /// `dns`: a value one of the answers must have (e.g. `10.1.0.10`).
    #[serde(default)]
    pub expect: Option<String>,
    /// Time allowed for one run.
    #[serde(
        default = "default_check_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
    /// A failing critical check makes the site down (with outside agreement).
    #[serde(default = "default_true")]
    pub critical: bool,
    /// A site's own check: run at most this often; the reports between two
    /// runs carry the last result (default: every report, and
    /// [`CheckSpec::OPENSTACK_INTERVAL`] for `keystone` and `swift`).
    #[serde(default, with = "duration::option")]
    pub interval: Option<Duration>,
}

impl CheckSpec {
    /// The record types a `dns` check may ask for.
    pub const DNS_TYPES: &'static [&'static str] = &[
        "A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA",
    ];

    /// `server` as a socket address (port 53 when none is given).
    pub fn dns_server(&self) -> Option<std::net::SocketAddr> {
        let s = self.server.as_ref()?.get_ref().trim();
        s.parse::<std::net::SocketAddr>()
            .ok()
            .or_else(|| {
                s.parse::<std::net::IpAddr>()
                    .ok()
                    .map(|ip| std::net::SocketAddr::new(ip, 53))
            })
            // No DNS server answers on port 0.
            .filter(|a| a.port() != 0)
    }

    /// How often a `keystone` or `swift` check runs unless told: each run is
    /// a password or secret check at Keystone (bcrypt: about 0.2 s of its
    /// CPU at the default cost) or objects written at Swift.
    pub const OPENSTACK_INTERVAL: Duration = Duration::from_secs(10);

    /// How often the check runs at most: its `interval`, or the kind's
    /// default; `None`: at every report.
    pub fn every(&self) -> Option<Duration> {
        self.interval.or(match self.kind.get_ref() {
            CheckKind::Keystone | CheckKind::Swift => Some(Self::OPENSTACK_INTERVAL),
            CheckKind::Http | CheckKind::Tcp | CheckKind::Command | CheckKind::Dns => None,
        })
    }
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}
