//! The URLs of Swift requests: names percent-encoded per path segment
//! (object names keep their `/`), names [`super::names`] refuses (dot
//! segments, control characters) never built, and every URL parsed again
//! after it is built: it must still point at the intended account,
//! container and object ([`checked_url`]), or it is refused, not sent.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::names;
use crate::AgentError;

/// What a request addresses: the account, a container or an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    Account,
    Container(&'a str),
    Object(&'a str, &'a str),
}

impl Target<'_> {
    /// The name for messages (escaped).
    fn describe(&self) -> String {
        match self {
            Target::Account => "the account".into(),
            Target::Container(c) => names::display(c),
            Target::Object(c, o) => format!("{}/{}", names::display(c), names::display(o)),
        }
    }

    /// Refuses names [`names`] does not accept.
    pub(crate) fn check_names(&self) -> Result<(), AgentError> {
        let problem = match self {
            Target::Account => None,
            Target::Container(c) => names::container_problem(c),
            Target::Object(c, o) => {
                names::container_problem(c).or_else(|| names::object_problem(o))
            }
        };
        match problem {
            Some(reason) => Err(AgentError::SwiftUnsafeName {
                name: self.describe(),
                reason: reason.into(),
            }),
            None => Ok(()),
        }
    }

    /// The path below the storage URL, each name percent-encoded.
    fn path(&self) -> String {
        match self {
            Target::Account => String::new(),
            Target::Container(c) => format!("/{}", encode(c)),
            Target::Object(c, o) => object_path(c, o),
        }
    }
}

/// The URL of `target` below `storage_url` with `query`, checked after it
/// is built: same scheme, host and port as the storage URL, and exactly the
/// storage URL's path followed by the encoded names (the URL parser resolved
/// no dot segment, turned no `\` into `/`, cut nothing at `?` or `#`).
/// Anything else is refused ([`AgentError::SwiftUnsafeName`]), not sent.
pub(crate) fn checked_url(
    storage_url: &str,
    target: Target<'_>,
    query: &[(&str, &str)],
) -> Result<reqwest::Url, AgentError> {
    target.check_names()?;
    built_url(storage_url, target, query)
}

/// [`checked_url`] after the name check: builds, parses again and compares.
fn built_url(
    storage_url: &str,
    target: Target<'_>,
    query: &[(&str, &str)],
) -> Result<reqwest::Url, AgentError> {
    let base = reqwest::Url::parse(storage_url).map_err(|e| AgentError::SwiftBadResponse {
        url: strip_query(storage_url),
        detail: format!("the storage URL is not a URL: {e}"),
    })?;
    if base.query().is_some() || base.fragment().is_some() || base.cannot_be_a_base() {
        return Err(AgentError::SwiftBadResponse {
            url: strip_query(storage_url),
            detail: "the storage URL has a query or fragment, or no path".into(),
        });
    }
    // the storage URL's own path must survive parsing (`/v1/AUTH_x/..` would
    // move every request to another account)
    let raw_path = storage_url
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("", |i| &rest[i..]))
        .unwrap_or("");
    let raw_path = raw_path.split(['?', '#']).next().unwrap_or("");
    let base_path = base.path().trim_end_matches('/');
    if base_path != raw_path.trim_end_matches('/') {
        return Err(AgentError::SwiftBadResponse {
            url: strip_query(storage_url),
            detail: "the storage URL's path would be rewritten by the URL layer; refused".into(),
        });
    }
    let want_path = format!("{base_path}{}", target.path());
    let mut text = format!("{}{}", base.as_str().trim_end_matches('/'), target.path());
    for (i, (k, v)) in query.iter().enumerate() {
        text.push(if i == 0 { '?' } else { '&' });
        text.push_str(&format!("{}={}", encode(k), encode(v)));
    }
    let refuse = |why: &str| AgentError::SwiftUnsafeName {
        name: target.describe(),
        reason: format!("the URL built for it {why}; refused, not sent"),
    };
    let url = reqwest::Url::parse(&text).map_err(|_| refuse("does not parse"))?;
    if url.origin() != base.origin() {
        return Err(refuse("points at another server"));
    }
    if url.path() != want_path {
        return Err(refuse(
            "would be rewritten by the URL layer (into another path)",
        ));
    }
    if url.fragment().is_some() {
        return Err(refuse("has a fragment"));
    }
    Ok(url)
}

/// Percent-encoded: everything but ASCII letters, digits and `-_.~`
/// (RFC 3986's unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// [`SEGMENT`] with `/` kept: an object name's own slashes stay path separators.
const OBJECT: &AsciiSet = &SEGMENT.remove(b'/');

/// `/container/object`, each segment percent-encoded (object `/` kept).
pub(crate) fn object_path(container: &str, object: &str) -> String {
    format!(
        "/{}/{}",
        encode(container),
        utf8_percent_encode(object, OBJECT)
    )
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub(crate) fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(object_path("c 1", "a/b c%"), "/c%201/a/b%20c%25");
        assert_eq!(encode("ü"), "%C3%BC");
    }

    #[test]
    fn urls_stay_inside_their_account_and_container() {
        let base = "http://127.0.0.1:8080/v1/AUTH_test";
        let ok =
            |c: &str, o: &str| checked_url(base, Target::Object(c, o), &[]).map(|u| u.to_string());
        // awkward but safe names: encoded as one opaque path
        for (o, want) in [
            ("back\\slash", "/c/back%5Cslash"),
            ("h#x", "/c/h%23x"),
            ("q?x", "/c/q%3Fx"),
            ("%2e%2e/x", "/c/%252e%252e/x"),
            ("e//x", "/c/e//x"),
            ("/lead", "/c//lead"),
            ("..a/b..", "/c/..a/b.."),
        ] {
            assert_eq!(ok("c", o).unwrap(), format!("{base}{want}"), "{o:?}");
        }
        // names that would leave the container: refused before anything is built
        for o in [
            "a/../b",
            "../other/x",
            "x/./y",
            "./x",
            "a/..",
            "nl\nx",
            "ctl\u{1}x",
            "del\u{7f}x",
        ] {
            let e = ok("c", o).unwrap_err();
            assert!(
                matches!(e, AgentError::SwiftUnsafeName { .. }),
                "{o:?}: {e}"
            );
            assert!(!e.to_string().contains('\n'), "escaped: {e}");
        }
        for c in ["..", ".", "a/b", ""] {
            assert!(
                checked_url(base, Target::Container(c), &[]).is_err(),
                "{c:?}"
            );
        }
        // the query is encoded and does not change the path
        let u = checked_url(base, Target::Container("c"), &[("marker", "a/../b#?&x=1")]).unwrap();
        assert_eq!(u.path(), "/v1/AUTH_test/c");
        assert_eq!(
            u.query_pairs().find(|(k, _)| k == "marker").unwrap().1,
            "a/../b#?&x=1"
        );
    }

    #[test]
    fn a_storage_url_the_parser_rewrites_is_refused() {
        // defence in depth: even a safe name is refused when the URL built
        // from the storage URL does not keep its path
        for bad in [
            "http://h/v1/AUTH_x/..",
            "http://h/v1/./AUTH_x",
            "http://h/v1\\AUTH_x",
        ] {
            let e = checked_url(bad, Target::Object("c", "o"), &[]).unwrap_err();
            assert!(
                matches!(e, AgentError::SwiftBadResponse { .. }),
                "{bad}: {e}"
            );
        }
        assert!(checked_url("http://h/v1/AUTH_x/", Target::Object("c", "o"), &[]).is_ok());
        assert!(checked_url("http://h/v1/AUTH_x?q=1", Target::Container("c"), &[]).is_err());
        // and the check after building catches a name the name rules missed
        for o in ["a/../b", "../other/x", "x/./y"] {
            let e = built_url("http://h/v1/AUTH_x", Target::Object("c", o), &[]).unwrap_err();
            assert!(e.to_string().contains("rewritten"), "{o}: {e}");
        }
        assert!(built_url("http://h/v1/AUTH_x", Target::Object("c", "a/b"), &[]).is_ok());
        assert!(checked_url("not a url", Target::Container("c"), &[]).is_err());
    }
}
