//! The service built ([`Shared::new`], [`Shared::with_mode`]): the state
//! loaded from the store and corrected, the detectors, clients and
//! lookup tables made from the config, the licence as the mode says.

use super::*;

impl Shared {
    /// A single orchestrator on its own store: it acts from the start.
    pub fn new(
        settings: OrchestratorSettings,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Shared>, OrchestratorError> {
        Self::with_mode(settings, store, shutdown, Mode::Local)
    }

    /// A service that acts as `mode` says (alone, or when elected).
    pub fn with_mode(
        settings: OrchestratorSettings,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
        mode: Mode,
    ) -> Result<Arc<Shared>, OrchestratorError> {
        Self::with_clock(settings, store, shutdown, mode, Clock::new())
    }

    /// [`Shared::with_mode`] telling the time by `clock`.
    pub(crate) fn with_clock(
        settings: OrchestratorSettings,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
        mode: Mode,
        clock: Clock,
    ) -> Result<Arc<Shared>, OrchestratorError> {
        let run_dir = settings.run_dir();
        let OrchestratorSettings {
            config: cfg,
            operators,
            reader,
            agent_tokens,
            strategies,
            node: _,
            notify_secrets,
        } = settings;
        let notify = notify::Notify::new(&cfg.orchestrator.notify, notify_secrets, &run_dir)?;
        let mut loaded = load_state(&cfg, store.as_ref())?;
        let local = mode.is_local();
        skew::times_ahead(&mut loaded, &cfg, clock.now_ms());
        // One process: it acts from the start, so the corrections are
        // written now (or, on a full disk, retried by the group writer).
        let (unwritten, store_cause) = if mode.is_local() {
            persist::write_corrections(store.as_ref(), &loaded.to_write)?
        } else {
            (Vec::new(), None)
        };
        let history = history::HistoryAnchor::default();
        history.set(history::newest_recorded(&loaded, store.as_ref()));
        let Loaded {
            groups,
            fresh: fresh_groups,
            runbooks,
            next_runbook,
            next_event,
            untouched,
            ..
        } = loaded;
        // The agents' probe client: directly, no redirect followed (each
        // probe is bounded by its timeout, at most `probe_timeout`).
        let http = warden_checks::probe_client().map_err(|e| {
            OrchestratorError::Setup(format!("cannot build the probe http client: {e}"))
        })?;
        let entry_http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .no_proxy()
            // names looked up without the blocking pool (see `SystemNames`)
            .dns_resolver(std::sync::Arc::new(warden_checks::SystemNames::new()))
            .build()
            .map_err(|e| {
                OrchestratorError::Setup(format!("cannot build the entry probe http client: {e}"))
            })?;
        let report_intervals = || {
            cfg.sites.iter().map(|(name, s)| {
                (
                    name.clone(),
                    s.report_interval.unwrap_or(cfg.detection.interval),
                )
            })
        };
        let detector = Detector::new(cfg.detection.clone(), cfg.sites.keys().cloned())
            .with_report_intervals(report_intervals());
        let writer = persist::GroupWriter::new();
        writer.loaded(groups.values());
        for g in &unwritten {
            writer.queue(g, None);
        }
        let state = State {
            evidence: Evidence::default(),
            detector,
            groups,
            ledger: Ledger::default(),
            recent: VecDeque::new(),
            next_event,
            next_runbook,
            runbooks: runbooks.into(),
            recorded: Default::default(),
            fe_evidence: Evidence::default(),
            // The agents probing the frontends fall silent after their own
            // report intervals, as everywhere.
            fe_detector: Detector::agentless(
                cfg.detection.clone(),
                cfg.hybrid_frontend_probes().into_keys(),
            )
            .with_report_intervals(report_intervals()),
            dns_moving: Default::default(),
            epoch_ahead: BTreeMap::new(),
            refence_exhausted: Default::default(),
            fresh: fresh_groups,
            divergent_pages: BTreeMap::new(),
            answer_orders: answer_order::AnswerOrders::new(),
            suspect_holds: BTreeMap::new(),
            untouched,
        };
        let frontend_probes = cfg.hybrid_frontend_probes();
        let probe_targets = cfg
            .sites
            .keys()
            .chain(frontend_probes.keys())
            .cloned()
            .collect();
        // What each site's agent probes (`Config::probe_targets_of`, built
        // in one pass over the groups: per site it would be sites × groups).
        let mut site_probes: foldhash::HashMap<String, std::collections::HashSet<String>> = cfg
            .sites
            .keys()
            .map(|s| (s.clone(), Default::default()))
            .collect();
        for g in cfg.groups.values() {
            let names = g.site_names();
            for site in &names {
                if let Some(set) = site_probes.get_mut(site) {
                    set.extend(names.iter().filter(|n| *n != site).cloned());
                }
            }
        }
        for (fe, (_, groups)) in &frontend_probes {
            for site in groups
                .iter()
                .filter_map(|g| cfg.groups.get(g))
                .flat_map(|g| g.site_names())
            {
                if let Some(set) = site_probes.get_mut(&site) {
                    set.insert(fe.clone());
                }
            }
        }
        let licence = Arc::new(if mode.is_local() {
            Licence::held(&shutdown)
        } else {
            Licence::new(&shutdown)
        });
        let mut site_groups: foldhash::HashMap<String, Vec<String>> = foldhash::HashMap::default();
        for (name, g) in &cfg.groups {
            for site in g.site_names() {
                site_groups.entry(site).or_default().push(name.clone());
            }
        }
        let group_names: Vec<String> = cfg.groups.keys().cloned().collect();
        let shared = Arc::new(Shared {
            cfg,
            operators,
            reader,
            report_seqs: replay::ReportSeqs::default(),
            polls: polls::Polls::default(),
            store_trouble: Mutex::new(
                store_cause
                    .map(|c| ("group state".to_string(), c))
                    .into_iter()
                    .collect(),
            ),
            agent_tokens,
            store,
            strategies,
            state: Mutex::new(state),
            report_tick: watch::channel(0).0,
            command_tick: watch::channel(0).0,
            cadence: cadence::Cadence::default(),
            clock,
            history,
            http,
            entry_http,
            metrics: Metrics::new(),
            shutdown,
            streams: tokio_util::task::TaskTracker::new(),
            stream_seats: Default::default(),
            frontend_probes,
            probe_targets,
            site_probes,
            admit_warned: Mutex::default(),
            unsaved: Mutex::new(Vec::new()),
            unsaved_notify: tokio::sync::Notify::new(),
            licence,
            hold_seq: std::sync::atomic::AtomicU64::new(0),
            site_groups,
            group_names,
            writer,
            notify,
            run_dir,
            stopped_groups: Mutex::default(),
            started: Instant::now(),
            ha: match mode {
                Mode::Local => None,
                Mode::Elected(view) => Some(ha::Ha::new(view)),
            },
        });
        if local {
            // With etcd the take-over announces them: this node may follow.
            shared.announce_untouched();
        }
        Ok(shared)
    }
}
