//! `store = "etcd"`, `[orchestrator.etcd]` and `[[orchestrator.nodes]]`:
//! a valid HA config, and each mistake at its key and line:col.

use crate::{find, ok, pos_of, problems, show, BASE};

fn with_ha(ha: &str) -> String {
    BASE.replace(
        "operator_token = { file = \"/etc/warden/operator.token\" }\n",
        &format!("operator_token = {{ file = \"/etc/warden/operator.token\" }}\n{ha}"),
    )
}

const GOOD: &str = r#"store = "etcd"
etcd = { endpoints = ["http://10.0.1.5:2379", "http://10.0.2.5:2379", "http://10.0.3.5:2379"], lease_ttl = "3s" }
nodes = [
  { name = "o-ca", listen = "10.0.1.2:7000" },
  { name = "o-tx", listen = "10.0.2.2:7000", url = "http://o-tx.example.net:7000" },
  { name = "o-w", listen = "10.0.3.2:7000" },
]
"#;

#[test]
fn a_three_node_deployment_parses_with_every_url() {
    let c = ok(&with_ha(GOOD));
    let o = &c.orchestrator;
    assert_eq!(o.store, warden_config::StoreKind::Etcd);
    let e = o.etcd.as_ref().expect("etcd table");
    assert_eq!(e.prefix, "/warden/", "default prefix");
    assert_eq!(e.lease_ttl, std::time::Duration::from_secs(3));
    assert_eq!(
        o.urls(),
        vec![
            "http://10.0.1.2:7000",
            "http://o-tx.example.net:7000",
            "http://10.0.3.2:7000"
        ]
    );
    let mine = o.for_node("o-tx").expect("node o-tx");
    assert_eq!(mine.listen.to_string(), "10.0.2.2:7000");
    assert_eq!(mine.base_url(), "http://o-tx.example.net:7000");
    assert!(o.for_node("o-ny").is_none());
}

#[test]
fn etcd_store_without_its_table() {
    let text = with_ha("store = \"etcd\"\n");
    let p = problems(&text);
    let s = find(&p, "orchestrator.store");
    assert_eq!((s.line, s.col), pos_of(&text, "\"etcd\""));
    assert!(s.message.contains("[orchestrator.etcd]"), "{s}");
}

#[test]
fn nodes_need_the_etcd_store() {
    let text = with_ha("nodes = [{ name = \"a\", listen = \"10.0.0.1:7000\" }, { name = \"b\", listen = \"10.0.0.2:7000\" }]\n");
    let p = problems(&text);
    let n = find(&p, "orchestrator.nodes");
    assert!(n.message.contains("store = \"etcd\""), "{n}");
}

#[test]
fn every_etcd_and_node_mistake_at_once() {
    let text = with_ha(
        r#"store = "etcd"
etcd = { endpoints = ["10.0.1.5:2379"], lease_ttl = "500ms", timeout = "2s", prefix = "" }
nodes = [
  { name = "o 1", listen = "10.0.1.2:7000" },
  { name = "o2", listen = "10.0.1.2:7000", url = "ftp://x" },
  { name = "o2", listen = "10.0.3.2:7000" },
]
"#,
    );
    let p = problems(&text);
    let ep = find(&p, "orchestrator.etcd.endpoints[0]");
    assert_eq!((ep.line, ep.col), pos_of(&text, "\"10.0.1.5:2379\""));
    assert!(ep.message.contains("etcd client URL"), "{ep}");
    let ttl = find(&p, "orchestrator.etcd.lease_ttl");
    assert_eq!((ttl.line, ttl.col), pos_of(&text, "\"500ms\""));
    assert!(ttl.message.contains("between 2s and 60s"), "{ttl}");
    let t = find(&p, "orchestrator.etcd.timeout");
    assert!(t.message.contains("half of lease_ttl"), "{t}");
    find(&p, "orchestrator.etcd.prefix");
    let n0 = find(&p, "orchestrator.nodes[0].name");
    assert_eq!((n0.line, n0.col), pos_of(&text, "\"o 1\""));
    let dup = find(&p, "orchestrator.nodes[2].name");
    assert!(dup.message.contains("another node"), "{dup}");
    let l = find(&p, "orchestrator.nodes[1].listen");
    assert!(l.message.contains("another node's address"), "{l}");
    find(&p, "orchestrator.nodes[1].url");
    assert!(p.len() >= 8, "{}", show(&p));
}

/// Two nodes reached at one URL (the same `url`, written with or without a
/// trailing slash or in another case, or one node's `url` that is another
/// node's listen address) are refused at the second: agents report to each
/// node's URL, so one node would get every report twice and the other
/// none.
#[test]
fn two_nodes_reached_at_one_url_are_refused() {
    for (ca, tx, at) in [
        (
            "{ name = \"o-ca\", listen = \"10.0.1.2:7000\", url = \"http://o.example.net:7000\" }",
            "{ name = \"o-tx\", listen = \"10.0.2.2:7000\", url = \"http://O.example.net:7000/\" }",
            "url = \"http://O.example.net",
        ),
        (
            "{ name = \"o-ca\", listen = \"10.0.1.2:7000\", url = \"http://10.0.2.2:7000\" }",
            "{ name = \"o-tx\", listen = \"10.0.2.2:7000\" }",
            "listen = \"10.0.2.2:7000\" }",
        ),
    ] {
        let text = with_ha(
            &GOOD
                .replace("{ name = \"o-ca\", listen = \"10.0.1.2:7000\" }", ca)
                .replace(
                    "{ name = \"o-tx\", listen = \"10.0.2.2:7000\", url = \"http://o-tx.example.net:7000\" }",
                    tx,
                ),
        );
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{}", show(&p));
        let (key, skip) = if at.starts_with("url") {
            ("orchestrator.nodes[1].url", "url = ".len())
        } else {
            ("orchestrator.nodes[1].listen", "listen = ".len())
        };
        let x = find(&p, key);
        let (line, col) = pos_of(&text, at);
        assert_eq!((x.line, x.col), (line, col + skip), "{x}");
        assert!(x.message.contains("where node o-ca is reached too"), "{x}");
    }
}
