//! Integration tests of the built-in frontend: real TCP on 127.0.0.1 with
//! port 0, echo backends that answer their name, the control API over HTTP.

mod cluster;
mod control;
mod cutover;
mod fence;
mod harness;
mod hold;
mod kept;
mod order;
mod relay;
mod restart;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{ask_new, echo, group, start, start_web, Conn, TOKEN};
use reqwest::StatusCode;
use warden_frontend::FrontendError;

const DRAIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn no_route_closes_new_connections() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    let route = fe.route("web").await;
    assert_eq!(route["site"], serde_json::Value::Null);
    assert_eq!(route["epoch"], 0);
    let mut c = Conn::open(fe.listen("web")).await;
    c.closed_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn routing_follows_set_route() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    let (status, body) = fe.put("web", "a", 1, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["site"], "a");
    assert_eq!(body["epoch"], 1);
    assert_eq!(body["switches"], 1);
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("a"));

    let (status, body) = fe.put("web", "b", 2, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("b"));
    let route = fe.route("web").await;
    assert_eq!(route["site"], "b");
    assert_eq!(route["epoch"], 2);
    assert_eq!(route["switches"], 2);

    // One group's route is also readable on its own.
    let (status, one) = fe.get("/v1/routes/web", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    for field in ["site", "backend", "epoch", "switches"] {
        assert_eq!(one[field], route[field], "{field}");
    }

    // A higher epoch for the routed site only raises the fence.
    let (status, body) = fe.put("web", "b", 7, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["epoch"], 7);
    assert_eq!(body["switches"], 2);
}

#[tokio::test]
async fn equal_epoch_is_idempotent_for_the_same_site_and_a_conflict_otherwise() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    assert_eq!(fe.put("web", "a", 3, "immediate").await.0, StatusCode::OK);
    let (status, body) = fe.put("web", "a", 3, "drain").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["switches"], 1, "a repeat changes nothing");

    let (status, body) = fe.put("web", "b", 3, "immediate").await;
    crate::harness::assert_refused(status, &body, "conflicting decision for epoch 3");
    assert_eq!(body["seen_epoch"], 3);
    let route = fe.route("web").await;
    assert_eq!(
        (route["site"].as_str(), route["epoch"].as_u64()),
        (Some("a"), Some(3))
    );
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("a"));
}

#[tokio::test]
async fn stale_epoch_is_refused_and_the_route_unchanged() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    assert_eq!(fe.put("web", "a", 5, "immediate").await.0, StatusCode::OK);
    let (status, body) = fe.put("web", "b", 3, "immediate").await;
    crate::harness::assert_refused(status, &body, "stale epoch 3 < 5");
    assert_eq!(body["seen_epoch"], 5);
    let route = fe.route("web").await;
    assert_eq!(
        (route["site"].as_str(), route["epoch"].as_u64()),
        (Some("a"), Some(5))
    );
    assert_eq!(route["switches"], 1);
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("a"));
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_and_the_route_unchanged() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let body = r#"{"site":"b","epoch":9}"#.to_string();
    for token in [None, Some("wrong-token-0123456789"), Some("")] {
        let (status, answer) = fe.put_raw("web", body.clone(), token).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "token {token:?}: {answer}"
        );
        assert!(answer["error"].is_string(), "{answer}");
    }
    for path in ["/v1/routes", "/v1/routes/web", "/v1/health", "/nowhere"] {
        let (status, _) = fe.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = fe.get("/v1/health", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let route = fe.route("web").await;
    assert_eq!(
        (route["site"].as_str(), route["epoch"].as_u64()),
        (Some("a"), Some(1))
    );
}

#[tokio::test]
async fn bad_requests_are_refused_and_the_route_unchanged() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);

    let (status, body) = fe.put_raw("web", "{not json".into(), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("invalid SetRoute body: "),
        "{body}"
    );

    // An array of the fields (serde would read it as the struct): refused.
    let (status, body) = fe
        .put_raw("web", r#"["b",2,"immediate"]"#.into(), Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("must be a JSON object"),
        "{body}"
    );
    assert_eq!(fe.route("web").await["site"], "a");

    let (status, body) = fe
        .put_raw(
            "web",
            r#"{"site":"b","epoch":2,"extra":1}"#.into(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {body}"
    );

    let (status, body) = fe
        .put_raw(
            "web",
            r#"{"site":"b","epoch":2,"mode":"slowly"}"#.into(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = fe.put("web", "c", 2, "immediate").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("\"c\"") && msg.contains("allowed sites: [a, b]"),
        "{msg}"
    );

    let (status, body) = fe.put("nope", "a", 2, "immediate").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("serves: [web]"),
        "{body}"
    );

    let huge = format!(
        r#"{{"site":"b","epoch":2,"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, body) = fe.put_raw("web", huge, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // A method the path does not take: the JSON error body like every other.
    let (status, body) = fe.get("/v1/routes/web/hold", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("method not allowed"),
        "{body}"
    );

    // A group in the path that is not UTF-8 (percent-encoded bytes): a 400
    // with the JSON error body too, for reads, routes and holds.
    let (status, body) = fe.get("/v1/routes/%FF", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("the group in the path cannot be read"),
        "{body}"
    );
    for path in ["/v1/routes/%FF", "/v1/routes/%C3%28/hold"] {
        let (status, body) = fe
            .put_path(path, r#"{"epoch":2,"ttl_ms":1000}"#.into(), Some(TOKEN))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }

    let route = fe.route("web").await;
    assert_eq!(
        (route["site"].as_str(), route["epoch"].as_u64()),
        (Some("a"), Some(1))
    );
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("a"));
}

#[tokio::test]
async fn immediate_switch_closes_old_connections_at_once() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let mut old = Conn::open(fe.listen("web")).await;
    assert_eq!(old.ask().await.as_deref(), Some("a"));
    assert_eq!(fe.route("web").await["active_connections"], 1);

    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    old.closed_within(Duration::from_millis(500)).await;
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("b"));
    assert_eventually!(
        fe.route("web").await["active_connections"] == 0,
        Duration::from_secs(2),
        "closed connections are no longer counted"
    );
}

#[tokio::test]
async fn drain_switch_keeps_old_connections_until_the_drain_timeout() {
    let drain = Duration::from_millis(1200);
    let (fe, _a, _b) = start_web(drain).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let mut old = Conn::open(fe.listen("web")).await;
    assert_eq!(old.ask().await.as_deref(), Some("a"));

    let switched = tokio::time::Instant::now();
    assert_eq!(fe.put("web", "b", 2, "drain").await.0, StatusCode::OK);
    // New connections go to the new site at once...
    let mut new = Conn::open(fe.listen("web")).await;
    assert_eq!(new.ask().await.as_deref(), Some("b"));
    // ...while the old one keeps working during the drain.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        old.ask().await.as_deref(),
        Some("a"),
        "old connection still served while draining"
    );
    assert_eq!(fe.route("web").await["active_connections"], 2);

    old.closed_within(drain + Duration::from_secs(2)).await;
    let elapsed = switched.elapsed();
    assert!(
        elapsed >= drain,
        "closed after {elapsed:?}, before the drain timeout {drain:?}"
    );
    assert_eq!(
        new.ask().await.as_deref(),
        Some("b"),
        "the new generation is untouched"
    );
}

#[tokio::test]
async fn immediate_switch_also_cuts_connections_still_draining() {
    let (fe, _a, _b) = start_web(Duration::from_secs(30)).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let mut old = Conn::open(fe.listen("web")).await;
    assert_eq!(old.ask().await.as_deref(), Some("a"));
    assert_eq!(fe.put("web", "b", 2, "drain").await.0, StatusCode::OK);
    assert_eq!(old.ask().await.as_deref(), Some("a"));
    assert_eq!(fe.put("web", "a", 3, "immediate").await.0, StatusCode::OK);
    old.closed_within(Duration::from_millis(500)).await;
}

/// An `immediate` order for the site already routed, while connections
/// to the old site still drain (a drain switch, then the same route again
/// as `immediate` — reconciliation sends every route that way): the
/// draining connections are cut now, as HAProxy's driver cuts servers
/// still draining; the new site's connections are untouched.
#[tokio::test]
async fn an_immediate_repeat_cuts_connections_still_draining() {
    let (fe, _a, _b) = start_web(Duration::from_secs(30)).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let mut old = Conn::open(fe.listen("web")).await;
    assert_eq!(old.ask().await.as_deref(), Some("a"));
    assert_eq!(fe.put("web", "b", 2, "drain").await.0, StatusCode::OK);
    let mut new = Conn::open(fe.listen("web")).await;
    assert_eq!(new.ask().await.as_deref(), Some("b"));
    // A drain repeat changes nothing: the old connection still drains.
    assert_eq!(fe.put("web", "b", 2, "drain").await.0, StatusCode::OK);
    assert_eq!(old.ask().await.as_deref(), Some("a"));
    let (status, body) = fe.put("web", "b", 2, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    old.closed_within(Duration::from_millis(500)).await;
    assert_eq!(
        new.ask().await.as_deref(),
        Some("b"),
        "the new site's connection stays"
    );
    assert_eq!(body["switches"], 2, "no new switch: {body}");
}

#[tokio::test]
async fn backend_connect_failure_closes_the_client() {
    let a = echo("a").await;
    // A port with nothing listening (held: no test beside takes it).
    let dead = crate::harness::refusing().await;
    let groups = BTreeMap::from([(
        "web".to_string(),
        group(&[("a", a.addr), ("b", dead)], DRAIN),
    )]);
    let fe = start(groups).await;
    assert_eq!(fe.put("web", "b", 1, "immediate").await.0, StatusCode::OK);
    let mut c = Conn::open(fe.listen("web")).await;
    c.closed_within(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn groups_are_routed_independently() {
    let (a, b) = (echo("a").await, echo("b").await);
    let groups = BTreeMap::from([
        (
            "web".to_string(),
            group(&[("a", a.addr), ("b", b.addr)], DRAIN),
        ),
        (
            "db".to_string(),
            group(&[("a", a.addr), ("b", b.addr)], DRAIN),
        ),
    ]);
    let fe = start(groups).await;
    assert_ne!(fe.listen("web"), fe.listen("db"));
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    assert_eq!(fe.put("db", "b", 1, "immediate").await.0, StatusCode::OK);
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("a"));
    assert_eq!(ask_new(fe.listen("db")).await.as_deref(), Some("b"));
    let (_, all) = fe.get("/v1/routes", Some(TOKEN)).await;
    assert_eq!(all["web"]["site"], "a");
    assert_eq!(all["db"]["site"], "b");
}

#[tokio::test]
async fn shutdown_closes_connections_and_returns() {
    let (fe, _a, _b) = start_web(DRAIN).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let listen = fe.listen("web");
    let mut c = Conn::open(listen).await;
    assert_eq!(c.ask().await.as_deref(), Some("a"));
    fe.stop().await.expect("clean stop");
    c.closed_within(Duration::from_millis(500)).await;
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "listener is closed"
    );
}

#[tokio::test]
async fn bind_failure_names_the_group_and_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let a = echo("a").await;
    let mut g = group(&[("a", a.addr)], DRAIN);
    g.listen = addr;
    let settings = harness::settings(BTreeMap::from([("web".to_string(), g)]));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let err = warden_frontend::run(
        settings,
        tokio_util::sync::CancellationToken::new(),
        Some(tx),
    )
    .await
    .expect_err("the address is taken");
    assert!(matches!(err, FrontendError::Bind { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("group web") && msg.contains(&addr.to_string()),
        "{msg}"
    );
    assert!(rx.await.is_err(), "ready is not sent when a bind fails");
}
