//! [`ConfigError`]: what can go wrong loading failover.conf and its secrets.

use std::path::PathBuf;

use crate::Problem;

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
