//! A real rsync daemon on 127.0.0.1 for the replication tests: started per
//! test from a temp dir (a writable module `drdata` on `target/`, a read-only
//! module `ro`), killed by PID on drop; plus tree snapshots. Configured as
//! docs/rsyncd.md asks (`use chroot = yes`, `munge symlinks = no`): without
//! chroot the daemon munges symlinks (`/rsyncd-munged/` prefix) or, with
//! `munge symlinks = no`, sanitizes their targets, and the replicator refuses
//! such a module at start.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warden_agents::replicate::RsyncSettings;
use warden_config::Secret;

pub(crate) const USER: &str = "drsync";
pub(crate) const PASSWORD: &str = "s3cret-Pw-9";
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn have_rsync() -> bool {
    let ok = Command::new("rsync")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("rsync is not installed; CI must install it (apt-get install -y rsync)");
        }
        eprintln!("note: rsync not installed, skipping this test");
    }
    ok
}

/// The real rsync's path (found on `PATH` now).
pub(crate) fn real_rsync() -> String {
    let out = Command::new("sh")
        .args(["-c", "command -v rsync"])
        .output()
        .unwrap()
        .stdout;
    String::from_utf8(out).unwrap().trim().to_string()
}

/// Writes an executable `rsync` wrapper at `path`: the shell `body` runs
/// first, then the real rsync (found on `PATH` now) with `extra` arguments
/// before the caller's.
pub(crate) fn rsync_wrapper(path: &Path, body: &str, extra: &str) {
    let real = real_rsync();
    std::fs::write(
        path,
        format!("#!/bin/sh\n{body}\nexec {real} {extra} \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// Writes at `path` an rsync that, once `flag` exists, runs the first
/// transfer whose arguments match `pattern` (a shell `case` pattern on
/// ` ARGS `) for real and then hangs (removing `flag`): a site or agent
/// lost just after a transfer delivered, before anyone saw it end.
pub(crate) fn hanging_rsync(path: &Path, flag: &Path, pattern: &str) {
    let real = real_rsync();
    rsync_wrapper(
        path,
        &format!(
            "if [ -e '{flag}' ]; then case \" $* \" in {pattern}) rm -f '{flag}'; {real} \"$@\"; exec sleep 120 ;; esac; fi",
            flag = flag.display(),
        ),
        "",
    );
}

/// Puts an rsync limited to 256 KiB/s first in this process's `PATH`.
pub(crate) fn slow_rsync_in_path(dir: &Path) {
    rsync_wrapper_in_path(dir, "", "--bwlimit=256");
}

/// Puts an [`rsync_wrapper`] (`body`, `extra`) first in this process's
/// `PATH`, in `dir/slow-bin`.
pub(crate) fn rsync_wrapper_in_path(dir: &Path, body: &str, extra: &str) {
    let bin = dir.join("slow-bin");
    std::fs::create_dir(&bin).unwrap();
    rsync_wrapper(&bin.join("rsync"), body, extra);
    std::env::set_var(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
}

/// Why a daemon did not start.
enum Start {
    /// It exited (its port was taken meanwhile, or a bad config).
    Exited(String),
    /// It runs but never answered.
    NotReady(String),
}

/// An rsync daemon with a writable module `drdata`, a read-only module `ro`.
pub(crate) struct Daemon {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Daemon {
    pub(crate) fn start() -> Daemon {
        Daemon::start_with("")
    }

    /// With `drdata_extra` (whole lines, e.g. a `pre-xfer exec`) added to
    /// the `drdata` module.
    pub(crate) fn start_with(drdata_extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["target", "ro", "src"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("rsyncd.secrets"), format!("{USER}:{PASSWORD}\n")).unwrap();
        chmod600(&d.join("rsyncd.secrets"));
        let module = |name: &str, path: &str, ro: &str| {
            format!(
                "[{name}]\n path = {}\n read only = {ro}\n auth users = {USER}\n secrets file = {}\n hosts allow = 127.0.0.1\n",
                d.join(path).display(),
                d.join("rsyncd.secrets").display()
            )
        };
        let conf = format!(
            "use chroot = yes\nmunge symlinks = no\nsocket options = TCP_NODELAY\nuid = root\ngid = root\nmax connections = 20\nlog file = {}\n{}{}",
            d.join("rsyncd.log").display(),
            module("drdata", "target", "no") + drdata_extra,
            module("ro", "ro", "yes")
        );
        std::fs::write(d.join("rsyncd.conf"), conf).unwrap();
        let mut daemon = Daemon {
            dir,
            port: 0,
            child: None,
        };
        // A free port found here can be taken by another test before the
        // daemon binds it; the daemon then exits at once: take another.
        for _ in 0..5 {
            daemon.port = warden_testkit::net::daemon_port();
            match daemon.try_up() {
                Ok(()) => return daemon,
                Err(Start::Exited(why)) => eprintln!("rsync daemon: {why}; another port"),
                Err(Start::NotReady(why)) => panic!("{why}"),
            }
        }
        panic!("the rsync daemon exited at start on 5 ports in a row (see its log)")
    }

    /// The daemon's process id, while it runs (its connections are its
    /// children: `--no-detach`).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// (Re)starts the daemon on its port; panics when it cannot.
    pub(crate) fn up(&mut self) {
        if let Err(Start::Exited(why) | Start::NotReady(why)) = self.try_up() {
            panic!("{why}");
        }
    }

    fn try_up(&mut self) -> Result<(), Start> {
        let d = self.dir.path();
        let child = Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--config={}", d.join("rsyncd.conf").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rsync --daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = std::fs::read_to_string(d.join("rsyncd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                return Err(Start::Exited(format!(
                    "rsync daemon on port {} exited at start ({status}): {}",
                    self.port,
                    tail.join(" | ")
                )));
            }
            let ok = Command::new("rsync")
                .arg(format!("rsync://127.0.0.1:{}/", self.port))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Start::NotReady(format!(
                    "rsync daemon not ready on port {}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    pub(crate) fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    pub(crate) fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    pub(crate) fn settings(&self, module: &str, password: &str) -> RsyncSettings {
        let mut s =
            RsyncSettings::new(self.src(), "127.0.0.1", module, USER, Secret::new(password));
        s.port = self.port;
        s.retry_max = Duration::from_millis(500);
        s.io_timeout = Duration::from_secs(5);
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.down();
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("rsyncd.log")).unwrap_or_default();
            eprintln!("--- rsyncd.log (tail)\n{}", tail(&log, 30));
        }
    }
}

pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn chmod600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Relative path → file content (None for a directory).
pub(crate) fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).ok());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The daemon's `drdata` module with the pair manifest at
/// `state/manifest.json` in the daemon's directory.
pub(crate) fn settings(d: &Daemon) -> RsyncSettings {
    let mut s = d.settings("drdata", PASSWORD);
    s.manifest = Some(d.dir.path().join("state/manifest.json"));
    s
}

/// Files only under `root` (relative path → content).
pub(crate) fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// Writes `body` to `root/name`, making its directories.
pub(crate) fn write(root: &Path, name: &str, body: &str) {
    let p = root.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// Waits until `dst/name` holds `body` (the peer got it).
pub(crate) async fn arrives(dst: &Path, name: &str, body: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if std::fs::read_to_string(dst.join(name)).ok().as_deref() == Some(body) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached the peer (it holds {:?})",
            snapshot(dst).keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
