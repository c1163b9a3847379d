//! DNS names, URLs and DNS servers the services could not use: refused
//! at their key and line:col, never echoing what may be a credential.

use super::{at, with_dns, RFC2136};
use crate::{find, ok, problems, show, BASE};

#[test]
fn the_dns_base_is_valid() {
    ok(&with_dns("", ""));
}

#[test]
fn dns_names_the_dns_code_refuses_are_refused_here() {
    for (bad, why) in [
        ("www example.net", "holds ' '"),
        ("wéb.example.net", "holds 'é'"),
        (&format!("{}.example.net", "a".repeat(64)), "label of 64"),
        ("www..example.net", "empty label"),
    ] {
        let text = with_dns("name = \"www.example.net\"", &format!("name = \"{bad}\""));
        let m = at(&text, "groups.www.dns.name", &format!("\"{bad}\""));
        assert!(m.contains(why), "{bad}: {m}");
    }
    let text = with_dns("name = \"www.example.net\"", "name = \"www.other.org\"");
    let m = at(&text, "groups.www.dns.name", "\"www.other.org\"");
    assert!(m.contains("not inside zone"), "{m}");
    let text = with_dns("\"shop.example.net\"", "\"shop.other.org\"");
    let m = at(&text, "groups.www.dns.aliases[0]", "\"shop.other.org\"");
    assert!(m.contains("not inside zone"), "{m}");
    let text = with_dns("zone = \"example.net\"", "zone = \"exa mple.net\"");
    at(&text, "groups.www.dns.zone", "\"exa mple.net\"");
    let text = with_dns("key_name = \"warden-key\"", "key_name = \"bad key name!\"");
    at(&text, "groups.www.dns.key_name", "\"bad key name!\"");
    let text = with_dns("key_name = \"warden-key\"", "key_name = \"\"");
    at(&text, "groups.www.dns.key_name", "\"\"");
    // Case and a trailing dot do not matter.
    ok(&with_dns(
        "name = \"www.example.net\"",
        "name = \"WWW.Example.NET.\"",
    ));
}

#[test]
fn urls_the_services_cannot_parse_are_refused_here() {
    for bad in [
        "http://  not a url",
        "http://127.0.0.1:99999",
        "http://[::1",
    ] {
        let text = BASE.replace(
            "listen = \"10.0.0.2:7000\"",
            &format!("listen = \"10.0.0.2:7000\"\nurl = \"{bad}\""),
        );
        let m = at(&text, "orchestrator.url", &format!("\"{bad}\""));
        assert!(m.contains("not a URL"), "{bad}: {m}");
    }
    let text = BASE.replace(
        "url = \"http://127.0.0.1:8080/healthz\"",
        "url = \"http://[::1\"",
    );
    at(&text, "sites.ca.checks[0].url", "\"http://[::1\"");
    let text = BASE.replace(
        "operator_token = { file = \"/etc/warden/operator.token\" }\n",
        "operator_token = { file = \"/etc/warden/operator.token\" }\nstore = \"etcd\"\netcd = { endpoints = [\"http://[::1:12379\"] }\n",
    );
    at(
        &text,
        "orchestrator.etcd.endpoints[0]",
        "\"http://[::1:12379\"",
    );
}

#[test]
fn a_url_holding_credentials_is_refused_without_echoing_them() {
    let text = format!(
        "{BASE}\n[groups.www]\nsites = [\"ca\", \"tx\"]\nscheme = \"dns\"\n[groups.www.dns]\nprovider = \"dyndns2\"\n\
         name = \"www.example.net\"\nserver = \"http://user:hunter2-supersecret@127.0.0.1:5353/nic/update\"\n\
         credentials = {{ file = \"/etc/warden/dd.cred\" }}\nuser_agent = \"Co Prog/1 ops@example.net\"\n\
         addresses = {{ ca = \"10.1.0.10\", tx = \"10.2.0.10\" }}\n"
    );
    let p = problems(&text);
    let found = find(&p, "groups.www.dns.server");
    assert!(found.message.contains("credentials"), "{found}");
    assert!(!show(&p).contains("hunter2"), "{}", show(&p));
    let bad_ua = text.replace("user:hunter2-supersecret@", "").replace(
        "Co Prog/1 ops@example.net",
        "Co Prog/1 ops@example.net\\r\\nX-Evil: 1",
    );
    let p = problems(&bad_ua);
    find(&p, "groups.www.dns.user_agent");
}

/// Port 0 parses in a URL and in an `IP:PORT`, but no request, query or
/// update sent there reaches anything: a check or endpoint URL, a webhook,
/// an update URL, a DNS server (a check's, rfc2136's, a nameserver) on
/// port 0 would fail at every use after the process started well. Each is
/// refused at its key and line:col, as a backend's or a TCP check's port 0
/// already is.
#[test]
fn port_zero_in_a_url_or_a_dns_server_is_refused() {
    // A site's HTTP check.
    let text = BASE.replace(
        "http://127.0.0.1:8080/healthz",
        "http://127.0.0.1:0/healthz",
    );
    let m = at(
        &text,
        "sites.ca.checks[0].url",
        "\"http://127.0.0.1:0/healthz\"",
    );
    assert!(m.contains("port 0"), "{m}");
    // A webhook (its URL is never echoed).
    let text = format!(
        "{BASE}\n[[orchestrator.notify]]\nname = \"chat\"\nurl = \"https://hooks.example.net:0/x\"\n"
    );
    let p = problems(&text);
    let found = find(&p, "orchestrator.notify[0].url");
    assert!(found.message.contains("port 0"), "{found}");
    // A dyndns2 update URL.
    let text = format!(
        "{BASE}\n[groups.www]\nsites = [\"ca\", \"tx\"]\nscheme = \"dns\"\n[groups.www.dns]\nprovider = \"dyndns2\"\n\
         name = \"www.example.net\"\nserver = \"https://members.example.net:0/nic/update\"\n\
         credentials = {{ file = \"/etc/warden/dd.cred\" }}\nuser_agent = \"Co Prog/1 ops@example.net\"\n\
         addresses = {{ ca = \"10.1.0.10\", tx = \"10.2.0.10\" }}\n"
    );
    let m = at(
        &text,
        "groups.www.dns.server",
        "\"https://members.example.net:0/nic/update\"",
    );
    assert!(m.contains("port 0"), "{m}");
    // rfc2136's server and a nameserver.
    let text = with_dns("server = \"127.0.0.1:53\"", "server = \"127.0.0.1:0\"");
    let m = at(&text, "groups.www.dns.server", "\"127.0.0.1:0\"");
    assert!(m.contains("port 0"), "{m}");
    let text = with_dns(
        "key_name = \"warden-key\"",
        "key_name = \"warden-key\"\nnameservers = [\"[2001:db8::53]:0\"]",
    );
    let m = at(
        &text,
        "groups.www.dns.nameservers[0]",
        "\"[2001:db8::53]:0\"",
    );
    assert!(m.contains("port 0"), "{m}");
    assert!(warden_config::parse_dns_server("10.0.0.53:0").is_err());
    // A dns check's server.
    let text = format!(
        "{BASE}\n[[sites.tx.checks]]\nname = \"resolver\"\nkind = \"dns\"\nserver = \"10.2.0.53:0\"\nquery = \"app.tx.example.org\"\n"
    );
    let m = at(&text, "sites.tx.checks[0].server", "\"10.2.0.53:0\"");
    assert!(m.contains("other than 0"), "{m}");
    // Their ports, or none (the scheme's own, 53 for DNS): accepted.
    ok(&BASE.replace("http://127.0.0.1:8080/healthz", "http://127.0.0.1/healthz"));
    ok(&with_dns(
        "server = \"127.0.0.1:53\"",
        "server = \"127.0.0.1\"",
    ));
    ok(&format!(
        "{BASE}\n[[sites.tx.checks]]\nname = \"resolver\"\nkind = \"dns\"\nserver = \"10.2.0.53:5353\"\nquery = \"app.tx.example.org\"\n"
    ));
}

/// Two groups given one DNS record name (a name or an alias, in any case,
/// with or without the final dot) on one server were accepted: both
/// groups update it, each undoing the other's moves, and with rfc2136
/// they share its marker `_warden.NAME`, so the group behind in epochs is
/// refused as stale at every move. Refused at the later name, naming the
/// first; the same name on another primary (another view) is fine.
#[test]
fn two_groups_cannot_update_one_dns_record() {
    let second = |name: &str, server: &str| {
        RFC2136
            .replace("[groups.www", "[groups.shop")
            .replace("\"shop.example.net\"", "\"cart.example.net\"")
            .replace("name = \"www.example.net\"", &format!("name = \"{name}\""))
            .replace(
                "server = \"127.0.0.1:53\"",
                &format!("server = \"{server}\""),
            )
    };
    // The same name, in capitals with a final dot, on the same primary
    // (its port left out: 53).
    let text = with_dns("", "") + &second("WWW.Example.NET.", "127.0.0.1");
    let m = at(&text, "groups.shop.dns.name", "\"WWW.Example.NET.\"");
    assert!(m.contains("groups.www.dns.name"), "{m}");
    // One group's name is the other's alias.
    let text = with_dns("", "") + &second("shop.example.net", "127.0.0.1:53");
    let m = at(&text, "groups.shop.dns.name", "\"shop.example.net\"");
    assert!(m.contains("groups.www.dns.aliases[0]"), "{m}");
    // Another primary: another view of the zone.
    ok(&(with_dns("", "") + &second("www.example.net", "127.0.0.2:53")));
    // No-IP, whichever of its update URLs.
    let noip = |group: &str, server: &str| {
        format!(
            "\n[groups.{group}]\nsites = [\"ca\", \"tx\"]\nscheme = \"dns\"\n[groups.{group}.dns]\nprovider = \"noip\"\n\
             name = \"app.ddns.net\"\n{server}credentials = {{ file = \"/etc/warden/noip.cred\" }}\n\
             user_agent = \"Co Prog/1 ops@example.net\"\naddresses = {{ ca = \"10.1.0.10\", tx = \"10.2.0.10\" }}\n"
        )
    };
    let text = format!(
        "{BASE}{}{}",
        noip("a", ""),
        noip(
            "b",
            "server = \"http://dynupdate.no-ip.com:8245/nic/update\"\n"
        )
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{}", show(&p));
    assert_eq!(p[0].key, "groups.b.dns.name");
}
