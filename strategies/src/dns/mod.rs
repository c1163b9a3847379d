//! The `dns` scheme: users resolve a name, and moving them means changing
//! that name's A/AAAA records to the standby site's addresses.
//!
//! - [`DnsProvider`]: how records are changed (one implementation per provider
//!   kind; more can be added without touching the orchestrator);
//! - [`dyndns`]: `noip` and `dyndns2` (the dyndns2 HTTP update protocol);
//! - [`rfc2136`]: DNS UPDATE signed with TSIG, with compare-and-set prerequisites;
//! - [`query`]: questions asked directly to authoritative servers (AA bit, no cache);
//! - [`DnsStrategy`]: the [`Strategy`] of a `dns` group: publish through the
//!   provider, observe from the authoritative servers.
//!
//! Here: the provider's interface and the strategy's construction;
//! `strategy.rs` what the strategy does (`activate`, `current`).

pub mod dyndns;
pub mod query;
pub mod rfc2136;
mod strategy;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use warden_config::{parse_dns_server, parse_record_addresses, Config, DnsProviderKind, DnsScheme};

use crate::{Epoch, Strategy, StrategyError};

/// What a name should resolve to: at most one IPv4 (A) and one IPv6 (AAAA) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RecordValue {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl RecordValue {
    /// Parse an `addresses` value of failover.conf (`"10.1.0.10"`, `"fd00::10"`
    /// or `"10.1.0.10, fd00::10"`).
    pub fn parse(s: &str) -> Result<RecordValue, String> {
        let (v4, v6) = parse_record_addresses(s)?;
        Ok(RecordValue { v4, v6 })
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

impl fmt::Display for RecordValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.v4, self.v6) {
            (Some(a), Some(b)) => write!(f, "{a}, {b}"),
            (Some(a), None) => write!(f, "{a}"),
            (None, Some(b)) => write!(f, "{b}"),
            (None, None) => f.write_str("(no address)"),
        }
    }
}

/// What a provider itself knows about the records it manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderView {
    /// The value every managed name holds (`None`: unknown, absent or the
    /// names disagree; `drift` says which).
    pub value: Option<RecordValue>,
    /// The highest epoch the provider knows was published (0: none).
    pub epoch: Epoch,
    /// The target the decision at `epoch` named, when the provider keeps a
    /// record of it (rfc2136: the marker's site); `None`: not kept.
    pub site: Option<String>,
    /// Lines that describe disagreement (empty when consistent). With
    /// nameservers, kept only from a provider that reads its server (see
    /// [`DnsProvider::skips_confirmed`]).
    pub drift: Vec<String>,
}

/// How the records of one group are changed.
///
/// Errors follow [`StrategyError`]: `Unreachable` is transient (the runbook
/// retries with backoff inside its step timeout); `Conflict` and `StaleEpoch`
/// are fencing refusals; `Blocked` means the provider stopped itself until an
/// operator acts (nothing was sent); `Rejected` and `Config` need a fix.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// `noip`, `dyndns2` or `rfc2136`.
    fn kind(&self) -> &'static str;
    /// Point every managed name at `value` (the addresses of `site`), fenced
    /// by `epoch`. Idempotent: when the provider knows the names already hold
    /// `value`, nothing needless is sent.
    async fn publish(
        &self,
        site: &str,
        value: &RecordValue,
        epoch: Epoch,
    ) -> Result<(), StrategyError>;
    /// The provider's own view (rfc2136: read from the primary server;
    /// dyndns2: the last answer of the update server, `None` before any).
    async fn observe(&self) -> Result<Option<ProviderView>, StrategyError>;
    /// The TTL the provider gives every record it writes (rfc2136: the
    /// group's `ttl`); `None` when the provider sets its own (dyndns2).
    /// An authoritative answer with a longer TTL is drift: resolvers keep
    /// it that long, so users stay on a site failed away from longer than
    /// the group was set up for, while the servers already answer the new one.
    fn ttl(&self) -> Option<u32> {
        None
    }
    /// Blocks and holds in force, one line each (see [`Strategy::alerts`]).
    fn alerts(&self) -> Vec<String> {
        Vec::new()
    }
    /// Lift blocks and holds (the operator fixed the cause). Returns what was lifted.
    fn clear(&self) -> Vec<String> {
        Vec::new()
    }
    /// The stops in force, to be stored (see [`Strategy::stops`]).
    fn stops(&self) -> Vec<crate::ProviderStop> {
        Vec::new()
    }
    /// Take back stored stops (see [`Strategy::restore_stops`]).
    fn restore_stops(&self, _stops: &[crate::ProviderStop]) -> Vec<String> {
        Vec::new()
    }
    /// Whether `publish` skips what the provider remembers as confirmed
    /// (dyndns2: no needless `nochg`), so the strategy must ask the
    /// authoritative servers first and [`DnsProvider::forget`] what they
    /// contradict. `false` (rfc2136 reads the zone itself and always sends):
    /// nothing is asked before a publish. Such a provider works from
    /// memory: with nameservers, its view's drift lines (about what it
    /// confirmed) give way to their answers; another's (rfc2136: read from
    /// the primary, e.g. an unreadable marker) are kept.
    fn skips_confirmed(&self) -> bool {
        false
    }
    /// The authoritative servers show that `names` do not hold what the
    /// provider believes it confirmed (a hand edit at the provider): the next
    /// `publish` must send for them instead of trusting its memory.
    fn forget(&self, _names: &[String]) {}
    /// An authoritative server answered `seen` for `name` (the types the
    /// targets use), read by [`Strategy::current`] from every nameserver:
    /// a provider that skips what it confirmed forgets `name` when `seen`
    /// is not what it confirmed, as [`DnsProvider::forget`] — so the
    /// reconciliation's re-apply sends, even when the nameserver `publish`
    /// asks first does not answer. Default: nothing.
    fn contradicted(&self, _name: &str, _seen: &RecordValue) {}
    /// A new leader term begins in this process ([`Strategy::term_began`]):
    /// what the provider remembers of the names (what it confirmed, what
    /// it last wrote) is of an earlier term, and another leader may have
    /// changed them since — forgotten, so the next publish sends and the
    /// next read asks. Stops (blocks, holds) and the epochs it sent stay.
    fn term_began(&self) {}
}

/// The `dns` strategy of one group.
pub struct DnsStrategy {
    group: String,
    /// `dns/rfc2136`, `dns/noip`, ...
    name: String,
    /// The record users resolve, then its aliases.
    names: Vec<String>,
    /// Site → addresses.
    sites: BTreeMap<String, RecordValue>,
    /// Authoritative servers asked to verify (empty: the provider's own view).
    nameservers: Vec<SocketAddr>,
    timeout: Duration,
    provider: Arc<dyn DnsProvider>,
}

impl fmt::Debug for DnsStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsStrategy")
            .field("group", &self.group)
            .field("name", &self.name)
            .field("names", &self.names)
            .field("nameservers", &self.nameservers)
            .finish_non_exhaustive()
    }
}

impl DnsStrategy {
    /// A strategy for `group` that moves `names` between the addresses in
    /// `sites` through `provider`, verified against `nameservers`.
    pub fn new(
        group: &str,
        names: Vec<String>,
        sites: BTreeMap<String, RecordValue>,
        nameservers: Vec<SocketAddr>,
        timeout: Duration,
        provider: Arc<dyn DnsProvider>,
    ) -> DnsStrategy {
        DnsStrategy {
            group: group.to_string(),
            name: format!("dns/{}", provider.kind()),
            names,
            sites,
            nameservers,
            timeout,
            provider,
        }
    }

    /// Build the strategy of `group` from the validated config. `addresses`
    /// keys are sites (scheme `dns`); for `hybrid` use [`DnsStrategy::for_targets`].
    pub fn from_config(cfg: &Config, group: &str) -> Result<Arc<dyn Strategy>, StrategyError> {
        Ok(Arc::new(DnsStrategy::for_targets(cfg, group)?))
    }

    /// [`DnsStrategy::from_config`] as the concrete type; the keys of
    /// `addresses` become the targets `activate` accepts.
    pub fn for_targets(cfg: &Config, group: &str) -> Result<DnsStrategy, StrategyError> {
        let g = cfg.groups.get(group).ok_or_else(|| {
            StrategyError::Config(format!(
                "unknown group {group:?}; defined groups: [{}]",
                cfg.groups.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let dns = g.dns_scheme().ok_or_else(|| {
            StrategyError::Config(format!("group {group} has no [groups.{group}.dns] table"))
        })?;
        let mut sites = BTreeMap::new();
        for (k, v) in &dns.addresses {
            let value = RecordValue::parse(v).map_err(|e| {
                StrategyError::Config(format!("groups.{group}.dns.addresses.{k}: {e}"))
            })?;
            sites.insert(k.clone(), value);
        }
        let names = names_of(dns);
        let provider: Arc<dyn DnsProvider> = match dns.provider {
            DnsProviderKind::Rfc2136 => {
                // A hybrid group's every move between frontends has an epoch
                // of its own (the orchestrator's `frontend_epoch`), so its
                // marker is kept as strictly as a `dns` group's.
                Arc::new(rfc2136::Rfc2136Provider::from_config(group, dns)?)
            }
            DnsProviderKind::Noip | DnsProviderKind::Dyndns2 => {
                Arc::new(dyndns::DyndnsProvider::from_config(group, dns)?)
            }
        };
        let mut nameservers = Vec::new();
        for ns in &dns.nameservers {
            nameservers.push(parse_dns_server(ns).map_err(|e| {
                StrategyError::Config(format!("groups.{group}.dns.nameservers: {e}"))
            })?);
        }
        if nameservers.is_empty() && dns.provider == DnsProviderKind::Rfc2136 {
            if let Some(server) = &dns.server {
                nameservers.push(parse_dns_server(server).map_err(|e| {
                    StrategyError::Config(format!("groups.{group}.dns.server: {e}"))
                })?);
            }
        }
        Ok(DnsStrategy::new(
            group,
            names,
            sites,
            nameservers,
            dns.timeout,
            provider,
        ))
    }

    /// The provider (tests, status).
    pub fn provider(&self) -> &Arc<dyn DnsProvider> {
        &self.provider
    }
}

/// The record users resolve, then its aliases, as absolute names without
/// the trailing dot; each once (host names compare without case: an alias
/// that is the name in other case would be updated twice in one request,
/// the second answered with a needless `nochg`).
pub fn names_of(dns: &DnsScheme) -> Vec<String> {
    let mut names = vec![dns.name.trim().trim_end_matches('.').to_string()];
    for a in &dns.aliases {
        let a = a.trim().trim_end_matches('.').to_string();
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&a)) {
            names.push(a);
        }
    }
    names
}
