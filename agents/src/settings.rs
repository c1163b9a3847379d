//! [`AgentSettings`]: everything one agent needs, resolved from the config
//! (its token loaded, its checks, the peers' endpoints it probes with their
//! timeouts capped, its hooks, its orchestrators and the TLS towards them),
//! and refused when [`crate::agent::run`] could not work with it.

use std::sync::Arc;
use std::time::Duration;

use warden_config::{CheckSpec, Config, HookSpec, Secret};

use crate::error::AgentError;
use crate::replication::Replication;

/// Everything one agent needs, resolved from the config (secret loaded).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The site this agent runs for (reported in every report and to hooks).
    pub site: String,
    /// This site's agent bearer token.
    pub token: Secret,
    /// API base URL of every orchestrator (one, or each node of an etcd
    /// deployment), without a trailing slash: reports go to all of them,
    /// commands are taken from whichever leads.
    pub orchestrator_urls: Vec<String>,
    /// Report interval; also the deadline of each round of checks and probes.
    pub interval: Duration,
    /// How long the orchestrator may hold a command poll (`wait_ms`).
    pub long_poll: Duration,
    /// The largest report the orchestrator takes
    /// (`orchestrator.max_body_bytes`): outcomes that would make a report
    /// larger wait for the next ones.
    pub max_report_bytes: usize,
    /// The site's local checks.
    pub checks: Vec<CheckSpec>,
    /// Peer sites with public endpoints to probe (peers without endpoints are left out).
    pub peers: Vec<PeerEndpoints>,
    /// Hooks run in order on a `promote` command.
    pub promote: Vec<HookSpec>,
    /// Hooks run in order on a `demote` command.
    pub demote: Vec<HookSpec>,
    /// This site's replication plans (groups with a `replication` table).
    pub replication: Option<Arc<Replication>>,
    /// Where the authority state (highest epochs, roles) is kept.
    pub state_dir: std::path::PathBuf,
    /// This site's groups and each group's primary site.
    pub groups: Vec<(String, String)>,
    /// This site's directory of each group with an rsync plan (see [`crate::volumes`]).
    pub volumes: Vec<crate::volumes::Dir>,
    /// TLS towards the orchestrator (its CA, this site's client certificate).
    pub tls: Option<rustls::ClientConfig>,
}

/// One peer site's public endpoints, as this agent probes them.
#[derive(Debug, Clone)]
pub struct PeerEndpoints {
    pub site: String,
    /// Endpoint specs whose timeout is already capped by `detection.probe_timeout`.
    pub endpoints: Vec<CheckSpec>,
}

/// Where the agent of `site` keeps its authority state: the site's
/// `state_dir`, else `{orchestrator.data_dir}/agent-SITE` (also for an
/// unknown site, which the config's checks refuse elsewhere).
pub fn state_dir(config: &Config, site: &str) -> std::path::PathBuf {
    config
        .sites
        .get(site)
        .and_then(|sc| sc.state_dir.clone())
        .unwrap_or_else(|| config.orchestrator.data_dir.join(format!("agent-{site}")))
}

/// The TLS client configuration towards an orchestrator that speaks TLS:
/// its CA (`orchestrator.tls.ca`), and this site's certificate
/// (`sites.SITE.client_tls`) for one that verifies its clients.
fn orchestrator_tls(
    config: &Config,
    site: &str,
) -> Result<Option<rustls::ClientConfig>, AgentError> {
    let o = &config.orchestrator;
    if o.tls.is_none() && !o.base_url().starts_with("https://") {
        return Ok(None);
    }
    let ca = o.tls.as_ref().and_then(|t| t.ca.as_deref());
    let identity = config
        .sites
        .get(site)
        .and_then(|s| s.client_tls.as_ref())
        .map(|c| warden_serve::tls::Identity {
            cert: c.cert.clone(),
            key: c.key.clone(),
        });
    warden_serve::tls::client_config(ca, identity.as_ref())
        .map(Some)
        .map_err(|e| AgentError::InvalidSetting {
            key: format!("sites.{site}.client_tls / orchestrator.tls.ca"),
            reason: e.to_string(),
        })
}

impl AgentSettings {
    /// Resolve the settings of `site`'s agent: load its token, pick its checks,
    /// its peers' endpoints (probe timeout = min(`detection.probe_timeout`,
    /// the endpoint's timeout)), its hooks, and the report interval
    /// (`report_interval` or else `detection.interval`).
    pub fn from_config(config: &Config, site: &str) -> Result<Self, AgentError> {
        let sc = config.site(site)?;
        let token = Secret::load_token(&format!("sites.{site}.agent_token"), &sc.agent_token)?;
        let probe_timeout = config.detection.probe_timeout;
        let peers = config
            .peers_of(site)
            .into_iter()
            .filter_map(|peer| {
                let endpoints: Vec<CheckSpec> = config
                    .sites
                    .get(&peer)?
                    .endpoints
                    .iter()
                    .map(|e| with_timeout_at_most(e, probe_timeout))
                    .collect();
                (!endpoints.is_empty()).then_some(PeerEndpoints {
                    site: peer,
                    endpoints,
                })
            })
            .collect::<Vec<_>>();
        // Frontends of this site's hybrid groups are probed like peer sites,
        // so the orchestrator judges a frontend machine from several vantage
        // points (a frontend's name stands where a peer site's would).
        let mut peers = peers;
        let targets = config.probe_targets_of(site);
        for (fe, (spec, _)) in config.hybrid_frontend_probes() {
            if targets.contains(&fe) && !peers.iter().any(|p| p.site == fe) {
                peers.push(PeerEndpoints {
                    site: fe,
                    endpoints: vec![with_timeout_at_most(&spec, probe_timeout)],
                });
            }
        }
        let settings = AgentSettings {
            site: site.to_string(),
            token,
            orchestrator_urls: config.orchestrator.urls(),
            interval: sc.report_interval.unwrap_or(config.detection.interval),
            long_poll: config.orchestrator.long_poll,
            max_report_bytes: config.orchestrator.max_body_bytes,
            checks: sc.checks.clone(),
            peers,
            promote: sc.promote.clone(),
            demote: sc.demote.clone(),
            replication: Replication::from_config(config, site).map(Arc::new),
            state_dir: state_dir(config, site),
            groups: config
                .groups
                .iter()
                .filter(|(_, g)| g.site_names().iter().any(|s| s == site))
                .map(|(name, g)| (name.clone(), g.primary().to_string()))
                .collect(),
            volumes: crate::volumes::directories(config, site),
            tls: orchestrator_tls(config, site)?,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Reject settings [`crate::agent::run`] cannot work with.
    pub(crate) fn validate(&self) -> Result<(), AgentError> {
        if self.interval.is_zero() {
            return Err(AgentError::InvalidSetting {
                key: format!("sites.{}.report_interval", self.site),
                reason: "the report interval must be a positive duration".into(),
            });
        }
        if self.orchestrator_urls.is_empty() {
            return Err(AgentError::InvalidSetting {
                key: "orchestrator.url".into(),
                reason: "no orchestrator URL".into(),
            });
        }
        for u in &self.orchestrator_urls {
            let url = reqwest::Url::parse(u).map_err(|e| AgentError::InvalidSetting {
                key: "orchestrator.url".into(),
                reason: format!("{u:?} is not a URL: {e}"),
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(AgentError::InvalidSetting {
                    key: "orchestrator.url".into(),
                    reason: format!("{u:?} must be an http:// or https:// URL"),
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn with_timeout_at_most(spec: &CheckSpec, max: Duration) -> CheckSpec {
    let mut s = spec.clone();
    s.timeout = s.timeout.min(max);
    s
}

#[cfg(test)]
impl AgentSettings {
    /// Settings of site `site` with one orchestrator at `url`, a 100 ms
    /// interval and nothing else (no checks, peers, hooks or replication).
    pub(crate) fn bare(site: &str, url: &str) -> AgentSettings {
        AgentSettings {
            site: site.into(),
            token: Secret::new("token-123456"),
            orchestrator_urls: vec![url.into()],
            interval: Duration::from_millis(100),
            long_poll: Duration::from_millis(100),
            max_report_bytes: 64 * 1024,
            checks: Vec::new(),
            peers: Vec::new(),
            promote: Vec::new(),
            demote: Vec::new(),
            replication: None,
            state_dir: std::env::temp_dir(),
            groups: Vec::new(),
            volumes: Vec::new(),
            tls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_bad_url_and_zero_interval() {
        let mut s = AgentSettings::bare("ca", "ftp://x");
        assert!(matches!(
            s.validate(),
            Err(AgentError::InvalidSetting { .. })
        ));
        s.orchestrator_urls = vec!["http://127.0.0.1:9".into()];
        assert!(s.validate().is_ok());
        s.interval = Duration::ZERO;
        assert!(matches!(
            s.validate(),
            Err(AgentError::InvalidSetting { .. })
        ));
    }
}
