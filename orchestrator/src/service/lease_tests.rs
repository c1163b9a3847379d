//! An elected node's licence ends at its lease's deadline by itself: a
//! leader paused past its lease (SIGSTOP, a frozen VM, a starved runtime)
//! that runs again before its election loop has stepped down hands out no
//! order, tells no epoch, takes no operator action and does not go on with
//! the step it was in — another node may lead by then.
use super::harness::*;
use super::*;
use crate::etcd::leader::{Leadership, Role};
use crate::store::{MemStore, Store};

/// A node of an elected deployment on `store`, routing through a fake (not
/// leading yet), with what must live as long as it: the sender of its
/// leadership view and its directory.
pub(super) fn elected(
    store: Arc<MemStore>,
) -> (
    Arc<Shared>,
    Arc<FakeRoute>,
    (watch::Sender<Leadership>, TestDir),
) {
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    let fake = Arc::new(FakeRoute::default());
    let web = fake.clone();
    let (tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_routed_as(
        &text,
        &dir,
        store,
        move |_| web.clone(),
        Mode::Elected(view),
    )
    .unwrap();
    (s, fake, (tx, dir))
}

#[tokio::test(start_paused = true)]
async fn a_leader_running_again_past_its_lease_deadline_acts_on_nothing() {
    let store = Arc::new(MemStore::default());
    let (s, fake, _leadership) = elected(store.clone());
    let role = HaRole(s.clone());
    assert!(role.lease_until((Instant::now() + Duration::from_secs(60)).into()));
    role.take_over(1, None).await.unwrap();
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    let activations = || fake.activations.load(std::sync::atomic::Ordering::SeqCst);
    let before = (fake.route.lock().unwrap().clone(), activations());

    // A switchover whose promote of b is under way (b's agent holds it).
    s.operator_switchover("web", "b", "operator")
        .expect("switchover");
    let promote = |c: &Command| c.kind == CommandKind::Promote;
    let mut waiting = Vec::new();
    for _ in 0..40 {
        waiting = s.commands_for("b");
        if waiting.iter().any(promote) {
            break;
        }
        round_sites(&s, true, true, &promote).await;
    }
    let order = waiting
        .into_iter()
        .find(promote)
        .expect("b's promote is waiting");
    let epoch = group(&s).epoch;

    // The last renewal gives the lease one more second; then the process
    // does not run its election loop (paused, starved) while time passes.
    assert!(role.lease_until((Instant::now() + Duration::from_secs(1)).into()));
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline + Duration::from_millis(500) {
        round_sites(&s, true, true, &promote).await;
        if Instant::now() >= deadline {
            assert!(
                s.commands_for("b").is_empty() && s.commands_for("a").is_empty(),
                "an order handed out {:?} past the lease deadline",
                Instant::now() - deadline
            );
        }
    }
    let answer = s.accept_report(super::fresh_checks_tests::report("b", 1000, vec![]));
    assert!(
        answer.commands.is_empty() && answer.epochs.is_empty(),
        "a report answered with orders past the lease deadline: {answer:?}"
    );
    assert!(
        s.operator_maintenance("web", true, "operator").is_err(),
        "an operator action taken past the lease deadline"
    );
    assert!(s.leadership().is_some_and(|l| !l.is_leader));

    // b's promote finishes: nothing follows from here (the new leader
    // resumes the runbook from the store).
    let done = CommandOutcome {
        id: order.id.clone(),
        ok: true,
        detail: "ok".into(),
        hooks: vec![],
        checks: None,
        journal: None,
        kept_in_place: None,
    };
    s.accept_report(super::fresh_checks_tests::report("b", 1001, vec![done]));
    sites_rounds(&s, 12, (true, true), &answer_all).await;
    assert_eq!(
        (fake.route.lock().unwrap().clone(), activations()),
        before,
        "the routing layer was written past the lease deadline"
    );
    assert_left_running(&store, epoch);
}

/// A DNS provider that keeps no epoch (as a dyndns2 server): it takes
/// every update, each recorded with the moment it was sent. Like dyndns2,
/// it skips what it remembers as confirmed, so a switch asks the
/// authoritative servers first.
#[derive(Default)]
struct Unfenced(Mutex<Vec<(String, u64, Instant)>>);

#[async_trait]
impl warden_strategies::dns::DnsProvider for Unfenced {
    fn kind(&self) -> &'static str {
        "unfenced"
    }
    fn skips_confirmed(&self) -> bool {
        true
    }
    async fn publish(
        &self,
        site: &str,
        _: &warden_strategies::dns::RecordValue,
        epoch: u64,
    ) -> Result<(), StrategyError> {
        self.0
            .lock()
            .unwrap()
            .push((site.to_string(), epoch, Instant::now()));
        Ok(())
    }
    async fn observe(&self) -> Result<Option<warden_strategies::dns::ProviderView>, StrategyError> {
        Ok(None)
    }
}

/// A leader's switch on a `dns` group asks the authoritative server first
/// (it does not answer: the question takes its timeout) and the lease
/// lapses meanwhile — the process paused in the middle of the call and
/// resumed past its deadline, before its election loop stepped down. The
/// update is not sent, and the runbook stays running for the next leader.
/// Before, the licence was looked at only as the step began: the late
/// update went out, and a provider that keeps no epoch took it over
/// whatever the new leader had published.
#[tokio::test(start_paused = true)]
async fn an_update_read_for_past_the_lease_deadline_is_not_sent() {
    use warden_strategies::dns::{DnsStrategy, RecordValue};
    let dir = test_dir(false, 5);
    let text = config_text(&dir, false, 5, "");
    // An authoritative server that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let ns = silent.local_addr().unwrap();
    let dns = Arc::new(Unfenced::default());
    let provider = dns.clone();
    let store = Arc::new(MemStore::default());
    let (_tx, view) = watch::channel(Leadership::new("n1", Duration::from_secs(3)));
    let s = start_with_routing(
        &text,
        &dir,
        store.clone(),
        Mode::Elected(view),
        move |_, name| {
            let sites = [("a", "10.77.2.1"), ("b", "10.77.2.2")]
                .into_iter()
                .map(|(s, ip)| (s.to_string(), RecordValue::parse(ip).unwrap()))
                .collect();
            crate::routing::Routing::Single(Arc::new(DnsStrategy::new(
                name,
                vec!["www.example.net".into()],
                sites,
                vec![ns],
                Duration::from_secs(1),
                provider.clone(),
            )))
        },
    )
    .unwrap();
    let role = HaRole(s.clone());
    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(1, None).await.unwrap();
    // The take-over's reconciliation cannot read the server, and routes a
    // again as a precaution: its last act.
    for _ in 0..200 {
        if !dns.0.lock().unwrap().is_empty() {
            break;
        }
        round_sites(&s, true, true, &answer_all).await;
    }
    assert_eq!(
        dns.0
            .lock()
            .unwrap()
            .first()
            .map(|(site, _, _)| site.as_str()),
        Some("a"),
        "the take-over's reconciliation routes a"
    );

    s.operator_switchover("web", "b", "operator")
        .expect("switchover");
    let epoch = group(&s).epoch;
    let switching = |s: &Shared| {
        s.lock().runbooks.values().any(|r| {
            r.epoch == epoch
                && r.steps
                    .iter()
                    .any(|st| st.name == StepName::Switch && st.status == StepStatus::Running)
        })
    };
    for _ in 0..80 {
        if switching(&s) {
            break;
        }
        round_sites(&s, true, true, &answer_all).await;
    }
    assert!(switching(&s), "the switch step is under way");

    // The switch asks the server (2 s); the lease ends in 200 ms, and
    // nothing else looks at the licence meanwhile (the process is paused).
    let deadline = Instant::now() + Duration::from_millis(200);
    assert!(role.lease_until(deadline.into()));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let late: Vec<(String, u64)> = dns
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, at)| *at >= deadline)
        .map(|(site, epoch, _)| (site.clone(), *epoch))
        .collect();
    assert!(
        late.is_empty(),
        "DNS updates sent past the lease deadline: {late:?}"
    );
    assert!(s.leadership().is_some_and(|l| !l.is_leader));
    assert_left_running(&store, epoch);
    drop(silent);
}

/// Every answer to an agent says the term it was made under (the etcd
/// revision of the leader key) and the etcd cluster of that term (terms
/// start over in a new one: the agent compares terms of one cluster): the agent takes a withdrawal only from the
/// term that handed the command out or a later one, so a deposed leader's
/// answer delayed in transit cannot take back what the next leader handed
/// out again (`warden_agents` book tests). It also says its place among
/// this process's answers, whichever channel carries it, so the agent
/// can tell a late one of the same term.
#[tokio::test(start_paused = true)]
async fn answers_to_agents_carry_the_leaders_term() {
    let (s, _fake, _leadership) = elected(Arc::new(MemStore::default()));
    let role = HaRole(s.clone());
    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(17, Some(0xa)).await.unwrap();
    sites_rounds(&s, 4, (true, true), &answer_all).await;
    let answer = s.accept_report(super::fresh_checks_tests::report("b", 1000, vec![]));
    assert_eq!(
        (answer.term, answer.cluster),
        (17, Some(0xa)),
        "a report's answer: {answer:?}"
    );
    let polled = s.poll_answer("b").0;
    assert_eq!(
        (polled.term, polled.cluster),
        (17, Some(0xa)),
        "a poll's answer"
    );
    // Each in its place among this process's answers, across channels.
    let (first, then) = (answer.order.expect("placed"), polled.order.expect("placed"));
    assert_eq!(first.maker, then.maker, "one process, one maker");
    assert!(
        then.n > first.n,
        "made later, placed later: {first:?}, {then:?}"
    );

    role.step_down("test: another node won");
    assert_eq!(
        s.poll_answer("b").0,
        ReportResponse::default(),
        "a follower answers with nothing"
    );
    assert!(role.lease_until((Instant::now() + Duration::from_secs(600)).into()));
    role.take_over(3, Some(0xb)).await.unwrap();
    let answer = s.accept_report(super::fresh_checks_tests::report("b", 1001, vec![]));
    assert_eq!(
        (answer.term, answer.cluster),
        (3, Some(0xb)),
        "after a new election in a new etcd cluster: {answer:?}"
    );
    assert_eq!(s.poll_answer("b").0.cluster, Some(0xb));
    let again = answer.order.expect("placed");
    assert!(
        again.maker == then.maker && again.n > then.n,
        "the count goes on across terms: {then:?}, {again:?}"
    );
}

/// The switchover's runbook at `epoch` is stored and still running: left
/// for the next leader to resume.
fn assert_left_running(store: &MemStore, epoch: u64) {
    let rb = store
        .runbooks()
        .unwrap()
        .into_iter()
        .find(|r| r.epoch == epoch)
        .expect("the switchover's runbook is stored");
    assert_eq!(
        rb.status,
        RunbookStatus::Running,
        "left running for the next leader: {rb:#?}"
    );
}
