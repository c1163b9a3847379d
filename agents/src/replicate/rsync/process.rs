//! The rsync process wrapper: one rsync run in its own process group (asked
//! to end, then killed, when stopped; killed as a group when dropped), its output parsed (itemized differences, escaped
//! names), and the symlink probe of the peer module. Its failures are
//! classified in [`super::classify`].

use super::*;
use std::time::Duration;
use warden_config::child::GroupKill;

/// The target of the probe symlink [`check_symlinks`] pushes: absolute,
/// and with `..` reaching out of the tree, the two things a daemon that
/// sanitizes symlinks changes.
pub(crate) const SYMLINK_PROBE_TARGET: &str = "/warden-symlink-probe/../../outside/x";

/// Checks that the peer module stores symlinks byte for byte: pushes a
/// probe symlink to [`SYMLINK_PROBE_TARGET`] under a scratch name, reads it
/// back with `--list-only -l` and removes it. A daemon that munges symlinks
/// (`munge symlinks`, the default without chroot) shows the target unchanged
/// but 15 bytes longer (`/rsyncd-munged/`); one that sanitizes them (no
/// chroot, `munge symlinks = no`) shows another target. Either is
/// [`AgentError::ReplicationSymlinks`] with the fix (see docs/rsyncd.md).
pub(crate) async fn check_symlinks(
    s: &RsyncSettings,
    cancel: &CancellationToken,
) -> Result<(), AgentError> {
    let unique = format!("{}-{}", std::process::id(), probe_counter());
    let private = super::pull::private_temp_dir().map_err(|e| AgentError::Watch {
        path: std::env::temp_dir().display().to_string(),
        reason: format!("cannot create the symlink probe: {e}"),
    })?;
    let dir = TempDir(private.join(format!("symlink-probe-{unique}")));
    let name = format!(".warden-symlink-probe-{unique}");
    let local = dir.0.join(&name);
    let io = |e: std::io::Error| AgentError::Watch {
        path: dir.0.display().to_string(),
        reason: format!("cannot create the symlink probe: {e}"),
    };
    std::fs::create_dir(&dir.0).map_err(io)?;
    std::os::unix::fs::symlink(SYMLINK_PROBE_TARGET, &local).map_err(io)?;
    run_rsync(
        s,
        vec!["-l".into(), local.clone().into(), s.url().into()],
        None,
        cancel,
        |_| {},
    )
    .await?;
    let mut seen = None;
    let listed = run_rsync(
        s,
        vec![
            "--list-only".into(),
            "-l".into(),
            "--no-h".into(),
            format!("{}{name}", s.url()).into(),
        ],
        None,
        cancel,
        |line| {
            if let Some(x) = parse_probe_line(line, &name) {
                seen = Some(x);
            }
        },
    )
    .await;
    // Removed whatever the listing said: the name is missing here now.
    let _ = std::fs::remove_file(&local);
    let removed = run_rsync(
        s,
        vec![
            "-l".into(),
            "--files-from=-".into(),
            "--from0".into(),
            "--delete-missing-args".into(),
            source_arg(&dir.0),
            s.url().into(),
        ],
        Some(format!("{name}\0").into_bytes()),
        cancel,
        |_| {},
    )
    .await;
    listed?;
    if let Err(e) = removed {
        warn!(target = %s.target(), probe = %name, cause = %e, "cannot remove the symlink probe from the peer module");
    }
    let want = SYMLINK_PROBE_TARGET;
    let detail = match seen {
        Some((size, target)) if size == want.len() as u64 && target == want => return Ok(()),
        Some((size, target)) if target == want && size == (want.len() + 15) as u64 => format!(
            "a probe symlink to {want:?} was stored munged as \"/rsyncd-munged/{want}\" (the daemon's \
             `munge symlinks`, on by default when `use chroot = no`): the peer's copies point nowhere and \
             every symlink would look divergent at failback"
        ),
        Some((_, target)) => format!(
            "a probe symlink to {want:?} was stored as {target:?} (the daemon sanitizes symlink targets \
             when `use chroot = no`): absolute and `..` targets would arrive changed"
        ),
        None => format!("the probe symlink {name} was not listed back by the module"),
    };
    Err(AgentError::ReplicationSymlinks {
        target: s.target(),
        module: s.module.clone(),
        detail,
    })
}

/// One `--list-only -l` line for `name`: its size and symlink target.
pub(crate) fn parse_probe_line(line: &str, name: &str) -> Option<(u64, String)> {
    let mut fields = line.split_whitespace();
    let perms = fields.next()?;
    if !perms.starts_with('l') {
        return None;
    }
    let size = fields.next()?.parse().ok()?;
    let rest = line.split_once(&format!(" {name} -> "))?.1;
    Some((size, rest.to_string()))
}

/// A per-process counter for unique probe names.
pub(super) fn probe_counter() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A directory removed (with its contents) when dropped.
pub(super) struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs rsync for `s` with the password in its environment (and `TZ=UTC`,
/// `LC_ALL=C` so listings are parseable), feeding `stdin` and handing each
/// stdout line to `on_line`; kills it when `cancel` fires.
pub(crate) async fn run_rsync(
    s: &RsyncSettings,
    mut args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    cancel: &CancellationToken,
    mut on_line: impl FnMut(&str) + Send,
) -> Result<(), AgentError> {
    // Nothing is sent under an order that no longer stands (a failover
    // elsewhere known here, this site demoted): checked right before each
    // transfer, so a batch or pass started later never goes out.
    if let Some(Err(why)) = s.stated.as_ref().map(StatedPush::stands) {
        return Err(AgentError::PushOrderGone(why));
    }
    let secs = s.io_timeout.as_secs().max(1);
    // Compare modification times to the nanosecond: with the default (whole
    // seconds) a same-size rewrite within the second of the last transfer
    // would be skipped by rsync's quick check and never reach the peer.
    args.insert(0, "--modify-window=-1".into());
    args.insert(0, format!("--timeout={secs}").into());
    let mut cmd = Command::new(&s.rsync_path);
    // Removed when the transfer ends (rsync reads it as it connects).
    let mut early = None;
    match &s.ssh {
        Some(login) => {
            args.insert(0, ssh_command(s, login, secs).into());
            args.insert(0, "-e".into());
            if let Some(stated) = &s.stated {
                // The peer's forced command reads it (docs/rsyncd.md).
                let path = crate::gate::ssh::rsync_path_stating(&stated.line());
                args.insert(0, format!("--rsync-path={path}").into());
            }
            cmd.env_clear().envs(warden_config::child::clean_env());
        }
        None => {
            args.insert(0, format!("--contimeout={secs}").into());
            // Every exchange with the daemon is a few small messages: with
            // Nagle's algorithm each waits for the peer's delayed ACK (40 ms
            // on Linux), about 140 ms per connection however little it
            // carries — most of a cut-over's final pass. The daemon side
            // needs `socket options = TCP_NODELAY` too (docs/rsyncd.md).
            args.insert(0, "--sockopts=TCP_NODELAY".into());
            if let Some(stated) = &s.stated {
                // The daemon's `early exec` reads it (docs/rsyncd.md); a
                // module without one ignores it.
                let file = early_input(&stated.line())?;
                args.insert(0, format!("--early-input={}", file.path().display()).into());
                early = Some(file);
            }
            cmd.env_clear()
                .envs(warden_config::child::clean_env())
                .env("RSYNC_PASSWORD", s.password.expose());
        }
    }
    // Its next process finds it by this should the agent be killed
    // outright ([`crate::leftovers`]); shared by every run of the agent,
    // so never used to stop one run (its process group is).
    if let Some(mark) = &s.runs_mark {
        cmd.env(warden_config::run_mark::VAR, mark.value());
    }
    cmd.args(&args)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a stop kills rsync and the processes it forked.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = warden_config::child::spawn_unless_busy(|| cmd.spawn()).map_err(|source| {
        AgentError::RsyncSpawn {
            program: s.rsync_path.display().to_string(),
            source,
        }
    })?;
    let mut group = GroupKill::new(child.id());
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    let stderr_pipe = child.stderr.take().expect("stderr is piped");
    let stderr_task = tokio::spawn(read_bounded_stderr(stderr_pipe));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let status = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => on_line(&l),
                _ => break tokio::select! {
                    st = child.wait() => st,
                    _ = cancel.cancelled() => {
                        stop(&mut group, &mut child).await;
                        return Err(AgentError::ReplicationCancelled)
                    }
                },
            },
            _ = cancel.cancelled() => {
                stop(&mut group, &mut child).await;
                return Err(AgentError::ReplicationCancelled);
            }
        }
    };
    // Exited and reaped: its group id may be reused, never kill it now.
    group.disarm();
    drop(early);
    let status = status.map_err(|source| AgentError::RsyncSpawn {
        program: s.rsync_path.display().to_string(),
        source,
    })?;
    let stderr = warden_config::child::scrub(&String::from_utf8_lossy(
        &stderr_task.await.unwrap_or_default(),
    ));
    match status.code() {
        Some(0) => Ok(()),
        // rsync's exit code names one condition: "some files vanished"
        // (24) outranks "--max-delete stopped deletions" (25). A pass that
        // left deletions undone is not done, whatever else vanished.
        Some(24)
            if stderr
                .lines()
                .any(|l| l.trim_start().starts_with(MAX_DELETE_STOPPED)) =>
        {
            Err(classify(s, 25, &stderr))
        }
        // 24: some files vanished while being sent: normal for a live tree; inotify reports them.
        Some(24) => Ok(()),
        code => Err(classify(s, code.unwrap_or(-1), &stderr)),
    }
}

/// How much of rsync's error output is kept from its start, and from its
/// end: what says why it failed (a login refused, a module unknown, the
/// gate's refusal, a read-only target) comes first, its exit's summary and
/// `--max-delete`'s stop last. A tree of a million unreadable files makes
/// one line each: kept whole, that was hundreds of megabytes per pass.
const STDERR_HEAD: usize = 256 << 10;
const STDERR_TAIL: usize = 256 << 10;

/// rsync's stderr read to its end, keeping [`STDERR_HEAD`] bytes of its
/// start and [`STDERR_TAIL`] of its end, with a line saying how much was
/// left out between them.
async fn read_bounded_stderr(mut pipe: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut head = Vec::new();
    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut dropped: u64 = 0;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut data = &chunk[..n];
        if head.len() < STDERR_HEAD {
            let take = data.len().min(STDERR_HEAD - head.len());
            head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        tail.extend(data);
        if tail.len() > STDERR_TAIL {
            let over = tail.len() - STDERR_TAIL;
            tail.drain(..over);
            dropped += over as u64;
        }
    }
    if dropped > 0 {
        // the tail from its next whole line
        let start = tail.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        tail.drain(..start);
        head.extend_from_slice(
            format!(
                "\n[… {} bytes of rsync's error output left out …]\n",
                dropped + start as u64
            )
            .as_bytes(),
        );
    }
    head.extend(tail);
    head
}

/// A file holding `line`, for rsync's `--early-input` (removed on drop),
/// in warden's private temporary directory ([`super::pull::private_temp_dir`]):
/// an agent killed outright (SIGKILL) during a push leaves it behind, and
/// there it litters no shared directory.
fn early_input(line: &str) -> Result<tempfile::NamedTempFile, AgentError> {
    use std::io::Write as _;
    let mut f = super::pull::private_temp_dir()
        .and_then(|dir| tempfile::Builder::new().prefix("push-").tempfile_in(dir))
        .and_then(|mut f| f.write_all(line.as_bytes()).map(|()| f))
        .map_err(|e| AgentError::State {
            path: std::env::temp_dir().display().to_string(),
            detail: format!("cannot write a push's early input: {e}"),
        })?;
    let _ = f.flush();
    Ok(f)
}

/// What rsync says (on stderr, from whichever side deleted) when
/// `--max-delete` stopped its deletions: "Deletions stopped due to
/// --max-delete limit (N skipped)".
const MAX_DELETE_STOPPED: &str = "Deletions stopped due to --max-delete limit";

/// How long a stopped rsync has to clean up before it is killed. It
/// usually ends within tens of milliseconds (the stop returns as soon as
/// its processes are gone); 400 ms was too short on a loaded host (CI
/// with test binaries on both cores: the receiver, starved, was killed
/// before it removed its temporary file).
const STOP_GRACE: Duration = Duration::from_millis(1500);

/// Stops a running rsync: SIGTERM to its process group first, so that it
/// removes the temporary file of the transfer it was in (`.NAME.XXXXXX`:
/// killed outright, rsync leaves it in the tree, where the next pass would
/// take it for a user's file — at a site just promoted, pushed to the peer
/// as data); once every process of the group has ended (rsync forks: the
/// receiver that holds the file may outlive the one started), or after
/// [`STOP_GRACE`], SIGKILL to whatever is left, and only then the child is
/// reaped (until then its group id cannot name another group).
async fn stop(group: &mut GroupKill, child: &mut tokio::process::Child) {
    group.terminate();
    if let Some(pgid) = child.id() {
        let deadline = std::time::Instant::now() + STOP_GRACE;
        while std::time::Instant::now() < deadline && group_running(pgid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    group.kill_now();
    let _ = child.kill().await;
}

/// Whether any process of group `pgid` still runs (zombies, ended and
/// waiting to be reaped, do not count), from `/proc`.
fn group_running(pgid: u32) -> bool {
    use super::receivers::{pids, stat};
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    pids().any(|pid| stat(pid).is_some_and(|st| st.pgrp == pgid && st.state != 'Z'))
}

/// `SOURCE/`: the trailing slash makes rsync mirror the contents.
pub(crate) fn source_arg(source: &Path) -> OsString {
    let mut a = source.as_os_str().to_owned();
    if !a.as_encoded_bytes().ends_with(b"/") {
        a.push("/");
    }
    a
}

/// Undoes rsync's `\#ooo` (octal byte) escapes in the names it prints
/// (with `LC_ALL=C` every byte outside printable ASCII is escaped).
pub(crate) fn rsync_unescape(name: &str) -> Vec<u8> {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 < b.len()
            && b[i + 1] == b'#'
            && b[i + 2..i + 5].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 2] - b'0') as u32 * 64
                + (b[i + 3] - b'0') as u32 * 8
                + (b[i + 4] - b'0') as u32;
            out.push(v as u8);
            i += 5;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// One line of a failback's verification (`rsync -n -a … --out-format='%i
/// %n'` from the active peer into this site) → a difference, if it is one:
/// what [`parse_difference`] counts, and also an item — a directory and
/// the tree's root included — whose mode, owner, group, ACL or xattrs
/// would change (`p`, `o`, `g`, `a`, `x`). The pull carries them all
/// (`-a`, with `-A`/`-X` when set), so any of them differing is data the
/// returning site did not get. rsync itemizes an owner only when this
/// process could set it (root), a group only when it could change to it:
/// a difference shown is one a pull could mend. A directory's own mtime
/// still follows its children, never a difference.
pub(crate) fn parse_whole_difference(line: &str) -> Option<Difference> {
    if let Some(d) = parse_difference(line) {
        return Some(d);
    }
    let (item, name) = line.split_at_checked(11)?;
    let name = name.strip_prefix(' ')?;
    let flags = item.as_bytes();
    if name.is_empty() || flags.starts_with(b"*") {
        return None;
    }
    let attrs = flags.get(5) == Some(&b'p')
        || flags.get(6) == Some(&b'o')
        || flags.get(7) == Some(&b'g')
        || flags.get(9) == Some(&b'a')
        || flags.get(10) == Some(&b'x');
    attrs.then(|| Difference {
        path: PathBuf::from(OsString::from_vec(rsync_unescape(name))),
        kind: DifferenceKind::Changed,
    })
}

/// One line of `rsync --dry-run --out-format='%i %n'` → a difference, if it is one.
pub(crate) fn parse_difference(line: &str) -> Option<Difference> {
    let (item, name) = line.split_at_checked(11)?;
    let name = name.strip_prefix(' ')?;
    if name.is_empty() || name == "./" {
        return None;
    }
    let path = PathBuf::from(OsString::from_vec(rsync_unescape(name)));
    if item.starts_with("*deleting") {
        return Some(Difference {
            path,
            kind: DifferenceKind::ExtraAtTarget,
        });
    }
    let flags = item.as_bytes();
    if flags.len() < 5 {
        return None;
    }
    // Bytes, not `str` slices: a line that is not rsync's (any text can
    // arrive on the pipe) must not split a character.
    let kind = if flags[2] == b'+' {
        DifferenceKind::MissingAtTarget
    } else if flags[1] == b'd' {
        // A directory's own mtime follows its children; not a difference of content.
        return None;
    } else if flags[2] == b'c'
        || flags[3] == b's'
        || matches!(flags[4], b't' | b'T')
        // A hard link to make, an ACL or xattrs to change (`-H`, `-A`, `-X`).
        || flags[0] == b'h'
        || flags.get(9) == Some(&b'a')
        || flags.get(10) == Some(&b'x')
    {
        DifferenceKind::Changed
    } else {
        return None;
    };
    Some(Difference { path, kind })
}

#[cfg(test)]
mod tests {
    /// A flood of error lines keeps its start and its end, and says how
    /// much it left out; a short one is kept whole.
    #[tokio::test]
    async fn rsync_error_output_is_kept_bounded() {
        let mut text = String::from("@ERROR: first line\n");
        for i in 0..200_000 {
            text.push_str(&format!(
                "rsync: [sender] opendir \"/d/{i}\" failed: Permission denied (13)\n"
            ));
        }
        text.push_str("rsync error: some files/attrs were not transferred (code 23)\n");
        let kept = super::read_bounded_stderr(text.as_bytes()).await;
        assert!(
            kept.len() < super::STDERR_HEAD + super::STDERR_TAIL + 200,
            "{}",
            kept.len()
        );
        let kept = String::from_utf8(kept).unwrap();
        assert!(kept.starts_with("@ERROR: first line\n"));
        assert!(kept.ends_with("(code 23)\n"));
        assert!(kept.contains("bytes of rsync's error output left out"));
        let short = "rsync: connection refused\n";
        assert_eq!(
            super::read_bounded_stderr(short.as_bytes()).await,
            short.as_bytes()
        );
    }

    /// A push's early input (the order it states) is written in warden's
    /// private temporary directory, never at the top of the shared one:
    /// an agent killed during a push leaves it behind (before, a
    /// `warden-push-*` file in /tmp per push cut off so).
    #[test]
    fn a_pushs_early_input_is_kept_in_wardens_private_directory() {
        let f = super::early_input("warden-push group=web site=a epoch=7\n").unwrap();
        let private = super::super::pull::private_temp_dir().unwrap();
        assert_eq!(f.path().parent(), Some(private.as_path()));
        assert_eq!(
            std::fs::read_to_string(f.path()).unwrap(),
            "warden-push group=web site=a epoch=7\n"
        );
    }
}
