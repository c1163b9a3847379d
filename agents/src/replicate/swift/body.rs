//! The bodies of Swift calls: what a request sends ([`SendBody`]: nothing,
//! bytes that can be sent again, or a stream sent once), an object opened
//! for reading ([`OpenObject`]: headers now, the body streamed or read to a
//! bound), and [`read_bounded`], the one way an answer is read whole
//! (listings, manifests, error messages: untrusted, so never past a bound).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::client::{unreachable_err, ObjectInfo};
use super::url::strip_query;
use crate::AgentError;

/// A request body.
pub(crate) enum SendBody {
    /// None (a PUT says `Content-Length: 0`).
    Empty,
    /// Bytes in memory: sent again after a token renewal.
    Bytes(Bytes),
    /// A stream, sent once (taken by the first attempt).
    Stream(Option<reqwest::Body>),
}

/// An object opened by [`SwiftClient::open_object`]: its headers, and its
/// body not read yet.
pub(crate) struct OpenObject {
    pub(crate) info: ObjectInfo,
    /// Every response header (lower-case names).
    pub(crate) headers: BTreeMap<String, String>,
    resp: reqwest::Response,
}

impl OpenObject {
    pub(super) fn new(
        info: ObjectInfo,
        headers: BTreeMap<String, String>,
        resp: reqwest::Response,
    ) -> Self {
        OpenObject {
            info,
            headers,
            resp,
        }
    }

    /// `Content-Length` of this answer, when it said one.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.resp.content_length()
    }

    /// The body as a request body for a PUT, read as the PUT sends it.
    pub(crate) fn into_body(self) -> reqwest::Body {
        reqwest::Body::wrap_stream(self.resp.bytes_stream())
    }

    /// The whole body, refused past `max` bytes (a manifest).
    pub(crate) async fn read_bounded(self, max: usize, what: &str) -> Result<Vec<u8>, AgentError> {
        read_bounded(self.resp, max, what).await
    }
}

/// A response body read whole, refused past `max` bytes (said before
/// reading when `Content-Length` tells; else counted while reading).
pub(super) async fn read_bounded(
    mut resp: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, AgentError> {
    let url = strip_query(resp.url().as_str());
    let too_big = || AgentError::SwiftBadResponse {
        url: url.clone(),
        detail: format!("{what} larger than {max} bytes; refused"),
    };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable_err(&url, &e))? {
        if out.len() + chunk.len() > max {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
