//! Every shipped example parses; the accessors other crates use work on them.

use std::path::PathBuf;
use std::time::Duration;

use warden_config::{load, ConfigError, FailbackMode, Fencing, Scheme};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn example(name: &str) -> warden_config::Config {
    let path = examples_dir().join(name);
    load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_parses() {
    let mut n = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            n += 1;
            if let Err(e) = load(&path) {
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "examples that do not parse:\n{}",
        failures.join("\n")
    );
    assert!(n >= 3, "expected at least 3 examples/*.conf, found {n}");
}

#[test]
fn examples_never_use_documentation_addresses() {
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("192.0.2."),
            "{} uses 192.0.2.x",
            path.display()
        );
    }
}

/// 192.0.2.0/24 is the uplink of the machines the tests run on: no test
/// may point a record, a check or a connection there. Every Rust source
/// of the workspace is read for it; the lab's self-test (which asks the
/// kernel how it would route there, to prove its isolation) and this
/// guard are the only places that name it.
#[test]
fn no_source_uses_the_machines_uplink_addresses() {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(
        files.len() > 100,
        "the workspace's sources: {}",
        files.len()
    );
    let allowed = ["lab_selftest/main.rs", "config/examples.rs"];
    let needle = ["192", "0", "2", ""].join(".");
    let found: Vec<String> = files
        .iter()
        .filter(|p| !allowed.iter().any(|a| p.ends_with(a)))
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(&needle)))
        .map(|p| p.display().to_string())
        .collect();
    assert!(found.is_empty(), "sources naming {needle}x: {found:#?}");
}

#[test]
fn frontend_example() {
    let c = example("frontend.conf");
    assert_eq!(c.orchestrator.base_url(), "https://warden.example.net:7000");
    assert_eq!(c.sites.len(), 2);
    let ca = c.site("ca").unwrap();
    assert_eq!(ca.checks.len(), 2);
    assert_eq!(ca.endpoints.len(), 2);
    assert!(!ca.promote.is_empty() && !ca.demote.is_empty());
    let g = &c.groups["web"];
    assert_eq!(*g.scheme.get_ref(), Scheme::Frontend);
    assert_eq!(g.site_names(), ["ca", "tx"]);
    assert!(c.frontend("fe1").is_ok());
    assert_eq!(c.sites["tx"].report_interval, Some(Duration::from_secs(1)));
}

#[test]
fn dns_and_hybrid_examples() {
    let c = example("rfc2136.conf");
    let d = c.groups["www"].dns.as_ref().unwrap().get_ref();
    assert_eq!(d.addresses.len(), 2);
    assert_eq!(d.ttl, Duration::from_secs(60));
    assert!(d.credentials.as_ref().unwrap().file.is_some());

    let c = example("noip.conf");
    let d = c.groups["www"].dns.as_ref().unwrap().get_ref();
    assert_eq!(d.aliases, ["api.example.ddns.net"]);
    assert!(d.user_agent.as_deref().unwrap().contains("warden/"));
    let c = example("dyndns2.conf");
    let d = c.groups["www"].dns.as_ref().unwrap().get_ref();
    assert!(d.addresses["tx"].contains("fd00:2::10"));
    assert!(d.credentials.as_ref().unwrap().env.is_some());

    let c = example("hybrid.conf");
    let g = &c.groups["app"];
    assert_eq!(*g.scheme.get_ref(), Scheme::Hybrid);
    let d = g.dns.as_ref().unwrap().get_ref();
    assert!(d.addresses.contains_key("fe1") && d.addresses.contains_key("fe2"));
    assert_eq!(c.frontends.len(), 2);
}

#[test]
fn multi_group_example_and_accessors() {
    let c = example("multi-group.conf");
    assert_eq!(c.groups.len(), 3);
    assert_eq!(c.sites.len(), 4);
    let billing = &c.groups["billing"];
    assert!(!billing.automatic);
    assert_eq!(billing.failback, FailbackMode::Manual);
    assert_eq!(billing.fencing, Fencing::Required);
    assert!(billing.fence_command.is_some());
    assert_eq!(c.groups["web"].failback, FailbackMode::Auto);
    assert_eq!(c.groups["web"].fencing, Fencing::BestEffort);
    assert_eq!(c.groups["reports"].primary(), "ny");

    let of_ny: Vec<&String> = c.groups_of_site("ny").map(|(n, _)| n).collect();
    assert_eq!(of_ny, ["billing", "reports"]);
    assert_eq!(c.peers_of("ca"), ["ny", "or", "tx"]);
    assert_eq!(c.peers_of("tx"), ["ca", "ny"]);

    match c.site("zz") {
        Err(ConfigError::UnknownName { known, .. }) => assert_eq!(known, "ca, ny, or, tx"),
        other => panic!("{other:?}"),
    }
    assert!(c.frontend("nope").unwrap_err().to_string().contains("fe1"));
}

/// The annotated example in docs/configuration.md is a valid config.
#[test]
fn documentation_example_parses() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    // Every complete config in the docs parses (the TLS example too) ...
    for b in blocks.iter().filter(|b| b.contains("[orchestrator]")) {
        crate::ok(b);
    }
    // ... and the annotated one is what it says.
    let complete = blocks
        .iter()
        .find(|b| b.contains("[orchestrator]") && b.contains("[groups.web]"))
        .expect("the annotated example in the docs");
    let c = crate::ok(complete);
    assert_eq!(c.groups["web"].site_names(), ["ca", "tx"]);
    assert_eq!(c.orchestrator.base_url(), "https://warden.example.net:7000");
}
