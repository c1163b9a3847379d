//! Keystone v3 tokens (`POST {auth_url}/auth/tokens`) and their catalog.
//!
//! Two ways to log in, as OpenStack's clients offer them:
//! - a password, scoped to a project (user and project named with their
//!   domains, `Default` unless said);
//! - an application credential (its id and secret), which carries its own
//!   project: the way OpenStack recommends for a service like warden, as
//!   it can be limited and revoked without touching the user's password.
//!
//! The answer (201) carries the token in `X-Subject-Token`, and in its
//! body `expires_at`, `issued_at` and the catalog: one entry per service
//! type, each with endpoints per region and interface (`public`,
//! `internal`, `admin`). Documented in the Identity API v3 reference,
//! "Password authentication with scoped authorization" and "Authenticating
//! with an Application Credential".

use std::time::Duration;

use serde_json::json;
use warden_config::{ConfigError, KeystoneConfig, Secret, SecretRef};

use crate::text::listed;
use crate::OpenStackError;

mod issue;

pub use issue::issue_token;
pub(crate) use issue::{check_account, read_bounded};

/// How to log in to Keystone.
#[derive(Clone)]
pub enum Credentials {
    /// A user's password, with a project scope.
    Password {
        user: String,
        /// The user's domain name (`Default`).
        user_domain: String,
        password: Secret,
        project: String,
        /// The project's domain name (`Default`).
        project_domain: String,
    },
    /// An application credential (scoped to its own project).
    ApplicationCredential { id: String, secret: Secret },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.who())
    }
}

impl Credentials {
    /// Who logs in, for messages: never the secret.
    pub fn who(&self) -> String {
        match self {
            Credentials::Password {
                user,
                user_domain,
                project,
                project_domain,
                ..
            } => format!(
                "user {user} (domain {user_domain}) in project {project} (domain {project_domain})"
            ),
            Credentials::ApplicationCredential { id, .. } => {
                format!("application credential {id}")
            }
        }
    }

    /// The password or application-credential secret.
    fn secret(&self) -> &Secret {
        match self {
            Credentials::Password { password, .. } => password,
            Credentials::ApplicationCredential { secret, .. } => secret,
        }
    }

    /// The same login with another password or secret.
    fn with_secret(&self, new: Secret) -> Credentials {
        let mut c = self.clone();
        match &mut c {
            Credentials::Password { password, .. } => *password = new,
            Credentials::ApplicationCredential { secret, .. } => *secret = new,
        }
        c
    }

    /// The JSON body of the token request.
    fn body(&self) -> serde_json::Value {
        match self {
            Credentials::Password {
                user,
                user_domain,
                password,
                project,
                project_domain,
            } => json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": user, "domain": {"name": user_domain}, "password": password.expose()}}},
                "scope": {"project": {"name": project, "domain": {"name": project_domain}}}}}),
            Credentials::ApplicationCredential { id, secret } => json!({"auth": {
                "identity": {"methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret.expose()}}}}),
        }
    }
}

/// Where and how to log in, and which endpoints to pick.
#[derive(Debug, Clone)]
pub struct KeystoneSettings {
    /// The identity v3 URL, e.g. `http://10.0.0.5:5000/v3`.
    pub auth_url: String,
    pub credentials: Credentials,
    /// The region whose endpoints are used; `None`: the catalog must offer
    /// the service in one region only.
    pub region: Option<String>,
    /// `public` (the default), `internal` or `admin`.
    pub interface: String,
    /// Where the password or secret comes from (its config key and
    /// reference): read again at every login, so a rotated secret is taken
    /// at the next one without a restart. `None`: the one in `credentials`.
    pub secret_from: Option<(String, SecretRef)>,
}

impl KeystoneSettings {
    /// The settings a `keystone = { … }` table at `key` gives, its secret
    /// loaded now. The table was checked at load; what is still missing is
    /// said as a [`ConfigError::Secret`]-like error naming the key.
    pub fn from_config(key: &str, c: &KeystoneConfig) -> Result<Self, ConfigError> {
        let missing = |name: &str| ConfigError::Secret {
            key: format!("{key}.{name}"),
            reason: "missing".into(),
        };
        let (credentials, secret_from) = match (
            &c.application_credential_id,
            &c.application_credential_secret,
        ) {
            (Some(id), Some(secret)) => {
                let k = format!("{key}.application_credential_secret");
                (
                    Credentials::ApplicationCredential {
                        id: id.clone(),
                        secret: Secret::load(&k, secret)?,
                    },
                    (k, secret.clone()),
                )
            }
            _ => {
                let k = format!("{key}.password");
                let r = c.password.as_ref().ok_or_else(|| missing("password"))?;
                (
                    Credentials::Password {
                        user: c.user.clone().ok_or_else(|| missing("user"))?,
                        user_domain: c.user_domain().to_string(),
                        password: Secret::load(&k, r)?,
                        project: c.project.clone().ok_or_else(|| missing("project"))?,
                        project_domain: c.project_domain().to_string(),
                    },
                    (k, r.clone()),
                )
            }
        };
        Ok(KeystoneSettings {
            auth_url: c.auth_url.clone(),
            credentials,
            region: c.region.clone(),
            interface: c.interface().to_string(),
            secret_from: Some(secret_from),
        })
    }
}

/// An issued token.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: Secret,
    /// `expires_at - issued_at` (the server's clock on both sides).
    pub valid_for: Option<Duration>,
    /// The project the token is scoped to.
    pub project_id: Option<String>,
    pub catalog: Catalog,
}

/// One endpoint of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub service_type: String,
    /// The region's id (`region_id`; `region` in older catalogs).
    pub region: String,
    /// The region as `region` names it when it differs from the id.
    pub region_name: Option<String>,
    pub interface: String,
    pub url: String,
}

/// The token's service catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog(pub Vec<Endpoint>);

impl Catalog {
    /// The URL of `service_type`'s endpoint in `region` (any, if the
    /// service is in one region only) for `interface`. `auth_url` names
    /// the catalog's source in the error.
    pub fn endpoint(
        &self,
        auth_url: &str,
        service_type: &str,
        region: Option<&str>,
        interface: &str,
    ) -> Result<String, OpenStackError> {
        let of_service: Vec<&Endpoint> = self
            .0
            .iter()
            .filter(|e| e.service_type == service_type)
            .collect();
        let missing = |wanted: String| OpenStackError::NoEndpoint {
            url: auth_url.to_string(),
            service: service_type.to_string(),
            wanted,
            found: if of_service.is_empty() {
                "none for it".to_string()
            } else {
                listed(
                    of_service
                        .iter()
                        .map(|e| format!("{}/{}", e.region, e.interface)),
                )
            },
        };
        let region = match region {
            Some(r) => r.to_string(),
            None => {
                let mut regions: Vec<&str> = of_service.iter().map(|e| e.region.as_str()).collect();
                regions.sort_unstable();
                regions.dedup();
                match regions.as_slice() {
                    [one] => one.to_string(),
                    [] => return Err(missing(format!("for interface {interface}"))),
                    _ => {
                        return Err(missing(format!(
                            "without a region (it is offered in regions {}: set region)",
                            listed(regions.iter().map(|r| r.to_string()))
                        )))
                    }
                }
            }
        };
        of_service
            .iter()
            .find(|e| {
                (e.region == region || e.region_name.as_deref() == Some(region.as_str()))
                    && e.interface == interface
            })
            .map(|e| e.url.clone())
            .ok_or_else(|| missing(format!("in region {region} for interface {interface}")))
    }
}
