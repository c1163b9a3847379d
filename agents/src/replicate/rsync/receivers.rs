//! Pushes into this site that outlive its promote. The rsync gate
//! (`warden rsync-gate`, docs/rsyncd.md) judges a push when its connection
//! starts; a push that started while this site was a standby goes on after
//! a promote — a full `rsync -a --delete` pass from the site failed away
//! from (cut off from the orchestrator, not from this site) may run for
//! hours, deleting and overwriting what users write here. So a promote,
//! once its role is on disk (the gate refuses every new push) and before
//! its hooks open the site to users' writes, ends every rsync still
//! receiving into the group's directory here ([`end_pushes_into`]).
//!
//! They are found in `/proc`, by what the receiving side of rsync looks
//! like (checked against rsync 3.5's daemon and its server over a remote
//! shell):
//!
//! - **daemon**: every connection is a child of the listening daemon,
//!   with the daemon's own command line (`rsync --daemon …`), whose
//!   working directory is the module's path from before the gate runs
//!   (`use chroot = yes` or not: `/proc/PID/cwd` shows the path as seen
//!   from outside the chroot); a push forks its receiver from it (the
//!   connection process stays as the generator), also there, and the
//!   receiver holds the temporary file `.NAME.XXXXXX` open. The listening
//!   daemon (its parent is not rsync) is left alone: it must go on
//!   answering. A connection cannot be told a push from a read while its
//!   gate runs, so every connection into the directory ends — a read
//!   from a site being promoted is not one of warden's own (only the
//!   active site is read) and its reader retries;
//! - **over ssh** (`warden rsync-gate --ssh` execs `rsync --server …`):
//!   the server and its forked receiver, with the server's command line,
//!   in the destination directory. `--server --sender` is a read and is
//!   left alone.
//!
//! Any other rsync (a client: this agent's own transfers, whose process
//! groups it made, or someone's local copy) is not a push into this site
//! from a peer and is never touched. What is found is asked to end
//! (SIGTERM: rsync removes its temporary file), given [`GRACE`], then
//! killed; a temporary file a killed receiver held is removed after it.
//! The scan runs a second time [`SETTLE`] later, for rsync servers over
//! ssh: a gate that judged just before the role was written execs rsync,
//! which reaches the directory a moment after. (A daemon connection is
//! in the directory before its gate runs: the first scan finds every one
//! that passed; one that turns up later is the pusher trying again, and
//! the gate refuses it.) An agent that may not look at or signal them
//! (not root, another user) says so: the promote goes on, with a warning
//! that a push may still be running.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{kill_process, Pid, Signal};
use tracing::{info, warn};

/// How long the receivers are given to end after SIGTERM (rsync 3.5 takes
/// about 0.6 s: it lets its generator and receiver finish their cleanup).
pub const GRACE: Duration = Duration::from_secs(2);

/// When the second scan looks again (see the module doc).
pub const SETTLE: Duration = Duration::from_millis(250);

/// One process, from `/proc/PID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stat {
    pub(super) comm: String,
    pub(super) state: char,
    pub(super) ppid: i32,
    pub(super) pgrp: i32,
    /// Clock ticks after boot: with the pid, who it is (a pid is reused).
    start: u64,
}

/// Every process id in `/proc` (none when it cannot be read).
pub(super) fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
}

pub(super) fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(s: &str) -> Option<Stat> {
    // `comm` is in parentheses and may hold anything, `)` included.
    let (open, close) = (s.find('(')?, s.rfind(')')?);
    let comm = s.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = s.get(close + 2..)?.split(' ').collect();
    Some(Stat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        // field 22 of the whole line; `rest` starts at field 3
        start: rest.get(19)?.parse().ok()?,
    })
}

fn cmdline(pid: i32) -> Option<Vec<Vec<u8>>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

/// Which rsync a command line is, on the receiving side of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// rsync's server receiving (over a remote shell): a push.
    Server,
    /// A server sending (`--server --sender`): a read.
    Sender,
    /// `rsync --daemon`: the listener, one of its connections, or a
    /// connection's receiver; the parent tells which.
    Daemon,
    /// Anything else: a client (this agent's transfers, a local copy).
    Client,
}

fn kind(argv: &[Vec<u8>]) -> Kind {
    if let Some(i) = argv.iter().position(|w| w == b"--server") {
        return if argv.get(i + 1).is_some_and(|w| w == b"--sender") {
            Kind::Sender
        } else {
            Kind::Server
        };
    }
    if argv.iter().any(|w| w == b"--daemon") {
        Kind::Daemon
    } else {
        Kind::Client
    }
}

/// Is `name` rsync's temporary name, `.NAME.XXXXXX`?
fn is_temp_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    let Some(rest) = b.strip_prefix(b".") else {
        return false;
    };
    rest.len() > 7
        && rest[rest.len() - 7] == b'.'
        && rest[rest.len() - 6..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric())
}

/// A receiving rsync found in the directory.
#[derive(Debug, Clone)]
struct Found {
    pid: i32,
    stat: Stat,
    kind: Kind,
    /// Temporary files inside the directory it holds open.
    temps: Vec<PathBuf>,
}

/// What one scan of `/proc` found.
#[derive(Debug, Default)]
struct Scan {
    found: Vec<Found>,
    /// rsync processes on the receiving side whose working directory this
    /// agent may not read (not root, another user's): they may be pushes.
    unseen: usize,
}

/// Every receiving rsync whose working directory is `dir` or below it,
/// but this agent's own.
fn scan(dir: &Path) -> Scan {
    let me = std::process::id() as i32;
    let mut out = Scan::default();
    for pid in pids() {
        if pid == me {
            continue;
        }
        let Some(st) = stat(pid) else { continue };
        if st.comm != "rsync" || st.state == 'Z' {
            continue;
        }
        let Some(argv) = cmdline(pid) else { continue };
        let k = kind(&argv);
        let receiving = match k {
            Kind::Server => true,
            // The listener's parent is not rsync (init, a supervisor).
            Kind::Daemon => stat(st.ppid).is_some_and(|p| p.comm == "rsync"),
            Kind::Sender | Kind::Client => false,
        };
        // This agent's own rsync runs in process groups it made (their
        // leaders are its children): never one of them.
        if !receiving || stat(st.pgrp).is_some_and(|l| l.ppid == me) {
            continue;
        }
        let cwd = match std::fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                out.unseen += 1;
                continue;
            }
            Err(_) => continue,
        };
        if !cwd.starts_with(dir) {
            continue;
        }
        let temps = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten()
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                    .filter(|p| p.starts_with(dir) && p.file_name().is_some_and(is_temp_name))
                    .collect()
            })
            .unwrap_or_default();
        out.found.push(Found {
            pid,
            stat: st,
            kind: k,
            temps,
        });
    }
    out
}

/// Still the process that was found (not ended, not a reused pid)?
fn alive(f: &Found) -> bool {
    stat(f.pid).is_some_and(|s| s.state != 'Z' && s.start == f.stat.start)
}

/// Sends `sig` to `f` if it is still itself: `Err` when not permitted.
fn signal(f: &Found, sig: Signal) -> Result<(), Errno> {
    if !alive(f) {
        return Ok(());
    }
    let Some(pid) = Pid::from_raw(f.pid) else {
        return Ok(());
    };
    match kill_process(pid, sig) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What [`end_pushes_into`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Transfers ended (a daemon connection, or an ssh server, with the
    /// receiver it forked).
    pub transfers: usize,
    /// Of their processes, how many had to be killed after [`GRACE`].
    pub killed: usize,
    /// Temporary files of killed receivers removed.
    pub temps_removed: usize,
    /// Processes this agent was not permitted to signal (still running).
    pub denied: usize,
    /// Receiving rsync processes whose directory this agent could not see.
    pub unseen: usize,
}

impl Ended {
    /// The outcome's words; `None` when there was nothing to end or say.
    pub fn say(&self, dir: &Path) -> Option<String> {
        let mut parts = Vec::new();
        if self.transfers > 0 {
            let n = self.transfers;
            let mut s = format!(
                "ended {n} push{} into {} still running from before the promote",
                if n == 1 { "" } else { "es" },
                dir.display()
            );
            if self.killed > 0 {
                s.push_str(&format!(
                    " ({} process{} killed after {} s, {} temporary file{} removed)",
                    self.killed,
                    if self.killed == 1 { "" } else { "es" },
                    GRACE.as_secs(),
                    self.temps_removed,
                    if self.temps_removed == 1 { "" } else { "s" }
                ));
            }
            parts.push(s);
        }
        if self.denied > 0 {
            parts.push(format!(
                "warning: {} rsync process{} receiving into {} could not be ended (not permitted: \
                 run the agent as root): a push from before the \
                 promote may still be running",
                self.denied,
                if self.denied == 1 { "" } else { "es" },
                dir.display()
            ));
        }
        if self.unseen > 0 {
            parts.push(format!(
                "warning: {} receiving rsync process{} could not be looked at (another user's: \
                 run the agent as root): a push into {} from before the promote may still be running",
                self.unseen,
                if self.unseen == 1 { "" } else { "es" },
                dir.display()
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Ends every rsync receiving into `dir` (see the module doc). Call it
/// once the site's role is on disk as active, so the gate refuses the
/// pusher's next connection.
pub async fn end_pushes_into(dir: &Path) -> Ended {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut ended = Ended::default();
    let mut seen_unseen = 0;
    // Who the first round handled (a process it could not end is found
    // again, but counted once).
    let mut handled: BTreeSet<(i32, u64)> = BTreeSet::new();
    for round in 0..2 {
        if round == 1 {
            tokio::time::sleep(SETTLE).await;
        }
        let d = dir.clone();
        let Ok(found) = tokio::task::spawn_blocking(move || scan(&d)).await else {
            continue;
        };
        seen_unseen = seen_unseen.max(found.unseen);
        let fresh: Vec<Found> = found
            .found
            .into_iter()
            // The second round is for ssh servers only: a daemon
            // connection is in the directory before its gate judges, so
            // one that passed was found by the first; one found now is
            // being refused by the gate (the pusher trying again).
            .filter(|f| round == 0 || f.kind == Kind::Server)
            .filter(|f| handled.insert((f.pid, f.stat.start)))
            .collect();
        end(&dir, fresh, &mut ended).await;
    }
    ended.unseen = seen_unseen;
    if let Some(s) = ended.say(&dir) {
        if ended.denied > 0 || ended.unseen > 0 {
            warn!("{s}");
        } else {
            info!("{s}");
        }
    }
    ended
}

async fn end(dir: &Path, found: Vec<Found>, ended: &mut Ended) {
    if found.is_empty() {
        return;
    }
    let pids: BTreeSet<i32> = found.iter().map(|f| f.pid).collect();
    // A transfer: a found process whose parent is not one (a daemon
    // connection and its receiver, an ssh server and its receiver).
    ended.transfers += found
        .iter()
        .filter(|f| !pids.contains(&f.stat.ppid))
        .count();
    let mut asked = Vec::new();
    for f in found {
        match signal(&f, Signal::TERM) {
            Ok(()) => asked.push(f),
            Err(e) => {
                warn!(pid = f.pid, cause = %e, dir = %dir.display(), "cannot end an rsync receiving into the promoted site");
                ended.denied += 1;
            }
        }
    }
    let deadline = Instant::now() + GRACE;
    while asked.iter().any(alive) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<Found> = asked.into_iter().filter(alive).collect();
    if left.is_empty() {
        return;
    }
    let mut temps: BTreeMap<PathBuf, ()> = BTreeMap::new();
    for f in &left {
        match signal(f, Signal::KILL) {
            Ok(()) => {
                ended.killed += 1;
                temps.extend(f.temps.iter().map(|t| (t.clone(), ())));
            }
            Err(_) => ended.denied += 1,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while left.iter().any(alive) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL leaves the receiver's temporary file in the tree.
    for t in temps.keys() {
        if std::fs::remove_file(t).is_ok() {
            ended.temps_removed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn command_lines_say_which_side() {
        assert_eq!(
            kind(&argv(
                "rsync --server -logDtpre.iLsfxCIvu --delete . /srv/b/"
            )),
            Kind::Server
        );
        assert_eq!(
            kind(&argv("rsync --server --sender -le.LsfxCIvu . /srv/b/")),
            Kind::Sender
        );
        assert_eq!(
            kind(&argv(
                "rsync --daemon --no-detach --config=/etc/rsyncd.conf"
            )),
            Kind::Daemon
        );
        // rsync's daemon over a remote shell: one connection, a server.
        assert_eq!(kind(&argv("rsync --server --daemon .")), Kind::Server);
        assert_eq!(
            kind(&argv("rsync -a --delete /srv/a/ rsync://b/appdata/")),
            Kind::Client
        );
    }

    #[test]
    fn temporary_names_and_stat_lines() {
        for (name, temp) in [
            (".big.bin.TBXUxl", true),
            (".x.a1B2c3", true),
            ("big.bin.TBXUxl", false),
            (".big.bin", false),
            (".big.bin.TBX-xl", false),
            (".TBXUxl", false),
        ] {
            assert_eq!(is_temp_name(OsStr::new(name)), temp, "{name}");
        }
        let line =
            "4242 (rsync) S 4241 4200 4200 0 -1 4194624 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                comm: "rsync".into(),
                state: 'S',
                ppid: 4241,
                pgrp: 4200,
                start: 987654
            }
        );
        let odd = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 1";
        assert_eq!(parse_stat(odd).unwrap().comm, "a) b");
    }
}
