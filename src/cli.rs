//! Command-line interface: the service subcommands (`orchestrator`, `agent`,
//! `frontend`), `check-config`, and the operator client commands that talk to
//! the orchestrator's `/v1` API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use warden_config::{Config, ConfigError, Secret};

use crate::{shutdown_on_signal, EXIT_CONFIG};

#[derive(Parser, Debug)]
#[command(
    name = "warden",
    version,
    about = "Disaster-recovery failover orchestrator"
)]
pub struct Cli {
    /// failover.conf (services read it; client commands take the API URL and operator token from it).
    #[arg(long, global = true, env = "WARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Orchestrator API base URL (client commands; overrides the config).
    #[arg(long, global = true, env = "WARDEN_URL")]
    pub url: Option<String>,
    /// File holding the operator token (client commands; overrides the config).
    #[arg(long, global = true, env = "WARDEN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the orchestrator.
    Orchestrator,
    /// Run a site's agent.
    Agent {
        #[arg(long)]
        site: String,
    },
    /// Run a built-in frontend (TCP proxy with control API).
    Frontend {
        #[arg(long)]
        name: String,
    },
    /// Check a config file; lists every problem with file:line:col; exit 64 if any.
    CheckConfig { file: PathBuf },
    /// Groups: active site, state, epoch, per-site health per vantage point.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Fail a group over to a site now (operator decision).
    Failover {
        group: String,
        #[arg(long)]
        to: String,
    },
    /// Fail a group back to its primary.
    Failback { group: String },
    /// Planned move of a healthy group to another site with zero data loss:
    /// resync, stop writes at the active site, final pass, verify, switch.
    Switchover {
        group: String,
        #[arg(long)]
        to: String,
    },
    /// Approve a pending decision (manual mode or exhausted failover budget).
    Approve { group: String },
    /// Maintenance mode: no automatic decisions for the group.
    Maintenance { group: String, mode: OnOff },
    /// Lift a group's alerts after fixing their cause (e.g. a DNS provider
    /// that stopped itself after `badauth`, or a `911` retry hold).
    Clear { group: String },
    /// Take the higher epoch the routing layer (or an agent) holds as the
    /// group's own, after checking that no other orchestrator acts.
    AdoptEpoch { group: String },
    /// Decisions with the evidence behind them.
    Events {
        #[arg(long)]
        json: bool,
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

fn parse_resolver(s: &str) -> Result<std::net::SocketAddr, String> {
    warden_config::parse_dns_server(s)
}

impl Cmd {
    pub fn is_client(&self) -> bool {
        matches!(
            self,
            Cmd::Status { .. }
                | Cmd::Failover { .. }
                | Cmd::Failback { .. }
                | Cmd::Switchover { .. }
                | Cmd::Approve { .. }
                | Cmd::Maintenance { .. }
                | Cmd::Clear { .. }
                | Cmd::AdoptEpoch { .. }
                | Cmd::Events { .. }
                | Cmd::CheckConfig { .. }
        )
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    let Some(path) = path else {
        eprintln!("error: --config FILE (or WARDEN_CONFIG) is required");
        return Err(ExitCode::from(EXIT_CONFIG));
    };
    warden_config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn config_exit(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

pub async fn dispatch(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Orchestrator => {
            let cfg = match load_config(cli.config.as_deref()) {
                Ok(c) => c,
                Err(c) => return c,
            };
            let settings = match warden_orchestrator::OrchestratorSettings::from_config(cfg) {
                Ok(s) => s,
                Err(e) => return config_exit(e),
            };
            let token = CancellationToken::new();
            shutdown_on_signal(token.clone());
            match warden_orchestrator::run(settings, token, None).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(
                    e @ (warden_orchestrator::OrchestratorError::Config(_)
                    | warden_orchestrator::OrchestratorError::Setup(_)
                    | warden_orchestrator::OrchestratorError::Strategy { .. }),
                ) => config_exit(e),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Agent { site } => {
            let cfg = match load_config(cli.config.as_deref()) {
                Ok(c) => c,
                Err(c) => return c,
            };
            let settings = match warden_agents::AgentSettings::from_config(&cfg, &site) {
                Ok(s) => s,
                Err(e) => return config_exit(e),
            };
            let token = CancellationToken::new();
            shutdown_on_signal(token.clone());
            match warden_agents::run(settings, token).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Frontend { name } => {
            let cfg = match load_config(cli.config.as_deref()) {
                Ok(c) => c,
                Err(c) => return c,
            };
            let settings = match warden_frontend::FrontendSettings::from_config(&cfg, &name) {
                Ok(s) => s,
                Err(e) => return config_exit(e),
            };
            let token = CancellationToken::new();
            shutdown_on_signal(token.clone());
            match warden_frontend::run(settings, token, None).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::CheckConfig { file } => match warden_config::load(&file) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} sites, {} groups, {} frontends)",
                    file.display(),
                    cfg.sites.len(),
                    cfg.groups.len(),
                    cfg.frontends.len() + cfg.haproxy_frontends.len()
                );
                ExitCode::SUCCESS
            }
            Err(ConfigError::Invalid(problems)) => {
                for p in &problems {
                    println!("{p}");
                }
                eprintln!(
                    "{}: {} problem{}",
                    file.display(),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                );
                ExitCode::from(EXIT_CONFIG)
            }
            Err(e) => config_exit(e),
        },
        Cmd::Probe {
            target,
            interval,
            timeout,
            duration,
            resolver,
            json,
        } => crate::probe::main(&target, interval, timeout, duration, resolver, json).await,
        Cmd::Demo { json } => match crate::demo::run(json).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: demo failed: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::FakeNoip {
            listen,
            account,
            password_file,
            hosts,
            stats_path,
            flavor,
        } => {
            let token = CancellationToken::new();
            shutdown_on_signal(token.clone());
            let r = crate::fake_noip::run(
                listen,
                &account,
                &password_file,
                &hosts,
                &stats_path,
                flavor,
                token,
            )
            .await;
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::EchoServer { listen, text } => {
            let token = CancellationToken::new();
            shutdown_on_signal(token.clone());
            match crate::echo::serve(listen, text, token, None).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        ref client => {
            let c = match Client::new(&cli) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match run_client(&c, client).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// An operator's connection to the orchestrator API.
pub struct Client {
    base: String,
    token: Secret,
    http: reqwest::Client,
}

impl Client {
    fn new(cli: &Cli) -> anyhow::Result<Client> {
        let cfg = match &cli.config {
            Some(p) => Some(warden_config::load(p)?),
            None => None,
        };
        let base = match (&cli.url, &cfg) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(c)) => c.orchestrator.base_url(),
            (None, None) => {
                bail!("give --config FILE or --url URL (or WARDEN_CONFIG / WARDEN_URL)")
            }
        };
        let token = match (&cli.token_file, &cfg) {
            (Some(f), _) => Secret::load(
                "--token-file",
                &warden_config::SecretRef {
                    file: Some(f.clone()),
                    env: None,
                },
            )?,
            (None, Some(c)) => Secret::load(
                "orchestrator.operator_token",
                &c.orchestrator.operator_token,
            )?,
            (None, None) => bail!("give --config FILE or --token-file FILE for the operator token"),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Client { base, token, http })
    }

    pub fn with(base: String, token: Secret) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Client { base, token, http })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach the orchestrator at {}", self.base))?;
        answer(r).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the orchestrator at {}", self.base))?;
        answer(r).await
    }
}

async fn answer(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(text);
        bail!("orchestrator answered {status}: {msg}");
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| anyhow!("orchestrator sent malformed JSON: {e}"))
}

async fn run_client(c: &Client, cmd: &Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Status { json } => {
            let v = c.get("/v1/status").await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_status(&v));
            }
        }
        Cmd::Failover { group, to } => {
            let v = c
                .post(
                    &format!("/v1/groups/{group}/failover"),
                    serde_json::json!({ "to": to }),
                )
                .await?;
            println!(
                "failover of {group} to {to} started (runbook {})",
                v["runbook"]
            );
        }
        Cmd::Failback { group } => {
            let v = c
                .post(&format!("/v1/groups/{group}/failback"), Value::Null)
                .await?;
            println!("failback of {group} started (runbook {})", v["runbook"]);
        }
        Cmd::Switchover { group, to } => {
            let v = c
                .post(
                    &format!("/v1/groups/{group}/switchover"),
                    serde_json::json!({ "to": to }),
                )
                .await?;
            println!(
                "switchover of {group} to {to} started (runbook {})",
                v["runbook"]
            );
        }
        Cmd::Approve { group } => {
            let v = c
                .post(&format!("/v1/groups/{group}/approve"), Value::Null)
                .await?;
            println!("approved; runbook {} started for {group}", v["runbook"]);
        }
        Cmd::Maintenance { group, mode } => {
            let on = matches!(mode, OnOff::On);
            c.post(
                &format!("/v1/groups/{group}/maintenance"),
                serde_json::json!({ "on": on }),
            )
            .await?;
            println!("maintenance {} for {group}", if on { "on" } else { "off" });
        }
        Cmd::Clear { group } => {
            let v = c
                .post(&format!("/v1/groups/{group}/clear"), Value::Null)
                .await?;
            let lifted: Vec<String> = v["cleared"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            if lifted.is_empty() {
                println!("{group}: nothing was blocked");
            } else {
                for l in lifted {
                    println!("{group}: cleared: {l}");
                }
            }
        }
        Cmd::AdoptEpoch { group } => {
            let v = c
                .post(&format!("/v1/groups/{group}/adopt-epoch"), Value::Null)
                .await?;
            println!(
                "{group}: adopted epoch {}; the next move carries a higher one",
                v["epoch"]
            );
        }
        Cmd::Events { json, group, after } => {
            let mut path = format!("/v1/events?after={after}");
            if let Some(g) = group {
                path.push_str(&format!("&group={g}"));
            }
            let v = c.get(&path).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_events(&v));
            }
        }
        _ => bail!("not a client command"),
    }
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The human table of `warden status`.
pub fn render_status(v: &Value) -> String {
    let mut out = String::new();
    if v["isolated"].as_bool() == Some(true) {
        out.push_str("WARNING: the orchestrator is isolated (reaches no site, hears no agent): deciding nothing\n\n");
    }
    for g in v["groups"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "group {}  scheme {}  active {}  (primary {})  epoch {}  state {}{}\n",
            s(&g["name"]),
            s(&g["scheme"]),
            s(&g["active"]),
            s(&g["primary"]),
            s(&g["epoch"]),
            s(&g["phase"]),
            if g["maintenance"].as_bool() == Some(true) {
                "  MAINTENANCE"
            } else {
                ""
            }
        ));
        for a in g["alerts"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  ALERT: {} (fix it, then `warden clear {}`)\n",
                s(a),
                s(&g["name"])
            ));
        }
        if let Some(r) = g["replication"].as_object() {
            let ms = |v: &Value| match v.as_u64() {
                Some(n) => format!("{:.1}s", n as f64 / 1000.0),
                None => "-".into(),
            };
            let mut line = format!("  replication {}: {}", s(&r["plan"]), s(&r["state"]));
            if r["source"].is_string() {
                line.push_str(&format!(" {} → {}", s(&r["source"]), s(&r["target"])));
            }
            line.push_str(&format!(
                "  lag {}  rpo {}",
                ms(&r["lag_ms"]),
                ms(&r["rpo_ms"])
            ));
            if let Some(p) = r["progress"].as_object() {
                line.push_str(&format!(
                    "  pass {}: {} items / {} bytes done, {} items / {} bytes left",
                    s(&r["passes"]),
                    s(&p["items_done"]),
                    s(&p["bytes_done"]),
                    s(&p["items_left"]),
                    s(&p["bytes_left"])
                ));
            }
            out.push_str(&line);
            out.push('\n');
            for e in r["errors"].as_array().into_iter().flatten() {
                out.push_str(&format!("  REPLICATION ERROR: {}\n", s(e)));
            }
            let div = r["divergent"].as_array().cloned().unwrap_or_default();
            if !div.is_empty() {
                out.push_str(&format!(
                    "  divergent items ({}, policy {}):\n",
                    div.len(),
                    s(&r["divergent_policy"])
                ));
                for d in &div {
                    out.push_str(&format!(
                        "    {}  {}  {}{}\n",
                        s(&d["name"]),
                        s(&d["reason"]),
                        s(&d["action"]),
                        d["moved_to"]
                            .as_str()
                            .map(|m| format!(" → {m}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        if let Some(p) = g["pending"].as_object() {
            out.push_str(&format!(
                "  pending: {} to {} — {} (run `warden approve {}`)\n",
                s(&p["kind"]),
                s(&p["to"]),
                s(&p["reason"]),
                s(&g["name"])
            ));
        }
        if let Some(rb) = g["runbook"].as_object() {
            let steps: Vec<String> = rb["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|st| format!("{}:{}", s(&st["name"]), s(&st["status"])))
                .collect();
            out.push_str(&format!(
                "  runbook {} {} {} → {} {}  rto {} ms  [{}]\n",
                s(&rb["id"]),
                s(&rb["kind"]),
                s(&rb["from"]),
                s(&rb["to"]),
                s(&rb["status"]),
                s(&rb["rto_ms"]),
                steps.join(" ")
            ));
        }
        out.push_str(&format!(
            "  {:<12} {:<12} {:<14} {:<9} {:<8} {}\n",
            "SITE", "VERDICT", "VANTAGE", "STATUS", "AGE", "DETAIL"
        ));
        for site in g["sites"].as_array().into_iter().flatten() {
            let verdict = format!(
                "{}{}",
                s(&site["verdict"]),
                if site["confirmed_down"].as_bool() == Some(true) {
                    "*"
                } else {
                    ""
                }
            );
            let mut first = true;
            for row in site["evidence"].as_array().into_iter().flatten() {
                let (n, vd) = if first {
                    (s(&site["name"]), verdict.clone())
                } else {
                    (String::new(), String::new())
                };
                first = false;
                let age = row["age_ms"]
                    .as_u64()
                    .map(|a| format!("{a}ms"))
                    .unwrap_or_else(|| "-".into());
                out.push_str(&format!(
                    "  {:<12} {:<12} {:<14} {:<9} {:<8} {}\n",
                    n,
                    vd,
                    s(&row["vantage"]),
                    s(&row["status"]),
                    age,
                    s(&row["detail"])
                ));
            }
            if first {
                out.push_str(&format!(
                    "  {:<12} {:<12} (no evidence yet)\n",
                    s(&site["name"]),
                    verdict
                ));
            }
        }
        out.push('\n');
    }
    out.push_str("(* = confirmed down)\n");
    out
}

/// The human list of `warden events`.
pub fn render_events(v: &Value) -> String {
    let mut out = String::new();
    for e in v.as_array().into_iter().flatten() {
        let t = e["time_unix_ms"].as_u64().unwrap_or(0);
        let when =
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(t));
        out.push_str(&format!(
            "#{} {} {:<20} group={} site={}  {}\n",
            s(&e["id"]),
            when,
            s(&e["kind"]),
            s(&e["group"]),
            s(&e["site"]),
            s(&e["message"])
        ));
        let rows = e["evidence"].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() {
            out.push_str(&format!(
                "      {:<10} {:<14} {:<9} {}\n",
                "SITE", "VANTAGE", "STATUS", "DETAIL"
            ));
            for r in rows {
                out.push_str(&format!(
                    "      {:<10} {:<14} {:<9} {}\n",
                    s(&r["site"]),
                    s(&r["vantage"]),
                    s(&r["status"]),
                    s(&r["detail"])
                ));
            }
        }
    }
    out
}
