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
