//! Authentication to OpenStack services, for warden's Swift plans and its
//! OpenStack-aware checks.
//!
//! - [`keystone`]: a Keystone v3 token (`POST /v3/auth/tokens`) with a
//!   password scoped to a project or with an application credential, and
//!   the endpoint a service has in the token's catalog (region, interface).
//! - [`tempauth`]: Swift's tempauth v1 (`GET auth/v1.0` with
//!   `X-Auth-User`/`X-Auth-Key`).
//! - [`SwiftAuth`]: either of the two, giving a [`SwiftSession`] (storage
//!   URL, token, how long the token is valid).
//!
//! Passwords, keys, application-credential secrets and tokens are
//! [`Secret`]s: they go into a request body or header and nowhere else —
//! never into an error, a log line or `Debug`, not even where an error
//! answer quotes the request (written `****` there).

mod error;
pub mod keystone;
pub mod tempauth;
mod text;

use std::time::Duration;

pub use error::OpenStackError;
pub use keystone::{Catalog, Credentials, Endpoint, KeystoneSettings, Token};
use warden_config::Secret;

/// How a Swift client logs in.
#[derive(Debug, Clone)]
pub enum SwiftAuth {
    /// Swift's tempauth v1.
    Tempauth {
        /// e.g. `http://10.0.0.2:8080/auth/v1.0`.
        auth_url: String,
        /// `account:user`.
        user: String,
        key: Secret,
    },
    /// A Keystone v3 token; the storage URL is the catalog's `object-store`
    /// endpoint for the settings' region and interface.
    Keystone(KeystoneSettings),
}

/// A logged-in Swift session.
#[derive(Debug, Clone)]
pub struct SwiftSession {
    /// The account's URL, e.g. `http://10.0.0.2:8080/v1/AUTH_3019cc…`.
    pub storage_url: String,
    /// Sent as `X-Auth-Token`.
    pub token: Secret,
    /// How long the token is valid from when it was issued, when the
    /// answer said (Keystone's `expires_at - issued_at`, tempauth's
    /// `X-Auth-Token-Expires`): measured on the server's clock, so a skewed
    /// local clock does not matter.
    pub valid_for: Option<Duration>,
}

/// The longest token life believed (an answer may say anything): ten
/// years, as every duration of the config.
pub const MAX_LIFE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// An HTTP client for logins and calls that carry credentials: no proxy
/// and no redirects followed (a redirect would carry the password, key or
/// token to wherever it points).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// The error for a redirect answer (3xx) to a login at `url`.
pub(crate) fn redirected(url: &str, resp: &reqwest::Response) -> OpenStackError {
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| text::one_line(l, 300))
        .unwrap_or_else(|| "nowhere (no Location)".to_string());
    OpenStackError::Redirect {
        url: url.to_string(),
        location,
    }
}

/// The service type of Swift in a Keystone catalog.
pub const OBJECT_STORE: &str = "object-store";

impl SwiftAuth {
    /// Logs in and returns the session.
    pub async fn authenticate(
        &self,
        http: &reqwest::Client,
    ) -> Result<SwiftSession, OpenStackError> {
        match self {
            SwiftAuth::Tempauth {
                auth_url,
                user,
                key,
            } => tempauth::authenticate(http, auth_url, user, key).await,
            SwiftAuth::Keystone(k) => {
                let token = keystone::issue_token(http, k).await?;
                let storage_url = token.catalog.endpoint(
                    &k.auth_url,
                    OBJECT_STORE,
                    k.region.as_deref(),
                    &k.interface,
                )?;
                if let Some(id) = &token.project_id {
                    keystone::check_account(&k.auth_url, &storage_url, id)?;
                }
                Ok(SwiftSession {
                    storage_url,
                    token: token.value,
                    valid_for: token.valid_for,
                })
            }
        }
    }

    /// Where it logs in (for messages).
    pub fn auth_url(&self) -> &str {
        match self {
            SwiftAuth::Tempauth { auth_url, .. } => auth_url,
            SwiftAuth::Keystone(k) => &k.auth_url,
        }
    }

    /// Who logs in (for messages; never a secret).
    pub fn who(&self) -> String {
        match self {
            SwiftAuth::Tempauth { user, .. } => user.clone(),
            SwiftAuth::Keystone(k) => k.credentials.who(),
        }
    }
}

/// When a session obtained `valid_for` ago should be renewed before use:
/// with a tenth of its life left (at most 5 minutes before its end), so a
/// call never goes out with a token about to expire. `None` (the answer
/// did not say): only a 401 renews it.
pub fn renew_after(valid_for: Option<Duration>) -> Option<Duration> {
    let life = valid_for?;
    let margin = (life / 10).min(Duration::from_secs(300));
    Some(life.saturating_sub(margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_leaves_a_tenth_of_the_life_at_most_five_minutes() {
        assert_eq!(renew_after(None), None);
        assert_eq!(
            renew_after(Some(Duration::from_secs(3600))),
            Some(Duration::from_secs(3300))
        );
        assert_eq!(
            renew_after(Some(Duration::from_secs(20))),
            Some(Duration::from_secs(18))
        );
        assert_eq!(
            renew_after(Some(Duration::from_secs(86_400))),
            Some(Duration::from_secs(86_100))
        );
    }
}
