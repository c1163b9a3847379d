//! Host-level plumbing for the lab: locating the tools it shells out to,
//! checking prerequisites, running commands, and reserving machine-global
//! names (namespace prefix, /24 subnet) so that labs in parallel threads and
//! in concurrently running test binaries never collide.
//!
//! Reservations are files under [`RESERVATION_DIR`] created with
//! `create_new` (atomic) that record the owner's PID and start time. A
//! reservation whose owner is gone belongs to a crashed run: its namespaces,
//! links and processes are removed by [`sweep_stale`] before a new lab is
//! built.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

/// Where prefix and subnet reservations live (tmpfs: cleared on reboot,
/// like `/run/netns`).
pub(super) const RESERVATION_DIR: &str = "/run/warden-lab";

/// Absolute paths of the external programs the lab uses.
#[derive(Debug)]
pub(super) struct Tools {
    pub ip: PathBuf,
    pub iptables: PathBuf,
    pub curl: PathBuf,
    pub timeout: PathBuf,
    pub bash: PathBuf,
    pub kill: PathBuf,
}

/// The tools, or a description of what is missing. Computed once per process.
pub(super) fn prerequisites() -> Result<&'static Tools, String> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS.get_or_init(find_tools).as_ref().map_err(Clone::clone)
}

fn find_tools() -> Result<Tools, String> {
    let mut missing = Vec::new();
    match effective_uid() {
        Some(0) => {}
        Some(uid) => missing.push(format!("root (running as uid {uid})")),
        None => missing.push("root (could not read /proc/self/status)".to_string()),
    }
    let mut find = |name: &str, package: &str| {
        which(name).unwrap_or_else(|| {
            missing.push(format!("`{name}` (package {package})"));
            PathBuf::new()
        })
    };
    let tools = Tools {
        ip: find("ip", "iproute2"),
        iptables: find("iptables", "iptables"),
        curl: find("curl", "curl"),
        timeout: find("timeout", "coreutils"),
        bash: find("bash", "bash"),
        kill: find("kill", "procps"),
    };
    if missing.is_empty() {
        Ok(tools)
    } else {
        Err(format!(
            "network-namespace lab needs: {}",
            missing.join(", ")
        ))
    }
}

fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Looks a program up in `PATH`, then in the sbin directories (which a
/// non-login root shell may lack).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// [`which`] for the lab's users.
pub(super) fn which_program(name: &str) -> Option<PathBuf> {
    which(name)
}

/// Whether `CI` says missing prerequisites must fail rather than skip.
pub(super) fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}

/// Runs a command to completion; fails with its stderr on a non-zero exit.
pub(super) fn run<I, S>(program: &Path, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    let out = cmd
        .output()
        .with_context(|| format!("running {}", describe(&cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            describe(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Like [`run`], feeding `input` on stdin (for `ip -batch -`).
pub(super) fn run_with_input<I, S>(program: &Path, args: I, input: &str) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", describe(&cmd)))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}\ninput:\n{input}",
            describe(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Runs a command and ignores any failure (teardown paths).
pub(super) fn run_quiet<I, S>(program: &Path, args: I) -> Option<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .ok()
}

/// `program arg arg ...` for error messages.
pub(super) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends a signal (`KILL`, `TERM`, `STOP`, `CONT`) with the `kill` program
/// (the workspace forbids `unsafe`, so no `libc::kill`).
pub(super) fn signal(tools: &Tools, pid: u32, sig: &str) -> Result<()> {
    run(&tools.kill, [format!("-{sig}"), pid.to_string()]).map(drop)
}

// ---------------------------------------------------------------- names

/// Namespace names (`ip netns list`).
pub(super) fn list_netns(tools: &Tools) -> Vec<String> {
    run_quiet(&tools.ip, ["netns", "list"])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Interface names in the root namespace, without the `@peer` suffix.
pub(super) fn list_links(tools: &Tools) -> Vec<String> {
    run_quiet(&tools.ip, ["-br", "link"])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a machine-global name belongs to the lab with this prefix:
/// the bridge is named exactly `prefix`, everything else `prefix-host`.
pub(super) fn owned_by(name: &str, prefix: &str) -> bool {
    name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// SIGKILLs every process in a namespace (`ip netns pids`).
pub(super) fn kill_netns_pids(tools: &Tools, ns: &str) {
    if let Some(out) = run_quiet(&tools.ip, ["netns", "pids", ns]) {
        let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !pids.is_empty() {
            let mut args = vec!["-KILL".to_string()];
            args.extend(pids);
            run_quiet(&tools.kill, args);
        }
    }
}

/// Removes every namespace, process and link named with `prefix`.
/// Idempotent; errors are ignored.
pub(super) fn cleanup_prefix(tools: &Tools, prefix: &str) {
    for ns in list_netns(tools).iter().filter(|n| owned_by(n, prefix)) {
        kill_netns_pids(tools, ns);
        run_quiet(&tools.ip, ["netns", "del", ns.as_str()]);
    }
    // Root-side veths vanish with their namespace; the bridge does not.
    for link in list_links(tools).iter().filter(|n| owned_by(n, prefix)) {
        run_quiet(&tools.ip, ["link", "del", link.as_str()]);
    }
}

// ---------------------------------------------------------------- reservations

/// This process's identity: PID and start time (guards against PID reuse).
fn me() -> String {
    let pid = std::process::id();
    format!("{pid} {}", start_time(pid).unwrap_or_default())
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the command name (field 2) may contain spaces, so skip past ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the owner recorded in a reservation file is still running.
/// Unreadable or half-written files count as alive unless a minute old.
fn owner_alive(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let mut parts = text.split_whitespace();
    let (Some(pid), Some(start)) = (
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next().and_then(|s| s.parse::<u64>().ok()),
    ) else {
        let age = fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        return age < Duration::from_secs(60);
    };
    start_time(pid) == Some(start)
}

/// Tries to take the reservation `key`. A stale reservation (dead owner) is
/// cleaned and taken over.
pub(super) fn reserve(tools: &Tools, key: &str) -> Result<Option<PathBuf>> {
    fs::create_dir_all(RESERVATION_DIR).with_context(|| format!("creating {RESERVATION_DIR}"))?;
    let path = Path::new(RESERVATION_DIR).join(key);
    for _ in 0..2 {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(me().as_bytes())?;
                return Ok(Some(path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if owner_alive(&path) {
                    return Ok(None);
                }
                release_stale(tools, &path, key);
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    Ok(None)
}

fn release_stale(tools: &Tools, path: &Path, key: &str) {
    if let Some(prefix) = key.strip_prefix("p-") {
        cleanup_prefix(tools, prefix);
        // The crashed lab's scratch dir (see `Lab::new`).
        let dirs = fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten();
        let name = format!("warden-lab-{prefix}-");
        for d in dirs.filter(|d| d.file_name().to_string_lossy().starts_with(&name)) {
            let _ = fs::remove_dir_all(d.path());
        }
    }
    let _ = fs::remove_file(path);
}

/// Cleans up after labs whose test process died without tearing down.
pub(super) fn sweep_stale(tools: &Tools) {
    let Ok(entries) = fs::read_dir(RESERVATION_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let key = entry.file_name().to_string_lossy().into_owned();
        if !owner_alive(&path) {
            release_stale(tools, &path, &key);
        }
    }
}
