//! Two real OpenStack Swift clusters (A and B) on 127.0.0.1 for one test
//! binary, started with the repo's `scripts/swift-clusters.sh` in a temp dir
//! on free ports, and stopped by PID (the script's `stop`) when the
//! [`Clusters`] guard drops, also when a test fails.
//!
//! Needs Debian's Swift packages and root. Without them: with `CI=true` the
//! test fails with a message saying what to install, otherwise it prints a
//! skip line ([`Clusters::start`] returns `None`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use warden_agents::replicate::SwiftSettings;
use warden_config::Secret;

pub(crate) const USER: &str = "test:tester";
pub(crate) const KEY: &str = "testing";
pub(crate) const REALM: &str = "realm1";
/// A user of the same account whose key a warden config accepts (8
/// characters or more, unlike `testing`).
pub(crate) const CONFIG_USER: &str = "test:warden";
pub(crate) const CONFIG_KEY: &str = "warden-testing";

/// One cluster's endpoints.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    pub auth_url: String,
    pub storage_url: String,
    /// Its name in the container-sync realm (`clustera`, `clusterb`).
    pub name: String,
}

impl Cluster {
    /// Settings for `test:tester` with `key`.
    pub(crate) fn settings_with_key(&self, key: &str) -> SwiftSettings {
        SwiftSettings::new(&self.auth_url, USER, Secret::new(key))
    }

    pub(crate) fn settings(&self) -> SwiftSettings {
        self.settings_with_key(KEY)
    }
}

/// Both clusters, running until dropped.
pub(crate) struct Clusters {
    dir: tempfile::TempDir,
    script: PathBuf,
    pub a: Cluster,
    pub b: Cluster,
}

pub(crate) fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A base port with `base..base+n` free now and none of them in `taken`
/// (below the ephemeral range, from a sequence that does not repeat within
/// the process; the script binds them right after). Ports chosen for one
/// start must not overlap: two Swift servers on one port share it
/// (SO_REUSEPORT) and answer each other's requests.
pub(crate) fn free_ports(taken: &mut Vec<u16>, n: u16) -> u16 {
    loop {
        let base = warden_testkit::net::daemon_ports(n);
        if (0..n).any(|i| taken.contains(&(base + i))) {
            continue;
        }
        taken.extend((0..n).map(|i| base + i));
        return base;
    }
}

impl Clusters {
    /// Starts both clusters (container-sync interval 1 s), or `None` to skip.
    pub(crate) fn start() -> Option<Clusters> {
        let missing: Vec<&str> = [
            "swift-proxy-server",
            "swift-account-server",
            "swift-container-server",
            "swift-object-server",
            "swift-container-sync",
            "memcached",
        ]
        .into_iter()
        .filter(|b| !on_path(b))
        .collect();
        let problem = if !missing.is_empty() {
            Some(format!(
                "Swift is not installed (missing {}); install it with: apt-get install -y --no-install-recommends swift swift-proxy swift-account swift-container swift-object python3-swiftclient python3-requests memcached",
                missing.join(", ")
            ))
        } else if !is_root() {
            Some("the Swift clusters must be started as root".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{p}");
            }
            eprintln!("note: {p}; skipping the Swift tests");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // agents/ (the tests) or the repo root (the bench)
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = [root.join("scripts"), root.join("../scripts")]
            .into_iter()
            .map(|d| d.join("swift-clusters.sh"))
            .find(|p| p.is_file())
            .expect("scripts/swift-clusters.sh not found");
        let mut taken = Vec::new();
        let ports = [
            ("SWIFT_A_PROXY_PORT", free_ports(&mut taken, 1)),
            ("SWIFT_B_PROXY_PORT", free_ports(&mut taken, 1)),
            ("SWIFT_A_MEMCACHED_PORT", free_ports(&mut taken, 1)),
            ("SWIFT_B_MEMCACHED_PORT", free_ports(&mut taken, 1)),
            ("SWIFT_A_PORT_BASE", free_ports(&mut taken, 3)),
            ("SWIFT_B_PORT_BASE", free_ports(&mut taken, 3)),
        ];
        let swift_dir = dir.path().join("swift");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg(&swift_dir).arg("start");
        for (k, v) in ports {
            cmd.env(k, v.to_string());
        }
        cmd.env("SWIFT_SYNC_INTERVAL", "1")
            .env("SWIFT_A_IP", "127.0.0.1")
            .env("SWIFT_B_IP", "127.0.0.1")
            .env_remove("SWIFT_A_NETNS")
            .env_remove("SWIFT_B_NETNS")
            .env_remove("SWIFT_KEYSTONE_URL");
        let guard = Clusters {
            dir,
            script,
            a: Cluster {
                auth_url: String::new(),
                storage_url: String::new(),
                name: "clustera".into(),
            },
            b: Cluster {
                auth_url: String::new(),
                storage_url: String::new(),
                name: "clusterb".into(),
            },
        };
        let out = cmd.output().expect("run scripts/swift-clusters.sh");
        if !out.status.success() {
            // the guard's drop stops whatever did start
            panic!(
                "swift-clusters.sh start failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env = std::fs::read_to_string(swift_dir.join("env.sh")).unwrap();
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} not in env.sh"))
                .to_string()
        };
        let mut c = guard;
        c.a.auth_url = get("SWIFT_A_AUTH_URL");
        c.a.storage_url = get("SWIFT_A_STORAGE_URL");
        c.b.auth_url = get("SWIFT_B_AUTH_URL");
        c.b.storage_url = get("SWIFT_B_STORAGE_URL");
        assert!(c.a.auth_url.starts_with("http://127.0.0.1:"));
        assert!(c.b.auth_url.starts_with("http://127.0.0.1:"));
        eprintln!("swift clusters: A {} B {}", c.a.auth_url, c.b.auth_url);
        Some(c)
    }

    /// A scratch directory that lives as long as the clusters.
    pub(crate) fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn script(&self, args: &[&str]) {
        let status = Command::new("bash")
            .arg(&self.script)
            .arg(self.dir.path().join("swift"))
            .args(args)
            .status()
            .expect("run scripts/swift-clusters.sh");
        assert!(status.success(), "swift-clusters.sh {args:?} failed");
    }

    /// The log so far of one daemon (`"proxy"`, `"container-sync"`, …)
    /// of one cluster (`"a"` or `"b"`); empty if there is none yet.
    pub(crate) fn log(&self, which: &str, daemon: &str) -> String {
        let p = self
            .dir
            .path()
            .join("swift")
            .join(which)
            .join("log")
            .join(format!("{daemon}.log"));
        std::fs::read_to_string(p).unwrap_or_default()
    }

    /// Stops one cluster (`"a"` or `"b"`): a site failure.
    pub(crate) fn stop_one(&self, which: &str) {
        self.script(&["stop", which]);
    }

    /// Starts it again (same data).
    pub(crate) fn start_one(&self, which: &str) {
        self.script(&["start", which]);
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg(self.dir.path().join("swift"))
            .arg("stop")
            .status();
    }
}
