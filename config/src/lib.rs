//! failover.conf: the types of warden's one configuration file, its parsing
//! and its validation.
//!
//! Layout:
//! - [`model`]: serde structs, one per TOML table;
//! - [`load`]: parse every table on its own, report every problem with
//!   file:line:col, check cross-references;
//! - [`secret`]: read secrets from files or environment variables, never echo them.
//!
//! Other crates receive a validated [`Config`]; none of them reads the file.

pub mod load;
pub mod model;
pub mod secret;

use std::path::PathBuf;

pub use load::{load, parse, Problem};
pub use model::*;
pub use secret::Secret;

/// What can go wrong with configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read: fix the path or permissions.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is wrong; every problem is listed.
    #[error("{}", format_problems(.0))]
    Invalid(Vec<Problem>),
    /// A secret could not be loaded from where the config says it is.
    #[error("{key}: {reason}")]
    Secret { key: String, reason: String },
    /// A frontend name passed on the command line is an HAProxy machine, which
    /// warden drives but does not run: run `warden frontend` only for kind "builtin".
    #[error("frontend {name:?} in {path} has kind = \"haproxy\": warden drives that HAProxy through its runtime API and does not run it; `warden frontend` runs only kind \"builtin\" frontends")]
    NotBuiltin { name: String, path: PathBuf },
    /// A name passed on the command line is not in the file.
    #[error("{kind} {name:?} is not defined in {path}; defined: [{known}]")]
    UnknownName {
        kind: &'static str,
        name: String,
        path: PathBuf,
        known: String,
    },
}

fn format_problems(p: &[Problem]) -> String {
    let mut s = format!(
        "{} problem{} in configuration:",
        p.len(),
        if p.len() == 1 { "" } else { "s" }
    );
    for x in p {
        s.push_str("\n  ");
        s.push_str(&x.to_string());
    }
    s
}

impl Config {
    /// The named site, or an error listing the defined ones.
    pub fn site(&self, name: &str) -> Result<&SiteConfig, ConfigError> {
        self.sites
            .get(name)
            .ok_or_else(|| ConfigError::UnknownName {
                kind: "site",
                name: name.to_string(),
                path: self.path.clone(),
                known: self.sites.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// The named `warden frontend` (kind "builtin"), or an error listing the
    /// defined ones (or saying that it is an HAProxy).
    pub fn frontend(&self, name: &str) -> Result<&FrontendConfig, ConfigError> {
        if self.haproxy_frontends.contains_key(name) {
            return Err(ConfigError::NotBuiltin {
                name: name.to_string(),
                path: self.path.clone(),
            });
        }
        self.frontends
            .get(name)
            .ok_or_else(|| ConfigError::UnknownName {
                kind: "frontend",
                name: name.to_string(),
                path: self.path.clone(),
                known: self
                    .frontends
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}
