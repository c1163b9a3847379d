//! A group of three sites on the live service: how a standby that is
//! neither the old active site nor the new one learns a failover's epoch.
//! The orchestrator sends it no order in the move; it learns the epoch
//! only from the `epochs` of the answer to a report (an epoch the store
//! holds), writes it to disk and reports it in its next report. The
//! promote now waits for that report.

use super::harness::{check, config_text, start_from, test_dir};
use super::*;
use crate::store::MemStore;
use warden_proto::agent::{AuthorityWire, PeerProbe};

/// Config of sites a, b and c, group web on all three (a primary).
fn three_sites(dir: &std::path::Path) -> String {
    let d = dir.display();
    std::fs::write(dir.join("c"), "agent-c-secret").unwrap();
    std::fs::set_permissions(
        dir.join("c"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    config_text(dir, true, 5, "")
        .replace(
            "[sites.b]",
            &format!("[sites.c]\nagent_token = {{ file = \"{d}/c\" }}\n[sites.b]"),
        )
        .replace(r#"sites = ["a", "b"]"#, r#"sites = ["a", "b", "c"]"#)
        .replace(
            r#"b = "127.0.0.1:2" }"#,
            r#"b = "127.0.0.1:2", c = "127.0.0.1:3" }"#,
        )
}

/// A stand-in agent: its role and the highest epoch it has seen (in
/// commands and answers), which it reports, as a real agent does.
struct Agent {
    site: &'static str,
    role: &'static str,
    epoch: u64,
}

/// b's service is down (its agent reports, its rsync daemon takes a's
/// replication: b is a's peer, the first standby); then a is cut off (its
/// agent silent, its service unreachable) and the failover goes to c
/// (epoch 2). When c's promote is handed out, b has already reported
/// epoch 2 (its rsync gate refuses deposed a's push stated at epoch 1
/// from then on). Before, c's promote was handed out while b still
/// held epoch 1: nothing in the move waited for b.
#[tokio::test(start_paused = true)]
async fn the_third_site_has_the_epoch_before_the_new_active_site_is_promoted() {
    let dir = test_dir(true, 5);
    let (s, _fake) =
        start_from(&three_sites(&dir), &dir, Arc::new(MemStore::default())).expect("config");
    let mut agents = [
        Agent {
            site: "a",
            role: "active",
            epoch: 1,
        },
        Agent {
            site: "b",
            role: "standby",
            epoch: 1,
        },
        Agent {
            site: "c",
            role: "standby",
            epoch: 1,
        },
    ];
    let mut b_at_promote = None;
    let mut b_learnt = None;
    for round in 0..80 {
        let a_up = round < 8;
        // The service of each site: b's is down throughout.
        let up = |site: &str| match site {
            "a" => a_up,
            "b" => false,
            _ => true,
        };
        // b reports last in a round: c's promote may be handed out in the
        // round b is first told the epoch, before b has it.
        for i in [0, 2, 1] {
            let site = agents[i].site;
            if site == "a" && !a_up {
                // Cut off: a's agent is not heard from, and never hears
                // its demote (its replication would go on pushing).
                continue;
            }
            let commands = s.commands_for(site);
            let mut outcomes = Vec::new();
            for c in commands {
                if c.kind == CommandKind::Promote && site == "c" && b_at_promote.is_none() {
                    b_at_promote = Some(agents[1].epoch);
                }
                let ag = &mut agents[i];
                ag.epoch = ag.epoch.max(c.epoch);
                match c.kind {
                    CommandKind::Promote => ag.role = "active",
                    CommandKind::Demote => ag.role = "standby",
                    _ => {}
                }
                outcomes.push(CommandOutcome {
                    id: c.id,
                    ok: true,
                    detail: "ok".into(),
                    hooks: vec![],
                    checks: None,
                    journal: None,
                    kept_in_place: None,
                });
            }
            let ag = &agents[i];
            let answer = s.accept_report(AgentReport {
                site: site.into(),
                seq: round + 1,
                started_unix_ms: 0,
                boot: String::new(),
                checks: vec![check(up(site))],
                peers: ["a", "b", "c"]
                    .into_iter()
                    .filter(|p| *p != site)
                    .map(|p| PeerProbe {
                        site: p.into(),
                        results: vec![check(up(p))],
                        age_ms: 0,
                    })
                    .collect(),
                outcomes,
                replication: vec![],
                authority: vec![AuthorityWire {
                    group: "web".into(),
                    epoch: ag.epoch,
                    role: ag.role.into(),
                    ..AuthorityWire::default()
                }],
                taken_term: None,
                taken_cluster: None,
                left_clusters: vec![],
            });
            let told = answer.epochs.get("web").copied().unwrap_or(0);
            if site == "b" && told > agents[1].epoch && b_learnt.is_none() {
                b_learnt = Some(round);
            }
            agents[i].epoch = agents[i].epoch.max(told);
        }
        {
            let mut st = s.lock();
            let now = Instant::now();
            for site in ["a", "b", "c"] {
                let up = site != "a" || a_up;
                st.evidence
                    .external
                    .insert(site.into(), (now, vec![check(up)]));
            }
        }
        s.detect_round().await;
        s.writer_settled().await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        s.writer_idle().await;
        tokio::time::advance(Duration::from_millis(250)).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        if s.lock().groups["web"].active == "c" && s.lock().groups["web"].phase == Phase::Steady {
            break;
        }
    }
    let g = s.lock().groups["web"].clone();
    assert_eq!(
        (g.active.as_str(), g.epoch, g.phase),
        ("c", 2, Phase::Steady),
        "{g:#?}"
    );
    assert!(b_learnt.is_some(), "b is told epoch 2 in an answer");
    assert_eq!(
        b_at_promote,
        Some(2),
        "b's epoch when c's promote was handed out (b learnt epoch 2 in round {b_learnt:?})"
    );
}
