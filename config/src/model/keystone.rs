//! `keystone = { … }`: how warden logs in to a Keystone v3 identity
//! service, for a Swift site of a replication plan and for the `keystone`
//! and `swift` checks. Checked in [`crate::load`].

use serde::Deserialize;

use super::SecretRef;

/// Keystone v3 login: a password scoped to a project (`user`, `password`,
/// `project`, and the domains), or an application credential
/// (`application_credential_id`, `application_credential_secret`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoneConfig {
    /// The identity v3 URL, e.g. `http://10.0.0.5:5000/v3`.
    pub auth_url: String,
    /// The user's name (password login).
    #[serde(default)]
    pub user: Option<String>,
    /// The user's domain name (default `Default`).
    #[serde(default)]
    pub user_domain: Option<String>,
    /// The user's password (password login).
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// The project the token is scoped to (password login).
    #[serde(default)]
    pub project: Option<String>,
    /// The project's domain name (default `Default`).
    #[serde(default)]
    pub project_domain: Option<String>,
    /// An application credential's id.
    #[serde(default)]
    pub application_credential_id: Option<String>,
    /// Its secret.
    #[serde(default)]
    pub application_credential_secret: Option<SecretRef>,
    /// The region whose endpoints are used; needed when the catalog offers
    /// the service in more than one region.
    #[serde(default)]
    pub region: Option<String>,
    /// `public` (default), `internal` or `admin`.
    #[serde(default)]
    pub interface: Option<String>,
}

impl KeystoneConfig {
    /// The domain a name belongs to when none is given.
    pub const DEFAULT_DOMAIN: &'static str = "Default";
    /// The catalog interface used when none is given.
    pub const DEFAULT_INTERFACE: &'static str = "public";

    /// `user_domain`, or `Default`.
    pub fn user_domain(&self) -> &str {
        self.user_domain.as_deref().unwrap_or(Self::DEFAULT_DOMAIN)
    }

    /// `project_domain`, or `Default`.
    pub fn project_domain(&self) -> &str {
        self.project_domain
            .as_deref()
            .unwrap_or(Self::DEFAULT_DOMAIN)
    }

    /// `interface`, or `public`.
    pub fn interface(&self) -> &str {
        self.interface.as_deref().unwrap_or(Self::DEFAULT_INTERFACE)
    }
}
