//! Real authoritative DNS servers for tests: BIND9 (`named`) and Knot DNS
//! (`knotd`), each serving one zone that a TSIG key (hmac-sha256) may
//! update. Following ../shared/recipes/dns-bind9.md and dns-knot.md: every
//! path the daemon writes points into the test's own directory, IPv6
//! listening is off, recursion is off.
//!
//! [`prepare`] writes the config and returns the command line; the caller
//! starts it (directly on loopback, or with `Lab::spawn` inside a namespace)
//! and kills it by PID.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bind,
    Knot,
}

impl Kind {
    pub(crate) fn binary(self) -> &'static str {
        match self {
            Kind::Bind => "named",
            Kind::Knot => "knotd",
        }
    }
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Knot => "knot",
        }
    }
}

/// The zone a server serves.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    /// e.g. `dr.example.test`.
    pub origin: String,
    pub ttl: u32,
    /// (relative name, type, value), e.g. ("app", "A", "10.1.2.3").
    pub records: Vec<(String, String, String)>,
}

/// A prepared server: its command line and key material.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub kind: Kind,
    pub argv: Vec<String>,
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// TSIG key name.
    pub key_name: String,
    /// The key's secret (base64).
    pub secret_b64: String,
    /// The key in BIND key-file format (what warden's `credentials` file holds).
    pub key_file: PathBuf,
}

/// A fresh random TSIG secret (32 bytes, base64).
pub(crate) fn random_secret() -> String {
    use std::io::Read;
    let mut buf = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    data_encoding::BASE64.encode(&buf)
}

/// The same key in BIND key-file format.
pub(crate) fn bind_key(name: &str, secret_b64: &str) -> String {
    format!("key \"{name}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret_b64}\";\n}};\n")
}

fn zone_text(z: &Zone) -> String {
    let mut s = format!(
        "$ORIGIN {o}.\n$TTL {t}\n@ IN SOA ns1.{o}. hostmaster.{o}. ( 1 60 30 600 {t} )\n  IN NS ns1.{o}.\n",
        o = z.origin,
        t = z.ttl
    );
    for (n, ty, v) in &z.records {
        s.push_str(&format!("{n} IN {ty} {v}\n"));
    }
    s
}

/// Write config, zone and key for `kind` listening on `listen`, under `dir`.
pub(crate) fn prepare(kind: Kind, dir: &Path, listen: SocketAddr, zone: &Zone) -> Result<Prepared> {
    std::fs::create_dir_all(dir)?;
    let key_name = "wardenkey".to_string();
    let secret_b64 = random_secret();
    let key_file = dir.join("tsig.key");
    std::fs::write(&key_file, bind_key(&key_name, &secret_b64))?;
    // Private: warden refuses a secret file everyone can read.
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let zfile = dir.join(format!("{}.zone", zone.origin));
    std::fs::write(&zfile, zone_text(zone))?;
    let d = dir.display();
    let (ip, port) = (listen.ip(), listen.port());
    let argv = match kind {
        Kind::Bind => {
            let conf = format!(
                r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ {ip}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
    notify no;
}};
controls {{ }};
include "{k}";
zone "{o}" {{
    type primary;
    file "{z}";
    update-policy {{ grant {key_name} zonesub ANY; }};
}};
"#,
                k = key_file.display(),
                o = zone.origin,
                z = zfile.display(),
            );
            let cf = dir.join("named.conf");
            std::fs::write(&cf, conf)?;
            vec![
                "named".into(),
                "-g".into(),
                "-c".into(),
                cf.display().to_string(),
            ]
        }
        Kind::Knot => {
            std::fs::create_dir_all(dir.join("db"))?;
            let conf = format!(
                r#"server:
    rundir: "{d}"
    pidfile: "{d}/knot.pid"
    listen: {ip}@{port}

log:
  - target: stderr
    any: info

database:
    storage: "{d}/db"

control:
    listen: "{d}/knot.sock"

key:
  - id: {key_name}
    algorithm: hmac-sha256
    secret: {secret_b64}

acl:
  - id: update_acl
    key: {key_name}
    action: update

template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    journal-content: changes

zone:
  - domain: {o}
    file: "{z}"
    acl: update_acl
"#,
                o = zone.origin,
                z = zfile.display(),
            );
            let cf = dir.join("knot.conf");
            std::fs::write(&cf, conf)?;
            vec!["knotd".into(), "-c".into(), cf.display().to_string()]
        }
    };
    Ok(Prepared {
        kind,
        argv,
        dir: dir.to_path_buf(),
        listen,
        key_name,
        secret_b64,
        key_file,
    })
}

/// BIND only: also answer on `port` of the same address (a second
/// `listen-on` in the prepared config; call before starting it) — e.g. the
/// servers users read, beside the port a hidden primary takes updates on.
pub(crate) fn bind_also_listen_on(prep: &Prepared, port: u16) -> Result<()> {
    if prep.kind != Kind::Bind {
        bail!("bind_also_listen_on: {} is not BIND", prep.kind.label());
    }
    let conf = prep.dir.join("named.conf");
    let text = std::fs::read_to_string(&conf)?;
    let ip = prep.listen.ip();
    let listen = format!("listen-on port {} {{ {ip}; }};", prep.listen.port());
    if !text.contains(&listen) {
        bail!("{} has no {listen:?}", conf.display());
    }
    let both = format!("{listen}\n    listen-on port {port} {{ {ip}; }};");
    std::fs::write(&conf, text.replace(&listen, &both))?;
    Ok(())
}

/// `dig` arguments asking `server` for `name`/`rtype`, short output.
pub(crate) fn dig_args(server: SocketAddr, name: &str, rtype: &str) -> Vec<String> {
    vec![
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        "+short".into(),
        "+time=1".into(),
        "+tries=1".into(),
        name.into(),
        rtype.into(),
    ]
}

/// Ask `server` with `dig` from this namespace (loopback tests).
pub(crate) fn dig(server: SocketAddr, name: &str, rtype: &str) -> Result<String> {
    let out: Output = Command::new("dig")
        .args(dig_args(server, name, rtype))
        .output()
        .context("running dig (package bind9-dnsutils)")?;
    if !out.status.success() {
        bail!("dig failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether the binaries a test needs are installed.
pub(crate) fn have(kind: Kind) -> bool {
    which(kind.binary()) && which("dig")
}

pub(crate) fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        || Path::new("/usr/sbin").join(bin).is_file()
}

/// Skip (outside CI) or fail (CI=true) when a prerequisite is missing.
pub(crate) fn require(kind: Kind) -> bool {
    if have(kind) {
        return true;
    }
    let msg = format!(
        "{} or dig is not installed (packages bind9, bind9-dnsutils, knot)",
        kind.binary()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and a prerequisite is missing: {msg}");
    }
    eprintln!("SKIP: {msg}");
    false
}
