//! The orchestrator's own probes of the sites' endpoints judge each
//! endpoint by its own answer.

use super::harness::{config_text, start_from, test_dir};
use super::*;
use crate::store::MemStore;

/// A server answering `/health` with a redirect to `to`; its base URL.
async fn redirecting_to(to: String) -> String {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let to = to.clone();
            async move { axum::response::Redirect::temporary(&to) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn a_site_whose_endpoint_redirects_to_the_other_sites_page_is_probed_failing() {
    // b's page is healthy; a's load balancer (its application down) sends
    // users there.
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let a = redirecting_to(format!("{b}/health")).await;

    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "").replace(
        "[sites.b]",
        &format!(
            "[[sites.a.endpoints]]\nname = \"web\"\nkind = \"http\"\nurl = \"{a}/health\"\n\
             [sites.b]"
        ),
    );
    let (s, _fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    s.probe_sites(None).await;
    let st = s.lock();
    let (_, results) = &st.evidence.external["a"];
    assert_eq!(results.len(), 1);
    assert!(!results[0].ok, "a judged by b's answer: {:?}", results[0]);
    assert!(
        results[0].detail.starts_with("status 307"),
        "{:?}",
        results[0]
    );
}

/// Set in the environment of the child run of
/// [`a_proxy_in_the_orchestrators_environment_is_not_asked_for_its_probes`].
const PROXY_CHILD: &str = "WARDEN_TEST_PROBE_PROXY_CHILD";

#[tokio::test]
async fn a_proxy_in_the_orchestrators_environment_is_not_asked_for_its_probes() {
    // A proxy that answers "ok" for every site, as a caching or
    // intercepting one may; the orchestrator runs with HTTP_PROXY set
    // (a process of its own: the environment is the process's).
    let app = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "service::probe_tests::probed_with_a_proxy_in_the_environment",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROXY_CHILD, "1")
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env("ALL_PROXY", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran the probe: {text}");
}

/// The child of the test above (does nothing in a plain run): a's
/// endpoint is down, and the probe must say so, not the proxy's "ok".
#[tokio::test]
async fn probed_with_a_proxy_in_the_environment() {
    if std::env::var_os(PROXY_CHILD).is_none() {
        return;
    }
    let closed = warden_testkit::net::refusing();
    let dir = test_dir(true, 5);
    let text = config_text(&dir, true, 5, "").replace(
        "[sites.b]",
        &format!(
            "[[sites.a.endpoints]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://{closed}/health\"\n\
             [sites.b]"
        ),
    );
    let (s, _fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    s.probe_sites(None).await;
    let st = s.lock();
    let (_, results) = &st.evidence.external["a"];
    assert!(!results[0].ok, "the proxy answered for a: {:?}", results[0]);
    assert_eq!(results[0].detail, "connection refused");
}
