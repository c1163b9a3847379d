//! Hold orders: a new connection whose backend refuses is held while the
//! orchestrator has announced a switch, and connected to the new site when
//! the route changes; without an order it fails fast; orders lapse, are
//! fenced by epoch, and what they did is counted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{
    blackhole, echo, echo_at, group, refusing, start, Conn, Echo, Frontend, TOKEN,
};

/// Group "web": site a refuses every connection, site b answers "b";
/// connections are held for at most `hold`.
pub(crate) async fn start_dead_a(hold: Duration) -> (Frontend, Echo, SocketAddr) {
    let dead = refusing().await;
    let b = echo("b").await;
    let mut g = group(&[("a", dead), ("b", b.addr)], Duration::from_secs(5));
    g.hold_connections = hold;
    let fe = start(BTreeMap::from([("web".to_string(), g)])).await;
    let (status, body) = fe.put("web", "a", 1, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (fe, b, dead)
}

fn count(route: &Value, field: &str) -> u64 {
    route[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {route}"))
}

#[tokio::test]
async fn a_held_connection_is_connected_to_the_new_site_when_the_route_changes() {
    // Failover (immediate) and planned switchover (drain) alike.
    for (epoch, mode) in [(2, "immediate"), (2, "drain")] {
        let (fe, _b, _dead) = start_dead_a(Duration::from_secs(5)).await;
        let (status, body) = fe.hold("web", 1, 10_000).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(count(&body, "hold_remaining_ms") > 9_000, "{body}");

        let mut c = Conn::open(fe.listen("web")).await;
        c.send().await;
        let patience = Duration::from_secs(2);
        crate::assert_eventually!(
            count(&fe.route("web").await, "held_now") == 1,
            patience,
            "{mode}: the connection is not held: {}",
            fe.route("web").await
        );
        // Still held, not closed, well after the refused connect.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count(&fe.route("web").await, "held_now"), 1, "{mode}");

        let (status, body) = fe.put("web", "b", epoch, mode).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            c.answer().await.as_deref(),
            Some("b"),
            "{mode}: the held connection reaches the new site"
        );
        let route = fe.route("web").await;
        assert_eq!(count(&route, "held_total"), 1, "{mode}: {route}");
        assert_eq!(count(&route, "held_rescued"), 1, "{mode}: {route}");
        assert_eq!(count(&route, "held_timed_out"), 0, "{mode}: {route}");
        assert_eq!(count(&route, "held_now"), 0, "{mode}: {route}");
        assert_eq!(
            count(&route, "hold_remaining_ms"),
            0,
            "{mode}: the switch ends the order: {route}"
        );

        // The same counts on /metrics.
        let resp = crate::harness::http_client()
            .get(fe.url("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("metrics answer");
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.text().await.expect("metrics text");
        for line in [
            "warden_frontend_held_connections_total{group=\"web\"} 1",
            "warden_frontend_held_rescued_total{group=\"web\"} 1",
            "warden_frontend_held_timed_out_total{group=\"web\"} 0",
            "warden_frontend_held_connections{group=\"web\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
        }
    }
}

/// A held user rescued by a switch that comes near the end of its hold
/// (about 1.5 s left) to a site whose first SYNs are lost (its accept
/// queue full, freed 2 s later; the SYN is sent again 1 s and 3 s after
/// the first): the user reaches the new site, counted rescued. The connect
/// after a switch runs the connect timeout, not what is left of the hold.
/// Before, it raced the old hold's end: the user the switch was for was
/// closed ("no answer within the hold time", blaming the new site) and
/// counted neither rescued nor timed out.
#[tokio::test]
async fn a_user_rescued_near_the_end_of_its_hold_gets_the_time_to_connect() {
    let dead = refusing().await;
    let (b_addr, b_listener, fill) = blackhole().await;
    let mut g = group(&[("a", dead), ("b", b_addr)], Duration::from_secs(5));
    g.hold_connections = Duration::from_millis(3000);
    let fe = start(BTreeMap::from([("web".to_string(), g)])).await;
    let (status, body) = fe.put("web", "a", 1, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = fe.hold("web", 1, 10_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    crate::assert_eventually!(
        count(&fe.route("web").await, "held_now") == 1,
        Duration::from_secs(2),
        "the connection is not held: {}",
        fe.route("web").await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = fe.put("web", "b", 2, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // b's queue frees after the hold would have ended (about 1.5 s left
    // at the switch); the frontend's SYN is sent again 3 s after its first.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    drop(fill);
    tokio::spawn(async move {
        while let Ok((conn, _)) = b_listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
                let (r, mut w) = conn.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(_)) = lines.next_line().await {
                    if w.write_all(b"b\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    assert_eq!(
        c.answer().await.as_deref(),
        Some("b"),
        "the user the switch was for reaches b"
    );
    let route = fe.route("web").await;
    assert_eq!(count(&route, "held_rescued"), 1, "{route}");
    assert_eq!(count(&route, "held_timed_out"), 0, "{route}");
}

#[tokio::test]
async fn without_a_hold_a_connection_still_connecting_at_a_switch_goes_to_the_new_site() {
    // Site a's packets vanish (its connects hang); nobody ordered a hold.
    // Failover (immediate) and planned switchover (drain) alike.
    for mode in ["immediate", "drain"] {
        let (dead, _queue, _fill) = blackhole().await;
        let b = echo("b").await;
        let g = group(&[("a", dead), ("b", b.addr)], Duration::from_secs(5));
        let fe = start(BTreeMap::from([("web".to_string(), g)])).await;
        assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);

        let mut c = Conn::open(fe.listen("web")).await;
        c.send().await;
        // Its connect to a is under way (and would hang for seconds).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let switched = Instant::now();
        let (status, body) = fe.put("web", "b", 2, mode).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            c.answer().await.as_deref(),
            Some("b"),
            "{mode}: the connection reaches the new site instead of failing"
        );
        let took = switched.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{mode}: answered {took:?} after the switch"
        );
        let route = fe.route("web").await;
        assert_eq!(
            count(&route, "held_total"),
            0,
            "{mode}: nothing was held: {route}"
        );
    }
}

#[tokio::test]
async fn a_cut_over_order_keeps_new_users_off_the_site_being_demoted() {
    // Both sites answer; a is about to be demoted (a planned switchover).
    let (fe, _a, _b) = crate::harness::start_web(Duration::from_secs(5)).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    // A suspect order: users still reach a while it answers.
    assert_eq!(fe.hold("web", 1, 10_000).await.0, StatusCode::OK);
    assert_eq!(
        crate::harness::ask_new(fe.listen("web")).await.as_deref(),
        Some("a")
    );
    // The cut-over order: a new user does not reach a at all, it waits...
    let (status, body) = fe.pause("web", 2, 10_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    crate::assert_eventually!(
        count(&fe.route("web").await, "held_now") == 1,
        Duration::from_secs(2),
        "the new connection waits: {}",
        fe.route("web").await
    );
    // ... and is connected to b by the switch.
    assert_eq!(fe.put("web", "b", 2, "drain").await.0, StatusCode::OK);
    assert_eq!(c.answer().await.as_deref(), Some("b"));
    let route = fe.route("web").await;
    assert_eq!(count(&route, "held_rescued"), 1, "{route}");
    // The switch ended the order: new users go straight to b.
    assert_eq!(
        crate::harness::ask_new(fe.listen("web")).await.as_deref(),
        Some("b")
    );
    // A cut-over order from before the switch (late, replayed, or a deposed
    // orchestrator's) is refused and pauses nobody.
    let (status, body) = fe.pause("web", 1, 10_000).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        crate::harness::ask_new(fe.listen("web")).await.as_deref(),
        Some("b")
    );
    assert_eq!(count(&fe.route("web").await, "held_total"), 1);
    // So is a late copy of the cut-over order at the switch's own epoch:
    // the orders travel unordered, and the switch it announced has come.
    let (status, body) = fe.pause("web", 2, 10_000).await;
    crate::harness::assert_refused(status, &body, "already routed at epoch 2");
    assert_eq!(
        crate::harness::ask_new(fe.listen("web")).await.as_deref(),
        Some("b")
    );
    // A plain (suspect) hold at the routed epoch is still taken: it is how
    // a suspected active site is announced.
    assert_eq!(fe.hold("web", 2, 10_000).await.0, StatusCode::OK);
    assert_eq!(
        crate::harness::ask_new(fe.listen("web")).await.as_deref(),
        Some("b")
    );
    assert_eq!(count(&fe.route("web").await, "held_total"), 1);

    // No switch within hold_connections (2 s here): let go, never sent to a.
    let (fe, a, _b) = crate::harness::start_web(Duration::from_secs(5)).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    assert_eq!(fe.pause("web", 2, 10_000).await.0, StatusCode::OK);
    let took = closed_after(&fe).await;
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    assert_eq!(count(&fe.route("web").await, "held_timed_out"), 1);
    let _ = a;
}

#[tokio::test]
async fn connect_retry_keeps_a_refused_user_until_the_hold_order_comes() {
    let dead = refusing().await;
    let b = echo("b").await;
    let mut g = group(&[("a", dead), ("b", b.addr)], Duration::from_secs(5));
    g.connect_retry = Duration::from_millis(1500);
    let fe = start(BTreeMap::from([("web".to_string(), g)])).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);

    // A user arrives before anyone has noticed a is gone: no order yet.
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    crate::assert_eventually!(
        count(&fe.route("web").await, "retried_total") == 1,
        Duration::from_secs(1),
        "the refused connection is tried again: {}",
        fe.route("web").await
    );
    assert_eq!(count(&fe.route("web").await, "held_now"), 0, "no order yet");
    // The orchestrator's hold order comes within the retry window: the next
    // refused connect holds the user, then the switch connects it to b.
    assert_eq!(fe.hold("web", 1, 10_000).await.0, StatusCode::OK);
    crate::assert_eventually!(
        count(&fe.route("web").await, "held_now") == 1,
        Duration::from_secs(1),
        "the order holds it: {}",
        fe.route("web").await
    );
    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    assert_eq!(c.answer().await.as_deref(), Some("b"), "the user reaches b");

    // No order ever comes: the connection fails when connect_retry is over.
    let (status, _) = fe.put("web", "a", 3, "immediate").await;
    assert_eq!(status, StatusCode::OK);
    let took = closed_after(&fe).await;
    assert!(
        took >= Duration::from_millis(1450) && took < Duration::from_millis(4000),
        "closed after {took:?} (connect_retry 1500 ms)"
    );
    let route = fe.route("web").await;
    assert_eq!(count(&route, "retried_total"), 2, "{route}");
    assert_eq!(count(&route, "held_total"), 1, "{route}");
}

/// A user whose connect is retried (`connect_retry`, no hold order) sends
/// its request, gives up and resets: it is let go at once, and when the
/// route then switches its request is sent nowhere. Before, the check for
/// a client that left only ran after 200 ms, and each retry pause (25 ms)
/// started it again: the connection stayed for the whole retry window,
/// and a switch within it delivered the request of a client that had gone.
#[tokio::test]
async fn a_user_who_leaves_while_its_connect_is_retried_is_let_go_at_once() {
    let dead = refusing().await;
    let b = echo("b").await;
    let mut g = group(&[("a", dead), ("b", b.addr)], Duration::from_secs(5));
    g.connect_retry = Duration::from_secs(8);
    let fe = start(BTreeMap::from([("web".to_string(), g)])).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    let mut c = tokio::net::TcpStream::connect(fe.listen("web"))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut c, b"who\n")
        .await
        .expect("send");
    crate::assert_eventually!(
        count(&fe.route("web").await, "retried_total") == 1,
        Duration::from_secs(2),
        "the refused connection is tried again: {}",
        fe.route("web").await
    );
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(c);
    crate::assert_eventually!(
        count(&fe.route("web").await, "active_connections") == 0,
        Duration::from_secs(3),
        "the user who left is still kept (connect_retry 8 s): {}",
        fe.route("web").await
    );
}

/// A connection closed without being held: well under any hold these
/// tests order (5 s or more), with room for a loaded machine (500 ms
/// flaked while two builds ran).
pub(crate) const FAST: Duration = Duration::from_millis(1200);

/// Open a connection and measure how long until the frontend closes it.
pub(crate) async fn closed_after(fe: &Frontend) -> Duration {
    let t = Instant::now();
    let mut c = Conn::open(fe.listen("web")).await;
    c.closed_within(Duration::from_secs(5)).await;
    t.elapsed()
}

#[tokio::test]
async fn without_a_hold_order_a_refused_connect_fails_fast() {
    let (fe, _b, _dead) = start_dead_a(Duration::from_secs(5)).await;
    let took = closed_after(&fe).await;
    assert!(took < FAST, "closed after {took:?}");

    // A withdrawn order (ttl 0) holds nothing either.
    assert_eq!(fe.hold("web", 1, 10_000).await.0, StatusCode::OK);
    let (status, body) = fe.hold("web", 1, 0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count(&body, "hold_remaining_ms"), 0, "{body}");
    let took = closed_after(&fe).await;
    assert!(took < FAST, "closed after {took:?}");

    // A cut-over order of the withdrawn epoch arriving after the
    // withdrawal (the orchestrator does not wait for one order before
    // sending the next) is refused: the switch it announced is not coming.
    assert_eq!(fe.pause("web", 2, 10_000).await.0, StatusCode::OK);
    assert_eq!(fe.hold("web", 2, 0).await.0, StatusCode::OK);
    let (status, body) = fe.pause("web", 2, 10_000).await;
    crate::harness::assert_refused(status, &body, "withdrawn");
    let took = closed_after(&fe).await;
    assert!(took < FAST, "closed after {took:?}");
    assert_eq!(count(&fe.route("web").await, "hold_remaining_ms"), 0);

    // A plain hold at that epoch still stands (a failed runbook leaves the
    // group at the epoch it withdrew, and a suspected site is announced
    // at it); after the switch the order announced, it no longer stands.
    assert_eq!(fe.hold("web", 2, 10_000).await.0, StatusCode::OK);
    assert!(count(&fe.route("web").await, "hold_remaining_ms") > 9_000);
    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    assert_eq!(fe.put("web", "a", 3, "immediate").await.0, StatusCode::OK);
    let took = closed_after(&fe).await;
    assert!(took < FAST, "closed after {took:?}");
    assert_eq!(count(&fe.route("web").await, "held_total"), 0);

    // hold_connections = 0: an order is accepted but nothing is held.
    let (fe, _b, _dead) = start_dead_a(Duration::ZERO).await;
    assert_eq!(fe.hold("web", 1, 10_000).await.0, StatusCode::OK);
    let took = closed_after(&fe).await;
    assert!(took < FAST, "closed after {took:?}");
    assert_eq!(count(&fe.route("web").await, "held_total"), 0);
}

#[tokio::test]
async fn a_held_connection_is_let_go_after_hold_connections_and_an_order_lapses() {
    let (fe, _b, _dead) = start_dead_a(Duration::from_millis(600)).await;
    assert_eq!(fe.hold("web", 1, 10_000).await.0, StatusCode::OK);
    let took = closed_after(&fe).await;
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_millis(2000),
        "held for {took:?}, hold_connections 600ms"
    );
    let route = fe.route("web").await;
    assert_eq!(count(&route, "held_total"), 1, "{route}");
    assert_eq!(count(&route, "held_timed_out"), 1, "{route}");
    assert_eq!(count(&route, "held_rescued"), 0, "{route}");
    assert_eq!(count(&route, "held_now"), 0, "{route}");

    // An order lapses on its own: nobody has to withdraw it.
    let (status, body) = fe.hold("web", 1, 300).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count(&fe.route("web").await, "hold_remaining_ms"), 0);
    let took = closed_after(&fe).await;
    assert!(took < FAST, "closed after {took:?}");
    assert_eq!(count(&fe.route("web").await, "held_total"), 1);
}

/// A plain hold announces a site that *may* be lost. Its service comes
/// back within the hold time (a restart shorter than the detection): the
/// held users reach it — once the order is withdrawn at once, and without
/// a withdrawal by the held connection's own retries. Before, they waited
/// for a switch that was not coming and were closed at the end of their
/// hold time, an error for every user who arrived during the blip.
#[tokio::test]
async fn held_users_reach_the_routed_site_when_its_service_is_back() {
    for withdrawn in [true, false] {
        let (fe, _b, dead) = start_dead_a(Duration::from_secs(10)).await;
        assert_eq!(fe.hold("web", 1, 20_000).await.0, StatusCode::OK);
        let mut c = Conn::open(fe.listen("web")).await;
        c.send().await;
        crate::assert_eventually!(
            count(&fe.route("web").await, "held_now") == 1,
            Duration::from_secs(2),
            "withdrawn {withdrawn}: the connection is not held: {}",
            fe.route("web").await
        );
        // The service of site a is back, where it was.
        let _a = echo_at("a", dead).await;
        let t = Instant::now();
        if withdrawn {
            let (status, body) = fe.hold("web", 1, 0).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        assert_eq!(
            c.answer().await.as_deref(),
            Some("a"),
            "withdrawn {withdrawn}: the held user reaches site a"
        );
        // Well within the hold time (10 s): retried, not let go at its end.
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "withdrawn {withdrawn}: {:?}",
            t.elapsed()
        );
        let route = fe.route("web").await;
        assert_eq!(count(&route, "held_rescued"), 1, "{route}");
        assert_eq!(count(&route, "held_timed_out"), 0, "{route}");
        assert_eq!(count(&route, "held_now"), 0, "{route}");
    }
}

/// A hold order withdrawn (its runbook failed before the switch) or
/// lapsed while a user is held, the routed site still refusing: the user
/// is let go at its next try, as a user arriving then is — nothing is held
/// when no switch is announced. Before, a held user stayed held until the
/// end of its own hold time (`hold_connections`, up to 30 s), waiting for
/// a switch nobody announced any more.
#[tokio::test]
async fn a_user_held_when_the_order_ends_without_a_switch_is_let_go() {
    for withdrawn in [true, false] {
        let (fe, _b, _dead) = start_dead_a(Duration::from_secs(20)).await;
        let ttl = if withdrawn { 60_000 } else { 1_500 };
        assert_eq!(fe.hold("web", 1, ttl).await.0, StatusCode::OK);
        let mut c = Conn::open(fe.listen("web")).await;
        c.send().await;
        crate::assert_eventually!(
            count(&fe.route("web").await, "held_now") == 1,
            Duration::from_secs(2),
            "withdrawn {withdrawn}: the connection is not held: {}",
            fe.route("web").await
        );
        if withdrawn {
            let (status, body) = fe.hold("web", 1, 0).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        // Withdrawn now, or lapsed within 1.5 s; the hold time is 20 s.
        c.closed_within(Duration::from_secs(8)).await;
        let route = fe.route("web").await;
        assert_eq!(
            count(&route, "held_now"),
            0,
            "withdrawn {withdrawn}: {route}"
        );
        assert_eq!(
            count(&route, "held_rescued"),
            0,
            "withdrawn {withdrawn}: {route}"
        );
        // A user arriving now fails fast too.
        let took = closed_after(&fe).await;
        assert!(took < FAST, "withdrawn {withdrawn}: closed after {took:?}");
    }
}

#[tokio::test]
async fn an_older_epoch_or_a_wrong_token_is_refused_and_holds_nothing() {
    let (fe, _b, _dead) = start_dead_a(Duration::from_secs(5)).await;
    assert_eq!(fe.put("web", "a", 5, "immediate").await.0, StatusCode::OK);
    let (status, body) = fe.hold("web", 4, 10_000).await;
    crate::harness::assert_refused(status, &body, "stale epoch 4 < 5");
    assert_eq!(body["seen_epoch"], 5);
    let body = serde_json::json!({ "epoch": 9, "ttl_ms": 10_000 }).to_string();
    for token in [None, Some("wrong-token-0123456789")] {
        let (status, answer) = fe
            .put_path("/v1/routes/web/hold", body.clone(), token)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    }
    let route = fe.route("web").await;
    assert_eq!(count(&route, "hold_remaining_ms"), 0, "{route}");
    let took = closed_after(&fe).await;
    assert!(took < FAST, "closed after {took:?}");

    // A newer order fences older ones, even above the route's epoch.
    assert_eq!(fe.hold("web", 7, 10_000).await.0, StatusCode::OK);
    let (status, body) = fe.hold("web", 6, 0).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["seen_epoch"], 7);
    assert!(count(&fe.route("web").await, "hold_remaining_ms") > 9_000);
    // ... and routes: epoch 7 acts now, so a route at 6 is an older
    // authority's (a deposed orchestrator's late switch), one at 7 is not.
    let (status, body) = fe.put("web", "b", 6, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["seen_epoch"], 7);
    assert_eq!(fe.route("web").await["site"], "a");
    assert_eq!(fe.put("web", "b", 7, "immediate").await.0, StatusCode::OK);
    assert_eq!(fe.route("web").await["site"], "b");

    // A misspelled field is a mistake, not a newer peer.
    let (status, body) = fe
        .put_path(
            "/v1/routes/web/hold",
            r#"{"epoch":8,"ttl":100}"#.to_string(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_held_client_that_leaves_is_let_go_at_once() {
    // Users who give up while held (closed before sending anything, or
    // reset after sending) free their place at once: they must not keep a
    // client slot for the whole hold and then open connections to the new
    // site for nobody. Those who sent their request and wait (even
    // half-closed, to wait for the answer) stay held and are rescued.
    let (fe, _b, _dead) = start_dead_a(Duration::from_secs(10)).await;
    assert_eq!(fe.hold("web", 1, 10_000).await.0, StatusCode::OK);
    let listen = fe.listen("web");
    let mut leaving = Vec::new();
    for i in 0..20 {
        let mut c = tokio::net::TcpStream::connect(listen)
            .await
            .expect("connect");
        if i % 2 == 1 {
            tokio::io::AsyncWriteExt::write_all(&mut c, b"who\n")
                .await
                .expect("send");
            socket2::SockRef::from(&c)
                .set_linger(Some(Duration::ZERO))
                .expect("linger");
        }
        leaving.push(c);
    }
    let mut waiting = Conn::open(listen).await;
    waiting.send().await;
    let mut half = tokio::net::TcpStream::connect(listen)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut half, b"who\n")
        .await
        .expect("send");
    tokio::io::AsyncWriteExt::shutdown(&mut half)
        .await
        .expect("half-close");
    let patience = Duration::from_secs(3);
    crate::assert_eventually!(
        count(&fe.route("web").await, "held_total") == 22,
        patience,
        "every connection is held: {}",
        fe.route("web").await
    );
    // The leavers go: closed (nothing sent) or reset (a request sent).
    drop(leaving);
    crate::assert_eventually!(
        count(&fe.route("web").await, "held_now") == 2,
        Duration::from_secs(2),
        "the clients that left are still held: {}",
        fe.route("web").await
    );
    assert_eq!(count(&fe.route("web").await, "active_connections"), 2);

    let (status, body) = fe.put("web", "b", 2, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(waiting.answer().await.as_deref(), Some("b"));
    let mut answer = String::new();
    tokio::time::timeout(
        patience,
        tokio::io::AsyncReadExt::read_to_string(&mut half, &mut answer),
    )
    .await
    .expect("the half-closed client's answer arrives")
    .expect("no error");
    assert_eq!(answer, "b\n");
    let route = fe.route("web").await;
    assert_eq!(count(&route, "held_rescued"), 2, "{route}");
    assert_eq!(count(&route, "held_now"), 0, "{route}");
}

/// A frontend routing web to a at epoch 1 (sites a and b answering, held
/// connections kept up to 10 s), a cut-over order at `epoch`, and one new
/// connection that waits on it (request sent, held).
async fn one_waiting_on_a_cut_over(epoch: u64) -> (Frontend, (Echo, Echo), Conn) {
    let (a, b) = (echo("a").await, echo("b").await);
    let mut g = group(&[("a", a.addr), ("b", b.addr)], Duration::from_secs(5));
    g.hold_connections = Duration::from_secs(10);
    let fe = start(BTreeMap::from([("web".to_string(), g)])).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    assert_eq!(fe.pause("web", epoch, 10_000).await.0, StatusCode::OK);
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    crate::assert_eventually!(
        count(&fe.route("web").await, "held_now") == 1,
        Duration::from_secs(2),
        "the new connection waits: {}",
        fe.route("web").await
    );
    (fe, (a, b), c)
}

#[tokio::test]
async fn users_waiting_on_a_cut_over_that_is_called_off_go_to_the_routed_site() {
    // A cut-over order is withdrawn (its runbook failed before the switch:
    // the routed site stays active) or lapses: the users it made wait go to
    // the routed site then, not closed at the end of their hold time
    // without ever trying it.
    // Withdrawn.
    let (fe, _sites, mut c) = one_waiting_on_a_cut_over(2).await;
    let (status, body) = fe.hold("web", 2, 0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t = Instant::now();
    assert_eq!(c.answer().await.as_deref(), Some("a"), "withdrawn");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(count(&fe.route("web").await, "held_now"), 0);

    // Lapsed (its ttl over, no switch, no withdrawal).
    assert_eq!(fe.pause("web", 3, 500).await.0, StatusCode::OK);
    let t = Instant::now();
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    assert_eq!(c.answer().await.as_deref(), Some("a"), "lapsed");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(count(&fe.route("web").await, "held_now"), 0);
}

/// A cut-over order at epoch 3 (a failed group's failover back to the site
/// it is on: that site is demoted and promoted again), then the route at
/// epoch 3 to the site already routed: the users waiting on the cut-over
/// go to that site at once. Before, only a route to another site ended the
/// order: they waited for a switch that never came and were closed at the
/// end of their hold time (the runbook's verify, through the frontend,
/// timed out).
#[tokio::test]
async fn a_cut_over_that_ends_on_the_routed_site_lets_its_waiting_users_in() {
    let (fe, _sites, mut c) = one_waiting_on_a_cut_over(3).await;
    let (status, body) = fe.put("web", "a", 3, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t = Instant::now();
    assert_eq!(c.answer().await.as_deref(), Some("a"));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let route = fe.route("web").await;
    assert_eq!(
        (
            count(&route, "held_now"),
            count(&route, "hold_remaining_ms")
        ),
        (0, 0),
        "{route}"
    );
    // New users are not held any more either.
    let t = Instant::now();
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    assert_eq!(c.answer().await.as_deref(), Some("a"));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}
