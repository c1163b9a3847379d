//! The checks' tests: tcp, http and command checks against local servers
//! and programs (127.0.0.1, addresses that drop packets), timeouts, schedules
//! and details kept short.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::reach::{black_hole, connect_any};
use super::*;

fn client() -> ProbeClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    probe_client().unwrap()
}

fn spec(toml_text: &str) -> CheckSpec {
    toml::from_str(toml_text).unwrap()
}

#[tokio::test]
async fn a_command_check_cut_off_by_its_timeout_is_killed_with_what_it_started() {
    let pid = std::env::temp_dir().join(format!("warden-check-pid-{}", std::process::id()));
    let c = spec(&format!(
        "name = \"slow\"\nkind = \"command\"\ntimeout = \"500ms\"\n\
         command = [\"/bin/sh\", \"-c\", \"sleep 30 & echo $! > {}; sleep 30\"]",
        pid.display()
    ));
    let r = run_check(&c, &client()).await;
    assert!(!r.ok && r.detail.contains("timed out"), "{r:?}");
    let left = std::fs::read_to_string(&pid).unwrap();
    let stat = format!("/proc/{}/stat", left.trim());
    let gone = || {
        std::fs::read_to_string(&stat)
            .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
            .unwrap_or(true)
    };
    let mut waited = 0;
    while !gone() && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let _ = std::fs::remove_file(&pid);
    assert!(
        gone(),
        "the check's background process {} outlived it",
        left.trim()
    );
}

/// A command check cut off by its timeout whose children left its process
/// group — one by `setsid` while its parent waits, one by a daemon's
/// double fork (its parent gone: re-parented to init) — has them killed
/// too. Before, the group kill missed both: they ran on (here 30 s; a real
/// daemon for ever, holding its ports and files), one more at every round
/// of the check.
#[tokio::test]
async fn a_command_check_cut_off_by_its_timeout_is_killed_with_what_left_its_group() {
    let dir = std::env::temp_dir().join(format!("warden-check-setsid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("setsid.pid"), dir.join("daemon.pid"));
    let script = format!(
        "setsid sh -c 'echo $$ > {a}.tmp; mv {a}.tmp {a}; exec sleep 30' & \
         (setsid sh -c 'echo $$ > {b}.tmp; mv {b}.tmp {b}; exec sleep 30' &); sleep 30",
        a = a.display(),
        b = b.display()
    );
    let c = spec(&format!(
        "name = \"daemonizes\"\nkind = \"command\"\ntimeout = \"1s\"\n\
         command = [\"/bin/sh\", \"-c\", {script:?}]"
    ));
    let r = run_check(&c, &client()).await;
    assert!(!r.ok && r.detail.contains("timed out"), "{r:?}");
    let pids: Vec<String> = [&a, &b]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().trim().to_string())
        .collect();
    // gone, or a zombie init has not reaped yet
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, r)| !r.starts_with('Z'))
            })
            .unwrap_or(false)
    };
    let mut waited = 0;
    while pids.iter().any(|p| alive(p)) && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let left: Vec<&String> = pids.iter().filter(|p| alive(p)).collect();
    for p in &left {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", p])
            .status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        left.is_empty(),
        "processes the check moved out of its group outlived it: {left:?} of {pids:?}"
    );
}

/// A promote's fresh checks finish while a report's round, begun before
/// the promote's hooks opened the site, still runs the same check: that
/// older round must not replace the fresh result as the check's last, or
/// every report until the check's interval passes says the site is down
/// again although the promote's own checks saw it up.
#[tokio::test]
async fn a_round_begun_before_a_promotes_fresh_checks_does_not_replace_their_result() {
    let dir = std::env::temp_dir().join(format!("warden-checkset-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (started, up) = (dir.join("started"), dir.join("up"));
    let set = std::sync::Arc::new(CheckSet::new(vec![spec(&format!(
        "name = \"site\"\nkind = \"command\"\ninterval = \"1h\"\ntimeout = \"30s\"\n\
         command = [\"/bin/sh\", \"-c\", \"touch {}; test -e {} && exit 0; sleep 4; exit 1\"]",
        started.display(),
        up.display()
    ))]));
    let c = client();
    // A report's round: the site is still down when its check looks.
    let round = {
        let (set, c) = (set.clone(), c.clone());
        tokio::spawn(async move { set.run_due(&c).await })
    };
    for _ in 0..200 {
        if started.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.exists(), "the report's round never ran its check");
    // The promote's hooks opened the site; its fresh checks see it up.
    std::fs::write(&up, "").unwrap();
    let fresh = set.run_all_now(&c).await;
    assert!(fresh[0].ok, "{fresh:?}");
    let old = round.await.unwrap();
    assert!(!old[0].ok, "{old:?}");
    // The next report: the fresh result, not the one seen before the hooks.
    let next = set.run_due(&c).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        next, fresh,
        "a result from before the promote's hooks came back"
    );
}

#[tokio::test]
async fn a_check_with_an_interval_runs_that_often_and_reports_its_last_result_between() {
    let dir = std::env::temp_dir().join(format!("warden-checkset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (slow, every) = (dir.join("slow"), dir.join("every"));
    let count = |f: &std::path::Path| {
        std::fs::read_to_string(f)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let set = CheckSet::new(vec![
        spec(&format!(
            "name = \"hourly\"\nkind = \"command\"\ninterval = \"1h\"\n\
             command = [\"/bin/sh\", \"-c\", \"echo run >> {} ; exit 1\"]",
            slow.display()
        )),
        spec(&format!(
            "name = \"each\"\nkind = \"command\"\n\
             command = [\"/bin/sh\", \"-c\", \"echo run >> {}\"]",
            every.display()
        )),
    ]);
    let c = client();
    let first = set.run_due(&c).await;
    let second = set.run_due(&c).await;
    let third = set.run_due(&c).await;
    assert_eq!((count(&slow), count(&every)), (1, 3));
    // a promote's fresh run takes every check, and the next report
    // carries what it saw, not an older result
    let fresh = set.run_all_now(&c).await;
    assert_eq!((count(&slow), count(&every)), (2, 4));
    let after = set.run_due(&c).await;
    assert_eq!(after[0], fresh[0]);
    assert_eq!((count(&slow), count(&every)), (2, 5));
    // in order, the hourly one's result repeated as it was
    assert_eq!(
        third.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["hourly", "each"]
    );
    assert!(!first[0].ok && first[0] == second[0] && second[0] == third[0]);
    assert!(third[1].ok);
    // the OpenStack kinds default to every 10 s, the others to every report
    let ks = spec("name = \"k\"\nkind = \"keystone\"");
    assert_eq!(ks.every(), Some(Duration::from_secs(10)));
    assert_eq!(spec("name = \"t\"\nkind = \"tcp\"").every(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A local HTTP server: `/ok` 200 "all ok", `/down` 503, `/slow` answers after 5s.
async fn server() -> String {
    let app = Router::new()
        .route("/ok", get(|| async { "all ok" }))
        .route(
            "/down",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// An address nobody listens on (held: no test beside takes it).
async fn closed_port() -> String {
    warden_testkit::net::refusing().to_string()
}

#[tokio::test]
async fn http_ok_with_body_match() {
    let base = server().await;
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/ok\"\nbody_contains = \"ok\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.name, "web");
    assert!(r.critical);
    assert_eq!(r.detail, "status 200");
}

#[tokio::test]
async fn http_bad_status() {
    let base = server().await;
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/down\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "status 503 (expected 200)");
}

#[tokio::test]
async fn http_expected_status_other_than_200() {
    let base = server().await;
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/down\"\nexpect_status = 503\ncritical = false"
    ));
    let r = run_check(&s, &client()).await;
    assert!(r.ok, "{r:?}");
    assert!(!r.critical);
}

#[tokio::test]
async fn http_body_mismatch() {
    let base = server().await;
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/ok\"\nbody_contains = \"healthy\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "body lacks \"healthy\"");
}

/// A body that comes a byte at a time (chunked, as a streaming or
/// hostile endpoint sends it) is searched as it arrives, once: the
/// needle at its end is found well within the timeout. Before, the
/// whole body was searched again at every chunk (quadratic): the
/// check burnt a core until its timeout and failed.
#[tokio::test]
async fn body_contains_on_a_body_sent_a_byte_at_a_time() {
    let needle = format!("{}b", "a".repeat(999));
    let app = Router::new().route(
        "/drip",
        get(|| async {
            let bytes = std::iter::repeat_n(&b"a"[..], 100_000)
                .chain(std::iter::once(&b"b"[..]))
                .map(|b| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b)));
            axum::body::Body::from_stream(futures::stream::iter(bytes))
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/drip\"\n\
         body_contains = \"{needle}\"\ntimeout = \"60s\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(r.ok, "{r:?}");
    // a needle split across chunks is found, a missing one is not
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/drip\"\n\
         body_contains = \"aab\"\ntimeout = \"60s\""
    ));
    assert!(run_check(&s, &client()).await.ok);
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/drip\"\n\
         body_contains = \"ba\"\ntimeout = \"60s\""
    ));
    let r = run_check(&s, &client()).await;
    assert_eq!((r.ok, r.detail.as_str()), (false, "body lacks \"ba\""));
}

#[tokio::test]
async fn a_dead_site_redirecting_to_a_healthy_one_is_not_healthy() {
    // The dead site's load balancer sends its users to the other
    // site's page (HAProxy's `redirect location … if { nbsrv(app) eq 0 }`).
    let healthy = server().await;
    let target = format!("{healthy}/ok?token=s3cret");
    let app = Router::new().route(
        "/health",
        get(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{dead}/health\"\nbody_contains = \"ok\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(!r.ok, "judged by another site's answer: {r:?}");
    assert_eq!(
        r.detail,
        format!("status 307 (expected 200): redirects to {healthy}, not followed")
    );
    // A redirect that is the expected answer is healthy.
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{dead}/health\"\nexpect_status = 307"
    ));
    let r = run_check(&s, &client()).await;
    assert!(r.ok, "{r:?}");
}

/// What an endpoint says goes into a result's detail; a lying one (a
/// redirect to a name of 100,000 characters, as here, a certificate
/// for thousands of names, a DNS server's thousands of answers) must
/// not make the detail, and so every report carrying it, outgrow the
/// orchestrator's body limit: the agent's reports were refused, the
/// site looked lost. The detail is one line, cut to MAX_DETAIL_CHARS.
#[tokio::test]
async fn a_detail_stays_short_and_on_one_line_whatever_the_endpoint_says() {
    let far = format!("http://{}example", "a.".repeat(50_000));
    let app = Router::new().route(
        "/health",
        get(move || {
            let far = far.clone();
            async move { axum::response::Redirect::temporary(&far) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/health\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(!r.ok);
    assert!(
        r.detail.chars().count() <= MAX_DETAIL_CHARS,
        "a detail of {} characters",
        r.detail.len()
    );
    assert!(
        r.detail
            .starts_with("status 307 (expected 200): redirects to http://a.a.a."),
        "{}",
        &r.detail[..100.min(r.detail.len())]
    );
    assert!(r.detail.ends_with('…'));
    // one line; a short detail is kept whole
    assert_eq!(bounded("exit 1\nmore"), "exit 1 more");
    assert_eq!(
        bounded(&"é".repeat(MAX_DETAIL_CHARS)),
        "é".repeat(MAX_DETAIL_CHARS)
    );
}

#[tokio::test]
async fn http_timeout() {
    let base = server().await;
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/slow\"\ntimeout = \"200ms\""
    ));
    let started = Instant::now();
    let r = run_check(&s, &client()).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "timed out after 200ms");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn http_connection_refused() {
    let addr = closed_port().await;
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"http://{addr}/\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "connection refused");
}

#[tokio::test]
async fn tcp_ok_and_refused() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let s = spec(&format!(
        "name = \"db\"\nkind = \"tcp\"\naddress = \"{addr}\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.detail, "connected");

    let closed = closed_port().await;
    let s = spec(&format!(
        "name = \"db\"\nkind = \"tcp\"\naddress = \"{closed}\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "connection refused");
}

/// A name with several addresses, the first of which drops packets (a
/// broken IPv6 route, one dead host): the service at the next one is
/// reached within the check's time. Before, the connects went one
/// after another and the first took the whole timeout: judged down.
#[tokio::test]
async fn tcp_reaches_a_later_address_when_the_first_drops_packets() {
    let (hole, _fill) = black_hole("127.0.0.1").await;
    let dead = hole.local_addr().unwrap();
    let live = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let up = live.local_addr().unwrap();
    let r = tokio::time::timeout(Duration::from_secs(3), connect_any(&[dead, up])).await;
    assert!(
        matches!(r, Ok(Ok(a)) if a == up),
        "the service at {up} was not reached: {r:?}"
    );
    // Every address failing: the first failure is said.
    let closed = closed_port().await;
    let e = connect_any(&[closed.parse().unwrap()]).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(connect_any(&[]).await.is_err());
}

/// A name with a great many addresses (a DNS answer of thousands of
/// records, a liar's or a mistake's): the race connects to its first
/// [`reach::MAX_RACED`] at once, not to every one. Before, every address
/// was connected to at once, a socket each, held until the check's
/// timeout where packets vanish: a site's name could take every file
/// descriptor of the orchestrator that probes it (its API, its store,
/// every other group's probes).
#[tokio::test]
async fn a_name_with_very_many_addresses_is_raced_at_a_few() {
    let mut listeners = Vec::new();
    for _ in 0..(4 * reach::MAX_RACED) {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<std::net::SocketAddr> =
        listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let won = connect_any(&addrs).await.unwrap();
    assert!(addrs[..reach::MAX_RACED].contains(&won), "{won}");
    // the connections each listener was sent (handshakes the kernel
    // completed, whether or not the race kept them)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut connected = 0;
    for l in &listeners {
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(10), l.accept()).await {
            connected += 1;
        }
    }
    assert!(
        (1..=reach::MAX_RACED).contains(&connected),
        "{connected} connections for a name of {} addresses",
        addrs.len()
    );
}

/// A Keystone whose catalog names its Swift at another port at every
/// login (a liar's): the clients kept stay [`reach::MAX_PORTS`] at most,
/// and the first ports met (those configured, used from the first round)
/// keep theirs. Before, a client (about 100 KiB) was kept for every port
/// ever named, for the life of the agent.
#[tokio::test]
async fn the_clients_kept_per_port_stay_few() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let probe = probe_client().unwrap();
    probe.for_url("https://svc.test:8443/").unwrap();
    for port in 20_000..20_000 + reach::MAX_PORTS as u16 + 8 {
        probe
            .for_url(&format!("https://swift.test:{port}/"))
            .unwrap();
    }
    let kept = probe.kept();
    assert!(kept.len() <= reach::MAX_PORTS, "{} kept", kept.len());
    assert!(kept.contains(&8443), "{kept:?}");
}

/// A name of more IPv6 addresses than are raced, listed first, and a few
/// IPv4 ones: the IPv4 ones are raced too (the families in turn), so a
/// broken IPv6 route does not make the service look down. Taken in the
/// list's order, the first [`reach::MAX_RACED`] were all IPv6.
#[test]
fn both_families_of_a_long_list_are_raced() {
    let v6: Vec<std::net::SocketAddr> = (1..=40)
        .map(|i| format!("[2001:db8::{i:x}]:443").parse().unwrap())
        .collect();
    let v4: Vec<std::net::SocketAddr> = (1..=3)
        .map(|i| format!("10.77.2.{i}:443").parse().unwrap())
        .collect();
    let all: Vec<_> = v6.iter().chain(&v4).copied().collect();
    let r = reach::raced(&all);
    assert_eq!(r.len(), reach::MAX_RACED);
    assert!(v4.iter().all(|a| r.contains(a)), "{r:?}");
    assert_eq!(&r[..3], &[v6[0], v4[0], v6[1]]);
    // one family: its first ones, in order
    assert_eq!(reach::raced(&v6), v6[..reach::MAX_RACED].to_vec());
    assert_eq!(reach::raced(&v4), v4);
}

/// A service whose listener is gone (it accepts no new connection)
/// while a connection it accepted earlier is still answered, kept
/// alive: a new user cannot get in, so the check fails. With the
/// connection kept by the client's pool between checks, the second
/// check was answered on it: healthy.
#[tokio::test]
async fn each_check_opens_its_own_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        // One connection accepted, then the listener closed; that one
        // answers every request on it (keep-alive) for as long as the
        // client keeps it.
        let (mut c, _) = listener.accept().await.unwrap();
        drop(listener);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let Ok(n) = c.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.drain(..end + 4);
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if c.write_all(ok).await.is_err() {
                    return;
                }
            }
        }
    });
    let probe = probe_client().unwrap();
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\ntimeout = \"2s\""
    ));
    let first = run_check(&s, &probe).await;
    assert!(first.ok, "{first:?}");
    let second = run_check(&s, &probe).await;
    assert!(
        !second.ok,
        "healthy over the first check's connection, though nobody new can connect: {second:?} \
         ({} requests answered on it)",
        served.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert_eq!(second.detail, "connection refused");
}

/// The `http` check of a name with two addresses, the first of which
/// drops packets: healthy, at the second, well within its timeout.
/// Before, reqwest's connector tried the first (same family, no
/// connect timeout) until the check's whole timeout: judged down.
#[tokio::test]
async fn http_reaches_a_later_address_when_the_first_drops_packets() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (hole, _fill) = black_hole("127.0.0.1").await;
    let port = hole.local_addr().unwrap().port();
    // the service at the name's second address, on the same port
    let live = TcpListener::bind(("127.0.0.2", port)).await.unwrap();
    let app = Router::new().route("/ok", get(|| async { "all ok" }));
    tokio::spawn(async move { axum::serve(live, app).await.unwrap() });
    let ips: [std::net::IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
    let probe = ProbeClient::with_table(probe_builder, &[("svc.test", &ips)]);
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"http://svc.test:{port}/ok\"\n\
         body_contains = \"ok\"\ntimeout = \"10s\""
    ));
    let started = Instant::now();
    let r = run_check(&s, &probe).await;
    assert!(r.ok, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{r:?}");
    // and again, on the pooled connection or a new one
    assert!(run_check(&s, &probe).await.ok);
    // a name with no address, and every address refusing, are said
    let none = ProbeClient::with_table(probe_builder, &[("none.test", &[])]);
    let s = spec("name = \"web\"\nkind = \"http\"\nurl = \"http://none.test/\"");
    let r = run_check(&s, &none).await;
    assert_eq!(
        (r.ok, r.detail.as_str()),
        (false, "the name has no address")
    );
    let closed: std::net::SocketAddr = closed_port().await.parse().unwrap();
    let two: [std::net::IpAddr; 2] = [closed.ip(), closed.ip()];
    let refusing = ProbeClient::with_table(probe_builder, &[("shut.test", &two)]);
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"http://shut.test:{}/\"",
        closed.port()
    ));
    let r = run_check(&s, &refusing).await;
    assert_eq!((r.ok, r.detail.as_str()), (false, "connection refused"));
}

/// A name from the system's resolver (`localhost`: often `::1` and
/// `127.0.0.1`, the service on the latter only).
#[tokio::test]
async fn http_to_a_name_from_the_system_resolver() {
    let base = server().await.replace("127.0.0.1", "localhost");
    let s = spec(&format!(
        "name = \"web\"\nkind = \"http\"\nurl = \"{base}/ok\"\nbody_contains = \"ok\""
    ));
    let r = run_check(&s, &client()).await;
    assert!(r.ok, "{r:?}");
}

#[tokio::test]
async fn command_exit_codes() {
    let ok = spec("name = \"c\"\nkind = \"command\"\ncommand = [\"true\"]");
    let r = run_check(&ok, &client()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.detail, "exit 0");

    let bad = spec("name = \"c\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]");
    let r = run_check(&bad, &client()).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "exit 3");

    let one = spec("name = \"c\"\nkind = \"command\"\ncommand = [\"false\"]");
    assert_eq!(run_check(&one, &client()).await.detail, "exit 1");
}

#[tokio::test]
async fn command_timeout_kills_it() {
    let s = spec(
        "name = \"c\"\nkind = \"command\"\ncommand = [\"sleep\", \"10\"]\ntimeout = \"200ms\"",
    );
    let started = Instant::now();
    let r = run_check(&s, &client()).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "timed out after 200ms");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn command_missing_program() {
    let s = spec("name = \"c\"\nkind = \"command\"\ncommand = [\"/nonexistent/warden-check\"]");
    let r = run_check(&s, &client()).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "cannot start: No such file or directory");
}

#[tokio::test]
async fn run_all_is_concurrent_and_ordered() {
    let slow = spec("name = \"a\"\nkind = \"command\"\ncommand = [\"sleep\", \"0.4\"]");
    let slow2 = spec("name = \"b\"\nkind = \"command\"\ncommand = [\"sleep\", \"0.4\"]");
    let started = Instant::now();
    let rs = run_all(&[slow, slow2], &client()).await;
    assert!(
        started.elapsed() < Duration::from_millis(750),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        rs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(rs.iter().all(|r| r.ok));
}

/// An agent's command checks carry a mark bound to its state directory
/// (`warden_config::run_mark`): its next process ends one its death left
/// running. Before, a check's mark was bound to nothing.
#[tokio::test]
async fn an_agents_command_checks_carry_the_mark_of_its_state_dir() {
    let dir = std::env::temp_dir().join(format!("warden-check-bound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let said = dir.join("mark");
    let c = spec(&format!(
        "name = \"c\"\nkind = \"command\"\n\
         command = [\"/bin/sh\", \"-c\", \"echo $WARDEN_RUN > {}\"]",
        said.display()
    ));
    let set = CheckSet::new(vec![c]).bound_to(&dir);
    assert!(set.run_all_now(&client()).await[0].ok);
    let first = std::fs::read_to_string(&said).unwrap();
    let _ = std::fs::remove_file(&said);
    assert!(set.run_due(&client()).await[0].ok);
    let second = std::fs::read_to_string(&said).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let bound = format!("@{}", std::path::absolute(&dir).unwrap().display());
    for mark in [first.trim(), second.trim()] {
        assert!(mark.ends_with(&bound), "{mark} (not bound: {bound})");
    }
}

/// A command check that ended in time and left a process running (a
/// `sleep` in the background): not recorded as kept — the agent's next
/// process ends it with its other leftovers — and no process's environment
/// read for it at each end of the check. Before, every check run that
/// ended in time scanned `/proc/*/environ`, and one that left something
/// wrote it into `kept-runs`, sparing it at the agent's next start.
#[tokio::test]
async fn what_a_check_leaves_running_is_not_kept() {
    let dir = std::env::temp_dir().join(format!("warden-check-unkept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = spec(
        "name = \"c\"\nkind = \"command\"\n\
         command = [\"/bin/sh\", \"-c\", \"sleep 30 >/dev/null 2>&1 & exit 0\"]",
    );
    let set = CheckSet::new(vec![c]).bound_to(&dir);
    assert!(set.run_all_now(&client()).await[0].ok);
    // The background sleep may be between its fork and its exec (its
    // environment unreadable for that moment): looked for a few times.
    let mut left = warden_config::run_mark::bound_to(&dir);
    for _ in 0..20 {
        if !left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = warden_config::run_mark::bound_to(&dir);
    }
    let kept = dir.join(warden_config::run_mark::KEPT_DIR);
    let kept_runs: Vec<_> = std::fs::read_dir(&kept)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    for (pid, _) in &left {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        left.len(),
        1,
        "the check's background sleep runs, bound to the agent's state_dir"
    );
    assert!(
        kept_runs.is_empty(),
        "what the check left was recorded as kept: {kept_runs:?}"
    );
}
