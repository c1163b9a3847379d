//! The harness of the service's tests: configs of a few sites or of many
//! groups and services started on paused time (here), the fake routing
//! layer (`fake_route.rs`), the `hybrid` scheme's fake frontends and DNS
//! provider (`hybrid.rs`), and rounds of reports driven by hand
//! (`rounds.rs`).
use super::*;
use crate::store::MemStore;
use warden_proto::agent::{AuthorityWire, CheckResult, PeerProbe};
use warden_strategies::Strategy;

mod fake_route;
mod hybrid;
mod rounds;

pub(in crate::service) use fake_route::*;
pub(in crate::service) use hybrid::*;
pub(in crate::service) use rounds::*;
// One check result, for the detector's tests too.
pub(crate) use rounds::check;

pub(super) fn setup(automatic: bool, max_failovers: u32) -> (Arc<Shared>, Arc<FakeRoute>, TestDir) {
    setup_with(automatic, max_failovers, "", Arc::new(MemStore::default()))
}

/// A test's private directory, removed with everything in it when dropped
/// (also when the test panics), so no token file outlives the test.
pub(crate) struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for TestDir {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// A fresh directory with the token files of [`config_text`].
pub(super) fn test_dir(automatic: bool, max_failovers: u32) -> TestDir {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix(&format!("warden-svc-{automatic}-{max_failovers}-"))
        .tempdir()
        .unwrap();
    write_tokens(dir.path());
    TestDir(dir)
}

/// The token files [`config_text`] names, in `dir` (private, as warden
/// requires): operator `operator-secret`, agents `agent-a-secret` and
/// `agent-b-secret`, frontend `frontend-secret`.
pub(crate) fn write_tokens(dir: &std::path::Path) {
    for (f, v) in [
        ("op", "operator-secret"),
        ("a", "agent-a-secret"),
        ("b", "agent-b-secret"),
        ("fe", "frontend-secret"),
    ] {
        std::fs::write(dir.join(f), v).unwrap();
        std::fs::set_permissions(
            dir.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }
}

/// The `[orchestrator]` and `[detection]` sections of the test configs
/// (interval 250 ms, fall 3, rise 3, agent_timeout 1 s; the token files of
/// [`test_dir`]).
pub(crate) fn config_head(
    dir: &std::path::Path,
    max_failovers: u32,
    orchestrator_extra: &str,
) -> String {
    let d = dir.display();
    format!(
        r#"[orchestrator]
listen = "127.0.0.1:0"
data_dir = "{d}/data"
operator_token = {{ file = "{d}/op" }}
{orchestrator_extra}
[detection]
interval = "250ms"
fall = 3
rise = 3
hold_down = "2s"
agent_timeout = "1s"
max_failovers = {max_failovers}
failover_window = "1h"
"#
    )
}

/// The test config: sites a and b, group web on a fake frontend.
pub(crate) fn config_text(
    dir: &std::path::Path,
    automatic: bool,
    max_failovers: u32,
    orchestrator_extra: &str,
) -> String {
    let d = dir.display();
    let head = config_head(dir, max_failovers, orchestrator_extra);
    format!(
        r#"{head}[sites.a]
agent_token = {{ file = "{d}/a" }}
[sites.b]
agent_token = {{ file = "{d}/b" }}
[frontends.fe1]
control = "127.0.0.1:1"
token = {{ file = "{d}/fe" }}
[groups.web]
sites = ["a", "b"]
scheme = "frontend"
automatic = {automatic}
step_timeout = "5s"
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:0"
backends = {{ a = "127.0.0.1:1", b = "127.0.0.1:2" }}
"#
    )
}

/// [`config_text`] (automatic, at most 5 failovers) as the orchestrator
/// reads it, for a test of what it loads from a store.
pub(super) fn test_config(dir: &std::path::Path) -> warden_config::Config {
    warden_config::parse(&config_text(dir, true, 5, ""), &dir.join("failover.conf"))
        .expect("config")
}

/// [`setup`] with extra `[orchestrator]` lines and a given store.
pub(super) fn setup_with(
    automatic: bool,
    max_failovers: u32,
    orchestrator_extra: &str,
    store: Arc<dyn crate::store::Store>,
) -> (Arc<Shared>, Arc<FakeRoute>, TestDir) {
    let dir = test_dir(automatic, max_failovers);
    let text = config_text(&dir, automatic, max_failovers, orchestrator_extra);
    let (shared, fake) = start_from(&text, &dir, store).expect("config");
    (shared, fake, dir)
}

/// The service on config `text` (token files in `dir`), every group on a
/// fake route of its own; group web's is returned. The loader's error if
/// it refuses the text.
pub(super) fn start_from(
    text: &str,
    dir: &std::path::Path,
    store: Arc<dyn crate::store::Store>,
) -> Result<(Arc<Shared>, Arc<FakeRoute>), warden_config::ConfigError> {
    let fake = Arc::new(FakeRoute::default());
    let web = fake.clone();
    let shared = start_routed(text, dir, store, move |name| {
        if name == "web" {
            web.clone()
        } else {
            Arc::new(FakeRoute::default())
        }
    })?;
    Ok((shared, fake))
}

/// [`start_from`] for tests outside the service (the API's): the service
/// alone, on a memory store.
pub(crate) fn start_service(
    text: &str,
    dir: &std::path::Path,
) -> Result<Arc<Shared>, warden_config::ConfigError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    start_from(text, dir, Arc::new(MemStore::default())).map(|(s, _)| s)
}

/// [`start_from`] with the fake route of each group from `route_of`
/// (several groups on one routing element: the same route for them).
pub(super) fn start_routed(
    text: &str,
    dir: &std::path::Path,
    store: Arc<dyn crate::store::Store>,
    route_of: impl Fn(&str) -> Arc<FakeRoute>,
) -> Result<Arc<Shared>, warden_config::ConfigError> {
    start_routed_as(text, dir, store, route_of, Mode::Local)
}

/// [`start_routed`] as `mode` says: alone, or elected (one of several on
/// etcd, acting only once [`crate::service::HaRole`] takes over).
pub(super) fn start_routed_as(
    text: &str,
    dir: &std::path::Path,
    store: Arc<dyn crate::store::Store>,
    route_of: impl Fn(&str) -> Arc<FakeRoute>,
    mode: Mode,
) -> Result<Arc<Shared>, warden_config::ConfigError> {
    start_with_routing(text, dir, store, mode, |_, name| {
        crate::routing::Routing::Single(route_of(name) as Arc<dyn Strategy>)
    })
}

/// The service on config `text`, each group on the routing `routing_of`
/// builds from the config and the group's name.
pub(super) fn start_with_routing(
    text: &str,
    dir: &std::path::Path,
    store: Arc<dyn crate::store::Store>,
    mode: Mode,
    routing_of: impl Fn(&warden_config::Config, &str) -> crate::routing::Routing,
) -> Result<Arc<Shared>, warden_config::ConfigError> {
    start_clocked(text, dir, store, mode, Clock::new(), routing_of)
}

/// [`start_with_routing`] telling the time by `clock` (a host's clock
/// behind another's: [`Clock::behind`]).
pub(super) fn start_clocked(
    text: &str,
    dir: &std::path::Path,
    store: Arc<dyn crate::store::Store>,
    mode: Mode,
    clock: Clock,
    routing_of: impl Fn(&warden_config::Config, &str) -> crate::routing::Routing,
) -> Result<Arc<Shared>, warden_config::ConfigError> {
    let cfg = warden_config::parse(text, &dir.join("failover.conf"))?;
    let strategies: BTreeMap<String, crate::routing::Routing> = cfg
        .groups
        .keys()
        .map(|name| (name.clone(), routing_of(&cfg, name)))
        .collect();
    let settings =
        crate::settings::OrchestratorSettings::with_strategies(cfg, strategies).expect("settings");
    let shared =
        Shared::with_clock(settings, store, CancellationToken::new(), mode, clock).expect("shared");
    tokio::spawn(shared.clone().write_groups(CancellationToken::new()));
    Ok(shared)
}

/// A config of `groups` groups g0, g1, … of two sites each (s0, s1, …,
/// each with its own agent token in `dir`), not automatic, on frontend fe1.
pub(super) fn many_groups_text(dir: &std::path::Path, groups: usize) -> String {
    use std::fmt::Write as _;
    let d = dir.display();
    let mut text = config_head(dir, 1, "");
    writeln!(
        text,
        "[frontends.fe1]\ncontrol = \"127.0.0.1:1\"\ntoken = {{ file = \"{d}/fe\" }}"
    )
    .unwrap();
    for i in 0..2 * groups {
        let token = dir.join(format!("s{i}"));
        std::fs::write(&token, format!("agent-s{i}-secret")).unwrap();
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        writeln!(
            text,
            "[sites.s{i}]\nagent_token = {{ file = \"{d}/s{i}\" }}"
        )
        .unwrap();
    }
    for g in 0..groups {
        let (a, b) = (2 * g, 2 * g + 1);
        writeln!(
            text,
            "[groups.g{g}]\nsites = [\"s{a}\", \"s{b}\"]\nscheme = \"frontend\"\nautomatic = false\n\
             [groups.g{g}.frontend]\ndriver = \"builtin\"\nfrontends = [\"fe1\"]\nlisten = \"127.0.0.1:0\"\n\
             backends = {{ s{a} = \"127.0.0.1:1\", s{b} = \"127.0.0.1:2\" }}"
        )
        .unwrap();
    }
    text
}

/// The message of the newest event of `kind` in the service's recent
/// events; empty when there is none.
pub(super) fn newest_event(s: &Shared, kind: EventKind) -> String {
    s.lock()
        .recent
        .iter()
        .rev()
        .find(|e| e.kind == kind)
        .map(|e| e.message.clone())
        .unwrap_or_default()
}
