//! failover.conf: the types of warden's one configuration file, its parsing
//! and its validation.
//!
//! Layout:
//! - [`model`]: serde structs, one per TOML table;
//! - [`load`]: parse every table on its own, report every problem with
//!   file:line:col, check cross-references;
//! - [`secret`]: read secrets from files or environment variables, never echo them;
//! - [`child`]: the clean environment of child processes and the masking of
//!   secrets in their output.
//!
//! Other crates receive a validated [`Config`]; none of them reads the file.

pub mod child;
pub mod dir_lock;
pub mod durable;
mod error;
pub mod load;
pub mod model;
pub mod run_mark;
pub mod run_sweep;
pub mod secret;

pub use load::{check_deployment, load, parse, Problem};
pub use model::*;
pub use secret::Secret;

pub use error::ConfigError;

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
