//! The token request's body, the catalog's choice of endpoint and the
//! token's lifetime (the exchange itself is tested against a real Keystone
//! in `agents/tests/keystone.rs` and `checks/tests/openstack.rs`).

use super::*;

fn catalog() -> Catalog {
    // as Keystone 22 answers for the test deployment: regions a and b
    let raw = r#"{"token": {"issued_at": "2026-11-30T16:03:29.000000Z",
        "expires_at": "2026-11-30T17:03:29.000000Z", "project": {"id": "3019cc"},
        "catalog": [
          {"type": "identity", "endpoints": [{"region_id": "RegionOne", "interface": "public", "url": "http://ks/v3"}]},
          {"type": "object-store", "name": "swift", "endpoints": [
            {"region_id": "a", "region": "a", "interface": "public", "url": "http://a:8080/v1/AUTH_3019cc"},
            {"region_id": "a", "interface": "internal", "url": "http://a-int:8080/v1/AUTH_3019cc"},
            {"region_id": "b", "interface": "public", "url": "http://b:8080/v1/AUTH_3019cc"}]}]}}"#;
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
                s.endpoints.into_iter().map(move |e| Endpoint {
                    service_type: t.clone(),
                    region: e.region_id.or(e.region).unwrap_or_default(),
                    interface: e.interface,
                    url: e.url,
                })
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
    assert!(e.contains("offered in regions a, b: set region"), "{e}");
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
}
