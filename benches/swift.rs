//! Swift replication benchmark: a burst of small objects written at cluster
//! A, and the time until all of them are at cluster B. warden's
//! `SwiftReplicator` (poll interval 1 s, 16 copies at once) against Swift's
//! own container sync (`swift-container-sync` daemon, interval 1 s, set up by
//! warden's `SwiftContainerSync`), on the same pair of real clusters on
//! 127.0.0.1 (started by `scripts/swift-clusters.sh`, stopped at the end).
//! Prints one table.
//!
//! `cargo bench --bench swift` (needs Debian's Swift packages and root;
//! OBJECTS=1000 by default). Each plan gets its own fresh container; the
//! writer is the same (16 PUTs at once) and the clock starts with the burst.

#[path = "../agents/tests/swiftd/mod.rs"]
mod swiftd;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    ContainerSyncSettings, Replicator, SwiftClient, SwiftContainerSync, SwiftReplicator,
    SwiftReplicatorSettings,
};
use warden_config::Secret;

const LIMIT: Duration = Duration::from_secs(600);

struct Run {
    plan: &'static str,
    write: Duration,
    all_at_b: Duration,
}

async fn count(c: &SwiftClient, container: &str) -> Result<usize> {
    Ok(c.list_objects(container)
        .await?
        .map(|l| l.len())
        .unwrap_or(0))
}

/// Writes `n` objects at A (16 at once), then waits until B lists all of them.
async fn burst(
    a: Arc<SwiftClient>,
    b: &SwiftClient,
    container: &str,
    n: usize,
) -> Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let puts = futures::stream::iter(0..n)
        .map(|i| {
            let a = a.clone();
            let container = container.to_string();
            async move {
                a.put_object(
                    &container,
                    &format!("obj{i:05}"),
                    format!("payload {i}\n").into_bytes().into(),
                    "text/plain",
                    &BTreeMap::new(),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for r in puts {
        r?;
    }
    let write = t0.elapsed();
    loop {
        let got = count(b, container).await?;
        if got >= n {
            return Ok((write, t0.elapsed()));
        }
        if t0.elapsed() > LIMIT {
            bail!("only {got} of {n} objects at B after {LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_container(c: &SwiftClient, container: &str) -> Result<()> {
    let t0 = Instant::now();
    while c.head_container(container).await?.is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("container {container} not created");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::var("OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let Some(cl) = swiftd::Clusters::start() else {
        return Ok(());
    };
    let a = Arc::new(SwiftClient::new(cl.a.settings())?);
    let b = SwiftClient::new(cl.b.settings())?;
    let mut runs = Vec::new();

    // warden's poll loop
    let c = "bench-warden";
    let repl = SwiftReplicator::new(SwiftReplicatorSettings::new(
        cl.a.settings(),
        cl.b.settings(),
        vec![c.to_string()],
        cl.scratch().join("bench.json"),
    ))?;
    repl.start(CancellationToken::new()).await?;
    wait_container(&a, c).await?;
    wait_container(&b, c).await?;
    let (write, all) = burst(a.clone(), &b, c, n).await?;
    repl.stop().await;
    runs.push(Run {
        plan: "warden swift (interval 1 s, concurrency 16)",
        write,
        all_at_b: all,
    });

    // Swift's container sync
    let c = "bench-csync";
    let cs = SwiftContainerSync::new(ContainerSyncSettings::new(
        cl.a.settings(),
        cl.b.settings(),
        swiftd::REALM,
        &cl.a.name,
        &cl.b.name,
        Secret::new("bench-sync-key"),
        vec![c.to_string()],
    ))?;
    cs.start(CancellationToken::new()).await?;
    let (write, all) = burst(a.clone(), &b, c, n).await?;
    cs.stop().await;
    runs.push(Run {
        plan: "swift-container-sync (interval 1 s)",
        write,
        all_at_b: all,
    });
    drop(cl);

    println!("\n{n} objects of ~12 bytes written at A (16 PUTs at once); time from the first PUT until B lists all\n");
    println!(
        "| {:<44} | {:>9} | {:>11} | {:>16} |",
        "plan", "write (s)", "all at B (s)", "after write (s)"
    );
    println!("|{:-<46}|{:-<11}|{:-<13}|{:-<18}|", "", "", "", "");
    for r in &runs {
        println!(
            "| {:<44} | {:>9.1} | {:>11.1} | {:>16.1} |",
            r.plan,
            r.write.as_secs_f64(),
            r.all_at_b.as_secs_f64(),
            r.all_at_b.saturating_sub(r.write).as_secs_f64()
        );
    }
    let ratio = runs[1].all_at_b.as_secs_f64() / runs[0].all_at_b.as_secs_f64();
    println!("\nwarden is {ratio:.1}x faster than container sync (all at B)");
    Ok(())
}
