//! `warden probe`: the client-side outage meter. Every interval it makes one
//! TCP connect or HTTP GET (a new connection each time, as a new user would),
//! and records each outage window from the first failure to the next success.
//! This is the RTO users saw during a drill.
//!
//! DNS mode (`--resolver IP[:PORT]`): the target's host name is resolved
//! before every attempt through a resolver that caches answers for their TTL,
//! as users' stub resolvers do, so the outage includes DNS caching.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A resolver that asks one server and caches answers for their TTL.
#[derive(Clone)]
pub(crate) struct TtlResolver(hickory_resolver::TokioResolver);

impl TtlResolver {
    pub(crate) fn new(server: SocketAddr, timeout: Duration) -> Result<TtlResolver, String> {
        use hickory_resolver::config::{
            NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
        };
        let mut ns = NameServerConfig::udp_and_tcp(server.ip());
        for c in &mut ns.connections {
            c.port = server.port();
        }
        let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.use_hosts_file = ResolveHosts::Never;
        let r = hickory_resolver::Resolver::builder_with_config(
            config,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| format!("cannot build the resolver for {server}: {e}"))?;
        Ok(TtlResolver(r))
    }

    /// The first address of `host` (from the cache while its TTL lasts).
    pub(crate) async fn lookup(&self, host: &str) -> Result<IpAddr, String> {
        let ips = self
            .0
            .lookup_ip(host)
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        ips.iter()
            .next()
            .ok_or_else(|| format!("{host} has no address"))
    }
}

impl reqwest::dns::Resolve for TtlResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let r = self.clone();
        Box::pin(async move {
            let ip = r.lookup(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// One outage window.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outage {
    /// Offset from the probe's start of the first failed attempt, ms.
    pub start_ms: u64,
    /// Offset of the first successful attempt after it, ms (None: still out at the end).
    pub end_ms: Option<u64>,
    pub duration_ms: u64,
    /// The first error of the window.
    pub error: String,
}

/// What a probe run saw.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct ProbeReport {
    pub target: String,
    pub attempts: u64,
    pub ok: u64,
    pub failed: u64,
    pub outages: Vec<Outage>,
    pub total_outage_ms: u64,
    pub longest_outage_ms: u64,
    /// HTTP: how many answers carried each body (trimmed, first 64 chars): which site answered.
    pub answers: BTreeMap<String, u64>,
    /// The body of the last successful answer.
    pub last_answer: Option<String>,
    /// DNS mode: the resolver asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
}

#[derive(Clone)]
enum Target {
    Tcp(String),
    Http(String),
}

/// The target, or why it can never be reached: a URL that does not parse
/// or names no host, a port missing or 0 (each attempt would fail, and the
/// report show a 100 % outage that is only the typo's).
fn parse_target(t: &str) -> Result<Target, String> {
    let usage = "give http://host:port/path, tcp://host:port or host:port";
    if t.starts_with("http://") || t.starts_with("https://") {
        let u = reqwest::Url::parse(t)
            .map_err(|e| format!("target {t:?} is not a URL ({e}): {usage}"))?;
        if u.host_str().is_none_or(str::is_empty) {
            return Err(format!("target {t:?} names no host: {usage}"));
        }
        if u.port() == Some(0) {
            return Err(format!(
                "target {t:?} has port 0, where nothing can be reached: {usage}"
            ));
        }
        return Ok(Target::Http(t.to_string()));
    }
    let hp = t.strip_prefix("tcp://").unwrap_or(t);
    match hp.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(Target::Tcp(hp.to_string()))
        }
        _ => Err(format!("target {t:?}: {usage}")),
    }
}

/// Observer called on each event (for live printing).
pub(crate) type OnEvent = Box<dyn FnMut(&ProbeEvent) + Send>;

/// Live events of a probe run.
pub(crate) enum ProbeEvent {
    OutageStarted { at_ms: u64, error: String },
    OutageEnded(Outage),
    Answer { at_ms: u64, body: String },
}

/// The probe loop, usable from the demo: runs until `stop` or `duration`.
/// One HTTP request of a probe: the answer's body (trimmed, its first 64
/// characters: which site answered), or what went wrong in words.
/// `timeout` is the client's, for the message.
pub(crate) async fn ask(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<String, String> {
    match http.get(url).send().await {
        Ok(r) if r.status().is_success() => match r.text().await {
            Ok(b) => Ok(b.trim().chars().take(64).collect()),
            Err(e) => Err(format!("body: {e}")),
        },
        Ok(r) => Err(format!("status {}", r.status().as_u16())),
        Err(e) => Err(if e.is_timeout() {
            format!("timed out after {}ms", timeout.as_millis())
        } else if e.is_connect() {
            "connection failed".to_string()
        } else {
            "request failed".to_string()
        }),
    }
}

pub(crate) async fn run(
    target: &str,
    interval: Duration,
    timeout: Option<Duration>,
    duration: Option<Duration>,
    resolver: Option<SocketAddr>,
    stop: CancellationToken,
    mut on_event: Option<OnEvent>,
) -> Result<ProbeReport, String> {
    let t = parse_target(target)?;
    if interval.is_zero() {
        return Err("--interval must be above zero: one attempt every interval, e.g. 100ms".into());
    }
    let timeout = timeout.unwrap_or(interval).max(Duration::from_millis(50));
    let dns = match resolver {
        Some(server) => Some(TtlResolver::new(server, timeout)?),
        None => None,
    };
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .no_proxy();
    if let Some(r) = &dns {
        builder = builder.dns_resolver(std::sync::Arc::new(r.clone()));
    }
    let http = builder.build().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut rep = ProbeReport {
        target: target.to_string(),
        resolver: resolver.map(|r| r.to_string()),
        ..Default::default()
    };
    let mut open: Option<(u64, String)> = None;
    let mut last_body: Option<String> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // `--duration` ends the run when it is up, not at the first tick after
    // it (an interval longer than the duration ran a whole interval).
    let end = async {
        match duration.and_then(|d| start.checked_add(d)) {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut end => break,
            _ = tick.tick() => {}
        }
        if duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let at_ms = start.elapsed().as_millis() as u64;
        let result: Result<Option<String>, String> = match &t {
            Target::Tcp(addr) => {
                let resolved = match (&dns, addr.rsplit_once(':')) {
                    (Some(r), Some((host, port))) => r
                        .lookup(host.trim_matches(['[', ']']))
                        .await
                        .map(|ip| Some(SocketAddr::new(ip, port.parse().unwrap_or(0)))),
                    _ => Ok(None),
                };
                match resolved {
                    Err(e) => Err(e),
                    Ok(resolved) => {
                        let connect = async {
                            match resolved {
                                Some(sa) => tokio::net::TcpStream::connect(sa).await,
                                None => tokio::net::TcpStream::connect(addr.as_str()).await,
                            }
                        };
                        match tokio::time::timeout(timeout, connect).await {
                            // In DNS mode, the answer is the address users were sent to.
                            Ok(Ok(_)) => Ok(resolved.map(|sa| sa.ip().to_string())),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => {
                                Err(format!("connect timed out after {}ms", timeout.as_millis()))
                            }
                        }
                    }
                }
            }
            Target::Http(url) => ask(&http, url, timeout).await.map(Some),
        };
        rep.attempts += 1;
        match result {
            Ok(body) => {
                rep.ok += 1;
                if let Some((s, error)) = open.take() {
                    let o = Outage {
                        start_ms: s,
                        end_ms: Some(at_ms),
                        duration_ms: at_ms - s,
                        error,
                    };
                    if let Some(f) = on_event.as_mut() {
                        f(&ProbeEvent::OutageEnded(o.clone()));
                    }
                    rep.outages.push(o);
                }
                if let Some(b) = body {
                    *rep.answers.entry(b.clone()).or_default() += 1;
                    if last_body.as_ref() != Some(&b) {
                        if let Some(f) = on_event.as_mut() {
                            f(&ProbeEvent::Answer {
                                at_ms,
                                body: b.clone(),
                            });
                        }
                    }
                    last_body = Some(b);
                }
            }
            Err(e) => {
                rep.failed += 1;
                if open.is_none() {
                    if let Some(f) = on_event.as_mut() {
                        f(&ProbeEvent::OutageStarted {
                            at_ms,
                            error: e.clone(),
                        });
                    }
                    open = Some((at_ms, e));
                }
            }
        }
    }
    if let Some((s, error)) = open.take() {
        let end = start.elapsed().as_millis() as u64;
        rep.outages.push(Outage {
            start_ms: s,
            end_ms: None,
            duration_ms: end - s,
            error,
        });
    }
    rep.total_outage_ms = rep.outages.iter().map(|o| o.duration_ms).sum();
    rep.longest_outage_ms = rep.outages.iter().map(|o| o.duration_ms).max().unwrap_or(0);
    rep.last_answer = last_body;
    Ok(rep)
}

/// `warden probe` itself.
pub(crate) async fn main(
    target: &str,
    interval: Duration,
    timeout: Option<Duration>,
    duration: Option<Duration>,
    resolver: Option<SocketAddr>,
    json: bool,
) -> ExitCode {
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
    }
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Ok(mut t) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                t.recv().await;
                stop.cancel();
            }
        });
    }
    let printer: Option<OnEvent> = if json {
        None
    } else {
        Some(Box::new(|e: &ProbeEvent| match e {
            ProbeEvent::OutageStarted { at_ms, error } => {
                println!("+{:>8.3}s  outage started: {error}", *at_ms as f64 / 1000.0)
            }
            ProbeEvent::OutageEnded(o) => println!(
                "+{:>8.3}s  outage ended after {:.3}s",
                o.end_ms.unwrap_or(0) as f64 / 1000.0,
                o.duration_ms as f64 / 1000.0
            ),
            ProbeEvent::Answer { at_ms, body } => {
                println!("+{:>8.3}s  answered by: {body}", *at_ms as f64 / 1000.0)
            }
        }))
    };
    let rep = match run(target, interval, timeout, duration, resolver, stop, printer).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(crate::EXIT_CONFIG);
        }
    };
    if json {
        match serde_json::to_string(&rep) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        println!(
            "{} attempts, {} ok, {} failed; {} outage(s), total {:.3}s, longest {:.3}s",
            rep.attempts,
            rep.ok,
            rep.failed,
            rep.outages.len(),
            rep.total_outage_ms as f64 / 1000.0,
            rep.longest_outage_ms as f64 / 1000.0
        );
    }
    ExitCode::SUCCESS
}
