//! `HOST:PORT` addresses: what is not one is refused; an address other
//! hosts dial must name one host and port (check-config).

use super::{at, deployment_problems};
use crate::{find, ok, pos_of_nth, problems, BASE};

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

/// An IPv6 address with a zone id (`[fe80::1%2]`) parses and binds, but
/// no URL can carry it: an orchestrator listening there without `url`
/// was accepted and its agents then refused to start ("is not a URL"),
/// a frontend's control there was accepted and every route the
/// orchestrator sent it failed, and a group's listen there was accepted
/// and the verify step (which probes it from its IP, zone lost) failed
/// every failover. Each is refused at its key and line:col by every load;
/// a zone beside a `url`, or where nothing builds a URL from it (a
/// backend, a TCP check), is fine.
#[test]
fn an_address_with_a_zone_id_is_refused_where_it_is_reached_by_url() {
    let zoned = "[fe80::1%2]";
    // The orchestrator's API, a frontend's control API, a group's listen.
    for (from, key) in [
        ("10.0.0.2:7000", "orchestrator.listen"),
        ("10.0.0.5:7100", "frontends.fe1.control"),
        ("10.0.0.5:443", "groups.web.frontend.listen"),
    ] {
        let to = format!("{zoned}:{}", from.rsplit_once(':').unwrap().1);
        let text = BASE.replace(from, &to);
        let m = at(&text, key, &format!("\"{to}\""));
        assert!(m.contains("zone id (%2)"), "{key}: {m}");
    }
    // A node without its url.
    let nodes = BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"10.0.0.2:7000\"\nstore = \"etcd\"",
    ) + "\n[orchestrator.etcd]\nendpoints = [\"http://10.0.0.9:2379\"]\n\
         [[orchestrator.nodes]]\nname = \"n1\"\nlisten = \"[fe80::1%2]:7000\"\n\
         url = \"http://[fe80::1]:7000\"\n\
         [[orchestrator.nodes]]\nname = \"n2\"\nlisten = \"[fe80::2%2]:7000\"\n";
    let p = problems(&nodes);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "orchestrator.nodes[1].listen");
    // Beside a url, on a backend, in a TCP check: fine.
    ok(&BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"[fe80::1%2]:7000\"\nurl = \"http://warden.example.net:7000\"",
    ));
    ok(&BASE.replace("10.1.0.10:8443", "[fe80::1%2]:8443"));
    ok(&BASE.replace(
        "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
        "kind = \"tcp\"\naddress = \"[fe80::1%2]:5432\"",
    ));
}

/// A link-local IPv6 address without its zone (`[fe80::1]:7000`) cannot
/// be bound (the kernel says "Invalid argument"): an orchestrator, a
/// frontend's control API or a group's listen there passed check-config
/// and the process stopped at start. Refused at its key; a link-local
/// address with its zone beside a url binds (the orchestrator's).
#[test]
fn a_link_local_address_without_its_zone_is_refused_where_it_is_bound() {
    for (from, key) in [
        ("10.0.0.2:7000", "orchestrator.listen"),
        ("10.0.0.5:7100", "frontends.fe1.control"),
        ("10.0.0.5:443", "groups.web.frontend.listen"),
    ] {
        let to = format!("[fe80::1]:{}", from.rsplit_once(':').unwrap().1);
        let text = BASE.replace(from, &to);
        let m = at(&text, key, &format!("\"{to}\""));
        assert!(
            m.contains("link-local address without its zone"),
            "{key}: {m}"
        );
    }
    ok(&BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"[fe80::1%2]:7000\"\nurl = \"http://warden.example.net:7000\"",
    ));
    ok(&BASE.replace("10.0.0.2:7000", "[fd00::2]:7000"));
}

/// check-config: an orchestrator url (a node's) naming a link-local IPv6
/// address (`http://[fe80::1]:7000`) parses, but a connection to a
/// link-local address needs its zone, which a URL cannot carry: every
/// agent report and CLI call failed ("Invalid argument"). Refused at the
/// url.
#[test]
fn a_url_other_hosts_dial_is_not_link_local() {
    let text = BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"[fe80::1%2]:7000\"\nurl = \"http://[fe80::1]:7000\"",
    );
    ok(&text);
    let ps = deployment_problems(&text);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].key, "orchestrator.url");
    assert!(ps[0].message.contains("link-local"), "{ps:?}");
    let fine = text.replace("http://[fe80::1]:7000", "http://[2001:db8::2]:7000");
    assert_eq!(deployment_problems(&fine), vec![]);
}

/// What other hosts probe or forward to given as a wildcard IP: a site's
/// endpoints (probed by the orchestrator and the peer agents; a `dns`
/// server at a wildcard is refused by every load) and a
/// built-in group's backends (dialled by its frontends). Dialled, a
/// wildcard is the dialler's own host (tried: `0.0.0.0:27081` reached the
/// prober's own 127.0.0.1:27081), so the site was judged by a service on
/// the prober's host and users were sent to the frontend's. check-config
/// refuses each at its line and column; a named or loopback address
/// passes, and a single process's `parse` still accepts them.
#[test]
fn a_wildcard_other_hosts_probe_or_forward_to_is_refused() {
    let check = deployment_problems;
    let endpoints = |tcp: &str, url: &str, server: &str| {
        BASE.replace(
            "[sites.tx]",
            &format!(
                "[[sites.ca.endpoints]]\nname = \"db\"\nkind = \"tcp\"\naddress = \"{tcp}\"\n\n\
                 [[sites.ca.endpoints]]\nname = \"web\"\nkind = \"http\"\nurl = \"{url}\"\n\n\
                 [[sites.ca.endpoints]]\nname = \"ns\"\nkind = \"dns\"\nserver = \"{server}\"\n\
                 query = \"www.example.net\"\n\n[sites.tx]"
            ),
        )
    };
    let text = endpoints("0.0.0.0:5432", "http://[::]:8080/healthz", "10.1.0.53")
        .replace("ca = \"10.1.0.10:8443\"", "ca = \"0.0.0.0:8443\"");
    ok(&text);
    let ps = check(&text);
    let keys: Vec<&str> = ps.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "sites.ca.endpoints[0].address",
            "sites.ca.endpoints[1].url",
            "groups.web.frontend.backends.ca",
        ],
        "{ps:?}"
    );
    for (p, value) in ps.iter().zip([
        "\"0.0.0.0:5432\"",
        "\"http://[::]:8080/healthz\"",
        "\"0.0.0.0:8443\"",
    ]) {
        assert_eq!((p.line, p.col), pos_of_nth(&text, value, 0), "{p}");
        assert!(p.message.contains("is every address of its host"), "{p}");
    }
    // Named and loopback addresses are dialled as written.
    let fine = endpoints(
        "10.1.0.10:5432",
        "http://[::1]:8080/healthz",
        "127.0.0.1:53",
    );
    assert_eq!(check(&fine), vec![]);
}

/// A DNS server at a wildcard IP: rfc2136's `server` and `nameservers`, a
/// `dns` check's or endpoint's `server`. The question reaches the asker's
/// own host, whose answer comes from another address and is ignored
/// (tried on loopback with Knot at 127.0.0.1:27053 and server =
/// "0.0.0.0:27053": "ignoring response from 127.0.0.1:27053 because it
/// does not match name_server: 0.0.0.0:27053" at every try, the
/// failover's switch step never done), even on one host: refused by
/// every load, at each value.
#[test]
fn a_dns_server_at_a_wildcard_ip_is_refused() {
    let text = BASE.replace(
        "[sites.tx]",
        "[[sites.ca.checks]]\nname = \"ns\"\nkind = \"dns\"\nserver = \"0.0.0.0\"\n\
         query = \"www.example.net\"\n\n[[sites.ca.endpoints]]\nname = \"ns\"\nkind = \"dns\"\n\
         server = \"[::]:53\"\nquery = \"www.example.net\"\n\n[sites.tx]",
    ) + "\n[groups.www]\nsites = [\"ca\", \"tx\"]\nscheme = \"dns\"\n[groups.www.dns]\n\
         provider = \"rfc2136\"\nname = \"www.example.net\"\nserver = \"0.0.0.0:5353\"\n\
         zone = \"example.net\"\nnameservers = [\"10.0.0.53\", \"[::ffff:0.0.0.0]:53\"]\n\
         addresses = { ca = \"10.1.0.10\", tx = \"10.2.0.10\" }\n";
    let p = problems(&text);
    for (key, value) in [
        ("sites.ca.checks[1].server", "\"0.0.0.0\""),
        ("sites.ca.endpoints[0].server", "\"[::]:53\""),
        ("groups.www.dns.server", "\"0.0.0.0:5353\""),
        ("groups.www.dns.nameservers[1]", "\"[::ffff:0.0.0.0]:53\""),
    ] {
        let e = find(&p, key);
        assert_eq!((e.line, e.col), pos_of_nth(&text, value, 0), "{e}");
        assert!(
            e.message.contains("where no DNS server can be asked"),
            "{e}"
        );
    }
    assert_eq!(p.len(), 4, "{p:?}");
}

/// With orchestrator nodes on several hosts, whichever node leads drives
/// every HAProxy: a runtime API only one host reaches (a UNIX socket, a
/// loopback address) is refused by check-config at its value — each
/// leader would drive another HAProxy, or none, and those users enter
/// through would keep a deposed leader's route; so is a built-in
/// frontend's control API on loopback. A TCP address every node reaches
/// passes, and so do nodes all on one host (loopback).
#[test]
fn a_runtime_api_only_one_host_reaches_is_refused_with_nodes_on_several_hosts() {
    let ha = |listen: [&str; 2]| {
        format!(
            "store = \"etcd\"\netcd = {{ endpoints = [\"http://10.0.1.5:2379\"] }}\n\
             nodes = [{{ name = \"o1\", listen = \"{}\" }}, {{ name = \"o2\", listen = \"{}\" }}]\n",
            listen[0], listen[1]
        )
    };
    let with = |nodes: &str, runtime: &str| {
        BASE.replace(
            "operator_token = { file = \"/etc/warden/operator.token\" }\n",
            &format!("operator_token = {{ file = \"/etc/warden/operator.token\" }}\n{nodes}"),
        ) + &format!("\n[frontends.hp]\nkind = \"haproxy\"\nruntime = \"{runtime}\"\n")
    };
    let spread = ha(["10.0.1.2:7000", "10.0.2.2:7000"]);
    for runtime in ["/run/haproxy/admin.sock", "127.0.0.1:9999"] {
        let text = with(&spread, runtime);
        ok(&text);
        let ps = deployment_problems(&text);
        let h = find(&ps, "frontends.hp.runtime");
        assert_eq!(
            (h.line, h.col),
            pos_of_nth(&text, &format!("\"{runtime}\""), 0),
            "{h}"
        );
        assert!(
            h.message.contains("only this host reaches it")
                && h.message.contains("every node reaches"),
            "{h}"
        );
    }
    let text = with(&spread, "10.0.0.7:9999");
    assert!(
        !deployment_problems(&text)
            .iter()
            .any(|p| p.key == "frontends.hp.runtime"),
        "a TCP address every node reaches"
    );
    // A built-in frontend's control API on loopback: the same.
    let text = with(&spread, "10.0.0.7:9999").replace(
        "control = \"10.0.0.5:7100\"",
        "control = \"127.0.0.1:7100\"",
    );
    let ps = deployment_problems(&text);
    let c = find(&ps, "frontends.fe1.control");
    assert!(c.message.contains("only this host reaches it"), "{c}");
    let one_host = ha(["127.0.0.1:7000", "127.0.0.1:7001"]);
    let text = with(&one_host, "/run/haproxy/admin.sock");
    assert!(
        !deployment_problems(&text)
            .iter()
            .any(|p| p.key == "frontends.hp.runtime"),
        "nodes all on one host"
    );
}
