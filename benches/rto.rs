//! RTO benchmark: failover drills of the `frontend` scheme across
//! network-namespace hosts (interval 250 ms, fall 3), two cases side by side
//! in one run: the primary's **service** is killed (goal: median ≤ 700 ms),
//! and the primary's **whole site** is lost (its link down: service, agent
//! and every packet; goal: median ≤ 1000 ms). A client inside the lab
//! requests through the frontend every 50 ms; the outage is from the fault
//! to the first successful answer from the standby. Prints a table; needs
//! root.
//!
//! `cargo bench --bench rto` (DRILLS=N per case, default 10).

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "../tests/failover/deploy.rs"]
#[allow(dead_code)]
mod deploy;

use std::time::Instant;

use anyhow::Result;
use deploy::{Deployment, Knobs, HOSTS};
use lab::secs;
use lab::Deploy;

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list
    }
    let drills: usize = std::env::var("DRILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let Some(lab) = lab::Lab::new_or_skip(HOSTS) else {
        eprintln!("rto bench skipped: needs root, ip and iptables");
        return Ok(());
    };
    let d = Deployment::new(
        lab,
        Knobs {
            hold_down: "1s",
            max_failovers: 1000,
            ..Knobs::default()
        },
    )?;
    d.start_all()?;
    let mut all = Vec::new();
    for case in ["service", "whole site"] {
        all.push((case, drills_of(&d, case, drills)?));
    }
    println!("| case | drill | client outage (ms) | orchestrator RTO (ms) |");
    println!("|---|---:|---:|---:|");
    for (case, rows) in &all {
        for (i, o, r) in rows {
            println!("| {case} | {i} | {o} | {r} |");
        }
    }
    println!();
    println!("| case | median client outage (ms) | worst (ms) | drills | goal |");
    println!("|---|---:|---:|---:|---|");
    for (case, rows) in &all {
        let mut outs: Vec<u64> = rows.iter().map(|r| r.1).collect();
        outs.sort_unstable();
        let median = if outs.len() % 2 == 1 {
            outs[outs.len() / 2]
        } else {
            (outs[outs.len() / 2 - 1] + outs[outs.len() / 2]) / 2
        };
        let goal = if *case == "service" { 700 } else { 1000 };
        println!(
            "| {case} | {median} | {} | {} | <= {goal} |",
            outs.last().copied().unwrap_or(0),
            rows.len()
        );
    }
    Ok(())
}

/// `drills` drills of one case: (drill, client outage ms, orchestrator RTO ms).
fn drills_of(d: &Deployment, case: &str, drills: usize) -> Result<Vec<(usize, u64, u64)>> {
    let mut rows = Vec::new();
    for i in 1..=drills {
        d.wait_users_on("a", secs(60))?;
        d.wait_verdict("a", "healthy", secs(30))?;
        d.wait_verdict("b", "healthy", secs(30))?;
        lab::eventually(secs(30), secs(0.2), || {
            anyhow::ensure!(d.group()?["phase"] == "steady", "not steady");
            Ok(())
        })?;
        let client = d
            .lab
            .client_loop("cli", &d.entry_url(), secs(0.05), secs(1))?;
        std::thread::sleep(secs(1));
        let killed = Instant::now();
        if case == "service" {
            d.lab.kill("svc-a")?;
        } else {
            d.lab.link_down("a")?;
        }
        d.wait_users_on("b", secs(60))?;
        std::thread::sleep(secs(0.5));
        let samples = client.stop();
        // The first answer from b after the fault (a request sent just
        // before it may be the one: the frontend moves it at the switch).
        let first_b = samples
            .iter()
            .find(|s| s.at + s.latency >= killed && s.result.as_deref().map(str::trim) == Ok("b"))
            .map(|s| s.at + s.latency);
        let outage = first_b
            .map(|t| t.duration_since(killed))
            .unwrap_or_default();
        let rbs = d.runbooks()?;
        let rto = rbs.last().and_then(|r| r["rto_ms"].as_u64()).unwrap_or(0);
        rows.push((i, outage.as_millis() as u64, rto));
        eprintln!(
            "{case} drill {i}: client outage {} ms, orchestrator RTO {rto} ms",
            outage.as_millis()
        );
        // Fail back (hold_down 1s) before the next drill.
        if case == "service" {
            d.start_service("a")?;
        } else {
            d.lab.link_up("a")?;
        }
    }
    Ok(rows)
}
