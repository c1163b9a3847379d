//! `[frontends.NAME]`: the entry as written ([`FrontendEntry`]) and what
//! it becomes, a built-in frontend or an HAProxy with its runtime address.

use super::*;

/// `[frontends.NAME]` as written: one frontend machine of either kind. The
/// keys allowed depend on `kind`; [`crate::load`] checks them and turns each
/// entry into a [`FrontendConfig`] or a [`HaproxyFrontendConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendEntry {
    /// What runs on the machine (default `builtin`); a group's driver must match it.
    #[serde(default)]
    pub kind: Option<Spanned<FrontendDriverKind>>,
    /// `builtin`: address of its control API.
    #[serde(default)]
    pub control: Option<SocketAddr>,
    /// `builtin`: bearer token shared by the orchestrator and this frontend.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// `haproxy`: where its runtime API listens, a UNIX socket path or IP:PORT.
    #[serde(default)]
    pub runtime: Option<Spanned<String>>,
    /// `builtin`: TLS of its control API.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `builtin`: where it keeps, per group, the highest epoch it has
    /// accepted (survives restarts). Default:
    /// `{orchestrator.data_dir}/frontend-NAME` on the frontend's host.
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
}

/// `[frontends.NAME]` with kind `builtin`: one `warden frontend` machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendConfig {
    /// Address of its control API.
    pub control: SocketAddr,
    /// Bearer token shared by the orchestrator and this frontend.
    pub token: SecretRef,
    /// TLS of its control API (the orchestrator then speaks https to it).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Where it keeps its fence (see [`FrontendEntry::state_dir`]).
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
}

/// `[frontends.NAME]` with kind `haproxy`: one HAProxy process, driven
/// through its runtime API (`stats socket ... level admin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyFrontendConfig {
    /// Where the runtime API listens.
    pub runtime: RuntimeAddr,
}

/// Address of an HAProxy runtime API: a UNIX socket or a TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeAddr {
    /// `stats socket /run/haproxy/admin.sock level admin`.
    Unix(PathBuf),
    /// `stats socket ipv4@127.0.0.1:9999 level admin`.
    Tcp(SocketAddr),
}

impl RuntimeAddr {
    /// An absolute path is a UNIX socket, an `IP:PORT` a TCP address.
    pub fn parse(s: &str) -> Result<RuntimeAddr, String> {
        if s.starts_with('/') {
            if s.len() < 2 || s.ends_with('/') || s.contains('\0') {
                return Err("not a socket path; expected the path of the runtime API's UNIX socket, e.g. \"/run/haproxy/admin.sock\"".into());
            }
            return Ok(RuntimeAddr::Unix(PathBuf::from(s)));
        }
        s.parse::<SocketAddr>().map(RuntimeAddr::Tcp).map_err(|_| {
            "expected the absolute path of a UNIX socket (\"/run/haproxy/admin.sock\") or an IP:PORT address (\"127.0.0.1:9999\"); host names are not allowed here".to_string()
        })
    }
}

impl std::fmt::Display for RuntimeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            RuntimeAddr::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}
