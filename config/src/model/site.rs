//! `[sites.NAME]`: a site's token, checks, endpoints, identity, and its
//! promote and demote hooks.

use super::*;

/// `[sites.NAME]`: one location that can serve the group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Bearer token this site's agent reports with.
    pub agent_token: SecretRef,
    /// How often the agent reports (default: `detection.interval`).
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    pub report_interval: Option<Duration>,
    /// Local checks run by the site's agent.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Public endpoints probed from outside (orchestrator and peer agents).
    #[serde(default)]
    pub endpoints: Vec<CheckSpec>,
    /// How this site answers a user request through the group's public
    /// entry, so a runbook's verify step can tell which site users reach.
    #[serde(default)]
    pub identity: Option<Identity>,
    /// Hooks run in order when the site is promoted.
    #[serde(default)]
    pub promote: Vec<HookSpec>,
    /// Hooks run in order when the site is demoted (fenced).
    #[serde(default)]
    pub demote: Vec<HookSpec>,
    /// Where this site's agent keeps, per group, the highest epoch it has seen
    /// and its last role (survives restarts). Default:
    /// `{orchestrator.data_dir}/agent-NAME` on the agent's host.
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
    /// The certificate this site's agent presents to an orchestrator that
    /// verifies its clients; it must name the site (subjectAltName DNS).
    #[serde(default)]
    pub client_tls: Option<ClientTls>,
    /// Environment variables (besides PATH, HOME, LANG and the like) passed
    /// to this site's hooks, checks and replication processes; a variable
    /// that holds a secret is never passed.
    #[serde(default, deserialize_with = "var_names")]
    pub pass_env: Vec<String>,
}

/// `[sites.NAME.identity]`: what a plain HTTP GET of `path` through the
/// public entry answers when this site serves it — a response header with a
/// value (`header` + `value`) or a body substring (`body_contains`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The path requested (default `/`).
    #[serde(default = "default_identity_path")]
    pub path: String,
    /// A response header that names the serving site, e.g. `X-Served-By`.
    #[serde(default)]
    pub header: Option<String>,
    /// The value of `header` when this site serves.
    #[serde(default)]
    pub value: Option<String>,
    /// A substring of the body when this site serves.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Time allowed for one request (default 2 s).
    #[serde(
        default = "default_identity_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
}

impl Identity {
    /// Whether an answer with these headers and body is this site's.
    pub fn matches<'h>(
        &self,
        mut headers: impl Iterator<Item = (&'h str, &'h [u8])>,
        body: &str,
    ) -> bool {
        if let (Some(h), Some(v)) = (&self.header, &self.value) {
            return headers.any(|(k, got)| k.eq_ignore_ascii_case(h) && got == v.as_bytes());
        }
        self.body_contains
            .as_deref()
            .is_some_and(|needle| body.contains(needle))
    }
}

fn default_identity_path() -> String {
    "/".into()
}
fn default_identity_timeout() -> Duration {
    Duration::from_secs(2)
}

/// A promote or demote hook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    pub name: String,
    /// argv; run without a shell.
    pub command: Spanned<Vec<String>>,
    #[serde(
        default = "default_hook_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
}

impl HookSpec {
    /// The hook's argv (program first).
    pub fn argv(&self) -> &[String] {
        self.command.get_ref()
    }
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(30)
}
