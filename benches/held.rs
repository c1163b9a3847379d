//! Failed requests seen by users during a failover and a planned switchover
//! (issue 15): a client on the lab's client host opens a new connection
//! through the built-in frontend every 50 ms, each request with a 3 s
//! budget and independent of the others (a held one delays no one else).
//! Side by side in one run, a fresh deployment each: `hold_connections =
//! "2s"` with `connect_retry = "300ms"` (refused users also wait for the
//! first hold order), `hold_connections = "2s"` alone (the defaults), and
//! `"0s"` (holding off, as before). Each drill: kill a's service (SIGKILL;
//! interval 250 ms, fall 3) → failover to b; a back, switch over to a; then
//! a planned switchover a → b whose demote stops a's service and whose
//! promote at b takes 500 ms. Failures are counted from the kill, and from
//! the switchover order, until users are on b plus 500 ms. Needs root.
//!
//! `cargo bench --bench held` (DRILLS=N, default 3).

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "../tests/failover/deploy.rs"]
#[allow(dead_code)]
mod deploy;

use std::time::Instant;

use anyhow::{bail, Result};
use deploy::{Deployment, Knobs, HOSTS};
use lab::secs;
use lab::Deploy;

/// Failed and total requests started at or after `from`.
fn failed(samples: &[lab::Sample], from: Instant) -> (usize, usize) {
    let after: Vec<_> = samples
        .iter()
        .filter(|s| s.at + s.latency >= from)
        .collect();
    (after.iter().filter(|s| !s.is_ok()).count(), after.len())
}

fn switched(d: &Deployment, to: &str, nth: usize) -> Result<()> {
    lab::eventually(secs(30), secs(0.2), || {
        let rbs = d.runbooks()?;
        let done = rbs
            .iter()
            .filter(|r| r["kind"] == "switchover" && r["to"] == to && r["status"] == "succeeded")
            .count();
        if done >= nth {
            Ok(())
        } else {
            bail!("switchover to {to} not done")
        }
    })
}

/// a's service back, then a switchover to a once a counts as recovered for
/// the `recovered`-th time (rise and hold_down: a switchover to a site still
/// confirmed down is refused); `to_a`: switchovers to a so far, this one included.
fn back_to_a(d: &Deployment, recovered: usize, to_a: usize) -> Result<()> {
    d.start_service("a")?;
    d.wait_verdict("a", "healthy", secs(30))?;
    lab::eventually(secs(30), secs(0.2), || {
        let n = d
            .events_of("site_recovered")?
            .iter()
            .filter(|e| e["site"] == "a")
            .count();
        anyhow::ensure!(n >= recovered, "a not recovered yet");
        Ok(())
    })?;
    lab::eventually(secs(30), secs(0.2), || {
        anyhow::ensure!(d.group()?["phase"] == "steady", "not steady");
        Ok(())
    })?;
    d.cli_ok(&["switchover", "web", "--to", "a"])?;
    switched(d, "a", to_a)?;
    d.wait_users_on("a", secs(30))?;
    d.wait_verdict("b", "healthy", secs(30))
}

/// One deployment with the frontend settings `setting` (TOML lines of
/// `[groups.web.frontend]`); per drill (failover failed, total, switchover
/// failed, total).
fn run(setting: &str, drills: usize) -> Result<Vec<(usize, usize, usize, usize)>> {
    let Some(lab) = lab::Lab::new_or_skip(HOSTS) else {
        bail!("held bench skipped: needs root, ip and iptables");
    };
    let pidfile = lab.dir().join("svc-a.pid");
    let d = Deployment::new(
        lab,
        Knobs {
            failback: "manual",
            hold_down: "1s",
            max_failovers: 1000,
            demote_a: format!("kill $(cat {}) || true", pidfile.display()),
            promote_b: "sleep 0.5".into(),
            extra: format!("{}\n", setting.replace(", ", "\n")),
            ..Knobs::default()
        },
    )?;
    d.start_all()?;
    let mut rows = Vec::new();
    let mut to_a = 0;
    let mut to_b = 0;
    for i in 1..=drills {
        // Failover: a's service killed (no pid file: the fence's demote kills nothing).
        let client =
            lab::ClientLoop::start_overlapping(&d.lab, "cli", &d.entry_url(), secs(0.05), secs(3))?;
        std::thread::sleep(secs(1));
        let killed = Instant::now();
        d.lab.kill("svc-a")?;
        d.wait_users_on("b", secs(60))?;
        std::thread::sleep(secs(0.5));
        let (f1, n1) = failed(&client.stop(), killed);

        // Back to a (not measured).
        to_a += 1;
        back_to_a(&d, 2 * i - 1, to_a)?;

        // Planned switchover a → b: the demote stops a's service.
        std::fs::write(&pidfile, d.lab.pid("svc-a")?.to_string())?;
        let client =
            lab::ClientLoop::start_overlapping(&d.lab, "cli", &d.entry_url(), secs(0.05), secs(3))?;
        std::thread::sleep(secs(1));
        let ordered = Instant::now();
        d.cli_ok(&["switchover", "web", "--to", "b"])?;
        to_b += 1;
        switched(&d, "b", to_b)?;
        d.wait_users_on("b", secs(30))?;
        std::thread::sleep(secs(0.5));
        let (f2, n2) = failed(&client.stop(), ordered);
        std::fs::remove_file(&pidfile)?;
        eprintln!("{setting} drill {i}: failover {f1}/{n1} failed, switchover {f2}/{n2} failed");
        rows.push((f1, n1, f2, n2));

        // a back and active again for the next drill.
        to_a += 1;
        back_to_a(&d, 2 * i, to_a)?;
    }
    Ok(rows)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list
    }
    let drills: usize = std::env::var("DRILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut all = Vec::new();
    for setting in [
        "hold_connections = \"2s\", connect_retry = \"300ms\"",
        "hold_connections = \"2s\"",
        "hold_connections = \"0s\"",
    ] {
        match run(setting, drills) {
            Ok(rows) => all.push((setting, rows)),
            Err(e) if e.to_string().contains("skipped") => {
                eprintln!("{e}");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    println!("| frontend settings | drill | failover: failed / requests | switchover: failed / requests |");
    println!("|---|---:|---:|---:|");
    for (setting, rows) in &all {
        for (i, (f1, n1, f2, n2)) in rows.iter().enumerate() {
            println!("| `{setting}` | {} | {f1} / {n1} | {f2} / {n2} |", i + 1);
        }
    }
    println!();
    for (setting, rows) in &all {
        let f1: usize = rows.iter().map(|r| r.0).sum();
        let n1: usize = rows.iter().map(|r| r.1).sum();
        let f2: usize = rows.iter().map(|r| r.2).sum();
        let n2: usize = rows.iter().map(|r| r.3).sum();
        println!(
            "{setting}: failover {f1} of {n1} requests failed, switchover {f2} of {n2} ({} drills)",
            rows.len()
        );
    }
    Ok(())
}
