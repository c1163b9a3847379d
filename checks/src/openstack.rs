//! The OpenStack-aware checks: `keystone` (a token is issued for the
//! check's login) and `swift` (a canary object written, read back and
//! deleted through the Swift API, logged in with Keystone).
//!
//! The check's secret is loaded at every run, so a rotated password or
//! application-credential secret is picked up without a restart. The
//! `keystone` check asks for a new token at every run (that is what it
//! checks); the `swift` check keeps its session (token and storage URL)
//! between runs, per login, and logs in again when a tenth of the token's
//! life is left or when Swift answers 401.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use warden_config::{CheckSpec, KeystoneConfig};
use warden_openstack::{renew_after, KeystoneSettings, SwiftAuth, SwiftSession};

use crate::describe_http_error;

/// The canary's container when the check names none.
pub const DEFAULT_CONTAINER: &str = "warden-canary";

/// A kept session and when to renew it.
type Kept = (SwiftSession, Option<Instant>);

/// The `swift` checks' sessions, by login (URL, who, region, interface).
static SESSIONS: LazyLock<Mutex<HashMap<String, Kept>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn settings(spec: &CheckSpec) -> Result<KeystoneSettings, String> {
    let Some(k) = &spec.keystone else {
        return Err("no keystone login configured".into());
    };
    KeystoneSettings::from_config(&format!("check {:?}: keystone", spec.name), k)
        .map_err(|e| e.to_string())
}

/// `keystone`: a token is issued.
pub(crate) async fn keystone_check(spec: &CheckSpec, client: &reqwest::Client) -> (bool, String) {
    let s = match settings(spec) {
        Ok(s) => s,
        Err(e) => return (false, e),
    };
    match warden_openstack::keystone::issue_token(client, &s).await {
        Ok(t) => (
            true,
            match t.valid_for {
                Some(d) => format!(
                    "token issued, valid for {}",
                    humantime::format_duration(Duration::from_secs(d.as_secs()))
                ),
                None => "token issued".into(),
            },
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn session_key(k: &KeystoneConfig, s: &KeystoneSettings) -> String {
    format!(
        "{}\n{}\n{}\n{}",
        k.auth_url,
        s.credentials.who(),
        k.region.as_deref().unwrap_or_default(),
        s.interface
    )
}

/// `swift`: PUT a canary object, GET it back (the same bytes), DELETE it.
pub(crate) async fn swift_check(spec: &CheckSpec, client: &reqwest::Client) -> (bool, String) {
    let s = match settings(spec) {
        Ok(s) => s,
        Err(e) => return (false, e),
    };
    let key = match &spec.keystone {
        Some(k) => session_key(k, &s),
        None => return (false, "no keystone login configured".into()),
    };
    let auth = SwiftAuth::Keystone(s);
    let container = spec.container.as_deref().unwrap_or(DEFAULT_CONTAINER);
    let mut renewed = false;
    loop {
        let session = match session(&key, &auth, client, renewed).await {
            Ok(s) => s,
            Err(e) => return (false, e),
        };
        match canary(client, &session, container).await {
            Err(Step::Unauthorized(_)) if !renewed => {
                renewed = true;
                continue;
            }
            Err(Step::Unauthorized(what)) | Err(Step::Failed(what)) => return (false, what),
            Ok(()) => {
                return (
                    true,
                    format!("PUT, GET and DELETE of a canary in {container}"),
                )
            }
        }
    }
}

/// The kept session for `key`, or a new one (`renew`: the kept one got a 401).
async fn session(
    key: &str,
    auth: &SwiftAuth,
    client: &reqwest::Client,
    renew: bool,
) -> Result<SwiftSession, String> {
    if !renew {
        let kept = SESSIONS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        if let Some((s, renew_at)) = kept {
            if renew_at.is_none_or(|t| Instant::now() < t) {
                return Ok(s);
            }
        }
    }
    let obtained = Instant::now();
    let s = auth.authenticate(client).await.map_err(|e| e.to_string())?;
    SESSIONS.lock().unwrap_or_else(|p| p.into_inner()).insert(
        key.to_string(),
        (s.clone(), renew_after(s.valid_for).map(|d| obtained + d)),
    );
    Ok(s)
}

enum Step {
    /// Swift refused the token (401): log in again once.
    Unauthorized(String),
    Failed(String),
}

async fn canary(client: &reqwest::Client, s: &SwiftSession, container: &str) -> Result<(), Step> {
    use rand::Rng;
    let base = s.storage_url.trim_end_matches('/');
    let bytes: [u8; 16] = rand::rng().random();
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let body = format!("warden canary {name}\n");
    let c = enc(container);
    let object = format!("{base}/{c}/canary-{name}");
    let send = |req: reqwest::RequestBuilder, what: &'static str| async move {
        let resp = req
            .header("X-Auth-Token", s.token.expose())
            .send()
            .await
            .map_err(|e| Step::Failed(format!("{what}: {}", describe_http_error(&e))))?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Step::Unauthorized(format!(
                "{what}: HTTP 401 (token refused)"
            )));
        }
        Ok(resp)
    };
    let mut put = send(client.put(&object).body(body.clone()), "PUT canary").await?;
    if put.status() == reqwest::StatusCode::NOT_FOUND {
        // no container yet: make it, then write again
        let made = send(
            client
                .put(format!("{base}/{c}"))
                .header("Content-Length", "0"),
            "PUT container",
        )
        .await?;
        if !made.status().is_success() {
            return Err(Step::Failed(format!(
                "PUT container {container}: HTTP {}",
                made.status().as_u16()
            )));
        }
        put = send(client.put(&object).body(body.clone()), "PUT canary").await?;
    }
    if !put.status().is_success() {
        return Err(Step::Failed(format!(
            "PUT canary: HTTP {}",
            put.status().as_u16()
        )));
    }
    let got = send(client.get(&object), "GET canary").await?;
    let status = got.status();
    let read = got
        .bytes()
        .await
        .map_err(|e| Step::Failed(format!("GET canary: {}", describe_http_error(&e))));
    // deleted whatever the read said, so no canary is left behind
    let deleted = send(client.delete(&object), "DELETE canary").await;
    if !status.is_success() {
        return Err(Step::Failed(format!(
            "GET canary: HTTP {}",
            status.as_u16()
        )));
    }
    if read?.as_ref() != body.as_bytes() {
        return Err(Step::Failed("GET canary: not the bytes written".into()));
    }
    let deleted = deleted?;
    if !deleted.status().is_success() {
        return Err(Step::Failed(format!(
            "DELETE canary: HTTP {}",
            deleted.status().as_u16()
        )));
    }
    Ok(())
}

/// A container name as one URL path segment.
fn enc(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
