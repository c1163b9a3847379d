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
    /// Operator tokens by name (`operator` for `operator_token`).
    pub operators: Vec<(String, Secret)>,
    /// The read-only token, if configured.
    pub reader: Option<Secret>,
    /// SHA-256 of an agent token → site; every site has its own token (checked).
    pub agent_tokens: HashMap<TokenDigest, String>,
    /// Every group's strategy, built (secrets read) before the service starts.
    pub strategies: BTreeMap<String, Routing>,
    /// This orchestrator's node name (`--node`) in an etcd deployment.
    pub node: Option<String>,
    /// Each `[[orchestrator.notify]]` entry's webhook secret, in order.
    pub notify_secrets: Vec<Option<Secret>>,
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
        let o = &config.orchestrator;
        let mut operators = vec![(
            "operator".to_string(),
            Secret::load_token("orchestrator.operator_token", &o.operator_token)?,
        )];
        for (i, t) in o.operators.iter().enumerate() {
            let key = format!("orchestrator.operators[{i}].token");
            operators.push((t.name.clone(), Secret::load_token(&key, &t.token)?));
        }
        let reader = match &o.read_token {
            Some(r) => Some(Secret::load_token("orchestrator.read_token", r)?),
            None => None,
        };
        // Every token names one role and one holder.
        let mut roles: HashMap<TokenDigest, String> = HashMap::new();
        let mut distinct =
            |digest: TokenDigest, who: String| match roles.insert(digest, who.clone()) {
                Some(other) => Err(OrchestratorError::Setup(format!(
                    "{who} and {other} are the same secret; give each its own"
                ))),
                None => Ok(()),
            };
        for (name, t) in &operators {
            distinct(digest(t.expose()), format!("operator token {name:?}"))?;
        }
        if let Some(r) = &reader {
            distinct(digest(r.expose()), "orchestrator.read_token".into())?;
        }
        let mut agent_tokens = HashMap::new();
        for (name, s) in &config.sites {
            let t = Secret::load_token(&format!("sites.{name}.agent_token"), &s.agent_token)?;
            distinct(digest(t.expose()), format!("sites.{name}.agent_token"))?;
            agent_tokens.insert(digest(t.expose()), name.clone());
        }
        // A frontend's token drives its routes: held by an operator or a
        // site's agent, it would let that holder move users past every
        // fence the orchestrator keeps. (Frontends may share one.)
        for (name, fe) in &config.frontends {
            let key = format!("frontends.{name}.token");
            let t = Secret::load_token(&key, &fe.token)?;
            let d = digest(t.expose());
            if let Some(other) = roles.get(&d) {
                return Err(OrchestratorError::Setup(format!(
                    "{key} and {other} are the same secret; give each its own"
                )));
            }
        }
        let mut notify_secrets = Vec::new();
        for (i, n) in config.orchestrator.notify.iter().enumerate() {
            notify_secrets.push(match &n.secret {
                Some(r) => Some(Secret::load(
                    &format!("orchestrator.notify[{i}].secret"),
                    r,
                )?),
                None => None,
            });
        }
        if let Some(g) = config.groups.keys().find(|g| !strategies.contains_key(*g)) {
            return Err(OrchestratorError::Setup(format!(
                "group {g} has no strategy"
            )));
        }
        Ok(OrchestratorSettings {
            config,
            operators,
            reader,
            agent_tokens,
            strategies,
            node: None,
            notify_secrets,
        })
    }

    /// The directory the marks of the commands this process runs (fence,
    /// notify) are bound to (`warden_config::run_mark`), which its next
    /// process sweeps at start (`service::leftovers`): `data_dir` on a
    /// local store (one process per directory: its lock); with etcd,
    /// where the nodes of one host may share a `data_dir`, its node's
    /// `DATA_DIR/node-NAME` (made at start, when the node takes its lock
    /// there: `crate::node_lock`).
    pub fn run_dir(&self) -> std::path::PathBuf {
        let o = &self.config.orchestrator;
        match o.store {
            warden_config::StoreKind::Local => o.data_dir.clone(),
            warden_config::StoreKind::Etcd => o.data_dir.join(format!(
                "node-{}",
                self.node.as_deref().unwrap_or("orchestrator")
            )),
        }
    }

    /// Run as node `name` of `[[orchestrator.nodes]]`: its `listen` and `url`.
    pub fn as_node(mut self, name: &str) -> Result<Self, OrchestratorError> {
        let Some(mine) = self.config.orchestrator.for_node(name) else {
            return Err(unknown_node(&self.config, name));
        };
        self.config.orchestrator = mine;
        self.node = Some(name.to_string());
        Ok(self)
    }
}

/// `Ok` if `--node name` names one of the config's `[[orchestrator.nodes]]`:
/// asked before any secret is loaded, so a mistyped node name is said first
/// (not after the operator has fixed every secret file of the config).
pub fn node_known(config: &Config, name: &str) -> Result<(), OrchestratorError> {
    match config.orchestrator.nodes.iter().any(|n| n.name == name) {
        true => Ok(()),
        false => Err(unknown_node(config, name)),
    }
}

fn unknown_node(config: &Config, name: &str) -> OrchestratorError {
    let known: Vec<&str> = config
        .orchestrator
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    OrchestratorError::Setup(if known.is_empty() {
        format!("--node {name}: the config has no [[orchestrator.nodes]]")
    } else {
        format!(
            "--node {name}: no such node in [[orchestrator.nodes]] (known: {})",
            known.join(", ")
        )
    })
}

/// SHA-256 of a bearer token: agent tokens are looked up by it, so the
/// lookup's timing depends on the digest, never on how much of a real
/// token a guess matched (there are too many agents to compare each).
pub type TokenDigest = [u8; 32];

/// The [`TokenDigest`] of `token`.
pub fn digest(token: &str) -> TokenDigest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
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
