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

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tracing::debug;
use warden_config::{ConfigError, KeystoneConfig, Secret, SecretRef};

use crate::text::{listed, masked, one_line, service_message, transport};
use crate::OpenStackError;

/// The largest token answer read (a catalog of a large cloud is tens of KiB).
const MAX_ANSWER_BYTES: usize = 4 << 20;

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

#[derive(Deserialize)]
struct Answer {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    expires_at: Option<String>,
    issued_at: Option<String>,
    project: Option<Project>,
    #[serde(default)]
    catalog: Vec<Service>,
}

#[derive(Deserialize)]
struct Project {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    domain: Option<Domain>,
}

#[derive(Deserialize)]
struct Domain {
    #[serde(default)]
    name: Option<String>,
}

/// Names as Keystone compares them: a MySQL-backed Keystone finds a
/// project whatever the case of its name, and answers the name as stored.
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// Refuses a token that is not scoped to the project a password login
/// asked for (`project` in `project_domain`): one scoped to no project, or
/// to another. Its catalog's endpoints name the token's project's
/// accounts, so warden would list, copy and delete in another project's
/// account (a replica kept up to date where no failover looks, while the
/// lag says all is copied). An application credential names no project
/// here: its own is what it is.
fn check_scope(
    url: &str,
    credentials: &Credentials,
    got: Option<&Project>,
) -> Result<(), OpenStackError> {
    let Credentials::Password {
        project,
        project_domain,
        ..
    } = credentials
    else {
        return Ok(());
    };
    let wrong = |detail: String| OpenStackError::WrongProject {
        url: url.to_string(),
        detail: one_line(&detail, 300),
    };
    let Some(p) = got else {
        return Err(wrong(format!(
            "it is scoped to no project (asked for project {project} in domain {project_domain})"
        )));
    };
    let name_ok = p.name.as_deref().is_some_and(|n| same_name(n, project));
    let domain = p.domain.as_ref().and_then(|d| d.name.as_deref());
    let domain_ok = domain.is_none_or(|d| same_name(d, project_domain));
    if name_ok && domain_ok {
        return Ok(());
    }
    Err(wrong(format!(
        "it is scoped to project {} (id {}) in domain {}, not to project {project} in domain \
         {project_domain} as asked",
        p.name.as_deref().unwrap_or("(no name)"),
        p.id,
        domain.unwrap_or("(not said)")
    )))
}

/// Refuses a storage URL whose account is a Swift keystoneauth account
/// (`AUTH_…`, the default reseller prefix) of another project than the
/// token's (`project_id`): a catalog endpoint written for one project
/// (not templated with `%(project_id)s`) hands every login that account.
/// An endpoint without such an account (a gateway's `/swift/v1`) passes.
pub(crate) fn check_account(
    auth_url: &str,
    storage_url: &str,
    project_id: &str,
) -> Result<(), OpenStackError> {
    let path = storage_url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let account = path.rsplit('/').next().unwrap_or_default();
    match account.strip_prefix("AUTH_") {
        Some(id) if id != project_id => Err(OpenStackError::WrongProject {
            url: auth_url.to_string(),
            detail: one_line(
                &format!(
                    "the catalog's object-store endpoint names account {account}, the token \
                     is for project id {project_id} (its account: AUTH_{project_id})"
                ),
                300,
            ),
        }),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct Service {
    #[serde(rename = "type")]
    service_type: String,
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
}

#[derive(Deserialize)]
struct RawEndpoint {
    /// `region_id` in v3; `region` (its name) in older deployments.
    region_id: Option<String>,
    region: Option<String>,
    interface: String,
    url: String,
}

/// Issues a token with `settings`' credentials.
pub async fn issue_token(
    http: &reqwest::Client,
    settings: &KeystoneSettings,
) -> Result<Token, OpenStackError> {
    let url = format!("{}/auth/tokens", settings.auth_url.trim_end_matches('/'));
    let unreachable = |e: reqwest::Error| OpenStackError::Unreachable {
        url: url.clone(),
        detail: transport(&e),
    };
    // the secret as it is now (a rotated one is taken at once)
    let credentials = match &settings.secret_from {
        Some((key, r)) => settings
            .credentials
            .with_secret(Secret::load(key, r).map_err(|e| OpenStackError::Secret {
                detail: e.to_string(),
            })?),
        None => settings.credentials.clone(),
    };
    let resp = http
        .post(&url)
        .json(&credentials.body())
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(crate::redirected(&url, &resp));
    }
    let token = resp
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_bounded(resp, MAX_ANSWER_BYTES, &url).await?;
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(OpenStackError::Refused {
            url,
            who: settings.credentials.who(),
            status: status.as_u16(),
            message: service_message(&body, credentials.secret().expose()),
        });
    }
    if !status.is_success() {
        return Err(OpenStackError::Status {
            url,
            status: status.as_u16(),
            message: service_message(&body, credentials.secret().expose()),
        });
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(OpenStackError::BadAnswer {
            url,
            detail: format!(
                "HTTP {} without an X-Subject-Token header (is {} a Keystone v3 URL?)",
                status.as_u16(),
                settings.auth_url
            ),
        });
    };
    // serde's words may quote a value of the answer
    let answer: Answer = serde_json::from_slice(&body).map_err(|e| OpenStackError::BadAnswer {
        url: url.clone(),
        detail: one_line(
            &masked(
                &format!("not a v3 token answer: {e}"),
                credentials.secret().expose(),
            ),
            300,
        ),
    })?;
    let t = answer.token;
    check_scope(&url, &credentials, t.project.as_ref())?;
    let valid_for = match (t.issued_at.as_deref(), t.expires_at.as_deref()) {
        (Some(i), Some(e)) => lifetime(i, e),
        _ => None,
    };
    let catalog = Catalog(
        t.catalog
            .into_iter()
            .flat_map(|s| {
                let service_type = s.service_type;
                s.endpoints
                    .into_iter()
                    .map(move |e| endpoint(&service_type, e))
            })
            .collect(),
    );
    debug!(url = %url, who = %settings.credentials.who(), valid_for = ?valid_for, "keystone token issued");
    Ok(Token {
        value: Secret::new(token),
        valid_for,
        project_id: t.project.map(|p| p.id),
        catalog,
    })
}

fn endpoint(service_type: &str, e: RawEndpoint) -> Endpoint {
    let name = e.region.filter(|r| e.region_id.as_ref() != Some(r));
    let (region, region_name) = match e.region_id {
        Some(id) => (id, name),
        None => (name.unwrap_or_default(), None),
    };
    Endpoint {
        service_type: service_type.to_string(),
        region,
        region_name,
        interface: e.interface,
        url: e.url,
    }
}

/// `expires - issued`, both RFC 3339 (`2026-11-30T17:03:29.000000Z`).
fn lifetime(issued: &str, expires: &str) -> Option<Duration> {
    let parse = |s: &str| humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok();
    let (i, e): (SystemTime, SystemTime) = (parse(issued)?, parse(expires)?);
    e.duration_since(i)
        .ok()
        .filter(|d| !d.is_zero())
        .map(|d| d.min(crate::MAX_LIFE))
}

/// The body, at most `max` bytes (an answer larger than that is refused).
pub(crate) async fn read_bounded(
    mut resp: reqwest::Response,
    max: usize,
    url: &str,
) -> Result<Vec<u8>, OpenStackError> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > max {
                    return Err(OpenStackError::BadAnswer {
                        url: url.to_string(),
                        detail: format!("the answer is larger than {max} bytes"),
                    });
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(OpenStackError::Unreachable {
                    url: url.to_string(),
                    detail: transport(&e),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
