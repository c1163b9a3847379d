//! Running one of warden's commands — a promote/demote hook, a command
//! check, a fence command, a notify command — the one way: argv without a
//! shell, a clean environment (`warden_config::child::clean_env`) plus the
//! variables the caller gives and its run's mark
//! (`warden_config::run_mark`), stdin closed or fed, its own process group
//! (killed whole when it overruns its timeout or the run is dropped, with
//! what it moved out of the group and still carries its mark; a command
//! that ends keeps what it started), and the last
//! [`OUTPUT_TAIL_BYTES`] of what it wrote, every loaded secret masked.
//! It is judged by its exit, not its pipes: a process it leaves holding
//! them delays the answer by [`PIPE_GRACE`] at most, and they are drained
//! (not closed) for as long as that process holds them.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::describe_io;

/// Most bytes of a command's output kept.
pub const OUTPUT_TAIL_BYTES: usize = 2048;

/// How long the pipes are read after the command exited or was killed (a
/// process it started may still hold them).
pub const PIPE_GRACE: Duration = Duration::from_millis(200);

/// Which of its output is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// None (stdout and stderr to /dev/null).
    Discard,
    /// Stderr only (stdout to /dev/null).
    Stderr,
    /// Stdout and stderr, interleaved as they arrived.
    Both,
}

/// Told a started command's process id and its run's mark.
pub type Started<'a> = dyn Fn(u32, &str) + Sync + 'a;

/// One command to run.
#[derive(Clone)]
pub struct Command<'a> {
    /// The program and its arguments.
    pub argv: &'a [String],
    /// Variables on top of the clean environment.
    pub env: &'a [(&'a str, String)],
    /// Written to its stdin, which is then closed; `None`: /dev/null.
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub output: Output,
    /// Told its process id (its process group's too) and its run's mark
    /// (`warden_config::run_mark`) once it started: a caller that must find
    /// it again after its own death records them.
    pub started: Option<&'a Started<'a>>,
    /// Its run's mark, made by a caller that records it before the start
    /// (an agent killed in the instant after the start finds it by it);
    /// `None`: a new one.
    pub mark: Option<warden_config::run_mark::RunMark>,
    /// What a run that ended in time left running (a daemon a hook
    /// started) is recorded as kept across a restart of the agent
    /// (`RunMark::keep_what_is_left`, which reads every process's
    /// environment); `false` (a check, run every few seconds): not looked
    /// for, and ended by the agent's next process should it be killed.
    pub keep_left: bool,
}

impl std::fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("argv", &self.argv)
            .field("timeout", &self.timeout)
            .field("output", &self.output)
            .field("started", &self.started.is_some())
            .field("mark", &self.mark)
            .field("keep_left", &self.keep_left)
            .finish_non_exhaustive()
    }
}

/// A command that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub status: ExitStatus,
    /// The kept output's tail, lossily decoded, trimmed, secrets masked.
    pub output: String,
}

/// A command that did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It could not be started: why ("cannot start: …"), and whether that
    /// lasts (missing, not executable, a bad argument) or may pass (busy,
    /// out of memory or processes).
    NotStarted { why: String, lasting: bool },
    /// Its end could not be waited for.
    Wait(String),
    /// It overran its timeout and was killed with its process group; what
    /// it had written by then.
    TimedOut { output: String },
}

/// Run `cmd` (module docs).
pub async fn run(cmd: Command<'_>) -> Result<Finished, Failure> {
    let Some((program, args)) = cmd.argv.split_first() else {
        return Err(Failure::NotStarted {
            why: "cannot start: empty command".into(),
            lasting: true,
        });
    };
    let pipe = |keep: bool| if keep { Stdio::piped() } else { Stdio::null() };
    let mark = cmd.mark.unwrap_or_default();
    let keep_left = cmd.keep_left;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(warden_config::child::clean_env())
        .envs(cmd.env.iter().map(|(k, v)| (*k, v.as_str())))
        .env(warden_config::run_mark::VAR, mark.value())
        .stdin(pipe(cmd.stdin.is_some()))
        .stdout(pipe(cmd.output == Output::Both))
        .stderr(pipe(cmd.output != Output::Discard))
        .process_group(0)
        .kill_on_drop(true);
    let spawned = warden_config::child::spawn_unless_busy(|| command.spawn());
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            use std::io::ErrorKind::{
                ArgumentListTooLong, InvalidInput, NotFound, PermissionDenied,
            };
            // ENOEXEC (not a program this system runs) has no kind of its own
            let lasting = matches!(
                e.kind(),
                NotFound | PermissionDenied | InvalidInput | ArgumentListTooLong
            ) || e.raw_os_error() == Some(8);
            return Err(Failure::NotStarted {
                why: format!("cannot start: {}", describe_io(&e)),
                lasting,
            });
        }
    };
    // Armed while it runs: a timed-out or dropped run is killed with its
    // process group and what it moved out of it (found by its mark); one
    // that ended keeps what it started.
    if let (Some(started), Some(pid)) = (cmd.started, child.id()) {
        started(pid, mark.value());
    }
    let mut group = warden_config::child::GroupKill::with_mark(child.id(), mark);
    // Written while it runs: a command that does not read it all gets a
    // closed pipe, never a stuck caller.
    let _writer = match (cmd.stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => Some(tokio_util::task::AbortOnDropHandle::new(
            tokio::spawn(async move {
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            }),
        )),
        _ => None,
    };
    let tail = Arc::new(Mutex::new(Tail::default()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            collect(out, tail.clone(), 0),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            collect(err, tail.clone(), 1),
        )));
    }
    let waited = tokio::time::timeout(cmd.timeout, child.wait()).await;
    match &waited {
        Ok(_) if keep_left => group.disarm(),
        Ok(_) => group.disarm_unkept(),
        Err(_) => {
            group.kill_now();
            let _ = child.kill().await;
        }
    }
    let _ = tokio::time::timeout(PIPE_GRACE, futures::future::join_all(readers.iter_mut())).await;
    let output = warden_config::child::scrub(&tail.lock().map(|t| t.text()).unwrap_or_default());
    // A process it left holding the pipes (a service a hook started with
    // its output not sent elsewhere) keeps writing to them: they are
    // drained until it closes them, never closed under it (its next write
    // would kill it with SIGPIPE). Only a run dropped before its end
    // closes them (its process group is killed then).
    for r in readers {
        drop(r.detach());
    }
    match waited {
        Ok(Ok(status)) => Ok(Finished { status, output }),
        Ok(Err(e)) => Err(Failure::Wait(format!("cannot wait: {}", describe_io(&e)))),
        Err(_) => Err(Failure::TimedOut { output }),
    }
}

/// Copy a pipe (`stream` 0: stdout, 1: stderr) into the shared tail until
/// EOF or an error.
async fn collect(mut pipe: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>, stream: usize) {
    let mut buf = [0u8; 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut t) = tail.lock() {
                    t.push(stream, &buf[..n]);
                }
            }
        }
    }
}

/// The last [`OUTPUT_TAIL_BYTES`] bytes written, both streams in the order
/// they came. Each stream's last bytes that could begin a secret (one
/// fewer than the longest loaded one) wait in its `pending` until more of
/// that stream comes: a secret written in two pieces with the other
/// stream's bytes between them (a program that buffers stdout and writes
/// stderr at once) is masked whole, within its own stream, before it is
/// put beside the other's.
#[derive(Default)]
struct Tail {
    kept: Vec<u8>,
    pending: [Vec<u8>; 2],
}

impl Tail {
    fn push(&mut self, stream: usize, bytes: &[u8]) {
        let pending = &mut self.pending[stream];
        pending.extend_from_slice(bytes);
        let masked = warden_config::child::mask_bytes(pending);
        let hold = warden_config::child::longest_secret()
            .saturating_sub(1)
            .min(masked.len());
        let (out, rest) = masked.split_at(masked.len() - hold);
        self.kept.extend_from_slice(out);
        self.pending[stream] = rest.to_vec();
        self.trim();
    }

    fn trim(&mut self) {
        if self.kept.len() > OUTPUT_TAIL_BYTES {
            let cut = self.kept.len() - OUTPUT_TAIL_BYTES;
            self.kept.drain(..cut);
        }
    }

    fn text(&self) -> String {
        // What each stream still holds back comes last (its end).
        let mut all = self.kept.clone();
        for p in &self.pending {
            all.extend_from_slice(p);
        }
        if all.len() > OUTPUT_TAIL_BYTES {
            all.drain(..all.len() - OUTPUT_TAIL_BYTES);
        }
        // The cut may split a UTF-8 sequence: skip continuation bytes at the start.
        let start = all
            .iter()
            .position(|b| (b & 0xC0) != 0x80)
            .unwrap_or(all.len());
        String::from_utf8_lossy(&all[start..]).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_skips_split_utf8() {
        let mut t = Tail::default();
        t.push(0, "é".repeat(OUTPUT_TAIL_BYTES).as_bytes());
        t.push(0, b"x");
        let s = t.text();
        assert!(s.ends_with('x'));
        assert!(!s.contains('\u{FFFD}'));
    }
}
