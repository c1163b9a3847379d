//! The objects' calls of [`SwiftClient`]: HEAD, GET (whole, for small
//! objects and tests, or opened as a stream), PUT (bytes or a stream, with
//! its length and time), server-side copy and DELETE.

use super::*;

impl SwiftClient {
    /// The object's headers; `None` when it does not exist.
    pub async fn head_object(
        &self,
        container: &str,
        object: &str,
    ) -> Result<Option<ObjectInfo>, AgentError> {
        self.head(container, object, &[]).await
    }

    /// Whether the object itself exists (a symlink as a link, even one
    /// whose target is gone: `symlink=get`), asked of the object servers
    /// rather than read from a listing.
    pub(crate) async fn exists_as_stored(
        &self,
        container: &str,
        object: &str,
    ) -> Result<bool, AgentError> {
        Ok(self
            .head(container, object, &[("symlink", "get")])
            .await?
            .is_some())
    }

    /// `HEAD` with `query`; `None` on 404.
    async fn head(
        &self,
        container: &str,
        object: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<ObjectInfo>, AgentError> {
        Ok(self
            .head_with_headers(container, object, query)
            .await?
            .map(|(info, _)| info))
    }

    /// `HEAD` with `query`: the object's headers, and every header of
    /// the answer (lower-case names: a link's `x-symlink-target`, a DLO's
    /// `x-object-manifest`); `None` on 404.
    pub(crate) async fn head_with_headers(
        &self,
        container: &str,
        object: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<(ObjectInfo, BTreeMap<String, String>)>, AgentError> {
        let resp = self
            .call(
                Method::HEAD,
                Target::Object(container, object),
                query,
                &HeaderMap::new(),
                SendBody::Empty,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some((
            object_info(resp.headers()),
            header_map(resp.headers()),
        )))
    }

    /// The object's headers and whole content, in memory (small objects,
    /// tests; the replicator streams, [`SwiftClient::open_object`]); `None`
    /// when it does not exist.
    pub async fn get_object(
        &self,
        container: &str,
        object: &str,
    ) -> Result<Option<(ObjectInfo, Bytes)>, AgentError> {
        let resp = self
            .call(
                Method::GET,
                Target::Object(container, object),
                &[],
                &HeaderMap::new(),
                SendBody::Empty,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let info = object_info(resp.headers());
        let url = resp.url().to_string();
        let body = resp.bytes().await.map_err(|e| unreachable_err(&url, &e))?;
        Ok(Some((info, body)))
    }

    /// Opens an object for reading with `query` (e.g. `multipart-manifest=get`):
    /// its headers now, its body as the caller reads it (no total timeout;
    /// each read is bounded). `None` when it does not exist.
    pub(crate) async fn open_object(
        &self,
        container: &str,
        object: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<OpenObject>, AgentError> {
        let resp = self
            .call_with(
                Method::GET,
                Target::Object(container, object),
                query,
                &HeaderMap::new(),
                SendBody::Empty,
                &[StatusCode::NOT_FOUND],
                None,
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let (info, headers) = (object_info(resp.headers()), header_map(resp.headers()));
        Ok(Some(OpenObject::new(info, headers, resp)))
    }

    /// Writes an object: `content_type` and `meta` (full header names, e.g.
    /// `x-object-meta-color`) go with it. Returns the ETag Swift computed.
    pub async fn put_object(
        &self,
        container: &str,
        object: &str,
        body: Bytes,
        content_type: &str,
        meta: &BTreeMap<String, String>,
    ) -> Result<String, AgentError> {
        let h = object_headers(content_type, meta)?;
        let body = SendBody::Bytes(body);
        self.put_object_with(container, object, &[], h, body, None)
            .await
    }

    /// Writes an object with these `headers` and `query` (e.g.
    /// `multipart-manifest=put`); `length` (a streamed body's, sent as
    /// `Content-Length`) also sets the time the PUT may take: `timeout`
    /// plus `length` at [`MIN_TRANSFER_RATE`] (a stream of unknown length:
    /// [`MAX_OBJECT_BYTES`] at that rate). Returns the ETag Swift answered
    /// (quotes removed).
    pub(crate) async fn put_object_with(
        &self,
        container: &str,
        object: &str,
        query: &[(&str, &str)],
        mut headers: HeaderMap,
        body: SendBody,
        length: Option<u64>,
    ) -> Result<String, AgentError> {
        let streamed = matches!(body, SendBody::Stream(_));
        let timeout = match length {
            Some(n) => {
                headers.insert(reqwest::header::CONTENT_LENGTH, HeaderValue::from(n));
                Some(self.settings.timeout + Duration::from_secs(n / MIN_TRANSFER_RATE))
            }
            // a stream of unknown length (a source that answered chunked):
            // the time of the largest object Swift takes in one PUT
            None if streamed => Some(
                self.settings.timeout + Duration::from_secs(MAX_OBJECT_BYTES / MIN_TRANSFER_RATE),
            ),
            None => Some(self.settings.timeout),
        };
        let resp = self
            .call_with(
                Method::PUT,
                Target::Object(container, object),
                query,
                &headers,
                body,
                &[],
                timeout,
            )
            .await?;
        Ok(resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_matches('"')
            .to_string())
    }

    /// Server-side copy within this cluster (`PUT` with `X-Copy-From`),
    /// metadata included; an SLO or DLO manifest or a symlink is copied as
    /// itself (`multipart-manifest=get`, `symlink=get`), not its content.
    pub async fn copy_object(
        &self,
        from_container: &str,
        from_object: &str,
        to_container: &str,
        to_object: &str,
    ) -> Result<(), AgentError> {
        Target::Object(from_container, from_object).check_names()?;
        let mut h = HeaderMap::new();
        h.insert(
            "x-copy-from",
            HeaderValue::from_str(&object_path(from_container, from_object))
                .map_err(|_| bad_header("x-copy-from"))?,
        );
        self.call(
            Method::PUT,
            Target::Object(to_container, to_object),
            &[("multipart-manifest", "get"), ("symlink", "get")],
            &h,
            SendBody::Empty,
            &[],
        )
        .await?;
        Ok(())
    }

    /// Deletes an object; a missing one is not an error (returns false).
    pub async fn delete_object(&self, container: &str, object: &str) -> Result<bool, AgentError> {
        let resp = self
            .call(
                Method::DELETE,
                Target::Object(container, object),
                &[],
                &HeaderMap::new(),
                SendBody::Empty,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        Ok(resp.status() != StatusCode::NOT_FOUND)
    }
}
