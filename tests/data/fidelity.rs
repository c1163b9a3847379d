//! Issue 11, test 3 as deployed: what the rsync plan carries besides names
//! and bytes, through warden's own binaries between network-namespace hosts.
//! A tree with xattrs, POSIX ACLs, hard links, a sparse file and symlinks of
//! every kind arrives identical at the standby and comes back identical after
//! a switchover; a real OpenStack Swift storage node's device directory
//! (objects with their metadata in `user.swift.metadata`, account and
//! container databases) replicated by warden is served by the standby's
//! Swift after site a is lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::deploy::HOSTS;
use crate::lab::{self, secs, Deploy};
use crate::site::Data;
use crate::tree::{self, allocated, build_tree, manifest, SPARSE_ALLOC_MAX};

/// Whether getfattr/setfattr and getfacl/setfacl are here: in CI a missing
/// one fails the test, elsewhere it skips.
fn attr_tools() -> bool {
    let missing = tree::missing_tools();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("missing for the fidelity tests: {}", missing.join(", "));
    }
    eprintln!("note: skipping, missing: {}", missing.join(", "));
    false
}

/// Waits until the fidelity manifests of a's and b's directories agree.
fn identical(x: &Data, what: &str) -> Result<()> {
    lab::eventually(secs(45), secs(0.5), || {
        let (ma, mb) = (manifest(&x.dir("a")), manifest(&x.dir("b")));
        if ma == mb {
            Ok(())
        } else {
            bail!("{what}: a and b differ:{}", tree::differences(&ma, &mb))
        }
    })
}

fn switchover(x: &Data, to: &str) -> Result<()> {
    x.d.cli_ok(&["switchover", "web", "--to", to])?;
    x.d.wait_users_on(to, secs(60))?;
    lab::eventually(secs(30), secs(0.3), || {
        let rbs = x.d.runbooks()?;
        match rbs.iter().rev().find(|r| r["kind"] == "switchover") {
            Some(rb) if rb["to"] == to && rb["status"] == "succeeded" => Ok(()),
            other => bail!("switchover to {to} not done: {other:?}"),
        }
    })
}

/// xattrs (a `user.swift.metadata`-like binary value, on files, a directory
/// and the root), ACLs (access and default), hard-link groups, a 1 MiB sparse
/// file and symlinks (absolute, relative, `../..`, dangling, non-UTF-8)
/// arrive at b as they are at a; after a switchover, what is added at b
/// arrives at a the same way.
#[test]
fn a_rich_tree_arrives_whole_at_the_standby_and_back() -> Result<()> {
    if !attr_tools() {
        return Ok(());
    }
    let Some(x) = Data::with_failback("keep", "pw-b-right", "manual") else {
        return Ok(());
    };
    build_tree(&x.dir("a"));
    x.start()?;
    identical(&x, "after the initial full pass a → b")?;
    let alloc = allocated(&x.dir("b").join("sparse.img"));
    assert!(alloc <= SPARSE_ALLOC_MAX, "sparse file takes {alloc} at b");

    // Batches: a new Swift-like object with its metadata, a changed xattr,
    // a new name for an inode with names outside the batch.
    let obj = x
        .dir("a")
        .join("objects/7/fed/00000000000000000000000000000fed");
    std::fs::create_dir_all(&obj)?;
    std::fs::write(obj.join("1700000002.00000.data"), "fed")?;
    tree::setfattr(
        &obj.join("1700000002.00000.data"),
        "user.swift.metadata",
        &tree::swift_metadata("o3"),
    );
    tree::setfattr(&x.dir("a").join("files/plain.txt"), "user.note", b"v2");
    std::fs::hard_link(
        x.dir("a").join("files/plain.txt"),
        x.dir("a").join("links/plain-2"),
    )?;
    identical(&x, "after batches at a")?;

    // Users move to b; what b adds comes back to a whole.
    switchover(&x, "b")?;
    tree::symlinks(&x.dir("b").join("sym-at-b"));
    tree::write_sparse(&x.dir("b").join("sparse-at-b.img"));
    tree::setfacl(&x.dir("b").join("acl/shared.txt"), &["-m", "u:4321:r--"]);
    std::fs::hard_link(x.dir("b").join("links/a1"), x.dir("b").join("links/sub/a3"))?;
    identical(&x, "after writes at b, replicated b → a")?;
    switchover(&x, "a")?;
    identical(&x, "after the switchover back to a")?;
    let alloc = allocated(&x.dir("a").join("sparse-at-b.img"));
    assert!(alloc <= SPARSE_ALLOC_MAX, "sparse file takes {alloc} at a");
    Ok(())
}

/// `flush_all` to the site's memcached (the one its Swift proxy uses).
const FLUSH_MEMCACHED: &str = r#"#!/usr/bin/python3
import socket
s = socket.create_connection(("127.0.0.1", 11211), timeout=5)
s.sendall(b"flush_all\r\n")
answer = s.recv(64)
assert answer.startswith(b"OK"), answer
"#;

/// The proxy port of each Swift cluster (the site's echo service has 8080).
const SWIFT_PROXY_PORT: u16 = 8090;

/// Two real Swift clusters started by `scripts/swift-clusters.sh`, cluster A
/// in site a's namespace and B in b's, each with device `d1` under
/// `DIR/{a,b}/srv/d1`; stopped (by recorded PID) when dropped.
struct Swift {
    script: PathBuf,
    dir: PathBuf,
}

impl Swift {
    fn start(lab: &lab::Lab, dir: &Path) -> Result<Swift> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/swift-clusters.sh");
        let s = Swift {
            script,
            dir: dir.to_path_buf(),
        };
        let mut cmd = Command::new("bash");
        cmd.arg(&s.script).arg(dir).arg("start");
        for (c, site) in [("A", "a"), ("B", "b")] {
            cmd.env(format!("SWIFT_{c}_IP"), lab.ip(site).to_string())
                .env(format!("SWIFT_{c}_NETNS"), lab.ns(site))
                .env(
                    format!("SWIFT_{c}_PROXY_PORT"),
                    SWIFT_PROXY_PORT.to_string(),
                )
                .env(format!("SWIFT_{c}_PORT_BASE"), "6200")
                .env(format!("SWIFT_{c}_MEMCACHED_PORT"), "11211");
        }
        let out = cmd.output().context("running swift-clusters.sh")?;
        ensure!(
            out.status.success(),
            "swift-clusters.sh start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(s)
    }

    /// The device directory of cluster `site` (`a` or `b`).
    fn device(dir: &Path, site: &str) -> PathBuf {
        dir.join(site).join("srv/d1")
    }

    fn stop(&self, which: &[&str]) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg(&self.dir)
            .arg("stop")
            .args(which)
            .status();
    }
}

impl Drop for Swift {
    fn drop(&mut self) {
        self.stop(&[]);
    }
}

/// What a Swift client sees of one object.
#[derive(Debug, PartialEq)]
struct Object {
    body: Vec<u8>,
    etag: String,
    content_type: String,
    color: String,
}

/// A tempauth session with the cluster at `site`, from the `cli` host.
struct Client<'a> {
    lab: &'a lab::Lab,
    base: String,
    token: String,
}

impl<'a> Client<'a> {
    fn login(lab: &'a lab::Lab, site: &str) -> Result<Client<'a>> {
        let ip = lab.ip(site);
        let base = format!("http://{ip}:{SWIFT_PROXY_PORT}");
        let out = lab.run_ok(
            "cli",
            "curl",
            [
                "-sf",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "-H",
                "X-Auth-User: test:tester",
                "-H",
                "X-Auth-Key: testing",
                &format!("{base}/auth/v1.0"),
            ],
        )?;
        let token = headers(&out)
            .remove("x-auth-token")
            .with_context(|| format!("no token from {site}'s Swift: {out}"))?;
        Ok(Client {
            lab,
            base: format!("{base}/v1/AUTH_test"),
            token,
        })
    }

    fn curl(&self, args: &[&str]) -> Result<Vec<u8>> {
        let auth = format!("X-Auth-Token: {}", self.token);
        let mut all = vec!["-sf", "-H", &auth];
        all.extend_from_slice(args);
        let out = self.lab.run("cli", "curl", &all)?;
        if !out.status.success() {
            // Say what the server answered.
            all.retain(|a| *a != "-sf");
            all.extend_from_slice(&["-s", "-i", "-o", "-"]);
            let seen = self.lab.run("cli", "curl", &all)?;
            bail!(
                "curl {args:?}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&seen.stdout)
            );
        }
        Ok(out.stdout)
    }

    fn put(&self, name: &str, body: &Path, color: &str, ctype: &str) -> Result<String> {
        let out = self.curl(&[
            "-X",
            "PUT",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            &format!("X-Object-Meta-Color: {color}"),
            "-H",
            &format!("Content-Type: {ctype}"),
            "--data-binary",
            &format!("@{}", body.display()),
            &format!("{}/{name}", self.base),
        ])?;
        headers(&String::from_utf8_lossy(&out))
            .remove("etag")
            .with_context(|| format!("no ETag for PUT {name}"))
    }

    fn get(&self, name: &str) -> Result<Object> {
        let dir = tempfile_name(self.lab, name);
        let out = self.curl(&[
            "-D",
            "-",
            "-o",
            &dir.display().to_string(),
            &format!("{}/{name}", self.base),
        ])?;
        let mut h = headers(&String::from_utf8_lossy(&out));
        let body = std::fs::read(&dir)?;
        let _ = std::fs::remove_file(&dir);
        Ok(Object {
            body,
            etag: h.remove("etag").unwrap_or_default(),
            content_type: h.remove("content-type").unwrap_or_default(),
            color: h.remove("x-object-meta-color").unwrap_or_default(),
        })
    }

    /// The names a container listing shows.
    fn list(&self, container: &str) -> Result<Vec<String>> {
        let out = self.curl(&[&format!("{}/{container}?format=json", self.base)])?;
        let v: serde_json::Value = serde_json::from_slice(&out)?;
        Ok(v.as_array()
            .context("listing is not an array")?
            .iter()
            .filter_map(|o| o["name"].as_str().map(String::from))
            .collect())
    }
}

fn tempfile_name(lab: &lab::Lab, name: &str) -> PathBuf {
    lab.dir().join(format!("got-{}", name.replace('/', "_")))
}

/// Response headers (lower-cased names) of a `curl -D -` dump.
fn headers(dump: &str) -> BTreeMap<String, String> {
    dump.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// The seed's own use case: the device directory of a real Swift storage
/// node at a (account, container and object servers) is the rsync plan's
/// source. Objects PUT at a's Swift with user metadata are replicated by
/// warden; site a is lost (service, agent, rsync daemon and its Swift);
/// after the failover b's own Swift serves every object with its body,
/// ETag, content type and metadata, and its container listing names them.
#[test]
fn a_swift_device_directory_is_served_by_the_standby_swift_after_failover() -> Result<()> {
    if !attr_tools() {
        return Ok(());
    }
    let Some(lab) = lab::Lab::new_or_skip(HOSTS) else {
        return Ok(());
    };
    let sdir = lab.dir().join("swift");
    let dirs = [Swift::device(&sdir, "a"), Swift::device(&sdir, "b")];
    // The promote hook an operator gives a standby Swift: its proxy caches
    // account and container existence in memcached, and while it was
    // standby it cached "no such account" (its start-up check).
    let flush = lab.write_file("forget-cached-misses", FLUSH_MEMCACHED)?;
    std::fs::set_permissions(&flush, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let x = Data::build(
        lab,
        dirs,
        "quarantine",
        "pw-b-right",
        "manual",
        &flush.display().to_string(),
        "true",
    );
    let swift = Swift::start(&x.d.lab, &sdir)?;
    x.start()?;

    let at_a = Client::login(&x.d.lab, "a")?;
    at_a.curl(&["-X", "PUT", &format!("{}/photos", at_a.base)])?;
    let mut sent = BTreeMap::new();
    for i in 0..20 {
        let name = format!("photos/img-{i:02}.jpg");
        let body = format!("object {i} {}", "x".repeat(i * 97)).into_bytes();
        let file = x.d.lab.write_file(&format!("put-{i}"), &body)?;
        let color = format!("color-{i}");
        let ctype = format!("image/x-warden-{i}");
        let etag = at_a.put(&name, &file, &color, &ctype)?;
        sent.insert(
            name,
            Object {
                body,
                etag,
                content_type: ctype,
                color,
            },
        );
    }
    // a serves them (the test's own control)...
    for (name, want) in &sent {
        assert_eq!(&at_a.get(name)?, want, "{name} at a");
    }
    // ...and warden carries a's device directory to b.
    let synced = x.wait_same(secs(60)).context("a's device directory at b")?;
    let datas = synced.keys().filter(|k| k.ends_with(".data")).count();
    assert_eq!(datas, sent.len(), "one .data file per object at b");

    // Site a is lost, with its Swift.
    x.kill_site("a")?;
    swift.stop(&["a"]);
    x.d.wait_users_on("b", secs(60))?;

    let at_b = Client::login(&x.d.lab, "b")?;
    for (name, want) in &sent {
        let got = lab::eventually(secs(20), secs(0.5), || at_b.get(name))
            .with_context(|| format!("{name} at b's Swift"))?;
        assert_eq!(&got, want, "{name} as b's Swift serves it");
    }
    let mut listed = at_b.list("photos")?;
    listed.sort();
    let want: Vec<String> = sent
        .keys()
        .map(|k| k.trim_start_matches("photos/").to_string())
        .collect();
    assert_eq!(listed, want, "b's container listing");
    Ok(())
}
