//! The HTTP client of the orchestrator's `/v1` API, as the operator uses it
//! (the CLI's operator commands and the quickstart).

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use warden_config::Secret;

use crate::cli::Cli;

/// An operator's connection to the orchestrator API: one URL, or every
/// orchestrator of an etcd deployment (tried in turn; an action answered
/// with a redirect to the leader is sent there, but only when the leader's
/// URL is one of these — a forged redirect never gets the token; one
/// answered 503 — that node knows no leader — goes to the next).
pub(crate) struct Client {
    bases: Vec<String>,
    token: Secret,
    http: reqwest::Client,
}

/// A `--url` the API's paths can be added to, as `orchestrator.url` must
/// be: http(s), a host, a port other than 0, no query or fragment (the
/// paths would end up inside them: `http://h:7000/?x` asked
/// `http://h:7000/?x/v1/status`, the dashboard's page), no credentials
/// (the token is the credential; the URL is shown in errors, so it is not
/// echoed then).
fn check_base(u: &str) -> anyhow::Result<()> {
    const E: &str = "e.g. http://10.0.0.2:7000";
    let url = reqwest::Url::parse(u).map_err(|e| anyhow!("--url {u:?} is not a URL ({e}); {E}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        bail!("--url holds credentials (user:password@): the operator token is the credential (--token-file); {E}");
    }
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--url {u:?} must be an http:// or https:// URL; {E}");
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("--url {u:?} names no host; {E}");
    }
    if url.port() == Some(0) {
        bail!("--url {u:?} has port 0, where nothing can be reached; {E}");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!(
            "--url {u:?} holds a query or fragment: the API's paths are added to it (…/v1/status) \
             and would end up inside it; give scheme, host, port and at most a path"
        );
    }
    Ok(())
}

impl Client {
    pub(crate) fn new(cli: &Cli) -> anyhow::Result<Client> {
        let cfg = match &cli.config {
            Some(p) => Some(warden_config::load(p)?),
            None => None,
        };
        let bases: Vec<String> = match (&cli.url, &cfg) {
            (Some(u), _) => {
                let bases: Vec<String> = u
                    .split(',')
                    .map(|u| u.trim().trim_end_matches('/').to_string())
                    .filter(|u| !u.is_empty())
                    .collect();
                for b in &bases {
                    check_base(b)?;
                }
                bases
            }
            (None, Some(c)) => c.orchestrator.urls(),
            (None, None) => {
                bail!("give --config FILE or --url URL (or WARDEN_CONFIG / WARDEN_URL)")
            }
        };
        let token = match (&cli.token_file, &cfg) {
            (Some(f), _) => Secret::load_token(
                "--token-file",
                &warden_config::SecretRef {
                    file: Some(f.clone()),
                    env: None,
                    others_may_read: false,
                },
            )?,
            (None, Some(c)) => Secret::load_token(
                "orchestrator.operator_token",
                &c.orchestrator.operator_token,
            )?,
            (None, None) => bail!("give --config FILE or --token-file FILE for the operator token"),
        };
        if bases.is_empty() {
            bail!("--url names no orchestrator");
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if bases.iter().any(|b| b.starts_with("https://")) {
            let ca = cli.ca.clone().or_else(|| {
                cfg.as_ref()
                    .and_then(|c| c.orchestrator.tls.as_ref())
                    .and_then(|t| t.ca.clone())
            });
            let identity = match (&cli.client_cert, &cli.client_key) {
                (Some(cert), Some(key)) => Some(warden_serve::tls::Identity {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            };
            builder = builder.tls_backend_preconfigured(warden_serve::tls::client_config(
                ca.as_deref(),
                identity.as_ref(),
            )?);
        }
        let http = builder.build()?;
        Ok(Client { bases, token, http })
    }

    pub(crate) fn with(base: String, token: Secret) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Client {
            bases: vec![base],
            token,
            http,
        })
    }

    /// Every orchestrator URL this client knows.
    pub(crate) fn bases(&self) -> &[String] {
        &self.bases
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.send(reqwest::Method::GET, path, None).await?.0)
    }

    /// [`Client::get`], with the answer's headers.
    pub(crate) async fn get_with_headers(
        &self,
        path: &str,
    ) -> anyhow::Result<(Value, reqwest::header::HeaderMap)> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self.send(reqwest::Method::POST, path, Some(body)).await?.0)
    }

    /// `GET {base}{path}` on one orchestrator: its status code and body.
    pub(crate) async fn get_at(&self, base: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach the orchestrator at {base}"))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Send to the first orchestrator that answers; follow one redirect to
    /// the leader when it is a known orchestrator. The answer's body and
    /// headers.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(Value, reqwest::header::HeaderMap)> {
        let mut last = None;
        for base in &self.bases {
            let r = match self.once(&method, base, path, body.as_ref()).await {
                Ok(r) => r,
                // An action that may have reached an orchestrator (it timed
                // out, the connection broke after the request went) is not
                // sent again elsewhere: a follower would pass it to the
                // leader, which would act a second time on a situation the
                // first one changed (a second failover after the first
                // runbook ended, an approval of the decision made next).
                // Only one that never left (no connection) tries the next.
                Err(e) if may_have_acted(&method, &e) => {
                    return Err(unanswered(e, "the orchestrator", base));
                }
                Err(e) => {
                    last = Some(
                        anyhow::Error::new(e)
                            .context(format!("cannot reach the orchestrator at {base}")),
                    );
                    continue;
                }
            };
            // An orchestrator that does not lead and knows no leader (one
            // cut off from etcd: the others may still elect one) refuses
            // an action before it is read: nothing was done there, and the
            // next orchestrator may lead.
            if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                let refused = answer(r)
                    .await
                    .err()
                    .unwrap_or_else(|| anyhow!("orchestrator answered 503"));
                last = Some(refused.context(format!("the orchestrator at {base}")));
                continue;
            }
            if r.status() != reqwest::StatusCode::TEMPORARY_REDIRECT {
                return answer_with_headers(r).await;
            }
            let location = r
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let Some(leader) = self.bases.iter().find(|b| location == format!("{b}{path}")) else {
                bail!(
                    "orchestrator {base} redirects to {location:?}, which is not one of the configured orchestrators; not following it"
                );
            };
            // As on the first hop: an action that may have reached the
            // leader says so, one that never left says it did not.
            let r = match self.once(&method, leader, path, body.as_ref()).await {
                Ok(r) => r,
                Err(e) if may_have_acted(&method, &e) => {
                    return Err(unanswered(e, "the leader", leader));
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot reach the leader at {leader}")));
                }
            };
            if r.status() == reqwest::StatusCode::TEMPORARY_REDIRECT {
                bail!("the leader changed while the request was sent; try again");
            }
            return answer_with_headers(r).await;
        }
        Err(last.unwrap_or_else(|| anyhow!("no orchestrator URL")))
    }

    async fn once(
        &self,
        method: &reqwest::Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut req = self
            .http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(self.token.expose());
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await
    }
}

async fn answer(r: reqwest::Response) -> anyhow::Result<Value> {
    Ok(answer_with_headers(r).await?.0)
}

/// [`answer`], with the answer's headers.
async fn answer_with_headers(
    r: reqwest::Response,
) -> anyhow::Result<(Value, reqwest::header::HeaderMap)> {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    if !status.is_success() {
        // The API's `{"error": …}`; anything else (a proxy's page) shown
        // cut short. Either escaped: no line or escape sequence of its own
        // reaches the terminal.
        let msg = match serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        {
            Some(error) => error,
            None => {
                let mut end = text.len().min(200);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let more = if end < text.len() { "…" } else { "" };
                format!("{}{more}", &text[..end])
            }
        };
        bail!(
            "orchestrator answered {status}: {}",
            warden_orchestrator::text::printable(&msg)
        );
    }
    if text.is_empty() {
        return Ok((Value::Null, headers));
    }
    let v = serde_json::from_str(&text)
        .map_err(|e| anyhow!("orchestrator sent malformed JSON: {e}"))?;
    Ok((v, headers))
}

/// Whether a request that failed with `e` may have been acted on: an
/// action (not a read) whose request may have left (not a refused
/// connection) — it timed out, or the connection broke after it was sent.
fn may_have_acted(method: &reqwest::Method, e: &reqwest::Error) -> bool {
    *method != reqwest::Method::GET && !e.is_connect()
}

/// The error of an action `who` at `url` may have carried out unanswered.
fn unanswered(e: reqwest::Error, who: &str, url: &str) -> anyhow::Error {
    anyhow::Error::new(e).context(format!(
        "no answer from {who} at {url}; the action may have been carried out there: \
         look with `warden status` before sending it again"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::Router;

    use super::*;

    async fn serve(app: Router) -> String {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// A follower that answers a failover with 307 to `to`.
    async fn redirecting_follower(to: String) -> String {
        serve(
            Router::new().route(
                "/v1/groups/web/failover",
                post(move || {
                    let to = to.clone();
                    async move {
                        (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response()
                    }
                }),
            ),
        )
        .await
    }

    /// A redirect to a place that is not a configured orchestrator (a forged
    /// or compromised follower) is not followed: the operator token never
    /// goes there.
    #[tokio::test]
    async fn a_redirect_to_an_unknown_url_is_not_followed() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let thief = serve(Router::new().fallback(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { StatusCode::OK }
        }))
        .await;
        let to = format!("{thief}/v1/groups/web/failover");
        let follower = redirecting_follower(to).await;
        let c = Client::with(follower, Secret::new("operator-token-x")).unwrap();
        let err = c
            .post("/v1/groups/web/failover", serde_json::json!({"to": "b"}))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not one of the configured orchestrators"),
            "{err}"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "nothing reached the other URL"
        );
    }

    /// An action whose request went out but got no answer in time (the
    /// orchestrator may have acted on it) is not sent to the next
    /// orchestrator, which would pass it to the leader a second time; an
    /// orchestrator that cannot be connected to is skipped, and a read
    /// that timed out is asked of the next one.
    #[tokio::test]
    async fn an_action_that_may_have_been_taken_is_not_sent_again() {
        let counter = |hits: Arc<AtomicUsize>, wait: Duration| {
            Router::new().fallback(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(wait).await;
                    (StatusCode::ACCEPTED, "{\"runbook\": 7}")
                }
            })
        };
        let (slow_hits, next_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let slow = serve(counter(slow_hits.clone(), Duration::from_secs(5))).await;
        let next = serve(counter(next_hits.clone(), Duration::ZERO)).await;
        // A port nobody listens on: the connection is refused.
        let closed = format!("http://{}", warden_testkit::net::refusing());
        let client = |bases: Vec<String>| Client {
            bases,
            token: Secret::new("operator-token-x"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(300))
                .build()
                .unwrap(),
        };
        let c = client(vec![slow.clone(), next.clone()]);
        let err = format!(
            "{:#}",
            c.post("/v1/groups/web/approve", Value::Null)
                .await
                .unwrap_err()
        );
        assert!(err.contains("may have been carried out"), "{err}");
        assert_eq!(slow_hits.load(Ordering::SeqCst), 1);
        assert_eq!(next_hits.load(Ordering::SeqCst), 0, "sent once only");
        // Never connected: the next orchestrator gets it.
        let c = client(vec![closed, next.clone()]);
        let v = c.post("/v1/groups/web/approve", Value::Null).await.unwrap();
        assert_eq!(v["runbook"], 7);
        assert_eq!(next_hits.load(Ordering::SeqCst), 1);
        // A read is asked again elsewhere.
        let c = client(vec![slow, next]);
        c.get("/v1/status").await.unwrap();
        assert_eq!(next_hits.load(Ordering::SeqCst), 2);
    }

    /// An orchestrator that knows no leader (503: cut off from etcd, it
    /// sees none) did nothing with the action: the next one, which may
    /// lead, gets it. Before, the CLI stopped at the first one's 503 and
    /// the operator could not act while the first URL listed was the node
    /// cut off.
    #[tokio::test]
    async fn an_orchestrator_that_knows_no_leader_passes_the_action_on() {
        let cut_off = serve(Router::new().route(
            "/v1/groups/web/failover",
            post(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"no orchestrator leads now (etcd: unavailable); actions wait for a leader"}"#,
                )
            }),
        ))
        .await;
        let leader = serve(Router::new().route(
            "/v1/groups/web/failover",
            post(|| async { (StatusCode::ACCEPTED, "{\"runbook\": 7}") }),
        ))
        .await;
        let mut c = Client::with(cut_off.clone(), Secret::new("operator-token-x")).unwrap();
        c.bases.push(leader);
        let v = c
            .post("/v1/groups/web/failover", serde_json::json!({"to": "b"}))
            .await
            .unwrap();
        assert_eq!(v["runbook"], 7);
        // Alone, its refusal is the answer, said as it came.
        let c = Client::with(cut_off, Secret::new("operator-token-x")).unwrap();
        let err = format!(
            "{:#}",
            c.post("/v1/groups/web/failover", serde_json::json!({"to": "b"}))
                .await
                .unwrap_err()
        );
        assert!(
            err.contains("503") && err.contains("no orchestrator leads now"),
            "{err}"
        );
    }

    /// A redirect to a configured orchestrator is followed once.
    #[tokio::test]
    async fn a_redirect_to_the_leader_is_followed() {
        let leader = serve(Router::new().route(
            "/v1/groups/web/failover",
            post(|| async { (StatusCode::ACCEPTED, "{\"runbook\": 7}") }),
        ))
        .await;
        let to = format!("{leader}/v1/groups/web/failover");
        let follower = redirecting_follower(to).await;
        let mut c = Client::with(follower, Secret::new("operator-token-x")).unwrap();
        c.bases.push(leader);
        let v = c
            .post("/v1/groups/web/failover", serde_json::json!({"to": "b"}))
            .await
            .unwrap();
        assert_eq!(v["runbook"], 7);
    }

    /// Through a follower's redirect, the leader takes the action but its
    /// answer does not come in time: the error says the action may have
    /// been carried out (as on the first hop), and the leader was asked
    /// once. Before, it said only "no answer from the leader", read as
    /// "nothing happened" — and the operator moved users again.
    #[tokio::test]
    async fn a_redirected_action_that_may_have_been_taken_says_so() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let leader = serve(Router::new().route(
            "/v1/groups/web/failover",
            post(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    (StatusCode::ACCEPTED, "{\"runbook\": 7}")
                }
            }),
        ))
        .await;
        let follower = redirecting_follower(format!("{leader}/v1/groups/web/failover")).await;
        let c = Client {
            bases: vec![follower, leader],
            token: Secret::new("operator-token-x"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(300))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        let err = format!(
            "{:#}",
            c.post("/v1/groups/web/failover", serde_json::json!({"to": "b"}))
                .await
                .unwrap_err()
        );
        assert!(err.contains("may have been carried out"), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
