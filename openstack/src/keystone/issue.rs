//! Issuing a token: the request, the answer's scope, catalog and lifetime
//! read from Keystone's body, and the bounded read of any answer.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde::Deserialize;
use tracing::debug;
use warden_config::Secret;

use super::{Catalog, Credentials, Endpoint, KeystoneSettings, Token};
use crate::text::{masked, one_line, service_message, transport};
use crate::OpenStackError;

/// The largest token answer read (a catalog of a large cloud is tens of KiB).
const MAX_ANSWER_BYTES: usize = 4 << 20;

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
