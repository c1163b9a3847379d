//! Swift's tempauth v1: `GET {auth_url}` with `X-Auth-User` and
//! `X-Auth-Key` answers the storage URL (`X-Storage-Url`), the token
//! (`X-Auth-Token`) and its remaining life in seconds
//! (`X-Auth-Token-Expires`). Documented in Swift's "Auth Server and
//! Middleware" (TempAuth) page.

use std::time::Duration;

use reqwest::StatusCode;
use tracing::debug;
use warden_config::Secret;

use crate::keystone::read_bounded;
use crate::text::{service_message, transport};
use crate::{OpenStackError, SwiftSession};

/// Logs in as `user` (`account:user`) with `key`.
pub async fn authenticate(
    http: &reqwest::Client,
    auth_url: &str,
    user: &str,
    key: &Secret,
) -> Result<SwiftSession, OpenStackError> {
    let resp = http
        .get(auth_url)
        .header("X-Auth-User", user)
        .header("X-Auth-Key", key.expose())
        .send()
        .await
        .map_err(|e| OpenStackError::Unreachable {
            url: auth_url.to_string(),
            detail: transport(&e),
        })?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(crate::redirected(auth_url, &resp));
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (storage_url, token, expires) = (
        header("x-storage-url"),
        header("x-auth-token"),
        header("x-auth-token-expires"),
    );
    let body = read_bounded(resp, 64 << 10, auth_url)
        .await
        .unwrap_or_default();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(OpenStackError::Refused {
            url: auth_url.to_string(),
            who: user.to_string(),
            status: status.as_u16(),
            message: service_message(&body, key.expose()),
        });
    }
    if !status.is_success() {
        return Err(OpenStackError::Status {
            url: auth_url.to_string(),
            status: status.as_u16(),
            message: service_message(&body, key.expose()),
        });
    }
    match (storage_url, token) {
        (Some(storage_url), Some(token)) if !token.is_empty() => {
            debug!(auth_url, user, "swift tempauth authenticated");
            Ok(SwiftSession {
                storage_url,
                token: Secret::new(token),
                valid_for: expires
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(s).min(crate::MAX_LIFE)),
            })
        }
        _ => Err(OpenStackError::BadAnswer {
            url: auth_url.to_string(),
            detail:
                "no X-Storage-Url or X-Auth-Token in the auth answer (is this a tempauth v1 URL?)"
                    .into(),
        }),
    }
}
