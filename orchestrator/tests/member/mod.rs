//! One etcd member on loopback (Debian's `etcd-server`), started by each
//! test against a real etcd and killed on drop, and a store config for it
//! (shared by `etcd_store.rs` and `etcd_election.rs`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warden_config::EtcdConfig;

/// One etcd member on loopback, killed on drop.
pub(crate) struct Etcd {
    pub(crate) child: Child,
    pub(crate) url: String,
    peer: String,
    bin: PathBuf,
    flags: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    warden_testkit::net::daemon_port()
}

pub(crate) fn etcd() -> Option<Etcd> {
    etcd_with(&[], "http")
}

/// etcd with extra flags (TLS), its URLs in `scheme`.
pub(crate) fn etcd_with(flags: &[String], scheme: &str) -> Option<Etcd> {
    let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let Some(bin) = bin else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "etcd is needed (apt-get install etcd-server)");
        eprintln!("skipped: etcd not installed");
        return None;
    };
    // Ports picked here are free when picked, not when etcd binds them (a
    // test beside this one may take one first): an etcd that exits at
    // start, or stops answering right after it listened, is started again
    // on other ports.
    for attempt in 1..=5 {
        if let Some(e) = start_etcd(&bin, flags, scheme) {
            return Some(e);
        }
        eprintln!("etcd did not stay up (attempt {attempt}); again on other ports");
    }
    panic!("etcd did not start in 5 attempts");
}

/// One etcd start on fresh ports; `None` when it exited or stopped
/// listening within its first moments.
fn start_etcd(bin: &std::path::Path, flags: &[String], scheme: &str) -> Option<Etcd> {
    let (cp, pp) = (free_port(), free_port());
    let url = format!("{scheme}://127.0.0.1:{cp}");
    let peer = format!("http://127.0.0.1:{pp}");
    spawn(bin, flags, url, peer)
}

/// etcd on `url` and `peer`, with an empty data directory.
fn spawn(bin: &std::path::Path, flags: &[String], url: String, peer: String) -> Option<Etcd> {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(bin)
        .args(flags)
        .args(["--name", "t1", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("t1={peer}")])
        .args(["--logger", "zap", "--log-outputs"])
        .arg(dir.path().join("etcd.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd starts");
    let mut e = Etcd {
        child,
        url,
        peer,
        bin: bin.to_path_buf(),
        flags: flags.to_vec(),
        _dir: dir,
    };
    let addr = e.url.split("://").nth(1).unwrap_or_default().to_string();
    let t = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if e.child.try_wait().ok().flatten().is_some() {
            return None;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "etcd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still up, and still answering, a moment later.
    std::thread::sleep(Duration::from_millis(300));
    if e.child.try_wait().ok().flatten().is_some() || std::net::TcpStream::connect(&addr).is_err() {
        return None;
    }
    Some(e)
}

impl Etcd {
    /// The member killed and started again on the same URLs with an empty
    /// data directory (rebuilt by an operator): revisions start again from 1.
    #[allow(dead_code)] // etcd_store.rs and etcd_election.rs
    pub(crate) fn wiped(self) -> Etcd {
        let (bin, flags) = (self.bin.clone(), self.flags.clone());
        let (url, peer) = (self.url.clone(), self.peer.clone());
        drop(self);
        for _ in 0..20 {
            if let Some(e) = spawn(&bin, &flags, url.clone(), peer.clone()) {
                return e;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("etcd did not start again on {url}");
    }
}

pub(crate) fn cfg(url: &str, prefix: &str) -> EtcdConfig {
    EtcdConfig {
        endpoints: vec![url.to_string()],
        prefix: prefix.to_string(),
        lease_ttl: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        tls: None,
    }
}
