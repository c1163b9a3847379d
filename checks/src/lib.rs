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
use std::path::Path;
use std::time::{Duration, Instant};

use warden_config::{CheckKind, CheckSpec};

use warden_proto::agent::CheckResult;

pub mod child;
mod dns;
mod names;
mod openstack;
mod reach;
pub use names::SystemNames;
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
/// `client` is used for `http` checks and the name lookups of `tcp` ones,
/// and is [`probe_client`]
/// (`keystone` and `swift` have their own, which follows no redirect either
/// and reaches a name's addresses the same way); its clients' timeouts are
/// irrelevant because the whole check (connect, headers, body) runs under
/// `spec.timeout`.
pub async fn run_check(spec: &CheckSpec, client: &ProbeClient) -> CheckResult {
    run_check_bound(spec, client, None).await
}

/// [`run_check`] for the agent whose state directory is `state_dir`: a
/// command check's `WARDEN_RUN` mark is bound to it
/// (`warden_config::run_mark`), so that the agent's next process ends one
/// its death left running, with what it started.
pub async fn run_check_bound(
    spec: &CheckSpec,
    client: &ProbeClient,
    state_dir: Option<&Path>,
) -> CheckResult {
    let started = Instant::now();
    let attempt = async {
        match spec.kind.get_ref() {
            CheckKind::Http => http_check(spec, client).await,
            CheckKind::Tcp => tcp_check(spec, client).await,
            CheckKind::Command => command_check(spec, state_dir).await,
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
    /// The agent's state directory, which command checks' marks are bound
    /// to ([`run_check_bound`]); `None`: unbound.
    state_dir: Option<std::path::PathBuf>,
    last: std::sync::Mutex<Vec<Option<(Instant, CheckResult)>>>,
}

impl CheckSet {
    pub fn new(specs: Vec<CheckSpec>) -> CheckSet {
        let last = std::sync::Mutex::new(vec![None; specs.len()]);
        CheckSet {
            specs,
            last,
            state_dir: None,
        }
    }

    /// Its command checks' marks bound to the agent's `state_dir`
    /// ([`run_check_bound`]).
    pub fn bound_to(mut self, state_dir: &Path) -> CheckSet {
        self.state_dir = Some(state_dir.to_path_buf());
        self
    }

    /// Every check now, whatever its interval (a promote's fresh checks);
    /// the results become each check's last, so no later report carries
    /// one taken before them.
    pub async fn run_all_now(&self, client: &ProbeClient) -> Vec<CheckResult> {
        let now = Instant::now();
        let results = futures::future::join_all(
            self.specs
                .iter()
                .map(|s| run_check_bound(s, client, self.state_dir.as_deref())),
        )
        .await;
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
        let fresh = futures::future::join_all(
            due.iter()
                .map(|i| run_check_bound(&self.specs[*i], client, self.state_dir.as_deref())),
        )
        .await;
        let mut out = kept;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for (i, r) in due.into_iter().zip(fresh) {
            // Not over a result taken after this round began (a promote's
            // fresh run, finished while this round's checks still ran):
            // the next rounds would repeat an older view as the last one.
            if last[i].as_ref().is_none_or(|(at, _)| *at <= now) {
                last[i] = Some((now, r.clone()));
            }
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

async fn tcp_check(spec: &CheckSpec, client: &ProbeClient) -> (bool, String) {
    let Some(address) = &spec.address else {
        return (false, "no address configured".into());
    };
    let Some((host, port)) = names::host_port(address.get_ref()) else {
        return (false, format!("{}: not host:port", address.get_ref()));
    };
    let addrs = match client.addresses(host, port).await {
        Ok(a) => a,
        Err(e) => return (false, describe_io(&e)),
    };
    match reach::connect_any(&addrs).await {
        Ok(_) => (true, "connected".into()),
        Err(e) => (false, describe_io(&e)),
    }
}

async fn command_check(spec: &CheckSpec, state_dir: Option<&Path>) -> (bool, String) {
    let Some(argv) = spec.command.as_ref() else {
        return (false, "no command configured".into());
    };
    let run = child::run(child::Command {
        argv: argv.get_ref(),
        env: &[],
        stdin: None,
        timeout: spec.timeout,
        output: child::Output::Discard,
        started: None,
        mark: state_dir.map(warden_config::run_mark::RunMark::bound),
        keep_left: false,
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
mod tests;
