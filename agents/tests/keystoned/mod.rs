//! A real Keystone (identity v3) in front of two real Swift clusters on
//! 127.0.0.1, for one test binary: `scripts/keystone.sh` (Keystone 22,
//! provisioned with project `dr`, user `warden`, an application credential,
//! user `outsider` in project `other`, regions `a` and `b` whose
//! object-store endpoints are the two proxies) and
//! `scripts/swift-clusters.sh` in its Keystone mode (authtoken +
//! keystoneauth). Everything is started in a temp dir on free ports and
//! stopped by PID when the [`Deployment`] guard drops, also when a test
//! fails.
//!
//! Tokens live [`TOKEN_LIFE_S`] seconds and a Swift proxy trusts a
//! validated token for [`PROXY_CACHE_S`], so a test can outlive a token.
//!
//! Needs root, Debian's Swift packages and python3-keystone,
//! python3-keystonemiddleware, jq and curl. Without them: with `CI=true`
//! the test fails saying what to install, otherwise it prints a skip line.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::swiftd::{free_ports as free_port, on_path};

/// The tokens' lifetime in this deployment (Keystone's `[token] expiration`).
pub(crate) const TOKEN_LIFE_S: u64 = 20;
/// How long a proxy keeps a validated token (authtoken's `token_cache_time`).
pub(crate) const PROXY_CACHE_S: u64 = 5;

/// What the deployment's `env.sh` files say.
#[derive(Debug, Clone)]
pub(crate) struct Keystone {
    /// `http://127.0.0.1:PORT/v3`.
    pub url: String,
    pub dr_project_id: String,
    pub app_cred_id: String,
    pub app_cred_secret: String,
    pub warden_password: String,
    pub outsider_password: String,
    /// The proxies of regions `a` and `b` (`http://127.0.0.1:PORT`).
    pub proxy_a: String,
    pub proxy_b: String,
}

/// Keystone and both clusters, running until dropped.
pub(crate) struct Deployment {
    dir: tempfile::TempDir,
    scripts: PathBuf,
    pub ks: Keystone,
}

fn env_file(path: &Path) -> impl Fn(&str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    move |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} not in env.sh"))
            .to_string()
    }
}

impl Deployment {
    /// Starts Keystone and both clusters, or `None` to skip.
    pub(crate) fn start() -> Option<Deployment> {
        let missing: Vec<&str> = [
            "keystone-wsgi-public",
            "keystone-manage",
            "swift-proxy-server",
            "swift-object-server",
            "memcached",
            "jq",
            "curl",
        ]
        .into_iter()
        .filter(|b| !on_path(b))
        .collect();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let problem = if !missing.is_empty() {
            Some(format!(
                "Keystone or Swift is not installed (missing {}); install with: apt-get install -y \
                 --no-install-recommends python3-keystone python3-keystonemiddleware jq curl swift \
                 swift-proxy swift-account swift-container swift-object memcached",
                missing.join(", ")
            ))
        } else if !root {
            Some("Keystone and Swift must be started as root".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{p}");
            }
            eprintln!("note: {p}; skipping the Keystone tests");
            return None;
        }
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let scripts = [here.join("scripts"), here.join("../scripts")]
            .into_iter()
            .find(|d| d.join("keystone.sh").is_file())
            .expect("scripts/keystone.sh not found");
        let dir = tempfile::tempdir().unwrap();
        let mut taken = Vec::new();
        let ks_port = free_port(&mut taken, 1);
        let (pa, pb) = (free_port(&mut taken, 1), free_port(&mut taken, 1));
        let swift_ports = [
            ("SWIFT_A_PROXY_PORT", pa),
            ("SWIFT_B_PROXY_PORT", pb),
            ("SWIFT_A_MEMCACHED_PORT", free_port(&mut taken, 1)),
            ("SWIFT_B_MEMCACHED_PORT", free_port(&mut taken, 1)),
            ("SWIFT_A_PORT_BASE", free_port(&mut taken, 3)),
            ("SWIFT_B_PORT_BASE", free_port(&mut taken, 3)),
        ];
        let d = Deployment {
            dir,
            scripts,
            ks: Keystone {
                url: String::new(),
                dr_project_id: String::new(),
                app_cred_id: String::new(),
                app_cred_secret: String::new(),
                warden_password: String::new(),
                outsider_password: String::new(),
                proxy_a: format!("http://127.0.0.1:{pa}"),
                proxy_b: format!("http://127.0.0.1:{pb}"),
            },
        };
        // the guard exists from here: whatever started is stopped on a panic
        let out = Command::new("bash")
            .arg(d.scripts.join("keystone.sh"))
            .arg(d.dir.path().join("keystone"))
            .arg("start")
            .env("KEYSTONE_PORT", ks_port.to_string())
            .env("KEYSTONE_IP", "127.0.0.1")
            .env(
                "KEYSTONE_REGIONS",
                format!("a={} b={}", d.ks.proxy_a, d.ks.proxy_b),
            )
            .env("KEYSTONE_TOKEN_EXPIRATION", TOKEN_LIFE_S.to_string())
            .env_remove("KEYSTONE_NETNS")
            .output()
            .expect("run scripts/keystone.sh");
        assert!(
            out.status.success(),
            "keystone.sh start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let get = env_file(&d.dir.path().join("keystone/env.sh"));
        let mut d = d;
        d.ks.url = get("KEYSTONE_URL");
        d.ks.dr_project_id = get("KEYSTONE_DR_PROJECT_ID");
        d.ks.app_cred_id = get("KEYSTONE_APP_CRED_ID");
        d.ks.app_cred_secret = get("KEYSTONE_APP_CRED_SECRET");
        d.ks.warden_password = get("KEYSTONE_WARDEN_PASSWORD");
        d.ks.outsider_password = get("KEYSTONE_OUTSIDER_PASSWORD");
        let mut cmd = Command::new("bash");
        cmd.arg(d.scripts.join("swift-clusters.sh"))
            .arg(d.dir.path().join("swift"))
            .arg("start")
            .env("SWIFT_KEYSTONE_URL", &d.ks.url)
            .env("SWIFT_TOKEN_CACHE_TIME", PROXY_CACHE_S.to_string())
            .env("SWIFT_A_IP", "127.0.0.1")
            .env("SWIFT_B_IP", "127.0.0.1")
            .env_remove("SWIFT_A_NETNS")
            .env_remove("SWIFT_B_NETNS");
        for (k, v) in swift_ports {
            cmd.env(k, v.to_string());
        }
        let out = cmd.output().expect("run scripts/swift-clusters.sh");
        assert!(
            out.status.success(),
            "swift-clusters.sh start (keystone) failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "keystone {} in front of swift a {} and b {}",
            d.ks.url, d.ks.proxy_a, d.ks.proxy_b
        );
        Some(d)
    }

    /// A scratch directory that lives as long as the deployment.
    pub(crate) fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `value` into a 0600 file of the scratch directory (a secret
    /// as an operator keeps it) and returns its path.
    pub(crate) fn secret_file(&self, name: &str, value: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join(name);
        std::fs::write(&p, value).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    fn run(&self, script: &str, sub: &str, args: &[&str]) {
        let status = Command::new("bash")
            .arg(self.scripts.join(script))
            .arg(self.dir.path().join(sub))
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
        assert!(status.success(), "{script} {args:?} failed");
    }

    /// How many token requests (`POST /v3/auth/tokens`) Keystone has served
    /// (its built-in server logs one line per request).
    pub(crate) fn token_requests(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("keystone/log/keystone.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"POST /v3/auth/tokens "))
            .count()
    }

    /// Stops Keystone (Swift keeps running).
    pub(crate) fn stop_keystone(&self) {
        self.run("keystone.sh", "keystone", &["stop"]);
    }

    /// Starts it again: same database and keys.
    pub(crate) fn start_keystone(&self) {
        self.run("keystone.sh", "keystone", &["start"]);
    }

    /// Stops one Swift cluster (`"a"` or `"b"`).
    pub(crate) fn stop_swift(&self, which: &str) {
        self.run("swift-clusters.sh", "swift", &["stop", which]);
    }

    /// Starts it again.
    pub(crate) fn start_swift(&self, which: &str) {
        self.run("swift-clusters.sh", "swift", &["start", which]);
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (script, sub) in [("swift-clusters.sh", "swift"), ("keystone.sh", "keystone")] {
            let _ = Command::new("bash")
                .arg(self.scripts.join(script))
                .arg(self.dir.path().join(sub))
                .arg("stop")
                .status();
        }
    }
}
