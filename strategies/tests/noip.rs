//! The `noip` and `dyndns2` providers against `warden_testkit::noip::FakeNoip`,
//! a strict stand-in for No-IP's update server (No-IP itself cannot be
//! reached from here): success, no needless `nochg`, the 30-minute hold after
//! `911`, every fatal code stopping updates without hammering the server,
//! several hostnames, IPv6, Dyn's codes, faults, and the password kept out
//! of every error, `Debug` output and log line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warden_config::Secret;
use warden_strategies::dns::dyndns::{
    DyndnsProvider, Flavor, DEFAULT_USER_AGENT, FAILED_PAUSE, HOLD,
};
use warden_strategies::dns::{DnsProvider, DnsStrategy, RecordValue};
use warden_strategies::{SiteRoute, Strategy, StrategyError, SwitchMode};
use warden_testkit::noip::{self, FakeNoip, HostIps, Running};

const USER: &str = "ops@example.net";
const PASSWORD: &str = "Pa55-w0rd-never-shown";
const WWW: &str = "www.example.net";
const WWW2: &str = "www2.example.net";
const WWW3: &str = "www3.example.net";

fn v4(a: &str) -> RecordValue {
    RecordValue {
        v4: Some(a.parse().unwrap()),
        v6: None,
    }
}

fn creds(password: &str) -> Secret {
    Secret::new(format!("{USER}:{password}"))
}

async fn start(fake: &FakeNoip) -> Running {
    noip::start(fake.clone()).await.expect("start the fake")
}

fn provider(flavor: Flavor, run: &Running, names: &[&str]) -> DyndnsProvider {
    provider_with(flavor, run, names, &creds(PASSWORD), None)
}

fn provider_with(
    flavor: Flavor,
    run: &Running,
    names: &[&str],
    credentials: &Secret,
    user_agent: Option<&str>,
) -> DyndnsProvider {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    DyndnsProvider::new(
        flavor,
        "web",
        Some(&run.update_url()),
        &names,
        credentials,
        user_agent,
        Duration::from_secs(2),
    )
    .expect("build the provider")
}

fn ips(v4: &str) -> HostIps {
    HostIps {
        v4: Some(v4.parse().unwrap()),
        v6: None,
    }
}

fn assert_blocked(e: &StrategyError, needle: &str) {
    match e {
        StrategyError::Blocked { reason, .. } => {
            assert!(reason.contains(needle), "{needle:?} not in {reason:?}")
        }
        other => panic!("expected Blocked mentioning {needle:?}, got {other:?}"),
    }
    assert!(!e.is_transient());
}

#[tokio::test]
async fn good_answer_confirms_the_value() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    assert_eq!(
        p.observe().await.unwrap(),
        None,
        "nothing known before an answer"
    );

    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();

    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.2.10")));
    let view = p.observe().await.unwrap().expect("a view after good");
    assert_eq!(view.value, Some(v4("10.77.2.10")));
    assert_eq!(view.epoch, 1);
    assert!(view.drift.is_empty());
    let log = fake.log();
    assert_eq!(log.len(), 1);
    assert!(log[0].authorized, "basic auth accepted");
    assert_eq!(log[0].answer, "good 10.77.2.10");
    assert_eq!(log[0].hostnames, vec![WWW.to_string()]);
    assert_eq!(log[0].myip.as_deref(), Some("10.77.2.10"));
    assert_eq!(log[0].user_agent.as_deref(), Some(DEFAULT_USER_AGENT));
    assert!(p.alerts().is_empty());
}

#[tokio::test]
async fn configured_user_agent_reaches_the_server() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let ua = "Example-Corp warden/0.1.0 dns-team@example.net";
    let p = provider_with(Flavor::Noip, &run, &[WWW], &creds(PASSWORD), Some(ua));
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();
    assert_eq!(fake.log()[0].user_agent.as_deref(), Some(ua));
}

#[tokio::test]
async fn nochg_is_not_caused_again_and_again() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();
    p.publish("ca", &v4("10.77.2.10"), 2).await.unwrap();
    assert_eq!(fake.requests(), 1, "a confirmed value is not sent again");
    assert_eq!(p.observe().await.unwrap().unwrap().epoch, 2);

    // A restarted orchestrator knows nothing: its first update is allowed
    // (and earns one nochg), the next one is not sent.
    let restarted = provider(Flavor::Noip, &run, &[WWW]);
    restarted.publish("ca", &v4("10.77.2.10"), 2).await.unwrap();
    restarted.publish("ca", &v4("10.77.2.10"), 2).await.unwrap();
    restarted.publish("ca", &v4("10.77.2.10"), 3).await.unwrap();
    assert_eq!(fake.requests(), 2);
    let stats = fake.stats();
    assert_eq!((stats.good, stats.nochg), (1, 1));
    assert_eq!(fake.log()[1].answer, "nochg 10.77.2.10");

    // A different value is sent.
    restarted
        .publish("tx", &v4("198.51.100.20"), 4)
        .await
        .unwrap();
    assert_eq!(fake.requests(), 3);
    assert_eq!(fake.ip_of(WWW), Some(ips("198.51.100.20")));
}

/// Two orchestrators on etcd, each with its provider: n leads and points
/// the name at A; n loses its lease (a slow renewal) and follows, m leads
/// and moves the name to B; n leads again. What n confirmed in its
/// earlier term is forgotten as its term begins, so its failback to A is
/// sent — before, n's memory said A was confirmed: nothing was sent, its
/// verify (no nameservers: the provider's view) passed on that memory, and
/// users stayed on B.
#[tokio::test]
async fn a_new_leader_term_forgets_what_an_earlier_term_confirmed() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let n = provider(Flavor::Noip, &run, &[WWW]);
    let m = provider(Flavor::Noip, &run, &[WWW]);
    n.publish("a", &v4("10.77.1.10"), 5).await.unwrap();
    m.publish("b", &v4("10.77.2.10"), 6).await.unwrap();
    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.2.10")));
    assert_eq!(fake.requests(), 2);

    n.term_began();
    assert_eq!(
        n.observe().await.unwrap(),
        None,
        "an earlier term's confirmation is no view of the name now"
    );
    n.publish("a", &v4("10.77.1.10"), 7).await.unwrap();
    assert_eq!(fake.requests(), 3, "the failback to A was not sent");
    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.1.10")));
    assert_eq!(n.observe().await.unwrap().unwrap().epoch, 7);
}

/// The authoritative servers the strategy verifies with disagree with what
/// No-IP confirmed (they lag behind it, or are not No-IP's): every
/// reconciliation pass (every 2 s) the strategy makes the provider
/// `forget` the name and publishes again. The first resend is answered
/// `nochg` — No-IP holds the value — and the provider takes that answer
/// for 30 minutes instead of earning a needless `nochg` at every pass
/// (No-IP blocks clients that cause many). After that a doubt is followed
/// again: a hand edit at No-IP is then put right (`good`).
#[tokio::test]
async fn a_doubt_answered_nochg_is_not_sent_again_every_pass() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    let value = v4("10.77.2.10");
    p.publish("ca", &value, 1).await.unwrap();
    // What DnsStrategy::activate does each pass while the nameservers
    // show another address.
    let pass = |epoch| {
        p.forget(&[WWW.to_string()]);
        p.publish("ca", &value, epoch)
    };
    pass(1).await.expect("the first doubt is sent");
    assert_eq!(fake.log()[1].answer, "nochg 10.77.2.10");
    for _ in 0..20 {
        pass(1).await.expect("taken as held");
    }
    let stats = fake.stats();
    assert_eq!(
        (stats.requests, stats.good, stats.nochg),
        (2, 1, 1),
        "one nochg for the first doubt, none for the next passes"
    );
    // A hand edit at No-IP; 30 minutes on, a doubt is sent again.
    fake.set_ip(WWW, ips("203.0.113.5"));
    tokio::time::pause();
    tokio::time::advance(HOLD + Duration::from_secs(1)).await;
    p.forget(&[WWW.to_string()]);
    tokio::time::resume();
    p.publish("ca", &value, 2).await.expect("put right");
    assert_eq!(fake.requests(), 3);
    let log = fake.log();
    assert_eq!(
        log.last().map(|r| r.answer.as_str()),
        Some("good 10.77.2.10")
    );
    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.2.10")));
}

/// An authoritative nameserver of the fake's hosts on 127.0.0.1 (UDP): it
/// answers, with the AA bit, the A record No-IP holds for the name asked
/// — as No-IP's own nameservers publish what it holds.
async fn nameserver_of(fake: &FakeNoip) -> std::net::SocketAddr {
    use hickory_net::proto::op::{Message, OpCode};
    use hickory_net::proto::rr::{rdata, RData, Record, RecordType};
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let fake = fake.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut m = Message::response(q.metadata.id, OpCode::Query);
            m.metadata.authoritative = true;
            m.add_queries(q.queries.clone());
            if let Some(asked) = q.queries.first() {
                let host = asked.name().to_ascii();
                let held = fake.ip_of(host.trim_end_matches('.'));
                if let (RecordType::A, Some(ip)) = (asked.query_type(), held.and_then(|h| h.v4)) {
                    m.add_answer(Record::from_rdata(
                        asked.name().clone(),
                        60,
                        RData::A(rdata::A(ip)),
                    ));
                }
            }
            let _ = sock.send_to(&m.to_vec().unwrap(), from).await;
        }
    });
    addr
}

/// The group's nameservers are a dead one first (at the site that was
/// lost) and No-IP's. A hand edit at No-IP puts the name back on site a
/// after warden confirmed b: verification (which asks every nameserver)
/// sees the drift, and the reconciliation's re-apply must send — the
/// provider's memory of b is contradicted by a server that answers from
/// its zone. Before, only the first nameserver was asked before a
/// publish: it did not answer, nothing was forgotten, and every re-apply
/// returned Ok without a request while users resolved to the lost site.
#[tokio::test]
async fn a_hand_edit_seen_by_any_nameserver_is_put_right() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let ns = nameserver_of(&fake).await;
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sites = std::collections::BTreeMap::from([
        ("a".to_string(), v4("10.77.1.10")),
        ("b".to_string(), v4("10.77.2.10")),
    ]);
    let st = DnsStrategy::new(
        "web",
        vec![WWW.to_string()],
        sites,
        vec![dead.local_addr().unwrap(), ns],
        Duration::from_millis(300),
        Arc::new(provider(Flavor::Noip, &run, &[WWW])),
    );
    let to_b = SiteRoute {
        site: "b".into(),
        mode: SwitchMode::Immediate,
    };
    st.activate(&to_b, 2).await.expect("switch to b");
    assert_eq!(fake.requests(), 1);
    let seen = st.current().await.expect("readable");
    assert_eq!(seen.site.as_deref(), Some("b"), "{seen:?}");

    fake.set_ip(WWW, ips("10.77.1.10"));
    let seen = st.current().await.expect("readable");
    assert_eq!(
        seen.site.as_deref(),
        Some("a"),
        "the hand edit is seen: {seen:?}"
    );
    st.activate(&to_b, 2).await.expect("re-applied");
    assert_eq!(fake.requests(), 2, "the re-apply sent nothing");
    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.2.10")));
}

/// A server that does not set the addresses sent (it ignores `myip` and
/// uses its own idea, here 203.0.113.5) answers every update of
/// 10.77.2.10 with `nochg 203.0.113.5`. The route is never confirmed, so
/// every reconciliation pass (every 2 s) publishes again: the same request
/// must not be sent each time — each earns a needless `nochg`, and No-IP
/// blocks clients that cause many. It is refused without a request for 30
/// minutes (saying what the server answered), another value is still
/// sent, and `warden clear` lets it go at once.
#[tokio::test]
async fn an_update_answered_with_other_addresses_is_not_repeated_every_pass() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    let value = v4("10.77.2.10");
    for _ in 0..30 {
        fake.answer_next("nochg 203.0.113.5");
    }
    let e = p.publish("ca", &value, 1).await.expect_err("not applied");
    assert!(
        matches!(&e, StrategyError::Rejected { reason, .. } if reason.contains("203.0.113.5")),
        "{e}"
    );
    let mut last = e;
    for _ in 0..20 {
        last = p.publish("ca", &value, 1).await.expect_err("not applied");
    }
    let stats = fake.stats();
    assert_eq!(
        (stats.requests, stats.nochg),
        (1, 1),
        "one request for 21 passes, not one per pass"
    );
    assert!(
        matches!(&last, StrategyError::Rejected { reason, .. }
            if reason.contains("nochg 203.0.113.5") && reason.contains("no request was sent")),
        "{last}"
    );
    // The operator fixed the server: clear lets the update go at once.
    fake.heal();
    let lifted = p.clear();
    assert!(
        lifted.iter().any(|l| l.contains("10.77.2.10")),
        "{lifted:?}"
    );
    p.publish("ca", &value, 1).await.expect("sent after clear");
    assert_eq!(fake.requests(), 2);
    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.2.10")));
    // Another value answered with other addresses: refused again for 30
    // minutes; a value that was not is still sent.
    let tx = v4("198.51.100.20");
    fake.answer_next("nochg 203.0.113.5");
    p.publish("tx", &tx, 2)
        .await
        .expect_err("answered with other addresses");
    p.publish("tx", &tx, 2).await.expect_err("not sent again");
    assert_eq!(fake.requests(), 3);
    p.publish("ca", &value, 2)
        .await
        .expect("another value is sent");
    assert_eq!(fake.requests(), 4);
    // 30 minutes on, it is sent again by itself.
    tokio::time::pause();
    tokio::time::advance(HOLD + Duration::from_secs(1)).await;
    tokio::time::resume();
    p.publish("tx", &tx, 3)
        .await
        .expect("sent after 30 minutes");
    assert_eq!(fake.ip_of(WWW), Some(ips("198.51.100.20")));
    assert_eq!(fake.requests(), 5);
}

#[tokio::test]
async fn code_911_holds_updates_for_30_minutes() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    fake.fail_next("911", 1);

    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, "911");
    assert_blocked(&e, "30 min");
    assert_eq!(fake.requests(), 1);
    let alerts = p.alerts();
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].contains("held until"), "{alerts:?}");

    // Paused time: nothing below does network I/O until `resume`.
    tokio::time::pause();
    tokio::time::advance(HOLD - Duration::from_secs(60)).await;
    for epoch in 1..4 {
        let e = p.publish("ca", &v4("10.77.2.10"), epoch).await.unwrap_err();
        assert_blocked(&e, "no request was sent");
    }
    assert_eq!(p.alerts().len(), 1, "still held after 29 minutes");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(p.alerts().is_empty(), "the hold ends after 30 minutes");
    tokio::time::resume();

    assert_eq!(fake.requests(), 1, "no request during the hold");
    p.publish("ca", &v4("10.77.2.10"), 3).await.unwrap();
    assert_eq!(fake.requests(), 2);
    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.2.10")));
}

#[tokio::test]
async fn a_hold_can_be_cleared_by_the_operator() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    fake.fail_next("911", 1);
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    let lifted = p.clear();
    assert_eq!(lifted.len(), 1);
    assert!(lifted[0].contains("911"));
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();
    assert_eq!(fake.requests(), 2);
}

/// Publish a fatal case, then check: `Blocked`, an alert, further publishes
/// send nothing, `clear()` lifts it and the next publish is sent.
async fn fatal_case(fake: &FakeNoip, p: &DyndnsProvider, code: &str) {
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, &format!("`{code}`"));
    let sent = fake.requests();
    assert_eq!(sent, 1, "{code}: one request");
    let alerts = p.alerts();
    assert_eq!(alerts.len(), 1, "{code}: {alerts:?}");
    assert!(alerts[0].contains(code), "{code}: {alerts:?}");
    assert!(alerts[0].contains("updates stopped"), "{alerts:?}");
    for (epoch, value) in [(2, "10.77.2.10"), (3, "198.51.100.20"), (4, "203.0.113.30")] {
        let e = p.publish("tx", &v4(value), epoch).await.unwrap_err();
        assert_blocked(&e, "no request was sent");
    }
    assert_eq!(fake.requests(), sent, "{code}: no hammering while blocked");
    // Time alone does not lift a block.
    assert_eq!(p.alerts().len(), 1);
    let lifted = p.clear();
    assert_eq!(lifted.len(), 1, "{code}");
    assert!(p.alerts().is_empty());
    let _ = p.publish("ca", &v4("10.77.2.10"), 5).await;
    assert_eq!(fake.requests(), sent + 1, "{code}: sent again after clear");
}

#[tokio::test]
async fn badauth_stops_updates() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider_with(Flavor::Noip, &run, &[WWW], &creds("wrong-password"), None);
    fatal_case(&fake, &p, "badauth").await;
    assert!(!fake.log()[0].authorized);
    assert_eq!(fake.ip_of(WWW), Some(HostIps::default()), "nothing changed");
    // Still wrong after the clear: blocked again at once.
    assert_eq!(p.alerts().len(), 1);
}

/// A block outlives the provider (a restart, a crash loop, a new leader):
/// the stops the orchestrator stored are taken back by a new provider with
/// the same settings, which then sends nothing — even with the password
/// fixed, since nothing derived from it is stored; `warden clear` lifts it.
/// A provider whose user, hostnames or server changed does not take it back.
#[tokio::test]
async fn a_block_outlives_a_restart_until_cleared() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW, WWW2]);
    let run = start(&fake).await;
    let p = provider_with(Flavor::Noip, &run, &[WWW], &creds("wrong-password"), None);
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_eq!(fake.requests(), 1);
    let stored = p.stops();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].kind, warden_strategies::StopKind::Block);
    assert!(stored[0].reason.contains("badauth"), "{stored:?}");
    assert_eq!(p.stops(), stored, "the stored form is stable");
    let as_json = serde_json::to_string(&stored).unwrap();
    assert!(!as_json.contains("wrong-password") && !as_json.contains(PASSWORD));
    drop(p);

    // The same settings (the password fixed meanwhile): still blocked.
    let p2 = provider(Flavor::Noip, &run, &[WWW]);
    assert!(p2.restore_stops(&stored).is_empty());
    assert_eq!(p2.alerts().len(), 1);
    let e = p2.publish("ca", &v4("10.77.2.10"), 2).await.unwrap_err();
    assert_blocked(&e, "no request was sent");
    assert_eq!(fake.requests(), 1, "a restarted provider does not hammer");
    assert_eq!(p2.clear().len(), 1);
    assert!(p2.stops().is_empty());
    p2.publish("ca", &v4("10.77.2.10"), 3).await.unwrap();
    assert_eq!(fake.requests(), 2);

    // Other hostnames (or another server or user agent): not theirs.
    let p3 = provider(Flavor::Noip, &run, &[WWW, WWW2]);
    let dropped = p3.restore_stops(&stored);
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(dropped[0].contains("changed"), "{dropped:?}");
    assert!(p3.alerts().is_empty());
    let p4 = provider_with(
        Flavor::Noip,
        &run,
        &[WWW],
        &creds(PASSWORD),
        Some("Example Monitor/2.0 ops@example.net"),
    );
    assert_eq!(p4.restore_stops(&stored).len(), 1);
    // Nothing of the credentials is in the digest: another user (the
    // secret's first half) keeps the block, `warden clear` lifts it.
    let p5 = provider_with(
        Flavor::Noip,
        &run,
        &[WWW],
        &Secret::new(format!("other-user:{PASSWORD}")),
        None,
    );
    assert!(p5.restore_stops(&stored).is_empty());
    assert!(!serde_json::to_string(&stored).unwrap().contains(USER));
}

/// A `911` hold is stored with its wall-clock end: a new provider keeps it
/// for the time left, and forgets one that ended.
#[tokio::test]
async fn a_hold_outlives_a_restart_until_it_ends() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    fake.fail_next("911", 1);
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    let stored = p.stops();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, warden_strategies::StopKind::Hold);
    let until = stored[0].until_unix_ms.expect("a hold has an end");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        until > now + HOLD.as_millis() as u64 - 60_000 && until <= now + HOLD.as_millis() as u64,
        "about 30 minutes from now: {until} vs {now}"
    );

    let p2 = provider(Flavor::Noip, &run, &[WWW]);
    assert!(p2.restore_stops(&stored).is_empty());
    let e = p2.publish("ca", &v4("10.77.2.10"), 2).await.unwrap_err();
    assert_blocked(&e, "no request was sent");
    assert_eq!(fake.requests(), 1);
    tokio::time::pause();
    tokio::time::advance(HOLD + Duration::from_secs(1)).await;
    assert!(p2.alerts().is_empty(), "the hold ends when it would have");
    tokio::time::resume();

    // A hold whose end has passed (the orchestrator was down longer).
    let mut ended = stored.clone();
    ended[0].until_unix_ms = Some(now - 1);
    let p3 = provider(Flavor::Noip, &run, &[WWW]);
    let dropped = p3.restore_stops(&ended);
    assert_eq!(dropped.len(), 1);
    assert!(dropped[0].contains("ended"), "{dropped:?}");
    p3.publish("ca", &v4("10.77.2.10"), 3).await.unwrap();
    assert_eq!(fake.requests(), 2);

    // A stored end far in the future (a clock that was wrong): at most 30 min.
    let mut far = stored.clone();
    far[0].until_unix_ms = Some(now + 10 * HOLD.as_millis() as u64);
    let p4 = provider(Flavor::Noip, &run, &[WWW]);
    p4.restore_stops(&far);
    assert!(p4.stops()[0].until_unix_ms.unwrap() <= now + HOLD.as_millis() as u64 + 5_000);
}

#[tokio::test]
async fn badagent_stops_updates() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    // Not No-IP's "Company Program/Version contact" form: the server disables the client.
    let p = provider_with(
        Flavor::Noip,
        &run,
        &[WWW],
        &creds(PASSWORD),
        Some("curl/8.0"),
    );
    fatal_case(&fake, &p, "badagent").await;
}

#[tokio::test]
async fn nohost_stops_updates() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &["ghost.example.net"]);
    fatal_case(&fake, &p, "nohost").await;
}

#[tokio::test]
async fn abuse_and_donator_stop_updates() {
    for code in ["abuse", "!donator"] {
        let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
        let run = start(&fake).await;
        let p = provider(Flavor::Noip, &run, &[WWW]);
        fake.fail_next(code, 1);
        fatal_case(&fake, &p, code).await;
        assert_eq!(
            fake.ip_of(WWW),
            Some(ips("10.77.2.10")),
            "{code}: the update after clear went through"
        );
    }
}

#[tokio::test]
async fn several_hostnames_get_one_code_per_line() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW, WWW2, WWW3]);
    fake.set_ip(WWW2, ips("10.77.2.10"));
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW, WWW2, WWW3]);
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();
    let log = fake.log();
    assert_eq!(log.len(), 1, "one update for every hostname");
    assert_eq!(log[0].hostnames, vec![WWW, WWW2, WWW3]);
    assert_eq!(
        log[0].answer,
        "good 10.77.2.10\nnochg 10.77.2.10\ngood 10.77.2.10"
    );
    for h in [WWW, WWW2, WWW3] {
        assert_eq!(fake.ip_of(h), Some(ips("10.77.2.10")));
    }
    assert_eq!(
        p.observe().await.unwrap().unwrap().value,
        Some(v4("10.77.2.10"))
    );
}

#[tokio::test]
async fn mixed_answers_count_the_fatal_one() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW, "ghost.example.net"]);
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, "`nohost` for ghost.example.net");
    assert_eq!(fake.log()[0].answer, "good 10.77.2.10\nnohost");
    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.2.10")));
    let view = p.observe().await.unwrap().unwrap();
    assert_eq!(view.value, None, "the names disagree");
    assert_eq!(view.epoch, 0, "the publish did not complete");
    assert!(
        view.drift.iter().any(|d| d.contains("ghost.example.net")),
        "{view:?}"
    );
}

#[tokio::test]
async fn one_failure_line_for_several_hostnames_applies_to_all() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW, WWW2]);
    let run = start(&fake).await;
    let p = provider_with(
        Flavor::Noip,
        &run,
        &[WWW, WWW2],
        &creds("wrong-password"),
        None,
    );
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, "`badauth` for www.example.net, www2.example.net");
}

#[tokio::test]
async fn ipv6_goes_in_myipv6() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    let dual = RecordValue::parse("10.77.2.10, 2001:db8::10").unwrap();
    p.publish("ca", &dual, 1).await.unwrap();
    let log = fake.log();
    assert_eq!(log[0].myip.as_deref(), Some("10.77.2.10"));
    assert_eq!(log[0].myipv6.as_deref(), Some("2001:db8::10"));
    assert_eq!(log[0].answer, "good 10.77.2.10,2001:db8::10");
    assert_eq!(
        fake.ip_of(WWW),
        Some(HostIps {
            v4: Some("10.77.2.10".parse().unwrap()),
            v6: Some("2001:db8::10".parse().unwrap()),
        })
    );
    assert_eq!(p.observe().await.unwrap().unwrap().value, Some(dual));

    let only6 = RecordValue::parse("2001:db8::20").unwrap();
    p.publish("tx", &only6, 2).await.unwrap();
    let log = fake.log();
    assert_eq!(log[1].myip, None);
    assert_eq!(log[1].myipv6.as_deref(), Some("2001:db8::20"));
    assert_eq!(log[1].answer, "good 2001:db8::20");
}

#[tokio::test]
async fn dyndns2_codes() {
    // notfqdn: a hostname without a domain.
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]).with_flavor(noip::Flavor::Dyndns2);
    let run = start(&fake).await;
    let p = provider(Flavor::Dyndns2, &run, &["www"]);
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, "`notfqdn`");
    assert_eq!(p.alerts().len(), 1);

    // numhost: more hostnames than the server takes in one update (answered once).
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW, WWW2])
        .with_flavor(noip::Flavor::Dyndns2)
        .with_max_hosts(1);
    let run = start(&fake).await;
    let p = provider(Flavor::Dyndns2, &run, &[WWW, WWW2]);
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, "`numhost`");
    assert_eq!(fake.log()[0].answer, "numhost");
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_eq!(fake.requests(), 1);

    // dnserr: a hold, like 911.
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]).with_flavor(noip::Flavor::Dyndns2);
    let run = start(&fake).await;
    let p = provider(Flavor::Dyndns2, &run, &[WWW]);
    fake.fail_next("dnserr", 1);
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, "held until");
    assert_blocked(&e, "`dnserr`");
    // A bare `good` (no address) is fine from a dyndns2 server.
    p.clear();
    fake.answer_next("good");
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn unknown_answer_is_rejected_and_quoted() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW, WWW2]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW, WWW2]);
    fake.answer_next("<html><body>Scheduled maintenance</body></html>");
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    match &e {
        StrategyError::Rejected { reason, .. } => {
            assert!(reason.contains("Scheduled maintenance"), "{reason}");
            assert!(reason.contains("not a return code"), "{reason}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // The same update is not sent again at once (a server that answers
    // nonsense is not sent it every few seconds); the operator's clear
    // lets it go.
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(
        matches!(&e, StrategyError::Rejected { reason, .. } if reason.contains("no request was sent") && reason.contains("Scheduled maintenance")),
        "{e}"
    );
    assert_eq!(fake.requests(), 1);
    p.clear();
    // Fewer lines than hostnames.
    fake.answer_next("good 10.77.2.10");
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(
        matches!(&e, StrategyError::Rejected { reason, .. } if reason.contains("1 line for 2 hostnames")),
        "{e}"
    );
    p.clear();
    // A very long answer is quoted truncated.
    fake.answer_next(&"x".repeat(5000));
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(e.to_string().len() < 1000, "{}", e.to_string().len());
    p.clear();
    // The server set another address than the one sent.
    fake.answer_next("good 203.0.113.99\ngood 203.0.113.99");
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(
        matches!(&e, StrategyError::Rejected { reason, .. } if reason.contains("203.0.113.99")),
        "{e}"
    );
    assert!(p.alerts().is_empty(), "not a block");
}

/// A dyndns2 server URL carrying a token in its query, answered by a
/// redirect that echoes the request (a server sending plain HTTP to HTTPS:
/// `return 301 https://$host$request_uri`): the error says where it
/// points, by origin only — the step's text is stored in events and sent
/// to notify hooks, and the token must not go with it.
#[tokio::test]
async fn a_redirect_that_echoes_the_query_puts_no_token_in_the_error() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let names = vec![WWW.to_string()];
    let server = format!("{}?token=tok-s3cr3t-xyz", run.update_url());
    let p = DyndnsProvider::new(
        Flavor::Dyndns2,
        "web",
        Some(&server),
        &names,
        &creds(PASSWORD),
        None,
        Duration::from_secs(2),
    )
    .unwrap();
    fake.redirect_echo_next(301);
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(
        shown.contains("redirect to") && shown.contains("https://127.0.0.1"),
        "{shown}"
    );
    assert!(!shown.contains("s3cr3t"), "{shown}");
}

#[tokio::test]
async fn http_errors_say_what_happened() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);

    fake.status_next(503, "Service Unavailable");
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("HTTP 503"), "{e}");
    assert!(p.alerts().is_empty());
    // Not sent again at once: still transient, no request.
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("no request was sent"), "{e}");
    assert_eq!(fake.requests(), 1);
    p.clear();

    fake.status_next(404, "Not Found");
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(
        matches!(&e, StrategyError::Rejected { reason, .. } if reason.contains("HTTP 404") && reason.contains("update URL")),
        "{e}"
    );
    p.clear();

    fake.status_next(302, "");
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(
        matches!(&e, StrategyError::Rejected { reason, .. } if reason.contains("redirect")),
        "{e}"
    );
    p.clear();

    // A 5xx whose body is a return code is that code.
    fake.status_next(500, "911");
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, "held until");
    p.clear();

    // 401 without a code: the credentials are refused; stop.
    fake.status_next(401, "Unauthorized");
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_blocked(&e, "HTTP 401");
    assert_blocked(&e, "credentials");
    let n = fake.requests();
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert_eq!(fake.requests(), n);
    p.clear();

    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transient() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let names = vec![WWW.to_string()];
    let p = DyndnsProvider::new(
        Flavor::Noip,
        "web",
        Some(&run.update_url()),
        &names,
        &creds(PASSWORD),
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    fake.stall_next();
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("no answer within"), "{e}");
    // Resent once the pause after a failure has passed, not at once.
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(
        e.is_transient() && e.to_string().contains("no request was sent"),
        "{e:?}"
    );
    assert_eq!(fake.requests(), 1);
    tokio::time::pause();
    tokio::time::advance(FAILED_PAUSE).await;
    tokio::time::resume();
    p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap();
    assert_eq!(fake.requests(), 2);

    // Nothing listens there any more.
    let url = run.update_url();
    drop(run);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let p = DyndnsProvider::new(
        Flavor::Noip,
        "web",
        Some(&url),
        &names,
        &creds(PASSWORD),
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    let e = p.publish("ca", &v4("10.77.2.10"), 1).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("8245"), "the No-IP hint: {e}");
}

/// Twenty publishes of `value`, as the passes of a few seconds make them.
async fn twenty_passes(p: &DyndnsProvider, value: &RecordValue) -> Vec<Result<(), StrategyError>> {
    let mut out = Vec::new();
    for _ in 0..20 {
        out.push(p.publish("ca", value, 1).await);
    }
    out
}

/// No-IP times out (slow: it may still apply each request, its answer
/// arriving after warden gave up) or answers 5xx for a while. Every
/// reconciliation pass (every 2 s) and every retry of a runbook's switch
/// published the same update again, a request each time — each one
/// applied earns a needless `nochg` at No-IP, which blocks clients that
/// cause many. The same update is paused after a failure (5 s, doubling
/// with each failure in a row, up to 5 minutes) and refused without a
/// request meanwhile, as a transient error; another value is sent at once.
#[tokio::test]
async fn a_failed_update_is_not_resent_every_pass() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let names = vec![WWW.to_string()];
    let p = DyndnsProvider::new(
        Flavor::Noip,
        "web",
        Some(&run.update_url()),
        &names,
        &creds(PASSWORD),
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    let ca = v4("10.77.2.10");
    fake.stall_next();
    for _ in 0..20 {
        fake.status_next(503, "Service Unavailable");
    }
    p.publish("ca", &ca, 1).await.expect_err("no answer");
    // What the passes of the next few seconds do.
    let passes: Vec<_> = twenty_passes(&p, &ca).await;
    assert_eq!(fake.requests(), 1, "one request, not one per pass");
    assert!(
        passes
            .iter()
            .all(|r| matches!(r, Err(e) if e.is_transient())),
        "{passes:?}"
    );
    fake.heal();
    // The pause ends: sent again; a 503 doubles the pause.
    tokio::time::pause();
    tokio::time::advance(FAILED_PAUSE).await;
    tokio::time::resume();
    fake.status_next(503, "Service Unavailable");
    p.publish("ca", &ca, 1).await.expect_err("503");
    assert_eq!(fake.requests(), 2);
    tokio::time::pause();
    tokio::time::advance(FAILED_PAUSE).await;
    let e = p.publish("ca", &ca, 1).await.expect_err("still paused");
    assert!(e.to_string().contains("2 times in a row"), "{e}");
    tokio::time::advance(FAILED_PAUSE).await;
    tokio::time::resume();
    assert_eq!(fake.requests(), 2);
    // Another value (a failover) is not held back by it.
    fake.status_next(503, "Service Unavailable");
    p.publish("ca", &ca, 1).await.expect_err("503 again");
    assert_eq!(fake.requests(), 3);
    p.publish("tx", &v4("198.51.100.20"), 2)
        .await
        .expect("another value is sent");
    assert_eq!(fake.requests(), 4);
}

#[tokio::test]
async fn stale_epoch_is_refused_without_a_request() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    p.publish("tx", &v4("198.51.100.20"), 5).await.unwrap();
    let e = p.publish("ca", &v4("10.77.2.10"), 4).await.unwrap_err();
    assert!(
        matches!(
            e,
            StrategyError::StaleEpoch {
                sent: 4,
                seen: 5,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(fake.requests(), 1);
}

/// An update to tx at epoch 6 times out: No-IP may have applied it (the
/// answer was lost). A late order of epoch 5 (a call that waited behind it)
/// must not be sent: No-IP keeps no epoch, the provider is the only fence,
/// and sending it would move users back to ca over a newer decision. The
/// retry of epoch 6 itself is sent.
#[tokio::test]
async fn an_older_order_after_an_unanswered_update_is_refused() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let names = vec![WWW.to_string()];
    let p = DyndnsProvider::new(
        Flavor::Noip,
        "web",
        Some(&run.update_url()),
        &names,
        &creds(PASSWORD),
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    p.publish("ca", &v4("10.77.2.10"), 5).await.unwrap();
    fake.stall_next();
    let e = p
        .publish("tx", &v4("198.51.100.20"), 6)
        .await
        .expect_err("no answer");
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(fake.requests(), 2);
    let e = p
        .publish("ca", &v4("10.77.2.10"), 5)
        .await
        .expect_err("older than an update that may be in force");
    assert!(
        matches!(
            e,
            StrategyError::StaleEpoch {
                sent: 5,
                seen: 6,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(fake.requests(), 2, "the late order was not sent");
    tokio::time::pause();
    tokio::time::advance(FAILED_PAUSE).await;
    tokio::time::resume();
    p.publish("tx", &v4("198.51.100.20"), 6)
        .await
        .expect("the retry of epoch 6");
    assert_eq!(fake.ip_of(WWW), Some(ips("198.51.100.20")));
}

/// A switch's update to tx at epoch 6 gets no answer: No-IP applied it,
/// its answer lost. The runbook then routes ca again at the same epoch (a
/// failback's rollback: as far as the provider can tell the switch
/// reached nothing) — the update must be sent: the provider no longer
/// knows that the name holds ca. It answered "already confirmed" without
/// a request, so users stayed at tx, the site the rollback demotes, and
/// the provider (and every reading without nameservers) said ca.
#[tokio::test]
async fn an_update_after_an_unanswered_one_is_sent() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let names = vec![WWW.to_string()];
    let p = DyndnsProvider::new(
        Flavor::Noip,
        "web",
        Some(&run.update_url()),
        &names,
        &creds(PASSWORD),
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    p.publish("ca", &v4("10.77.2.10"), 5).await.unwrap();
    fake.stall_next();
    let e = p
        .publish("tx", &v4("10.77.2.20"), 6)
        .await
        .expect_err("no answer");
    assert!(e.is_transient(), "{e:?}");
    // No-IP applied it; its answer was lost.
    fake.set_ip(WWW, ips("10.77.2.20"));
    let view = p.observe().await.unwrap();
    assert!(
        view.as_ref().is_none_or(|v| v.value.is_none()),
        "the provider cannot know what the name holds: {view:?}"
    );
    p.publish("ca", &v4("10.77.2.10"), 6)
        .await
        .expect("ca again at 6");
    assert_eq!(fake.requests(), 3, "the update to ca was sent");
    assert_eq!(fake.ip_of(WWW), Some(ips("10.77.2.10")));
    let log = fake.log();
    assert_eq!(
        log.last().map(|r| r.answer.as_str()),
        Some("good 10.77.2.10")
    );
}

/// An alias that is the name in other case (`aliases =
/// ["WWW.example.net"]`; host names compare without case): both went into
/// every update, and the server, which applied the first, answered the
/// second `nochg` — a needless `nochg` with every update, which No-IP
/// answers by blocking the client. The name is sent once.
#[tokio::test]
async fn an_alias_in_other_case_is_sent_once() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("noip.cred");
    std::fs::write(&cred, format!("{USER}:{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&cred, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "{dir}"
operator_token = {{ env = "WARDEN_TEST_OPERATOR_TOKEN" }}

[sites.ca]
agent_token = {{ env = "WARDEN_TEST_CA" }}

[sites.tx]
agent_token = {{ env = "WARDEN_TEST_TX" }}

[groups.www]
sites = ["ca", "tx"]
scheme = "dns"

[groups.www.dns]
provider = "noip"
name = "{WWW}"
aliases = ["{upper}."]
server = "{url}"
credentials = {{ file = "{cred}" }}
user_agent = "Example-Corp warden/0.1.0 dns@example.net"

[groups.www.dns.addresses]
ca = "10.77.2.10"
tx = "10.77.2.20"
"#,
        dir = dir.path().display(),
        upper = WWW.to_uppercase(),
        url = run.update_url(),
        cred = cred.display(),
    );
    let cfg = match warden_config::parse(&text, std::path::Path::new("test.conf")) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    let s = DnsStrategy::for_targets(&cfg, "www").unwrap();
    for (site, epoch) in [("tx", 1), ("ca", 2)] {
        let route = SiteRoute {
            site: site.into(),
            mode: SwitchMode::Immediate,
        };
        s.activate(&route, epoch).await.unwrap();
    }
    let log = fake.log();
    assert_eq!(
        log.iter().map(|r| r.hostnames.clone()).collect::<Vec<_>>(),
        vec![vec![WWW.to_string()], vec![WWW.to_string()]]
    );
    let stats = fake.stats();
    assert_eq!((stats.good, stats.nochg), (2, 0), "{log:?}");
}

/// An update refused by HTTP status (401: the credentials; 404: not the
/// update URL) was not carried out: what the server confirmed before
/// still holds, and routing that value again after the operator's fix
/// sends nothing (it would earn a needless `nochg`). Only an answer that
/// may hide an applied update (none, a 5xx, text that is no answer) makes
/// the provider forget it.
#[tokio::test]
async fn an_update_refused_by_status_keeps_what_was_confirmed() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    p.publish("ca", &v4("10.77.2.10"), 5).await.unwrap();
    fake.status_next(401, "Unauthorized");
    let e = p.publish("tx", &v4("10.77.2.20"), 6).await.unwrap_err();
    assert!(matches!(e, StrategyError::Blocked { .. }), "{e:?}");
    p.clear();
    fake.status_next(404, "Not Found");
    p.publish("tx", &v4("10.77.2.20"), 7).await.unwrap_err();
    assert_eq!(fake.requests(), 3);
    p.publish("ca", &v4("10.77.2.10"), 7)
        .await
        .expect("ca still confirmed");
    assert_eq!(fake.requests(), 3, "no needless update of ca");
    assert_eq!(fake.stats().nochg, 0);
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    let names = vec![WWW.to_string()];
    let t = Duration::from_secs(1);
    let cases: Vec<(Option<&str>, Secret, Flavor)> = vec![
        (None, creds(PASSWORD), Flavor::Dyndns2),
        (
            Some("ftp://example.net/nic/update"),
            creds(PASSWORD),
            Flavor::Noip,
        ),
        (
            Some("https://ops:Pa55-w0rd-never-shown@example.net/nic/update"),
            creds(PASSWORD),
            Flavor::Noip,
        ),
        (Some("not a url"), creds(PASSWORD), Flavor::Noip),
        (None, Secret::new(PASSWORD), Flavor::Noip),
    ];
    for (server, c, flavor) in cases {
        let e = DyndnsProvider::new(flavor, "web", server, &names, &c, None, t).unwrap_err();
        assert!(matches!(e, StrategyError::Config(_)), "{e:?}");
        assert!(!e.to_string().contains(PASSWORD), "password shown: {e}");
    }
    // No-IP's server is the default.
    let p =
        DyndnsProvider::new(Flavor::Noip, "web", None, &names, &creds(PASSWORD), None, t).unwrap();
    assert!(format!("{p:?}").contains("https://dynupdate.no-ip.com/nic/update"));
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_password_is_never_shown() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let p = provider(Flavor::Noip, &run, &[WWW]);
    let mut shown = vec![format!("{p:?}")];
    let mut record = |r: Result<(), StrategyError>| {
        if let Err(e) = r {
            shown.push(format!("{e}"));
            shown.push(format!("{e:?}"));
        }
    };
    record(p.publish("ca", &v4("10.77.2.10"), 1).await);
    for body in ["garbage", "badauth", "911"] {
        p.clear();
        fake.answer_next(body);
        record(p.publish("tx", &v4("198.51.100.20"), 2).await);
    }
    for status in [401, 500, 404] {
        p.clear();
        fake.status_next(status, "no");
        record(p.publish("tx", &v4("198.51.100.20"), 2).await);
    }
    let wrong = provider_with(
        Flavor::Noip,
        &run,
        &[WWW],
        &creds("wrong-Pa55-w0rd-never-shown"),
        None,
    );
    record(wrong.publish("ca", &v4("10.77.2.10"), 1).await);
    shown.extend(p.alerts());
    shown.extend(wrong.alerts());
    shown.push(format!("{wrong:?}"));
    // Connection refused: nothing listens at the URL any more.
    let url = run.update_url();
    drop(run);
    let names = vec![WWW.to_string()];
    let gone = DyndnsProvider::new(
        Flavor::Noip,
        "web",
        Some(&url),
        &names,
        &creds(PASSWORD),
        None,
        Duration::from_secs(1),
    )
    .unwrap();
    if let Err(e) = gone.publish("ca", &v4("10.77.2.10"), 1).await {
        shown.push(format!("{e:?}"));
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("DNS update"), "the capture works: {logs}");
    let basic = data_encoding::BASE64.encode(format!("{USER}:{PASSWORD}").as_bytes());
    for text in shown.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(PASSWORD), "password in {text}");
        assert!(!text.contains("Pa55"), "part of the password in {text}");
        assert!(!text.contains(&basic), "encoded credentials in {text}");
    }
    assert!(shown.len() > 10, "{shown:?}");
}

#[tokio::test]
async fn the_fake_is_strict_about_the_protocol() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW]);
    let run = start(&fake).await;
    let http = reqwest::Client::new();
    let url = format!("{}?hostname={WWW}&myip=10.77.2.10", run.update_url());
    let ua = "Example warden/0.1 ops@example.net";

    // No basic authentication: the HTTP challenge, no return code.
    let r = http
        .get(&url)
        .header("User-Agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Basic realm=\"{}\"", noip::REALM).as_str()
    );
    // Wrong password: `badauth`.
    let r = http
        .get(&url)
        .basic_auth(USER, Some("nope"))
        .header("User-Agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "badauth".to_string())
    );
    // No or ill-formed User-Agent: `badagent`.
    let r = http
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "badagent");
    let r = http
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .header("User-Agent", "warden/0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "badagent");
    // Only GET updates.
    let r = http
        .post(&url)
        .basic_auth(USER, Some(PASSWORD))
        .header("User-Agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // Offline is a paid feature.
    let r = http
        .get(format!("{url}&offline=YES"))
        .basic_auth(USER, Some(PASSWORD))
        .header("User-Agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "!donator");
    // Without myip, the source address is used.
    let r = http
        .get(format!("{}?hostname={WWW}", run.update_url()))
        .basic_auth(USER, Some(PASSWORD))
        .header("User-Agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "good 127.0.0.1");
    assert_eq!(fake.ip_of(WWW), Some(ips("127.0.0.1")));
    assert_eq!(fake.requests(), 7);

    // Scripting and statistics over HTTP (what a test outside the process uses).
    let r = http
        .post(format!(
            "http://{}/test/fail?code=abuse&count=1",
            run.addr()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .header("User-Agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "abuse");
    let stats: serde_json::Value = http
        .get(format!("http://{}{}", run.addr(), fake.stats_path()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 8, "{stats}");
    assert_eq!(stats["ips"][WWW]["v4"], "127.0.0.1", "{stats}");
}

#[tokio::test]
async fn built_from_failover_conf() {
    let fake = FakeNoip::new(USER, PASSWORD, &[WWW, WWW2]);
    let run = start(&fake).await;
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("noip.cred");
    std::fs::write(&cred, format!("{USER}:{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&cred, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "{dir}"
operator_token = {{ env = "WARDEN_TEST_OPERATOR_TOKEN" }}

[sites.ca]
agent_token = {{ env = "WARDEN_TEST_CA" }}

[sites.tx]
agent_token = {{ env = "WARDEN_TEST_TX" }}

[groups.www]
sites = ["ca", "tx"]
scheme = "dns"

[groups.www.dns]
provider = "noip"
name = "{WWW}"
aliases = ["{WWW2}"]
server = "{url}"
credentials = {{ file = "{cred}" }}
user_agent = "Example-Corp warden/0.1.0 dns@example.net"

[groups.www.dns.addresses]
ca = "10.77.2.10"
tx = "198.51.100.20"
"#,
        dir = dir.path().display(),
        url = run.update_url(),
        cred = cred.display(),
    );
    let cfg = match warden_config::parse(&text, std::path::Path::new("test.conf")) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    let s = DnsStrategy::for_targets(&cfg, "www").unwrap();
    assert_eq!(s.name(), "dns/noip");
    let route = SiteRoute {
        site: "tx".into(),
        mode: SwitchMode::Immediate,
    };
    s.activate(&route, 1).await.unwrap();
    s.activate(&route, 1).await.unwrap();
    assert_eq!(fake.requests(), 1);
    assert_eq!(fake.log()[0].hostnames, vec![WWW, WWW2]);
    assert_eq!(
        fake.log()[0].user_agent.as_deref(),
        Some("Example-Corp warden/0.1.0 dns@example.net")
    );
    let now = s.current().await.unwrap();
    assert_eq!(now.site.as_deref(), Some("tx"));
    assert_eq!(now.epoch, 1);
    assert!(now.drift.is_empty(), "{:?}", now.drift);
    assert!(s.alerts().is_empty());
}
