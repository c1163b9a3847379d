//! The token request's body, the catalog's choice of endpoint and the
//! token's lifetime (the exchange itself is tested against a real Keystone
//! in `agents/tests/keystone.rs` and `checks/tests/openstack.rs`).

use super::*;
use crate::keystone::*;

fn catalog() -> Catalog {
    // as Keystone 22 answers for the test deployment: regions a and b
    let raw = r#"{"token": {"issued_at": "2026-11-30T16:03:29.000000Z",
        "expires_at": "2026-11-30T17:03:29.000000Z", "project": {"id": "3019cc"},
        "catalog": [
          {"type": "identity", "endpoints": [{"region_id": "RegionOne", "interface": "public", "url": "http://ks/v3"}]},
          {"type": "object-store", "name": "swift", "endpoints": [
            {"region_id": "a", "region": "a", "interface": "public", "url": "http://a:8080/v1/AUTH_3019cc"},
            {"region_id": "a", "interface": "internal", "url": "http://a-int:8080/v1/AUTH_3019cc"},
            {"region_id": "b", "interface": "public", "url": "http://b:8080/v1/AUTH_3019cc"},
            {"region_id": "7f3e", "region": "tx", "interface": "public", "url": "http://tx:8080/v1/AUTH_3019cc"}]}]}}"#;
    let a: Answer = serde_json::from_str(raw).unwrap();
    assert_eq!(
        lifetime(
            a.token.issued_at.as_deref().unwrap(),
            a.token.expires_at.as_deref().unwrap()
        ),
        Some(Duration::from_secs(3600))
    );
    Catalog(
        a.token
            .catalog
            .into_iter()
            .flat_map(|s| {
                let t = s.service_type;
                s.endpoints.into_iter().map(move |e| endpoint(&t, e))
            })
            .collect(),
    )
}

#[test]
fn the_endpoint_of_the_region_and_interface_asked() {
    let c = catalog();
    let get = |r: Option<&str>, i: &str| c.endpoint("http://ks/v3", "object-store", r, i);
    assert_eq!(
        get(Some("a"), "public").unwrap(),
        "http://a:8080/v1/AUTH_3019cc"
    );
    assert_eq!(
        get(Some("a"), "internal").unwrap(),
        "http://a-int:8080/v1/AUTH_3019cc"
    );
    assert_eq!(
        get(Some("b"), "public").unwrap(),
        "http://b:8080/v1/AUTH_3019cc"
    );
    let e = get(Some("c"), "public").unwrap_err().to_string();
    assert!(
        e.contains("no object-store endpoint in region c for interface public"),
        "{e}"
    );
    assert!(e.contains("a/public, a/internal, b/public"), "{e}");
    let e = get(Some("b"), "internal").unwrap_err().to_string();
    assert!(e.contains("in region b for interface internal"), "{e}");
    // two regions and none chosen: say which, do not guess
    let e = get(None, "public").unwrap_err().to_string();
    assert!(
        e.contains("offered in regions 7f3e, a, b: set region"),
        "{e}"
    );
    // one region: it
    assert_eq!(
        c.endpoint("http://ks/v3", "identity", None, "public")
            .unwrap(),
        "http://ks/v3"
    );
    let e = c
        .endpoint("http://ks/v3", "volumev3", None, "public")
        .unwrap_err()
        .to_string();
    assert!(e.contains("it lists none for it"), "{e}");
}

#[test]
fn the_request_body_as_the_identity_api_documents_it() {
    let p = Credentials::Password {
        user: "warden".into(),
        user_domain: "Default".into(),
        password: Secret::new("pw-123456"),
        project: "dr".into(),
        project_domain: "Default".into(),
    };
    let b = p.body();
    assert_eq!(b["auth"]["identity"]["methods"][0], "password");
    assert_eq!(b["auth"]["identity"]["password"]["user"]["name"], "warden");
    assert_eq!(
        b["auth"]["identity"]["password"]["user"]["domain"]["name"],
        "Default"
    );
    assert_eq!(b["auth"]["scope"]["project"]["name"], "dr");
    let who = format!("{p:?} {}", p.who());
    assert!(!who.contains("pw-123456"), "{who}");
    let a = Credentials::ApplicationCredential {
        id: "d281".into(),
        secret: Secret::new("s3cr3t-value"),
    };
    let b = a.body();
    assert_eq!(
        b["auth"]["identity"]["methods"][0],
        "application_credential"
    );
    assert_eq!(
        b["auth"]["identity"]["application_credential"]["id"],
        "d281"
    );
    assert!(
        b["auth"].get("scope").is_none(),
        "an application credential carries its scope"
    );
    assert!(!format!("{a:?}").contains("s3cr3t"));
}

#[test]
fn a_lifetime_only_from_two_readable_times_in_order() {
    assert_eq!(
        lifetime("2026-11-30T16:03:29Z", "2026-11-30T16:03:49.5Z"),
        Some(Duration::from_millis(20_500))
    );
    assert_eq!(
        lifetime("2026-11-30T16:03:29Z", "2026-11-30T16:03:29Z"),
        None
    );
    assert_eq!(
        lifetime("2026-11-30T17:00:00Z", "2026-11-30T16:00:00Z"),
        None
    );
    assert_eq!(lifetime("yesterday", "2026-11-30T16:00:00Z"), None);
    // an answer may claim any life: believed up to ten years
    assert_eq!(
        lifetime("2026-11-30T16:03:29Z", "9999-12-31T23:59:59Z"),
        Some(crate::MAX_LIFE)
    );
}

/// A server that answers every request with `answer` and counts them.
fn answering(answer: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = read_request(&mut c);
            // One answer per connection, said: the client does not send
            // its next request on a connection this side has closed.
            let answer = answer.replacen("\r\n", "\r\nConnection: close\r\n", 1);
            let _ = c.write_all(answer.as_bytes());
        }
    });
    (format!("http://{addr}"), hits)
}

/// The whole request (headers, then Content-Length bytes), so that
/// closing does not reset the connection under the answer.
fn read_request(c: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let whole = |got: &[u8]| {
        let text = String::from_utf8_lossy(got);
        let Some(end) = text.find("\r\n\r\n") else {
            return false;
        };
        let len = text[..end]
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        got.len() >= end + 4 + len
    };
    while !whole(&got) {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// A server that answers every request with `status` and a body that
/// quotes the request (`body` of its head and its body), as a validation
/// error of Keystone's own (which quotes the value it refused), a web
/// application firewall's block page or an echo service mistaken for
/// Keystone do.
fn echoing(status: &'static str, body: fn(&str, &str) -> String) -> String {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let request = read_request(&mut c);
            let text = String::from_utf8_lossy(&request);
            let (head, sent) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let body = body(head, sent);
            let answer = format!(
                "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = c.write_all(answer.as_bytes());
        }
    });
    format!("http://{addr}")
}

/// A login answered with an error that quotes the request (Keystone's
/// schema validation quotes the value it refused; a firewall's or an echo
/// service's page the whole body): the error, and so a check's detail,
/// an event and the logs, says what was answered with the password, key
/// or secret written `****`, also where the answer's JSON escapes it.
/// Before, the password was in the error as the server quoted it.
#[tokio::test]
async fn an_answer_quoting_the_request_does_not_put_the_secret_in_the_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = crate::client_builder().build().unwrap();
    let login = |url: &str, credentials: Credentials| KeystoneSettings {
        auth_url: format!("{url}/v3"),
        credentials,
        region: None,
        interface: "public".into(),
        secret_from: None,
    };
    let password = |pw: &str| Credentials::Password {
        user: "warden".into(),
        user_domain: "Default".into(),
        password: Secret::new(pw),
        project: "dr".into(),
        project_domain: "Default".into(),
    };
    let no_secret = |e: OpenStackError, secret: &str, status: u16| {
        let text = e.to_string();
        assert!(
            matches!(&e, OpenStackError::Status { status: s, .. } | OpenStackError::Refused { status: s, .. } if *s == status),
            "{e:?}"
        );
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("****"), "{text}");
    };
    // the request's body on the first line of a plain answer
    let plain = echoing("400 Bad Request", |_, sent| format!("refused: {sent}\n"));
    let e = issue_token(&http, &login(&plain, password("pw-quoted-back")))
        .await
        .unwrap_err();
    no_secret(e, "pw-quoted-back", 400);
    // in an OpenStack error message, the JSON body quoted in JSON: a
    // quote in the password comes back escaped
    let json = echoing("400 Bad Request", |_, sent| {
        serde_json::json!({"error": {"code": 400, "message": format!("Invalid input: {sent}")}})
            .to_string()
    });
    let e = issue_token(&http, &login(&json, password("pw\"quoted\"back")))
        .await
        .unwrap_err();
    no_secret(e, "quoted", 400);
    let app = Credentials::ApplicationCredential {
        id: "d281".into(),
        secret: Secret::new("app-secret-quoted-back"),
    };
    let e = issue_token(&http, &login(&json, app)).await.unwrap_err();
    no_secret(e, "app-secret-quoted-back", 400);
    // tempauth's key, sent in a header, quoted in a refusal
    let keys = echoing("401 Unauthorized", |head, _| {
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("x-auth-key: "))
            .unwrap_or_default();
        format!("no user t:u with key {key}\n")
    });
    let e = crate::tempauth::authenticate(
        &http,
        &format!("{keys}/auth/v1.0"),
        "t:u",
        &Secret::new("key-quoted-back"),
    )
    .await
    .unwrap_err();
    no_secret(e, "key-quoted-back", 401);
}

#[tokio::test]
async fn a_redirect_is_refused_and_no_credential_follows_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (elsewhere, hits) =
        answering("HTTP/1.1 201 Created\r\nX-Subject-Token: t\r\nContent-Length: 2\r\n\r\n{}");
    let redirect: &'static str = Box::leak(
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere}/v3/auth/tokens\r\nContent-Length: 0\r\n\r\n")
            .into_boxed_str(),
    );
    let (url, _) = answering(redirect);
    let http = crate::client_builder().build().unwrap();
    let s = KeystoneSettings {
        auth_url: format!("{url}/v3"),
        credentials: Credentials::Password {
            user: "warden".into(),
            user_domain: "Default".into(),
            password: Secret::new("pw-not-to-travel"),
            project: "dr".into(),
            project_domain: "Default".into(),
        },
        region: None,
        interface: "public".into(),
        secret_from: None,
    };
    let e = issue_token(&http, &s).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, OpenStackError::Redirect { .. }), "{e:?}");
    assert!(
        text.contains(&format!("redirects to {elsewhere}/v3/auth/tokens")),
        "{text}"
    );
    assert!(!e.is_retryable());
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the password followed the redirect"
    );
    // tempauth: the key stays too
    let e = crate::tempauth::authenticate(
        &http,
        &format!("{url}/auth/v1.0"),
        "t:u",
        &Secret::new("key-12345678"),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, OpenStackError::Redirect { .. }), "{e:?}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_token_life_beyond_reason_is_believed_up_to_ten_years() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (url, _) = answering(
        "HTTP/1.1 200 OK\r\nX-Storage-Url: http://127.0.0.1:1/v1/AUTH_t\r\nX-Auth-Token: AUTH_tk1\r\n\
         X-Auth-Token-Expires: 18446744073709551615\r\nContent-Length: 0\r\n\r\n",
    );
    let http = crate::client_builder().build().unwrap();
    let s = crate::tempauth::authenticate(&http, &url, "t:u", &Secret::new("key-12345678"))
        .await
        .unwrap();
    assert_eq!(s.valid_for, Some(crate::MAX_LIFE));
    assert!(std::time::Instant::now()
        .checked_add(crate::renew_after(s.valid_for).unwrap())
        .is_some());
}

/// A Keystone that answers every token request with a token scoped to
/// `project` (JSON, or `null` for none) whose catalog's object-store
/// endpoint is `storage`.
fn keystone_answering(project: &str, storage: &str) -> String {
    let body = format!(
        r#"{{"token": {{"issued_at": "2026-11-30T16:03:29.000000Z",
        "expires_at": "2026-11-30T17:03:29.000000Z", "project": {project},
        "catalog": [{{"type": "object-store", "endpoints": [
          {{"region_id": "a", "interface": "public", "url": "{storage}"}}]}}]}}}}"#
    );
    let answer = format!(
        "HTTP/1.1 201 Created\r\nX-Subject-Token: tk-1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    answering(Box::leak(answer.into_boxed_str())).0
}

fn password_login(url: &str, project: &str) -> crate::SwiftAuth {
    crate::SwiftAuth::Keystone(KeystoneSettings {
        auth_url: format!("{url}/v3"),
        credentials: Credentials::Password {
            user: "warden".into(),
            user_domain: "Default".into(),
            password: Secret::new("pw-not-in-any-message"),
            project: project.into(),
            project_domain: "Default".into(),
        },
        region: Some("a".into()),
        interface: "public".into(),
        secret_from: None,
    })
}

/// A token scoped to another project than the one asked for (or to none),
/// or a catalog whose endpoint names another project's account, is
/// refused: Swift calls with it would list, copy and delete in another
/// project's account. Before, the login took whatever came back.
#[tokio::test]
async fn a_token_for_another_project_is_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = crate::client_builder().build().unwrap();
    let dr = r#"{"id": "3019cc", "name": "dr", "domain": {"id": "default", "name": "Default"}}"#;
    let own = "http://a:8080/v1/AUTH_3019cc";
    // as asked (a project name answered in another case, as MySQL finds it)
    let url = keystone_answering(dr, own);
    let s = password_login(&url, "dr")
        .authenticate(&http)
        .await
        .unwrap();
    assert_eq!(s.storage_url, own);
    let s = password_login(&url, "DR")
        .authenticate(&http)
        .await
        .unwrap();
    assert_eq!(s.storage_url, own);
    // an endpoint without an account of the AUTH_ kind (a gateway) passes
    let url = keystone_answering(dr, "http://rgw:8080/swift/v1");
    assert!(password_login(&url, "dr").authenticate(&http).await.is_ok());

    let refused = |e: OpenStackError, want: &str| {
        let text = e.to_string();
        assert!(matches!(e, OpenStackError::WrongProject { .. }), "{e:?}");
        assert!(!e.is_retryable(), "{text}");
        assert!(text.contains(want), "{text}");
        assert!(
            !text.contains("pw-not-in-any-message") && !text.contains("tk-1"),
            "{text}"
        );
    };
    let other = r#"{"id": "77aa", "name": "other", "domain": {"name": "Default"}}"#;
    let url = keystone_answering(other, "http://a:8080/v1/AUTH_77aa");
    refused(
        password_login(&url, "dr")
            .authenticate(&http)
            .await
            .unwrap_err(),
        "scoped to project other (id 77aa) in domain Default, not to project dr",
    );
    let elsewhere = r#"{"id": "3019cc", "name": "dr", "domain": {"name": "Elsewhere"}}"#;
    let url = keystone_answering(elsewhere, own);
    refused(
        password_login(&url, "dr")
            .authenticate(&http)
            .await
            .unwrap_err(),
        "in domain Elsewhere, not to project dr in domain Default",
    );
    let url = keystone_answering("null", own);
    refused(
        password_login(&url, "dr")
            .authenticate(&http)
            .await
            .unwrap_err(),
        "scoped to no project",
    );
    // the right token, a catalog naming another project's account
    let url = keystone_answering(dr, "http://a:8080/v1/AUTH_77aa");
    refused(
        password_login(&url, "dr")
            .authenticate(&http)
            .await
            .unwrap_err(),
        "names account AUTH_77aa, the token is for project id 3019cc",
    );
    // an application credential names no project: its account is checked
    let app = |url: &str| {
        crate::SwiftAuth::Keystone(KeystoneSettings {
            credentials: Credentials::ApplicationCredential {
                id: "d281".into(),
                secret: Secret::new("pw-not-in-any-message"),
            },
            ..match password_login(url, "dr") {
                crate::SwiftAuth::Keystone(k) => k,
                _ => unreachable!(),
            }
        })
    };
    let url = keystone_answering(other, "http://a:8080/v1/AUTH_77aa");
    assert!(app(&url).authenticate(&http).await.is_ok());
    let url = keystone_answering(other, own);
    refused(
        app(&url).authenticate(&http).await.unwrap_err(),
        "names account AUTH_3019cc, the token is for project id 77aa",
    );
}

/// A catalog that says more than a message can hold — a region whose
/// name has a line break (an admin's or a liar's), thousands of
/// endpoints — in the error saying no endpoint was found where asked:
/// one line, a short list of what it offers. Before, every region/
/// interface pair went into the error as the catalog wrote it, so a
/// newline began a line of its own in the agent's log (a forged one)
/// and a catalog of 20 000 endpoints made an error of hundreds of KiB
/// at every attempt.
#[test]
fn what_a_catalog_offers_is_said_on_one_short_line() {
    let mut endpoints: Vec<Endpoint> = (0..20_000)
        .map(|i| Endpoint {
            service_type: "object-store".into(),
            region: format!("r{i}"),
            region_name: None,
            interface: "public".into(),
            url: format!("http://r{i}:8080/v1/AUTH_3019cc"),
        })
        .collect();
    endpoints.insert(
        0,
        Endpoint {
            service_type: "object-store".into(),
            region: "a\n2026-12-06T11:00:00Z INFO warden: failover done".into(),
            region_name: None,
            interface: "public".into(),
            url: "http://a:8080/v1/AUTH_3019cc".into(),
        },
    );
    let c = Catalog(endpoints);
    for region in [Some("c"), None] {
        let e = c
            .endpoint("http://ks/v3", "object-store", region, "public")
            .unwrap_err()
            .to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.len() < 1000, "{} bytes: {}…", e.len(), &e[..300]);
        assert!(e.contains("r0"), "{e}");
        assert!(e.contains(", and 19991 more"), "{e}");
    }
}
