//! The `hybrid` scheme in the service's tests: its config, fake frontends
//! and DNS provider, and rounds of the frontend layer.
use super::*;

/// The test config ([`config_text`], automatic) with group web on the
/// `hybrid` scheme: frontends fe1 (where DNS points first) and fe2.
pub(in crate::service) fn hybrid_text(dir: &std::path::Path) -> String {
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
pub(in crate::service) async fn frontends_round(s: &Arc<Shared>, up: (bool, bool)) {
    frontends_seen(s, up, up);
    round_sites(s, true, true, &answer_all).await;
}

/// Evidence about frontends fe1 and fe2, now: what the orchestrator's
/// probes see (`orchestrator`: fe1 up, fe2 up) and what both agents' (a's
/// and b's) probes see (`agents`), without a round.
pub(in crate::service) fn frontends_seen(
    s: &Shared,
    orchestrator: (bool, bool),
    agents: (bool, bool),
) {
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
                taken_term: None,
                taken_cluster: None,
                left_clusters: vec![],
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
pub(in crate::service) struct FakeDns(pub(in crate::service) Mutex<Vec<(String, u64)>>);

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

/// The routing of `hybrid` group `name`: `drivers`, one per frontend of
/// `frontends` (in that order), under the DNS name `www.example.net`,
/// where frontend i answers 10.77.2.(i+1), written through `provider`.
pub(in crate::service) fn hybrid_routing(
    name: &str,
    frontends: &[&str],
    drivers: Vec<Arc<dyn warden_strategies::frontend::FrontendDriver>>,
    provider: Arc<dyn warden_strategies::dns::DnsProvider>,
) -> crate::routing::Routing {
    use warden_strategies::dns::{DnsStrategy, RecordValue};
    use warden_strategies::frontend::FrontendStrategy;
    use warden_strategies::hybrid::HybridStrategy;
    let addresses = frontends
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                f.to_string(),
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
            provider,
        ),
    )))
}

/// The service on config `text`, every `hybrid` group on fake frontends
/// (one per frontend it names) and the DNS provider returned; the other
/// groups on fake routes.
pub(in crate::service) fn start_hybrid(
    text: &str,
    dir: &std::path::Path,
) -> Result<(Arc<Shared>, Arc<FakeDns>), warden_config::ConfigError> {
    use warden_strategies::frontend::FrontendDriver;
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
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            hybrid_routing(name, &names, drivers, provider.clone())
        },
    )?;
    Ok((shared, dns))
}
