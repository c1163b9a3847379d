//! The orchestrator's data directory on a small tmpfs that fills up: the
//! full disk is an alert in status, and a failover that does not need the
//! disk still moves users (issue 14, test 5).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::deploy::Knobs;
use crate::lab::{self, secs, Deploy};

/// A tmpfs mounted on `dir`, unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Result<Tmpfs> {
        std::fs::create_dir_all(&dir)?;
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()?;
        if !st.success() {
            bail!("mount tmpfs on {} failed", dir.display());
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_an_alert_and_the_failover_still_routes_users() -> Result<()> {
    let Some(d) = crate::deployment(Knobs {
        failback: "manual",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    let data = d.lab.dir().join("data");
    let _tmpfs = Tmpfs::mount(data.clone(), "4m")?;
    d.start_all()?;
    // Fill the disk: the store's next write fails with ENOSPC.
    let filler = data.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .status()?;
    let killed = std::time::Instant::now();
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(40))?;
    eprintln!(
        "users on b {:?} after the kill, with a full disk",
        killed.elapsed()
    );
    let alert = lab::eventually(secs(20), secs(0.5), || {
        let g = d.group()?;
        let alerts = g["alerts"].to_string();
        if alerts.contains("No space left") {
            Ok(alerts)
        } else {
            bail!("no full-disk alert yet: {alerts}")
        }
    })?;
    assert!(alert.contains("cannot write"), "{alert}");
    let g = d.group()?;
    assert_eq!(g["active"], "b", "the group says b is active: {g}");
    // Space again: the alert ends once the writes go through.
    std::fs::remove_file(&filler)?;
    lab::eventually(secs(30), secs(0.5), || {
        let g = d.group()?;
        let alerts = g["alerts"].to_string();
        if alerts.contains("No space left") {
            bail!("still alerting: {alerts}")
        }
        Ok(())
    })?;
    Ok(())
}
