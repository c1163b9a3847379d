//! Listings (containers of the account, objects of a container; paged,
//! each page read up to a bound, each page after the first beginning past
//! its marker and every page's names in order, each once, or the listing
//! fails, a short page the last only when the answer's count agrees, a
//! container that answers 404 after a page of it a failed listing) and
//! the containers' own calls (HEAD, PUT, POST, DELETE) of [`SwiftClient`].

use super::*;

impl SwiftClient {
    /// Every container of the account (paged).
    pub async fn list_containers(&self) -> Result<Vec<String>, AgentError> {
        let mut out: Vec<String> = Vec::new();
        loop {
            let marker = out.last().cloned();
            let (page, total): (Vec<ContainerEntry>, _) = self
                .page(Target::Account, marker.as_deref())
                .await?
                .unwrap_or_default();
            self.advances(
                Target::Account,
                marker.as_deref(),
                page.iter().map(|c| &c.name),
            )?;
            let n = page.len();
            out.extend(page.into_iter().map(|c| c.name));
            if self.last_page(n, out.len(), total) {
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
            let Some((page, total)) = self.page::<ObjectEntry>(target, marker.as_deref()).await?
            else {
                return match marker {
                    None => Ok(None),
                    // Pages of it were read: not a container that does
                    // not exist. Taken for one, its objects would be
                    // missing from this side's listing (copied or fetched
                    // again, asked to be deleted at the other side).
                    Some(m) => Err(self.listing_error(
                        target,
                        format!(
                            "the container answered 404 to the page after {} ({} names listed):                              deleted meanwhile, or its servers do not serve it now; a listing cut                              short is not taken for a missing container",
                            crate::replicate::swift::names::display(&m),
                            out.len()
                        ),
                    )),
                };
            };
            self.advances(target, marker.as_deref(), page.iter().map(|e| &e.name))?;
            let n = page.len();
            out.extend(page.into_iter().map(|mut e: ObjectEntry| {
                e.normalise(&account);
                e
            }));
            if self.last_page(n, out.len(), total) {
                return Ok(Some(out));
            }
        }
    }

    /// Whether a page of `n` entries ends the listing, `listed` entries in
    /// all so far, `total` the count the answer said (the container's
    /// objects, the account's containers). An empty page always does; a
    /// full one never. A shorter one does unless the count says more
    /// remain: a server or a proxy in front of it that hands out fewer
    /// entries than asked for (a lower cap of its own, a page cut short)
    /// would otherwise end the listing early, and every object past it
    /// would be left out — never copied, never fetched by a failback, a
    /// verification comparing two equally short listings saying all is
    /// well. A count larger than the listing (container stats that lag)
    /// costs one more, empty, page.
    fn last_page(&self, n: usize, listed: usize, total: Option<u64>) -> bool {
        n == 0 || (n < self.settings.page_size && total.is_none_or(|t| listed as u64 >= t))
    }

    /// A page after the first must begin past its marker, and every
    /// name must come after the one before it (listings are sorted by
    /// name, each name once): a page that does not begin past its marker
    /// — a proxy or middleware that drops the `marker`, a server that
    /// ignores it — would be asked for again and again while the listing
    /// grows without end, and so would one whose last name goes back
    /// (the next marker is the last name: out of order, the same names
    /// come again, for ever if the page is the same whatever the marker).
    /// An error instead (the round or pass fails and is retried).
    fn advances<'n>(
        &self,
        target: Target<'_>,
        marker: Option<&str>,
        names: impl Iterator<Item = &'n String>,
    ) -> Result<(), AgentError> {
        let bad = |detail: String| self.listing_error(target, detail);
        let show = crate::replicate::swift::names::display;
        let mut before: Option<&str> = marker;
        for (i, name) in names.enumerate() {
            match before {
                Some(m) if i == 0 && name.as_str() <= m => {
                    return Err(bad(format!(
                        "a listing page asked for names after {} began at {}: the listing does \
                         not advance (a proxy or middleware dropping the marker?)",
                        show(m),
                        show(name)
                    )))
                }
                Some(b) if name.as_str() <= b => {
                    return Err(bad(format!(
                        "a listing page names {} after {}: its names are out of order or \
                         repeated (a listing is sorted by name, each once); not trusted",
                        show(name),
                        show(b)
                    )))
                }
                _ => {}
            }
            before = Some(name);
        }
        Ok(())
    }

    /// A listing of `target` that is not trusted, saying why (`detail`).
    fn listing_error(&self, target: Target<'_>, detail: String) -> AgentError {
        AgentError::SwiftBadResponse {
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
            detail,
        }
    }

    /// One page after `marker`, with the count the answer says the whole
    /// listing has (`X-Container-Object-Count`, `X-Account-Container-Count`);
    /// `None` when the container does not exist.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        target: Target<'_>,
        marker: Option<&str>,
    ) -> Result<Option<(Vec<T>, Option<u64>)>, AgentError> {
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
        let count = match target {
            Target::Account => "x-account-container-count",
            _ => "x-container-object-count",
        };
        let total = resp
            .headers()
            .get(count)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let url = resp.url().to_string();
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Some((Vec::new(), total)));
        }
        let body = read_bounded(resp, MAX_PAGE_BYTES, "a listing page").await?;
        if body.is_empty() {
            return Ok(Some((Vec::new(), total)));
        }
        serde_json::from_slice(&body)
            .map(|page| Some((page, total)))
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
