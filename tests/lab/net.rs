//! Traffic from inside a lab host: HTTP through curl and bare TCP connects.
//!
//! Nothing here sends from the root namespace: every request is a process
//! started with `ip netns exec`, whose namespace has no default route, so a
//! wrong address fails locally instead of leaving the machine. curl ignores
//! `~/.curlrc` (`-q`) and proxy variables (`--noproxy '*'`).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::{sys, Lab};

/// A failed curl run: no HTTP status was received.
#[derive(Debug, Clone)]
pub(crate) struct CurlError {
    /// curl's exit code: 7 = connection refused, 28 = timed out, …
    pub exit_code: Option<i32>,
    pub stderr: String,
}

impl CurlError {
    /// The peer did not answer in time (DROP rule, link down, hung host).
    pub(crate) fn is_timeout(&self) -> bool {
        self.exit_code == Some(28)
    }

    /// Connection refused or unreachable at once (dead service, REJECT).
    pub(crate) fn is_refused(&self) -> bool {
        self.exit_code == Some(7)
    }
}

impl fmt::Display for CurlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exit_code {
            Some(c) => write!(f, "curl exit {c}: {}", self.stderr.trim()),
            None => write!(f, "curl killed by signal: {}", self.stderr.trim()),
        }
    }
}

impl std::error::Error for CurlError {}

/// Runs curl in namespace `ns` with `-s -S -m timeout -w '\n%{http_code}'`
/// plus `args`; returns (status, body). Shared with `ClientLoop`.
pub(super) fn curl_in_ns(
    tools: &sys::Tools,
    ns: &str,
    dir: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<(u16, String)> {
    let secs = format!("{:.3}", timeout.as_secs_f64().max(0.001));
    let mut cmd = Command::new(&tools.ip);
    cmd.args(["netns", "exec", ns])
        .arg(&tools.curl)
        .args(["-q", "-s", "-S", "--noproxy", "*", "-m", &secs])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null());
    let out = cmd
        .output()
        .with_context(|| format!("running {}", sys::describe(&cmd)))?;
    if !out.status.success() {
        return Err(anyhow!(CurlError {
            exit_code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text
        .rsplit_once('\n')
        .ok_or_else(|| anyhow!("curl output without status line: {text:?}"))?;
    let code: u16 = code
        .trim()
        .parse()
        .with_context(|| format!("curl status {code:?}"))?;
    Ok((code, body.to_string()))
}

impl Lab {
    /// GET `url` from inside `from_host`; returns (status, body). Any HTTP
    /// status is `Ok`; no response at all is an error whose root cause is a
    /// [`CurlError`] (`e.downcast_ref::<CurlError>()`).
    pub(crate) fn http_get(
        &self,
        from_host: &str,
        url: &str,
        timeout: Duration,
    ) -> Result<(u16, String)> {
        self.curl(from_host, &[url], timeout)
    }

    /// curl from inside `from_host` with extra arguments, for other methods,
    /// headers and bodies, e.g. `&["-X", "POST", "-H", &auth, "--data", "{}", url]`.
    pub(crate) fn curl(
        &self,
        from_host: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<(u16, String)> {
        let ns = &self.host(from_host)?.ns;
        curl_in_ns(self.tools, ns, &self.dir, args, timeout)
            .with_context(|| format!("curl {} from {from_host}", args.join(" ")))
    }

    /// Whether a TCP connection from `from_host` to `addr` succeeds within
    /// `timeout` (bash `/dev/tcp` under coreutils `timeout`).
    pub(crate) fn tcp_connects(
        &self,
        from_host: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<bool> {
        let ns = &self.host(from_host)?.ns;
        let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
        let status = Command::new(&self.tools.ip)
            .args(["netns", "exec", ns.as_str()])
            .arg(&self.tools.timeout)
            .args([
                "-k",
                "1",
                &format!("{:.3}", timeout.as_secs_f64().max(0.01)),
            ])
            .arg(&self.tools.bash)
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        Ok(status.success())
    }

    /// Waits until a TCP connect from `host_from` to `addr` succeeds.
    pub(crate) fn wait_tcp(
        &self,
        host_from: &str,
        addr: SocketAddr,
        deadline: Duration,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            let attempt = left
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(100));
            if self.tcp_connects(host_from, addr, attempt)? {
                return Ok(());
            }
            if start.elapsed() >= deadline {
                bail!("no TCP connection from {host_from} to {addr} within {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
