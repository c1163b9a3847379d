//! `warden echo-server`: a tiny HTTP service that answers every request with a
//! fixed text (the site's name) and an `X-Served-By` header (the site's
//! identity a verify step checks; the text by default). The demo and the integration tests use it as
//! each site's service; it is not part of the product.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Serve `text` (header `X-Served-By: served_by`, default the text) on
/// `listen` until `shutdown`.
pub(crate) async fn serve(
    listen: SocketAddr,
    text: String,
    served_by: Option<String>,
    shutdown: CancellationToken,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let body = format!("{text}\n");
    let served_by = axum::http::HeaderValue::from_str(served_by.as_deref().unwrap_or(&text))
        .context("--served-by must be a valid header value")?;
    let app = Router::new().fallback(move || {
        let b = body.clone();
        let by = served_by.clone();
        async move { ([("x-served-by", by)], b) }
    });
    tracing::info!(listen = %bound, "echo-server ready");
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
