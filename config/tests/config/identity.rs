//! `[sites.NAME.identity]`: how a site answers through the public entry
//! (what a verify step checks), and each mistake at its key and line:col.

use crate::{find, ok, one, pos_of, problems, BASE};

/// BASE with `ca` and `tx` identities (TOML tables placed after each site's keys).
fn with_identities(ca: &str, tx: &str) -> String {
    BASE.replace(
        "[[sites.ca.checks]]",
        &format!("[sites.ca.identity]\n{ca}\n[[sites.ca.checks]]"),
    )
    .replace(
        "[frontends.fe1]",
        &format!("[sites.tx.identity]\n{tx}\n[frontends.fe1]"),
    )
}

#[test]
fn a_header_and_a_body_identity_parse_with_defaults() {
    let c = ok(&with_identities(
        "header = \"X-Served-By\"\nvalue = \"ca\"",
        "body_contains = \"site tx\"\npath = \"/whoami\"\ntimeout = \"500ms\"",
    ));
    let ca = c.sites["ca"].identity.as_ref().expect("ca identity");
    assert_eq!(ca.path, "/");
    assert_eq!(ca.timeout, std::time::Duration::from_secs(2));
    assert!(ca.matches([("x-served-by", b"ca".as_slice())].into_iter(), ""));
    assert!(!ca.matches([("x-served-by", b"tx".as_slice())].into_iter(), "ca"));
    let tx = c.sites["tx"].identity.as_ref().expect("tx identity");
    assert_eq!(tx.path, "/whoami");
    assert!(tx.matches(std::iter::empty(), "hello from site tx\n"));
    assert!(!tx.matches(std::iter::empty(), "hello from site ca\n"));
}

#[test]
fn neither_or_both_ways_are_refused() {
    let text = with_identities("path = \"/\"", "body_contains = \"tx\"");
    let p = one(&text);
    assert_eq!(p.key, "sites.ca.identity");
    assert!(
        p.message
            .contains("either header and value, or body_contains"),
        "{p}"
    );

    let text = with_identities(
        "header = \"X-Site\"\nvalue = \"ca\"\nbody_contains = \"ca\"",
        "body_contains = \"tx\"",
    );
    assert_eq!(one(&text).key, "sites.ca.identity");
}

#[test]
fn a_header_without_its_value_is_refused() {
    let text = with_identities("header = \"X-Site\"", "body_contains = \"tx\"");
    let p = one(&text);
    assert!(p.message.contains("header and value go together"), "{p}");
}

#[test]
fn a_bad_header_name_and_path_are_refused_at_their_place() {
    let text = with_identities(
        "header = \"X Site\"\nvalue = \"ca\"\npath = \"whoami\"",
        "body_contains = \"tx\"",
    );
    let p = problems(&text);
    let h = find(&p, "sites.ca.identity.header");
    assert_eq!((h.line, h.col), pos_of(&text, "\"X Site\""));
    let path = find(&p, "sites.ca.identity.path");
    assert_eq!((path.line, path.col), pos_of(&text, "\"whoami\""));
}

#[test]
fn an_empty_match_is_refused() {
    let text = with_identities("body_contains = \"\"", "body_contains = \"tx\"");
    assert!(one(&text).message.contains("cannot tell sites apart"));
}

#[test]
fn two_sites_of_a_group_identified_alike_are_refused() {
    let text = with_identities("body_contains = \"web\"", "body_contains = \"web\"");
    let p = one(&text);
    assert_eq!(p.key, "sites.tx.identity");
    assert!(p.message.contains("same as sites.ca.identity"), "{p}");
    assert!(p.message.contains("group web"), "{p}");
}

/// Identities that differ only where the verify step does not look were
/// accepted as different: the same header in other letter case with the
/// same value, or the same header and value asked for on another path
/// (or with another timeout) — an answer of either site matches both —
/// and a body_contains inside the other's ("node web1" is in every answer
/// holding "node web10"): a verify of ca passed while tx still served.
/// Refused at the later site; another value or a needle of its own is fine.
#[test]
fn identities_an_answer_of_the_other_site_matches_are_refused() {
    for (ca, tx, how) in [
        (
            "header = \"X-Served-By\"\nvalue = \"web1\"",
            "header = \"x-served-by\"\nvalue = \"web1\"\npath = \"/whoami\"\ntimeout = \"1s\"",
            "same header and value",
        ),
        (
            "body_contains = \"node web1\"",
            "body_contains = \"node web10\"",
            "body_contains inside",
        ),
    ] {
        let p = one(&with_identities(ca, tx));
        assert_eq!(p.key, "sites.tx.identity");
        assert!(p.message.contains(how), "{p}");
        assert!(p.message.contains("sites.ca.identity"), "{p}");
    }
    ok(&with_identities(
        "header = \"X-Served-By\"\nvalue = \"web1\"",
        "header = \"x-served-by\"\nvalue = \"web2\"",
    ));
    ok(&with_identities(
        "body_contains = \"node web1 \"",
        "body_contains = \"node web10 \"",
    ));
}
