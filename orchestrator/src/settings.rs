//! [`OrchestratorSettings`]: everything the orchestrator needs, resolved from
//! the config before anything starts (secrets loaded, strategies built,
//! preconditions checked), like the agent's and the frontend's settings.

use std::collections::{BTreeMap, HashMap};

use warden_config::{Config, Scheme, Secret};

use crate::routing::Routing;
use crate::OrchestratorError;

/// The orchestrator's resolved settings.
pub struct OrchestratorSettings {
    /// The validated config (its tables are read through span-free accessors).
    pub config: Config,
    /// The operator's bearer token.
    pub operator: Secret,
    /// Agent token → site; every site has its own token (checked).
    pub agent_tokens: HashMap<String, String>,
    /// Every group's strategy, built (secrets read) before the service starts.
    pub strategies: BTreeMap<String, Routing>,
}

impl std::fmt::Debug for OrchestratorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestratorSettings")
            .field("listen", &self.config.orchestrator.listen)
            .field("groups", &self.strategies.keys().collect::<Vec<_>>())
            .field("sites", &self.agent_tokens.len())
            .finish_non_exhaustive()
    }
}

impl OrchestratorSettings {
    /// Resolve the settings: load the operator and agent tokens (every site
    /// needs its own), build every group's strategy.
    pub fn from_config(config: Config) -> Result<Self, OrchestratorError> {
        let strategies = build_strategies(&config)?;
        Self::with_strategies(config, strategies)
    }

    /// As [`OrchestratorSettings::from_config`] with strategies given (tests).
    pub fn with_strategies(
        config: Config,
        strategies: BTreeMap<String, Routing>,
    ) -> Result<Self, OrchestratorError> {
        let operator = Secret::load(
            "orchestrator.operator_token",
            &config.orchestrator.operator_token,
        )?;
        let mut agent_tokens = HashMap::new();
        for (name, s) in &config.sites {
            let t = Secret::load(&format!("sites.{name}.agent_token"), &s.agent_token)?;
            if let Some(other) = agent_tokens.insert(t.expose().to_string(), name.clone()) {
                return Err(OrchestratorError::Setup(format!(
                    "sites.{name}.agent_token and sites.{other}.agent_token are the same secret; give every site its own"
                )));
            }
        }
        if let Some(g) = config.groups.keys().find(|g| !strategies.contains_key(*g)) {
            return Err(OrchestratorError::Setup(format!(
                "group {g} has no strategy"
            )));
        }
        Ok(OrchestratorSettings {
            config,
            operator,
            agent_tokens,
            strategies,
        })
    }
}

/// Build the strategy of every group. Fails when a group's strategy cannot be built (config, secrets).
pub fn build_strategies(cfg: &Config) -> Result<BTreeMap<String, Routing>, OrchestratorError> {
    let mut out = BTreeMap::new();
    for (name, g) in &cfg.groups {
        let setup = |source| OrchestratorError::Strategy {
            group: name.clone(),
            source,
        };
        let s = match g.scheme() {
            Scheme::Frontend => Routing::Single(
                warden_strategies::frontend::FrontendStrategy::from_config(cfg, name)
                    .map_err(setup)?,
            ),
            Scheme::Dns => Routing::Single(
                warden_strategies::dns::DnsStrategy::from_config(cfg, name).map_err(setup)?,
            ),
            Scheme::Hybrid => Routing::Hybrid(
                warden_strategies::hybrid::HybridStrategy::from_config(cfg, name).map_err(setup)?,
            ),
        };
        out.insert(name.clone(), s);
    }
    Ok(out)
}
