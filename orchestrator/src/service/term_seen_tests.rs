//! The leader term a site's agent took, against this leader's
//! (`term_seen`): one alert while the agent refuses this leader's orders,
//! forgotten once it takes them again; nothing from an older agent.

use super::harness::setup;
use super::*;

/// A report of `site`'s agent saying it took leader term `taken`.
fn report(site: &str, seq: u64, taken: Option<u64>) -> AgentReport {
    AgentReport {
        taken_term: taken,
        ..super::fresh_checks_tests::report(site, seq, vec![])
    }
}

/// The alerts recorded about `site`'s agent refusing the leader's orders.
fn refusals(s: &Shared, site: &str) -> Vec<String> {
    s.lock()
        .recent
        .iter()
        .filter(|e| e.kind == EventKind::Alert && e.site.as_deref() == Some(site))
        .filter(|e| e.message.contains("refuses this orchestrator's orders"))
        .map(|e| e.message.clone())
        .collect()
}

/// `warden_site_refuses_orders` of sites a and b, as scraped.
fn refusing(s: &Shared) -> Vec<(&'static str, u32)> {
    let m = s.metrics_text(false);
    ["a", "b"]
        .into_iter()
        .map(|site| {
            let series = format!("warden_site_refuses_orders{{site=\"{site}\"}} ");
            let line = m.lines().find(|l| l.starts_with(&series));
            let value = line.and_then(|l| l[series.len()..].parse().ok());
            (site, value.unwrap_or_else(|| panic!("no {series}in:\n{m}")))
        })
        .collect()
}

/// One orchestrator (term 0) after several: site a's agent took term 17
/// from the old leaders and refuses this one's orders. Said once, however
/// many reports say so, with what to do; shown in the site's status; not
/// said again once a report says a term not above this leader's (the
/// agent took the group's next epoch), and said anew if it holds again.
/// `warden_site_refuses_orders` follows it.
#[tokio::test]
async fn an_agent_above_this_leaders_term_is_one_alert_until_it_takes_its_orders() {
    let (s, _fake, _dir) = setup(false, 5);
    for seq in 1..=5 {
        s.accept_report(report("a", seq, Some(17)));
        s.accept_report(report("b", seq, Some(0)));
    }
    let said = refusals(&s, "a");
    assert_eq!(said.len(), 1, "{said:#?}");
    assert_eq!(
        said[0],
        "site a's agent refuses this orchestrator's orders: it took leader term 17, this \
         leader's term is 0 (the orchestrators' terms started over: a new etcd cluster, or \
         one orchestrator after several; and the agent cannot tell the two terms' clusters \
         apart: an older agent, or a term it took from an older orchestrator that does not \
         say its cluster); its orders run again from the group's next epoch, or sooner: stop \
         the agent, set \"term\" to 0 in its authority.json (in its state_dir), start it"
    );
    assert!(refusals(&s, "b").is_empty(), "b took term 0");
    let terms: Vec<_> = super::views::site_views(&s, &["a".into(), "b".into()])
        .into_iter()
        .map(|v| (v.name, v.taken_term))
        .collect();
    assert_eq!(terms, [("a".into(), Some(17)), ("b".into(), Some(0))]);
    assert_eq!(refusing(&s), [("a", 1), ("b", 0)]);
    for seq in 6..=8 {
        s.accept_report(report("a", seq, Some(0)));
    }
    assert_eq!(refusals(&s, "a").len(), 1, "cleared, not said again");
    assert!(!s.lock().recorded.holds("taken_term/a"), "still recorded");
    assert_eq!(refusing(&s), [("a", 0), ("b", 0)]);
    s.accept_report(report("a", 9, Some(17)));
    assert_eq!(refusals(&s, "a").len(), 2, "it holds again: said anew");
}

/// An older agent sends no `taken_term`: its report (as it writes it) is
/// taken, shown without a term, and raises nothing.
#[tokio::test]
async fn an_older_agents_report_without_a_term_raises_nothing() {
    let (s, _fake, _dir) = setup(false, 5);
    let older = serde_json::json!({"site": "a", "seq": 1, "authority": []});
    let older: AgentReport = serde_json::from_value(older).expect("an older agent's report");
    assert_eq!(older.taken_term, None);
    s.accept_report(older);
    s.accept_report(report("a", 2, None));
    assert!(refusals(&s, "a").is_empty());
    assert!(!s.lock().recorded.holds("taken_term/a"));
    let views = super::views::site_views(&s, &["a".into()]);
    assert_eq!(views[0].taken_term, None);
    let shown = serde_json::to_value(&views[0]).unwrap();
    assert!(shown.get("taken_term").is_none(), "{shown}");
}

/// An elected node leading under term 3 of etcd cluster b, with what must
/// live as long as it.
async fn leader_of_cluster_b_at_term_3() -> (
    Arc<Shared>,
    (
        tokio::sync::watch::Sender<crate::etcd::leader::Leadership>,
        super::harness::TestDir,
    ),
) {
    use crate::etcd::leader::Role;
    let (s, _fake, leadership) =
        super::lease_tests::elected(Arc::new(crate::store::MemStore::default()));
    let role = HaRole(s.clone());
    let until = tokio::time::Instant::now() + Duration::from_secs(600);
    assert!(role.lease_until(until.into()));
    role.take_over(3, Some(0xb)).await.unwrap();
    (s, leadership)
}

/// An agent that says the etcd cluster of its term is compared only when
/// that cluster is this leader's: this leader leads under term 3 of etcd
/// cluster b; site a keeps term 17 of cluster a — it takes this leader's
/// next answer as the orchestrators' move, so nothing is said and its
/// term is not shown; site b's agent does not say its cluster (an older
/// agent) and keeps term 17, which it compares with this one's: said, as
/// before.
#[tokio::test(start_paused = true)]
async fn an_agent_of_another_etcd_cluster_is_not_compared() {
    let (s, _leadership) = leader_of_cluster_b_at_term_3().await;
    let of = |site: &str, seq, cluster| AgentReport {
        taken_cluster: cluster,
        ..report(site, seq, Some(17))
    };
    for seq in 1..=3 {
        s.accept_report(of("a", seq, Some(Some(0xa))));
        s.accept_report(of("b", seq, None));
    }
    assert!(refusals(&s, "a").is_empty(), "{:#?}", refusals(&s, "a"));
    assert_eq!(refusals(&s, "b").len(), 1);
    assert_eq!(refusing(&s), [("a", 0), ("b", 1)]);
    let terms: Vec<_> = super::views::site_views(&s, &["a".into(), "b".into()])
        .into_iter()
        .map(|v| (v.name, v.taken_term))
        .collect();
    assert_eq!(terms, [("a".into(), None), ("b".into(), Some(17))]);
}

/// One orchestrator alone (no cluster, term 0) after several: every agent
/// judges its answers by its term — never as a move (a lone orchestrator
/// left running, or its late answer, must not take the sites back from
/// the etcd cluster) — so site a, which keeps term 17 of etcd cluster a,
/// refuses its orders, and that is said.
#[tokio::test]
async fn one_orchestrator_alone_is_compared_with_every_agents_term() {
    let (s, _fake, _dir) = setup(false, 5);
    for seq in 1..=3 {
        s.accept_report(AgentReport {
            taken_cluster: Some(Some(0xa)),
            ..report("a", seq, Some(17))
        });
    }
    assert_eq!(refusals(&s, "a").len(), 1, "{:#?}", refusals(&s, "a"));
    assert_eq!(refusing(&s), [("a", 1), ("b", 0)]);
}

/// An agent that keeps a term of no cluster (taken from an orchestrator
/// older than clusters, with etcd) judges this leader's answers by its
/// term, whatever this leader's cluster (a rolling upgrade): its term 17
/// is above this leader's 3, so it refuses this leader's orders — said.
#[tokio::test(start_paused = true)]
async fn an_agent_keeping_a_term_of_no_cluster_is_compared_with_a_clusters_leader() {
    let (s, _leadership) = leader_of_cluster_b_at_term_3().await;
    for seq in 1..=3 {
        s.accept_report(AgentReport {
            taken_cluster: Some(None),
            ..report("a", seq, Some(17))
        });
    }
    assert_eq!(refusals(&s, "a").len(), 1, "{:#?}", refusals(&s, "a"));
}

/// An agent that left this leader's etcd cluster (it went on to cluster
/// c; this leader's cluster b came back: data restored from before the
/// move) refuses every answer of this leader whatever its term, for good:
/// said, with what to do, shown in the status and the gauge. Before,
/// nothing was said: the agent keeps another cluster, and such an agent
/// was taken to follow this leader's next answer as a move.
#[tokio::test(start_paused = true)]
async fn an_agent_that_left_this_leaders_cluster_is_said_to_refuse_it() {
    let (s, _leadership) = leader_of_cluster_b_at_term_3().await;
    for seq in 1..=3 {
        s.accept_report(AgentReport {
            taken_cluster: Some(Some(0xc)),
            left_clusters: vec![0xa, 0xb],
            ..report("a", seq, Some(2))
        });
    }
    let said = refusals(&s, "a");
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(
        said[0].starts_with(
            "site a's agent refuses this orchestrator's orders: it left etcd cluster b for etcd \
             cluster c (the orchestrators moved away from this etcd data and back"
        ) && said[0].contains("take 11 out of \"retired\" in its authority.json"),
        "{}",
        said[0]
    );
    assert_eq!(refusing(&s), [("a", 1), ("b", 0)]);
    let views = super::views::site_views(&s, &["a".into()]);
    assert_eq!(views[0].left_cluster, Some(0xb));
}
