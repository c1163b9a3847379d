//! Whatever check-config accepts must run: values a service would refuse
//! when it starts (a URL its HTTP client cannot parse, a DNS name its DNS
//! code cannot, an address it cannot connect to or bind) are refused here,
//! at their key and line:col, and never echo what may be a credential.

use crate::{find, ok, pos_of_nth, problems, show, BASE};

const RFC2136: &str = r#"
[groups.www]
sites = ["ca", "tx"]
scheme = "dns"

[groups.www.dns]
provider = "rfc2136"
name = "www.example.net"
aliases = ["shop.example.net"]
server = "127.0.0.1:53"
zone = "example.net"
credentials = { file = "/etc/warden/tsig.key" }
key_name = "warden-key"
addresses = { ca = "10.1.0.10", tx = "10.2.0.10" }
"#;

fn with_dns(from: &str, to: &str) -> String {
    let dns = RFC2136.replace(from, to);
    assert!(from.is_empty() || dns != RFC2136, "{from} not in the base");
    format!("{BASE}{dns}")
}

/// The problem at `key`, at the last occurrence of `needle` (the second
/// of two addresses is the one reported).
fn at(text: &str, key: &str, needle: &str) -> String {
    let p = problems(text);
    let found = find(&p, key);
    let last = text.matches(needle).count().saturating_sub(1);
    assert_eq!(
        (found.line, found.col),
        pos_of_nth(text, needle, last),
        "{found}"
    );
    found.message.clone()
}

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

#[test]
fn addresses_that_are_not_host_port_are_refused() {
    for bad in [
        "http://127.0.0.1:18081",
        "::1:18081",
        "host name:80",
        "h/x:80",
    ] {
        let text = BASE.replace("\"10.1.0.10:8443\"", &format!("\"{bad}\""));
        at(
            &text,
            "groups.web.frontend.backends.ca",
            &format!("\"{bad}\""),
        );
    }
    for good in ["[::1]:18081", "app.ca.example.net:8443", "10.1.0.10:1"] {
        ok(&BASE.replace("\"10.1.0.10:8443\"", &format!("\"{good}\"")));
    }
    let text = BASE.replace(
        "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
        "kind = \"tcp\"\naddress = \"tcp://x:18080\"",
    );
    at(&text, "sites.ca.checks[0].address", "\"tcp://x:18080\"");
}

const WEB2: &str = r#"
[groups.web2]
sites = ["ca", "tx"]
scheme = "frontend"

[groups.web2.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "LISTEN"
backends = { ca = "10.1.0.10:8444", tx = "10.2.0.10:8444" }
"#;

#[test]
fn a_frontend_cannot_bind_one_port_twice() {
    // The same address as group web, a wildcard over it, the control API's.
    for listen in ["10.0.0.5:443", "0.0.0.0:443", "[::]:443", "10.0.0.5:7100"] {
        let text = format!("{BASE}{}", WEB2.replace("LISTEN", listen));
        let m = at(
            &text,
            "groups.web2.frontend.listen",
            &format!("\"{listen}\""),
        );
        assert!(m.contains("binds this port already"), "{listen}: {m}");
    }
    // Another port, another IP on the port, or any free port: fine.
    for listen in ["10.0.0.5:444", "10.0.0.6:443", "127.0.0.1:0"] {
        ok(&format!("{BASE}{}", WEB2.replace("LISTEN", listen)));
    }
    let text = format!(
        "{BASE}\n[frontends.fe2]\ncontrol = \"10.0.0.5:7100\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n"
    )
    .replace("frontends = [\"fe1\"]", "frontends = [\"fe1\", \"fe2\"]");
    let p = problems(&text);
    let m = &find(&p, "frontends.fe2.control").message;
    assert!(m.contains("frontends.fe1.control"), "{m}");
}

/// The problems `check_deployment` (what `warden check-config` runs)
/// finds in `text`, written to a file of its own; none when it passes.
fn deployment_problems(text: &str) -> Vec<warden_config::Problem> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("failover.conf");
    std::fs::write(&path, text).unwrap();
    match warden_config::check_deployment(&path) {
        Ok(_) => Vec::new(),
        Err(warden_config::ConfigError::Invalid(ps)) => ps,
        Err(e) => panic!("{e}"),
    }
}

/// `check_deployment` (what `warden check-config` runs) refuses two roles
/// given one token reference, as the orchestrator's start would: operator
/// tokens, the read token and agent tokens are each their own; a
/// frontend's differs from them all, while frontends may share one. A
/// plain `parse` (what an agent or a frontend loads) leaves it alone.
#[test]
fn a_token_reference_shared_between_roles_is_refused_by_check_config() {
    let check = deployment_problems;
    assert_eq!(check(BASE), vec![], "the base config");
    // The read token and a named operator's share a variable; site tx's
    // agent token is the operator token's file; a second frontend shares
    // fe1's file (allowed).
    let text = BASE
        .replace(
            "operator_token = { file = \"/etc/warden/operator.token\" }",
            "operator_token = { file = \"/etc/warden/operator.token\" }\n\
             read_token = { env = \"WARDEN_SHARED\" }\n\
             operators = [{ name = \"alice\", token = { env = \"WARDEN_SHARED\" } }]",
        )
        .replace(
            "agent_token = { env = \"WARDEN_TX_TOKEN\" }",
            "agent_token = { file = \"/etc/warden/operator.token\" }",
        )
        + "\n[frontends.fe2]\ncontrol = \"10.0.0.6:7100\"\ntoken = { file = \"/etc/warden/fe1.token\" }\n";
    ok(&text);
    let ps = check(&text);
    let said: Vec<(String, String)> = ps
        .iter()
        .map(|p| (p.key.clone(), p.message.clone()))
        .collect();
    assert_eq!(ps.len(), 2, "{said:?}");
    assert_eq!(ps[0].key, "orchestrator.read_token");
    assert!(
        ps[0]
            .message
            .contains("the same secret as orchestrator.operators[0].token (env \"WARDEN_SHARED\")"),
        "{said:?}"
    );
    assert_eq!(ps[1].key, "sites.tx.agent_token");
    assert!(
        ps[1]
            .message
            .contains("the same secret as orchestrator.operator_token"),
        "{said:?}"
    );
}

/// `check_deployment` refuses an address other hosts dial given as port 0
/// or as a wildcard IP: the orchestrator's API without `url`, a built-in
/// frontend's control API, an HAProxy's TCP runtime API. A wildcard
/// orchestrator with `url` passes; plain `parse` accepts them all (a
/// single process's tests use port 0).
#[test]
fn an_address_other_hosts_dial_must_name_one_host_and_port() {
    let check = deployment_problems;
    let haproxy = "\n[frontends.hp]\nkind = \"haproxy\"\nruntime = \"0.0.0.0:9999\"\n";
    let text = BASE
        .replace("listen = \"10.0.0.2:7000\"", "listen = \"0.0.0.0:7000\"")
        .replace("control = \"10.0.0.5:7100\"", "control = \"10.0.0.5:0\"")
        + haproxy;
    ok(&text);
    let ps = check(&text);
    let said: Vec<(String, usize, usize, String)> = ps
        .iter()
        .map(|p| (p.key.clone(), p.line, p.col, p.message.clone()))
        .collect();
    assert_eq!(ps.len(), 3, "{said:?}");
    let o = find(&ps, "orchestrator.listen");
    assert_eq!((o.line, o.col), pos_of_nth(&text, "\"0.0.0.0:7000\"", 0));
    assert!(o.message.contains("set url"), "{said:?}");
    let c = find(&ps, "frontends.fe1.control");
    assert_eq!((c.line, c.col), pos_of_nth(&text, "\"10.0.0.5:0\"", 0));
    assert!(c.message.contains("port 0"), "{said:?}");
    let h = find(&ps, "frontends.hp.runtime");
    assert!(h.message.contains("every address of its host"), "{said:?}");
    // The wildcard orchestrator with its url, the others named: accepted.
    let fixed = BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"0.0.0.0:7000\"\nurl = \"http://10.0.0.2:7000\"",
    ) + &haproxy.replace("0.0.0.0", "10.0.0.7");
    assert_eq!(check(&fixed), vec![]);
    // A url that names the wildcard, or port 0, is no better.
    for url in [
        "http://0.0.0.0:7000",
        "http://[::]:7000",
        "http://10.0.0.2:0",
    ] {
        let text = fixed.replace("http://10.0.0.2:7000", url);
        let ps = check(&text);
        assert_eq!(ps.len(), 1, "{url}: {ps:?}");
        assert_eq!(ps[0].key, "orchestrator.url", "{url}");
    }
}

/// The same checks on the forms that are easy to miss: a wildcard written
/// as an IPv4-mapped IPv6 address (`[::ffff:0.0.0.0]` is every IPv4
/// address of the host on Linux, and dialled it is the dialler itself), a
/// node's address at its own line and column, the orchestrator's own `url`
/// left beside `nodes` (unused: each node's is dialled), and a group's
/// users' `listen` on port 0 (users, and the hybrid probe, dial it).
#[test]
fn dialled_addresses_in_every_form() {
    let check = deployment_problems;
    let keys = |ps: &[warden_config::Problem]| -> Vec<String> {
        ps.iter().map(|p| p.key.clone()).collect()
    };
    // IPv4-mapped wildcards, in listen and in url.
    let mapped = BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"[::ffff:0.0.0.0]:7000\"",
    );
    ok(&mapped);
    assert_eq!(keys(&check(&mapped)), ["orchestrator.listen"]);
    let mapped_url = BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"0.0.0.0:7000\"\nurl = \"http://[::ffff:0.0.0.0]:7000\"",
    );
    assert_eq!(keys(&check(&mapped_url)), ["orchestrator.url"]);
    // Plain IPv6 forms that can be dialled pass; `[::]` with a url too.
    for listen in ["[2001:db8::2]:7000", "[::1]:7000"] {
        let t = BASE.replace("10.0.0.2:7000", listen);
        assert_eq!(check(&t), vec![], "{listen}");
    }
    let t = BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"[::]:7000\"\nurl = \"http://[2001:db8::2]:7000\"",
    );
    assert_eq!(check(&t), vec![]);

    // Nodes: the top-level listen and url are unused; each node's counts.
    let nodes = BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"0.0.0.0:0\"\nurl = \"http://0.0.0.0:7000\"\nstore = \"etcd\"",
    ) + "\n[orchestrator.etcd]\nendpoints = [\"http://10.0.0.9:2379\"]\n\
         [[orchestrator.nodes]]\nname = \"n1\"\nlisten = \"10.0.0.2:7000\"\n\
         [[orchestrator.nodes]]\nname = \"n2\"\nlisten = \"10.0.0.3:0\"\n";
    ok(&nodes);
    let ps = check(&nodes);
    assert_eq!(keys(&ps), ["orchestrator.nodes[1].listen"], "{ps:?}");
    assert_eq!(
        (ps[0].line, ps[0].col),
        pos_of_nth(&nodes, "\"10.0.0.3:0\"", 0)
    );

    // A group's users' port 0.
    let zero = BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"0.0.0.0:0\"");
    ok(&zero);
    let ps = check(&zero);
    assert_eq!(keys(&ps), ["groups.web.frontend.listen"], "{ps:?}");
    assert_eq!(
        (ps[0].line, ps[0].col),
        pos_of_nth(&zero, "\"0.0.0.0:0\"", 0)
    );
    // Its wildcard is fine: the frontend's own host is where users go.
    let wild = BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"0.0.0.0:443\"");
    assert_eq!(check(&wild), vec![]);
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

/// A built-in frontend binds its group's `listen` on its host; when that
/// is the orchestrator's host and the port its API's, the frontend and the
/// orchestrator cannot both bind it, and whichever starts second stops.
/// check-config refuses it at the group's listen: the API's own IP and
/// port, a loopback listen beside an API on a wildcard, or a wildcard
/// listen on a frontend whose control API is on the orchestrator's IP. A
/// wildcard listen on another host, or another port, is fine.
#[test]
fn a_group_listen_at_the_orchestrators_api_is_refused_by_check_config() {
    let check = deployment_problems;
    let keys = |ps: &[warden_config::Problem]| -> Vec<String> {
        ps.iter().map(|p| p.key.clone()).collect()
    };
    // The API's own address.
    let text = BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"10.0.0.2:7000\"");
    ok(&text);
    let ps = check(&text);
    assert_eq!(keys(&ps), ["groups.web.frontend.listen"], "{ps:?}");
    assert_eq!(
        (ps[0].line, ps[0].col),
        pos_of_nth(&text, "\"10.0.0.2:7000\"", 1)
    );
    assert!(ps[0].message.contains("orchestrator.listen"), "{ps:?}");
    // Everything on one host's loopback.
    let local = BASE
        .replace("10.0.0.2:7000", "127.0.0.1:7000")
        .replace("10.0.0.5:7100", "127.0.0.1:7100");
    assert_eq!(check(&local), vec![]);
    for listen in ["127.0.0.1:7000", "0.0.0.0:7000", "[::]:7000"] {
        let text = local.replace(
            "listen = \"10.0.0.5:443\"",
            &format!("listen = \"{listen}\""),
        );
        assert_eq!(
            keys(&check(&text)),
            ["groups.web.frontend.listen"],
            "{listen}"
        );
    }
    // A frontend on the orchestrator's host, binding every address.
    let same_host = BASE
        .replace("10.0.0.5:7100", "10.0.0.2:7100")
        .replace("listen = \"10.0.0.5:443\"", "listen = \"0.0.0.0:7000\"");
    assert_eq!(keys(&check(&same_host)), ["groups.web.frontend.listen"]);
    // An API on a wildcard (with its url) and a loopback listen on its port.
    let wild_api = BASE
        .replace(
            "listen = \"10.0.0.2:7000\"",
            "listen = \"0.0.0.0:7000\"\nurl = \"http://10.0.0.2:7000\"",
        )
        .replace("listen = \"10.0.0.5:443\"", "listen = \"127.0.0.1:7000\"");
    assert_eq!(keys(&check(&wild_api)), ["groups.web.frontend.listen"]);
    // Another host's wildcard on the API's port, or the API's IP on
    // another port: fine.
    for ok_text in [
        BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"0.0.0.0:7000\""),
        BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"10.0.0.2:7001\""),
    ] {
        assert_eq!(check(&ok_text), vec![]);
    }
}

/// Built-in frontends whose control APIs share an IP are on one host: two
/// of them in one group both bind the group's `listen` there, and one
/// frontend's group `listen` at another's control port is that port
/// twice; the second frontend to start stops. check-config refuses both,
/// at the later key; frontends on other hosts, or a group another port,
/// are fine.
#[test]
fn frontends_on_one_host_cannot_bind_one_port_twice() {
    let check = deployment_problems;
    let keys = |ps: &[warden_config::Problem]| -> Vec<String> {
        ps.iter().map(|p| p.key.clone()).collect()
    };
    let two = |fe2_control: &str| {
        format!(
            "{BASE}\n[frontends.fe2]\ncontrol = \"{fe2_control}\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n"
        )
        .replace("frontends = [\"fe1\"]", "frontends = [\"fe1\", \"fe2\"]")
    };
    // One group, two frontends on one host: its listen is bound twice.
    let text = two("10.0.0.5:7101");
    ok(&text);
    let ps = check(&text);
    assert_eq!(keys(&ps), ["groups.web.frontend.listen"], "{ps:?}");
    assert_eq!(
        (ps[0].line, ps[0].col),
        pos_of_nth(&text, "\"10.0.0.5:443\"", 0)
    );
    assert!(
        ps[0].message.contains("fe1 and fe2 are on one host"),
        "{ps:?}"
    );
    // The same on loopback, and with a wildcard listen.
    let local = two("127.0.0.1:7101").replace("10.0.0.5:7100", "127.0.0.1:7100");
    for listen in ["127.0.0.1:443", "0.0.0.0:443"] {
        let text = local.replace(
            "listen = \"10.0.0.5:443\"",
            &format!("listen = \"{listen}\""),
        );
        assert_eq!(
            keys(&check(&text)),
            ["groups.web.frontend.listen"],
            "{listen}"
        );
    }
    // fe2 alone in a group listening at fe1's control port on their host.
    let text = format!(
        "{BASE}\n[frontends.fe2]\ncontrol = \"10.0.0.5:7101\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n{}",
        WEB2.replace("LISTEN", "10.0.0.5:7100")
            .replace("frontends = [\"fe1\"]", "frontends = [\"fe2\"]")
    );
    ok(&text);
    let ps = check(&text);
    assert_eq!(keys(&ps), ["groups.web2.frontend.listen"], "{ps:?}");
    assert!(ps[0].message.contains("frontends.fe1.control"), "{ps:?}");
    // fe2's control at the port fe1 binds for group web, on their host.
    let text = BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"0.0.0.0:7101\"")
        + "\n[frontends.fe2]\ncontrol = \"10.0.0.5:7101\"\ntoken = { file = \"/etc/warden/fe2.token\" }\n";
    ok(&text);
    let ps = check(&text);
    assert_eq!(keys(&ps), ["frontends.fe2.control"], "{ps:?}");
    assert!(
        ps[0].message.contains("groups.web.frontend.listen"),
        "{ps:?}"
    );
    // Two hosts, or one host and two ports: fine.
    assert_eq!(check(&two("10.0.0.6:7100")), vec![]);
    let text = format!(
        "{BASE}\n[frontends.fe2]\ncontrol = \"10.0.0.5:7101\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n{}",
        WEB2.replace("LISTEN", "10.0.0.5:444")
            .replace("frontends = [\"fe1\"]", "frontends = [\"fe2\"]")
    );
    assert_eq!(check(&text), vec![]);
}

/// Two built-in frontends on one host (control APIs on one IP) with one
/// `state_dir` (given, or one's given as the other's default) would each
/// overwrite the other's fence and refuse to start on the other's file
/// ("it belongs to frontend …"): check-config refuses it at the later
/// frontend's key. On two hosts one path is two directories: fine.
#[test]
fn frontends_on_one_host_cannot_share_a_state_dir() {
    let check = deployment_problems;
    let with = |fe2_control: &str, fe1_dir: &str, fe2_dir: &str| {
        BASE.replace(
            "token = { file = \"/etc/warden/fe1.token\" }",
            &format!("token = {{ file = \"/etc/warden/fe1.token\" }}\n{fe1_dir}"),
        ) + &format!(
            "\n[frontends.fe2]\ncontrol = \"{fe2_control}\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n{fe2_dir}\n"
        )
    };
    let shared = "state_dir = \"/var/lib/warden/fe\"";
    let text = with("10.0.0.5:7101", shared, shared);
    ok(&text);
    let ps = check(&text);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].key, "frontends.fe2.state_dir");
    assert_eq!(
        (ps[0].line, ps[0].col),
        pos_of_nth(&text, "\"/var/lib/warden/fe\"", 1)
    );
    assert!(ps[0].message.contains("frontend fe1's state_dir"), "{ps:?}");
    // fe2's given dir is fe1's default one.
    let text = with(
        "10.0.0.5:7101",
        "",
        "state_dir = \"/var/lib/warden/frontend-fe1/\"",
    );
    assert_eq!(check(&text).len(), 1, "{:?}", check(&text));
    // Their own dirs on one host, or one path on two hosts: fine.
    assert_eq!(check(&with("10.0.0.5:7101", "", "")), vec![]);
    assert_eq!(check(&with("10.0.0.6:7100", shared, shared)), vec![]);
}

/// A string in TOML may hold a NUL (`"\u0000"`), which no argument of a
/// started program and no file name can: a `command` check with one fails
/// at every round ("cannot start: nul byte found in provided data", the
/// site judged failing), a hook at the failover that runs it, a fence or
/// notify command each time; a data_dir or a state_dir with one stops the
/// process at start, a secret file can never be read. Each is refused at
/// its key and line:col.
#[test]
fn a_nul_character_in_a_command_or_a_path_is_refused() {
    let nul = "\\u0000";
    // A command check, a promote hook, a fence command, a notify command.
    let text = (BASE.replace(
        "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
        &format!("kind = \"command\"\ncommand = [\"/bin/true{nul}\"]"),
    ) + &format!(
        "\n[[sites.tx.promote]]\nname = \"p\"\ncommand = [\"/usr/local/bin/promote\", \"a{nul}b\"]\n\
         [[orchestrator.notify]]\nname = \"n\"\ncommand = [\"/usr/local/bin/page\", \"{nul}\"]\n"
    ))
    .replace(
        "scheme = \"frontend\"\n",
        &format!("scheme = \"frontend\"\nfence_command = [\"/usr/local/bin/fence{nul}\"]\n"),
    );
    let p = problems(&text);
    for (key, value) in [
        (
            "sites.ca.checks[0].command",
            format!("[\"/bin/true{nul}\"]"),
        ),
        (
            "sites.tx.promote[0].command",
            format!("[\"/usr/local/bin/promote\", \"a{nul}b\"]"),
        ),
        (
            "groups.web.fence_command",
            format!("[\"/usr/local/bin/fence{nul}\"]"),
        ),
        (
            "orchestrator.notify[0].command",
            format!("[\"/usr/local/bin/page\", \"{nul}\"]"),
        ),
    ] {
        let found = find(&p, key);
        assert!(found.message.contains("NUL"), "{found}");
        assert_eq!(
            (found.line, found.col),
            pos_of_nth(&text, &value, 0),
            "{found}"
        );
    }
    assert_eq!(p.len(), 4, "{}", show(&p));
    // A data_dir, a state_dir, a secret file.
    let text = BASE
        .replace(
            "data_dir = \"/var/lib/warden\"",
            &format!("data_dir = \"/var/lib/war{nul}den\""),
        )
        .replace(
            "token = { file = \"/etc/warden/fe1.token\" }",
            &format!(
                "token = {{ file = \"/etc/warden/fe1{nul}\" }}\nstate_dir = \"/var/lib/fe{nul}\""
            ),
        );
    let p = problems(&text);
    for key in [
        "orchestrator.data_dir",
        "frontends.fe1.token.file",
        "frontends.fe1.state_dir",
    ] {
        assert!(find(&p, key).message.contains("NUL"), "{}", show(&p));
    }
    assert_eq!(p.len(), 3, "{}", show(&p));
}
