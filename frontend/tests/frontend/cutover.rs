//! A cut-over order (a hold with `pause`: the routed site is about to be
//! demoted) keeps every user not yet connected off that site: those
//! arriving after it, and those already held or connecting under the
//! suspect hold that came before it — even when the site answers again
//! during its demote.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::harness::{blackhole, echo, echo_at, group, refusing, start, Conn, Echo, Frontend};

fn count(route: &Value, field: &str) -> u64 {
    route[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {route}"))
}

/// Group "web" routed to a (at `a_addr`) at epoch 1, b answering "b";
/// connections held up to 10 s.
async fn start_on(a_addr: std::net::SocketAddr) -> (Frontend, Echo) {
    let b = echo("b").await;
    let mut g = group(&[("a", a_addr), ("b", b.addr)], Duration::from_secs(5));
    g.hold_connections = Duration::from_secs(10);
    let fe = start(BTreeMap::from([("web".to_string(), g)])).await;
    assert_eq!(fe.put("web", "a", 1, "immediate").await.0, StatusCode::OK);
    (fe, b)
}

/// Site a is suspected (a plain hold) and refuses: a user is held, trying
/// a again every 200 ms. Then the cut-over order comes, and a's service
/// answers again while it is being demoted: the held user must not reach
/// it, but wait for the switch and go to b. Before, only users arriving
/// after the cut-over order waited: one already held tried a at once when
/// the order came and every 200 ms after, and reached the site under
/// demotion as soon as it answered.
#[tokio::test]
async fn a_user_held_before_the_cut_over_does_not_reach_the_site_being_demoted() {
    let dead = refusing().await;
    let (fe, _b) = start_on(dead).await;
    assert_eq!(fe.hold("web", 1, 20_000).await.0, StatusCode::OK);
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    crate::assert_eventually!(
        count(&fe.route("web").await, "held_now") == 1,
        Duration::from_secs(2),
        "the connection is not held: {}",
        fe.route("web").await
    );
    let (status, body) = fe.pause("web", 2, 20_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // a's service answers again, during its demote.
    let _a = echo_at("a", dead).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let route = fe.route("web").await;
    assert_eq!(
        (count(&route, "held_now"), count(&route, "held_rescued")),
        (1, 0),
        "the held user left the hold during the cut-over: {route}"
    );
    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    assert_eq!(
        c.answer().await.as_deref(),
        Some("b"),
        "the held user reached the site being demoted"
    );
}

/// Site a is suspected (a plain hold) and its packets vanish: a user's
/// connect to a is under way (the kernel sends its SYN again after a
/// second) when the cut-over order comes, then a's network is back. The
/// connect is given up at the order, and the user waits for the switch.
/// Before, the connect went on and reached a during its demote.
#[tokio::test]
async fn a_connect_under_way_at_the_cut_over_does_not_reach_the_site_being_demoted() {
    let (dead, queue, fill) = blackhole().await;
    let (fe, _b) = start_on(dead).await;
    assert_eq!(fe.hold("web", 1, 20_000).await.0, StatusCode::OK);
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    // Its connect to a is under way (its SYN dropped: a's queue is full).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = fe.pause("web", 2, 20_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // a's network is back: its queue taken, every connection answered "a".
    drop(fill);
    let serving = tokio::spawn(answer_as_a(queue));
    // The connect's next SYN goes out about a second after its first.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    assert_eq!(
        c.answer().await.as_deref(),
        Some("b"),
        "the connect under way reached the site being demoted"
    );
    serving.abort();
}

/// The same with no order at all when the user arrived (nothing was
/// suspected yet): its connect to a, under way when the cut-over order
/// comes, is given up too.
#[tokio::test]
async fn a_connect_under_way_without_an_order_does_not_reach_the_site_being_demoted() {
    let (dead, queue, fill) = blackhole().await;
    let (fe, _b) = start_on(dead).await;
    let mut c = Conn::open(fe.listen("web")).await;
    c.send().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = fe.pause("web", 2, 20_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(fill);
    let serving = tokio::spawn(answer_as_a(queue));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let route = fe.route("web").await;
    assert_eq!(
        count(&route, "held_now"),
        1,
        "not waiting for the switch: {route}"
    );
    assert_eq!(fe.put("web", "b", 2, "immediate").await.0, StatusCode::OK);
    assert_eq!(
        c.answer().await.as_deref(),
        Some("b"),
        "the connect under way reached the site being demoted"
    );
    serving.abort();
}

/// Serve every connection of `l` as site a's echo backend does.
async fn answer_as_a(l: TcpListener) {
    while let Ok((s, _)) = l.accept().await {
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                if w.write_all(b"a\n").await.is_err() {
                    return;
                }
            }
        });
    }
}
