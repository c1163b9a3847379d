//! Putting what a server or a connection said into one short line: a
//! bounded list of what it offers, the secret of the request masked.

use std::error::Error as _;

/// A reqwest error with its causes ("connection refused", "timed out").
pub(crate) fn transport(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cause = c.source();
    }
    one_line(&s, 300)
}

/// `text` on one line of printable characters, at most `max` characters
/// (an ellipsis marks a cut).
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.trim().chars().count() > max {
        out.push('…');
    }
    out
}

/// At most this many of what a catalog offers are named in a message.
const SHOWN: usize = 10;

/// `items` (what a catalog offers, say) for a message: each once, in their
/// order, on one line, the first [`SHOWN`] named and the others counted. A
/// catalog may hold thousands, in names with line breaks.
pub(crate) fn listed(items: impl Iterator<Item = String>) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut shown = Vec::new();
    let mut more = 0usize;
    for item in items {
        if seen.insert(item.clone()) {
            if shown.len() < SHOWN {
                shown.push(one_line(&item, 64));
            } else {
                more += 1;
            }
        }
    }
    let mut out = shown.join(", ");
    if more > 0 {
        out.push_str(&format!(", and {more} more"));
    }
    out
}

/// `: ` and the `error.message` of an OpenStack error body (Keystone's
/// `{"error": {"message": …}}`), else its first line of text, or empty;
/// `sent` (the password, key or secret of the request answered) written
/// `****` wherever the answer quotes it (see [`masked`]).
pub(crate) fn service_message(body: &[u8], sent: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        message: String,
    }
    let text = match serde_json::from_slice::<Body>(body) {
        Ok(b) => b.error.message,
        Err(_) => String::from_utf8_lossy(body)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_string(),
    };
    let text = one_line(&masked(&text, sent), 200);
    if text.is_empty() {
        text
    } else {
        format!(": {text}")
    }
}

/// `text` with `secret` written `****`, as it was sent and as a JSON
/// string writes it (`\"` for a quote). An answer may quote the request
/// it refuses — Keystone's schema validation quotes the value it refused,
/// a web application firewall's page or an echo service mistaken for
/// Keystone the whole body — and what the answer says goes into errors,
/// a check's detail, events and logs. Masked before any cut, so no part
/// of it is left at a cut's edge.
pub(crate) fn masked(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let mut out = text.replace(secret, "****");
    if let Ok(quoted) = serde_json::to_string(secret) {
        let escaped = &quoted[1..quoted.len() - 1];
        if escaped != secret {
            out = out.replace(escaped, "****");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keystone_error_body_gives_its_message() {
        let body = br#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#;
        assert_eq!(
            service_message(body, "pw"),
            ": The request you have made requires authentication."
        );
        assert_eq!(
            service_message(b"<html>\n<h1>401 Unauthorized</h1>", "pw"),
            ": <html>"
        );
        assert_eq!(service_message(b"", "pw"), "");
        let long = "x".repeat(500);
        assert!(service_message(long.as_bytes(), "pw").ends_with('…'));
    }
}
