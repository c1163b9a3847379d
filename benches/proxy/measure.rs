//! One measured run of the proxy bench: `wrk` against a target, the
//! target process's CPU from /proc, and with `PERF=1` its system calls and
//! context switches from `perf stat -p`, each per request.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

/// CPU time of a process in clock ticks: (user, system).
pub(crate) fn cpu_split(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.get(11)?.parse::<u64>().ok()?,
        f.get(12)?.parse::<u64>().ok()?,
    ))
}

/// One wrk run.
pub(crate) struct Run {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
    /// CPU of the proxy process, in % of one core (None for the direct run).
    pub(crate) cpu: Option<f64>,
    /// With `PERF=1`: the proxy's counts over the run, per request, by event.
    pub(crate) perf: Vec<(String, f64)>,
}

/// The events `PERF=1` counts: every system call, the ones a proxy's loop
/// is made of, and context switches.
pub(crate) const PERF_EVENTS: &[&str] = &[
    "raw_syscalls:sys_enter",
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_epoll_pwait",
    "syscalls:sys_enter_epoll_ctl",
    "syscalls:sys_enter_read",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_enter_write",
    "syscalls:sys_enter_sendto",
    "syscalls:sys_enter_writev",
    "syscalls:sys_enter_futex",
    "syscalls:sys_enter_accept4",
    "syscalls:sys_enter_connect",
    "syscalls:sys_enter_close",
    "syscalls:sys_enter_setsockopt",
    "syscalls:sys_enter_getsockopt",
    "syscalls:sys_enter_shutdown",
    "syscalls:sys_enter_socket",
    "context-switches",
];

/// `perf stat -x,` output: event name → count.
pub(crate) fn parse_perf(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let count = f.first()?.trim().parse::<f64>().ok()?;
            let name = f.get(2)?.trim();
            let short = name
                .strip_prefix("syscalls:sys_enter_")
                .or_else(|| {
                    name.strip_prefix("raw_syscalls:sys_enter")
                        .map(|_| "all syscalls")
                })
                .unwrap_or(name);
            Some((short.to_string(), count))
        })
        .collect()
}

fn parse_latency_ms(s: &str) -> Option<f64> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))?;
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> Result<(f64, f64, f64, u64)> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut errors = 0;
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = t.strip_prefix("50%") {
            p50 = parse_latency_ms(v.trim());
        } else if let Some(v) = t.strip_prefix("99%") {
            p99 = parse_latency_ms(v.trim());
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    match (rps, p50, p99) {
        (Some(r), Some(a), Some(b)) => Ok((r, a, b, errors)),
        _ => bail!("cannot read wrk's output:\n{out}"),
    }
}

pub(crate) async fn wrk(
    addr: SocketAddr,
    close: bool,
    secs: u64,
    threads: u32,
    conns: u32,
    pid: Option<u32>,
) -> Result<Run> {
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency");
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(format!("http://{addr}/"));
    // PERF=1: count the proxy's system calls over all but the run's last
    // second (perf must end before wrk does: its count is per second of
    // load, turned into per request with wrk's requests/s).
    let perf_secs = secs.saturating_sub(1).max(1);
    let perf = match pid {
        Some(pid) if std::env::var("PERF").as_deref() == Ok("1") => Some(
            tokio::process::Command::new("perf")
                .args(["stat", "-x,", "-e", &PERF_EVENTS.join(",")])
                .args([
                    "-p",
                    &pid.to_string(),
                    "--",
                    "sleep",
                    &perf_secs.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("run perf stat (PERF=1; apt-get install -y linux-perf)")?,
        ),
        _ => None,
    };
    let before = pid.and_then(cpu_split);
    let t0 = std::time::Instant::now();
    let out = cmd.output().await.context("run wrk")?;
    let wall = t0.elapsed().as_secs_f64();
    let after = pid.and_then(cpu_split);
    let perf = match perf {
        Some(p) => {
            let o = p.wait_with_output().await.context("perf stat")?;
            parse_perf(&String::from_utf8_lossy(&o.stderr))
        }
        None => Vec::new(),
    };
    if !out.status.success() {
        bail!(
            "wrk failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (rps, p50_ms, p99_ms, errors) = parse_wrk(&text)?;
    // Clock ticks are 100 per second on Linux.
    let cpu = match (before, after) {
        (Some(b), Some(a)) => Some(((a.0 + a.1) - (b.0 + b.1)) as f64 / 100.0 / wall * 100.0),
        _ => None,
    };
    let mut perf: Vec<(String, f64)> = perf
        .into_iter()
        .map(|(name, count)| (name, count / (rps * perf_secs as f64)))
        .collect();
    // With the counts, the CPU split: user and system µs per request.
    if let (false, Some(b), Some(a)) = (perf.is_empty(), before, after) {
        let per_req = |ticks: u64| ticks as f64 / 100.0 * 1e6 / (rps * wall);
        perf.push(("user µs".into(), per_req(a.0 - b.0)));
        perf.push(("system µs".into(), per_req(a.1 - b.1)));
    }
    Ok(Run {
        rps,
        p50_ms,
        p99_ms,
        errors,
        cpu,
        perf,
    })
}
