//! The failover.conf data model: one serde struct per TOML table.
//!
//! These types are what the file says, deserialised with `deny_unknown_fields`
//! and typed durations. Cross-references (a group naming a site, a frontend
//! naming a backend) are checked in [`crate::load`], which is the only way to
//! obtain a [`Config`], so code that holds one may rely on them.
//!
//! This module owns the whole file ([`Config`]) and what is derived from
//! several tables at once (a site's peers, the hybrid frontends' probes);
//! each table's types live in a submodule of their own, re-exported here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod checks;
mod credentials;
mod detection;
pub mod duration;
mod frontend;
mod group;
mod keystone;
mod notify;
mod orchestrator;
mod replication;
mod site;

pub use checks::*;
pub use credentials::*;
pub use detection::*;
pub use frontend::*;
pub use group::*;
pub use keystone::*;
pub use notify::*;
pub use orchestrator::*;
pub use replication::*;
pub use site::*;

/// The whole file, validated. Built only by [`crate::load`] / [`crate::parse`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Path the config was read from (for messages).
    pub path: PathBuf,
    pub orchestrator: OrchestratorConfig,
    pub detection: Detection,
    /// Sites by name, in name order.
    pub sites: BTreeMap<String, SiteConfig>,
    /// `warden frontend` machines (`[frontends.NAME]` with kind "builtin") by name.
    pub frontends: BTreeMap<String, FrontendConfig>,
    /// HAProxy machines (`[frontends.NAME]` with kind "haproxy") by name.
    /// A name is in exactly one of `frontends` and `haproxy_frontends`.
    pub haproxy_frontends: BTreeMap<String, HaproxyFrontendConfig>,
    /// Protected services by name.
    pub groups: BTreeMap<String, GroupConfig>,
    /// Every environment variable a secret reference of the file names
    /// (`{ env = "VAR" }`), whichever role loads it: never passed to a
    /// child process, even when a `pass_env` lists it
    /// ([`crate::child::configure`]) — a process knows only the secrets it
    /// loads itself, and an agent's hooks must not get the operator's token.
    pub secret_vars: BTreeSet<String>,
}

impl Config {
    /// The groups a site takes part in.
    pub fn groups_of_site<'a>(
        &'a self,
        site: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a GroupConfig)> + 'a {
        self.groups
            .iter()
            .filter(move |(_, g)| g.sites.get_ref().iter().any(|s| s.get_ref() == site))
    }

    /// The address of frontend `name`'s host as the config knows it: a
    /// built-in frontend's control address, an HAProxy's runtime API over
    /// TCP (`None` for a UNIX socket).
    pub fn frontend_host_ip(&self, name: &str) -> Option<std::net::IpAddr> {
        if let Some(f) = self.frontends.get(name) {
            return Some(f.control.ip());
        }
        match &self.haproxy_frontends.get(name)?.runtime {
            RuntimeAddr::Tcp(a) => Some(a.ip()),
            RuntimeAddr::Unix(_) => None,
        }
    }

    /// The frontends of `hybrid` groups and the TCP check that tells whether
    /// each one's machine serves users: a connect to its public address (its
    /// `groups.G.dns.addresses` entry) on the group's `listen` port, or — the
    /// address missing — a built-in frontend's control API, an HAProxy's
    /// runtime API host on the listen port. The
    /// orchestrator and every agent of the group run the same check, so a
    /// frontend is judged from several vantage points like a site (DESIGN §3).
    /// `groups` lists the hybrid groups each frontend serves.
    pub fn hybrid_frontend_probes(&self) -> BTreeMap<String, (CheckSpec, Vec<String>)> {
        let mut out: BTreeMap<String, (CheckSpec, Vec<String>)> = BTreeMap::new();
        for (gname, g) in &self.groups {
            if *g.scheme.get_ref() != Scheme::Hybrid {
                continue;
            }
            let (Some(fs), Some(dns)) = (&g.frontend, &g.dns) else {
                continue;
            };
            let (fs, dns) = (fs.get_ref(), dns.get_ref());
            let port = fs.listen.map(|l| l.port()).filter(|p| *p != 0);
            for fe in &fs.frontends {
                let fe = fe.get_ref();
                let public = dns
                    .addresses
                    .get(fe)
                    .and_then(|a| parse_record_addresses(a).ok())
                    .and_then(|(v4, v6)| {
                        v4.map(std::net::IpAddr::V4)
                            .or(v6.map(std::net::IpAddr::V6))
                    });
                let addr = match (public, port) {
                    (Some(ip), Some(port)) => SocketAddr::new(ip, port),
                    _ => match (self.frontends.get(fe), self.frontend_host_ip(fe), port) {
                        (Some(f), _, _) => f.control,
                        // An HAProxy: its users' port on its runtime API's host.
                        (None, Some(ip), Some(port)) => SocketAddr::new(ip, port),
                        _ => continue,
                    },
                };
                let entry = out.entry(fe.clone()).or_insert_with(|| {
                    let spec = CheckSpec {
                        name: format!("frontend {fe}"),
                        kind: Spanned::new(0..0, CheckKind::Tcp),
                        url: None,
                        expect_status: None,
                        body_contains: None,
                        address: Some(Spanned::new(0..0, addr.to_string())),
                        command: None,
                        keystone: None,
                        container: None,
                        server: None,
                        query: None,
                        record_type: None,
                        expect: None,
                        timeout: self.detection.probe_timeout,
                        critical: true,
                        interval: None,
                    };
                    (spec, Vec::new())
                });
                entry.1.push(gname.clone());
            }
        }
        out
    }

    /// What `site`'s agent probes and may report about: its peers (see
    /// [`Config::peers_of`]) and the frontends of the hybrid groups it
    /// belongs to. A report's probe of anything else is not this agent's
    /// view to give.
    pub fn probe_targets_of(&self, site: &str) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.peers_of(site).into_iter().collect();
        for (fe, (_, groups)) in self.hybrid_frontend_probes() {
            let serves_site = groups.iter().any(|g| {
                self.groups
                    .get(g)
                    .is_some_and(|g| g.site_names().iter().any(|s| s == site))
            });
            if serves_site {
                out.insert(fe);
            }
        }
        out
    }

    /// Sites that share at least one group with `site` (its peers), excluding itself.
    pub fn peers_of(&self, site: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .groups_of_site(site)
            .flat_map(|(_, g)| g.site_names())
            .filter(|s| s != site)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A list of environment variable names (`[A-Za-z_][A-Za-z0-9_]*`).
fn var_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if let Some(bad) = names.iter().find(|n| !crate::child::valid_var_name(n)) {
        let hint = if bad.contains('=') {
            ": pass_env lists the names of variables passed on from warden's own environment, not \
             NAME=VALUE"
        } else {
            ""
        };
        return Err(serde::de::Error::custom(format!(
            "{bad:?} is not an environment variable name (letters, digits and _, not starting with a digit){hint}"
        )));
    }
    Ok(names)
}

pub(super) fn default_true() -> bool {
    true
}
