//! Where a failback's resync sets a divergent item aside: moved to
//! `<quarantine>/<stamp>/<name>` by a rename, or — across filesystems (the
//! data directory a mount point, the default quarantine its sibling) — by
//! a copy with the plan's attributes and only then the removal here.

use super::*;

impl RsyncResyncer {
    /// Moves `name` (relative to the local root) to `<quarantine>/<stamp>/<name>`.
    /// A rename when both are on one filesystem; otherwise (the data
    /// directory is a mount point and the default quarantine, its sibling,
    /// is on the parent filesystem) a copy with every attribute the plan
    /// replicates, by the local rsync, then the original removed.
    pub(super) async fn move_aside(&self, name: &str, stamp: u64) -> Result<PathBuf, AgentError> {
        let from = self.local(name);
        let to = self
            .quarantine
            .join(stamp.to_string())
            .join(OsStr::from_bytes(&unescape_name(name)));
        let failed = |reason: String| AgentError::Divergent {
            action: "quarantine".into(),
            name: name.into(),
            reason: format!("moving it to {}: {reason}", to.display()),
        };
        let moved = (|| {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&from, &to)
        })();
        match moved {
            Ok(()) => Ok(to),
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                self.copy_aside(&from, &to).await.map_err(failed)?;
                Ok(to)
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }

    /// [`Self::move_aside`] across filesystems: `rsync -a` (with the plan's
    /// attribute flags) of the item, then the item removed here — only
    /// once the copy succeeded (a divergent write is never lost).
    async fn copy_aside(&self, from: &Path, to: &Path) -> Result<(), String> {
        let s = &self.settings;
        let mut args: Vec<OsString> = vec!["-a".into()];
        args.extend(crate::replicate::rsync::settings::attribute_args(s));
        args.push("--".into());
        // A directory (an empty one: divergent items are leaves) as its
        // contents, so that it becomes `to` rather than `to/NAME`.
        let dir = from.symlink_metadata().is_ok_and(|m| m.is_dir());
        for p in [from, to] {
            let mut a = p.as_os_str().to_owned();
            if dir {
                a.push("/");
            }
            args.push(a);
        }
        let mut cmd = tokio::process::Command::new(&s.rsync_path);
        cmd.env_clear().envs(warden_config::child::clean_env());
        // Ended by the agent's next process should this one be killed
        // while it copies (`crate::leftovers`), as every rsync of it.
        if let Some(mark) = &s.runs_mark {
            cmd.env(warden_config::run_mark::VAR, mark.value());
        }
        let out = cmd
            .env("LC_ALL", "C")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", s.rsync_path.display()))?;
        if !out.status.success() {
            return Err(format!(
                "another filesystem; copying it there failed ({}): {}",
                out.status,
                warden_config::child::scrub(String::from_utf8_lossy(&out.stderr).trim())
            ));
        }
        let removed = match from.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir(from),
            Ok(_) => std::fs::remove_file(from),
            Err(e) => Err(e),
        };
        removed.map_err(|e| {
            format!(
                "another filesystem; copied there, but cannot remove {} here: {e}",
                from.display()
            )
        })
    }
}
