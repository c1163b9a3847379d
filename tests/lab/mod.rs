//! A network-namespace lab for integration tests: each "host" is a Linux
//! network namespace on a private bridge, so tests can run real `warden`
//! processes on several hosts and cut links between them.
//!
//! Mount it at the crate root of a suite (`tests/<suite>/main.rs`):
//!
//! ```ignore
//! #[path = "../lab/mod.rs"]
//! mod lab;
//!
//! #[test]
//! fn failover() -> anyhow::Result<()> {
//!     let lab = lab::require!(&["a", "b", "ctl"], else Ok(()));
//!     lab.spawn("a", "agent-a", env!("CARGO_BIN_EXE_warden"), ["agent"])?;
//!     lab.cut("ctl", "a")?;
//!     lab::assert_eventually!(lab.http_get("ctl", &url, secs(1)).is_ok(), secs(10));
//!     Ok(())
//! }
//! ```
//!
//! The macros refer to `crate::lab`, so the module must be named `lab` and
//! sit at the crate root.
//!
//! Layout:
//! - `mod.rs`: [`Lab`] itself: set-up, addresses, files, teardown.
//! - `proc.rs`: processes inside namespaces ([`ProcHandle`], logs).
//! - `net.rs`: traffic from inside a namespace (curl, TCP connect).
//! - `faults.rs`: iptables partitions and link failures.
//! - `client.rs`: [`ClientLoop`], a background client that records outages.
//! - `eventually.rs`: polling assertions.
//! - `sys.rs`: tools, prerequisites, name reservations.
//! - `operator.rs`, `warden.rs`: the operator's CLI and warden's processes.
//! - `deploy.rs`: what every two-site deployment shares (tokens, the
//!   common config tables, the [`Deploy`] handles).
//!
//! Safety rules (see `/work/shared/recipes/netns-hosts.md`): all test
//! traffic starts inside a namespace; namespaces have no default route;
//! fault rules live only inside test namespaces, never in the root one.
//! Everything here blocks the calling thread (the systems under test are
//! separate processes, so this is fine in `#[tokio::test]` too).
//!
//! Diagnostics: every process log's last 80 lines go to stderr on teardown
//! (libtest shows them only for failing tests, also for tests that return
//! `Err`); the lab directory is kept when the test panicked or `LAB_KEEP`
//! is set. A run that was killed leaves its reservation in
//! `/run/warden-lab/`; the next lab built on the machine removes its
//! namespaces, processes, bridge and directory.
//!
//! Prerequisites: root, `ip`, `iptables`, `curl`, `timeout`, `bash`, `kill`.
//! Without them a lab is skipped, unless `CI=true`, where it panics.

#![allow(dead_code, unused_macros, unused_imports)]

mod client;
mod deploy;
mod eventually;
mod faults;
mod net;
mod operator;
mod proc;
mod sys;
mod warden;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};

pub(crate) use client::{bodies_after, outage_windows, outages, ClientLoop, Outage, Sample};
pub(crate) use deploy::{detection, Deploy, Tokens};
pub(crate) use eventually::assert_eventually;
pub(crate) use eventually::{eventually, patient};
pub(crate) use net::CurlError;
pub(crate) use operator::Operator;
pub(crate) use proc::ProcHandle;
pub(crate) use warden::Warden;

/// Longest host name: interface names are at most 15 characters and the
/// root-side veth is called `<prefix>-<host>` with a 5-character prefix.
pub(crate) const MAX_HOST_NAME: usize = 9;

/// Shorthand for `Duration::from_secs_f64`, handy in test bodies.
pub(crate) fn secs(s: impl Into<f64>) -> Duration {
    Duration::from_secs_f64(s.into())
}

/// The error [`Lab::new`] returns when the machine lacks a prerequisite and
/// `CI` is not set: the test should return early (see [`require!`]).
#[derive(Debug)]
pub(crate) struct Skip(pub String);

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lab skipped: {}", self.0)
    }
}

impl std::error::Error for Skip {}

/// Builds a [`Lab`] or returns early from the calling test when the machine
/// lacks a prerequisite (outside CI). `require!(hosts)` returns `()`;
/// `require!(hosts, else value)` returns `value` (e.g. `Ok(())`).
macro_rules! require {
    ($hosts:expr $(,)?) => {
        match $crate::lab::Lab::new_or_skip($hosts) {
            Some(lab) => lab,
            None => return,
        }
    };
    ($hosts:expr, else $ret:expr $(,)?) => {
        match $crate::lab::Lab::new_or_skip($hosts) {
            Some(lab) => lab,
            None => return $ret,
        }
    };
}
pub(crate) use require;

/// One emulated host.
#[derive(Debug)]
struct Host {
    /// Name the test uses (`"a"`, `"ctl"`).
    name: String,
    /// Namespace name, `<prefix>-<name>`.
    ns: String,
    /// Root-side veth peer (same name as the namespace); taking it down
    /// cuts the host off the bridge.
    veth: String,
    /// Address of `eth0` inside the namespace.
    ip: Ipv4Addr,
}

/// A set of hosts (network namespaces) on one bridge with a private /24.
///
/// Everything is torn down on `Drop`: processes are killed, namespaces and
/// the bridge deleted, and the last lines of every process log are printed
/// to stderr (the test harness shows them only for failing tests). `Lab` is
/// `Send + Sync`; share it with `Arc` if several threads drive it.
pub(crate) struct Lab {
    /// Unique `w` + 4 hex digits; every machine-global name starts with it.
    prefix: String,
    /// Third octet of `10.231.X.0/24`.
    subnet: u8,
    /// Bridge name (= prefix).
    bridge: String,
    hosts: Vec<Host>,
    /// Per-lab scratch directory (process logs, configs, tokens).
    dir: PathBuf,
    /// Owns `dir`; taken on teardown (kept on disk if the test panicked).
    tempdir: Mutex<Option<tempfile::TempDir>>,
    /// Spawned processes by name; see `proc.rs`.
    procs: Mutex<proc::Procs>,
    /// Reservation files of the prefix and subnet, released on teardown.
    reservations: Mutex<Vec<PathBuf>>,
    /// Makes teardown idempotent.
    torn_down: AtomicBool,
    tools: &'static sys::Tools,
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lab")
            .field("prefix", &self.prefix)
            .field("subnet", &self.subnet_cidr())
            .field("hosts", &self.hosts)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Lab {
    /// Creates one namespace per host on a fresh bridge. Hosts get
    /// `10.231.X.2`, `.3`, … in the order given (the bridge has `.1`).
    /// Host names: 1–9 characters of `[a-z0-9_]`, e.g. `"a"`, `"ctl"`.
    ///
    /// Missing prerequisites: panics when `CI=true`, else returns an error
    /// wrapping [`Skip`].
    pub(crate) fn new(hosts: &[&str]) -> Result<Lab> {
        let tools = match sys::prerequisites() {
            Ok(tools) => tools,
            Err(missing) if sys::in_ci() => {
                panic!("{missing}; CI=true, so a missing prerequisite is a failure")
            }
            Err(missing) => {
                eprintln!("SKIP: {missing} (set CI=true to make this a failure)");
                return Err(anyhow!(Skip(missing)));
            }
        };
        validate_hosts(hosts)?;
        let started = Instant::now();
        sys::sweep_stale(tools);

        let (prefix, prefix_res) = reserve_prefix(tools)?;
        let mut lab = Lab {
            bridge: prefix.clone(),
            prefix,
            subnet: 0,
            hosts: Vec::new(),
            dir: PathBuf::new(),
            tempdir: Mutex::new(None),
            procs: Mutex::new(proc::Procs::default()),
            reservations: Mutex::new(vec![prefix_res]),
            torn_down: AtomicBool::new(false),
            tools,
        };
        // From here on, an error drops `lab`, which cleans up.
        let (subnet, subnet_res) = reserve_subnet(tools)?;
        lab.subnet = subnet;
        lab.reservations.lock().unwrap().push(subnet_res);
        let tempdir = tempfile::Builder::new()
            .prefix(&format!("warden-lab-{}-", lab.prefix))
            .tempdir()
            .context("creating lab temp dir")?;
        lab.dir = tempdir.path().to_path_buf();
        *lab.tempdir.lock().unwrap() = Some(tempdir);
        lab.hosts = hosts
            .iter()
            .enumerate()
            .map(|(i, name)| Host {
                name: name.to_string(),
                ns: format!("{}-{name}", lab.prefix),
                veth: format!("{}-{name}", lab.prefix),
                ip: Ipv4Addr::new(10, 231, subnet, 2 + i as u8),
            })
            .collect();

        sys::cleanup_prefix(tools, &lab.prefix);
        lab.build()
            .with_context(|| format!("building lab {}", lab.prefix))?;
        eprintln!(
            "lab {}: {} on {} in {:.0?} (dir {})",
            lab.prefix,
            lab.hosts
                .iter()
                .map(|h| format!("{}={}", h.name, h.ip))
                .collect::<Vec<_>>()
                .join(" "),
            lab.bridge,
            started.elapsed(),
            lab.dir.display()
        );
        Ok(lab)
    }

    /// Whether `program` (from Debian package `package`) is installed:
    /// missing, a failure when `CI=true`, else a skip said on stderr.
    pub(crate) fn has_program(program: &str, package: &str) -> bool {
        if sys::which_program(program).is_some() {
            return true;
        }
        let missing = format!("`{program}` (package {package})");
        if sys::in_ci() {
            panic!("{missing}; CI=true, so a missing prerequisite is a failure");
        }
        eprintln!("SKIP: {missing} (set CI=true to make this a failure)");
        false
    }

    /// [`Lab::new`], but `None` (after printing why) when the machine lacks
    /// a prerequisite; panics on any other set-up error.
    pub(crate) fn new_or_skip(hosts: &[&str]) -> Option<Lab> {
        match Lab::new(hosts) {
            Ok(lab) => Some(lab),
            Err(e) if e.is::<Skip>() => None,
            Err(e) => panic!("lab set-up failed: {e:#}"),
        }
    }

    fn build(&self) -> Result<()> {
        let ip = &self.tools.ip;
        let mut root = format!(
            "link add {br} type bridge\naddr add 10.231.{net}.1/24 dev {br}\nlink set {br} up\n",
            br = self.bridge,
            net = self.subnet
        );
        for h in &self.hosts {
            root += &format!(
                "netns add {ns}\nlink add {veth} type veth peer name eth0 netns {ns}\n\
                 link set dev {veth} master {br} up\n",
                ns = h.ns,
                veth = h.veth,
                br = self.bridge
            );
        }
        sys::run_with_input(ip, ["-batch", "-"], &root)?;
        for h in &self.hosts {
            let inner = format!(
                "link set lo up\naddr add {}/24 dev eth0\nlink set eth0 up\n",
                h.ip
            );
            sys::run_with_input(ip, ["-n", h.ns.as_str(), "-batch", "-"], &inner)?;
        }
        Ok(())
    }

    fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| anyhow!("lab {}: no host {name:?}", self.prefix))
    }

    /// Address of `host`'s `eth0`. Panics on an unknown host.
    pub(crate) fn ip(&self, host: &str) -> Ipv4Addr {
        self.host(host).unwrap_or_else(|e| panic!("{e}")).ip
    }

    /// Namespace name of `host` (for `ip netns exec` by hand).
    pub(crate) fn ns(&self, host: &str) -> &str {
        &self.host(host).unwrap_or_else(|e| panic!("{e}")).ns
    }

    /// Host names in the order given to [`Lab::new`].
    pub(crate) fn hosts(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    /// The unique name prefix of this lab (`w` + 4 hex digits).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `10.231.X.0/24`.
    pub(crate) fn subnet_cidr(&self) -> String {
        format!("10.231.{}.0/24", self.subnet)
    }

    /// The lab's scratch directory (logs, configs). Removed on teardown
    /// unless the test panicked.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `content` to `name` (relative, may contain `/`) in the lab
    /// directory and returns the absolute path.
    pub(crate) fn write_file(&self, name: &str, content: impl AsRef<[u8]>) -> Result<PathBuf> {
        if Path::new(name).is_absolute() || name.split('/').any(|c| c == "..") {
            bail!("write_file: {name:?} must be relative and stay inside the lab dir");
        }
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        // Private, like every secret file warden accepts (tokens, passwords).
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(path)
    }

    /// A bearer token as curl's header argument without the token on the
    /// command line (where `ps` would show it): the header is written to a
    /// private file in the lab directory and the argument is `@FILE`
    /// (`curl -H @FILE`). The file is named by the token's fingerprint and
    /// written once, whole (a temporary file renamed into place), so a
    /// thread asking for the same token while a curl reads it never sees it
    /// half written.
    pub(crate) fn auth_header(&self, token: &str) -> Result<String> {
        /// Each writer's own temporary file.
        static WRITES: AtomicU32 = AtomicU32::new(0);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(token, &mut h);
        let name = format!("headers/auth-{:016x}", h.finish());
        let path = self.dir.join(&name);
        if !path.exists() {
            let tmp = format!("{name}.{}", WRITES.fetch_add(1, Ordering::Relaxed));
            let written = self.write_file(&tmp, format!("Authorization: Bearer {token}\n"))?;
            std::fs::rename(&written, &path)
                .with_context(|| format!("renaming {} into place", written.display()))?;
        }
        Ok(format!("@{}", path.display()))
    }

    /// Runs a short command to completion inside `host` (any exit status).
    /// It has no time limit of its own: use it for commands that end.
    pub(crate) fn run<I, S>(
        &self,
        host: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: I,
    ) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let ns = &self.host(host)?.ns;
        let mut cmd = std::process::Command::new(&self.tools.ip);
        cmd.args(["netns", "exec", ns.as_str()])
            .arg(program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null());
        cmd.output()
            .with_context(|| format!("running {}", sys::describe(&cmd)))
    }

    /// [`Lab::run`] that fails on a non-zero exit and returns stdout.
    pub(crate) fn run_ok<I, S>(
        &self,
        host: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: I,
    ) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let program = program.as_ref().to_owned();
        let out = self.run(host, &program, args)?;
        if !out.status.success() {
            bail!(
                "{} on {host} failed ({}): {}{}",
                program.to_string_lossy(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Kills everything, prints process logs, deletes namespaces and the
    /// bridge. Idempotent; `Drop` calls it.
    fn teardown(&self) {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let started = Instant::now();
        self.kill_all();
        for h in &self.hosts {
            sys::kill_netns_pids(self.tools, &h.ns);
        }
        self.print_log_tails();
        for h in &self.hosts {
            sys::run_quiet(&self.tools.ip, ["netns", "del", h.ns.as_str()]);
            sys::run_quiet(&self.tools.ip, ["link", "del", h.veth.as_str()]);
        }
        sys::run_quiet(&self.tools.ip, ["link", "del", self.bridge.as_str()]);
        // Anything the loop above missed (a half-built lab).
        sys::cleanup_prefix(self.tools, &self.prefix);
        for r in self.reservations.lock().unwrap().drain(..) {
            let _ = std::fs::remove_file(r);
        }
        if let Some(dir) = self.tempdir.lock().unwrap().take() {
            if std::thread::panicking() || std::env::var_os("LAB_KEEP").is_some() {
                eprintln!("lab {}: kept {}", self.prefix, dir.keep().display());
            }
        }
        eprintln!(
            "lab {}: torn down in {:.0?}",
            self.prefix,
            started.elapsed()
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn validate_hosts(hosts: &[&str]) -> Result<()> {
    if hosts.is_empty() || hosts.len() > 200 {
        bail!("a lab needs 1..=200 hosts, got {}", hosts.len());
    }
    for (i, h) in hosts.iter().enumerate() {
        let ok_chars = h
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if h.is_empty() || h.len() > MAX_HOST_NAME || !ok_chars {
            bail!("host name {h:?}: use 1..={MAX_HOST_NAME} characters of [a-z0-9_]");
        }
        if hosts[..i].contains(h) {
            bail!("host name {h:?} given twice");
        }
    }
    Ok(())
}

/// Per-process counter mixed into prefix and subnet choices so that labs
/// built by parallel test threads start from different candidates.
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

fn reserve_prefix(tools: &sys::Tools) -> Result<(String, PathBuf)> {
    for _ in 0..64 {
        let prefix = format!("w{:04x}", random_u64() & 0xffff);
        if let Some(res) = sys::reserve(tools, &format!("p-{prefix}"))? {
            return Ok((prefix, res));
        }
    }
    bail!(
        "no free lab prefix after 64 tries (see {})",
        sys::RESERVATION_DIR
    )
}

fn reserve_subnet(tools: &sys::Tools) -> Result<(u8, PathBuf)> {
    let start = (random_u64() % 254) as u16;
    for i in 0..254u16 {
        let x = ((start + i) % 254 + 1) as u8;
        let Some(res) = sys::reserve(tools, &format!("n-{x}"))? else {
            continue;
        };
        // Reserved by nobody in the lab's sense; is it used for anything else?
        let addrs = sys::run(&tools.ip, ["-br", "addr"])?;
        if String::from_utf8_lossy(&addrs.stdout).contains(&format!("10.231.{x}.")) {
            let _ = std::fs::remove_file(res);
            continue;
        }
        return Ok((x, res));
    }
    bail!("no free 10.231.X.0/24 subnet")
}
