//! Reading an HTTP answer whose sender is not trusted to keep it short: a
//! body read into memory up to a limit (refused before reading when its
//! announced length is over it), shared by the drivers and providers that
//! read whole answers (the built-in frontend's control API, dyndns2).

/// Why a capped read ended without a body.
#[derive(Debug)]
pub(crate) enum Capped {
    /// The body is (or announced itself) longer than the limit.
    TooLong,
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// The body of `resp`, at most `limit` bytes.
pub(crate) async fn body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, Capped> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(Capped::TooLong);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(Capped::Transport)? {
        if out.len() + chunk.len() > limit {
            return Err(Capped::TooLong);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A peer for the tests of capped reads: on 127.0.0.1, it answers every
/// connection with `head`, then up to 64 MiB of spaces (no length
/// announced; counted in the returned counter, so a reader that reads on
/// still ends), then `tail`.
#[cfg(test)]
pub(crate) async fn endless_server(
    head: &'static str,
    tail: &'static [u8],
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let spaces = vec![b' '; 64 * 1024];
                for _ in 0..1024 {
                    if s.write_all(&spaces).await.is_err() {
                        return;
                    }
                    counted.fetch_add(spaces.len(), Relaxed);
                }
                let _ = s.write_all(tail).await;
            });
        }
    });
    (addr, sent)
}
