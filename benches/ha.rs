//! HA benchmark on the `tests/ha` deployment (three etcd members, three
//! orchestrator nodes on hosts a, b and w; lease TTL 2 s; detection interval
//! 250 ms, fall 3):
//!
//! 1. leader change: SIGKILL of the leading orchestrator → another node
//!    answers 200 on `/v1/leader` (it loaded the state and holds the
//!    licence), DRILLS times;
//! 2. site loss: site a's host is cut off entirely (service, agent,
//!    orchestrator, etcd member) → first answer from b through the frontend,
//!    DRILLS times with the leader at a and DRILLS times with it at w,
//!    alternating; the group is failed back between drills.
//!
//! Prints tables; needs root, etcd and etcdctl.
//! `cargo bench --bench ha` (DRILLS=N to change the count, default 10).

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "../tests/ha/deploy.rs"]
#[allow(dead_code)]
mod deploy;

use std::time::{Duration, Instant};

use anyhow::Result;
use deploy::{Ha, LEASE_TTL, NODES};
use lab::{secs, Deploy};

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// Make `host`'s node the leader: the others are restarted after it won.
fn make_leader(d: &Ha, host: &str) -> Result<()> {
    if d.leaders_now(NODES) == [host.to_string()] {
        return Ok(());
    }
    let others: Vec<&str> = NODES.iter().copied().filter(|h| *h != host).collect();
    for h in &others {
        d.lab.kill(&format!("orch-{h}"))?;
    }
    d.wait_leader(&[host], secs(20))?;
    for h in &others {
        d.start_orchestrator(h)?;
    }
    Ok(())
}

/// Users back on a with every site healthy and the group steady.
fn settle_on_a(d: &Ha) -> Result<()> {
    d.wait_verdict("a", "healthy", secs(60))?;
    d.wait_verdict("b", "healthy", secs(60))?;
    let g = d.wait_group("steady", secs(60), |g| g["phase"] == "steady")?;
    if g["active"] != "a" {
        // Refused (409) while a is still confirmed down (hold-down).
        lab::eventually(secs(60), secs(0.5), || {
            if d.group()?["active"] == "a" {
                return Ok(());
            }
            d.operator().cli_ok(&["failback", "web"]).map(|_| ())
        })?;
    }
    d.wait_users_on("a", secs(60))?;
    d.wait_group("steady on a", secs(60), |g| {
        g["phase"] == "steady" && g["active"] == "a"
    })?;
    Ok(())
}

fn site_loss(d: &Ha, leader: &str) -> Result<u64> {
    make_leader(d, leader)?;
    settle_on_a(d)?;
    let client = d
        .lab
        .client_loop("ctl", &d.entry_url(), secs(0.05), secs(1))?;
    std::thread::sleep(secs(1));
    d.lab.link_down("a")?;
    let lost = Instant::now();
    d.wait_users_on("b", secs(60))?;
    std::thread::sleep(secs(0.3));
    let samples = client.stop();
    let first_b = samples
        .iter()
        .find(|s| s.at >= lost && s.result.as_deref().map(str::trim) == Ok("b"))
        .map(|s| (s.at + s.latency).duration_since(lost))
        .unwrap_or_default();
    d.lab.link_up("a")?;
    Ok(first_b.as_millis() as u64)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list
    }
    let drills: usize = std::env::var("DRILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let Some(d) = Ha::with_budget("true", 1000) else {
        eprintln!("ha bench skipped: needs root, ip, iptables, etcd");
        return Ok(());
    };
    d.start_all("a")?;

    // 1. Leader change.
    let mut changes = Vec::new();
    for i in 1..=drills {
        let leader = d.wait_leader(NODES, secs(20))?;
        let others: Vec<&str> = NODES.iter().copied().filter(|h| *h != leader).collect();
        let killed = Instant::now();
        d.lab.kill(&format!("orch-{leader}"))?;
        let next = d.wait_leader(&others, secs(20))?;
        let took = killed.elapsed();
        eprintln!("leader change {i}: o-{leader} killed, o-{next} leads after {took:?}");
        d.start_orchestrator(&leader)?;
        changes.push((i, leader, next, took.as_millis() as u64));
        std::thread::sleep(secs(0.5));
    }

    // 2. Site loss, leader at the lost site or elsewhere, alternating.
    let mut with_leader = Vec::new();
    let mut elsewhere = Vec::new();
    for i in 1..=drills {
        let a = site_loss(&d, "a")?;
        eprintln!("site loss {i}, leader at a: users on b after {a} ms");
        with_leader.push(a);
        let w = site_loss(&d, "w")?;
        eprintln!("site loss {i}, leader at w: users on b after {w} ms");
        elsewhere.push(w);
    }

    let interval = Duration::from_millis(250);
    println!("### Leader change (SIGKILL of the leader → another node leads)");
    println!();
    println!("| drill | killed | new leader | time (ms) |");
    println!("|---:|---|---|---:|");
    for (i, l, n, ms) in &changes {
        println!("| {i} | o-{l} | o-{n} | {ms} |");
    }
    let ms: Vec<u64> = changes.iter().map(|c| c.3).collect();
    println!();
    println!(
        "median {} ms, worst {} ms over {} drills (goal: <= lease TTL {} ms + one interval {} ms = {} ms)",
        median(&ms),
        ms.iter().max().copied().unwrap_or(0),
        ms.len(),
        LEASE_TTL.as_millis(),
        interval.as_millis(),
        (LEASE_TTL + interval).as_millis()
    );
    println!();
    println!("### Site a lost (host cut off) → first answer from b");
    println!();
    println!("| drill | leader at a (ms) | leader at w (ms) |");
    println!("|---:|---:|---:|");
    for (i, (a, w)) in with_leader.iter().zip(&elsewhere).enumerate() {
        println!("| {} | {a} | {w} |", i + 1);
    }
    let (ma, mw) = (median(&with_leader), median(&elsewhere));
    let goal = LEASE_TTL + interval * 3 + Duration::from_secs(1);
    println!();
    println!(
        "median with the leader at a {ma} ms, elsewhere {mw} ms (ratio {:.2}); goal: <= TTL + fall x interval + 1 s = {} ms, and within 2x",
        ma as f64 / mw.max(1) as f64,
        goal.as_millis()
    );
    Ok(())
}
