//! Replication benchmark: a burst of small files written into a watched
//! directory, and the time until all of them are at the peer. warden's rsync
//! replicator (`warden_agents::replicate::RsyncReplicator`) against lsyncd
//! (`delay = 0`, `default.rsync`, config as in the shared recipe), both
//! pushing into the same real rsync daemon module on 127.0.0.1. Prints one
//! table.
//!
//! `cargo bench --bench replication` (needs `rsync` and `lsyncd`; FILES=10000,
//! ROUNDS=1 by default). Each round uses a fresh source and an emptied target.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{Replicator, RsyncReplicator, RsyncSettings};
use warden_config::Secret;

const USER: &str = "drsync";
const PASSWORD: &str = "bench-pw";
const LIMIT: Duration = Duration::from_secs(300);

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_burst(src: &Path, n: usize) {
    for i in 0..n {
        std::fs::write(src.join(format!("file{i}.txt")), format!("payload {i}\n")).unwrap();
    }
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

async fn wait_count(dir: &Path, n: usize) -> Result<()> {
    let deadline = Instant::now() + LIMIT;
    while count(dir) < n {
        if Instant::now() > deadline {
            bail!("only {} of {n} files arrived in {LIMIT:?}", count(dir));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn reset(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

async fn warden_round(work: &Path, port: u16, files: usize) -> Result<Duration> {
    let (src, tgt) = (work.join("src-w"), work.join("target"));
    reset(&src)?;
    reset(&tgt)?;
    let mut s = RsyncSettings::new(&src, "127.0.0.1", "drdata", USER, Secret::new(PASSWORD));
    s.port = port;
    let repl = RsyncReplicator::new(s);
    repl.start(CancellationToken::new()).await?;
    let t0 = Instant::now();
    write_burst(&src, files);
    wait_count(&tgt, files).await?;
    let took = t0.elapsed();
    repl.stop().await;
    Ok(took)
}

async fn lsyncd_round(work: &Path, port: u16, files: usize) -> Result<Duration> {
    let (src, tgt) = (work.join("src-l"), work.join("target"));
    reset(&src)?;
    reset(&tgt)?;
    let log = work.join("lsyncd.log");
    let _ = std::fs::remove_file(&log);
    let conf = format!(
        r#"settings {{ logfile = "{log}", nodaemon = true, insist = true }}
sync {{ default.rsync, source = "{src}/", target = "rsync://{USER}@127.0.0.1:{port}/drdata/",
  delay = 0, delete = true, rsync = {{ archive = true, password_file = "{pw}" }} }}
"#,
        log = log.display(),
        src = src.display(),
        pw = work.join("client.pw").display()
    );
    std::fs::write(work.join("lsyncd.lua"), conf)?;
    let _lsyncd = Kill(
        Command::new("lsyncd")
            .arg("-nodaemon")
            .arg(work.join("lsyncd.lua"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn lsyncd")?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("finished.")
    {
        if Instant::now() > deadline {
            bail!("lsyncd did not finish its startup sync");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    write_burst(&src, files);
    wait_count(&tgt, files).await?;
    Ok(t0.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let files = env_num("FILES", 10_000);
    let rounds = env_num("ROUNDS", 1);
    let work = tempfile::tempdir()?;
    let w = work.path();
    std::fs::create_dir(w.join("target"))?;
    std::fs::write(w.join("rsyncd.secrets"), format!("{USER}:{PASSWORD}\n"))?;
    std::fs::write(w.join("client.pw"), format!("{PASSWORD}\n"))?;
    for f in ["rsyncd.secrets", "client.pw"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w.join(f), std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(
        w.join("rsyncd.conf"),
        format!(
            "use chroot = no\nuid = root\ngid = root\nmax connections = 20\n[drdata]\n path = {}\n read only = no\n auth users = {USER}\n secrets file = {}\n",
            w.join("target").display(),
            w.join("rsyncd.secrets").display()
        ),
    )?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _daemon = Kill(
        Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", w.join("rsyncd.conf").display()))
            .spawn()
            .context("spawn rsync --daemon (is rsync installed?)")?,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut rows = Vec::new();
    for round in 1..=rounds {
        let wt = warden_round(w, port, files).await?;
        let lt = lsyncd_round(w, port, files).await?;
        rows.push((round, wt, lt));
    }
    println!(
        "burst of {files} small files → rsync daemon module, time until all are at the target"
    );
    println!(
        "{:<6} {:>14} {:>14} {:>8}",
        "round", "warden rsync", "lsyncd d=0", "ratio"
    );
    for (round, wt, lt) in rows {
        println!(
            "{:<6} {:>12.2} s {:>12.2} s {:>8.2}",
            round,
            wt.as_secs_f64(),
            lt.as_secs_f64(),
            wt.as_secs_f64() / lt.as_secs_f64()
        );
    }
    Ok(())
}
