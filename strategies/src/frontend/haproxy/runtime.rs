//! Talking to HAProxy's Runtime API for the [`super::HaproxyDriver`]: the
//! transport, the limits on replies, the errors that quote them, and one
//! method of `Inner` per command warden sends.
//!
//! One command line per connection: connect, write the line, read to EOF
//! (HAProxy closes after answering). A reply cut short (no answer, no final
//! newline, a dump without its final empty line) is the connection closed
//! early: [`StrategyError::Unreachable`], as a refused connect, so callers
//! retry. Replies are parsed strictly: `set ...`
//! and `shutdown ...` must answer nothing but newlines, `show servers state`
//! must be format version 1 with its `#` header, `get var` its one
//! `NAME: type=str value=<...>` line. Anything else is
//! [`StrategyError::Rejected`] quoting (a truncated) reply, with a hint when
//! the text is known (`No such server.`, `Can't find backend.`, `Permission denied`).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warden_config::RuntimeAddr;

use super::{parse_fence, parse_servers_state, Fence, Inner, ServerState};
use crate::StrategyError;

/// Longest reply read from the Runtime API; a longer one is refused.
const MAX_REPLY: u64 = 1 << 20;

/// Longest piece of a reply quoted in an error.
const QUOTE_MAX: usize = 200;

impl Inner {
    /// Send one command line and return the whole reply.
    async fn command(&self, line: &str) -> Result<String, StrategyError> {
        debug_assert!(!line.contains('\n'));
        let runtime = &self.settings.runtime;
        let exchange = async {
            match runtime {
                RuntimeAddr::Unix(path) => {
                    let s = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| ("connect", e))?;
                    exchange(s, line).await
                }
                RuntimeAddr::Tcp(addr) => {
                    let s = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|e| ("connect", e))?;
                    exchange(s, line).await
                }
            }
        };
        let raw = match tokio::time::timeout(self.settings.timeout, exchange).await {
            Err(_) => {
                return Err(self.unreachable(format!(
                    "runtime API at {runtime} did not answer {} within {:?}",
                    quote(line),
                    self.settings.timeout
                )))
            }
            Ok(Err((stage, e))) => {
                let what = format!("runtime API at {runtime}: cannot {stage}: {e}");
                return Err(if e.kind() == std::io::ErrorKind::PermissionDenied {
                    self.rejected(format!("{what} (the orchestrator's user may not open this socket: see the `mode`, `user` and `group` options of HAProxy's `stats socket` line)"))
                } else {
                    self.unreachable(format!(
                        "{what} (is HAProxy running with `stats socket {} level admin`?)",
                        match runtime {
                            RuntimeAddr::Unix(p) => p.display().to_string(),
                            RuntimeAddr::Tcp(a) if a.is_ipv4() => format!("ipv4@{a}"),
                            RuntimeAddr::Tcp(a) => format!("ipv6@{a}"),
                        }
                    ))
                });
            }
            Ok(Ok(raw)) => raw,
        };
        if raw.len() as u64 > MAX_REPLY {
            return Err(self.rejected(format!(
                "the reply to {} is longer than {MAX_REPLY} bytes",
                quote(line)
            )));
        }
        // HAProxy ends every reply with a newline: silence, or a reply cut
        // in the middle of a line, is the connection closed early (HAProxy
        // stopping or reloading, a forwarder with no HAProxy behind it) —
        // the Runtime API failing now, as a refused connect is: a retry may
        // get the whole answer. The command may or may not have run.
        if !raw.ends_with(b"\n") {
            return Err(self.cut_short(line, raw.len()));
        }
        String::from_utf8(raw)
            .map_err(|_| self.rejected(format!("the reply to {} is not UTF-8", quote(line))))
    }

    /// The connection closed before the whole answer to `line` came
    /// (`read` bytes of it): transient (see [`Inner::command`]).
    fn cut_short(&self, line: &str, read: usize) -> StrategyError {
        let how = if read == 0 {
            "without answering".to_string()
        } else {
            format!("in the middle of its answer ({read} bytes)")
        };
        self.unreachable(format!(
            "runtime API at {} closed the connection {how} to {} (HAProxy stopping or reloading?); the command may or may not have run",
            self.settings.runtime,
            quote(line)
        ))
    }

    /// Send a command whose success is an empty reply (only newlines).
    /// Every command that changes HAProxy goes through here: asked of the
    /// caller's gate first (see [`crate::gate`]).
    async fn command_ok(&self, line: &str) -> Result<(), StrategyError> {
        crate::gate::check(&self.element)?;
        let reply = self.command(line).await?;
        if reply.chars().all(|c| c == '\n') {
            return Ok(());
        }
        Err(self.refusal(line, &reply))
    }

    /// A reply that is not what `line` should get, with a hint for known texts.
    fn refusal(&self, line: &str, reply: &str) -> StrategyError {
        let s = &self.settings;
        let text = reply.trim();
        let hint = if text.starts_with("No such server") {
            format!(" (groups.{}.frontend.servers must name servers of backend {} in haproxy.cfg; a site not listed there uses its own name)", s.group, s.backend)
        } else if text.starts_with("No such backend") || text.starts_with("Can't find backend") {
            format!(
                " (groups.{}.frontend.backend must name a backend of haproxy.cfg)",
                s.group
            )
        } else if text.starts_with("Permission denied") {
            " (the stats socket needs `level admin`)".to_string()
        } else if text.starts_with("Unknown command") {
            " (warden needs HAProxy 2.4 or newer for `set var`/`get var`)".to_string()
        } else {
            String::new()
        };
        self.rejected(format!(
            "unexpected reply to {}: {}{hint}",
            quote(line),
            quote(text)
        ))
    }

    /// `show servers state BACKEND`, parsed strictly.
    pub(super) async fn servers_state(&self) -> Result<Vec<ServerState>, StrategyError> {
        let line = format!("show servers state {}", self.settings.backend);
        let reply = self.command(&line).await?;
        // A dump (its version line came) ends with an empty line; one that
        // does not was cut between two lines — where HAProxy's buffer
        // flushes fall — by a connection closed early.
        if reply.starts_with("1\n") && !reply.ends_with("\n\n") {
            return Err(self.cut_short(&line, reply.len()));
        }
        parse_servers_state(&reply, &self.settings.backend).map_err(|why| {
            if why.is_empty() {
                self.refusal(&line, &reply)
            } else {
                self.rejected(format!(
                    "unexpected reply to {}: {why}: {}",
                    quote(&line),
                    quote(&reply)
                ))
            }
        })
    }

    /// The fence held in HAProxy, `None` when the variable is not set (a
    /// fresh or restarted HAProxy).
    pub(super) async fn read_fence(&self) -> Result<Option<Fence>, StrategyError> {
        let line = format!("get var {}", self.fence_var);
        let reply = self.command(&line).await?;
        parse_fence(&reply, &self.fence_var).map_err(|why| {
            if why.is_empty() {
                self.refusal(&line, &reply)
            } else {
                self.rejected(format!(
                    "unexpected value of {} ({why}): {}; it is warden's fence for group {}: if it was set by hand, set it back or restart HAProxy",
                    self.fence_var,
                    quote(reply.trim()),
                    self.settings.group
                ))
            }
        })
    }

    pub(super) async fn write_fence(&self, epoch: u64, site: &str) -> Result<(), StrategyError> {
        self.command_ok(&format!(
            "experimental-mode on; set var {} str({epoch}:{site})",
            self.fence_var
        ))
        .await
    }

    pub(super) async fn set_state(&self, server: &str, state: &str) -> Result<(), StrategyError> {
        self.command_ok(&format!(
            "set server {}/{server} state {state}",
            self.settings.backend
        ))
        .await
    }

    /// Put `server` in maintenance and cut its connections, in one command
    /// line (HAProxy runs `;`-separated commands in order). As two commands,
    /// a Runtime API failing between them (the second one's connection lost
    /// or timed out) left the server in maintenance with its connections
    /// open: a state the route reads as right and no drain end looks at, so
    /// nothing cut them. Now either both run or neither does (the server
    /// still ready or draining: drift, or a drain that is ended later).
    pub(super) async fn cut(&self, server: &str) -> Result<(), StrategyError> {
        let be = &self.settings.backend;
        self.command_ok(&format!(
            "set server {be}/{server} state maint; shutdown sessions server {be}/{server}"
        ))
        .await
    }
}

/// Write `line` and read the reply to EOF (at most [`MAX_REPLY`] + 1 bytes).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    line: &str,
) -> Result<Vec<u8>, (&'static str, std::io::Error)> {
    let mut msg = Vec::with_capacity(line.len() + 1);
    msg.extend_from_slice(line.as_bytes());
    msg.push(b'\n');
    s.write_all(&msg)
        .await
        .map_err(|e| ("send the command", e))?;
    let mut buf = Vec::new();
    (&mut s)
        .take(MAX_REPLY + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| ("read the reply", e))?;
    Ok(buf)
}

fn quote(text: &str) -> String {
    crate::text::quote(text, QUOTE_MAX, "reply")
}
