//! The `dns` check kind: its keys and every mistake at its place.

use warden_config::CheckKind;

use crate::{find, ok, pos_of, problems, show, BASE};

const DNS: &str = r#"
[[sites.tx.checks]]
name = "resolver"
kind = "dns"
server = "10.2.0.53"
query = "app.tx.example.org"
expect = "10.2.0.10"

[[sites.tx.endpoints]]
name = "authoritative"
kind = "dns"
server = "10.2.0.54:5353"
query = "tx.example.org."
record_type = "soa"
"#;

#[test]
fn dns_checks_and_endpoints() {
    let c = ok(&format!("{BASE}{DNS}"));
    let check = &c.sites["tx"].checks[0];
    assert_eq!(*check.kind.get_ref(), CheckKind::Dns);
    assert_eq!(check.dns_server(), Some("10.2.0.53:53".parse().unwrap()));
    assert_eq!(
        c.sites["tx"].endpoints[0].dns_server(),
        Some("10.2.0.54:5353".parse().unwrap())
    );
    // a host name is no server address, a name with a space no DNS name, a
    // type the check does not ask for, and keys of another kind
    let text = format!("{BASE}{DNS}")
        .replace("\"10.2.0.53\"", "\"dns.tx.example.org\"")
        .replace("query = \"app.tx.example.org\"", "query = \"app tx\"")
        .replace(
            "record_type = \"soa\"",
            "record_type = \"AXFR\"\ncontainer = \"c\"",
        );
    let p = problems(&text);
    let e = find(&p, "sites.tx.checks[0].server");
    assert!(e.message.contains("IP address"), "{}", show(&p));
    assert_eq!((e.line, e.col), pos_of(&text, "\"dns.tx.example.org\""));
    find(&p, "sites.tx.checks[0].query");
    assert!(
        find(&p, "sites.tx.endpoints[0].record_type")
            .message
            .contains("SOA"),
        "{}",
        show(&p)
    );
    find(&p, "sites.tx.endpoints[0].container");
    // what it needs
    let text = format!("{BASE}{DNS}").replace(
        "server = \"10.2.0.53\"\nquery = \"app.tx.example.org\"\n",
        "",
    );
    let p = problems(&text);
    find(&p, "sites.tx.checks[0].server");
    find(&p, "sites.tx.checks[0].query");
    // an interval longer than five minutes would hide a failure that long
    let text = format!("{BASE}{DNS}").replace(
        "expect = \"10.2.0.10\"",
        "expect = \"10.2.0.10\"\ninterval = \"6m\"",
    );
    let p = problems(&text);
    let e = find(&p, "sites.tx.checks[0].interval");
    assert!(e.message.contains("at most 5m"), "{}", show(&p));
    assert_eq!((e.line, e.col), pos_of(&text, "\"6m\""));
    // dns keys on an http check
    let text = format!("{BASE}{DNS}").replace(
        "url = \"http://127.0.0.1:8080/healthz\"",
        "url = \"http://127.0.0.1:8080/healthz\"\nexpect = \"x\"",
    );
    let p = problems(&text);
    assert!(
        find(&p, "sites.ca.checks[0].expect")
            .message
            .contains("not used by this kind"),
        "{}",
        show(&p)
    );
}

/// A dns check's `expect` must be a value its record type can have: an A
/// answer is an IPv4 address, an AAAA answer an IPv6 one. Any other value
/// matches no answer, and the check fails at every run (the site looks
/// down). Refused at its line:col; other types take any text.
#[test]
fn a_dns_expect_its_record_type_cannot_hold_is_refused() {
    for (rtype, bad) in [
        ("", "fd00::10"),
        ("", "www.tx.example.org"),
        ("record_type = \"a\"\n", "10.2.0"),
        ("record_type = \"AAAA\"\n", "10.2.0.10"),
    ] {
        let text = format!("{BASE}{DNS}").replace(
            "expect = \"10.2.0.10\"",
            &format!("{rtype}expect = \"{bad}\""),
        );
        let p = problems(&text);
        let e = find(&p, "sites.tx.checks[0].expect");
        assert!(e.message.contains("fail at every run"), "{}", show(&p));
        assert_eq!(
            (e.line, e.col),
            pos_of(&text, &format!("\"{bad}\"")),
            "{rtype}{bad}"
        );
        assert_eq!(p.len(), 1, "{}", show(&p));
    }
    for (rtype, good) in [
        ("record_type = \"AAAA\"\n", "fd00::10"),
        ("record_type = \"CNAME\"\n", "app.tx.example.org."),
        ("record_type = \"MX\"\n", "10 mail.example.org"),
    ] {
        ok(&format!("{BASE}{DNS}").replace(
            "expect = \"10.2.0.10\"",
            &format!("{rtype}expect = \"{good}\""),
        ));
    }
}
