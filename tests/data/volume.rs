//! A standby whose data volume is unmounted, with the real binaries and
//! real rsync daemons on network-namespace hosts: the active site's pushes
//! are refused by the standby's gate, with the reason, and land again once
//! the volume is back; a standby whose declared volume is not mounted is
//! not promoted; and a failback reads nothing from an active site whose
//! volume is lost until it is back.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::lab::{self, secs, Deploy};
use crate::site::{text, Data};

/// A tmpfs at `volume`, bind-mounted on `at` (the site's data directory);
/// both unmounted on drop, also when the test fails.
///
/// The lab's hosts run their processes through `ip netns exec`, which
/// gives each a mount namespace of its own, copied when it starts: the
/// volume is taken away and given back where the site's rsync daemon (and
/// so its gate) sees the filesystem, in the daemon's mount namespace.
struct Volume {
    volume: PathBuf,
    at: PathBuf,
}

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Volume {
    fn mount(volume: &Path, at: &Path) -> Result<Volume> {
        std::fs::create_dir_all(volume)?;
        std::fs::create_dir_all(at)?;
        let path = |p: &Path| p.display().to_string();
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=16m,mode=0755",
            "tmpfs",
            &path(volume),
        ])
        .context("a tmpfs for the volume (CI runs the tests as root)")?;
        let v = Volume {
            volume: volume.to_path_buf(),
            at: at.to_path_buf(),
        };
        run(&["mount", "--bind", &path(volume), &path(at)])?;
        Ok(v)
    }

    /// A tmpfs at `volume` only: the site's data directory `at` is not
    /// mounted yet (see [`Volume::attach`]). Made before the site's
    /// processes start, the tmpfs is in their mount namespaces too.
    fn unattached(volume: &Path, at: &Path) -> Result<Volume> {
        std::fs::create_dir_all(volume)?;
        std::fs::create_dir_all(at)?;
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=16m,mode=0755",
            "tmpfs",
            &volume.display().to_string(),
        ])
        .context("a tmpfs for the volume (CI runs the tests as root)")?;
        Ok(Volume {
            volume: volume.to_path_buf(),
            at: at.to_path_buf(),
        })
    }

    /// The volume given back as this test sees the filesystem.
    fn attach_here(&self) -> Result<()> {
        let (v, at) = (
            self.volume.display().to_string(),
            self.at.display().to_string(),
        );
        run(&["mount", "--bind", &v, &at]).map(drop)
    }

    /// `args` in the mount namespace of process `pid`.
    fn within(pid: u32, args: &[&str]) -> Result<String> {
        let pid = pid.to_string();
        let mut all = vec!["nsenter", "--target", &pid, "--mount", "--"];
        all.extend_from_slice(args);
        run(&all)
    }

    /// The volume taken away, as process `pid` sees the filesystem.
    /// A push under way holds the mount for a moment ("target is busy"):
    /// tried again for a while, then detached lazily — gone at once for
    /// every new lookup, as a lost mount is.
    fn detach(&self, pid: u32) -> Result<()> {
        let at = self.at.display().to_string();
        for _ in 0..25 {
            match Self::within(pid, &["umount", &at]) {
                Ok(_) => return Ok(()),
                Err(e) if e.to_string().contains("busy") => {
                    std::thread::sleep(std::time::Duration::from_millis(200))
                }
                Err(e) => return Err(e),
            }
        }
        Self::within(pid, &["umount", "-l", &at]).map(drop)
    }

    /// The volume given back, as process `pid` sees the filesystem.
    fn attach(&self, pid: u32) -> Result<()> {
        let (v, at) = (
            self.volume.display().to_string(),
            self.at.display().to_string(),
        );
        Self::within(pid, &["mount", "--bind", &v, &at]).map(drop)
    }

    /// The names in the data directory, as process `pid` sees it.
    fn listing(&self, pid: u32) -> Result<String> {
        Self::within(pid, &["ls", "-A", &self.at.display().to_string()])
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        let _ = Command::new("umount").arg("-l").arg(&self.volume).status();
    }
}

/// b's data directory is its own volume. Replication a → b runs; then b's
/// volume is unmounted (an operator's mistake, a lost iSCSI or NFS mount):
/// what a writes next is not pushed into the empty directory under the
/// mount point — b's gate refuses the push, and a's replication says why
/// ("was a mount point and is not one now") — and once the volume is
/// mounted again, replication resumes by itself and b holds every write.
/// Before, the push went ahead: the empty directory on b's root filesystem
/// received a's changes (a full pass would have copied the whole tree
/// there and made it the copy a failover starts from), and the volume,
/// back, missed them.
#[test]
fn a_push_into_a_standby_whose_volume_is_gone_is_refused_until_it_is_back() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-right") else {
        return Ok(());
    };
    let volume = Volume::mount(&x.d.lab.dir().join("b-volume"), &x.dir("b"))?;
    x.write("a", "one.txt", "1")?;
    x.start()?;
    x.wait_same(secs(30)).context("a → b onto b's volume")?;
    // b's agent has seen its directory as a mount point by now (at start).
    let seen = x.d.lab.dir().join("state-b").join("volumes.json");
    let record = std::fs::read_to_string(&seen).with_context(|| format!("{}", seen.display()))?;
    assert!(record.contains("\"web\""), "{record}");
    let rsyncd = x.d.lab.pid("rsyncd-b")?;
    volume.detach(rsyncd)?;
    x.write("a", "two.txt", "2")?;
    let err = lab::eventually(secs(30), secs(0.25), || {
        let r = x.replication()?;
        let errors = r["errors"].as_array().cloned().unwrap_or_default();
        errors
            .iter()
            .filter_map(|e| e.as_str())
            .find(|e| e.contains("was a mount point and is not one now"))
            .map(str::to_string)
            .with_context(|| format!("no refusal yet: {r}"))
    })?;
    assert!(err.contains("refused a push"), "{err}");
    std::thread::sleep(secs(1));
    let under = volume.listing(rsyncd)?;
    assert!(
        under.trim().is_empty(),
        "pushed into the directory under b's mount point: {under}"
    );
    // The volume is back: replication resumes by itself, nothing lost.
    volume.attach(rsyncd)?;
    let both = x
        .wait_same(secs(60))
        .context("after the volume came back")?;
    assert_eq!(
        (
            text(&both, "one.txt").as_deref(),
            text(&both, "two.txt").as_deref()
        ),
        (Some("1"), Some("2"))
    );
    drop(volume);
    Ok(())
}

/// b's data directory is declared a volume of its own (`mount_point =
/// true`), and the volume is not mounted when b's agent starts (so b never
/// saw it mounted and recorded nothing). a's pushes are refused by b's gate
/// from the first ("declared a mount point"), nothing lands in the
/// directory under the mount point, and the group's alerts say b cannot
/// be promoted. a's service dies: the automatic failover to b waits for
/// approval with that reason instead of starting, and the approval is
/// refused while b says so (nothing fenced, no runbook). The volume is
/// mounted: a's data reaches it, the alert goes, and the approval moves
/// users to b, promoted on its volume. Before, the gate judged only a
/// directory once seen mounted, so the pushes filled b's root filesystem,
/// and b was failed over to and promoted on that copy, which the volume,
/// mounted later, hid.
#[test]
fn a_standby_whose_declared_volume_is_not_mounted_takes_no_push_and_no_promote() -> Result<()> {
    let Some(x) = Data::with_b_mount_point("keep") else {
        return Ok(());
    };
    let volume = Volume::unattached(&x.d.lab.dir().join("b-volume"), &x.dir("b"))?;
    x.write("a", "one.txt", "1")?;
    x.start()?;
    let err = lab::eventually(secs(30), secs(0.25), || {
        let r = x.replication()?;
        let errors = r["errors"].as_array().cloned().unwrap_or_default();
        errors
            .iter()
            .filter_map(|e| e.as_str())
            .find(|e| e.contains("declared a mount point"))
            .map(str::to_string)
            .with_context(|| format!("no refusal yet: {r}"))
    })?;
    assert!(err.contains("refused a push"), "{err}");
    let under: Vec<_> = std::fs::read_dir(x.dir("b"))?.collect();
    assert!(under.is_empty(), "pushed under b's mount point: {under:?}");
    let alerted = |x: &Data| -> Result<bool> {
        let alerts = x.d.group()?["alerts"].to_string();
        Ok(alerts.contains("site b cannot be promoted for group web now"))
    };
    lab::eventually(secs(30), secs(0.25), || {
        anyhow::ensure!(alerted(&x)?, "no alert yet");
        Ok(())
    })?;
    x.d.wait_verdict("b", "healthy", secs(20))?;
    x.d.lab.kill("svc-a")?;
    let g = lab::eventually(secs(30), secs(0.25), || {
        let g = x.d.group()?;
        anyhow::ensure!(g["phase"] == "pending_approval", "group {}", g["phase"]);
        Ok(g)
    })?;
    let reason = g["pending"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("site b cannot be promoted") && reason.contains("declared a mount point"),
        "{reason}"
    );
    let refused = x.d.operator().cli(&["approve", "web"])?;
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("nothing was started"),
        "{err}"
    );
    assert!(x.d.runbooks()?.is_empty(), "no runbook started");
    // The volume is mounted, where b's agent, b's rsync daemon and this
    // test see the filesystem: a's data reaches it, the alert goes.
    for p in ["agent-b", "rsyncd-b"] {
        volume.attach(x.d.lab.pid(p)?)?;
    }
    volume.attach_here()?;
    lab::eventually(secs(30), secs(0.25), || {
        anyhow::ensure!(!alerted(&x)?, "still alerted");
        Ok(())
    })?;
    let b = x.wait_same(secs(30)).context("a → b onto b's volume")?;
    assert_eq!(text(&b, "one.txt").as_deref(), Some("1"));
    x.d.cli_ok(&["approve", "web"])?;
    x.d.wait_users_on("b", secs(30))?;
    let hooks = x.d.hook_log();
    assert!(hooks.contains("promote b"), "b promoted: {hooks}");
    drop(volume);
    Ok(())
}

/// Site a fails over to b, whose data directory is its own volume; users
/// write at b. Then b's volume is lost where b's rsync daemon sees the
/// filesystem, and a stray file lies in the directory under the mount
/// point. a returns: the failback's resync reads b's module, and b's gate
/// refuses the read ("is not the group's data") — a keeps every file it
/// had and takes nothing from under the mount point, users stay on b.
/// The volume is back: the failback completes with b's writes at a.
/// Before, every read passed: the resync took the stray file for b's
/// tree, fetched it, and deleted a's files that b "no longer had"
/// (within the mass-delete guard's limits; only an empty module held).
#[test]
fn a_failback_reads_nothing_from_an_active_site_whose_volume_is_gone() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-right") else {
        return Ok(());
    };
    let volume = Volume::mount(&x.d.lab.dir().join("b-volume"), &x.dir("b"))?;
    let files = ["one.txt", "two.txt", "docs/three.txt"];
    for f in files {
        x.write("a", f, f)?;
    }
    x.start()?;
    x.wait_same(secs(30)).context("a → b onto b's volume")?;
    // b's agent has recorded its directory as a mount point by now.
    let seen = x.d.lab.dir().join("state-b").join("volumes.json");
    lab::eventually(secs(10), secs(0.25), || {
        let record = std::fs::read_to_string(&seen).unwrap_or_default();
        anyhow::ensure!(record.contains("\"web\""), "not recorded yet: {record}");
        Ok(())
    })?;
    // The manifest is flushed at most once a second.
    std::thread::sleep(secs(1.5));
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    x.write("b", "during.txt", "written at b during the disaster")?;
    let rsyncd = x.d.lab.pid("rsyncd-b")?;
    volume.detach(rsyncd)?;
    let stray = x.dir("b").join("stray.txt").display().to_string();
    Volume::within(
        rsyncd,
        &["sh", "-c", &format!("echo under the mount point > {stray}")],
    )?;

    x.restart_site("a")?;
    lab::eventually(secs(60), secs(0.5), || {
        let said = format!(
            "{}{}",
            serde_json::to_string(&x.d.runbooks()?)?,
            x.replication()?
        );
        anyhow::ensure!(
            said.contains("is not the group's data"),
            "no refused read yet: {said}"
        );
        Ok(())
    })?;
    let a = crate::site::tree(&x.dir("a"))?;
    for f in files {
        assert!(a.contains_key(f), "{f} deleted at a: {:?}", a.keys());
    }
    assert!(
        !a.contains_key("stray.txt"),
        "fetched from under b's mount point"
    );
    x.d.wait_users_on("b", secs(1))?;

    // The volume is back: the failback goes through with b's writes.
    volume.attach(rsyncd)?;
    x.d.wait_users_on("a", secs(120))
        .context("failback to a once b's volume is back")?;
    let a = crate::site::tree(&x.dir("a"))?;
    assert_eq!(
        text(&a, "during.txt").as_deref(),
        Some("written at b during the disaster")
    );
    assert!(!a.contains_key("stray.txt"));
    drop(volume);
    Ok(())
}
