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
