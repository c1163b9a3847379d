//! DNS benchmark, against real BIND9 and real Knot DNS.
//!
//! 1. Update latency: 20 switches of a record between two addresses through
//!    the rfc2136 provider (TSIG, compare-and-set), each timed from the
//!    decision (the call to `activate`) to the authoritative answer (AA bit)
//!    showing the new address. Loopback.
//! 2. Client-observed outage, TTL 5 s: failover drills of a `dns` group
//!    across network-namespace hosts (interval 250 ms, fall 3); the primary's
//!    service is killed while `warden probe` in DNS mode (a TTL-honouring
//!    resolver) requests every 100 ms from the users' host. Each drill kills
//!    the service at a different age of the probe's cached answer (0.5 s to
//!    TTL), so the table spans the best and the worst case of DNS caching.
//!
//! `cargo bench --bench dns` (SWITCHES=N, DRILLS=N; needs root for part 2).

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "../tests/dnsd/mod.rs"]
mod dnsd;

#[path = "../tests/dns/deploy.rs"]
#[allow(dead_code)]
mod deploy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dnsd::{Kind, Zone};
use lab::secs;
use lab::Deploy;
use serde_json::Value;
use warden_strategies::dns::query::address_records;
use warden_strategies::dns::rfc2136::{Rfc2136Provider, TsigKey};
use warden_strategies::dns::{DnsStrategy, RecordValue};
use warden_strategies::{SiteRoute, Strategy, SwitchMode};

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    warden_testkit::net::daemon_port()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Part 1 for one server: switch times in ms.
fn update_latency(kind: Kind, switches: usize) -> Result<Vec<f64>> {
    let dir = tempfile::tempdir()?;
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let name = "app.dr.example.test";
    let zone = Zone {
        origin: "dr.example.test".into(),
        ttl: 5,
        records: vec![
            ("ns1".into(), "A".into(), "127.0.0.1".into()),
            ("app".into(), "A".into(), "127.0.0.11".into()),
        ],
    };
    let prep = dnsd::prepare(kind, dir.path(), listen, &zone)?;
    let mut child = Command::new(&prep.argv[0])
        .args(&prep.argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", kind.binary()))?;
    let result = (|| -> Result<Vec<f64>> {
        let t0 = Instant::now();
        while dnsd::dig(listen, name, "A").unwrap_or_default() != "127.0.0.11" {
            if t0.elapsed() > secs(10) {
                bail!("{} did not start", kind.binary());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async {
            let key = TsigKey::parse(&std::fs::read_to_string(&prep.key_file)?, None, None)
                .map_err(anyhow::Error::msg)?;
            let provider = Rfc2136Provider::new(
                "bench",
                listen,
                "dr.example.test",
                &[name.to_string()],
                5,
                key,
                Duration::from_secs(2),
            )?;
            let sites = BTreeMap::from([
                (
                    "a".to_string(),
                    RecordValue::parse("127.0.0.11").map_err(anyhow::Error::msg)?,
                ),
                (
                    "b".to_string(),
                    RecordValue::parse("127.0.0.12").map_err(anyhow::Error::msg)?,
                ),
            ]);
            let st = DnsStrategy::new(
                "bench",
                vec![name.to_string()],
                sites.clone(),
                vec![listen],
                Duration::from_secs(2),
                Arc::new(provider),
            );
            let mut out = Vec::new();
            for i in 0..switches {
                let site = if i % 2 == 0 { "b" } else { "a" };
                let want = sites[site];
                let t = Instant::now();
                st.activate(
                    &SiteRoute {
                        site: site.into(),
                        mode: SwitchMode::Immediate,
                    },
                    (i + 2) as u64,
                )
                .await?;
                loop {
                    let a = address_records(listen, name, true, false, Duration::from_secs(1))
                        .await
                        .map_err(anyhow::Error::msg)?;
                    if a.authoritative && a.value == want {
                        break;
                    }
                    if t.elapsed() > secs(10) {
                        bail!("switch {i} not visible after 10 s");
                    }
                }
                out.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(out)
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Part 2 for one server: outage per drill in ms, as `warden probe` saw it.
fn client_outage(kind: Kind, drills: usize) -> Result<Option<Vec<f64>>> {
    let Some(d) = deploy::Dep::new(kind, 5, "1s") else {
        return Ok(None);
    };
    d.start_all()?;
    let mut out = Vec::new();
    for i in 0..drills {
        d.wait_users_on("a", secs(60))?;
        d.wait_verdict("a", "healthy", secs(30))?;
        d.wait_verdict("b", "healthy", secs(30))?;
        // Users' caches hold a's address (TTL 5 s) before the drill starts.
        let name = format!("probe{i}");
        d.lab.spawn(
            "cli",
            &name,
            deploy::WARDEN,
            [
                "probe",
                &format!("http://{}:{}/", deploy::NAME, deploy::SVC_PORT),
                "--resolver",
                &d.server.listen.to_string(),
                "--interval",
                "100ms",
                "--timeout",
                "500ms",
                "--json",
            ],
        )?;
        // Users resolved at different moments: the drill's kill comes
        // `offset` after the probe's first resolution, so the cached answer
        // still has TTL − offset to live (spread over the TTL across drills).
        let offset = 0.5 + (d.ttl_s as f64 - 0.5) * i as f64 / drills.max(1) as f64;
        std::thread::sleep(secs(offset));
        d.lab.kill("svc-a")?;
        d.wait_users_on("b", secs(60))?;
        // Let the probe's cached answer for a expire so it records the end of the outage.
        std::thread::sleep(secs(d.ttl_s as f64 + 1.0));
        d.lab.stop(&name)?;
        let log = d.lab.log(&name);
        let rep: Value = log
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .context("probe report")?;
        let ms = rep["longest_outage_ms"].as_u64().context("outage")? as f64;
        eprintln!(
            "{} drill {}: cache age at the kill {offset:.1} s, client outage {ms} ms",
            kind.label(),
            i + 1
        );
        out.push(ms);
        d.start_service("a")?;
    }
    Ok(Some(out))
}

fn row(label: &str, v: &mut [f64]) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} |",
        v.len(),
        pct(v, 0.5),
        pct(v, 0.95),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list
    }
    let switches = env_n("SWITCHES", 20);
    let drills = env_n("DRILLS", 6);
    let mut update = Vec::new();
    let mut outage = Vec::new();
    for kind in [Kind::Bind, Kind::Knot] {
        if !dnsd::have(kind) {
            eprintln!("{} not installed: skipped", kind.binary());
            continue;
        }
        update.push((kind, update_latency(kind, switches)?));
        if let Some(o) = client_outage(kind, drills)? {
            outage.push((kind, o));
        }
    }
    println!();
    println!("Decision → authoritative answer changed (rfc2136 + TSIG, loopback), ms:");
    println!();
    println!("| server | switches | p50 | p95 | max |");
    println!("|---|---|---|---|---|");
    for (k, v) in &mut update {
        row(k.label(), v);
    }
    println!();
    println!("Client-observed outage, TTL 5 s, detection interval 250 ms × fall 3 (goal ≤ 5 + 0.75 + 1 = 6.75 s), ms:");
    println!();
    println!("| server | drills | p50 | p95 | max |");
    println!("|---|---|---|---|---|");
    for (k, v) in &mut outage {
        row(k.label(), v);
    }
    Ok(())
}
