//! `take_report` on what an agent's own config makes its reports carry: a
//! hub site (the standby of many primaries) probes every primary, a site
//! may have many checks, and an agent's config may name a site the
//! orchestrator's does not yet; those reports must be taken, while a
//! report that carries more than its site could is still refused.

use std::fmt::Write as _;

use axum::http::StatusCode;
use warden_proto::agent::{AgentReport, CheckResult, PeerProbe};

use super::take_report;
use crate::service::harness::{config_head, start_service, write_tokens};

/// Primaries p0… each in a group of its own with the hub `dr`, each with
/// an endpoint `dr`'s agent probes; `dr` has `checks` checks of its own.
fn hub_text(dir: &std::path::Path, primaries: usize, checks: usize) -> String {
    let d = dir.display();
    let mut text = config_head(dir, 1, "max_body_bytes = 16777216\n");
    writeln!(
        text,
        "[frontends.fe1]\ncontrol = \"127.0.0.1:1\"\ntoken = {{ file = \"{d}/fe\" }}\n\
         [sites.dr]\nagent_token = {{ file = \"{d}/a\" }}"
    )
    .unwrap();
    for i in 0..checks {
        writeln!(
            text,
            "[[sites.dr.checks]]\nname = \"c{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/c{i}\""
        )
        .unwrap();
    }
    for i in 0..primaries {
        let token = dir.join(format!("p{i}"));
        std::fs::write(&token, format!("agent-p{i}-secret")).unwrap();
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        writeln!(
            text,
            "[sites.p{i}]\nagent_token = {{ file = \"{d}/p{i}\" }}\n\
             [[sites.p{i}.endpoints]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/p{i}\"\n\
             [groups.g{i}]\nsites = [\"p{i}\", \"dr\"]\nscheme = \"frontend\"\nautomatic = false\n\
             [groups.g{i}.frontend]\ndriver = \"builtin\"\nfrontends = [\"fe1\"]\nlisten = \"127.0.0.1:0\"\n\
             backends = {{ p{i} = \"127.0.0.1:1\", dr = \"127.0.0.1:2\" }}"
        )
        .unwrap();
    }
    text
}

fn result(name: &str) -> CheckResult {
    CheckResult {
        name: name.into(),
        ok: true,
        critical: true,
        detail: "status 200".into(),
        elapsed_ms: 1,
    }
}

/// What `dr`'s agent sends: one result per check, one probe per primary.
fn hub_report(seq: u64, primaries: usize, checks: usize) -> Vec<u8> {
    let report = AgentReport {
        site: "dr".into(),
        seq,
        boot: "b1".into(),
        started_unix_ms: 1,
        checks: (0..checks).map(|i| result(&format!("c{i}"))).collect(),
        peers: (0..primaries)
            .map(|i| PeerProbe {
                site: format!("p{i}"),
                results: vec![result("web")],
                age_ms: 0,
            })
            .collect(),
        outcomes: vec![],
        replication: vec![],
        authority: vec![],
        taken_term: None,
        taken_cluster: None,
        left_clusters: vec![],
    };
    serde_json::to_vec(&report).unwrap()
}

/// A hub site, standby of 300 primaries and with 300 checks: `warden
/// check-config` takes the file, and the hub's agent reports every check
/// and a probe of every primary. Before, every one of its reports was
/// refused (400, "more than 256 checks, peers or outcomes"): the hub's
/// agent was never heard, its site unknown for good.
#[tokio::test]
async fn a_hub_sites_report_with_more_than_256_peers_and_checks_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    write_tokens(dir.path());
    let text = hub_text(dir.path(), 300, 300);
    let s = start_service(&text, dir.path()).expect("config");

    let taken = take_report(&s, "dr", &hub_report(1, 300, 300));
    if let Err(r) = &taken {
        panic!("refused with {}: {}", r.status, r.error);
    }
    // Only the peers: the checks alone; the checks alone too.
    assert!(take_report(&s, "dr", &hub_report(2, 300, 0)).is_ok());
    assert!(take_report(&s, "dr", &hub_report(3, 0, 300)).is_ok());

    // An agent whose config has 10 checks and 10 primaries more than the
    // orchestrator's (a config change that reached it first): taken.
    assert!(take_report(&s, "dr", &hub_report(4, 310, 310)).is_ok());

    // Far more than the config could give the site is still refused.
    let more = take_report(&s, "dr", &hub_report(5, 300, 600));
    let r = more.expect_err("600 checks from a site with 300");
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.error);
    assert!(r.error.contains("checks"), "{}", r.error);
    // A primary (one check-less site in one group) keeps the bound of 256.
    let mut forged: AgentReport = serde_json::from_slice(&hub_report(1, 0, 257)).unwrap();
    forged.site = "p0".into();
    let r = take_report(&s, "p0", &serde_json::to_vec(&forged).unwrap())
        .expect_err("257 checks from a site with none");
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.error);
}

/// A config that adds primary p2 (group g2 with the hub) reached the hub's
/// agent before the orchestrator was restarted with it: the agent probes
/// p2, which the orchestrator does not know yet. Its report is taken
/// without that probe (said once in the log, as a probe of a peer the
/// orchestrator does not give the site). Before, every report of the hub
/// was refused (400, "peers: unknown site") until the orchestrator's
/// restart: its outcomes unheard, a runbook waiting for them failed.
#[tokio::test]
async fn a_probe_of_a_site_the_orchestrator_does_not_know_yet_is_dropped_not_the_report() {
    let dir = tempfile::tempdir().unwrap();
    write_tokens(dir.path());
    let s = start_service(&hub_text(dir.path(), 2, 1), dir.path()).expect("config");
    let report: AgentReport = serde_json::from_slice(&hub_report(1, 3, 1)).unwrap();
    assert_eq!(report.peers[2].site, "p2");
    let taken = take_report(&s, "dr", &serde_json::to_vec(&report).unwrap());
    match taken {
        Ok((seq, answer)) => {
            assert_eq!(seq, 1);
            assert!(answer.epochs.contains_key("g1"), "{answer:?}");
        }
        Err(r) => panic!("refused with {}: {}", r.status, r.error),
    }
}
