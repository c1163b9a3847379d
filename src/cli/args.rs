//! The command line: every subcommand and its arguments (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "warden",
    version,
    about = "Disaster-recovery failover orchestrator"
)]
pub(crate) struct Cli {
    /// failover.conf (services read it; client commands take the API URL and operator token from it).
    #[arg(long, global = true, env = "WARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Orchestrator API base URL (client commands; overrides the config).
    #[arg(long, global = true, env = "WARDEN_URL")]
    pub url: Option<String>,
    /// File holding the operator token (client commands; overrides the config).
    #[arg(long, global = true, env = "WARDEN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// CA (PEM) to trust for an https:// API (default: the config's
    /// `orchestrator.tls.ca`, else the system's roots).
    #[arg(long, global = true, env = "WARDEN_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for an API that verifies its clients (mTLS).
    #[arg(
        long,
        global = true,
        env = "WARDEN_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "WARDEN_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// `config` came from WARDEN_CONFIG, not from `--config` (set by [`Cli::parse_args`]).
    #[arg(skip)]
    pub config_from_env: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

impl Cli {
    /// The command line, parsed (a usage error exits with clap's message and
    /// status 2), with where `--config` came from.
    pub(crate) fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches)
            .unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
        cli.config_from_env =
            matches.value_source("config") == Some(clap::parser::ValueSource::EnvVariable);
        cli
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Run the orchestrator.
    Orchestrator {
        /// This orchestrator's name in `[[orchestrator.nodes]]` (store = "etcd").
        #[arg(long, env = "WARDEN_NODE")]
        node: Option<String>,
        /// Worker threads of the orchestrator's async runtime. One is the
        /// default: its work is I/O (reports, probes, orders), and a second
        /// worker cost about a third more CPU per report in cross-thread
        /// wake-ups (BENCHMARKS.md, "Load"). Store requests and disk writes
        /// run on their own threads either way.
        #[arg(long, env = "WARDEN_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
    },
    /// Run a site's agent.
    Agent {
        /// The site this agent runs at (a `[sites.NAME]` of the config).
        #[arg(long)]
        site: String,
    },
    /// Run a built-in frontend (TCP proxy with control API).
    Frontend {
        /// This frontend's name (a `[frontends.NAME]` of kind "builtin").
        #[arg(long)]
        name: String,
    },
    /// Check a config file; lists every problem with file:line:col; exit 64 if any.
    CheckConfig {
        /// The config file (default: --config, or WARDEN_CONFIG). FILE wins
        /// over WARDEN_CONFIG; with --config too, both must name the same file.
        file: Option<PathBuf>,
    },
    /// Groups: active site, state, epoch, per-site health per vantage point.
    Status {
        /// Print the orchestrator's answer as JSON (text as it is, unescaped).
        #[arg(long)]
        json: bool,
    },
    /// Fail a group over to a site now (operator decision).
    Failover {
        group: String,
        #[arg(long)]
        to: String,
        /// Only if the group is still at this epoch (as `warden status`
        /// showed it): a command re-run later, from shell history or a
        /// script, is refused once the group has moved on.
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Fail a group back to its primary.
    Failback {
        group: String,
        /// Only if the group is still at this epoch (see `failover --epoch`).
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Planned move of a healthy group to another site with zero data loss:
    /// resync, stop writes at the active site, final pass, verify, switch.
    Switchover {
        group: String,
        #[arg(long)]
        to: String,
        /// Only if the group is still at this epoch (see `failover --epoch`).
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// A disaster-recovery drill: a planned switchover of a healthy group
    /// from its primary to a standby (nothing lost), users left there for
    /// --stay, then a failback; each move waited for and reported (RTO,
    /// steps). Starts only from a steady group on its primary, both sites
    /// healthy, no alerts.
    Drill {
        group: String,
        /// The standby to move to (default: the group's first other site).
        #[arg(long)]
        to: Option<String>,
        /// How long users stay on the standby before the failback (at
        /// most 30 days).
        #[arg(long, default_value = "30s", value_parser = parse_drill_stay)]
        stay: Duration,
        /// How long each move may take before the drill stops waiting
        /// (above zero: the drill would start its switchover and stop
        /// waiting at once, leaving users on the standby).
        #[arg(long, default_value = "15m", value_parser = parse_move_timeout)]
        timeout: Duration,
        /// Print the report (`succeeded`, each move with its steps) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume replication paused since a failover or a new store: resync
    /// the standby from the active site (what it wrote on its own is kept
    /// or quarantined), then replicate to it again. Users do not move.
    Resync {
        group: String,
        /// Only if the group is still at this epoch (see `failover --epoch`).
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Approve a pending decision (manual mode or exhausted failover
    /// budget): the one pending when the command reads the group, shown
    /// and sent with the approval, so a decision made after it is not
    /// approved in its place.
    Approve {
        group: String,
        /// Approve only a move to this site (the decision you saw).
        #[arg(long)]
        to: Option<String>,
    },
    /// Maintenance mode: no automatic decisions for the group.
    Maintenance {
        group: String,
        /// `on`: no automatic failover or failback; `off`: decide again.
        mode: OnOff,
    },
    /// Lift a group's alerts after fixing their cause (e.g. a DNS provider
    /// that stopped itself after `badauth`, or a `911` retry hold).
    Clear {
        group: String,
        /// Let the pass the mass-delete guard holds at this site go ahead
        /// once (it deletes at the other side: check first). Repeatable.
        #[arg(long = "deletions", value_name = "SITE")]
        deletions: Vec<String>,
    },
    /// Take the higher epoch the routing layer (or an agent) holds as the
    /// group's own. Run it only once you have made sure no other
    /// orchestrator (another data directory or etcd prefix) acts on the
    /// group: this command cannot tell.
    AdoptEpoch {
        group: String,
        /// Adopt only this epoch (the one the alert showed): refused when
        /// the epoch seen ahead has changed since.
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Decisions with the evidence behind them.
    Events {
        /// Print the events as one JSON array.
        #[arg(long)]
        json: bool,
        /// Only this group's events.
        #[arg(long)]
        group: Option<String>,
        /// Only events with id greater than this.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Client-side outage meter: TCP connect or HTTP GET every interval.
    Probe {
        /// http://host:port/path, or host:port / tcp://host:port.
        target: String,
        /// One attempt every this long (above zero).
        #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Per-attempt timeout (default: the interval, at least 50ms).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// Stop after this long (default: until Ctrl-C).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// DNS mode: resolve the target's host through this server (IP or
        /// IP:PORT) before every attempt, caching answers for their TTL as
        /// users' resolvers do, so the outage includes DNS caching.
        #[arg(long, value_parser = parse_resolver)]
        resolver: Option<std::net::SocketAddr>,
        /// Print one JSON summary at the end instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Local quickstart: two sites, agents, orchestrator and a frontend; a failover and a failback.
    Demo {
        /// Print one JSON summary at the end instead of the narration.
        #[arg(long)]
        json: bool,
    },
    /// A tiny HTTP service answering TEXT (used by the demo and the tests as a site's service).
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        text: String,
        /// The `X-Served-By` header of every answer (default: the text).
        #[arg(long)]
        served_by: Option<String>,
    },
    /// The `pre-xfer exec` of a site's rsync daemon module: refuses a push
    /// into the site that is active for the module's group, says why to the
    /// pusher, exit 1 (docs/rsyncd.md). Reads the daemon's RSYNC_* variables
    /// and the site agent's authority state.
    RsyncGate {
        /// The site whose module this daemon (or whose sshd) serves.
        #[arg(long)]
        site: String,
        /// Run as the forced command of the peers' ssh key (`command=` in
        /// authorized_keys): judge SSH_ORIGINAL_COMMAND and, when it
        /// passes, run that rsync server; a refusal goes to stderr.
        #[arg(long, conflicts_with = "early")]
        ssh: bool,
        /// Run as the module's `early exec`: keep the order the pusher
        /// states (rsync's `--early-input`: group, site, epoch) for the
        /// `pre-xfer exec` of the same connection, which judges it.
        #[arg(long)]
        early: bool,
    },
    /// A strict fake No-IP update server (integration tests): stats at GET /test/stats.
    #[command(hide = true)]
    FakeNoip {
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The account's username.
        #[arg(long)]
        account: String,
        /// File holding the account's password.
        #[arg(long)]
        password_file: PathBuf,
        /// A hostname of the account (repeat for more).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value = "/test/stats")]
        stats_path: String,
        #[arg(long, value_enum, default_value = "noip")]
        flavor: crate::fake_noip::FakeFlavor,
    },
}

/// The longest `drill --stay` and `--timeout`: a drill's clock must be
/// able to reach its end (a value of ages overflowed it, after the
/// switchover had started — users left on the standby by a panic).
const DRILL_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// `drill --stay`: at most [`DRILL_MAX`].
fn parse_drill_stay(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d > DRILL_MAX => Err("must be at most 30 days".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// `drill --timeout`: a duration above zero, at most [`DRILL_MAX`].
fn parse_move_timeout(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err(
            "must be above zero: the drill would start its switchover and stop waiting at once, leaving users on the standby".into(),
        ),
        Ok(d) if d > DRILL_MAX => Err("must be at most 30 days".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_resolver(s: &str) -> Result<std::net::SocketAddr, String> {
    warden_config::parse_dns_server(s)
}

impl Cmd {
    pub(crate) fn is_client(&self) -> bool {
        matches!(
            self,
            Cmd::Status { .. }
                | Cmd::Failover { .. }
                | Cmd::Failback { .. }
                | Cmd::Switchover { .. }
                | Cmd::Drill { .. }
                | Cmd::Resync { .. }
                | Cmd::Approve { .. }
                | Cmd::Maintenance { .. }
                | Cmd::Clear { .. }
                | Cmd::AdoptEpoch { .. }
                | Cmd::Events { .. }
                | Cmd::CheckConfig { .. }
        )
    }
}
