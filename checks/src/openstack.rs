//! The OpenStack-aware checks: `keystone` (a token is issued for the
//! check's login) and `swift` (a canary object written, read back and
//! deleted through the Swift API, logged in with Keystone).
//!
//! The check's secret is loaded at every run, so a rotated password or
//! application-credential secret is picked up without a restart. The
//! `keystone` check asks for a new token at every run (that is what it
//! checks); the `swift` check keeps its session (token and storage URL)
//! between runs, per check and login, and logs in again when a tenth of
//! the token's life is left or when Swift answers 401. Credentials refused
//! are not tried again for a minute with the same secret (the check fails
//! with the refusal meanwhile), so a wrong password does not lock the user
//! out under Keystone's `lockout_failure_attempts`. Requests go through a
//! client of their own that follows no redirect (credentials and tokens
//! stay with the host configured). A canary is written with
//! `X-Delete-After`, so one a cut-short run could not delete expires by
//! itself.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use warden_config::CheckSpec;
use warden_openstack::{renew_after, KeystoneSettings, SwiftAuth, SwiftSession};

use crate::{describe_http_error, ProbeClient};

/// The canary's container when the check names none.
pub const DEFAULT_CONTAINER: &str = "warden-canary";

/// A kept session and when to renew it.
type Kept = (SwiftSession, Option<Instant>);

/// How long refused credentials are not tried again with the same secret.
const REFUSED_HOLD: Duration = Duration::from_secs(60);

/// The largest canary answer read back.
const MAX_CANARY_BYTES: usize = 4096;

/// Logins refused lately: key → (until, what was said).
static REFUSED: LazyLock<Mutex<HashMap<String, (Instant, String)>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The OpenStack checks' HTTP clients: no proxy, no redirects, every
/// address of a name at once (as the `http` checks', [`ProbeClient`]).
static CLIENT: LazyLock<Result<ProbeClient, String>> = LazyLock::new(|| {
    ProbeClient::new(warden_openstack::client_builder)
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
});

/// The OpenStack checks' clients, or why there are none.
pub(crate) fn clients() -> Result<&'static ProbeClient, String> {
    CLIENT.as_ref().map_err(Clone::clone)
}

/// A login refused for `key` within the hold: its words.
fn refused_lately(key: &str) -> Option<String> {
    let now = Instant::now();
    let mut map = REFUSED.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, (until, _)| now < *until);
    map.get(key).map(|(_, said)| {
        format!("{said} (not asked again for a minute with the same secret, so the user is not locked out)")
    })
}

/// Remembers a refusal; any other failure is not held.
fn note(key: &str, e: &warden_openstack::OpenStackError) {
    if matches!(e, warden_openstack::OpenStackError::Refused { .. }) {
        REFUSED.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key.to_string(),
            (Instant::now() + REFUSED_HOLD, e.to_string()),
        );
    }
}

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

/// What a run needs: the login (its secret loaded now), the client of
/// the login's URL and the login's key; or why the check fails at once.
fn prepare(
    spec: &CheckSpec,
    clients: &ProbeClient,
) -> Result<(KeystoneSettings, reqwest::Client, String), String> {
    let s = settings(spec)?;
    let client = clients.for_url(&s.auth_url)?;
    let key = session_key(spec, &s);
    Ok((s, client, key))
}

/// `keystone`: a token is issued.
pub(crate) async fn keystone_check(spec: &CheckSpec, clients: &ProbeClient) -> (bool, String) {
    let (s, client, key) = match prepare(spec, clients) {
        Ok(p) => p,
        Err(e) => return (false, e),
    };
    if let Some(said) = refused_lately(&key) {
        return (false, said);
    }
    match warden_openstack::keystone::issue_token(&client, &s).await {
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
        Err(e) => {
            note(&key, &e);
            (false, e.to_string())
        }
    }
}

/// The key of a kept session: the check and everything that makes its
/// login, the secret as a hash (a changed or rotated secret logs in anew,
/// so a wrong new one shows at once; two checks alike but for the secret
/// never share a session).
fn session_key(spec: &CheckSpec, s: &KeystoneSettings) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match &s.credentials {
        warden_openstack::Credentials::Password { password, .. } => password.expose().hash(&mut h),
        warden_openstack::Credentials::ApplicationCredential { secret, .. } => {
            secret.expose().hash(&mut h)
        }
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{:x}",
        spec.name,
        s.auth_url,
        s.credentials.who(),
        s.region.as_deref().unwrap_or_default(),
        s.interface,
        h.finish()
    )
}

/// `swift`: PUT a canary object, GET it back (the same bytes), DELETE it.
pub(crate) async fn swift_check(spec: &CheckSpec, clients: &ProbeClient) -> (bool, String) {
    let (s, client, key) = match prepare(spec, clients) {
        Ok(p) => p,
        Err(e) => return (false, e),
    };
    let auth = SwiftAuth::Keystone(s);
    let container = spec.container.as_deref().unwrap_or(DEFAULT_CONTAINER);
    let mut renewed = false;
    loop {
        let session = match session(&key, &auth, &client, renewed).await {
            Ok(s) => s,
            Err(e) => return (false, e),
        };
        let storage = match clients.for_url(&session.storage_url) {
            Ok(c) => c,
            Err(e) => return (false, e),
        };
        match canary(&storage, &session, container).await {
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
    if let Some(said) = refused_lately(key) {
        return Err(said);
    }
    let obtained = Instant::now();
    let s = auth.authenticate(client).await.map_err(|e| {
        note(key, &e);
        e.to_string()
    })?;
    SESSIONS.lock().unwrap_or_else(|p| p.into_inner()).insert(
        key.to_string(),
        (
            s.clone(),
            renew_after(s.valid_for).and_then(|d| obtained.checked_add(d)),
        ),
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
    // Swift's object expirer removes a canary a cut-short run left behind
    let put_canary = || {
        client
            .put(&object)
            .header("X-Delete-After", "3600")
            .body(body.clone())
    };
    let mut put = send(put_canary(), "PUT canary").await?;
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
        put = send(put_canary(), "PUT canary").await?;
    }
    if !put.status().is_success() {
        return Err(Step::Failed(format!(
            "PUT canary: HTTP {}",
            put.status().as_u16()
        )));
    }
    let mut got = send(client.get(&object), "GET canary").await?;
    let status = got.status();
    let mut read = Ok(Vec::new());
    loop {
        match got.chunk().await {
            Ok(Some(c)) => {
                let Ok(r) = &mut read else { break };
                if r.len() + c.len() > MAX_CANARY_BYTES {
                    read = Err(Step::Failed(
                        "GET canary: not the bytes written (longer)".into(),
                    ));
                    break;
                }
                r.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => {
                read = Err(Step::Failed(format!(
                    "GET canary: {}",
                    describe_http_error(&e)
                )));
                break;
            }
        }
    }
    // deleted whatever the read said, so no canary is left behind
    let deleted = send(client.delete(&object), "DELETE canary").await;
    if !status.is_success() {
        return Err(Step::Failed(format!(
            "GET canary: HTTP {}",
            status.as_u16()
        )));
    }
    if read?.as_slice() != body.as_bytes() {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::http::{Method, StatusCode, Uri};

    use super::*;
    use crate::reach::black_hole;

    /// `app` served at `live` on the port of a black hole at `dead` (the
    /// name `os.test` is 127.0.0.1 and 127.0.0.2, in that order); the
    /// port and the hole, to be kept while it is used. The hole's port is
    /// the kernel's pick at `dead` only: at `live` it may be taken (by
    /// another test, or by the source port of a connection filling an
    /// earlier hole there), so a taken one is left for another hole.
    async fn behind_a_black_hole(
        app: axum::Router,
        dead: &str,
        live: &str,
    ) -> (u16, (tokio::net::TcpListener, Vec<tokio::net::TcpStream>)) {
        for _ in 0..20 {
            let hole = black_hole(dead).await;
            let port = hole.0.local_addr().unwrap().port();
            match tokio::net::TcpListener::bind((live, port)).await {
                Ok(l) => {
                    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
                    return (port, hole);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => panic!("cannot listen at {live}:{port}: {e}"),
            }
        }
        panic!("no port free at both {dead} and {live} in 20 tries");
    }

    /// A Keystone issuing any login a token for project `dr` (id `dr`,
    /// account `AUTH_dr`) whose catalog has `swift`.
    fn keystone(swift: Option<String>) -> axum::Router {
        let catalog = swift
            .map(|url| {
                format!(
                    r#"{{"type": "object-store", "endpoints": [
                        {{"region_id": "r", "interface": "public", "url": "{url}"}}]}}"#
                )
            })
            .unwrap_or_default();
        let body = format!(
            r#"{{"token": {{"project": {{"id": "dr", "name": "dr", "domain": {{"name": "Default"}}}},
                "catalog": [{catalog}]}}}}"#
        );
        axum::Router::new().route(
            "/v3/auth/tokens",
            axum::routing::post(|| async {
                (StatusCode::CREATED, [("X-Subject-Token", "t")], body)
            }),
        )
    }

    /// A check of `kind` logging in at `port` with a password from a file
    /// (removed when the returned path is).
    fn spec(kind: &str, port: u16) -> (CheckSpec, std::path::PathBuf) {
        use std::os::unix::fs::OpenOptionsExt;
        let pw = std::env::temp_dir().join(format!("warden-{kind}-race-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&pw)
            .unwrap();
        std::io::Write::write_all(&mut f, b"pw-of-the-test").unwrap();
        let spec = toml::from_str(&format!(
            "name = \"{kind}\"\nkind = \"{kind}\"\n\
             keystone = {{ auth_url = \"http://os.test:{port}/v3\", user = \"warden\", \
             project = \"dr\", password = {{ file = \"{}\" }} }}",
            pw.display()
        ))
        .unwrap();
        (spec, pw)
    }

    fn clients() -> ProbeClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ips: [std::net::IpAddr; 2] =
            ["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
        ProbeClient::with_table(warden_openstack::client_builder, &[("os.test", &ips)])
    }

    /// The `keystone` check of a Keystone whose name has two addresses,
    /// the first of which drops packets: a token, from the second. Before,
    /// the login's connect hung at the first until the check's timeout.
    #[tokio::test]
    async fn keystone_reaches_a_later_address_when_the_first_drops_packets() {
        let (port, _hole) = behind_a_black_hole(keystone(None), "127.0.0.1", "127.0.0.2").await;
        let (spec, pw) = spec("keystone", port);
        let r =
            tokio::time::timeout(Duration::from_secs(5), keystone_check(&spec, &clients())).await;
        let _ = std::fs::remove_file(&pw);
        assert!(matches!(&r, Ok((true, _))), "{r:?}");
    }

    /// The same for the `swift` check, its Swift on another port behind a
    /// black hole too, the other way round (the address that answers at
    /// Keystone's port is the dead one at Swift's): the canary is written,
    /// read and deleted.
    #[tokio::test]
    async fn swift_reaches_a_later_address_when_the_first_drops_packets() {
        let objects: Arc<Mutex<HashMap<String, axum::body::Bytes>>> = Arc::default();
        let swift = axum::Router::new().fallback(
            move |method: Method, uri: Uri, body: axum::body::Bytes| {
                let objects = objects.clone();
                async move {
                    let mut objects = objects.lock().unwrap();
                    let path = uri.path().to_string();
                    match method {
                        Method::PUT => {
                            objects.insert(path, body);
                            (StatusCode::CREATED, axum::body::Bytes::new())
                        }
                        Method::GET => match objects.get(&path) {
                            Some(b) => (StatusCode::OK, b.clone()),
                            None => (StatusCode::NOT_FOUND, axum::body::Bytes::new()),
                        },
                        _ => match objects.remove(&path) {
                            Some(_) => (StatusCode::NO_CONTENT, axum::body::Bytes::new()),
                            None => (StatusCode::NOT_FOUND, axum::body::Bytes::new()),
                        },
                    }
                }
            },
        );
        let (swift_port, _swift_hole) = behind_a_black_hole(swift, "127.0.0.2", "127.0.0.1").await;
        let storage = format!("http://os.test:{swift_port}/v1/AUTH_dr");
        let (port, _hole) =
            behind_a_black_hole(keystone(Some(storage)), "127.0.0.1", "127.0.0.2").await;
        let (spec, pw) = spec("swift", port);
        let r = tokio::time::timeout(Duration::from_secs(5), swift_check(&spec, &clients())).await;
        let _ = std::fs::remove_file(&pw);
        assert!(matches!(&r, Ok((true, _))), "{r:?}");
    }
}
