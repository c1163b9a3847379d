//! Replication benchmark: warden's rsync replicator
//! (`warden_agents::replicate::RsyncReplicator`) against lsyncd (`delay = 0`,
//! `default.rsync`, config as in the shared recipe), both pushing into the
//! same real rsync daemon module on 127.0.0.1 — and warden's replicator
//! over ssh into the same directory, through a real sshd on 127.0.0.1 whose
//! key is forced to `warden rsync-gate --ssh`, logging in as a user made
//! for the run with a plain `/bin/sh` (as deployed, docs/rsyncd.md).
//! Two cases, one table each:
//! - burst: FILES small files written at once, time until all are at the peer;
//! - steady: RATE files/s for STEADY_SECS, per-file lag = time from the end
//!   of its write to its appearance at the target (seen with inotify on the
//!   target: rsync renames its temp file into place), p50/p99/max, and the
//!   time to converge after the last write.
//!
//! `cargo bench --bench replication` (needs `rsync`, `lsyncd` and
//! `openssh-server`, as root; FILES=10000,
//! ROUNDS=1, RATE=1000, STEADY_SECS=60 by default; 0 skips a case;
//! MAX_TRANSFERS and WINDOW_MS override warden's defaults for tuning). Each
//! round uses a fresh source and an emptied target.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::Watcher;

use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{Replicator, RsyncReplicator, RsyncSettings};
use warden_config::Secret;

const USER: &str = "drsync";
const PASSWORD: &str = "bench-pw";
const LIMIT: Duration = Duration::from_secs(300);

#[path = "replication/ssh.rs"]
mod ssh;
#[path = "../tests/support/sshd.rs"]
mod sshd;
use ssh::{start_sshd, start_warden_ssh, Ssh};

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

/// A running mirror of `src` into the daemon module.
enum Mirror {
    Warden(RsyncReplicator),
    Lsyncd(Kill),
}

impl Mirror {
    async fn stop(self) {
        match self {
            Mirror::Warden(r) => r.stop().await,
            Mirror::Lsyncd(k) => drop(k),
        }
    }
}

async fn start_warden(src: &Path, port: u16) -> Result<Mirror> {
    let mut s = RsyncSettings::new(src, "127.0.0.1", "drdata", USER, Secret::new(PASSWORD));
    s.port = port;
    run_warden(s).await
}

/// warden's replicator with `s`, tuned by MAX_TRANSFERS and WINDOW_MS, running.
async fn run_warden(mut s: RsyncSettings) -> Result<Mirror> {
    if let Ok(n) = std::env::var("MAX_TRANSFERS") {
        s.max_transfers = n.parse()?;
    }
    if let Ok(ms) = std::env::var("WINDOW_MS") {
        s.batch_window = Duration::from_millis(ms.parse()?);
    }
    let repl = RsyncReplicator::new(s);
    repl.start(CancellationToken::new()).await?;
    Ok(Mirror::Warden(repl))
}

async fn start_lsyncd(work: &Path, port: u16, src: &Path) -> Result<Mirror> {
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
    let lsyncd = Kill(
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
    Ok(Mirror::Lsyncd(lsyncd))
}

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Warden,
    WardenSsh,
    Lsyncd,
}

/// Where the mirrors push: the daemon's port and the sshd.
struct Targets {
    port: u16,
    ssh: Ssh,
}

impl Tool {
    const ALL: [Tool; 3] = [Tool::Warden, Tool::WardenSsh, Tool::Lsyncd];

    fn name(self) -> &'static str {
        match self {
            Tool::Warden => "warden rsync",
            Tool::WardenSsh => "warden ssh",
            Tool::Lsyncd => "lsyncd d=0",
        }
    }

    /// Fresh source and emptied target, mirror running.
    async fn start(self, work: &Path, t: &Targets) -> Result<(PathBuf, Mirror)> {
        let (src, tgt) = match self {
            Tool::Warden => (work.join("src-w"), work.join("target")),
            Tool::WardenSsh => (work.join("src-s"), work.join("target")),
            Tool::Lsyncd => (work.join("src-l"), work.join("target")),
        };
        reset(&src)?;
        reset(&tgt)?;
        let mirror = match self {
            Tool::Warden => start_warden(&src, t.port).await?,
            Tool::WardenSsh => start_warden_ssh(work, &src, &t.ssh).await?,
            Tool::Lsyncd => start_lsyncd(work, t.port, &src).await?,
        };
        Ok((src, mirror))
    }
}

async fn burst_round(tool: Tool, work: &Path, port: &Targets, files: usize) -> Result<Duration> {
    let (src, mirror) = tool.start(work, port).await?;
    let t0 = Instant::now();
    write_burst(&src, files);
    wait_count(&work.join("target"), files).await?;
    let took = t0.elapsed();
    mirror.stop().await;
    Ok(took)
}

/// Per-file lags of a steady round, and the time to converge after the last write.
struct Steady {
    lags: Vec<Duration>,
    converge: Duration,
}

async fn steady_round(
    tool: Tool,
    work: &Path,
    port: &Targets,
    rate: usize,
    secs: usize,
) -> Result<Steady> {
    let (src, mirror) = tool.start(work, port).await?;
    let tgt = work.join("target");
    // First appearance of each name at the target (rsync renames its temp file into place).
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let overflow = Arc::new(Mutex::new(false));
    let (seen2, overflow2) = (seen.clone(), overflow.clone());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let now = Instant::now();
        match res {
            Ok(ev) if ev.need_rescan() => *overflow2.lock().unwrap() = true,
            Ok(ev) if !matches!(ev.kind, notify::EventKind::Access(_)) => {
                let mut seen = seen2.lock().unwrap();
                for p in ev.paths {
                    if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                        if !name.starts_with('.') {
                            seen.entry(name.to_string()).or_insert(now);
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(_) => *overflow2.lock().unwrap() = true,
        }
    })?;
    watcher.watch(&tgt, notify::RecursiveMode::NonRecursive)?;

    let n = rate * secs;
    let writer_src = src.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut done = Vec::with_capacity(n);
        let t0 = Instant::now();
        for i in 0..n {
            let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            std::fs::write(
                writer_src.join(format!("s{i}.txt")),
                format!("payload {i}\n"),
            )
            .unwrap();
            done.push(Instant::now());
        }
        done
    })
    .await?;
    let last_write = *written.last().context("no files written")?;
    wait_count(&tgt, n).await?;
    // The watcher sees the last renames a moment after the directory count.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(watcher);
    mirror.stop().await;
    if *overflow.lock().unwrap() {
        bail!("inotify queue overflow on the target: lags would be wrong");
    }
    let seen = seen.lock().unwrap();
    let mut lags = Vec::with_capacity(n);
    let mut converged = last_write;
    for (i, w) in written.iter().enumerate() {
        let at = *seen
            .get(&format!("s{i}.txt"))
            .with_context(|| format!("s{i}.txt arrival not seen"))?;
        converged = converged.max(at);
        lags.push(at.saturating_duration_since(*w));
    }
    lags.sort();
    Ok(Steady {
        lags,
        converge: converged - last_write,
    })
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let files = env_num("FILES", 10_000);
    let rounds = env_num("ROUNDS", 1);
    let rate = env_num("RATE", 1000);
    let secs = env_num("STEADY_SECS", 60);
    let work = tempfile::tempdir()?;
    let w = work.path();
    std::fs::create_dir(w.join("target"))?;
    std::fs::write(w.join("rsyncd.secrets"), format!("{USER}:{PASSWORD}\n"))?;
    std::fs::write(w.join("client.pw"), format!("{PASSWORD}\n"))?;
    std::fs::set_permissions(
        w.join("client.pw"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    for f in ["rsyncd.secrets", "client.pw"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w.join(f), std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(
        w.join("rsyncd.conf"),
        format!(
            "use chroot = yes\nmunge symlinks = no\nsocket options = TCP_NODELAY\nuid = root\ngid = root\nmax connections = 20\n[drdata]\n path = {}\n read only = no\n auth users = {USER}\n secrets file = {}\n",
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
    let targets = Targets {
        port,
        ssh: start_sshd(w)?,
    };

    if files > 0 {
        let mut rows = Vec::new();
        for round in 1..=rounds {
            let mut times = Vec::new();
            for tool in Tool::ALL {
                times.push(burst_round(tool, w, &targets, files).await?);
            }
            rows.push((round, times));
        }
        println!(
            "burst of {files} small files → rsync daemon module (warden over ssh: the same directory through sshd and the gate), time until all are at the target"
        );
        println!(
            "{:<6} {:>14} {:>14} {:>14} {:>16}",
            "round", "warden rsync", "warden ssh", "lsyncd d=0", "ratio (rsync)"
        );
        for (round, t) in rows {
            println!(
                "{:<6} {:>12.2} s {:>12.2} s {:>12.2} s {:>16.2}",
                round,
                t[0].as_secs_f64(),
                t[1].as_secs_f64(),
                t[2].as_secs_f64(),
                t[0].as_secs_f64() / t[2].as_secs_f64()
            );
        }
    }
    if rate > 0 && secs > 0 {
        let mut rows = Vec::new();
        for tool in Tool::ALL {
            rows.push((tool, steady_round(tool, w, &targets, rate, secs).await?));
        }
        println!();
        println!(
            "steady {rate} files/s for {secs} s ({} files) → rsync daemon module, per-file lag from write to visible at the target",
            rate * secs
        );
        println!(
            "{:<14} {:>9} {:>9} {:>9} {:>10}",
            "", "p50", "p99", "max", "converge"
        );
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        for (tool, st) in &rows {
            println!(
                "{:<14} {:>9} {:>9} {:>9} {:>10}",
                tool.name(),
                ms(pct(&st.lags, 0.5)),
                ms(pct(&st.lags, 0.99)),
                ms(*st.lags.last().unwrap()),
                ms(st.converge)
            );
        }
    }
    Ok(())
}
