//! `warden rsync-gate`: the rsync daemon's `pre-xfer exec` for a site's
//! module. It reads the transfer from the daemon's environment and the
//! site's agent state, and says its verdict where the daemon shows it to
//! the pusher (`warden_agents::gate` judges; docs/rsyncd.md). With
//! `--ssh` it is the forced command of the peers' ssh key instead: it
//! judges `SSH_ORIGINAL_COMMAND` and runs the rsync server it asked for,
//! or says on stderr why not.

use std::io::Read as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

/// The config and the site checked, or the refusal to say.
fn load(config: Option<&Path>, site: &str) -> Result<warden_config::Config, String> {
    let Some(path) = config else {
        return Err(
            "warden rsync-gate: refused the transfer: --config FILE (or WARDEN_CONFIG) is required"
                .into(),
        );
    };
    let cfg = warden_config::load(path)
        .map_err(|e| format!("warden rsync-gate: refused the transfer: {e}"))?;
    if !cfg.sites.contains_key(site) {
        return Err(format!(
            "warden rsync-gate: refused the transfer: --site {site:?} is not a site of {}",
            path.display()
        ));
    }
    Ok(cfg)
}

/// `rsync-gate`: the verdict on the transfer the rsync daemon describes in
/// its environment. A refusal goes to stdout, which the daemon shows the
/// pusher, and exits 1; so does anything that keeps the gate from judging
/// (it fails closed).
pub(super) fn rsync_gate(config: Option<&Path>, site: &str) -> ExitCode {
    let refuse = |why: String| {
        println!("{why}");
        ExitCode::FAILURE
    };
    let cfg = match load(config, site) {
        Ok(c) => c,
        Err(why) => return refuse(why),
    };
    let var = |k: &str| std::env::var(k).ok();
    let mut transfer = match warden_agents::gate::Transfer::from_env(var) {
        Ok(t) => t,
        Err(e) => return refuse(format!("warden rsync-gate: refused the transfer: {e}")),
    };
    // What this connection's `early exec` kept, if the module has one.
    transfer.order = warden_agents::gate::order::take(
        &warden_agents::settings::state_dir(&cfg, site),
        &var("RSYNC_PID").unwrap_or_default(),
        &transfer.module,
        &transfer.host,
    );
    match warden_agents::gate::check(&cfg, site, &transfer) {
        Ok(passed) => {
            eprintln!("warden rsync-gate: {passed}");
            ExitCode::SUCCESS
        }
        Err(why) => refuse(why),
    }
}

/// `rsync-gate --early`: the module's `early exec`. Keeps the order the
/// pusher sent on stdin (rsync's `--early-input`, possibly nothing) for the
/// `pre-xfer exec` of the same connection (`RSYNC_PID`), which judges it.
/// The daemon shows the pusher nothing of an `early exec`: a failure here
/// (exit 1: the transfer is aborted) is said on stderr, the daemon's log.
pub(super) fn early_gate(config: Option<&Path>, site: &str) -> ExitCode {
    let refuse = |why: String| {
        eprintln!("{why}");
        ExitCode::FAILURE
    };
    let cfg = match load(config, site) {
        Ok(c) => c,
        Err(why) => return refuse(why),
    };
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let mut input = Vec::new();
    // rsync sends at most about 5 KiB; read a little more, no further.
    if let Err(e) = std::io::stdin()
        .lock()
        .take(16 * 1024)
        .read_to_end(&mut input)
    {
        return refuse(format!(
            "warden rsync-gate: refused the transfer: cannot read the early input: {e}"
        ));
    }
    match warden_agents::gate::order::keep(
        &warden_agents::settings::state_dir(&cfg, site),
        &var("RSYNC_PID"),
        &var("RSYNC_MODULE_NAME"),
        &var("RSYNC_HOST_ADDR"),
        &input,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => refuse(format!("warden rsync-gate: refused the transfer: {e}")),
    }
}

/// `rsync-gate --ssh`: the verdict on `SSH_ORIGINAL_COMMAND`. What passes
/// replaces this process (the rsync server, run without a shell, its
/// stdin and stdout the client's); a refusal goes to stderr (stdout is
/// rsync's protocol stream, which ssh carries to the client) and exits 1.
pub(super) fn ssh_gate(config: Option<&Path>, site: &str) -> ExitCode {
    let refuse = |why: String| {
        eprintln!("{why}");
        ExitCode::FAILURE
    };
    let cfg = match load(config, site) {
        Ok(c) => c,
        Err(why) => return refuse(why),
    };
    let var = |k| std::env::var(k).ok();
    let transfer = match warden_agents::gate::ssh::SshTransfer::parse(
        var("SSH_ORIGINAL_COMMAND").as_deref(),
        var("SSH_CLIENT").as_deref(),
    ) {
        Ok(t) => t,
        Err(e) => return refuse(format!("warden rsync-gate: refused the transfer: {e}")),
    };
    let dir = match warden_agents::gate::ssh::check(&cfg, site, &transfer) {
        Ok((dir, _)) => dir,
        Err(why) => return refuse(why),
    };
    // `argv[0]` is `rsync` (the parse sees to it): the one on PATH, run in
    // the group's directory — a promote finds the pushes still running
    // into it by their working directory, and rsync's server moves into
    // its destination only once the client's file list has come (a round
    // trip later, or more): started elsewhere, a push let in just before
    // the promote was missed, and applied after it. Only if exec fails
    // does this return.
    let e = std::process::Command::new("rsync")
        .args(&transfer.argv[1..])
        .current_dir(&dir)
        .exec();
    refuse(format!(
        "warden rsync-gate: the transfer passed, but rsync cannot be run: {e}"
    ))
}
