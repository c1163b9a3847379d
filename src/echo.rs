//! `warden echo-server`: a tiny HTTP service that answers every request with a
//! fixed text (the site's name). The demo and the integration tests use it as
//! each site's service; it is not part of the product.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Serve `text` on `listen` until `shutdown`.
pub(crate) async fn serve(
    listen: SocketAddr,
    text: String,
    shutdown: CancellationToken,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let body = format!("{text}\n");
    let app = Router::new().fallback(move || {
        let b = body.clone();
        async move { b }
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
