//! Processes running inside lab hosts.
//!
//! Each process has a test-chosen name, unique within the lab, and a log
//! file `<lab dir>/<name>.log` that receives its stdout and stderr (a
//! restart appends, after a `--- lab:` separator line). The lab reaps its
//! children itself, so a killed process is gone at once, not a zombie.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::{sys, Lab};

/// How long [`Lab::stop`] waits after SIGTERM before SIGKILL.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(5);

/// Lines of each log printed when the lab is torn down.
const TAIL_LINES: usize = 80;

/// The processes of one lab, in spawn order.
#[derive(Default)]
pub(super) struct Procs {
    order: Vec<String>,
    map: HashMap<String, Proc>,
}

/// One named process and what is needed to restart it.
struct Proc {
    host: String,
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    /// `None` once reaped (or while a stop/kill is waiting on it).
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
    /// Length of the log when the current incarnation started.
    log_offset: u64,
    spawns: u32,
    exit: Option<ExitStatus>,
}

/// A spawned process: its name, host, PID (the program itself, since
/// `ip netns exec` execs it) and log file.
#[derive(Clone, Debug)]
pub(crate) struct ProcHandle {
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub log: PathBuf,
}

impl ProcHandle {
    /// The whole log (all incarnations), lossily decoded.
    pub(crate) fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

impl Lab {
    /// Starts `ip netns exec <ns> program args…` in `host`, with the lab
    /// directory as working directory, stdin closed and stdout+stderr
    /// appended to `<lab dir>/<name>.log`. `name` must not be in use by a
    /// running process.
    pub(crate) fn spawn<I, S>(
        &self,
        host: &str,
        name: &str,
        program: impl AsRef<OsStr>,
        args: I,
    ) -> Result<ProcHandle>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spawn_env(
            host,
            name,
            program,
            args,
            std::iter::empty::<(&str, &str)>(),
        )
    }

    /// [`Lab::spawn`] with extra environment variables.
    pub(crate) fn spawn_env<I, S, E, K, V>(
        &self,
        host: &str,
        name: &str,
        program: impl AsRef<OsStr>,
        args: I,
        envs: E,
    ) -> Result<ProcHandle>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            bail!("process name {name:?}: must be a plain file name");
        }
        self.host(host)?;
        let mut procs = self.procs.lock().unwrap();
        if let Some(p) = procs.map.get_mut(name) {
            if p.running() {
                bail!("process {name:?} is already running (pid {})", p.pid);
            }
        }
        let spawns = procs.map.get(name).map_or(0, |p| p.spawns);
        let mut proc = Proc {
            host: host.to_string(),
            program: program.as_ref().to_owned(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            envs: envs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
                .collect(),
            child: None,
            pid: 0,
            log: self.dir.join(format!("{name}.log")),
            log_offset: 0,
            spawns,
            exit: None,
        };
        self.start(name, &mut proc)?;
        let handle = proc.handle(name);
        if !procs.order.iter().any(|n| n == name) {
            procs.order.push(name.to_string());
        }
        procs.map.insert(name.to_string(), proc);
        Ok(handle)
    }

    fn start(&self, name: &str, p: &mut Proc) -> Result<()> {
        let ns = self.host(&p.host)?.ns.clone();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .with_context(|| format!("opening {}", p.log.display()))?;
        p.spawns += 1;
        let mut cmd = Command::new(&self.tools.ip);
        cmd.args(["netns", "exec", ns.as_str()])
            .arg(&p.program)
            .args(&p.args)
            .envs(p.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log.try_clone()?));
        writeln!(
            log,
            "--- lab: {name} #{} on {} ({ns}): {}",
            p.spawns,
            p.host,
            sys::describe(&cmd)
        )?;
        // `wait_log` looks only at what this incarnation writes.
        p.log_offset = log.metadata()?.len();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", sys::describe(&cmd)))?;
        p.pid = child.id();
        p.child = Some(child);
        p.exit = None;
        Ok(())
    }

    /// Takes the child out of the table so that waiting on it does not hold
    /// the lock.
    fn take_child(&self, name: &str) -> Result<(Option<Child>, u32)> {
        let mut procs = self.procs.lock().unwrap();
        let p = procs
            .map
            .get_mut(name)
            .ok_or_else(|| anyhow!("lab {}: no process {name:?}", self.prefix))?;
        Ok((p.child.take(), p.pid))
    }

    fn put_exit(&self, name: &str, status: Option<ExitStatus>) {
        if let Some(p) = self.procs.lock().unwrap().map.get_mut(name) {
            if status.is_some() {
                p.exit = status;
            }
        }
    }

    /// SIGKILL and reap. Returns the exit status (also when it had already
    /// exited).
    pub(crate) fn kill(&self, name: &str) -> Result<ExitStatus> {
        let (child, _) = self.take_child(name)?;
        let status = match child {
            Some(mut c) => {
                let _ = c.kill();
                Some(c.wait()?)
            }
            None => None,
        };
        self.put_exit(name, status);
        self.exit_status(name)
            .ok_or_else(|| anyhow!("process {name:?}: no exit status"))
    }

    /// SIGTERM, wait up to [`STOP_GRACE`], then SIGKILL. Returns the exit
    /// status.
    pub(crate) fn stop(&self, name: &str) -> Result<ExitStatus> {
        self.stop_within(name, STOP_GRACE)
    }

    /// [`Lab::stop`] with a chosen grace period.
    pub(crate) fn stop_within(&self, name: &str, grace: Duration) -> Result<ExitStatus> {
        let (child, pid) = self.take_child(name)?;
        let status = match child {
            Some(mut c) => {
                // A stopped process can't handle SIGTERM; let it run first.
                let _ = sys::signal(self.tools, pid, "CONT");
                let _ = sys::signal(self.tools, pid, "TERM");
                Some(match wait_deadline(&mut c, grace)? {
                    Some(s) => s,
                    None => {
                        eprintln!(
                            "lab {}: {name} ignored SIGTERM for {grace:?}; SIGKILL",
                            self.prefix
                        );
                        let _ = c.kill();
                        c.wait()?
                    }
                })
            }
            None => None,
        };
        self.put_exit(name, status);
        self.exit_status(name)
            .ok_or_else(|| anyhow!("process {name:?}: no exit status"))
    }

    /// Stops the process if it runs (SIGTERM, then SIGKILL) and starts it
    /// again with the same host, program, arguments and environment.
    pub(crate) fn restart(&self, name: &str) -> Result<ProcHandle> {
        if self.is_running(name) {
            self.stop(name)?;
        }
        let mut procs = self.procs.lock().unwrap();
        let p = procs
            .map
            .get_mut(name)
            .ok_or_else(|| anyhow!("lab {}: no process {name:?}", self.prefix))?;
        if p.running() {
            bail!("process {name:?} was started again by another thread");
        }
        self.start(name, p)?;
        Ok(p.handle(name))
    }

    /// SIGSTOP: the process hangs (its TCP handshakes still complete).
    pub(crate) fn pause(&self, name: &str) -> Result<()> {
        sys::signal(self.tools, self.pid(name)?, "STOP")
    }

    /// SIGCONT after [`Lab::pause`].
    pub(crate) fn resume(&self, name: &str) -> Result<()> {
        sys::signal(self.tools, self.pid(name)?, "CONT")
    }

    /// PID of the current (or last) incarnation.
    pub(crate) fn pid(&self, name: &str) -> Result<u32> {
        self.procs
            .lock()
            .unwrap()
            .map
            .get(name)
            .map(|p| p.pid)
            .ok_or_else(|| anyhow!("lab {}: no process {name:?}", self.prefix))
    }

    /// Handle of a process spawned earlier.
    pub(crate) fn handle(&self, name: &str) -> Option<ProcHandle> {
        self.procs
            .lock()
            .unwrap()
            .map
            .get(name)
            .map(|p| p.handle(name))
    }

    /// Whether the process is alive (reaps it if it has exited).
    pub(crate) fn is_running(&self, name: &str) -> bool {
        self.procs
            .lock()
            .unwrap()
            .map
            .get_mut(name)
            .is_some_and(|p| p.running())
    }

    /// Exit status once it has exited (reaps it if needed).
    pub(crate) fn exit_status(&self, name: &str) -> Option<ExitStatus> {
        let mut procs = self.procs.lock().unwrap();
        let p = procs.map.get_mut(name)?;
        p.running();
        p.exit
    }

    /// Waits for the process to exit by itself.
    pub(crate) fn wait_exit(&self, name: &str, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exit_status(name) {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                bail!("process {name:?} still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole log of a process (all incarnations).
    pub(crate) fn log(&self, name: &str) -> String {
        self.handle(name).map(|h| h.log_text()).unwrap_or_default()
    }

    /// Waits until the current incarnation logs a line containing `needle`
    /// and returns that line: the readiness check for daemons. Fails early
    /// if the process exits first.
    pub(crate) fn wait_log(&self, name: &str, needle: &str, timeout: Duration) -> Result<String> {
        let (log, offset) = {
            let procs = self.procs.lock().unwrap();
            let p = procs
                .map
                .get(name)
                .ok_or_else(|| anyhow!("lab {}: no process {name:?}", self.prefix))?;
            (p.log.clone(), p.log_offset)
        };
        let deadline = Instant::now() + timeout;
        loop {
            // Read first, then check for exit, so a final line isn't missed.
            let exited = self.exit_status(name);
            let text = fs::read(&log).unwrap_or_default();
            let text = String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default());
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_string());
            }
            if let Some(status) = exited {
                bail!("process {name:?} exited ({status}) before logging {needle:?}");
            }
            if Instant::now() >= deadline {
                bail!("process {name:?} did not log {needle:?} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs and reaps every child (teardown).
    pub(super) fn kill_all(&self) {
        let mut procs = self.procs.lock().unwrap();
        for p in procs.map.values_mut() {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                p.exit = c.wait().ok();
            }
        }
    }

    /// Prints the last lines of every process log to stderr.
    pub(crate) fn print_log_tails(&self) {
        let procs = self.procs.lock().unwrap();
        for name in &procs.order {
            let p = &procs.map[name];
            let state = match p.exit {
                Some(s) => format!("{s}"),
                None => "running".to_string(),
            };
            eprintln!(
                "===== lab {}: {name} on {} (pid {}, {state}), last {TAIL_LINES} lines of {}",
                self.prefix,
                p.host,
                p.pid,
                p.log.display()
            );
            for line in tail(&p.log, TAIL_LINES) {
                eprintln!("[{name}] {line}");
            }
        }
    }
}

impl Proc {
    /// Reaps if exited; true while alive.
    fn running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.exit = Some(status);
                self.child = None;
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    fn handle(&self, name: &str) -> ProcHandle {
        ProcHandle {
            name: name.to_string(),
            host: self.host.clone(),
            pid: self.pid,
            log: self.log.clone(),
        }
    }
}

/// Polls for exit until `timeout`; `None` if still running.
fn wait_deadline(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Last `n` lines of a file, reading at most its last 256 KiB.
fn tail(path: &std::path::Path, n: usize) -> Vec<String> {
    const MAX: u64 = 256 * 1024;
    let Ok(mut f) = File::open(path) else {
        return vec!["(no log file)".to_string()];
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}
