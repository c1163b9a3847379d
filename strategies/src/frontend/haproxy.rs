//! The `haproxy` driver of the `frontend` scheme: [`HaproxyDriver`] moves one
//! group's traffic on one HAProxy process through its Runtime API (a
//! `stats socket ... level admin`, on a UNIX socket or a TCP address).
//!
//! The group's HAProxy backend holds one server per site. Routing to a site
//! means: that server `state ready`, every other site's server `state maint`
//! plus `shutdown sessions server` (a disaster: cut at once), or `state drain`
//! and, after `drain_timeout`, `maint` plus `shutdown sessions` (a planned
//! move). [`FrontendDriver::route`] reads `show servers state BACKEND` back:
//! the site is the one whose server is ready (no maintenance or drain flag).
//!
//! # Talking to the Runtime API
//!
//! One command line per connection: connect, write the line, read to EOF
//! (HAProxy closes after answering). Replies are parsed strictly: `set ...`
//! and `shutdown ...` must answer nothing but newlines, `show servers state`
//! must be format version 1 with its `#` header, `get var` its one
//! `NAME: type=str value=<...>` line. Anything else is
//! [`StrategyError::Rejected`] quoting (a truncated) reply, with a hint when
//! the text is known (`No such server.`, `Can't find backend.`, `Permission denied`).
//!
//! # Epoch fencing
//!
//! HAProxy has no notion of an epoch, so the driver keeps the highest
//! accepted route in HAProxy itself, in the process-wide variable
//! `proc.warden_route.<group>` (`-` in the group name becomes `.`), as
//! `EPOCH:SITE`, set with `experimental-mode on; set var ...` (HAProxy ≥ 2.4;
//! `set var` is an experimental-mode command of the Runtime API) and read
//! with `get var`. So the fence survives restarts of the orchestrator and is
//! lost, like the servers' runtime states, when HAProxy restarts or reloads:
//! [`FrontendDriver::route`] then reports epoch 0 (and the servers' states
//! from haproxy.cfg), which the orchestrator's reconciliation sees as drift
//! and corrects by activating the decided route again.
//!
//! `set_route` reads the fence first and refuses an epoch lower than the one
//! held ([`StrategyError::StaleEpoch`]) and a different site at the same
//! epoch ([`StrategyError::Rejected`], "conflicting decision"); then it
//! writes the fence, then the servers. The Runtime API has no
//! compare-and-set, so the check and the write are separate commands: two
//! orchestrators writing within the same few milliseconds can interleave, and
//! a stale write that slips in is undone by the newer orchestrator's
//! reconciliation, after which the stale one is refused.
//!
//! # Drain
//!
//! A `Drain` switch returns once the target is ready and the old servers
//! are draining; a task spawned on the caller's runtime moves them to
//! maintenance after `drain_timeout`, unless a newer route was set in the
//! meantime. The task is aborted when a newer `set_route` arrives and when
//! the driver is dropped (orchestrator shutdown): a drain interrupted that
//! way leaves the old servers in `drain` (no new connections; existing ones
//! are not cut) until the next route change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};
use warden_config::{valid_haproxy_name, RuntimeAddr};

use super::FrontendDriver;
use crate::{StrategyError, SwitchMode};

/// Longest reply read from the Runtime API; a longer one is refused.
const MAX_REPLY: u64 = 1 << 20;

/// Longest piece of a reply quoted in an error.
const QUOTE_MAX: usize = 200;

/// `srv_admin_state` flags meaning "no new traffic": forced, inherited,
/// resolution and hostname maintenance (0x01, 0x02, 0x20, 0x40), forced and
/// inherited drain (0x08, 0x10). 0x04 (maintenance from haproxy.cfg's
/// `disabled`) stays set after `state ready` and does not stop traffic.
const ADMIN_MAINT: u32 = 0x01 | 0x02 | 0x20 | 0x40;
const ADMIN_DRAIN: u32 = 0x08 | 0x10;

/// What one HAProxy driver needs (built from the config by
/// [`crate::frontend::FrontendStrategy::configured`], or by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxySettings {
    /// The frontend's name (`[frontends.NAME]`).
    pub frontend: String,
    /// The group whose traffic moves.
    pub group: String,
    /// Where the Runtime API listens.
    pub runtime: RuntimeAddr,
    /// The HAProxy backend holding one server per site.
    pub backend: String,
    /// HAProxy server name per site name.
    pub servers: BTreeMap<String, String>,
    /// How long old connections may drain on a `Drain` switch.
    pub drain_timeout: Duration,
    /// Time allowed for one Runtime API command (connect included).
    pub timeout: Duration,
}

/// Drives one HAProxy for one group. See the module documentation.
pub struct HaproxyDriver {
    inner: Arc<Inner>,
    /// The pending end of the last drain, aborted by a newer route or by drop.
    drain: Mutex<Option<PendingDrain>>,
}

/// What the drain task shares with the driver.
struct Inner {
    settings: HaproxySettings,
    /// Element name in errors: `HAProxy NAME`.
    element: String,
    /// The process-wide variable holding `EPOCH:SITE`.
    fence_var: String,
}

struct PendingDrain {
    epoch: u64,
    site: String,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for HaproxyDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaproxyDriver")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Drop for HaproxyDriver {
    fn drop(&mut self) {
        if let Ok(mut d) = self.drain.lock() {
            if let Some(p) = d.take() {
                p.task.abort();
            }
        }
    }
}

impl HaproxyDriver {
    /// Time allowed for one Runtime API command (connect included).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// A driver for `settings`; [`StrategyError::Config`] when a name cannot
    /// be sent to HAProxy safely or a site has no server.
    pub fn new(settings: HaproxySettings) -> Result<HaproxyDriver, StrategyError> {
        let bad = |what: &str, v: &str| {
            StrategyError::Config(format!(
                "frontend {}: {what} {v:?} is not a valid HAProxy name (ASCII letters, digits, '-', '_', '.', ':')",
                settings.frontend
            ))
        };
        if !valid_haproxy_name(&settings.backend) {
            return Err(bad("backend", &settings.backend));
        }
        if settings.servers.is_empty() {
            return Err(StrategyError::Config(format!(
                "frontend {}: group {} maps no site to an HAProxy server",
                settings.frontend, settings.group
            )));
        }
        for (site, server) in &settings.servers {
            if !valid_haproxy_name(server) {
                return Err(bad("server", server));
            }
            // Sites are written into the fence variable.
            if !warden_config::load::valid_name(site) {
                return Err(StrategyError::Config(format!(
                    "frontend {}: {site:?} is not a valid site name",
                    settings.frontend
                )));
            }
        }
        if !warden_config::load::valid_name(&settings.group) {
            return Err(StrategyError::Config(format!(
                "frontend {}: group name {:?} cannot name an HAProxy variable",
                settings.frontend, settings.group
            )));
        }
        let fence_var = format!("proc.warden_route.{}", settings.group.replace('-', "."));
        Ok(HaproxyDriver {
            inner: Arc::new(Inner {
                element: format!("HAProxy {}", settings.frontend),
                settings,
                fence_var,
            }),
            drain: Mutex::new(None),
        })
    }

    /// The HAProxy variable that holds this group's fence (`EPOCH:SITE`).
    pub fn fence_variable(&self) -> &str {
        &self.inner.fence_var
    }

    fn server_of(&self, site: &str) -> Result<&str, StrategyError> {
        let s = &self.inner.settings;
        s.servers.get(site).map(String::as_str).ok_or_else(|| {
            StrategyError::Config(format!(
                "site {site:?} has no server in HAProxy backend {} for group {}; sites: [{}]",
                s.backend,
                s.group,
                s.servers.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Abort the pending drain end unless it belongs to (`epoch`, `site`).
    /// Returns whether a pending drain for exactly that route is kept.
    fn supersede_drain(&self, epoch: u64, site: &str) -> bool {
        let Ok(mut d) = self.drain.lock() else {
            return false;
        };
        match d.as_ref() {
            Some(p) if p.epoch == epoch && p.site == site && !p.task.is_finished() => true,
            Some(_) => {
                if let Some(p) = d.take() {
                    p.task.abort();
                }
                false
            }
            None => false,
        }
    }
}

/// One server's line of `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerState {
    name: String,
    /// `srv_admin_state`: a bit field (see [`ADMIN_MAINT`], [`ADMIN_DRAIN`]).
    admin: u32,
}

impl ServerState {
    fn ready(&self) -> bool {
        self.admin & (ADMIN_MAINT | ADMIN_DRAIN) == 0
    }
    fn in_maint(&self) -> bool {
        self.admin & ADMIN_MAINT != 0
    }
    fn draining(&self) -> bool {
        !self.in_maint() && self.admin & ADMIN_DRAIN != 0
    }
}

/// The fence held in HAProxy: the highest accepted epoch and its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fence {
    epoch: u64,
    site: String,
}

impl Inner {
    fn rejected(&self, reason: String) -> StrategyError {
        StrategyError::Rejected {
            element: self.element.clone(),
            reason,
        }
    }

    fn unreachable(&self, reason: String) -> StrategyError {
        StrategyError::Unreachable {
            element: self.element.clone(),
            reason,
        }
    }

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
        String::from_utf8(raw)
            .map_err(|_| self.rejected(format!("the reply to {} is not UTF-8", quote(line))))
    }

    /// Send a command whose success is an empty reply (only newlines).
    async fn command_ok(&self, line: &str) -> Result<(), StrategyError> {
        let reply = self.command(line).await?;
        if reply.is_empty() {
            // HAProxy always answers at least a newline; silence means the
            // connection was closed early, and the command may not have run.
            return Err(self.unreachable(format!(
                "runtime API at {} closed the connection without answering {}",
                self.settings.runtime,
                quote(line)
            )));
        }
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
    async fn servers_state(&self) -> Result<Vec<ServerState>, StrategyError> {
        let line = format!("show servers state {}", self.settings.backend);
        let reply = self.command(&line).await?;
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

    /// The servers of the group's sites, in site order; an error naming every
    /// one that is missing from the backend.
    fn site_servers<'a>(
        &self,
        state: &'a [ServerState],
    ) -> Result<Vec<(&str, &'a ServerState)>, StrategyError> {
        let s = &self.settings;
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for (site, server) in &s.servers {
            match state.iter().find(|x| &x.name == server) {
                Some(st) => out.push((site.as_str(), st)),
                None => missing.push(format!("{server:?} (site {site})")),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let present: Vec<&str> = state.iter().map(|x| x.name.as_str()).collect();
        Err(self.rejected(format!(
            "backend {} has no server {}; its servers: [{}] (fix groups.{}.frontend.servers or haproxy.cfg)",
            s.backend,
            missing.join(", "),
            present.join(", "),
            s.group
        )))
    }

    /// The fence held in HAProxy, `None` when the variable is not set (a
    /// fresh or restarted HAProxy).
    async fn read_fence(&self) -> Result<Option<Fence>, StrategyError> {
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

    /// Whether an order for `site` at `epoch` may go ahead by the fence in
    /// HAProxy now: an error for an older epoch or another site at the same
    /// one; `Ok(true)` when the fence already says (`epoch`, `site`),
    /// `Ok(false)` when it is older or not set (to be written).
    async fn fence_admits(&self, epoch: u64, site: &str) -> Result<bool, StrategyError> {
        let Some(f) = self.read_fence().await? else {
            return Ok(false);
        };
        if epoch < f.epoch {
            return Err(StrategyError::StaleEpoch {
                element: self.element.clone(),
                sent: epoch,
                seen: f.epoch,
            });
        }
        if epoch == f.epoch && f.site != site {
            return Err(self.rejected(format!(
                "conflicting decision for epoch {epoch}: group {} already routes to {:?} at this epoch, refused {site:?}",
                self.settings.group, f.site
            )));
        }
        Ok(epoch == f.epoch)
    }

    /// Before a server of a route at (`epoch`, `site`) is touched: the fence
    /// this route wrote still stands. HAProxy's variables have no
    /// compare-and-set, so a newer route written meanwhile (by the current
    /// leader while this one — perhaps a deposed leader's late call — was
    /// between commands) ends this one with an error here, before it
    /// touches a server; a fence found older than this route (an older
    /// writer's late fence) is written again. What is left is a race within
    /// one command's round trip, which the newer route's own checks and
    /// reconciliation repair.
    async fn fence_holds(&self, epoch: u64, site: &str) -> Result<(), StrategyError> {
        if !self.fence_admits(epoch, site).await? {
            self.write_fence(epoch, site).await?;
        }
        Ok(())
    }

    async fn write_fence(&self, epoch: u64, site: &str) -> Result<(), StrategyError> {
        self.command_ok(&format!(
            "experimental-mode on; set var {} str({epoch}:{site})",
            self.fence_var
        ))
        .await
    }

    async fn set_state(&self, server: &str, state: &str) -> Result<(), StrategyError> {
        self.command_ok(&format!(
            "set server {}/{server} state {state}",
            self.settings.backend
        ))
        .await
    }

    /// Put `server` in maintenance and cut its connections.
    async fn cut(&self, server: &str) -> Result<(), StrategyError> {
        self.set_state(server, "maint").await?;
        self.command_ok(&format!(
            "shutdown sessions server {}/{server}",
            self.settings.backend
        ))
        .await
    }

    /// The end of a drain: every server in `servers` that is still draining
    /// goes to maintenance and loses its connections, if the fence still
    /// holds (`epoch`, `site`). A newer route writes the fence before it
    /// touches any server, so the fence is read after the servers' states and
    /// again just before each server: a newer route is left alone (but for a
    /// race within one command's round trip, which reconciliation repairs).
    async fn finish_drain(&self, epoch: u64, site: &str, servers: &[String]) {
        let (g, fe) = (&self.settings.group, &self.settings.frontend);
        let state = match self.servers_state().await {
            Ok(s) => s,
            Err(e) => {
                warn!(group = %g, frontend = %fe, cause = %e, "cannot end the drain: servers stay in drain");
                return;
            }
        };
        for server in servers {
            if !state.iter().any(|s| &s.name == server && s.draining()) {
                continue;
            }
            match self.read_fence().await {
                Ok(Some(f)) if f.epoch == epoch && f.site == site => {}
                Ok(f) => {
                    debug!(group = %g, epoch, ?f, "route changed during the drain; leaving the servers alone");
                    return;
                }
                Err(e) => {
                    warn!(group = %g, frontend = %fe, cause = %e, "cannot end the drain: servers stay in drain");
                    return;
                }
            }
            match self.cut(server).await {
                Ok(()) => debug!(group = %g, frontend = %fe, server = %server, "drain ended"),
                Err(e) => {
                    warn!(group = %g, frontend = %fe, server = %server, cause = %e, "cannot end the drain of a server")
                }
            }
        }
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

/// Parse `show servers state BACKEND` (format version 1). `Err("")` when the
/// reply is not a state dump at all (an error message), `Err(why)` when it is
/// a malformed one.
pub(crate) fn parse_servers_state(reply: &str, backend: &str) -> Result<Vec<ServerState>, String> {
    match reply.split('\n').next() {
        Some("1") => {}
        Some(v) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) => {
            return Err(format!("format version {v}, only version 1 is understood"))
        }
        _ => return Err(String::new()),
    }
    // Every line ends with a newline, and the dump with an empty line.
    let body = reply
        .strip_suffix("\n\n")
        .ok_or("the dump does not end with an empty line (truncated?)")?;
    let mut lines = body.split('\n').skip(1);
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or("no `# be_id be_name ...` header after the version line")?;
    let names: Vec<&str> = header.split(' ').collect();
    let col = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .ok_or_else(|| format!("the header has no {n} field"))
    };
    let (be, srv, op, admin) = (
        col("be_name")?,
        col("srv_name")?,
        col("srv_op_state")?,
        col("srv_admin_state")?,
    );
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            return Err(format!("an empty line before server line {}", i + 1));
        }
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() != names.len() {
            return Err(format!(
                "server line {} has {} fields, the header {}",
                i + 1,
                fields.len(),
                names.len()
            ));
        }
        if fields[be] != backend {
            return Err(format!(
                "server line {} is for backend {:?}, not {backend:?}",
                i + 1,
                fields[be]
            ));
        }
        let num = |k: usize, what: &str| {
            fields[k].parse::<u32>().map_err(|_| {
                format!(
                    "server line {}: {what} {:?} is not a number",
                    i + 1,
                    fields[k]
                )
            })
        };
        // srv_op_state (0 stopped, 1 starting, 2 running, 3 stopping) is
        // health, not routing: checked for form only.
        num(op, "srv_op_state")?;
        out.push(ServerState {
            name: fields[srv].to_string(),
            admin: num(admin, "srv_admin_state")?,
        });
    }
    Ok(out)
}

/// Parse the reply to `get var NAME`: `Ok(None)` for "Variable not found.",
/// `Err("")` for any other message, `Err(why)` for a malformed value.
pub(crate) fn parse_fence(reply: &str, var: &str) -> Result<Option<Fence>, String> {
    let text = reply.trim_end_matches('\n');
    if text == "Variable not found." {
        return Ok(None);
    }
    let Some(rest) = text.strip_prefix(var).and_then(|r| r.strip_prefix(": ")) else {
        return Err(String::new());
    };
    let value = rest
        .strip_prefix("type=str value=<")
        .and_then(|v| v.strip_suffix('>'))
        .ok_or("not a string variable")?;
    let (epoch, site) = value.split_once(':').ok_or("not EPOCH:SITE")?;
    let epoch = epoch
        .parse::<u64>()
        .map_err(|_| "the epoch is not a number")?;
    if !warden_config::load::valid_name(site) {
        return Err("the site is not a valid site name".into());
    }
    Ok(Some(Fence {
        epoch,
        site: site.to_string(),
    }))
}

fn quote(text: &str) -> String {
    crate::text::quote(text, QUOTE_MAX, "reply")
}

#[async_trait]
impl FrontendDriver for HaproxyDriver {
    fn name(&self) -> &str {
        &self.inner.settings.frontend
    }

    async fn set_route(
        &self,
        site: &str,
        epoch: u64,
        mode: SwitchMode,
    ) -> Result<(), StrategyError> {
        let inner = &self.inner;
        let target = self.server_of(site)?.to_string();
        inner.fence_admits(epoch, site).await?;
        let state = inner.servers_state().await?;
        let servers = inner.site_servers(&state)?;
        // Fence first: from here on an older epoch is refused. Read again
        // right before it is written (a newer route may have come while the
        // servers were read), and before each server is touched (see
        // `Inner::fence_holds`).
        if !inner.fence_admits(epoch, site).await? {
            inner.write_fence(epoch, site).await?;
        }
        let keep_drain = self.supersede_drain(epoch, site);
        // Target ready before the others go, so that some server always takes new connections.
        if servers.iter().any(|(_, s)| s.name == target && !s.ready()) {
            inner.fence_holds(epoch, site).await?;
            inner.set_state(&target, "ready").await?;
        }
        let mut draining = Vec::new();
        for (_, s) in servers.iter().filter(|(_, s)| s.name != target) {
            inner.fence_holds(epoch, site).await?;
            match mode {
                SwitchMode::Immediate => inner.cut(&s.name).await?,
                SwitchMode::Drain => {
                    if s.ready() {
                        inner.set_state(&s.name, "drain").await?;
                    }
                    if s.ready() || s.draining() {
                        draining.push(s.name.clone());
                    }
                }
            }
        }
        if !draining.is_empty() && !keep_drain {
            let task_inner = Arc::clone(inner);
            let owned_site = site.to_string();
            let task = tokio::spawn(async move {
                tokio::time::sleep(task_inner.settings.drain_timeout).await;
                task_inner.finish_drain(epoch, &owned_site, &draining).await;
            });
            if let Ok(mut d) = self.drain.lock() {
                *d = Some(PendingDrain {
                    epoch,
                    site: site.to_string(),
                    task: task.abort_handle(),
                });
            }
        }
        debug!(frontend = %inner.settings.frontend, group = %inner.settings.group, site, epoch, ?mode, "HAProxy route set");
        Ok(())
    }

    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        let inner = &self.inner;
        let state = inner.servers_state().await?;
        let servers = inner.site_servers(&state)?;
        let fence = inner.read_fence().await?;
        let ready: Vec<&str> = servers
            .iter()
            .filter(|(_, s)| s.ready())
            .map(|(site, _)| *site)
            .collect();
        let site = match ready.as_slice() {
            [one] => Some(one.to_string()),
            _ => None,
        };
        Ok((site, fence.map(|f| f.epoch).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

    fn dump(lines: &[&str]) -> String {
        let mut s = format!("1\n{HEADER}\n");
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s.push('\n');
        s
    }

    #[test]
    fn parses_a_real_2_6_dump() {
        let d = dump(&[
            "3 be 1 srv1 127.0.0.1 2 0 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0",
            "3 be 2 srv2 127.0.0.1 0 9 1 1 0 1 0 1 6 0 0 0 - 28082 - 0 0 - - 0",
        ]);
        let s = parse_servers_state(&d, "be").expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].name.as_str(), s[0].admin), ("srv1", 0));
        assert!(s[0].ready());
        assert!(s[1].in_maint() && !s[1].draining() && !s[1].ready());
        // An empty backend.
        assert_eq!(parse_servers_state(&dump(&[]), "be"), Ok(vec![]));
        // `disabled` in haproxy.cfg, then `state ready`: admin 4 takes traffic.
        let d = dump(&["3 be 1 a 127.0.0.1 2 4 1 1 0 1 0 1 6 0 0 0 - 1 - 0 0 - - 0"]);
        assert!(parse_servers_state(&d, "be").expect("parses")[0].ready());
    }

    #[test]
    fn rejects_anything_else() {
        assert_eq!(
            parse_servers_state("Can't find backend.\n\n", "be"),
            Err(String::new())
        );
        assert!(parse_servers_state("2\n# be_name\n\n", "be")
            .unwrap_err()
            .contains("version 2"));
        assert!(parse_servers_state("1\nbe_id be_name\n\n", "be")
            .unwrap_err()
            .contains("header"));
        assert!(parse_servers_state("1\n# be_id be_name srv_name\n\n", "be")
            .unwrap_err()
            .contains("srv_op_state"));
        let short = dump(&["3 be 1 srv1 127.0.0.1 2 0"]);
        assert!(parse_servers_state(&short, "be")
            .unwrap_err()
            .contains("has 7 fields"));
        let other = dump(&["3 zz 1 srv1 127.0.0.1 2 0 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0"]);
        assert!(parse_servers_state(&other, "be")
            .unwrap_err()
            .contains("\"zz\""));
        let nan = dump(&["3 be 1 srv1 127.0.0.1 2 x 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0"]);
        assert!(parse_servers_state(&nan, "be")
            .unwrap_err()
            .contains("srv_admin_state \"x\""));
        let truncated = format!(
            "1\n{HEADER}\n3 be 1 srv1 127.0.0.1 2 0 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0"
        );
        assert!(parse_servers_state(&truncated, "be")
            .unwrap_err()
            .contains("truncated"));
        let trailing = format!("{}garbage\n\n", dump(&[]));
        assert!(parse_servers_state(&trailing, "be")
            .unwrap_err()
            .contains("an empty line before server line 1"));
        let one_newline = format!(
            "1\n{HEADER}\n3 be 1 srv1 127.0.0.1 2 0 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0\n"
        );
        assert!(parse_servers_state(&one_newline, "be")
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn fence_values() {
        let v = "proc.warden_route.web";
        assert_eq!(parse_fence("Variable not found.\n\n", v), Ok(None));
        assert_eq!(
            parse_fence("proc.warden_route.web: type=str value=<7:ca-1>\n", v),
            Ok(Some(Fence {
                epoch: 7,
                site: "ca-1".into()
            }))
        );
        assert_eq!(parse_fence("Permission denied\n\n", v), Err(String::new()));
        assert_eq!(
            parse_fence("proc.warden_route.db: type=str value=<7:ca>\n", v),
            Err(String::new())
        );
        assert!(parse_fence("proc.warden_route.web: type=sint value=<7>\n", v).is_err());
        assert!(parse_fence("proc.warden_route.web: type=str value=<x:ca>\n", v).is_err());
        assert!(parse_fence("proc.warden_route.web: type=str value=<7>\n", v).is_err());
        assert!(parse_fence("proc.warden_route.web: type=str value=<7:c a>\n", v).is_err());
    }

    #[test]
    fn names_are_checked_and_the_variable_is_derived_from_the_group() {
        let settings = HaproxySettings {
            frontend: "hx1".into(),
            group: "web-eu".into(),
            runtime: RuntimeAddr::Unix("/run/haproxy/admin.sock".into()),
            backend: "be_web".into(),
            servers: BTreeMap::from([("a".into(), "srv_a".into())]),
            drain_timeout: Duration::from_secs(1),
            timeout: HaproxyDriver::DEFAULT_TIMEOUT,
        };
        let d = HaproxyDriver::new(settings.clone()).expect("valid");
        assert_eq!(d.fence_variable(), "proc.warden_route.web.eu");
        let mut bad = settings.clone();
        bad.backend = "be web; shutdown frontend fe".into();
        let err = HaproxyDriver::new(bad).expect_err("injection refused");
        assert!(matches!(err, StrategyError::Config(_)), "{err:?}");
        let mut bad = settings;
        bad.servers.insert("b".into(), "x/y".into());
        assert!(HaproxyDriver::new(bad).is_err());
    }
}
