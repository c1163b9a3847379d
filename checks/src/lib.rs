//! Health checks and endpoint probes: one [`CheckSpec`] in, one [`CheckResult`] out.
//!
//! Owns the check kinds of failover.conf (`http`, `tcp`, `command`, `dns`
//! in [`dns`], and in [`openstack`] `keystone` and `swift`) and
//! how a failure is put into words. A check never returns an error and never
//! outlives its `timeout`: every way it can go wrong becomes `ok = false` with
//! a short human `detail` ("status 503 (expected 200)", "connection refused",
//! "timed out after 1s", "exit 1", "cannot start: No such file or directory"),
//! one line of at most [`MAX_DETAIL_CHARS`] whatever the endpoint said.
//! The same code serves the site's local checks and its probes of peer sites'
//! endpoints.

use std::error::Error as _;
use std::time::{Duration, Instant};

use warden_config::{CheckKind, CheckSpec};

use warden_proto::agent::CheckResult;

pub mod child;
mod dns;
mod openstack;
mod reach;
pub use openstack::DEFAULT_CONTAINER;
pub use reach::ProbeClient;

/// Largest body prefix searched for `body_contains`; a health page is small.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Most characters of a result's `detail` (one line; longer is cut,
/// ending in `…`). Results travel in every report, within the
/// orchestrator's body limit (`orchestrator.max_body_bytes`, 64 KiB by
/// default), and much of a detail is what an endpoint said: a redirect's
/// target, a certificate's names, a DNS server's answers.
pub const MAX_DETAIL_CHARS: usize = 512;

/// The HTTP client for `http` checks and probes ([`run_check`]'s `client`).
///
/// It goes directly to the URL (no proxy from `HTTP(S)_PROXY`/`ALL_PROXY`:
/// a probe measures the path to the service, and a proxy in the way would
/// make every site look down while it is down, or answer for one it cannot
/// reach). It follows no redirect: the answer judged is the endpoint's own
/// (a load balancer of a dead site that redirects its users to another
/// site's healthy page must not make the dead site look healthy); a 3xx is
/// a status like any other, healthy only when it is `expect_status`. It
/// connects to every address of a name at once and uses the first that
/// answers (see [`ProbeClient`]).
pub fn probe_client() -> Result<ProbeClient, reqwest::Error> {
    ProbeClient::new(probe_builder)
}

/// The properties of [`probe_client`]'s clients.
fn probe_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// Run one check, bounded by `spec.timeout`.
///
/// `client` is used for `http` checks, and is [`probe_client`]
/// (`keystone` and `swift` have their own, which follows no redirect either
/// and reaches a name's addresses the same way); its clients' timeouts are
/// irrelevant because the whole check (connect, headers, body) runs under
/// `spec.timeout`.
pub async fn run_check(spec: &CheckSpec, client: &ProbeClient) -> CheckResult {
    let started = Instant::now();
    let attempt = async {
        match spec.kind.get_ref() {
            CheckKind::Http => http_check(spec, client).await,
            CheckKind::Tcp => tcp_check(spec).await,
            CheckKind::Command => command_check(spec).await,
            CheckKind::Keystone => match openstack::clients() {
                Ok(c) => openstack::keystone_check(spec, c).await,
                Err(e) => (false, e),
            },
            CheckKind::Swift => match openstack::clients() {
                Ok(c) => openstack::swift_check(spec, c).await,
                Err(e) => (false, e),
            },
            CheckKind::Dns => dns::dns_check(spec).await,
        }
    };
    let (ok, detail) = match tokio::time::timeout(spec.timeout, attempt).await {
        Ok(r) => r,
        // Dropping the attempt drops the connection or kills the child (kill_on_drop).
        Err(_) => (false, timed_out(spec.timeout)),
    };
    CheckResult {
        name: spec.name.clone(),
        ok,
        critical: spec.critical,
        detail: bounded(&detail),
        elapsed_ms: elapsed_ms(started),
    }
}

/// `detail` on one line (control characters as spaces) and at most
/// [`MAX_DETAIL_CHARS`] characters.
fn bounded(detail: &str) -> String {
    let mut out: String = detail
        .chars()
        .take(MAX_DETAIL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if detail.chars().nth(MAX_DETAIL_CHARS).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

/// A site's own checks with their schedules: a check with an interval
/// ([`CheckSpec::every`]) runs when that long has passed since its last
/// run; in between, a round reports its last result.
pub struct CheckSet {
    specs: Vec<CheckSpec>,
    last: std::sync::Mutex<Vec<Option<(Instant, CheckResult)>>>,
}

impl CheckSet {
    pub fn new(specs: Vec<CheckSpec>) -> CheckSet {
        let last = std::sync::Mutex::new(vec![None; specs.len()]);
        CheckSet { specs, last }
    }

    /// Every check now, whatever its interval (a promote's fresh checks);
    /// the results become each check's last, so no later report carries
    /// one taken before them.
    pub async fn run_all_now(&self, client: &ProbeClient) -> Vec<CheckResult> {
        let now = Instant::now();
        let results = run_all(&self.specs, client).await;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for (slot, r) in last.iter_mut().zip(&results) {
            *slot = Some((now, r.clone()));
        }
        results
    }

    /// This round's results, in the order of the specs: the checks due run
    /// now (concurrently), the others give their last result.
    pub async fn run_due(&self, client: &ProbeClient) -> Vec<CheckResult> {
        let now = Instant::now();
        let kept: Vec<Option<CheckResult>> = {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            self.specs
                .iter()
                .zip(last.iter())
                .map(|(spec, last)| match (spec.every(), last) {
                    (Some(every), Some((at, r))) if now.duration_since(*at) < every => {
                        Some(r.clone())
                    }
                    _ => None,
                })
                .collect()
        };
        let due: Vec<usize> = (0..kept.len()).filter(|i| kept[*i].is_none()).collect();
        let fresh =
            futures::future::join_all(due.iter().map(|i| run_check(&self.specs[*i], client))).await;
        let mut out = kept;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for (i, r) in due.into_iter().zip(fresh) {
            last[i] = Some((now, r.clone()));
            out[i] = Some(r);
        }
        out.into_iter().flatten().collect()
    }
}

/// Run all checks concurrently; results come back in the order of `specs`.
pub async fn run_all(specs: &[CheckSpec], client: &ProbeClient) -> Vec<CheckResult> {
    futures::future::join_all(specs.iter().map(|s| run_check(s, client))).await
}

async fn http_check(spec: &CheckSpec, client: &ProbeClient) -> (bool, String) {
    let Some(url) = &spec.url else {
        return (false, "no url configured".into());
    };
    let expected = spec.expect_status.unwrap_or(200);
    let client = match client.for_url(url.get_ref()) {
        Ok(c) => c,
        Err(e) => return (false, e),
    };
    let mut resp = match client.get(url.get_ref()).send().await {
        Ok(r) => r,
        Err(e) => return (false, describe_http_error(&e)),
    };
    let status = resp.status().as_u16();
    if status != expected {
        if resp.status().is_redirection() {
            return (false, redirected(status, expected, &resp));
        }
        return (false, format!("status {status} (expected {expected})"));
    }
    let Some(needle) = spec.body_contains.as_deref() else {
        return (true, format!("status {status}"));
    };
    let mut body: Vec<u8> = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                // only where the needle may now end: a body that comes a
                // few bytes at a time is searched once, not once per chunk
                let from = body.len().saturating_sub(needle.len().saturating_sub(1));
                body.extend_from_slice(&chunk);
                if contains(&body[from..], needle.as_bytes()) {
                    return (true, format!("status {status}"));
                }
                if body.len() >= MAX_BODY_BYTES {
                    return (
                        false,
                        format!("body lacks {needle:?} (first {MAX_BODY_BYTES} bytes)"),
                    );
                }
            }
            Ok(None) => return (false, format!("body lacks {needle:?}")),
            Err(e) => return (false, format!("reading body: {}", describe_http_error(&e))),
        }
    }
}

/// "status 302 (expected 200): redirects to https://other:443, not followed":
/// where it points, by origin only (a path or query may carry a token).
fn redirected(status: u16, expected: u16, resp: &reqwest::Response) -> String {
    let to = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| resp.url().join(l).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null");
    match to {
        Some(to) => {
            format!("status {status} (expected {expected}): redirects to {to}, not followed")
        }
        None => format!("status {status} (expected {expected}): a redirect, not followed"),
    }
}

async fn tcp_check(spec: &CheckSpec) -> (bool, String) {
    let Some(address) = &spec.address else {
        return (false, "no address configured".into());
    };
    let addrs: Vec<std::net::SocketAddr> =
        match tokio::net::lookup_host(address.get_ref().as_str()).await {
            Ok(a) => a.collect(),
            Err(e) => return (false, describe_io(&e)),
        };
    match reach::connect_any(&addrs).await {
        Ok(_) => (true, "connected".into()),
        Err(e) => (false, describe_io(&e)),
    }
}

async fn command_check(spec: &CheckSpec) -> (bool, String) {
    let Some(argv) = spec.command.as_ref() else {
        return (false, "no command configured".into());
    };
    let run = child::run(child::Command {
        argv: argv.get_ref(),
        env: &[],
        stdin: None,
        timeout: spec.timeout,
        output: child::Output::Discard,
    })
    .await;
    match run {
        Ok(f) => (f.status.success(), describe_exit(f.status)),
        Err(child::Failure::NotStarted { why, .. }) | Err(child::Failure::Wait(why)) => {
            (false, why)
        }
        Err(child::Failure::TimedOut { .. }) => (false, timed_out(spec.timeout)),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// "timed out after 1s": the wording shared by checks and hooks.
pub fn timed_out(after: Duration) -> String {
    format!("timed out after {}", humantime::format_duration(after))
}

/// Whole milliseconds since `started`, saturating.
pub fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// "exit 0", "exit 1", "killed by signal 9".
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    status.to_string()
}

/// A short cause for an I/O error, without the "(os error N)" suffix.
pub fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset".into(),
        ErrorKind::TimedOut => "timed out".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error ") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// A short cause for a reqwest error: the innermost I/O error if there is one
/// ("connection refused"), else the innermost message.
pub fn describe_http_error(e: &reqwest::Error) -> String {
    let mut innermost = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return describe_io(io);
        }
        innermost = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect: {innermost}")
    } else {
        innermost
    }
}

#[cfg(test)]
mod tests {
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

    /// An address nobody listens on.
    async fn closed_port() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        addr.to_string()
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
        let ips: [std::net::IpAddr; 2] =
            ["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
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
}
