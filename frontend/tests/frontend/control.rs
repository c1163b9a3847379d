//! The control API against a peer without the token: refused, and what it
//! costs the frontend is bounded — no log line per refused request.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{start_web, TOKEN};

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Anyone who reaches the control port, token or not, could make the
/// frontend write a warning per request it sent — thousands a second on
/// one kept-alive connection, enough to fill the disk the logs (and the
/// fence) are on, or to push the lines of the last failover out of the
/// journal. Refusals are counted on `/metrics`; the warning is written at
/// the 1st, 2nd, 4th, 8th… with the count so far.
#[tokio::test]
async fn refused_requests_are_counted_not_each_logged() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (fe, _a, _b) = start_web(Duration::from_secs(5)).await;
    for i in 0..200 {
        let token = (i % 2 == 0).then_some("wrong-token");
        let (status, _) = fe.get("/v1/routes", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let text =
        String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let warned = text
        .lines()
        .filter(|l| l.contains("unauthorized control request"))
        .count();
    assert!(
        (1..=10).contains(&warned),
        "{warned} warnings for 200 refused requests"
    );
    assert!(text.contains("refused=128"), "the count is said:\n{text}");

    let resp = crate::harness::http_client()
        .get(fe.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics answer");
    let metrics = resp.text().await.expect("metrics text");
    let line = "warden_frontend_unauthorized_requests_total 200";
    assert!(
        metrics.lines().any(|l| l == line),
        "{line:?} not in:\n{metrics}"
    );
}

/// Every order the fence refuses is counted on `/metrics`, per group and
/// reason: a deposed orchestrator (or a second one) still sending routes
/// and holds shows there, where an operator's alert can see it. Before,
/// the refusal was only a log line (and the 409 the sender got): nothing
/// on the frontend's side to alert on.
#[tokio::test]
async fn fencing_refusals_are_counted_per_group_and_reason() {
    use crate::harness::assert_refused;

    let (fe, _a, _b) = start_web(Duration::from_secs(5)).await;
    assert_eq!(fe.put("web", "a", 5, "immediate").await.0, StatusCode::OK);
    // A deposed orchestrator's route, older than the one obeyed.
    let (status, body) = fe.put("web", "b", 4, "immediate").await;
    assert_refused(status, &body, "stale epoch 4 < 5");
    // And its hold order.
    let (status, body) = fe.hold("web", 3, 10_000).await;
    assert_refused(status, &body, "stale epoch 3 < 5");
    // Another site at the epoch already routed: a conflicting decision.
    let (status, body) = fe.put("web", "b", 5, "immediate").await;
    assert_refused(status, &body, "conflicting decision for epoch 5");
    // A late copy of a cut-over whose switch has come.
    let (status, body) = fe.pause("web", 5, 10_000).await;
    assert_refused(status, &body, "this one is a late copy");
    // Orders it takes are not counted.
    assert_eq!(fe.put("web", "a", 5, "immediate").await.0, StatusCode::OK);
    assert_eq!(fe.hold("web", 6, 10_000).await.0, StatusCode::OK);

    let metrics = crate::harness::http_client()
        .get(fe.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    for (reason, n) in [
        ("stale", 2),
        ("conflict", 1),
        ("late_copy", 1),
        ("unknown_site", 0),
    ] {
        let line = format!(
            "warden_frontend_refused_orders_total{{group=\"web\",reason=\"{reason}\"}} {n}"
        );
        assert!(
            metrics.lines().any(|l| l == line),
            "{line:?} not in:\n{metrics}"
        );
    }
}

/// An order at an epoch no orchestrator decides (within 2^32 of the
/// largest: forged, or a corrupt sender) is refused with 400 and kept
/// nowhere: an order at the next real epoch is still taken. Before, it was
/// taken and its epoch kept, on disk too, so every later order of the
/// group was refused as stale — for good, a restart included.
#[tokio::test]
async fn an_order_at_an_epoch_no_orchestrator_decides_is_refused() {
    let (fe, _a, _b) = start_web(Duration::from_secs(5)).await;
    assert_eq!(fe.put("web", "a", 5, "immediate").await.0, StatusCode::OK);
    for epoch in [u64::MAX, warden_proto::EPOCH_CEILING + 1] {
        let (status, body) = fe.put("web", "b", epoch, "immediate").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("below the largest there is")),
            "{body}"
        );
        let (status, body) = fe.hold("web", epoch, 10_000).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let route = fe.route("web").await;
    assert_eq!(
        (route["site"].as_str(), route["epoch"].as_u64()),
        (Some("a"), Some(5)),
        "{route}"
    );
    assert_eq!(fe.put("web", "b", 6, "immediate").await.0, StatusCode::OK);
}
