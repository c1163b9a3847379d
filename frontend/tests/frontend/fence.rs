//! The fence across restarts: the highest epoch a frontend accepted is kept
//! in its state directory, so that once restarted it still refuses what a
//! deposed orchestrator sends below it.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{ask_new, echo, group, settings, start_settings, Frontend};

async fn stop(mut fe: Frontend) {
    fe.shutdown.cancel();
    if let Some(h) = fe.handle.take() {
        h.await.expect("joined").expect("clean stop");
    }
}

#[tokio::test]
async fn a_restarted_frontend_refuses_orders_below_the_epoch_it_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (echo("a").await, echo("b").await);
    let groups = BTreeMap::from([(
        "web".to_string(),
        group(&[("a", a.addr), ("b", b.addr)], Duration::from_secs(1)),
    )]);
    let mut s = settings(groups);
    s.state_dir = Some(dir.path().join("fe-test"));

    let fe = start_settings(s.clone()).await;
    assert_eq!(fe.put("web", "b", 6, "immediate").await.0, StatusCode::OK);
    stop(fe).await;

    // Restarted: no route (until the orchestrator sends it), but the fence
    // stands at 6.
    let fe = start_settings(s.clone()).await;
    let route = fe.route("web").await;
    assert_eq!(route["site"], serde_json::Value::Null, "{route}");
    assert_eq!(route["epoch"], 6, "{route}");
    // A deposed orchestrator's route and hold at 5 are refused ...
    let (status, body) = fe.put("web", "a", 5, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["seen_epoch"], 6, "{body}");
    let (status, body) = fe.pause("web", 5, 10_000).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(ask_new(fe.listen("web")).await, None, "nobody routed to a");
    // ... another site at 6 too; the current one's route at 6 is taken.
    let (status, body) = fe.put("web", "a", 6, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(fe.put("web", "b", 6, "immediate").await.0, StatusCode::OK);
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("b"));
    // A hold order's epoch is kept too: it fences routes below it.
    assert_eq!(fe.hold("web", 8, 10_000).await.0, StatusCode::OK);
    stop(fe).await;

    let fe = start_settings(s.clone()).await;
    let (status, body) = fe.put("web", "a", 7, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["seen_epoch"], 8, "{body}");
    let kept = std::fs::read_to_string(dir.path().join("fe-test/fence.json")).expect("fence file");
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("JSON");
    // The hold raised the epoch; the site named at 6 is not the site at 8.
    assert_eq!(
        kept["groups"]["web"],
        serde_json::json!({ "epoch": 8 }),
        "{kept}"
    );
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "0");
    stop(fe).await;

    // The fence file is lost (a disk restored without it): the frontend
    // cannot refuse what it forgot, but says so until an order is kept.
    std::fs::remove_file(dir.path().join("fe-test/fence.json")).expect("remove");
    let fe = start_settings(s.clone()).await;
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "1");
    assert_eq!(fe.put("web", "b", 9, "immediate").await.0, StatusCode::OK);
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "0");
    stop(fe).await;

    // A fence file it cannot read stops the frontend at start.
    std::fs::write(dir.path().join("fe-test/fence.json"), "{\"frontend\":").expect("write");
    let err = warden_frontend::run(s, tokio_util::sync::CancellationToken::new(), None)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("fence.json"), "{err}");
}

/// The value of the unlabelled gauge `name` on `/metrics`.
async fn metric(fe: &Frontend, name: &str) -> String {
    let text = crate::harness::http_client()
        .get(fe.url("/metrics"))
        .bearer_auth(crate::harness::TOKEN)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
        .to_string()
}
