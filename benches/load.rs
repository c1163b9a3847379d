//! Orchestrator load benchmark: simulated agents report for GROUPS groups
//! (2 sites each) at 1 Hz per site to a real `warden orchestrator` process on
//! 127.0.0.1, with a real `warden frontend` serving every group. Measures the
//! orchestrator's CPU (from /proc), its RSS, and report handling time (client
//! round trip and the server-side histogram) and how long its detection
//! rounds take. Prints a table. The load starts once the frontend routes
//! every group (the orchestrator's first reconciliation has pushed them):
//! a steady state, not the start-up.
//!
//! `cargo bench --bench load` (BENCH_GROUPS=10000 DURATION_S=30 by default);
//! `STORE=etcd` runs the orchestrator on `store = "etcd"` against one real
//! etcd member on loopback (started here) and reports etcd's write rate.
//! `WARDEN_BIN=/path/to/warden` measures another build instead (an A/B).
//! The table ends with how fast the machine was during the run (a fixed
//! decoding job timed before and after the load), to read runs of
//! different hours against each other.
//!
//! `PROTOCOL=stream` (the default) gives every simulated agent its own
//! report stream, as `warden agent` does (a WebSocket per agent: 20,000
//! connections, frames written and read by hand, see [`RawStream`]): one
//! message per report, nothing back unless there is news. A stream takes a
//! descriptor here and one in the orchestrator; where the hard limit is
//! below the sites and cannot be raised, the agents beyond it report by
//! POST (the table says how many). After one
//! report in [`PING_EVERY`] the agent sends a ping (a real agent pings every
//! 10 s) and the time from that report's write to the pong is the round trip
//! measured: the orchestrator reads a stream in order, so the pong comes
//! after the report was taken. Refusals read on the way count as errors.
//! `PROTOCOL=post` is the agent before streams: one `POST /v1/reports` per
//! report, as below.
//!
//! With `PROTOCOL=post` the simulated agents send each report as one HTTP/1.1 request on a
//! keep-alive connection, written and read with plain socket calls (the
//! response head parsed by `httparse`): the load generator shares the
//! machine's two cores with the orchestrator, and an HTTP client library's
//! tens of microseconds per request were a core's worth of competition that
//! real agents, each on its own host, do not make. `CLIENT=reqwest` sends
//! the same requests through reqwest (the generator before), to compare;
//! the table shows the generator's own CPU either way.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// The warden binary to measure: this build's, or `WARDEN_BIN` (another
/// build, for an A/B of a change on the same bench).
fn warden() -> String {
    std::env::var("WARDEN_BIN").unwrap_or_else(|_| WARDEN.to_string())
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port below the ephemeral range, so the frontend's 10,000 port-0
/// listeners cannot take it before the orchestrator binds it.
fn free_port() -> Result<u16> {
    Ok(warden_testkit::net::daemon_port())
}

fn proc_cpu_ticks(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &s[s.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn proc_rss_kb(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("rss")?.parse()?)
}

/// How fast this machine is right now: the median time of 7 passes, each
/// decoding a report like the agents' 20,000 times as a `serde_json::Value`
/// on this thread (nanoseconds per report). The orchestrator's CPU share
/// moves with it: this machine is shared, and the same build measured
/// 41–59 % within one evening. Taken before the load and after it.
fn calibrate() -> f64 {
    let body = r#"{"site":"s1","seq":7,"checks":[{"name":"web","ok":true,"critical":true,"detail":"status 200","elapsed_ms":1}],"peers":[{"site":"s0","results":[{"name":"web","ok":true,"critical":true,"detail":"status 200","elapsed_ms":1}]}]}"#;
    let mut passes: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..20_000 {
                let v: serde_json::Value =
                    serde_json::from_str(std::hint::black_box(body)).unwrap_or_default();
                std::hint::black_box(v);
            }
            t.elapsed().as_nanos() as f64 / 20_000.0
        })
        .collect();
    passes.sort_by(f64::total_cmp);
    passes[passes.len() / 2]
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// With `PROTOCOL=stream`, one report in this many is followed by a ping
/// whose pong times the report's round trip.
const PING_EVERY: u64 = 10;

#[path = "load/wire.rs"]
mod wire;
use wire::{open_stream, RawConn, RawStream};

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let groups: usize = std::env::var("BENCH_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let duration = Duration::from_secs(
        std::env::var("DURATION_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let sites = groups * 2;
    let streams = match std::env::var("PROTOCOL").as_deref() {
        Ok("stream") | Ok("") | Err(_) => true,
        Ok("post") => false,
        Ok(other) => bail!("PROTOCOL={other}: expected stream or post"),
    };
    // A stream is one connection, so one descriptor in the orchestrator
    // and one here, per agent. Where the limit is lower than the sites
    // (20,000 on the project machine, which cannot raise it: no
    // CAP_SYS_RESOURCE), the agents beyond it report by POST on 8
    // keep-alive connections (a fleet part-way through an upgrade), and the
    // table says how many did.
    let on_streams = if streams {
        let want = sites as u64 + 1_000;
        let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
        if hard < want && rlimit::setrlimit(rlimit::Resource::NOFILE, want, want).is_err() {
            rlimit::increase_nofile_limit(hard)?;
            (hard.saturating_sub(1_000) as usize).min(sites)
        } else {
            rlimit::increase_nofile_limit(want)?;
            sites
        }
    } else {
        0
    };
    let raw = match std::env::var("CLIENT").as_deref() {
        Ok("raw") | Ok("") | Err(_) => true,
        Ok("reqwest") => false,
        Ok(other) => bail!("CLIENT={other}: expected raw or reqwest"),
    };
    let dir = std::env::temp_dir().join(format!("warden-load-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tokens"))?;
    let api = free_port()?;
    let _hold = std::net::TcpListener::bind(("127.0.0.1", api))?;
    let ctl = free_port()?;
    drop(_hold);
    std::fs::write(dir.join("op.token"), "operator-token-load")?;
    std::fs::write(dir.join("fe.token"), "frontend-token-load")?;
    for t in ["op.token", "fe.token"] {
        std::fs::set_permissions(
            dir.join(t),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
    }
    let mut conf = String::new();
    writeln!(conf, "[orchestrator]\nlisten = \"127.0.0.1:{api}\"\ndata_dir = \"{}\"\noperator_token = {{ file = \"{}\" }}\nreconcile_interval = \"10s\"\nmax_body_bytes = 65536\nmax_connections = {}\n", dir.join("data").display(), dir.join("op.token").display(), sites + 4096)?;
    let etcd_store = std::env::var("STORE").is_ok_and(|v| v == "etcd");
    let mut etcd = None;
    if etcd_store {
        // Ports apart from the API's and the frontend's (still held here).
        let h1 = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let h2 = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let (cp, pp) = (h1.local_addr()?.port(), h2.local_addr()?.port());
        drop((h1, h2));
        let url = format!("http://127.0.0.1:{cp}");
        let peer = format!("http://127.0.0.1:{pp}");
        etcd = Some((
            Kill(
                Command::new("etcd")
                    .args(["--name", "l1", "--data-dir"])
                    .arg(dir.join("etcd"))
                    .args([
                        "--listen-client-urls",
                        &url,
                        "--advertise-client-urls",
                        &url,
                    ])
                    .args([
                        "--listen-peer-urls",
                        &peer,
                        "--initial-advertise-peer-urls",
                        &peer,
                    ])
                    .args(["--initial-cluster", &format!("l1={peer}")])
                    .args(["--logger", "zap", "--log-outputs"])
                    .arg(dir.join("etcd.log"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("etcd (apt-get install etcd-server)")?,
            ),
            url.clone(),
        ));
        writeln!(
            conf,
            "store = \"etcd\"\n[orchestrator.etcd]\nendpoints = [\"{url}\"]\nlease_ttl = \"3s\"\n"
        )?;
    }
    writeln!(
        conf,
        "[detection]\ninterval = \"1s\"\nagent_timeout = \"3s\"\nfall = 3\nrise = 3\n"
    )?;
    writeln!(
        conf,
        "[frontends.fe1]\ncontrol = \"127.0.0.1:{ctl}\"\ntoken = {{ file = \"{}\" }}\n",
        dir.join("fe.token").display()
    )?;
    let mut tokens = Vec::with_capacity(sites);
    for i in 0..sites {
        let t = format!("agent-token-{i:06}-load");
        let p = dir.join("tokens").join(format!("s{i}"));
        std::fs::write(&p, &t)?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        tokens.push(t);
        writeln!(
            conf,
            "[sites.s{i}]\nagent_token = {{ file = \"{}\" }}\n",
            p.display()
        )?;
    }
    for g in 0..groups {
        let (a, b) = (2 * g, 2 * g + 1);
        writeln!(conf, "[groups.g{g}]\nsites = [\"s{a}\", \"s{b}\"]\nscheme = \"frontend\"\n[groups.g{g}.frontend]\ndriver = \"builtin\"\nfrontends = [\"fe1\"]\nlisten = \"127.0.0.1:0\"\nbackends = {{ s{a} = \"127.0.0.1:9\", s{b} = \"127.0.0.1:10\" }}\n")?;
    }
    let cfg = dir.join("failover.conf");
    std::fs::write(&cfg, conf)?;
    eprintln!(
        "config: {groups} groups, {sites} sites in {}",
        cfg.display()
    );

    let log = |n: &str| -> Result<Stdio> { Ok(std::fs::File::create(dir.join(n))?.into()) };
    let mut fe = Kill(
        Command::new(warden())
            .args(["frontend", "--config"])
            .arg(&cfg)
            .args(["--name", "fe1"])
            .env("WARDEN_LOG", "warn")
            .stdout(log("fe.log")?)
            .stderr(log("fe.err")?)
            .spawn()?,
    );
    let orch = Kill(
        Command::new(warden())
            .args(["orchestrator", "--config"])
            .arg(&cfg)
            .env("WARDEN_LOG", "warn")
            .stdout(log("orch.log")?)
            .stderr(log("orch.err")?)
            .spawn()?,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let base = format!("http://127.0.0.1:{api}");
    let api_addr: std::net::SocketAddr = ([127, 0, 0, 1], api).into();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()?;
    // Wait for the API.
    let t0 = Instant::now();
    rt.block_on(async {
        loop {
            if client
                .get(format!("{base}/v1/status"))
                .bearer_auth("operator-token-load")
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(120) {
                bail!("orchestrator did not come up; see {}", dir.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    if etcd_store {
        rt.block_on(async {
            while !client
                .get(format!("{base}/v1/leader"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                if t0.elapsed() > Duration::from_secs(120) {
                    bail!("the orchestrator did not lead; see {}", dir.display());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(())
        })?;
    }
    // Steady state: the frontend routes every group (the leader's first
    // reconciliation has pushed 10,000 routes) before the load starts.
    rt.block_on(async {
        loop {
            let routed = match client
                .get(format!("http://127.0.0.1:{ctl}/v1/routes"))
                .bearer_auth("frontend-token-load")
                .send()
                .await
            {
                Ok(r) => r
                    .json::<BTreeMap<String, serde_json::Value>>()
                    .await
                    .map(|m| m.values().filter(|v| !v["site"].is_null()).count())
                    .unwrap_or(0),
                Err(_) => 0,
            };
            if routed == groups {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(180) {
                bail!(
                    "the frontend routes {routed} of {groups} groups; see {}",
                    dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })?;
    eprintln!(
        "orchestrator up and every group routed after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let speed_before = calibrate();
    let etcd_url = etcd.as_ref().map(|(_, u)| u.clone());
    let pid = orch.0.id();
    let lat: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
    let lat_post: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
    // (ms since the load began, round trip µs) of every stream sample:
    // written to SAMPLES_FILE when set, to see when the slow ones came.
    let trace: Arc<std::sync::Mutex<Vec<(u64, u64)>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let tokens = Arc::new(tokens);
    let warmup = Duration::from_secs(5);
    let (cpu0, rss_before, measured, etcd_rate, generator_ticks, m0_unix_ms, taken) = rt.block_on(async {
        let opening = Instant::now();
        let mut tasks = Vec::new();
        // The first `on_streams` agents on report streams, the others by POST.
        let n = if streams { on_streams } else { 0 };
        // Every agent's stream open before the clock starts.
        let mut conns: Vec<RawStream> = futures::stream::iter(0..n)
                .map(|i| {
                    let tokens = tokens.clone();
                    async move { open_stream(api_addr, i, &tokens[i]).await }
                })
                .buffered(256)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_>>()?;
        if n > 0 {
            eprintln!("{n} report streams open after {:.1}s", opening.elapsed().as_secs_f64());
        }
        let start = Instant::now();
        let end = start + warmup + duration;
        // 64 workers, each writing its agents' reports in turn (one per
        // agent per second), as the POST workers do.
        let workers = 64usize.min(n.max(1));
        let mut owned: Vec<Vec<(usize, RawStream)>> = (0..workers).map(|_| Vec::new()).collect();
        for (i, ws) in conns.drain(..).enumerate() {
            owned[i % workers].push((i, ws));
        }
        for (w, mut mine) in owned.into_iter().enumerate().filter(|(_, m)| !m.is_empty()) {
            let (tokens, lat, sent, errors, trace) = (tokens.clone(), lat.clone(), sent.clone(), errors.clone(), trace.clone());
            tasks.push(tokio::spawn(async move {
                let per = Duration::from_secs(1).as_secs_f64() / mine.len() as f64;
                let mut next = start + Duration::from_secs_f64(per * (w as f64 / workers as f64));
                let mut seq = 0u64;
                loop {
                    seq += 1;
                    for (i, ws) in mine.iter_mut() {
                        let i = *i;
                        if Instant::now() >= end {
                            return;
                        }
                        tokio::time::sleep_until(next.into()).await;
                        next += Duration::from_secs_f64(per);
                        if Instant::now() >= end {
                            return;
                        }
                        let peer = i ^ 1;
                        let body = format!(r#"{{"site":"s{i}","seq":{seq},"checks":[{{"name":"web","ok":true,"critical":true,"detail":"status 200","elapsed_ms":1}}],"peers":[{{"site":"s{peer}","results":[{{"name":"web","ok":true,"critical":true,"detail":"status 200","elapsed_ms":1}}]}}]}}"#);
                        let t = Instant::now();
                        let counted = t.duration_since(start) > warmup;
                        let mut ok = ws.frame(0x1, body.as_bytes()).await.is_ok();
                        if ok && (seq + i as u64).is_multiple_of(PING_EVERY) {
                            match ws.ping_through().await {
                                Ok(refused) => {
                                    errors.fetch_add(refused, Ordering::Relaxed);
                                    if counted {
                                        let us = t.elapsed().as_micros() as u64;
                                        lat.lock().unwrap().push(us);
                                        trace.lock().unwrap().push((t.duration_since(start).as_millis() as u64, us));
                                    }
                                }
                                Err(_) => ok = false,
                            }
                        }
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if let Ok(again) = open_stream(api_addr, i, &tokens[i]).await {
                                *ws = again;
                            }
                        } else if counted {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        if n < tokens.len() {
            let workers = if n == 0 { 64usize } else { 8 };
            for w in 0..workers {
                let (client, base, tokens, lat, sent, errors) = (client.clone(), base.clone(), tokens.clone(), lat_post.clone(), sent.clone(), errors.clone());
                tasks.push(tokio::spawn(async move {
                    // Worker w owns sites n+w, n+w+workers, ...; each site reports once per second.
                    let mine: Vec<usize> = (n + w..tokens.len()).step_by(workers).collect();
                    let per = Duration::from_secs(1).as_secs_f64() / mine.len().max(1) as f64;
                    let mut seq = 0u64;
                    let mut conn = raw.then(|| RawConn::new(api_addr));
                    let mut next = Instant::now() + Duration::from_secs_f64(per * (w as f64 / workers as f64));
                    loop {
                        for &i in &mine {
                            if Instant::now() >= end {
                                return;
                            }
                            tokio::time::sleep_until(next.into()).await;
                            next += Duration::from_secs_f64(per);
                            seq += 1;
                            let peer = i ^ 1;
                            let body = format!(r#"{{"site":"s{i}","seq":{seq},"checks":[{{"name":"web","ok":true,"critical":true,"detail":"status 200","elapsed_ms":1}}],"peers":[{{"site":"s{peer}","results":[{{"name":"web","ok":true,"critical":true,"detail":"status 200","elapsed_ms":1}}]}}]}}"#);
                            let t = Instant::now();
                            let ok = if let Some(conn) = conn.as_mut() {
                                conn.post("/v1/reports", &tokens[i], &body).await.is_ok_and(|code| (200..300).contains(&code))
                            } else {
                                match client.post(format!("{base}/v1/reports")).bearer_auth(&tokens[i]).header("content-type", "application/json").body(body).send().await {
                                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                                    _ => false,
                                }
                            };
                            let us = t.elapsed().as_micros() as u64;
                            if !ok {
                                errors.fetch_add(1, Ordering::Relaxed);
                            } else if t.duration_since(start) > warmup {
                                lat.lock().unwrap().push(us);
                                sent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }));
            }
        }
        tokio::time::sleep(warmup).await;
        let w0 = etcd_proposals(&client, etcd_url.as_deref()).await;
        let cpu0 = proc_cpu_ticks(pid).unwrap_or(0);
        let own0 = proc_cpu_ticks(std::process::id()).unwrap_or(0);
        let rss_before = proc_rss_kb(pid).unwrap_or(0);
        let taken0 = reports_taken(&client, &base).await;
        let m0 = Instant::now();
        let m0_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for t in tasks {
            let _ = t.await;
        }
        let measured = m0.elapsed();
        let own = proc_cpu_ticks(std::process::id()).unwrap_or(0) - own0;
        let w1 = etcd_proposals(&client, etcd_url.as_deref()).await;
        let rate = w0.zip(w1).map(|(a, b)| (b - a) / measured.as_secs_f64());
        let taken = reports_taken(&client, &base).await.zip(taken0).map(|(b, a)| b - a);
        Ok::<_, anyhow::Error>((cpu0, rss_before, measured, rate, own, m0_unix_ms, taken))
    })?;
    // The frontend served the whole run (a frontend that died would make
    // every reconciliation fail fast: not the load this bench measures).
    if let Some(status) = fe.0.try_wait()? {
        bail!(
            "the frontend exited during the run ({status}): {}",
            std::fs::read_to_string(dir.join("fe.err")).unwrap_or_default()
        );
    }
    let cpu1 = proc_cpu_ticks(pid)?;
    let speed_after = calibrate();
    let rss = proc_rss_kb(pid)?;
    let metrics = rt.block_on(async {
        client
            .get(format!("{base}/metrics"))
            .bearer_auth("operator-token-load")
            .send()
            .await?
            .text()
            .await
    })?;
    // What the orchestrator recorded during the measured window: with every
    // agent healthy and on time, nothing (an overloaded orchestrator sees
    // agents late and stale, and says so).
    let window_events = rt.block_on(events_since(&client, &base, m0_unix_ms))?;
    let mut l = lat.lock().unwrap().clone();
    l.sort_unstable();
    if let Ok(path) = std::env::var("SAMPLES_FILE") {
        let mut out = String::new();
        for (at, us) in trace.lock().unwrap().iter() {
            writeln!(out, "{at} {us}")?;
        }
        std::fs::write(path, out)?;
    }
    let mut lp = lat_post.lock().unwrap().clone();
    lp.sort_unstable();
    let (l, lp) = if streams { (l, lp) } else { (lp, Vec::new()) };
    let cpu_pct = (cpu1 - cpu0) as f64 / 100.0 / measured.as_secs_f64() * 100.0;
    let rate = sent.load(Ordering::Relaxed) as f64 / measured.as_secs_f64();
    let taken_rate = taken.map(|t| t / measured.as_secs_f64());
    let histogram = |name: &str| -> BTreeMap<String, String> {
        let mut buckets = BTreeMap::new();
        for line in metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}_bucket")))
        {
            if let (Some(le), Some(v)) = (
                line.split("le=\"").nth(1).and_then(|s| s.split('"').next()),
                line.split_whitespace().last(),
            ) {
                buckets.insert(le.to_string(), v.to_string());
            }
        }
        buckets
    };
    let show = |b: &BTreeMap<String, String>| {
        b.iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let buckets = histogram("warden_report_handling_seconds");
    let rounds = histogram("warden_detection_round_seconds");
    println!(
        "protocol: {}",
        if streams {
            "report streams (PROTOCOL=stream)"
        } else {
            "POST per report (PROTOCOL=post)"
        }
    );
    println!(
        "store: {}",
        if etcd_store {
            "etcd (one member on loopback)"
        } else {
            "local (redb)"
        }
    );
    println!();
    println!("| measure | value | goal |");
    println!("|---|---:|---|");
    println!("| groups / sites | {groups} / {sites} | 10,000 / 20,000 |");
    println!(
        "| reports sent per second / taken by the orchestrator per second | {rate:.0} / {} | {sites} |",
        taken_rate.map_or("?".into(), |r| format!("{r:.0}"))
    );
    println!("| report errors | {} | 0 |", errors.load(Ordering::Relaxed));
    println!("| orchestrator CPU (% of one core) | {cpu_pct:.1} | <= 50 |");
    println!(
        "| load generator CPU (% of one core; {}) | {:.1} | |",
        if streams {
            "a report stream per agent"
        } else if raw {
            "POST, plain HTTP/1.1"
        } else {
            "POST, reqwest"
        },
        generator_ticks as f64 / measured.as_secs_f64()
    );
    println!(
        "| orchestrator RSS (MB) | {:.1} (after warm-up {:.1}) | <= 512 |",
        rss as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    println!(
        "| events recorded in the measured window (by kind) | {} | none |",
        if window_events.is_empty() {
            "none".to_string()
        } else {
            window_events
                .iter()
                .map(|(k, (n, first))| format!("{k}: {n} (first: {:?})", first.replace('|', "/")))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "| report round trip p50 / p99 / max (ms){} | {:.2} / {:.2} / {:.2} | p99 <= 5 |",
        if streams {
            ": from a report's write to the pong of the ping after it (1 report in 10)"
        } else {
            ": the POST's request to its answer"
        },
        pct(&l, 0.5) as f64 / 1000.0,
        pct(&l, 0.99) as f64 / 1000.0,
        l.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    if streams {
        println!(
            "| agents on report streams / by POST (8 connections) | {on_streams} / {} | |",
            sites - on_streams
        );
        if !lp.is_empty() {
            println!(
                "| round trip of the POST agents p50 / p99 / max (ms) | {:.2} / {:.2} / {:.2} | p99 <= 5 |",
                pct(&lp, 0.5) as f64 / 1000.0,
                pct(&lp, 0.99) as f64 / 1000.0,
                lp.last().copied().unwrap_or(0) as f64 / 1000.0
            );
        }
    }
    println!(
        "| server-side handling p99 (ms): the smallest histogram bucket holding 99 % | <= {} | (the handler alone; the goal is on the round trip) |",
        p99_bucket(&buckets)
            .map(|s| format!("{:.1}", s * 1000.0))
            .unwrap_or_else(|| "?".into())
    );
    println!(
        "| server-side handling histogram (le → count) | {} | |",
        show(&buckets)
    );
    println!(
        "| detection round histogram, whole run (le → count) | {} | |",
        show(&rounds)
    );
    println!(
        "| machine speed: one JSON report decoded, ns (before / after the load) | {speed_before:.0} / {speed_after:.0} | (lower is faster) |"
    );
    if let Some(r) = etcd_rate {
        println!("| etcd writes (raft proposals committed per second) | {r:.1} | |");
    }
    drop(orch);
    drop(etcd);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The orchestrator's count of reports taken (`warden_agent_reports_total`).
async fn reports_taken(client: &reqwest::Client, base: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth("operator-token-load")
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("warden_agent_reports_total "))
        .and_then(|v| v.trim().parse().ok())
}

/// The upper bound (seconds) of the first histogram bucket that holds 99 %
/// of the observations (`None` without observations or a parsable bucket).
fn p99_bucket(buckets: &BTreeMap<String, String>) -> Option<f64> {
    let total: f64 = buckets.get("+Inf")?.parse().ok()?;
    if total <= 0.0 {
        return None;
    }
    let mut finite: Vec<(f64, f64)> = buckets
        .iter()
        .filter_map(|(le, n)| Some((le.parse().ok()?, n.parse().ok()?)))
        .filter(|(le, _): &(f64, f64)| le.is_finite())
        .collect();
    finite.sort_by(|a, b| a.0.total_cmp(&b.0));
    finite
        .into_iter()
        .find(|&(_, n)| n >= 0.99 * total)
        .map(|(le, _)| le)
}

/// etcd's count of committed raft proposals (every write), from its /metrics.
async fn etcd_proposals(client: &reqwest::Client, url: Option<&str>) -> Option<f64> {
    let text = client
        .get(format!("{}/metrics", url?))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("etcd_server_proposals_committed_total "))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

/// The kinds of the events recorded at or after `since_unix_ms`, counted,
/// each with its first message (every page of `/v1/events`).
async fn events_since(
    client: &reqwest::Client,
    base: &str,
    since_unix_ms: u64,
) -> Result<BTreeMap<String, (u64, String)>> {
    let mut kinds: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut after = 0u64;
    loop {
        let page: Vec<serde_json::Value> = client
            .get(format!("{base}/v1/events?after={after}&limit=10000"))
            .bearer_auth("operator-token-load")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let Some(last) = page.last().and_then(|e| e["id"].as_u64()) else {
            return Ok(kinds);
        };
        for e in &page {
            if e["time_unix_ms"].as_u64().unwrap_or(0) >= since_unix_ms {
                let kind = e["kind"].as_str().unwrap_or("?").to_string();
                // The count, and the first message of the kind (what was seen).
                let slot = kinds.entry(kind).or_insert_with(|| {
                    let msg = e["message"].as_str().unwrap_or("");
                    (0, msg.chars().take(160).collect())
                });
                slot.0 += 1;
            }
        }
        if last <= after {
            return Ok(kinds);
        }
        after = last;
    }
}
