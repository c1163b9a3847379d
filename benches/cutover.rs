//! Failback cut-over benchmark (issue 11): how long writes are refused when
//! users move between sites with the rsync plan, and whether that grows
//! with the data set. For each size (SIZES, files of ~19.5 KB: 20,000 files
//! ≈ 390 MB), a fresh deployment on network-namespace hosts (real `warden`
//! binaries, real rsync daemons) runs planned switchovers a → b → a …; right
//! before each, CHANGED files are rewritten at the active site (the resync
//! step carries them), and LATE more by its demote hook — the last writes
//! before writes stop, which only the final pass can carry. The pause is
//! from the demote of the old active site (writes stop) to the end of the
//! promote of the new one (writes resume); it includes the hook's own
//! writes. Goal: ≤ 500 ms with 20,000 files, within 1.2× of 2,000 files.
//! Prints a table per round and a summary; needs root.
//!
//! `cargo bench --bench cutover` (SIZES=2000,20000 CHANGED=500 LATE=500 ROUNDS=4).

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "../tests/failover/deploy.rs"]
#[allow(dead_code)]
mod deploy;

#[path = "../tests/data/site.rs"]
#[allow(dead_code)]
mod site;

#[path = "../tests/support/sshd.rs"]
#[allow(dead_code)]
mod sshd;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use lab::secs;
use lab::Deploy;
use serde_json::Value;

const FILE_BYTES: usize = 19_500;

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

/// Relative path → size of every file under `root` (no content read).
fn sizes(root: &Path) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root)?.to_string_lossy().into_owned();
                out.insert(rel, m.len());
            }
        }
    }
    Ok(out)
}

/// Waits until both sites list the same files with the same sizes, and the
/// `probe` file has the same content.
fn wait_same(x: &site::Data, probe: &str, limit: std::time::Duration) -> Result<()> {
    lab::eventually(limit, secs(0.5), || {
        let (a, b) = (sizes(&x.dir("a"))?, sizes(&x.dir("b"))?);
        let same = |p: &str| {
            std::fs::read(x.dir("a").join(p)).ok() == std::fs::read(x.dir("b").join(p)).ok()
        };
        if a == b && same(probe) {
            Ok(())
        } else {
            bail!("{} files at a, {} at b", a.len(), b.len())
        }
    })
}

struct Row {
    files: usize,
    fin: u64,
    pause: u64,
}

/// One deployment with `files` files; `false` when the lab cannot run here.
/// The demote hook's writer: `LATE` files of `FILE_BYTES` rewritten in
/// the site's directory (`argv`: a's dir, b's dir, files, late), content
/// `late EPOCH` padded; the same choice of files as [`late_name`].
const LATE_WRITER: &str = r#"import os, sys
a, b, files, late = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
root = a if os.environ["WARDEN_SITE"] == "a" else b
epoch = int(os.environ["WARDEN_EPOCH"])
body = ("late %d " % epoch).encode().ljust(19500, b"l")
for k in range(late):
    i = (k * 53 + epoch * 7) % files
    with open(os.path.join(root, "data/%03d/%05d.dat" % (i // 200, i)), "wb") as f:
        f.write(body)
"#;

/// The first file the demote hook rewrote at `epoch`, and its content.
fn late_name(epoch: u64, files: usize) -> (String, Vec<u8>) {
    let i = (epoch as usize * 7) % files;
    let mut body = format!("late {epoch} ").into_bytes();
    body.resize(FILE_BYTES, b'l');
    (format!("data/{:03}/{i:05}.dat", i / 200), body)
}

fn run_size(
    files: usize,
    changed: usize,
    late: usize,
    rounds: usize,
    rows: &mut Vec<Row>,
) -> Result<bool> {
    let Some(lab) = lab::Lab::new_or_skip(deploy::HOSTS) else {
        return Ok(false);
    };
    let dir = lab.dir().to_path_buf();
    let writer = lab.write_file("late-writer.py", LATE_WRITER)?;
    let demote = if late == 0 {
        "true".to_string()
    } else {
        format!(
            "python3 {} {} {} {files} {late}",
            writer.display(),
            dir.join("a-data").display(),
            dir.join("b-data").display()
        )
    };
    let x = site::Data::build(
        lab,
        [dir.join("a-data"), dir.join("b-data")],
        "keep",
        "pw-b-right",
        "manual",
        "true",
        &demote,
    );
    let blob = "d".repeat(FILE_BYTES);
    for i in 0..files {
        x.write("a", &format!("data/{:03}/{i:05}.dat", i / 200), &blob)?;
    }
    x.start()?;
    wait_same(&x, "data/000/00000.dat", secs(900)).context("initial replication")?;
    std::thread::sleep(secs(1.5));
    for round in 0..rounds {
        let (from, to) = if round % 2 == 0 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        // CHANGED files rewritten right before the switchover (same size).
        let body = format!("{round:02}").repeat(FILE_BYTES / 2);
        for k in 0..changed {
            let i = (k * 37 + round * 11) % files;
            x.write(from, &format!("data/{:03}/{i:05}.dat", i / 200), &body)?;
        }
        x.d.cli_ok(&["switchover", "web", "--to", to])?;
        let rb = lab::eventually(secs(600), secs(0.2), || {
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
        let resync = ms(&rb, "resync", "finished_unix_ms")? - ms(&rb, "resync", "started_unix_ms")?;
        let pause = promoted - demote;
        let step = |n: &str| -> Result<u64> {
            Ok(ms(&rb, n, "finished_unix_ms")? - ms(&rb, n, "started_unix_ms")?)
        };
        let (demote_ms, promote_ms) = (step("demote")?, step("promote")?);
        println!(
            "| {files} | {} MB | {} | {from} → {to} | {changed} | {late} | {resync} | {demote_ms} | {fin} | {promote_ms} | {pause} |",
            files * FILE_BYTES / 1_000_000,
            round + 1,
        );
        rows.push(Row { files, fin, pause });
        let detail = |n: &str| -> String {
            rb["steps"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == n))
                .and_then(|s| s["detail"].as_str())
                .unwrap_or("")
                .chars()
                .take(300)
                .collect()
        };
        eprintln!("  demote: {}", detail("demote"));
        eprintln!("  final_sync: {}", detail("final_sync"));
        let r = x.replication()?;
        if r["divergent"].as_array().is_some_and(|d| !d.is_empty()) {
            eprintln!("  divergent: {}", r["divergent"]);
        }
        // The demote hook's writes are at the new active site.
        if late > 0 {
            let (name, body) = late_name(rb["epoch"].as_u64().context("epoch")?, files);
            let got = std::fs::read(x.dir(to).join(&name))?;
            if got != body {
                bail!("{name} at {to} is not what {from}'s demote hook wrote last");
            }
        }
        let i = (round * 11) % files;
        wait_same(&x, &format!("data/{:03}/{i:05}.dat", i / 200), secs(300))?;
        std::thread::sleep(secs(1.5));
    }
    Ok(true)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "2000,20000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let changed = env_num("CHANGED", 500);
    let late = env_num("LATE", 500);
    let rounds = env_num("ROUNDS", 4);
    println!("| files | data | round | move | changed just before | changed by the demote hook | resync step incl. checksum pre-check (ms) | demote (ms) | final pass + delta verify (ms) | promote (ms) | writes refused: demote → promoted (ms) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for &files in &sizes {
        if !run_size(files, changed, late, rounds, &mut rows)? {
            eprintln!("cutover bench skipped: needs root, ip, iptables and rsync");
            return Ok(());
        }
    }
    println!();
    println!(
        "| files | median final pass (ms) | median writes refused (ms) | max writes refused (ms) |"
    );
    println!("| --- | --- | --- | --- |");
    let mut medians = Vec::new();
    for &files in &sizes {
        let of: Vec<&Row> = rows.iter().filter(|r| r.files == files).collect();
        let pause = median(of.iter().map(|r| r.pause).collect());
        medians.push(pause);
        println!(
            "| {files} | {} | {pause} | {} |",
            median(of.iter().map(|r| r.fin).collect()),
            of.iter().map(|r| r.pause).max().unwrap_or(0)
        );
    }
    if let (Some(first), Some(last)) = (medians.first(), medians.last()) {
        println!(
            "\nwrites refused, largest vs smallest size: {:.2}× (goal ≤ 1.2×); largest {} ms (goal ≤ 500 ms)",
            *last as f64 / (*first).max(1) as f64,
            last
        );
    }
    Ok(())
}
