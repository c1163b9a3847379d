//! Failback cut-over benchmark: how long writes are paused when users move
//! between sites with the rsync plan. Planned switchovers a → b → a … across
//! network-namespace hosts (real `warden` binaries, real rsync daemons); right
//! before each, FILES files of 4 KiB are written at the active site, so the
//! final delta pass has work to do. The pause is from the demote of the old
//! active site (writes stop) to the promote of the new one (writes resume);
//! the goal is ≤ 2 s plus the final delta transfer. Prints a table; needs root.
//!
//! `cargo bench --bench cutover` (ROUNDS=6, FILES=500 by default).

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "../tests/failover/deploy.rs"]
#[allow(dead_code)]
mod deploy;

#[path = "../tests/data/site.rs"]
#[allow(dead_code)]
mod site;

use anyhow::{bail, Context, Result};
use lab::secs;
use serde_json::Value;

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(rb: &Value, step: &str, field: &str) -> Result<u64> {
    rb["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == step))
        .and_then(|s| s[field].as_u64())
        .with_context(|| format!("step {step} has no {field}: {rb:#}"))
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let rounds = env_num("ROUNDS", 6);
    let files = env_num("FILES", 500);
    let Some(x) = site::Data::with_failback("keep", "pw-b-right", "manual") else {
        eprintln!("cutover bench skipped: needs root, ip, iptables and rsync");
        return Ok(());
    };
    x.start()?;
    x.wait_same(secs(30))?;
    let blob = "w".repeat(4096);
    println!("| round | move | files written just before | final pass + verify (ms) | writes paused: demote → promoted (ms) | pause − final pass (ms) | users moved: demote → switch done (ms) |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut extra = Vec::new();
    for round in 0..rounds {
        let (from, to) = if round % 2 == 0 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        for i in 0..files {
            x.write(from, &format!("r{round}/{i:05}.dat"), &blob)?;
        }
        x.d.cli_ok(&["switchover", "web", "--to", to])?;
        let rb = lab::eventually(secs(120), secs(0.2), || {
            let rbs = x.d.runbooks()?;
            let rb = rbs
                .iter()
                .rev()
                .find(|r| r["kind"] == "switchover")
                .cloned()
                .context("no runbook")?;
            if rb["to"] == to && rb["status"] == "succeeded" {
                Ok(rb)
            } else if rb["to"] == to && rb["status"] == "failed" {
                bail!("switchover failed: {rb:#}")
            } else {
                bail!("not done")
            }
        })?;
        let demote = ms(&rb, "demote", "started_unix_ms")?;
        let fin =
            ms(&rb, "final_sync", "finished_unix_ms")? - ms(&rb, "final_sync", "started_unix_ms")?;
        let promoted = ms(&rb, "promote", "finished_unix_ms")?;
        let switched = ms(&rb, "switch", "finished_unix_ms")?;
        let pause = promoted - demote;
        extra.push(pause.saturating_sub(fin));
        println!(
            "| {} | {from} → {to} | {files} | {fin} | {pause} | {} | {} |",
            round + 1,
            pause.saturating_sub(fin),
            switched - demote
        );
        x.wait_same(secs(60))?;
    }
    extra.sort();
    println!(
        "\nwrites paused beyond the final pass: median {} ms, max {} ms (goal ≤ 2000 ms)",
        extra[extra.len() / 2],
        extra[extra.len() - 1]
    );
    Ok(())
}
