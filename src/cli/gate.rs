//! `warden rsync-gate`: the rsync daemon's `pre-xfer exec` for a site's
//! module. It reads the transfer from the daemon's environment and the
//! site's agent state, and says its verdict where the daemon shows it to
//! the pusher (`warden_agents::gate` judges; docs/rsyncd.md).

use std::path::Path;
use std::process::ExitCode;

/// `rsync-gate`: the verdict on the transfer the rsync daemon describes in
/// its environment. A refusal goes to stdout, which the daemon shows the
/// pusher, and exits 1; so does anything that keeps the gate from judging
/// (it fails closed).
pub(super) fn rsync_gate(config: Option<&Path>, site: &str) -> ExitCode {
    let refuse = |why: String| {
        println!("{why}");
        ExitCode::FAILURE
    };
    let Some(path) = config else {
        return refuse(
            "warden rsync-gate: --config FILE (or WARDEN_CONFIG) is required; transfer refused"
                .into(),
        );
    };
    let cfg = match warden_config::load(path) {
        Ok(c) => c,
        Err(e) => return refuse(format!("warden rsync-gate: transfer refused: {e}")),
    };
    if !cfg.sites.contains_key(site) {
        return refuse(format!(
            "warden rsync-gate: transfer refused: --site {site:?} is not a site of {}",
            path.display()
        ));
    }
    let transfer = match warden_agents::gate::Transfer::from_env(|k| std::env::var(k).ok()) {
        Ok(t) => t,
        Err(e) => return refuse(format!("warden rsync-gate: transfer refused: {e}")),
    };
    match warden_agents::gate::check(&cfg, site, &transfer) {
        Ok(passed) => {
            eprintln!("warden rsync-gate: {passed}");
            ExitCode::SUCCESS
        }
        Err(why) => refuse(why),
    }
}
