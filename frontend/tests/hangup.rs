//! SIGHUP — what `kill -HUP` after a certificate renewal, a `systemctl
//! reload` or a log rotation sends, and what the docs give as the reload of
//! TLS files — is no reason for a frontend to stop. Its own test binary:
//! the signal goes to the whole process.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_config::Secret;
use warden_frontend::FrontendSettings;

const TOKEN: &str = "test-token-0123456789";

/// A frontend without TLS (nothing to read again) gets SIGHUP: it keeps
/// serving. Before, only a TLS listener handled the signal, so the default
/// action ended the process: every user's connection cut, and, once
/// restarted, nobody routed until the orchestrator's next pass.
#[tokio::test]
async fn a_hangup_leaves_a_frontend_without_tls_serving() {
    let settings = FrontendSettings {
        name: "fe-test".into(),
        control: "127.0.0.1:0".parse().expect("addr"),
        token: Secret::new(TOKEN),
        tls: None,
        groups: BTreeMap::new(),
        state_dir: None,
    };
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn(warden_frontend::run(settings, shutdown.clone(), Some(tx)));
    let addrs = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("frontend ready in time")
        .expect("frontend reported ready");

    let sent = Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("http client");
    let resp = client
        .get(format!("http://{}/v1/health", addrs.control))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the control API answers after SIGHUP");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert!(!running.is_finished(), "the frontend stopped on SIGHUP");
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops after shutdown")
        .expect("did not panic");
    assert!(stopped.is_ok(), "{stopped:?}");
}
