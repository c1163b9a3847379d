//! The HTTP client of the orchestrator's `/v1` API, as the operator uses it
//! (the CLI's operator commands and the quickstart).

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use warden_config::Secret;

use crate::cli::Cli;

/// An operator's connection to the orchestrator API.
pub(crate) struct Client {
    base: String,
    token: Secret,
    http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(cli: &Cli) -> anyhow::Result<Client> {
        let cfg = match &cli.config {
            Some(p) => Some(warden_config::load(p)?),
            None => None,
        };
        let base = match (&cli.url, &cfg) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(c)) => c.orchestrator.base_url(),
            (None, None) => {
                bail!("give --config FILE or --url URL (or WARDEN_CONFIG / WARDEN_URL)")
            }
        };
        let token = match (&cli.token_file, &cfg) {
            (Some(f), _) => Secret::load(
                "--token-file",
                &warden_config::SecretRef {
                    file: Some(f.clone()),
                    env: None,
                    others_may_read: false,
                },
            )?,
            (None, Some(c)) => Secret::load(
                "orchestrator.operator_token",
                &c.orchestrator.operator_token,
            )?,
            (None, None) => bail!("give --config FILE or --token-file FILE for the operator token"),
        };
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if base.starts_with("https://") {
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
        Ok(Client { base, token, http })
    }

    pub(crate) fn with(base: String, token: Secret) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Client { base, token, http })
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach the orchestrator at {}", self.base))?;
        answer(r).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the orchestrator at {}", self.base))?;
        answer(r).await
    }
}

async fn answer(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(text);
        bail!("orchestrator answered {status}: {msg}");
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| anyhow!("orchestrator sent malformed JSON: {e}"))
}
