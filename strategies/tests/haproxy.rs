//! The `haproxy` driver against a real HAProxy (Debian package `haproxy`):
//! each test starts `haproxy -db` on 127.0.0.1 with a TCP frontend whose
//! backend holds one server per site (small TCP services in this process that
//! answer their site's name), drives it through the Runtime API (UNIX socket
//! or TCP), and checks which site answers real client connections.
//!
//! Without `haproxy` on the PATH the tests print a note and pass, unless
//! `CI=true`, where they fail. Fixed ports: 29330-29499 (one block of ten per
//! test).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;
use warden_config::RuntimeAddr;
use warden_strategies::frontend::{FrontendDriver, FrontendStrategy};
use warden_strategies::haproxy::{HaproxyDriver, HaproxySettings};
use warden_strategies::{Observed, SiteRoute, Strategy, StrategyError, SwitchMode};

// ------------------------------------------------------------------ harness

/// Is `haproxy` installed? Panics under CI=true when it is not.
fn haproxy_available() -> bool {
    match Command::new("haproxy").arg("-v").output() {
        Ok(o) if o.status.success() => true,
        other => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("haproxy is not installed (apt-get install -y haproxy): {other:?}");
            }
            eprintln!("SKIPPED: haproxy is not installed (apt-get install -y haproxy)");
            false
        }
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("warden-haproxy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP service standing for one site: answers every line with the site's name.
struct Backend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn backend(name: &'static str) -> Backend {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(_)) = lines.next_line().await {
                    if w.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Backend { addr, task }
}

/// One server line of the HAProxy backend.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    /// `disabled` in haproxy.cfg: starts in maintenance.
    disabled: bool,
}

/// A running `haproxy -db` with frontend `fe_web` → backend `be_web`.
struct Haproxy {
    dir: TempDir,
    cfg: PathBuf,
    /// A second config file read at start, if written (see
    /// `restart_keeping_server_states_and_fences`).
    fences: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Where clients connect.
    front: SocketAddr,
    /// The admin UNIX socket (always configured).
    sock: PathBuf,
    /// The admin TCP socket, if asked for.
    tcp: Option<SocketAddr>,
    /// A `level operator` UNIX socket (not allowed to change servers).
    operator_sock: PathBuf,
}

impl Haproxy {
    /// Write the config and start HAProxy. `base` is the test's port block:
    /// frontend on `base`, TCP runtime API on `base + 9`.
    async fn start(tag: &str, base: u16, tcp_runtime: bool, servers: &[Server]) -> Haproxy {
        let dir = TempDir::new(tag);
        let front: SocketAddr = format!("127.0.0.1:{base}").parse().expect("addr");
        let tcp: Option<SocketAddr> =
            tcp_runtime.then(|| format!("127.0.0.1:{}", base + 9).parse().expect("addr"));
        for a in std::iter::once(front).chain(tcp) {
            if let Err(e) = std::net::TcpListener::bind(a) {
                panic!(
                    "port {a} is taken ({e}): this test needs ports {base}-{}",
                    base + 9
                );
            }
        }
        let sock = dir.0.join("admin.sock");
        let operator_sock = dir.0.join("operator.sock");
        let mut cfg = format!(
            "global\n    stats socket {} mode 600 level admin\n    stats socket {} mode 600 level operator\n",
            sock.display(),
            operator_sock.display()
        );
        if let Some(t) = tcp {
            cfg.push_str(&format!("    stats socket ipv4@{t} level admin\n"));
        }
        cfg.push_str(&format!(
            "    stats timeout 30s\n    log stderr format short local0 info\n\n\
             defaults\n    mode tcp\n    log global\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n\
             frontend fe_web\n    bind {front}\n    default_backend be_web\n\n\
             backend be_web\n    balance first\n"
        ));
        for s in servers {
            cfg.push_str(&format!(
                "    server {} {}{}\n",
                s.name,
                s.addr,
                if s.disabled { " disabled" } else { "" }
            ));
        }
        let path = dir.0.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        let log = dir.0.join("haproxy.log");
        let mut h = Haproxy {
            cfg: path,
            fences: dir.0.join("warden-fences.cfg"),
            log,
            child: None,
            front,
            sock,
            tcp,
            operator_sock,
            dir,
        };
        h.spawn().await;
        h
    }

    /// Start the process and wait until both the frontend and the Runtime API answer.
    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&self.cfg);
        if self.fences.exists() {
            cmd.arg("-f").arg(&self.fences);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let api = raw(
                &RuntimeAddr::Unix(self.sock.clone()),
                "show servers state be_web",
            )
            .await;
            let front = TcpStream::connect(self.front).await;
            if api.as_deref().is_ok_and(|r| r.starts_with("1\n")) && front.is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("haproxy exited with {status}:\n{}", self.log_text());
            }
            if Instant::now() > deadline {
                panic!(
                    "haproxy not ready after 10 s (api: {api:?}):\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kill the process (by its PID) and wait for it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A restart: all runtime state (server states, variables) is lost.
    async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// From now on, restarts go the way docs/configuration.md advises: the
    /// servers' states are saved (`show servers state` into haproxy.cfg's
    /// `server-state-file`) before HAProxy stops, and read back when it
    /// starts (`load-server-state-from-file global`).
    async fn keep_server_states(&mut self) {
        let file = self.dir.0.join("servers.state");
        let cfg = std::fs::read_to_string(&self.cfg)
            .expect("read haproxy.cfg")
            .replacen(
                "global\n",
                &format!("global\n    server-state-file {}\n", file.display()),
                1,
            )
            .replacen(
                "defaults\n",
                "defaults\n    load-server-state-from-file global\n",
                1,
            );
        std::fs::write(&self.cfg, cfg).expect("write haproxy.cfg");
        self.restart().await;
    }

    /// Save the servers' states into the `server-state-file`, then restart.
    async fn restart_keeping_server_states(&mut self) {
        let states = raw(&self.unix(), "show servers state")
            .await
            .expect("runtime API answers");
        std::fs::write(self.dir.0.join("servers.state"), states).expect("write the state file");
        self.restart().await;
    }

    /// [`Haproxy::restart_keeping_server_states`], and the fence variables
    /// kept too, as docs/configuration.md advises: each `get var` written
    /// as a `set-var` line of a `global` section in a second config file.
    async fn restart_keeping_server_states_and_fences(&mut self, vars: &[&str]) {
        let mut file = String::from("global\n");
        for var in vars {
            let reply = raw(&self.unix(), &format!("get var {var}"))
                .await
                .expect("runtime API answers");
            if let Some(v) = reply
                .trim_end()
                .strip_prefix(&format!("{var}: type=str value=<"))
                .and_then(|v| v.strip_suffix('>'))
            {
                file.push_str(&format!("    set-var {var} str(\"{v}\")\n"));
            }
        }
        std::fs::write(&self.fences, file).expect("write the fences file");
        self.restart_keeping_server_states().await;
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn unix(&self) -> RuntimeAddr {
        RuntimeAddr::Unix(self.sock.clone())
    }

    /// `srv_admin_state` of each server, from a raw `show servers state`.
    async fn admin_states(&self) -> Vec<(String, u32)> {
        let reply = raw(&self.unix(), "show servers state be_web")
            .await
            .expect("runtime API answers");
        reply
            .lines()
            .skip(2)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[3].to_string(), f[6].parse().expect("admin state"))
            })
            .collect()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- haproxy log ({}):\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// One command to a Runtime API, the way an operator would with socat.
async fn raw(addr: &RuntimeAddr, line: &str) -> std::io::Result<String> {
    let mut buf = String::new();
    match addr {
        RuntimeAddr::Unix(p) => {
            let mut s = UnixStream::connect(p).await?;
            s.write_all(format!("{line}\n").as_bytes()).await?;
            s.read_to_string(&mut buf).await?;
        }
        RuntimeAddr::Tcp(a) => {
            let mut s = TcpStream::connect(a).await?;
            s.write_all(format!("{line}\n").as_bytes()).await?;
            s.read_to_string(&mut buf).await?;
        }
    }
    Ok(buf)
}

/// A client connection through the frontend.
struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    w: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.expect("connect to HAProxy");
        let (r, w) = s.into_split();
        Client {
            lines: BufReader::new(r).lines(),
            w,
        }
    }

    /// Ask once on this connection: the name of the site that answers.
    async fn ask(&mut self) -> Result<String, String> {
        self.w
            .write_all(b"which site?\n")
            .await
            .map_err(|e| format!("send: {e}"))?;
        match tokio::time::timeout(Duration::from_secs(2), self.lines.next_line()).await {
            Err(_) => Err("no answer within 2 s".into()),
            Ok(Err(e)) => Err(format!("read: {e}")),
            Ok(Ok(None)) => Err("connection closed".into()),
            Ok(Ok(Some(l))) => Ok(l),
        }
    }
}

/// Which site answers a new connection.
async fn served_by(front: SocketAddr) -> Result<String, String> {
    Client::connect(front).await.ask().await
}

/// Poll `check` every 50 ms until it succeeds or `patience` runs out.
async fn eventually<F, Fut>(what: &str, patience: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + patience;
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: still not true after {patience:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn settings(runtime: RuntimeAddr, backend: &str, drain: Duration) -> HaproxySettings {
    HaproxySettings {
        frontend: "hx1".into(),
        group: "web".into(),
        runtime,
        backend: backend.into(),
        servers: [("a", "srv_a"), ("b", "srv_b")]
            .into_iter()
            .map(|(s, v)| (s.to_string(), v.to_string()))
            .collect(),
        drain_timeout: drain,
        timeout: HaproxyDriver::DEFAULT_TIMEOUT,
    }
}

fn strategy(s: HaproxySettings) -> FrontendStrategy {
    let d: Arc<dyn FrontendDriver> = Arc::new(HaproxyDriver::new(s).expect("driver"));
    FrontendStrategy::new("web", vec![d]).expect("strategy")
}

fn to(site: &str, mode: SwitchMode) -> SiteRoute {
    SiteRoute {
        site: site.into(),
        mode,
    }
}

fn observed(site: Option<&str>, epoch: u64) -> Observed {
    Observed {
        site: site.map(String::from),
        epoch,
        drift: vec![],
        unread: vec![],
        unread_elements: vec![],
    }
}

async fn two_sites() -> (Backend, Backend) {
    (backend("site-a").await, backend("site-b").await)
}

fn servers(a: &Backend, b: &Backend, b_disabled: bool) -> Vec<Server> {
    vec![
        Server {
            name: "srv_a",
            addr: a.addr,
            disabled: false,
        },
        Server {
            name: "srv_b",
            addr: b.addr,
            disabled: b_disabled,
        },
    ]
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn unix_socket_activate_moves_real_traffic_and_cuts_old_connections() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("unix", 29400, false, &servers(&a, &b, false)).await;
    let s = strategy(settings(ha.unix(), "be_web", Duration::from_secs(5)));
    assert_eq!(s.name(), "frontend");

    // haproxy.cfg has both servers ready: no single route yet, no fence.
    assert_eq!(s.current().await.expect("readable"), observed(None, 0));
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));

    s.activate(&to("b", SwitchMode::Immediate), 1)
        .await
        .expect("route to b");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 1));
    assert_eq!(
        ha.admin_states().await,
        vec![("srv_a".to_string(), 1), ("srv_b".to_string(), 0)]
    );
    // Repeating the same activation changes nothing.
    let mut held = Client::connect(ha.front).await;
    assert_eq!(held.ask().await.as_deref(), Ok("site-b"));
    s.activate(&to("b", SwitchMode::Immediate), 1)
        .await
        .expect("idempotent");
    assert_eq!(
        held.ask().await.as_deref(),
        Ok("site-b"),
        "kept its connection"
    );

    // A disaster switch back to a: b's open connection is cut at once.
    s.activate(&to("a", SwitchMode::Immediate), 2)
        .await
        .expect("route to a");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
    let cut = held.ask().await;
    assert!(cut.is_err(), "the old connection must be cut, got {cut:?}");
    assert_eq!(s.current().await.expect("readable"), observed(Some("a"), 2));
    for _ in 0..20 {
        assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
    }
}

#[tokio::test]
async fn tcp_socket_drain_lets_old_connections_finish_then_cuts_them() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("drain", 29410, true, &servers(&a, &b, false)).await;
    let tcp = RuntimeAddr::Tcp(ha.tcp.expect("tcp runtime"));
    let drain = Duration::from_millis(1500);
    let s = strategy(settings(tcp, "be_web", drain));

    s.activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect("route to a");
    let mut old = Client::connect(ha.front).await;
    assert_eq!(old.ask().await.as_deref(), Ok("site-a"));

    let t0 = Instant::now();
    s.activate(&to("b", SwitchMode::Drain), 2)
        .await
        .expect("planned switch to b");
    assert!(
        t0.elapsed() < drain / 2,
        "activate must not wait for the drain ({:?})",
        t0.elapsed()
    );
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    assert_eq!(
        old.ask().await.as_deref(),
        Ok("site-a"),
        "old connection drains"
    );
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 2));
    // srv_a drains (admin state 8).
    assert_eq!(
        ha.admin_states().await,
        vec![("srv_a".to_string(), 8), ("srv_b".to_string(), 0)]
    );

    // After the drain timeout: maintenance, and the old connection is cut.
    eventually(
        "srv_a in maintenance after the drain",
        drain * 3,
        || async {
            let st = ha.admin_states().await;
            (st[0] == ("srv_a".to_string(), 1))
                .then_some(())
                .ok_or(format!("{st:?}"))
        },
    )
    .await;
    assert!(
        t0.elapsed() >= drain,
        "drain ended early: {:?}",
        t0.elapsed()
    );
    // Maintenance and the cut are two commands of one line
    // (`set server ... state maint; shutdown sessions server ...`), so the
    // state read above may land between them: the cut follows at once.
    let mut answers = Vec::new();
    let cut_at = Instant::now();
    loop {
        match old.ask().await {
            Err(_) => break,
            Ok(site) => answers.push(site),
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(2),
            "the drained connection must be cut after maintenance, still answered {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        answers.iter().all(|s| s == "site-a"),
        "the drained connection stays on a until cut: {answers:?}"
    );
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 2));
}

/// A planned switch's drain outlives the orchestrator that started it (a
/// restart, a new leader: the timer that ends it was in the old process).
/// HAProxy keeps the old server in `drain` — no new users, but its open
/// connections stay on the old site — and the route reads right, so no
/// drift is seen and nothing ever ends it. The next orchestrator's read of
/// the route finds a drain that nothing in it times, and ends it the way
/// the route ordered it: maintenance and the connections cut, once the
/// drain time is over (counted from when HAProxy says the drain began).
#[tokio::test]
async fn a_drain_left_by_a_stopped_orchestrator_is_ended_by_the_next_one() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("orphan", 29370, false, &servers(&a, &b, false)).await;
    let drain = Duration::from_secs(1);
    let first = strategy(settings(ha.unix(), "be_web", drain));
    first
        .activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect("route to a");
    let mut old = Client::connect(ha.front).await;
    assert_eq!(old.ask().await.as_deref(), Ok("site-a"));
    first
        .activate(&to("b", SwitchMode::Drain), 2)
        .await
        .expect("planned switch to b");
    // The orchestrator stops while a drains.
    drop(first);
    assert_eq!(
        ha.admin_states().await,
        vec![("srv_a".to_string(), 8), ("srv_b".to_string(), 0)]
    );

    // The next one reads the route (reconciliation): right, no drift ...
    let second = strategy(settings(ha.unix(), "be_web", drain));
    assert_eq!(
        second.current().await.expect("readable"),
        observed(Some("b"), 2)
    );
    // ... and the drain ends: a in maintenance, its last connection cut.
    eventually(
        "srv_a in maintenance after the drain",
        drain * 10,
        || async {
            let st = ha.admin_states().await;
            (st[0] == ("srv_a".to_string(), 1))
                .then_some(())
                .ok_or(format!("{st:?}"))
        },
    )
    .await;
    // Maintenance and the cut are two commands: the cut follows at once.
    let cut_at = Instant::now();
    while let Ok(site) = old.ask().await {
        assert!(
            cut_at.elapsed() < drain * 5,
            "the drained connection must be cut, still answered by {site}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    assert_eq!(
        second.current().await.expect("readable"),
        observed(Some("b"), 2)
    );
}

/// The drain end a read leaves behind asks the licence of the read that
/// found it (the orchestrator reads under its term's gate): a leader
/// deposed after its read ends no drain — the new leader's own read does.
#[tokio::test]
async fn a_drain_end_left_by_a_read_is_not_sent_once_its_licence_ended() {
    use std::sync::atomic::{AtomicBool, Ordering};
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("readgate", 29500, false, &servers(&a, &b, false)).await;
    let drain = Duration::from_secs(1);
    let first = strategy(settings(ha.unix(), "be_web", drain));
    first
        .activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect("route to a");
    first
        .activate(&to("b", SwitchMode::Drain), 2)
        .await
        .expect("planned switch to b");
    drop(first);
    let licensed = Arc::new(AtomicBool::new(true));
    let held = licensed.clone();
    let gate: warden_strategies::gate::Gate = Arc::new(move || held.load(Ordering::SeqCst));
    let second = strategy(settings(ha.unix(), "be_web", drain));
    let seen = warden_strategies::gate::under(gate, second.current()).await;
    assert_eq!(seen.expect("readable"), observed(Some("b"), 2));
    // Deposed before the drain time is over: nothing is sent.
    licensed.store(false, Ordering::SeqCst);
    tokio::time::sleep(drain * 3).await;
    assert_eq!(
        ha.admin_states().await,
        vec![("srv_a".to_string(), 8), ("srv_b".to_string(), 0)],
        "a deposed leader's read must not end the drain"
    );
}

#[tokio::test]
async fn a_newer_route_cancels_a_pending_drain() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("supersede", 29420, false, &servers(&a, &b, false)).await;
    let s = strategy(settings(ha.unix(), "be_web", Duration::from_millis(700)));
    s.activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect("a");
    s.activate(&to("b", SwitchMode::Drain), 2)
        .await
        .expect("drain to b");
    // Back to a before a's drain has ended: the pending end of that drain
    // must not put a, the target again, in maintenance.
    s.activate(&to("a", SwitchMode::Drain), 3)
        .await
        .expect("drain to a");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        ha.admin_states().await,
        vec![("srv_a".to_string(), 0), ("srv_b".to_string(), 1)]
    );
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
    assert_eq!(s.current().await.expect("readable"), observed(Some("a"), 3));
}

/// The end of a drain fails (the Runtime API cannot be reached at that
/// moment): the old server stays in `drain`, and the route reads right. The
/// next read of the route, the Runtime API back, ends it at once (its drain
/// time is long over).
#[tokio::test]
async fn a_drain_whose_end_failed_is_ended_by_a_later_read() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("endfail", 29360, false, &servers(&a, &b, false)).await;
    // The driver reaches HAProxy through a relay that can be stopped.
    let relay_path = ha.dir.0.join("relay.sock");
    let relay = slow_relay(&relay_path, ha.sock.clone(), Duration::ZERO).await;
    let drain = Duration::from_secs(1);
    let s = strategy(settings(
        RuntimeAddr::Unix(relay_path.clone()),
        "be_web",
        drain,
    ));
    s.activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect("route to a");
    let mut old = Client::connect(ha.front).await;
    assert_eq!(old.ask().await.as_deref(), Ok("site-a"));
    s.activate(&to("b", SwitchMode::Drain), 2)
        .await
        .expect("planned switch to b");
    // The Runtime API cannot be reached when the drain ends.
    relay.abort();
    tokio::time::sleep(drain * 3).await;
    assert_eq!(
        ha.admin_states().await,
        vec![("srv_a".to_string(), 8), ("srv_b".to_string(), 0)],
        "the end of the drain could not be sent"
    );
    assert_eq!(old.ask().await.as_deref(), Ok("site-a"));

    // Reachable again: the next read ends the drain.
    let _ = std::fs::remove_file(&relay_path);
    let _relay = slow_relay(&relay_path, ha.sock.clone(), Duration::ZERO).await;
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 2));
    eventually(
        "srv_a in maintenance after a later read",
        drain * 10,
        || async {
            let st = ha.admin_states().await;
            (st[0] == ("srv_a".to_string(), 1))
                .then_some(())
                .ok_or(format!("{st:?}"))
        },
    )
    .await;
    let cut_at = Instant::now();
    while let Ok(site) = old.ask().await {
        assert!(
            cut_at.elapsed() < drain * 5,
            "the drained connection must be cut, still answered by {site}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
}

#[tokio::test]
async fn stale_epoch_is_refused_and_the_fence_outlives_the_orchestrator() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("stale", 29430, false, &servers(&a, &b, false)).await;
    let first = strategy(settings(ha.unix(), "be_web", Duration::from_secs(1)));
    first
        .activate(&to("b", SwitchMode::Immediate), 5)
        .await
        .expect("route to b at 5");
    drop(first);

    // A new process (a restarted or a stale orchestrator) reads the fence from HAProxy.
    let second = strategy(settings(ha.unix(), "be_web", Duration::from_secs(1)));
    assert_eq!(
        second.current().await.expect("readable"),
        observed(Some("b"), 5)
    );
    let err = second
        .activate(&to("a", SwitchMode::Immediate), 3)
        .await
        .expect_err("epoch 3 < 5");
    match &err {
        StrategyError::StaleEpoch {
            element,
            sent,
            seen,
        } => assert_eq!((element.as_str(), *sent, *seen), ("HAProxy hx1", 3, 5)),
        other => panic!("expected StaleEpoch, got {other:?}"),
    }
    assert!(!err.is_transient());
    // Another site at the same epoch: a conflicting decision.
    let err = second
        .activate(&to("a", SwitchMode::Immediate), 5)
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, StrategyError::EpochTaken { epoch: 5, .. }) && err.is_fencing(),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("conflicting decision for epoch 5"),
        "{err}"
    );
    // Nothing moved.
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    assert_eq!(
        raw(&ha.unix(), "get var proc.warden_route.web")
            .await
            .expect("api"),
        "proc.warden_route.web: type=str value=<5:b>\n"
    );
    // A newer epoch is accepted.
    second
        .activate(&to("a", SwitchMode::Immediate), 6)
        .await
        .expect("epoch 6");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
}

/// A relay in front of a real Runtime API socket that holds every
/// `show servers state` for `delay` before passing it on: a slow round trip
/// at the moment a route reads the servers.
async fn slow_relay(path: &Path, upstream: PathBuf, delay: Duration) -> JoinHandle<()> {
    let l = UnixListener::bind(path).expect("bind relay");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                if r.read_line(&mut line).await.is_err() {
                    return;
                }
                if line.starts_with("show servers state") {
                    tokio::time::sleep(delay).await;
                }
                let Ok(mut up) = UnixStream::connect(&upstream).await else {
                    return;
                };
                if up.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                let mut answer = Vec::new();
                let _ = up.read_to_end(&mut answer).await;
                let _ = w.write_all(&answer).await;
            });
        }
    })
}

/// A relay in front of a real Runtime API socket that loses every
/// connection whose command line starts with `lost` (closed unanswered, the
/// command not passed on): the Runtime API failing at that moment.
async fn losing_relay(path: &Path, upstream: PathBuf, lost: &'static str) -> JoinHandle<()> {
    let l = UnixListener::bind(path).expect("bind relay");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                if r.read_line(&mut line).await.is_err() || line.starts_with(lost) {
                    return;
                }
                let Ok(mut up) = UnixStream::connect(&upstream).await else {
                    return;
                };
                if up.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                let mut answer = Vec::new();
                let _ = up.read_to_end(&mut answer).await;
                let _ = w.write_all(&answer).await;
            });
        }
    })
}

/// How much of an answer a [`cutting_relay`] gives back.
type Keep = fn(&[u8]) -> usize;

/// A relay in front of a real Runtime API socket that passes every command
/// on but gives back only the first `keep` of the answer to a command line
/// starting with `cut`, then closes: HAProxy stopping, restarting or
/// reloading in the middle of its answer, or a port forwarder in front of
/// a HAProxy that is not up (it accepts, then closes at once).
async fn cutting_relay(
    path: &Path,
    upstream: PathBuf,
    cut: &'static str,
    keep: Keep,
) -> JoinHandle<()> {
    let l = UnixListener::bind(path).expect("bind relay");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                if r.read_line(&mut line).await.is_err() {
                    return;
                }
                let Ok(mut up) = UnixStream::connect(&upstream).await else {
                    return;
                };
                if up.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                let mut answer = Vec::new();
                let _ = up.read_to_end(&mut answer).await;
                let n = if line.starts_with(cut) {
                    keep(&answer)
                } else {
                    answer.len()
                };
                let _ = w.write_all(&answer[..n]).await;
            });
        }
    })
}

/// HAProxy's answer cut short — the connection closed before a word, or in
/// the middle of the answer (mid-line, or between two lines of a dump,
/// where HAProxy's buffer flushes fall) — is the Runtime API failing at
/// that moment, as a refused connect is: transient, so a runbook's switch
/// step tries again while HAProxy comes back. Before, a read cut short was
/// "rejected" (a foreign or broken peer, fix the config): a failover's
/// switch failed at once without a retry, and a failback's was rolled back,
/// for an answer HAProxy would have given whole a moment later. Never a
/// success either way, and the reply is named.
#[tokio::test]
async fn an_answer_cut_short_is_transient_never_success() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("cutshort", 29330, false, &servers(&a, &b, false)).await;
    let drain = Duration::from_secs(1);
    strategy(settings(ha.unix(), "be_web", drain))
        .activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect("route to a");
    let cases: [(&str, &'static str, Keep); 5] = [
        ("fence: no answer", "get var", |_| 0),
        ("fence: mid-line", "get var", |x| x.len() / 2),
        ("servers: no answer", "show servers state", |_| 0),
        ("servers: mid-line", "show servers state", |x| x.len() / 2),
        // Whole lines, but not the empty line that ends every dump.
        ("servers: between lines", "show servers state", |x| {
            x.len() - 1
        }),
    ];
    for (i, (case, cut, keep)) in cases.into_iter().enumerate() {
        let path = ha.dir.0.join(format!("cut{i}.sock"));
        let relay = cutting_relay(&path, ha.sock.clone(), cut, keep).await;
        let s = strategy(settings(RuntimeAddr::Unix(path), "be_web", drain));
        let err = s
            .activate(&to("b", SwitchMode::Immediate), 2)
            .await
            .expect_err("an answer cut short is no success");
        assert!(err.is_transient(), "{case}: switch: {err:?}");
        assert!(err.to_string().contains(cut), "{case}: {err}");
        let err = s.current().await.expect_err("no reading either");
        assert!(err.is_transient(), "{case}: read: {err:?}");
        relay.abort();
    }
    // Nothing moved: users are still on a, at epoch 1.
    assert_eq!(
        strategy(settings(ha.unix(), "be_web", drain))
            .current()
            .await
            .expect("readable"),
        observed(Some("a"), 1)
    );
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
}

/// The end of a drain puts the old server in maintenance and cuts its
/// connections. Sent as two commands, a Runtime API failing between them
/// (the second one's connection lost) left the server in maintenance with
/// its connections open: the route reads right and the server does not
/// drain any more, so nothing would ever cut them — users kept on the old
/// site for good. Both go in one command line now: no connection of their
/// own can fail between them.
#[tokio::test]
async fn the_end_of_a_drain_cannot_leave_maintenance_without_the_cut() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("halfcut", 29350, false, &servers(&a, &b, false)).await;
    let relay_path = ha.dir.0.join("relay.sock");
    let _relay = losing_relay(&relay_path, ha.sock.clone(), "shutdown sessions").await;
    let drain = Duration::from_secs(1);
    // Routed to a while the Runtime API answered everything.
    strategy(settings(ha.unix(), "be_web", drain))
        .activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect("route to a");
    let s = strategy(settings(RuntimeAddr::Unix(relay_path), "be_web", drain));
    let mut old = Client::connect(ha.front).await;
    assert_eq!(old.ask().await.as_deref(), Ok("site-a"));
    s.activate(&to("b", SwitchMode::Drain), 2)
        .await
        .expect("planned switch to b");
    eventually(
        "srv_a in maintenance after the drain",
        drain * 10,
        || async {
            let st = ha.admin_states().await;
            (st[0] == ("srv_a".to_string(), 1))
                .then_some(())
                .ok_or(format!("{st:?}"))
        },
    )
    .await;
    // The reads that follow (reconciliation's) change nothing here: the
    // route reads right.
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 2));
    let cut_at = Instant::now();
    while let Ok(site) = old.ask().await {
        assert!(
            cut_at.elapsed() < drain * 5,
            "the drained connection must be cut with the maintenance, still answered by {site}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
}

/// A deposed leader's route still on its way when the new leader routes:
/// the old call read the fence (epoch 4) before the new one wrote epoch 6,
/// and reads the servers slowly. HAProxy's variables have no compare-and-set,
/// so the driver reads the fence again before it writes it and before it
/// touches each server: the late call ends with a stale-epoch error and
/// leaves the new route, its fence and its traffic alone.
#[tokio::test]
async fn a_late_route_of_a_deposed_leader_does_not_undo_a_newer_one() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("late", 29470, false, &servers(&a, &b, false)).await;
    let direct =
        HaproxyDriver::new(settings(ha.unix(), "be_web", Duration::from_secs(1))).expect("driver");
    direct
        .set_route("a", 4, SwitchMode::Immediate)
        .await
        .expect("route to a at 4");
    let relay_path = ha.dir.0.join("slow.sock");
    let _relay = slow_relay(&relay_path, ha.sock.clone(), Duration::from_millis(1500)).await;
    let deposed = HaproxyDriver::new(settings(
        RuntimeAddr::Unix(relay_path),
        "be_web",
        Duration::from_secs(1),
    ))
    .expect("driver");
    // The deposed leader (epoch 5) orders a; its call reads the fence (4)
    // and then waits on the slow servers read.
    let late = tokio::spawn(async move { deposed.set_route("a", 5, SwitchMode::Immediate).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Meanwhile the new leader moves the group to b at epoch 6.
    direct
        .set_route("b", 6, SwitchMode::Immediate)
        .await
        .expect("route to b at 6");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    match late.await.expect("joined") {
        Err(StrategyError::StaleEpoch { sent, seen, .. }) => assert_eq!((sent, seen), (5, 6)),
        other => panic!("the late route was not refused: {other:?}"),
    }
    assert_eq!(
        raw(&ha.unix(), "get var proc.warden_route.web")
            .await
            .expect("api"),
        "proc.warden_route.web: type=str value=<6:b>\n"
    );
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
}

/// A route whose caller's licence to act ends while the call waits on a
/// slow servers read (a leader paused mid-call past its lease, see
/// `warden_strategies::gate`): the call ends without another command that
/// changes HAProxy — the fence and the servers stay as they were, users
/// stay on a. An epoch fence cannot refuse this order: no newer route came.
#[tokio::test]
async fn a_route_whose_licence_ends_mid_call_changes_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("gate", 29340, false, &servers(&a, &b, false)).await;
    let direct =
        HaproxyDriver::new(settings(ha.unix(), "be_web", Duration::from_secs(1))).expect("driver");
    direct
        .set_route("a", 4, SwitchMode::Immediate)
        .await
        .expect("route to a at 4");
    let relay_path = ha.dir.0.join("slow.sock");
    let _relay = slow_relay(&relay_path, ha.sock.clone(), Duration::from_millis(1500)).await;
    let paused = HaproxyDriver::new(settings(
        RuntimeAddr::Unix(relay_path),
        "be_web",
        Duration::from_secs(3),
    ))
    .expect("driver");
    let licensed = Arc::new(AtomicBool::new(true));
    let held = licensed.clone();
    let gate: warden_strategies::gate::Gate = Arc::new(move || held.load(Ordering::SeqCst));
    let call = tokio::spawn(warden_strategies::gate::under(gate, async move {
        paused.set_route("b", 5, SwitchMode::Immediate).await
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    licensed.store(false, Ordering::SeqCst);
    match call.await.expect("joined") {
        Err(StrategyError::Unlicensed { .. }) => {}
        other => panic!("the route went on after its licence ended: {other:?}"),
    }
    assert_eq!(
        raw(&ha.unix(), "get var proc.warden_route.web")
            .await
            .expect("api"),
        "proc.warden_route.web: type=str value=<4:a>\n"
    );
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
}

#[tokio::test]
async fn haproxy_restart_loses_the_route_and_activate_restores_it() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    // haproxy.cfg itself routes to a (b is `disabled`).
    let mut ha = Haproxy::start("restart", 29440, false, &servers(&a, &b, true)).await;
    let s = strategy(settings(ha.unix(), "be_web", Duration::from_secs(1)));
    assert_eq!(s.current().await.expect("readable"), observed(Some("a"), 0));

    s.activate(&to("b", SwitchMode::Immediate), 3)
        .await
        .expect("route to b");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 3));

    // Restart: runtime state and the fence are gone; haproxy.cfg routes to a again.
    ha.restart().await;
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
    let seen = s.current().await.expect("readable");
    assert_eq!(seen, observed(Some("a"), 0), "drift the orchestrator sees");

    // What reconciliation does: the decided route again, same epoch.
    s.activate(&to("b", SwitchMode::Immediate), 3)
        .await
        .expect("reconcile");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 3));
}

/// The restart docs/configuration.md advises (servers' states saved and
/// loaded back): users stay on the routed site; the fence is still lost
/// (a variable is no server state) until reconciliation writes it again.
#[tokio::test]
async fn a_restart_with_saved_server_states_keeps_the_route() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    // haproxy.cfg itself routes to a (b is `disabled`).
    let mut ha = Haproxy::start("statefile", 29480, false, &servers(&a, &b, true)).await;
    ha.keep_server_states().await;
    let s = strategy(settings(ha.unix(), "be_web", Duration::from_secs(1)));
    s.activate(&to("b", SwitchMode::Immediate), 3)
        .await
        .expect("route to b");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));

    ha.restart_keeping_server_states().await;
    for _ in 0..10 {
        assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    }
    assert_eq!(
        s.current().await.expect("readable"),
        observed(Some("b"), 0),
        "the route is kept, the fence is not"
    );
    // Reconciliation writes the fence again; an older epoch is refused.
    s.activate(&to("b", SwitchMode::Immediate), 3)
        .await
        .expect("reconcile");
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 3));
    let err = s
        .activate(&to("a", SwitchMode::Immediate), 2)
        .await
        .expect_err("an older epoch");
    assert!(matches!(err, StrategyError::StaleEpoch { .. }), "{err:?}");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
}

/// HAProxy restarted (servers' states kept, the fence variable lost) while
/// an order of an older epoch was still to come: a runbook's late call, a
/// deposed leader's. The driver that routed at the newer epoch judges the
/// order by the fence it wrote, not by HAProxy's empty one: the order is
/// refused and users stay where the newer decision put them. Refusing it
/// writes the fence back, so HAProxy itself refuses the older epoch again
/// when it comes from another process (which never saw epoch 6).
#[tokio::test]
async fn an_older_order_after_a_haproxy_restart_is_refused_and_the_fence_written_back() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let mut ha = Haproxy::start("refence", 29490, false, &servers(&a, &b, true)).await;
    ha.keep_server_states().await;
    let d =
        HaproxyDriver::new(settings(ha.unix(), "be_web", Duration::from_secs(1))).expect("driver");
    d.set_route("b", 6, SwitchMode::Immediate)
        .await
        .expect("route to b at 6");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));

    ha.restart_keeping_server_states().await;
    assert_eq!(
        raw(&ha.unix(), "get var proc.warden_route.web")
            .await
            .expect("api")
            .trim(),
        "Variable not found.",
        "the restart lost the fence"
    );
    match d.set_route("a", 5, SwitchMode::Immediate).await {
        Err(StrategyError::StaleEpoch { sent, seen, .. }) => assert_eq!((sent, seen), (5, 6)),
        other => panic!("an order older than the fence this driver wrote passed: {other:?}"),
    }
    for _ in 0..5 {
        assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    }
    assert_eq!(
        raw(&ha.unix(), "get var proc.warden_route.web")
            .await
            .expect("api"),
        "proc.warden_route.web: type=str value=<6:b>\n",
        "the fence is written back"
    );
    // Another process (a deposed leader) is refused by HAProxy's fence now.
    let deposed =
        HaproxyDriver::new(settings(ha.unix(), "be_web", Duration::from_secs(1))).expect("driver");
    match deposed.set_route("a", 5, SwitchMode::Immediate).await {
        Err(StrategyError::StaleEpoch { sent, seen, .. }) => assert_eq!((sent, seen), (5, 6)),
        other => panic!("the deposed leader's order passed: {other:?}"),
    }
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));

    // Restarted again, and an older writer got in first: its fence (5:a)
    // is below the one this driver wrote; the same epoch 6, other site, is
    // a conflict; the decided route at 6 and a newer one go ahead.
    ha.restart_keeping_server_states().await;
    deposed
        .set_route("a", 5, SwitchMode::Immediate)
        .await
        .expect("nothing in HAProxy to refuse it with");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
    let err = d
        .set_route("a", 6, SwitchMode::Immediate)
        .await
        .expect_err("another site at epoch 6");
    assert!(
        err.to_string().contains("conflicting decision for epoch 6"),
        "{err}"
    );
    d.set_route("b", 6, SwitchMode::Immediate)
        .await
        .expect("the decided route again");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    d.set_route("a", 7, SwitchMode::Immediate)
        .await
        .expect("a newer route");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
}

/// The servers route to a while the fence says epoch 6 decided b (someone
/// set the servers by hand, or a late writer got between the fence and the
/// servers): "a at 6" is a pair no decision made, and a new store would
/// adopt it. No route is read, at epoch 6.
#[tokio::test]
async fn servers_that_disagree_with_the_fence_are_no_route_at_its_epoch() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("pair", 29390, false, &servers(&a, &b, false)).await;
    let s = strategy(settings(ha.unix(), "be_web", Duration::from_secs(1)));
    s.activate(&to("b", SwitchMode::Immediate), 6)
        .await
        .expect("route to b at 6");
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 6));
    for line in [
        "set server be_web/srv_a state ready",
        "set server be_web/srv_b state maint",
    ] {
        assert_eq!(raw(&ha.unix(), line).await.expect("api").trim(), "");
    }
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-a"));
    let seen = s.current().await.expect("readable");
    assert_eq!((seen.site.as_deref(), seen.epoch), (None, 6), "{seen:?}");
    // The decided route at 6 puts it right.
    s.activate(&to("b", SwitchMode::Immediate), 6)
        .await
        .expect("reconcile");
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 6));
}

/// A third server in the backend that maps to no site (a second server
/// for site a added by hand, a `server-template` slot resolved): after a
/// switch to b it is still ready, and HAProxy sends users to it too. The
/// route read says so — no route, naming the server — instead of "b at
/// 6", so verify fails and the reconcile says why; once the server is in
/// maintenance the route reads b again. Before, only the mapped servers
/// were counted: b at 6, while users still reached site a.
#[tokio::test]
async fn a_ready_server_of_no_site_is_no_route() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    // Before srv_b: with `balance first`, it takes every user while ready.
    let mut three = servers(&a, &b, false);
    three.insert(
        1,
        Server {
            name: "srv_a2",
            addr: a.addr,
            disabled: false,
        },
    );
    let ha = Haproxy::start("unmapped", 29460, false, &three).await;
    let s = strategy(settings(ha.unix(), "be_web", Duration::from_secs(1)));
    s.activate(&to("b", SwitchMode::Immediate), 6)
        .await
        .expect("route to b at 6");
    assert_eq!(
        served_by(ha.front).await.as_deref(),
        Ok("site-a"),
        "srv_a2 takes users to site a"
    );
    let e = s.current().await.expect_err("a route read as b");
    assert!(
        e.to_string().contains("srv_a2") && e.to_string().contains("no site"),
        "{e}"
    );
    assert_eq!(
        raw(&ha.unix(), "set server be_web/srv_a2 state maint")
            .await
            .expect("api")
            .trim(),
        ""
    );
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 6));
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
}

/// The restart docs/configuration.md advises with the fence kept too (its
/// variable written into a config file HAProxy reads at start): a deposed
/// leader that never saw epoch 6 — a process of its own, nothing
/// remembered — is refused by HAProxy itself right after the restart.
#[tokio::test]
async fn a_restart_that_keeps_the_fence_refuses_a_deposed_leader_at_once() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let mut ha = Haproxy::start("fencefile", 29380, false, &servers(&a, &b, true)).await;
    ha.keep_server_states().await;
    let leader =
        HaproxyDriver::new(settings(ha.unix(), "be_web", Duration::from_secs(1))).expect("driver");
    leader
        .set_route("b", 6, SwitchMode::Immediate)
        .await
        .expect("route to b at 6");
    ha.restart_keeping_server_states_and_fences(&["proc.warden_route.web"])
        .await;
    assert_eq!(
        raw(&ha.unix(), "get var proc.warden_route.web")
            .await
            .expect("api"),
        "proc.warden_route.web: type=str value=<6:b>\n"
    );
    let deposed =
        HaproxyDriver::new(settings(ha.unix(), "be_web", Duration::from_secs(1))).expect("driver");
    match deposed.set_route("a", 5, SwitchMode::Immediate).await {
        Err(StrategyError::StaleEpoch { sent, seen, .. }) => assert_eq!((sent, seen), (5, 6)),
        other => panic!("the deposed leader's order passed: {other:?}"),
    }
    for _ in 0..5 {
        assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    }
    let s = strategy(settings(ha.unix(), "be_web", Duration::from_secs(1)));
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 6));
}

#[tokio::test]
async fn unknown_backend_or_server_and_wrong_socket_are_clear_errors() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    let ha = Haproxy::start("errors", 29450, false, &servers(&a, &b, false)).await;

    // A backend haproxy.cfg does not have.
    let s = strategy(settings(ha.unix(), "be_nosuch", Duration::from_secs(1)));
    let err = s
        .activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect_err("no such backend");
    assert!(matches!(err, StrategyError::Rejected { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("\"Can't find backend.\""), "{msg}");
    assert!(msg.contains("groups.web.frontend.backend"), "{msg}");
    let err = s.current().await.expect_err("current fails too");
    assert!(err.to_string().contains("Can't find backend"), "{err}");

    // A server the backend does not have: refused before anything changes.
    let mut bad = settings(ha.unix(), "be_web", Duration::from_secs(1));
    bad.servers.insert("b".into(), "srv_zz".into());
    let s = strategy(bad);
    let err = s
        .activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect_err("no such server");
    assert!(
        err.to_string().contains(
            "backend be_web has no server \"srv_zz\" (site b); its servers: [srv_a, srv_b]"
        ),
        "{err}"
    );
    assert_eq!(
        ha.admin_states().await,
        vec![("srv_a".to_string(), 0), ("srv_b".to_string(), 0)]
    );

    // A socket without `level admin`.
    let s = strategy(settings(
        RuntimeAddr::Unix(ha.operator_sock.clone()),
        "be_web",
        Duration::from_secs(1),
    ));
    let err = s
        .activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect_err("operator level");
    assert!(matches!(err, StrategyError::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("level admin"), "{err}");

    // No HAProxy there: transient.
    let s = strategy(settings(
        RuntimeAddr::Unix(ha.dir.0.join("nothing.sock")),
        "be_web",
        Duration::from_secs(1),
    ));
    let err = s.current().await.expect_err("no socket");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("nothing.sock"), "{err}");
    let s = strategy(settings(
        RuntimeAddr::Tcp("127.0.0.1:29459".parse().expect("addr")),
        "be_web",
        Duration::from_secs(1),
    ));
    let err = s
        .activate(&to("a", SwitchMode::Immediate), 1)
        .await
        .expect_err("nothing listens");
    assert!(err.is_transient(), "{err:?}");
}

/// A fake Runtime API on a UNIX socket: `get var` finds nothing, every other
/// command gets `reply` (or no answer at all when `reply` is `None`).
async fn fake_api(path: &Path, reply: Option<String>) -> JoinHandle<()> {
    let l = UnixListener::bind(path).expect("bind fake API");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                let Ok(Some(line)) = lines.next_line().await else {
                    return;
                };
                let answer = if line.starts_with("get var ") {
                    "Variable not found.\n\n".to_string()
                } else {
                    match &reply {
                        Some(r) => r.clone(),
                        None => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    }
                };
                let _ = w.write_all(answer.as_bytes()).await;
            });
        }
    })
}

#[tokio::test]
async fn garbage_replies_are_rejected_with_the_reply_quoted() {
    // No HAProxy needed: a fake API answers what a broken or foreign one might.
    let dir = TempDir::new("garbage");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}\n", "garbage ".repeat(100)),
            "unexpected reply to \"show servers state be_web\": \"garbage garbage",
        ),
        (
            "1\n# be_id be_name srv_id srv_name srv_op_state srv_admin_state\n3 be_web 1 srv_a 2\n\n".into(),
            "server line 1 has 5 fields, the header 6",
        ),
        (
            "2\n# be_id be_name\n\n".into(),
            "format version 2, only version 1 is understood",
        ),
        // A dump cut short is no garbage: the connection closed early
        // (transient, see `an_answer_cut_short_is_transient_never_success`).
    ];
    for (i, (reply, want)) in cases.into_iter().enumerate() {
        let path = dir.0.join(format!("fake{i}.sock"));
        let task = fake_api(&path, Some(reply)).await;
        let s = strategy(settings(
            RuntimeAddr::Unix(path),
            "be_web",
            Duration::from_secs(1),
        ));
        let err = s
            .activate(&to("a", SwitchMode::Immediate), 1)
            .await
            .expect_err("garbage refused");
        assert!(matches!(err, StrategyError::Rejected { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(want), "case {i}: {msg}");
        assert!(msg.len() < 800, "case {i}: the quote is truncated: {msg}");
        task.abort();
    }

    // An API that accepts but never answers: transient, after the timeout.
    let path = dir.0.join("silent.sock");
    let task = fake_api(&path, None).await;
    let mut st = settings(RuntimeAddr::Unix(path), "be_web", Duration::from_secs(1));
    st.timeout = Duration::from_millis(300);
    let s = strategy(st);
    let t0 = Instant::now();
    let err = s.current().await.expect_err("silent");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    task.abort();
}

#[tokio::test]
async fn configured_from_failover_conf() {
    if !haproxy_available() {
        return;
    }
    let (a, b) = two_sites().await;
    // Site b's server has the default name: the site's own name.
    let ha = Haproxy::start(
        "configured",
        29310,
        true,
        &[
            Server {
                name: "srv_a",
                addr: a.addr,
                disabled: false,
            },
            Server {
                name: "b",
                addr: b.addr,
                disabled: false,
            },
        ],
    )
    .await;
    let text = format!(
        r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/tmp/warden-test"
operator_token = {{ env = "WARDEN_TEST_UNUSED" }}

[sites.a]
agent_token = {{ env = "WARDEN_TEST_UNUSED" }}
[sites.b]
agent_token = {{ env = "WARDEN_TEST_UNUSED" }}

[frontends.hx1]
kind = "haproxy"
runtime = "{sock}"
[frontends.hx2]
kind = "haproxy"
runtime = "{tcp}"

[groups.web]
sites = ["a", "b"]
scheme = "frontend"
[groups.web.frontend]
driver = "haproxy"
frontends = ["hx1", "hx2"]
backend = "be_web"
servers = {{ a = "srv_a" }}
drain_timeout = "1s"
"#,
        sock = ha.sock.display(),
        tcp = ha.tcp.expect("tcp runtime"),
    );
    let cfg = match warden_config::parse(&text, Path::new("test.conf")) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    // Both "frontends" are the same HAProxy, reached two ways: they must agree.
    let s = FrontendStrategy::configured(&cfg, "web").expect("strategy");
    assert_eq!(s.name(), "frontend/haproxy");
    s.activate(&to("b", SwitchMode::Immediate), 1)
        .await
        .expect("route to b");
    assert_eq!(served_by(ha.front).await.as_deref(), Ok("site-b"));
    assert_eq!(s.current().await.expect("readable"), observed(Some("b"), 1));
    let err = s
        .activate(&to("c", SwitchMode::Immediate), 2)
        .await
        .expect_err("not a site");
    assert!(matches!(err, StrategyError::Config(_)), "{err:?}");
}
