//! The harness of the service's tests: a fake routing layer (`FakeRoute`;
//! for `hybrid` groups, fake frontends and DNS provider, `start_hybrid`),
//! configs of a few sites or of many groups, services started on paused
//! time, and rounds of reports driven by hand.
use super::*;
use crate::store::MemStore;
use warden_proto::agent::{AuthorityWire, CheckResult, PeerProbe};
use warden_strategies::Strategy;

#[derive(Default)]
pub(super) struct FakeRoute {
    pub(super) route: Mutex<(Option<String>, u64)>,
    /// `current` fails as if the layer could not be reached.
    pub(super) blind: std::sync::atomic::AtomicBool,
    /// Hold orders: (epoch, ttl, pause).
    pub(super) holds: Mutex<Vec<(u64, Duration, bool)>>,
    /// Each hold order's place (`seq`), as `holds` lists them.
    pub(super) hold_seqs: Mutex<Vec<u64>>,
    /// Each hold order's term and whether it was taken, as `holds` lists
    /// them: the fake fences hold orders as `warden frontend` does — one
    /// below the highest epoch is stale, one placed before the newest of
    /// its epoch is refused, naming that newest.
    pub(super) hold_taken: Mutex<Vec<(u64, bool)>>,
    /// The hold fence: the highest hold epoch and the newest place taken at it.
    pub(super) hold_fence: Mutex<(u64, warden_strategies::HoldPlace)>,
    /// The highest `seq` this layer reported taken (in a read, or in a
    /// refusal), as the builtin driver keeps it.
    pub(super) hold_reported: std::sync::atomic::AtomicU64,
    /// Runs at each `current` before it answers (what happens meanwhile).
    #[allow(clippy::type_complexity)]
    pub(super) on_read: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// `activate` fails as if the layer could not be reached.
    pub(super) refuse_writes: std::sync::atomic::AtomicBool,
    /// `activate` answers Ok and changes nothing (a layer that keeps its
    /// own idea: nameservers that are not the provider's, say).
    pub(super) ignore_writes: std::sync::atomic::AtomicBool,
    /// `activate` calls received.
    pub(super) activations: std::sync::atomic::AtomicUsize,
    /// The stops this layer says are in force (`Strategy::stops`).
    pub(super) stops: Mutex<Vec<warden_strategies::ProviderStop>>,
    /// What each `restore_stops` was given.
    pub(super) restored: Mutex<Vec<Vec<warden_strategies::ProviderStop>>>,
    /// The alerts this layer raises (a provider's block), until cleared.
    pub(super) alerts: Mutex<Vec<String>>,
}

#[async_trait]
impl Strategy for FakeRoute {
    fn name(&self) -> &str {
        "fake"
    }
    async fn activate(&self, target: &SiteRoute, epoch: u64) -> Result<(), StrategyError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.activations.fetch_add(1, SeqCst);
        if self.refuse_writes.load(SeqCst) {
            return Err(StrategyError::Unreachable {
                element: "fake".into(),
                reason: "connection refused".into(),
            });
        }
        let mut r = self.route.lock().unwrap();
        if epoch < r.1 {
            return Err(StrategyError::StaleEpoch {
                element: "fake".into(),
                sent: epoch,
                seen: r.1,
            });
        }
        if !self.ignore_writes.load(SeqCst) {
            *r = (Some(target.site.clone()), epoch);
        }
        Ok(())
    }
    fn stops(&self) -> Vec<warden_strategies::ProviderStop> {
        self.stops.lock().unwrap().clone()
    }
    fn alerts(&self) -> Vec<String> {
        self.alerts.lock().unwrap().clone()
    }
    fn clear_alerts(&self) -> Vec<String> {
        std::mem::take(&mut *self.alerts.lock().unwrap())
    }
    /// Takes back every stop but one whose `config` is "changed".
    fn restore_stops(&self, stops: &[warden_strategies::ProviderStop]) -> Vec<String> {
        self.restored.lock().unwrap().push(stops.to_vec());
        let (kept, dropped): (Vec<_>, Vec<_>) =
            stops.iter().cloned().partition(|s| s.config != "changed");
        *self.stops.lock().unwrap() = kept;
        dropped
            .into_iter()
            .map(|s| format!("{} — lifted", s.line))
            .collect()
    }
    async fn hold(
        &self,
        epoch: u64,
        place: warden_strategies::HoldPlace,
        ttl: Duration,
        pause: bool,
    ) -> Result<(), StrategyError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.holds.lock().unwrap().push((epoch, ttl, pause));
        self.hold_seqs.lock().unwrap().push(place.seq);
        let mut fence = self.hold_fence.lock().unwrap();
        let refused = if epoch < fence.0 {
            Some(StrategyError::StaleEpoch {
                element: "fake".into(),
                sent: epoch,
                seen: fence.0,
            })
        } else if epoch == fence.0 && place.seq > 0 && place < fence.1 {
            self.hold_reported.fetch_max(fence.1.seq, SeqCst);
            Some(StrategyError::Rejected {
                element: "fake".into(),
                reason: format!(
                    "hold order refused: an older order {place:?} than the newest {:?}",
                    fence.1
                ),
            })
        } else {
            None
        };
        self.hold_taken
            .lock()
            .unwrap()
            .push((place.term, refused.is_none()));
        if let Some(e) = refused {
            return Err(e);
        }
        *fence = if epoch == fence.0 {
            (epoch, fence.1.max(place))
        } else {
            (epoch, place)
        };
        Ok(())
    }
    fn hold_seq_taken(&self) -> u64 {
        self.hold_reported.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn current(&self) -> Result<Observed, StrategyError> {
        if let Some(f) = self.on_read.lock().unwrap().as_ref() {
            f();
        }
        if self.blind.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StrategyError::Unreachable {
                element: "fake".into(),
                reason: "request timed out".into(),
            });
        }
        let taken = self.hold_fence.lock().unwrap().1.seq;
        self.hold_reported
            .fetch_max(taken, std::sync::atomic::Ordering::SeqCst);
        let r = self.route.lock().unwrap();
        Ok(Observed {
            site: r.0.clone(),
            epoch: r.1,
            drift: vec![],
            unread: vec![],
        })
    }
}

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

/// The test config ([`config_text`], automatic) with group web on the
/// `hybrid` scheme: frontends fe1 (where DNS points first) and fe2.
pub(super) fn hybrid_text(dir: &std::path::Path) -> String {
    let d = dir.display();
    config_text(dir, true, 5, "")
        .replace("scheme = \"frontend\"", "scheme = \"hybrid\"")
        .replace(
            "[frontends.fe1]",
            &format!("[frontends.fe2]\ncontrol = \"127.0.0.1:3\"\ntoken = {{ file = \"{d}/fe\" }}\n[frontends.fe1]"),
        )
        .replace("frontends = [\"fe1\"]", "frontends = [\"fe1\", \"fe2\"]")
        + "[groups.web.dns]\nprovider = \"rfc2136\"\nname = \"www.example.net\"\nserver = \"127.0.0.1:53\"\nzone = \"example.net\"\naddresses = { fe1 = \"127.0.0.5\", fe2 = \"127.0.0.6\" }\n"
}

/// One round ([`round_sites`], both sites up) in which the probes of
/// frontends fe1 and fe2 — the orchestrator's and both agents' — succeed
/// or fail as `up` says.
pub(super) async fn frontends_round(s: &Arc<Shared>, up: (bool, bool)) {
    frontends_seen(s, up, up);
    round_sites(s, true, true, &answer_all).await;
}

/// Evidence about frontends fe1 and fe2, now: what the orchestrator's
/// probes see (`orchestrator`: fe1 up, fe2 up) and what both agents' (a's
/// and b's) probes see (`agents`), without a round.
pub(super) fn frontends_seen(s: &Shared, orchestrator: (bool, bool), agents: (bool, bool)) {
    let mut st = s.lock();
    let now = Instant::now();
    for (fe, up) in [("fe1", orchestrator.0), ("fe2", orchestrator.1)] {
        st.fe_evidence
            .external
            .insert(fe.into(), (now, vec![check(up)]));
    }
    for site in ["a", "b"] {
        let peers = [("fe1", agents.0), ("fe2", agents.1)]
            .map(|(fe, up)| PeerProbe {
                site: fe.into(),
                results: vec![check(up)],
                age_ms: 0,
            })
            .to_vec();
        st.fe_evidence.insert_report(
            now,
            AgentReport {
                site: site.into(),
                seq: 1,
                started_unix_ms: 0,
                boot: String::new(),
                checks: vec![check(true)],
                peers,
                outcomes: vec![],
                replication: vec![],
                authority: vec![],
            },
        );
    }
}

/// A frontend of a fake `hybrid` routing: takes every route.
struct FakeFrontend(String, Mutex<(Option<String>, u64)>);

#[async_trait]
impl warden_strategies::frontend::FrontendDriver for FakeFrontend {
    fn name(&self) -> &str {
        &self.0
    }
    async fn set_route(&self, site: &str, epoch: u64, _: SwitchMode) -> Result<(), StrategyError> {
        *self.1.lock().unwrap() = (Some(site.to_string()), epoch);
        Ok(())
    }
    async fn route(&self) -> Result<(Option<String>, u64), StrategyError> {
        Ok(self.1.lock().unwrap().clone())
    }
}

/// The DNS provider of a fake `hybrid` routing: the frontends the group's
/// name was pointed at, with their epochs, in order. It keeps the marker's
/// rules as the rfc2136 provider does against BIND and Knot: an epoch older
/// than the last one written, or another frontend at that epoch, is refused
/// (and not recorded).
#[derive(Default)]
pub(super) struct FakeDns(pub(super) Mutex<Vec<(String, u64)>>);

#[async_trait]
impl warden_strategies::dns::DnsProvider for FakeDns {
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn publish(
        &self,
        frontend: &str,
        _: &warden_strategies::dns::RecordValue,
        epoch: u64,
    ) -> Result<(), StrategyError> {
        let mut moves = self.0.lock().unwrap();
        if let Some((last, seen)) = moves.last() {
            if epoch < *seen {
                return Err(StrategyError::StaleEpoch {
                    element: "fake DNS".into(),
                    sent: epoch,
                    seen: *seen,
                });
            }
            if epoch == *seen && last != frontend {
                return Err(StrategyError::EpochTaken {
                    element: "fake DNS".into(),
                    epoch,
                    reason: format!(
                        "conflicting decision for epoch {epoch}: {last} at this epoch, refused {frontend}"
                    ),
                });
            }
        }
        moves.push((frontend.to_string(), epoch));
        Ok(())
    }
    async fn observe(&self) -> Result<Option<warden_strategies::dns::ProviderView>, StrategyError> {
        Ok(None)
    }
}

/// The service on config `text`, every `hybrid` group on fake frontends
/// (one per frontend it names) and the DNS provider returned; the other
/// groups on fake routes.
pub(super) fn start_hybrid(
    text: &str,
    dir: &std::path::Path,
) -> Result<(Arc<Shared>, Arc<FakeDns>), warden_config::ConfigError> {
    use warden_strategies::dns::{DnsStrategy, RecordValue};
    use warden_strategies::frontend::{FrontendDriver, FrontendStrategy};
    use warden_strategies::hybrid::HybridStrategy;
    let dns = Arc::new(FakeDns::default());
    let provider = dns.clone();
    let shared = start_with_routing(
        text,
        dir,
        Arc::new(MemStore::default()),
        Mode::Local,
        move |cfg, name| {
            let Some(fe) = cfg.groups[name]
                .frontend_scheme()
                .filter(|_| cfg.groups[name].scheme() == warden_config::Scheme::Hybrid)
            else {
                return crate::routing::Routing::Single(Arc::new(FakeRoute::default()));
            };
            let names = fe.frontend_names();
            let drivers: Vec<Arc<dyn FrontendDriver>> = names
                .iter()
                .map(|f| Arc::new(FakeFrontend(f.clone(), Mutex::default())) as _)
                .collect();
            let addresses = names
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        f.clone(),
                        RecordValue::parse(&format!("10.77.2.{}", i + 1)).unwrap(),
                    )
                })
                .collect();
            crate::routing::Routing::Hybrid(Arc::new(HybridStrategy::new(
                name,
                FrontendStrategy::new(name, drivers).unwrap(),
                DnsStrategy::new(
                    name,
                    vec!["www.example.net".into()],
                    addresses,
                    vec![],
                    Duration::from_secs(1),
                    provider.clone(),
                ),
            )))
        },
    )?;
    Ok((shared, dns))
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

pub(super) fn check(ok: bool) -> CheckResult {
    CheckResult {
        name: "web".into(),
        ok,
        critical: true,
        detail: if ok {
            "status 200"
        } else {
            "connection refused"
        }
        .into(),
        elapsed_ms: 1,
    }
}

/// One 250 ms round: both agents report (answering queued commands), the
/// orchestrator's probes land, the detector runs, runbook tasks progress.
pub(super) async fn round(s: &Arc<Shared>, a_up: bool) {
    round_inner(s, a_up, true).await
}

/// [`round`]; `settle`: wait until the store holds every change (not with
/// a full disk). Unsettled, a round still lets a commit under way end
/// before its clock moves ([`Shared::writer_idle`]).
pub(super) async fn round_inner(s: &Arc<Shared>, a_up: bool, settle: bool) {
    round_lag(s, a_up, settle, None).await
}

/// [`round_inner`]; a's report carries its replication toward b with `lag` (ms).
pub(super) async fn round_lag(s: &Arc<Shared>, a_up: bool, settle: bool, lag: Option<u64>) {
    round_with(s, (a_up, true), settle, lag, &|_| false, None).await;
}

/// One round as [`round_lag`] (settled, no lag) in which b's agent says
/// why it cannot be promoted for group web (`unfit`), or nothing.
pub(super) async fn round_unfit(s: &Arc<Shared>, a_up: bool, unfit: Option<&str>) {
    round_with(s, (a_up, true), true, None, &|_| false, unfit).await;
}

/// One 250 ms round in which each site's service is up or down as told,
/// both agents report, and each answers its queued commands except those
/// `held` keeps running (a resync that takes its time): the commands
/// answered, with their sites.
pub(super) async fn round_sites(
    s: &Arc<Shared>,
    a_up: bool,
    b_up: bool,
    held: &dyn Fn(&Command) -> bool,
) -> Vec<(String, Command)> {
    round_with(s, (a_up, b_up), true, None, held, None).await
}

/// [`round_sites`] without waiting until the store holds the changes (a
/// full disk): only a commit under way ends before the clock moves.
pub(super) async fn round_sites_unsettled(
    s: &Arc<Shared>,
    up: (bool, bool),
    held: &dyn Fn(&Command) -> bool,
) -> Vec<(String, Command)> {
    round_with(s, up, false, None, held, None).await
}

/// The round every helper above runs: `up` for sites a and b, `settle`
/// (wait for the store writer), a's replication `lag`, `held` commands,
/// and why b says it cannot be promoted (`unfit_b`).
async fn round_with(
    s: &Arc<Shared>,
    (a_up, b_up): (bool, bool),
    settle: bool,
    lag: Option<u64>,
    held: &dyn Fn(&Command) -> bool,
    unfit_b: Option<&str>,
) -> Vec<(String, Command)> {
    let mut answered = Vec::new();
    for (site, peer, local, peer_up) in [("a", "b", a_up, b_up), ("b", "a", b_up, a_up)] {
        let commands: Vec<Command> = s
            .commands_for(site)
            .into_iter()
            .filter(|c| !held(c))
            .collect();
        answered.extend(commands.iter().map(|c| (site.to_string(), c.clone())));
        let outcomes = commands
            .into_iter()
            .map(|c| CommandOutcome {
                // A current agent: its resync or final pass says what it
                // left in place (nothing).
                kept_in_place: matches!(c.kind, CommandKind::Resync | CommandKind::FinalSync)
                    .then_some(0),
                id: c.id,
                ok: true,
                detail: "ok".into(),
                hooks: vec![],
                checks: None,
                journal: None,
            })
            .collect();
        s.accept_report(AgentReport {
            site: site.into(),
            seq: 1,
            started_unix_ms: 0,
            boot: String::new(),
            checks: vec![check(local)],
            peers: vec![PeerProbe {
                site: peer.into(),
                results: vec![check(peer_up)],
                age_ms: 0,
            }],
            outcomes,
            replication: match (site, lag) {
                ("a", Some(ms)) => vec![ReplicationStatus {
                    group: "web".into(),
                    role: "source".into(),
                    peer: Some("b".into()),
                    epoch: 1,
                    lag_ms: Some(ms),
                    ..ReplicationStatus::default()
                }],
                _ => vec![],
            },
            authority: match (site, unfit_b) {
                ("b", Some(why)) => vec![AuthorityWire {
                    group: "web".into(),
                    role: "standby".into(),
                    unfit: Some(why.into()),
                    ..AuthorityWire::default()
                }],
                _ => vec![],
            },
        });
    }
    {
        let mut st = s.lock();
        let now = Instant::now();
        st.evidence
            .external
            .insert("a".into(), (now, vec![check(a_up)]));
        st.evidence
            .external
            .insert("b".into(), (now, vec![check(b_up)]));
    }
    s.detect_round().await;
    if settle {
        s.writer_settled().await;
    }
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    // A commit the writer began (this round's changes, a retry on a full
    // disk) ends before the clock moves: paused time does not wait for the
    // store's blocking thread, and a round's 250 ms would otherwise pass
    // while a loaded machine has not run it yet — a runbook waiting for its
    // decision's commit to fail would not start for many rounds.
    s.writer_idle().await;
    tokio::time::advance(Duration::from_millis(250)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    answered
}

pub(super) fn group(s: &Shared) -> GroupState {
    s.lock().groups["web"].clone()
}

pub(super) async fn rounds_until(
    s: &Arc<Shared>,
    a_up: bool,
    max: usize,
    what: &str,
    f: impl Fn(&GroupState) -> bool,
) {
    for _ in 0..max {
        if f(&group(s)) {
            return;
        }
        round(s, a_up).await;
    }
    panic!("{what}: group is {:#?}", group(s));
}

/// The two-site test config with a replication plan (`plan = "none"`,
/// then the lines `replication`), `failback` and the failover budget as
/// given, started on a fresh store, after 8 healthy rounds.
pub(super) async fn replicated(
    failback: &str,
    max_failovers: u32,
    replication: &str,
) -> (Arc<Shared>, Arc<FakeRoute>, TestDir) {
    let dir = test_dir(true, max_failovers);
    let text = config_text(&dir, true, max_failovers, "").replace(
        "automatic = true",
        &format!("automatic = true\nfailback = \"{failback}\""),
    ) + "[groups.web.replication]\nplan = \"none\"\n"
        + replication;
    let (s, fake) = start_from(&text, &dir, Arc::new(MemStore::default())).expect("config");
    sites_rounds(&s, 8, (true, true), &answer_all).await;
    (s, fake, dir)
}

/// Every command is answered ([`round_sites`]'s `held`).
pub(super) fn answer_all(_: &Command) -> bool {
    false
}

/// `n` rounds with sites a and b up as `up` says.
pub(super) async fn sites_rounds(
    s: &Arc<Shared>,
    n: usize,
    (a_up, b_up): (bool, bool),
    held: &dyn Fn(&Command) -> bool,
) -> Vec<(String, Command)> {
    let mut sent = Vec::new();
    for _ in 0..n {
        sent.extend(round_sites(s, a_up, b_up, held).await);
    }
    sent
}

/// Rounds ([`round_sites`], sites a and b up as `up` says) until `done`
/// holds for the group — at most `max`, else a panic saying `what`: the
/// commands answered meanwhile.
pub(super) async fn sites_until(
    s: &Arc<Shared>,
    (a_up, b_up): (bool, bool),
    held: &dyn Fn(&Command) -> bool,
    max: usize,
    what: &str,
    done: impl Fn(&GroupState) -> bool,
) -> Vec<(String, Command)> {
    let mut sent = Vec::new();
    for _ in 0..max {
        if done(&group(s)) {
            return sent;
        }
        sent.extend(round_sites(s, a_up, b_up, held).await);
    }
    assert!(
        done(&group(s)),
        "{what} after {max} rounds: {:#?}",
        group(s)
    );
    sent
}

/// Rounds until a's service, dead, is failed over from: the group steady
/// on b (replication from b paused when the group has a plan).
pub(super) async fn fail_over_to_b(s: &Arc<Shared>) {
    sites_until(
        s,
        (false, true),
        &answer_all,
        40,
        "not failed over to b",
        |g| g.active == "b" && g.phase == Phase::Steady,
    )
    .await;
}
