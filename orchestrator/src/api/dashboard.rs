//! The dashboard at `/` (DESIGN §8): three static files compiled into the
//! binary — a page, its script and its style — served without a token,
//! since they hold no data. The script asks `GET /v1/status` with the
//! token the user types (kept in the browser tab's sessionStorage), so
//! the data is as protected as the API itself. Every answer carries a
//! strict Content-Security-Policy (scripts, styles and requests from this
//! origin only; no inline script, no framing), `nosniff`, no referrer and
//! no caching.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The dashboard's paths (served without a token).
pub(super) const PATHS: [&str; 3] = ["/", "/dashboard.js", "/dashboard.css"];

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The policy every dashboard answer carries.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'; require-trusted-types-for 'script'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

pub(super) async fn script() -> Response {
    file("text/javascript; charset=utf-8", SCRIPT)
}

pub(super) async fn style() -> Response {
    file("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads its script and style from this origin only, and
    /// has no inline script the policy would block.
    #[test]
    fn the_page_fits_its_policy() {
        assert!(INDEX.contains(r#"<script src="/dashboard.js" defer></script>"#));
        assert!(INDEX.contains(r#"href="/dashboard.css""#));
        assert_eq!(INDEX.matches("<script").count(), 1, "no inline script");
        assert!(!INDEX.contains("style="), "no inline style");
        // The script never writes orchestrator text as HTML.
        for risky in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(risky), "{risky} in dashboard.js");
        }
        assert!(SCRIPT.contains("sessionStorage") && !SCRIPT.contains("localStorage"));
    }
}
