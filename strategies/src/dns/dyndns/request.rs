//! The HTTP side of an update: the update URL (hostnames and addresses in
//! the query, commas and colons literal), the HTTP client (no redirects,
//! system roots), and what a transport failure or a non-`200` answer means
//! (unreachable, rejected, or — 401/403, 429 — a block or a hold).

use super::*;

use std::sync::Arc;

use reqwest::StatusCode;

impl DyndnsProvider {
    fn unreachable(&self, reason: String) -> StrategyError {
        StrategyError::Unreachable {
            element: self.element.clone(),
            reason,
        }
    }

    /// The update URL for `hosts` and `value` (commas and colons left as
    /// they are: servers of this family expect them literally).
    pub(super) fn update_url(&self, hosts: &[String], value: &RecordValue) -> Url {
        let mut q = String::new();
        if let Some(existing) = self.url.query() {
            if !existing.is_empty() {
                q.push_str(existing);
                q.push('&');
            }
        }
        q.push_str("hostname=");
        q.push_str(&encode(&hosts.join(",")));
        if let Some(a) = value.v4 {
            q.push_str("&myip=");
            q.push_str(&a.to_string());
        }
        if let Some(a) = value.v6 {
            q.push_str("&myipv6=");
            q.push_str(&a.to_string());
        }
        let mut url = self.url.clone();
        url.set_query(Some(&q));
        url
    }

    /// Turn a transport failure into an error.
    pub(super) fn transport_error(&self, e: &reqwest::Error) -> StrategyError {
        if e.is_timeout() {
            return self.unreachable(format!(
                "no answer within {:?} (the update may or may not have been applied; it is retried); check the network path to the server or raise groups.{}.dns.timeout",
                self.timeout, self.group
            ));
        }
        let hint = if e.is_connect() {
            match self.flavor {
                Flavor::Noip => format!(
                    " (check server and the network path; No-IP also listens on port 8245: server = \"{NOIP_SERVER_8245}\")"
                ),
                Flavor::Dyndns2 => " (check server and the network path)".to_string(),
            }
        } else {
            String::new()
        };
        self.unreachable(format!("{}{hint}", error_text(e)))
    }

    /// Handle an HTTP answer that is not `200` with return codes.
    pub(super) fn status_error(
        &self,
        status: StatusCode,
        text: &str,
        location: Option<String>,
    ) -> StrategyError {
        let s = status.as_u16();
        let q = quote(text);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let why = format!(
                "the server refused the request's credentials ({q}); fix the secret named by groups.{}.dns.credentials (USER:PASSWORD)",
                self.group
            );
            return self.block(&format!("HTTP {s}"), &why);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return self.hold(
                &format!("HTTP {s}"),
                "the server is rate-limiting this client",
            );
        }
        if status.is_server_error() {
            return self.unreachable(format!(
                "HTTP {s} ({q}): the update server has a problem; the update is retried"
            ));
        }
        if status.is_redirection() {
            return self.rejected(format!(
                "HTTP {s} redirect to {}: set groups.{}.dns.server to the update URL itself (credentials are not sent across redirects)",
                location
                    .map(|l| crate::text::quote(&l, 200, "Location"))
                    .unwrap_or_else(|| "(no Location)".into()),
                self.group
            ));
        }
        self.rejected(format!(
            "HTTP {s} ({q}): is groups.{}.dns.server the update URL (…/nic/update)?",
            self.group
        ))
    }
}

/// Percent-encode a query value, leaving unreserved characters, `,` and `:` as they are.
pub(super) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b',' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A reqwest error and its causes, `a: b: c`, without the URL (reqwest
/// writes `… for url (URL)`; the URL carries the query).
fn error_text(e: &reqwest::Error) -> String {
    let full = e.to_string();
    let first = match full.find(" for url (") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    crate::text::with_causes(first, e)
}

/// The HTTP client: redirects not followed (credentials stay with the
/// configured URL), certificates checked against the system's roots.
pub(super) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| e.to_string())
}
