//! Listings (containers of the account, objects of a container; paged,
//! each page read up to a bound, each page after the first beginning past
//! its marker or the listing fails) and the containers' own calls (HEAD, PUT,
//! POST, DELETE) of [`SwiftClient`].

use super::*;

impl SwiftClient {
    /// Every container of the account (paged).
    pub async fn list_containers(&self) -> Result<Vec<String>, AgentError> {
        let mut out: Vec<String> = Vec::new();
        loop {
            let marker = out.last().cloned();
            let page: Vec<ContainerEntry> = self
                .page(Target::Account, marker.as_deref())
                .await?
                .unwrap_or_default();
            self.advances(
                Target::Account,
                marker.as_deref(),
                page.first().map(|c| &c.name),
            )?;
            let n = page.len();
            out.extend(page.into_iter().map(|c| c.name));
            if n < self.settings.page_size {
                return Ok(out);
            }
        }
    }

    /// Every object of `container` (paged); `None` when the container does not exist.
    pub async fn list_objects(
        &self,
        container: &str,
    ) -> Result<Option<Vec<ObjectEntry>>, AgentError> {
        let target = Target::Container(container);
        let account = self.account().await?;
        let mut out: Vec<ObjectEntry> = Vec::new();
        loop {
            let marker = out.last().map(|e| e.name.clone());
            let Some(page) = self.page::<ObjectEntry>(target, marker.as_deref()).await? else {
                return Ok(None);
            };
            self.advances(target, marker.as_deref(), page.first().map(|e| &e.name))?;
            let n = page.len();
            out.extend(page.into_iter().map(|mut e: ObjectEntry| {
                e.normalise(&account);
                e
            }));
            if n < self.settings.page_size {
                return Ok(Some(out));
            }
        }
    }

    /// A page after the first must begin past its marker (listings are
    /// sorted by name): one that does not — a proxy or middleware that
    /// drops the `marker`, a server that ignores it — would be asked for
    /// again and again while the listing grows without end. An error
    /// instead (the round or pass fails and is retried).
    fn advances(
        &self,
        target: Target<'_>,
        marker: Option<&str>,
        first: Option<&String>,
    ) -> Result<(), AgentError> {
        match (marker, first) {
            (Some(m), Some(f)) if f.as_str() <= m => Err(AgentError::SwiftBadResponse {
                url: format!(
                    "{}, {}",
                    crate::replicate::swift::cluster_label(&self.settings),
                    match target {
                        Target::Container(c) => format!(
                            "the listing of {}",
                            crate::replicate::swift::names::display(c)
                        ),
                        _ => "the account's listing".to_string(),
                    }
                ),
                detail: format!(
                    "a listing page asked for names after {} began at {}: the listing does not \
                     advance (a proxy or middleware dropping the marker?)",
                    crate::replicate::swift::names::display(m),
                    crate::replicate::swift::names::display(f)
                ),
            }),
            _ => Ok(()),
        }
    }

    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        target: Target<'_>,
        marker: Option<&str>,
    ) -> Result<Option<Vec<T>>, AgentError> {
        let limit = self.settings.page_size.to_string();
        let mut query = vec![("format", "json"), ("limit", limit.as_str())];
        if let Some(m) = marker {
            query.push(("marker", m));
        }
        let resp = self
            .call(
                Method::GET,
                target,
                &query,
                &HeaderMap::new(),
                SendBody::Empty,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let url = resp.url().to_string();
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Some(Vec::new()));
        }
        let body = read_bounded(resp, MAX_PAGE_BYTES, "a listing page").await?;
        if body.is_empty() {
            return Ok(Some(Vec::new()));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| AgentError::SwiftBadResponse {
                url,
                detail: format!("not a JSON listing: {e}"),
            })
    }

    /// The container's headers; `None` when it does not exist.
    pub async fn head_container(
        &self,
        container: &str,
    ) -> Result<Option<ContainerInfo>, AgentError> {
        let resp = self
            .call(
                Method::HEAD,
                Target::Container(container),
                &[],
                &HeaderMap::new(),
                SendBody::Empty,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(ContainerInfo {
            headers: header_map(resp.headers()),
        }))
    }

    /// Creates (or updates) `container` with these headers (`PUT`).
    pub async fn put_container(
        &self,
        container: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<(), AgentError> {
        self.container_headers(Method::PUT, container, headers)
            .await
    }

    /// Sets these headers on an existing container (`POST`); `x-remove-*` removes.
    pub async fn post_container(
        &self,
        container: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<(), AgentError> {
        self.container_headers(Method::POST, container, headers)
            .await
    }

    /// `method` (PUT or POST) on `container` with `headers` and no body.
    async fn container_headers(
        &self,
        method: Method,
        container: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<(), AgentError> {
        let h = to_headers(headers)?;
        let target = Target::Container(container);
        self.call(method, target, &[], &h, SendBody::Empty, &[])
            .await?;
        Ok(())
    }

    /// Deletes an (empty) container; a missing one is not an error.
    pub async fn delete_container(&self, container: &str) -> Result<(), AgentError> {
        self.call(
            Method::DELETE,
            Target::Container(container),
            &[],
            &HeaderMap::new(),
            SendBody::Empty,
            &[StatusCode::NOT_FOUND],
        )
        .await?;
        Ok(())
    }
}
