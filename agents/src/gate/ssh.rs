//! The gate over ssh: `warden rsync-gate --ssh` as the forced command
//! (`command="…"` in `authorized_keys`) of the key peers push into this
//! site with. sshd hands it what the client asked to run in
//! `SSH_ORIGINAL_COMMAND`; the gate lets through only rsync's server
//! (`rsync --server …`), with only the options warden's own client sends,
//! on paths inside one group's directory at this site, and a push only
//! while this site is a standby of that group ([`super::judge`]). What it
//! lets through, the caller runs itself, without a shell.
//!
//! It is not a sandbox: the login's Unix user decides what rsync may touch
//! (docs/rsyncd.md: a user that can write only the data directories). The
//! gate keeps the key to its purpose and its authority.

use std::path::{Component, Path, PathBuf};

use warden_config::model::ReplicationPlan;
use warden_config::Config;

use super::order::{PushOrder, Stated};

/// Long options rsync's client puts on the server's command line for the
/// transfers warden makes, that take no value.
const FLAGS: &[&str] = &[
    "--delete",
    "--delete-before",
    "--delete-during",
    "--delete-after",
    "--delete-delay",
    "--delete-missing-args",
    "--ignore-missing-args",
    "--force",
    "--list-only",
    "--from0",
    "--numeric-ids",
];

/// Short options allowed in the server's option cluster: rsync's flags
/// without a value, less `-K`, `-L` and `-k`, which follow symlinks out of
/// the directory (rrsync refuses them below a restricted directory too),
/// and less `-s` (`--secluded-args`): with it rsync's server reads its real
/// options and paths from the client on its standard input, after the gate
/// judged the command line (a "read" of the group's directory there is a
/// read of any file, with any option, on stdin).
const SHORT: &str = "ACDEHIJNORSUWXbcdgilmnopqrtuvxyz";

/// One transfer as the client asked sshd to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTransfer {
    /// The words of the command, `rsync` first: what the caller runs
    /// (`rsync` from its `PATH`).
    pub argv: Vec<String>,
    /// This site receives (`--sender` is not right after `--server`).
    pub push: bool,
    /// The paths it names (after rsync's `.` argument).
    pub paths: Vec<PathBuf>,
    /// Who asked (`SSH_CLIENT`'s address), for the messages.
    pub from: String,
    /// The order the pusher stated: a first word `WARDEN_PUSH=LINE`
    /// ([`super::order`]; warden's client puts it in `--rsync-path`),
    /// removed from `argv`. [`Stated::Nothing`] without it.
    pub order: Stated,
}

/// The first word of a command that states the push's order.
pub const ORDER_WORD: &str = "WARDEN_PUSH=";

/// `--rsync-path` for a push stating `order`: the word the gate reads,
/// then `rsync` (a shell without the gate would take the word for an
/// environment variable and run rsync all the same).
pub fn rsync_path_stating(order_line: &str) -> String {
    let line = order_line.trim_end();
    let quoted = shlex::try_quote(line).map_or_else(|_| "''".into(), |q| q.into_owned());
    format!("{ORDER_WORD}{quoted} rsync")
}

impl SshTransfer {
    /// Reads `command` (`SSH_ORIGINAL_COMMAND`) as a shell would split it
    /// (rsync escapes the special characters of the paths it sends);
    /// `client` is `SSH_CLIENT`. An error says what is not let through.
    pub fn parse(command: Option<&str>, client: Option<&str>) -> Result<SshTransfer, String> {
        let from = client
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("an unknown host")
            .to_string();
        let command = command.ok_or_else(|| {
            "no command was asked for (an interactive login): this key runs only rsync's server"
                .to_string()
        })?;
        let mut argv = shlex::split(command)
            .ok_or_else(|| format!("the command {command:?} is not well quoted"))?;
        let order = match argv.first().and_then(|w| w.strip_prefix(ORDER_WORD)) {
            Some(line) => {
                let o = PushOrder::parse(line).map_or_else(Stated::Bad, Stated::Order);
                argv.remove(0);
                o
            }
            None => Stated::Nothing,
        };
        // Exactly `rsync` (the caller runs the one on its PATH): another
        // program named rsync (`--rsync-path`) is not run.
        if argv.first().map(String::as_str) != Some("rsync")
            || argv.get(1).map(String::as_str) != Some("--server")
        {
            return Err(format!(
                "{:?} is not rsync's server (`rsync --server …`): this key runs only rsync",
                shorten(command)
            ));
        }
        let push = argv.get(2).map(String::as_str) != Some("--sender");
        let first = if push { 2 } else { 3 };
        let dot = argv[first..]
            .iter()
            .position(|a| a == ".")
            .map(|i| i + first)
            .ok_or_else(|| "rsync's server command has no `.` before its paths".to_string())?;
        for opt in &argv[first..dot] {
            allowed(opt)?;
        }
        let paths: Vec<PathBuf> = argv[dot + 1..].iter().map(PathBuf::from).collect();
        if paths.is_empty() || (push && paths.len() != 1) {
            return Err(format!(
                "rsync's server command names {} paths; a {} names {}",
                paths.len(),
                if push { "push" } else { "read" },
                if push { "one" } else { "at least one" }
            ));
        }
        for p in &paths {
            plain(p)?;
        }
        Ok(SshTransfer {
            argv,
            push,
            paths,
            from,
            order,
        })
    }
}

/// Is `opt` one warden's client sends? An error names it.
fn allowed(opt: &str) -> Result<(), String> {
    let number = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let ok = if FLAGS.contains(&opt) {
        true
    } else if let Some(v) = opt.strip_prefix("--timeout=") {
        number(v)
    } else if let Some(v) = opt.strip_prefix("--max-delete=") {
        // `-1`: what rsync's client sends for `--max-delete=0` (delete nothing)
        number(v) || v == "-1"
    } else if let Some(v) = opt.strip_prefix("--log-format=") {
        // Itemizing formats only: `%i`, `%n`, `%I`, `%L`, ….
        v.split('%')
            .skip(1)
            .all(|x| x.len() == 1 && x.bytes().all(|b| b.is_ascii_alphabetic()))
            && v.starts_with('%')
    } else if opt == "--files-from=-" {
        // The list comes from the client, never from a file here.
        true
    } else if let Some(v) = opt.strip_prefix("-@") {
        // `--modify-window=N` as rsync passes it on.
        number(v.strip_prefix('-').unwrap_or(v))
    } else if let Some(cluster) = opt.strip_prefix('-').filter(|c| !c.starts_with('-')) {
        short_cluster(cluster)
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "option {opt:?} is not one warden's replication sends; it is not let through"
        ))
    }
}

/// `lHogDtpAXrSe.iLsfxCIvu`: flags from [`SHORT`], then optionally `e`,
/// a protocol number and `.` with the client's capability letters.
fn short_cluster(c: &str) -> bool {
    let (flags, caps) = match c.split_once('.') {
        Some((head, caps)) => {
            let Some(e) = head.rfind('e') else {
                return false;
            };
            if !head[e + 1..].bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            (&head[..e], Some(caps))
        }
        None => (c, None),
    };
    !c.is_empty()
        && flags.chars().all(|f| SHORT.contains(f))
        && caps.is_none_or(|x| x.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// An absolute path with no `..`, no `.` and no wildcard (rsync's server
/// expands those in what it sends).
fn plain(p: &Path) -> Result<(), String> {
    let s = p.to_string_lossy();
    if !p.is_absolute()
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || s.contains(['*', '?', '['])
    {
        return Err(format!(
            "the path {s:?} is not a plain absolute path (no `..`, `.` or wildcards)"
        ));
    }
    Ok(())
}

/// `p` (lexically inside `dir`) is inside it on disk too: no symlink on
/// the way leads out — a symlink the pushers themselves left in the tree
/// (symlinks are replicated as they are) must not carry a transfer out of
/// the directory. The longest part of `p` that exists is resolved; its
/// last name only when rsync would follow it: a push's destination, or a
/// path that ends in `/`. (A symlink swapped in after this check is the
/// login user's permissions' to stop: docs/rsyncd.md.)
fn resolves_inside(p: &Path, dir: &Path, push: bool) -> Result<(), String> {
    let root = std::fs::canonicalize(dir).map_err(|e| {
        format!(
            "the group's directory {} cannot be resolved here: {e}",
            dir.display()
        )
    })?;
    let follow_last = push || p.as_os_str().as_encoded_bytes().ends_with(b"/") || p == dir;
    let mut probe = if follow_last {
        p.to_path_buf()
    } else {
        p.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    loop {
        match std::fs::canonicalize(&probe) {
            Ok(real) if real.starts_with(&root) => return Ok(()),
            Ok(real) => {
                return Err(format!(
                    "{} leads to {}, outside the group's directory {} (a symlink on the way)",
                    probe.display(),
                    real.display(),
                    dir.display()
                ))
            }
            // Not there yet (rsync makes it): judge what holds it.
            Err(_) if probe != dir && probe.pop() => {}
            Err(e) => {
                return Err(format!("{} cannot be resolved here: {e}", probe.display()));
            }
        }
    }
}

fn shorten(s: &str) -> String {
    let mut cut: String = s.chars().take(80).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    cut
}

/// May `t` go ahead at `site`? `Ok` is the group's directory and what
/// passed; `Err` why it is refused (every refusal starts with the mark
/// the pusher's agent recognizes).
pub fn check(config: &Config, site: &str, t: &SshTransfer) -> Result<(PathBuf, String), String> {
    let what = if t.push { "push" } else { "read" };
    let first = &t.paths[0];
    let refused = |why: String| {
        format!(
            "warden rsync-gate: refused a {what} of {} at site {site} from {}: {why}",
            first.display(),
            t.from
        )
    };
    let (group, dir) = config
        .groups
        .iter()
        .find_map(|(name, g)| {
            let r = g.replication()?;
            let here = r.sites.get(site)?;
            let dir = here.path.as_ref()?;
            (r.plan == ReplicationPlan::Rsync
                && here.ssh.is_some()
                && t.paths.iter().all(|p| p.starts_with(dir)))
            .then(|| (name.as_str(), dir.clone()))
        })
        .ok_or_else(|| {
            refused(format!(
                "no group's rsync plan reaches site {site} over ssh at a directory holding {} \
                 (`sites.{site}.path` with `ssh` in `[groups.NAME.replication]`)",
                if t.paths.len() == 1 {
                    "this path"
                } else {
                    "all these paths"
                }
            ))
        })?;
    for p in &t.paths {
        resolves_inside(p, &dir, t.push).map_err(&refused)?;
    }
    if !t.push {
        super::read_of_volume(config, site, group).map_err(&refused)?;
        return Ok((
            dir,
            format!(
                "a read of group {group}'s directory by {}: nothing changes here",
                t.from
            ),
        ));
    }
    let epoch = super::judge(config, site, group, refused)?;
    let groups = [&group.to_string()];
    let o = super::stated_order(config, site, &groups, &t.order)
        .map_err(refused)?
        .ok_or_else(|| refused("it states no order".into()))?;
    super::not_behind(o, epoch, site).map_err(refused)?;
    Ok((
        dir,
        format!(
            "push into group {group}'s directory from {} (site {} at epoch {}): site {site} is a \
             standby (epoch {epoch})",
            t.from, o.site, o.epoch
        ),
    ))
}

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
