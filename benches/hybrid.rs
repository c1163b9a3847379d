//! Hybrid benchmark: client-observed outage of a `hybrid` group across
//! network-namespace hosts (sites a, b; frontends fe1, fe2; real BIND9 on
//! `dns`, TTL 5 s; detection interval 250 ms × fall 3). `warden probe` in DNS
//! mode (a TTL-honouring resolver) requests `http://NAME:8000/` every 100 ms
//! from the users' host; each drill runs on a fresh deployment.
//!
//! 1. site a dies (service and agent killed): the frontends move to b, DNS
//!    is unchanged (goal ≤ 1 s);
//! 2. fe1's host dies (all its packets dropped): DNS moves to fe2 (goal ≤
//!    TTL + detection + 1 s = 5 + 0.75 + 1 s).
//!
//! `cargo bench --bench hybrid` (DRILLS=N, default 10; needs root and BIND).

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "../tests/dnsd/mod.rs"]
mod dnsd;

#[path = "../tests/hybrid/deploy.rs"]
#[allow(dead_code)]
mod deploy;

use anyhow::{Context, Result};
use lab::secs;
use serde_json::Value;

const TTL_S: u64 = 5;

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    SiteDown,
    FrontendDown,
}

/// One drill on a fresh deployment: the longest outage `warden probe` saw, in ms.
fn drill(case: Case) -> Result<Option<f64>> {
    let Some(d) = deploy::Dep::new(TTL_S) else {
        return Ok(None);
    };
    d.start_all()?;
    d.lab.spawn(
        "cli",
        "probe",
        deploy::WARDEN,
        [
            "probe",
            &format!("http://{}:{}/", deploy::NAME, deploy::ENTRY_PORT),
            "--resolver",
            &d.server.listen.to_string(),
            "--interval",
            "100ms",
            "--timeout",
            "500ms",
            "--json",
        ],
    )?;
    std::thread::sleep(secs(2));
    match case {
        Case::SiteDown => {
            d.kill_site("a")?;
            d.wait_users_on("b", secs(60))?;
            std::thread::sleep(secs(1));
        }
        Case::FrontendDown => {
            d.kill_frontend_host("fe1")?;
            d.wait_dns_on("fe2", secs(60))?;
            // The probe's cached answer (fe1) expires after the TTL.
            std::thread::sleep(secs(TTL_S as f64 + 1.5));
        }
    }
    d.lab.stop("probe")?;
    let log = d.lab.log("probe");
    let rep: Value = log
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("probe report")?;
    anyhow::ensure!(
        rep["last_answer"] == "a" || rep["last_answer"] == "b",
        "probe ended without an answer: {rep}"
    );
    Ok(Some(
        rep["longest_outage_ms"].as_u64().context("outage")? as f64
    ))
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list
    }
    let drills = env_n("DRILLS", 10);
    let mut rows = Vec::new();
    for (case, label, goal) in [
        (Case::SiteDown, "1. site a dies", "≤ 1000"),
        (
            Case::FrontendDown,
            "2. fe1's host dies",
            "≤ 6750 (TTL 5 s + 0.75 s + 1 s)",
        ),
    ] {
        let mut v = Vec::new();
        for i in 0..drills {
            match drill(case)? {
                Some(ms) => {
                    eprintln!("{label}, drill {}: client outage {ms} ms", i + 1);
                    v.push(ms);
                }
                None => {
                    eprintln!("lab or BIND unavailable: skipped");
                    return Ok(());
                }
            }
        }
        v.sort_by(|a, b| a.total_cmp(b));
        rows.push((label, goal, v));
    }
    println!();
    println!("Client-observed outage of a hybrid group (TTL 5 s, interval 250 ms × fall 3), ms:");
    println!();
    println!("| case | drills | p50 | p95 | max | goal |");
    println!("|---|---|---|---|---|---|");
    for (label, goal, v) in &rows {
        println!(
            "| {label} | {} | {:.0} | {:.0} | {:.0} | {goal} |",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.95),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
