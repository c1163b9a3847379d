//! The work of one agent report in the orchestrator, without the network:
//! the real API router (token check, body limit, JSON decoding, replay
//! guard, the report's intake under the state lock, the answer encoded)
//! called in-process for REPORTS reports of 20,000 sites (BENCH_GROUPS
//! groups of two), on a service built from a config like the load bench's
//! (local store in memory; no loop runs, so no round or reconciliation
//! competes). It prints a table: wall time per report, and with
//! `CALLGRIND=1` the **instructions per report** counted by valgrind's
//! callgrind — the bench runs itself twice under it (REPORTS and twice
//! REPORTS) and divides the difference, so set-up cancels out. Instruction
//! counts are the same for the same binary and inputs whatever else the
//! machine is doing: an A/B of a change to the report path that a noisy or
//! slow machine cannot blur (the load bench, `benches/load.rs`, measures
//! the whole process on the network; the kernel's share is not here).
//!
//! `cargo bench --bench report_path` (REPORTS=100000, BENCH_GROUPS=10000);
//! `CALLGRIND=1 REPORTS=20000 cargo bench --bench report_path` (valgrind).

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::{Service, ServiceExt};

// The orchestrator's allocator (src/main.rs): the same work as deployed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v:?}")),
        Err(_) => Ok(default),
    }
}

/// Token files and the config of `groups` groups (two sites each).
fn config(dir: &std::path::Path, groups: usize) -> Result<(String, Vec<String>)> {
    let secret = |p: &std::path::Path, v: &str| -> Result<()> {
        std::fs::write(p, v)?;
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(())
    };
    std::fs::create_dir_all(dir.join("tokens"))?;
    secret(&dir.join("op.token"), "operator-token-path")?;
    secret(&dir.join("fe.token"), "frontend-token-path")?;
    let d = dir.display();
    let mut conf = format!(
        "[orchestrator]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{d}/data\"\n\
         operator_token = {{ file = \"{d}/op.token\" }}\nmax_body_bytes = 65536\n\
         [detection]\ninterval = \"1s\"\nagent_timeout = \"3s\"\nfall = 3\nrise = 3\n\
         [frontends.fe1]\ncontrol = \"127.0.0.1:1\"\ntoken = {{ file = \"{d}/fe.token\" }}\n"
    );
    let mut tokens = Vec::with_capacity(groups * 2);
    for i in 0..groups * 2 {
        let t = format!("agent-token-{i:06}-path");
        secret(&dir.join("tokens").join(format!("s{i}")), &t)?;
        tokens.push(t);
        writeln!(
            conf,
            "[sites.s{i}]\nagent_token = {{ file = \"{d}/tokens/s{i}\" }}"
        )?;
    }
    for g in 0..groups {
        let (a, b) = (2 * g, 2 * g + 1);
        writeln!(
            conf,
            "[groups.g{g}]\nsites = [\"s{a}\", \"s{b}\"]\nscheme = \"frontend\"\n\
             [groups.g{g}.frontend]\ndriver = \"builtin\"\nfrontends = [\"fe1\"]\n\
             listen = \"127.0.0.1:0\"\nbackends = {{ s{a} = \"127.0.0.1:9\", s{b} = \"127.0.0.1:10\" }}"
        )?;
    }
    Ok((conf, tokens))
}

/// Sends `reports` reports through the router: the wall time of the
/// service's start (the config parsed with its secrets loaded, the
/// settings, the service built) and of the sends.
fn run(groups: usize, reports: usize) -> Result<(std::time::Duration, std::time::Duration)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let (text, tokens) = config(dir.path(), groups)?;
    let start = Instant::now();
    let cfg = warden_config::parse(&text, &dir.path().join("failover.conf"))?;
    let settings = warden_orchestrator::OrchestratorSettings::from_config(cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shared = warden_orchestrator::service::Shared::new(
            settings,
            Arc::new(warden_orchestrator::store::MemStore::default()),
            tokio_util::sync::CancellationToken::new(),
        )?;
        let mut router = warden_orchestrator::api::router(shared);
        let started = start.elapsed();
        let sites = tokens.len();
        let bodies: Vec<String> = (0..sites)
            .map(|i| {
                let peer = i ^ 1;
                format!(
                    r#"{{"site":"s{i}","seq":SEQ,"checks":[{{"name":"web","ok":true,"critical":true,"detail":"status 200","elapsed_ms":1}}],"peers":[{{"site":"s{peer}","results":[{{"name":"web","ok":true,"critical":true,"detail":"status 200","elapsed_ms":1}}]}}]}}"#
                )
            })
            .collect();
        let auth: Vec<String> = tokens.iter().map(|t| format!("Bearer {t}")).collect();
        let t0 = Instant::now();
        for n in 0..reports {
            let i = n % sites;
            let seq = n / sites + 1;
            let req = Request::post("/v1/reports")
                .header("authorization", &auth[i])
                .header("content-type", "application/json")
                .body(Body::from(bodies[i].replace("SEQ", &seq.to_string())))?;
            let resp = router.ready().await?.call(req).await?;
            if resp.status() != StatusCode::OK {
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 4096).await?;
                bail!("report {n}: {status} {}", String::from_utf8_lossy(&body));
            }
            axum::body::to_bytes(resp.into_body(), 65536).await?;
        }
        Ok((started, t0.elapsed()))
    })
}

/// Instructions callgrind counted for a run of this bench with `reports`.
fn callgrind(reports: usize) -> Result<u64> {
    let me = std::env::current_exe()?;
    let out = tempfile::NamedTempFile::new()?;
    let mut file = std::ffi::OsString::from("--callgrind-out-file=");
    file.push(out.path());
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(file)
        .arg(&me)
        .arg("--bench")
        .env("REPORT_PATH_CHILD", reports.to_string())
        .env_remove("CALLGRIND")
        .stdout(std::process::Stdio::null())
        .output()
        .context("valgrind (apt-get install valgrind)")?;
    if !status.status.success() {
        bail!(
            "the run under callgrind failed: {}: {}",
            status.status,
            String::from_utf8_lossy(&status.stderr)
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    let text = std::fs::read_to_string(out.path())?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no summary line in callgrind's output")
}

fn main() -> Result<()> {
    let groups = env_usize("BENCH_GROUPS", 10_000)?;
    if let Ok(n) = std::env::var("REPORT_PATH_CHILD") {
        run(groups, n.parse()?)?;
        return Ok(());
    }
    let reports = env_usize("REPORTS", 100_000)?;
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| groups / sites | {groups} / {} |", groups * 2);
    let (started, wall) = run(groups, reports)?;
    println!(
        "| service start: config and secrets loaded, service built, ms | {} |",
        started.as_millis()
    );
    println!("| reports | {reports} |");
    println!(
        "| wall time per report, µs (in-process, no network) | {:.2} |",
        wall.as_secs_f64() * 1e6 / reports as f64
    );
    if std::env::var("CALLGRIND").is_ok_and(|v| v == "1") {
        let one = callgrind(reports)?;
        let two = callgrind(2 * reports)?;
        println!(
            "| instructions per report (callgrind: {reports} and {} reports) | {} |",
            2 * reports,
            two.saturating_sub(one) / reports as u64
        );
    }
    Ok(())
}
