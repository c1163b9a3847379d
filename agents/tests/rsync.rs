//! The rsync replicator against a real rsync daemon on 127.0.0.1 (started per
//! test from a temp dir, killed by PID on drop). Needs the `rsync` binary: in
//! CI (`CI=true`) its absence fails the suite, elsewhere the tests skip.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{DifferenceKind, Replicator, RsyncReplicator, RsyncSettings};
use warden_agents::AgentError;
use warden_config::Secret;

const USER: &str = "drsync";
const PASSWORD: &str = "s3cret-Pw-9";
const PATIENCE: Duration = Duration::from_secs(20);

fn have_rsync() -> bool {
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

/// An rsync daemon with a writable module `drdata`, a read-only module `ro`.
struct Daemon {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Daemon {
    fn start() -> Daemon {
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
            "use chroot = no\nuid = root\ngid = root\nmax connections = 20\nlog file = {}\n{}{}",
            d.join("rsyncd.log").display(),
            module("drdata", "target", "no"),
            module("ro", "ro", "yes")
        );
        std::fs::write(d.join("rsyncd.conf"), conf).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut daemon = Daemon {
            dir,
            port,
            child: None,
        };
        daemon.up();
        daemon
    }

    fn up(&mut self) {
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
            let ok = Command::new("rsync")
                .arg(format!("rsync://127.0.0.1:{}/", self.port))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rsync daemon not ready on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    fn settings(&self, module: &str, password: &str) -> RsyncSettings {
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

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn chmod600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Relative path → file content (None for a directory).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
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

async fn converges(d: &Daemon, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (a, b) = (snapshot(&d.src()), snapshot(&d.target()));
        if a == b {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: target did not converge in {PATIENCE:?}\nsource: {:?}\ntarget: {:?}",
                a.keys(),
                b.keys()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_replication_carries_creates_overwrites_renames_and_deletes() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let src = d.src();
    std::fs::write(src.join("before-start.txt"), "seed").unwrap();
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await.unwrap();
    converges(&d, "initial full pass").await;

    std::fs::write(src.join("a.txt"), "one").unwrap();
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    std::fs::write(src.join("dir/sub/deep.txt"), "deep").unwrap();
    std::fs::write(src.join("dir/b.txt"), "b").unwrap();
    converges(&d, "creates").await;

    std::fs::write(src.join("a.txt"), "overwritten with more bytes").unwrap();
    converges(&d, "overwrite").await;

    std::fs::rename(src.join("a.txt"), src.join("renamed.txt")).unwrap();
    std::fs::rename(src.join("dir"), src.join("dir2")).unwrap();
    converges(&d, "renames of a file and a directory").await;
    assert!(!d.target().join("dir").exists() && d.target().join("dir2/sub/deep.txt").exists());

    std::fs::remove_file(src.join("renamed.txt")).unwrap();
    std::fs::remove_dir_all(src.join("dir2")).unwrap();
    converges(&d, "deletes of a file and a tree").await;
    assert_eq!(
        snapshot(&d.target()).len(),
        1,
        "only before-start.txt is left"
    );

    let deadline = Instant::now() + PATIENCE;
    while repl.lag() > Duration::ZERO {
        assert!(
            Instant::now() < deadline,
            "lag stays {:?} after convergence",
            repl.lag()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    repl.stop().await;
    std::fs::write(src.join("after-stop.txt"), "x").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !d.target().join("after-stop.txt").exists(),
        "stopped replicator still transfers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_after_the_daemon_was_down() {
    if !have_rsync() {
        return;
    }
    let mut d = Daemon::start();
    let src = d.src();
    for i in 0..5 {
        std::fs::write(src.join(format!("keep{i}.txt")), "v1").unwrap();
    }
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await.unwrap();
    converges(&d, "initial").await;

    d.down();
    std::fs::write(src.join("keep0.txt"), "v2, written while the peer was down").unwrap();
    std::fs::remove_file(src.join("keep1.txt")).unwrap();
    std::fs::create_dir(src.join("new-dir")).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("new-dir/while-down{i}.txt")), "x").unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        repl.lag() >= Duration::from_secs(1),
        "lag {:?} while the peer is down",
        repl.lag()
    );
    assert!(!d.target().join("new-dir").exists());

    d.up();
    converges(&d, "after the daemon came back").await;
    shutdown.cancel();
    repl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_clearly_on_wrong_password_missing_module_and_read_only_target() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    std::fs::write(d.src().join("f.txt"), "x").unwrap();

    let wrong = "WrongPassword-42";
    let err = RsyncReplicator::new(d.settings("drdata", wrong))
        .start(CancellationToken::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AgentError::ReplicationAuth { .. }), "{err:?}");
    assert!(msg.contains("drdata") && msg.contains("password"), "{msg}");
    assert!(
        !msg.contains(wrong) && !format!("{err:?}").contains(wrong),
        "password leaked: {msg}"
    );
    assert!(!err.is_retryable());

    let err = RsyncReplicator::new(d.settings("nosuchmodule", PASSWORD))
        .start(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::ReplicationNoModule { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("nosuchmodule"), "{err}");

    let err = RsyncReplicator::new(d.settings("ro", PASSWORD))
        .resync(CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::ReplicationReadOnly { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("\"ro\"") && err.to_string().contains("read only"),
        "{err}"
    );
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_differences_until_a_full_pass() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, tgt) = (d.src(), d.target());
    std::fs::write(src.join("same.txt"), "same").unwrap();
    std::fs::write(src.join("only-src.txt"), "new").unwrap();
    std::fs::write(src.join("changed.txt"), "source version, longer").unwrap();
    std::fs::write(tgt.join("only-target.txt"), "stale").unwrap();
    std::fs::write(tgt.join("changed.txt"), "target").unwrap();
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));

    let mut diffs = repl.verify().await.unwrap();
    diffs.sort_by(|a, b| a.path.cmp(&b.path));
    let got: Vec<(String, DifferenceKind)> = diffs
        .iter()
        .map(|d| (d.path.display().to_string(), d.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            ("changed.txt".to_string(), DifferenceKind::Changed),
            ("only-src.txt".to_string(), DifferenceKind::MissingAtTarget),
            ("only-target.txt".to_string(), DifferenceKind::ExtraAtTarget),
            ("same.txt".to_string(), DifferenceKind::MissingAtTarget),
        ]
    );
    assert!(!tgt.join("only-src.txt").exists(), "verify must not write");

    let (tx, rx) = tokio::sync::watch::channel(Default::default());
    let report = repl
        .resync(CancellationToken::new(), Some(tx))
        .await
        .unwrap();
    assert!(report.done.items >= 4, "{report:?}");
    assert!(report.done.bytes >= 4 + 3 + 22, "{report:?}");
    assert_eq!(*rx.borrow(), report.done);
    assert_eq!(repl.verify().await.unwrap(), vec![]);
    assert_eq!(snapshot(&src), snapshot(&tgt));
}
