//! Rounds of reports driven by hand in the service's tests: each site's
//! checks and probes, the detector's round, runbooks answered or hung.
use super::*;

/// Check `web`'s result: passing, or refused.
pub(crate) fn check(ok: bool) -> CheckResult {
    CheckResult {
        name: "web".into(),
        ok,
        critical: true,
        detail: if ok {
            "status 200"
        } else {
            "connection refused"
        }
        .into(),
        elapsed_ms: 1,
    }
}

/// One 250 ms round: both agents report (answering queued commands), the
/// orchestrator's probes land, the detector runs, runbook tasks progress.
pub(in crate::service) async fn round(s: &Arc<Shared>, a_up: bool) {
    round_inner(s, a_up, true).await
}

/// [`round`]; `settle`: wait until the store holds every change (not with
/// a full disk). Unsettled, a round still lets a commit under way end
/// before its clock moves ([`Shared::writer_idle`]).
pub(in crate::service) async fn round_inner(s: &Arc<Shared>, a_up: bool, settle: bool) {
    round_lag(s, a_up, settle, None).await
}

/// [`round_inner`]; a's report carries its replication toward b with `lag` (ms).
pub(in crate::service) async fn round_lag(
    s: &Arc<Shared>,
    a_up: bool,
    settle: bool,
    lag: Option<u64>,
) {
    round_with(
        s,
        (a_up, true),
        settle,
        lag.map(|l| (l, "b")),
        &|_| false,
        None,
    )
    .await;
}

/// One round as [`round_lag`] (settled), a's replication `lag` reported
/// toward site `peer` (not b: a site of another group's layout, a
/// misreport).
pub(in crate::service) async fn round_lag_toward(
    s: &Arc<Shared>,
    a_up: bool,
    lag: u64,
    peer: &'static str,
) {
    round_with(s, (a_up, true), true, Some((lag, peer)), &|_| false, None).await;
}

/// One round as [`round_lag`] (settled, no lag) in which b's agent says
/// why it cannot be promoted for group web (`unfit`), or nothing.
pub(in crate::service) async fn round_unfit(s: &Arc<Shared>, a_up: bool, unfit: Option<&str>) {
    round_with(s, (a_up, true), true, None, &|_| false, unfit).await;
}

/// One 250 ms round in which each site's service is up or down as told,
/// both agents report, and each answers its queued commands except those
/// `held` keeps running (a resync that takes its time): the commands
/// answered, with their sites.
pub(in crate::service) async fn round_sites(
    s: &Arc<Shared>,
    a_up: bool,
    b_up: bool,
    held: &dyn Fn(&Command) -> bool,
) -> Vec<(String, Command)> {
    round_with(s, (a_up, b_up), true, None, held, None).await
}

/// [`round_sites`] without waiting until the store holds the changes (a
/// full disk): only a commit under way ends before the clock moves.
pub(in crate::service) async fn round_sites_unsettled(
    s: &Arc<Shared>,
    up: (bool, bool),
    held: &dyn Fn(&Command) -> bool,
) -> Vec<(String, Command)> {
    round_with(s, up, false, None, held, None).await
}

/// The round every helper above runs: `up` for sites a and b, `settle`
/// (wait for the store writer), a's replication `lag` and the peer it is
/// toward, `held` commands, and why b says it cannot be promoted
/// (`unfit_b`).
async fn round_with(
    s: &Arc<Shared>,
    (a_up, b_up): (bool, bool),
    settle: bool,
    lag: Option<(u64, &'static str)>,
    held: &dyn Fn(&Command) -> bool,
    unfit_b: Option<&str>,
) -> Vec<(String, Command)> {
    let mut answered = Vec::new();
    for (site, peer, local, peer_up) in [("a", "b", a_up, b_up), ("b", "a", b_up, a_up)] {
        let commands: Vec<Command> = s
            .commands_for(site)
            .into_iter()
            .filter(|c| !held(c))
            .collect();
        answered.extend(commands.iter().map(|c| (site.to_string(), c.clone())));
        let outcomes = commands
            .into_iter()
            .map(|c| CommandOutcome {
                // A current agent: its resync or final pass says what it
                // left in place (nothing).
                kept_in_place: matches!(c.kind, CommandKind::Resync | CommandKind::FinalSync)
                    .then_some(0),
                id: c.id,
                ok: true,
                detail: "ok".into(),
                hooks: vec![],
                checks: None,
                journal: None,
            })
            .collect();
        s.accept_report(AgentReport {
            site: site.into(),
            seq: 1,
            started_unix_ms: 0,
            boot: String::new(),
            checks: vec![check(local)],
            peers: vec![PeerProbe {
                site: peer.into(),
                results: vec![check(peer_up)],
                age_ms: 0,
            }],
            outcomes,
            replication: match (site, lag) {
                ("a", Some((ms, toward))) => vec![ReplicationStatus {
                    group: "web".into(),
                    role: "source".into(),
                    peer: Some(toward.into()),
                    epoch: 1,
                    lag_ms: Some(ms),
                    ..ReplicationStatus::default()
                }],
                _ => vec![],
            },
            authority: match (site, unfit_b) {
                ("b", Some(why)) => vec![AuthorityWire {
                    group: "web".into(),
                    role: "standby".into(),
                    unfit: Some(why.into()),
                    ..AuthorityWire::default()
                }],
                _ => vec![],
            },
            taken_term: None,
            taken_cluster: None,
            left_clusters: vec![],
        });
    }
    {
        let mut st = s.lock();
        let now = Instant::now();
        st.evidence
            .external
            .insert("a".into(), (now, vec![check(a_up)]));
        st.evidence
            .external
            .insert("b".into(), (now, vec![check(b_up)]));
    }
    s.detect_round().await;
    if settle {
        s.writer_settled().await;
    }
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    // A commit the writer began (this round's changes, a retry on a full
    // disk) ends before the clock moves: paused time does not wait for the
    // store's blocking thread, and a round's 250 ms would otherwise pass
    // while a loaded machine has not run it yet — a runbook waiting for its
    // decision's commit to fail would not start for many rounds.
    s.writer_idle().await;
    tokio::time::advance(Duration::from_millis(250)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    answered
}

/// One round ([`round_sites`]'s, both sites and both agents up) in which
/// the orchestrator's own probe of `a` fails: a path fault.
pub(in crate::service) async fn path_fault_to_a(s: &Arc<Shared>) {
    for (site, peer) in [("a", "b"), ("b", "a")] {
        s.accept_report(AgentReport {
            site: site.into(),
            seq: 1,
            started_unix_ms: 0,
            boot: String::new(),
            checks: vec![check(true)],
            peers: vec![PeerProbe {
                site: peer.into(),
                results: vec![check(true)],
                age_ms: 0,
            }],
            outcomes: vec![],
            replication: vec![],
            authority: vec![],
            taken_term: None,
            taken_cluster: None,
            left_clusters: vec![],
        });
    }
    {
        let mut st = s.lock();
        let now = Instant::now();
        st.evidence
            .external
            .insert("a".into(), (now, vec![check(false)]));
        st.evidence
            .external
            .insert("b".into(), (now, vec![check(true)]));
    }
    s.detect_round().await;
    s.writer_settled().await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::advance(Duration::from_millis(250)).await;
}

pub(in crate::service) fn group(s: &Shared) -> GroupState {
    s.lock().groups["web"].clone()
}

pub(in crate::service) async fn rounds_until(
    s: &Arc<Shared>,
    a_up: bool,
    max: usize,
    what: &str,
    f: impl Fn(&GroupState) -> bool,
) {
    for _ in 0..max {
        if f(&group(s)) {
            return;
        }
        round(s, a_up).await;
    }
    panic!("{what}: group is {:#?}", group(s));
}

/// The two-site test config with a replication plan (`plan = "none"`,
/// then the lines `replication`), `failback` and the failover budget as
/// given, started on a fresh store, after 8 healthy rounds.
pub(in crate::service) async fn replicated(
    failback: &str,
    max_failovers: u32,
    replication: &str,
) -> (Arc<Shared>, Arc<FakeRoute>, TestDir) {
    let dir = test_dir(true, max_failovers);
    let text = config_text(&dir, true, max_failovers, "").replace(
        "automatic = true",
        &format!("automatic = true\nfailback = \"{failback}\""),
    ) + "[groups.web.replication]\nplan = \"none\"\n"
        + replication;
    let (s, fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    sites_rounds(&s, 8, (true, true), &answer_all).await;
    (s, fake, dir)
}

/// Every command is answered ([`round_sites`]'s `held`).
pub(in crate::service) fn answer_all(_: &Command) -> bool {
    false
}

/// `n` rounds with sites a and b up as `up` says.
pub(in crate::service) async fn sites_rounds(
    s: &Arc<Shared>,
    n: usize,
    (a_up, b_up): (bool, bool),
    held: &dyn Fn(&Command) -> bool,
) -> Vec<(String, Command)> {
    let mut sent = Vec::new();
    for _ in 0..n {
        sent.extend(round_sites(s, a_up, b_up, held).await);
    }
    sent
}

/// Rounds ([`round_sites`], sites a and b up as `up` says) until `done`
/// holds for the group — at most `max`, else a panic saying `what`: the
/// commands answered meanwhile.
pub(in crate::service) async fn sites_until(
    s: &Arc<Shared>,
    (a_up, b_up): (bool, bool),
    held: &dyn Fn(&Command) -> bool,
    max: usize,
    what: &str,
    done: impl Fn(&GroupState) -> bool,
) -> Vec<(String, Command)> {
    let mut sent = Vec::new();
    for _ in 0..max {
        if done(&group(s)) {
            return sent;
        }
        sent.extend(round_sites(s, a_up, b_up, held).await);
    }
    assert!(
        done(&group(s)),
        "{what} after {max} rounds: {:#?}",
        group(s)
    );
    sent
}

/// Rounds until a's service, dead, is failed over from: the group steady
/// on b (replication from b paused when the group has a plan).
pub(in crate::service) async fn fail_over_to_b(s: &Arc<Shared>) {
    sites_until(
        s,
        (false, true),
        &answer_all,
        40,
        "not failed over to b",
        |g| g.active == "b" && g.phase == Phase::Steady,
    )
    .await;
}
