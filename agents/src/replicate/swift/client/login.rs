//! The [`SwiftClient`](super::SwiftClient)'s session: one login shared by
//! every call, renewed ahead of time, after a 401, and never in a storm.
//!
//! - A token whose life the login answer gave is renewed before a call once
//!   a tenth of that life is left ([`renew_after`]), on the local monotonic
//!   clock from when it was obtained. If that early renewal fails, the
//!   current token serves on until it ends.
//! - A renewal that hands back the same token (tempauth gives the existing
//!   token, with its remaining life, until it expires) is not asked again
//!   before that token's end.
//! - After a failed login, calls fail at once with the same error for a
//!   hold-off (2 s; a minute after refused credentials) instead of each
//!   logging in again: a round of many calls makes one login, and a wrong
//!   password does not count towards Keystone's lockout at every call.
//! - A login is bounded by the client's `timeout`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tracing::{debug, warn};
use warden_config::Secret;
use warden_openstack::{renew_after, OpenStackError, SwiftAuth};

use super::SwiftSettings;
use crate::AgentError;

/// No new login for this long after one failed…
const FAILED_HOLD: Duration = Duration::from_secs(2);
/// …and for this long after credentials were refused.
const REFUSED_HOLD: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub(super) struct Session {
    pub(super) storage_url: String,
    pub(super) token: Secret,
    /// Counts logins, so that concurrent 401s renew once.
    pub(super) generation: u64,
    /// When to log in again before a call.
    renew_at: Option<Instant>,
    /// When the token ends, as far as the answer said.
    expires: Option<Instant>,
}

impl Session {
    fn alive(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| now < t)
    }
}

#[derive(Default)]
struct State {
    session: Option<Session>,
    /// The last login's failure and until when it stands.
    failed: Option<(Instant, OpenStackError)>,
}

#[derive(Default)]
pub(super) struct Login {
    state: Mutex<State>,
    /// Tokens Swift refused (401).
    refused: AtomicU64,
}

impl Login {
    /// A token Swift refused (401).
    pub(super) fn count_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// (logins, tokens refused).
    pub(super) async fn counts(&self) -> (u64, u64) {
        let logins = self
            .state
            .lock()
            .await
            .session
            .as_ref()
            .map_or(0, |s| s.generation);
        (logins, self.refused.load(Ordering::Relaxed))
    }

    /// The session to use; `stale`: the generation whose token got a 401
    /// (renewed unless another call renewed it already). `forced`: log in
    /// now whatever the state (the operator's or a start's check).
    pub(super) async fn session(
        &self,
        http: &reqwest::Client,
        settings: &SwiftSettings,
        stale: Option<u64>,
        forced: bool,
    ) -> Result<Session, AgentError> {
        let auth = &settings.auth;
        let mut st = self.state.lock().await;
        let now = Instant::now();
        if !forced {
            if let Some(s) = &st.session {
                match stale {
                    None if s.renew_at.is_none_or(|t| now < t) => return Ok(s.clone()),
                    Some(g) if s.generation != g => return Ok(s.clone()),
                    _ => {}
                }
            }
            if let Some((until, e)) = &st.failed {
                if now < *until {
                    return match &st.session {
                        // an early renewal failed lately: the token serves on
                        Some(s) if stale.is_none() && s.alive(now) => Ok(s.clone()),
                        _ => Err(login_err(auth, e.clone())),
                    };
                }
            }
        }
        let generation = st.session.as_ref().map_or(0, |s| s.generation) + 1;
        let obtained = Instant::now();
        let answer = match tokio::time::timeout(settings.timeout, auth.authenticate(http)).await {
            Ok(r) => r,
            Err(_) => Err(OpenStackError::Unreachable {
                url: auth.auth_url().to_string(),
                detail: format!(
                    "the login timed out after {}",
                    humantime::format_duration(settings.timeout)
                ),
            }),
        };
        match answer {
            Ok(s) => {
                let expires = s.valid_for.and_then(|d| obtained.checked_add(d));
                let same = st
                    .session
                    .as_ref()
                    .is_some_and(|old| old.token.expose() == s.token.expose());
                let renew_at = if same {
                    // the same token again: ask once it has ended
                    expires
                } else {
                    renew_after(s.valid_for).and_then(|d| obtained.checked_add(d))
                };
                debug!(auth_url = %auth.auth_url(), who = %auth.who(), valid_for = ?s.valid_for, same, "swift authenticated");
                let session = Session {
                    storage_url: s.storage_url,
                    token: s.token,
                    generation,
                    renew_at,
                    expires,
                };
                st.failed = None;
                st.session = Some(session.clone());
                Ok(session)
            }
            Err(e) => {
                let hold = if matches!(e, OpenStackError::Refused { .. }) {
                    REFUSED_HOLD
                } else {
                    FAILED_HOLD
                };
                st.failed = Some((now + hold, e.clone()));
                match &st.session {
                    Some(s) if !forced && stale.is_none() && s.alive(now) => {
                        warn!(auth_url = %auth.auth_url(), cause = %e, "swift token renewal failed; the current token serves until it ends");
                        Ok(s.clone())
                    }
                    _ => Err(login_err(auth, e)),
                }
            }
        }
    }
}

/// A failed login in the agent's words: refused credentials are the
/// operator's to fix ([`AgentError::SwiftAuth`]); an unreachable endpoint
/// is retried ([`AgentError::SwiftUnreachable`]); the rest says what the
/// login service answered ([`AgentError::SwiftLogin`]).
fn login_err(auth: &SwiftAuth, e: OpenStackError) -> AgentError {
    match e {
        OpenStackError::Refused {
            url,
            who,
            status,
            message,
        } => AgentError::SwiftAuth {
            url,
            user: who,
            status,
            message,
            check: match auth {
                SwiftAuth::Tempauth { .. } => "the key",
                SwiftAuth::Keystone(_) => {
                    "the password or application credential secret and the names"
                }
            },
        },
        OpenStackError::Unreachable { url, detail } => AgentError::SwiftUnreachable { url, detail },
        e => AgentError::SwiftLogin(e),
    }
}
