//! Serving subcommands (`orchestrator`, `agent`, `frontend`, ...): load and
//! validate the config, resolve the settings, run until a signal; a config
//! or setup error exits with status 64 before anything is bound.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use warden_config::{Config, ConfigError};

use super::args::{Cli, Cmd};
use super::operator::run_client;
use crate::client::Client;
use crate::{shutdown_on_signal, EXIT_CONFIG};

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

/// The file `check-config` checks: FILE, else `--config` (or WARDEN_CONFIG).
/// FILE and a `--config` naming another file are refused (exit 64); FILE
/// wins over WARDEN_CONFIG, as the command line over the environment.
fn check_config_file(
    file: Option<PathBuf>,
    config: Option<PathBuf>,
    config_from_env: bool,
) -> Result<PathBuf, ExitCode> {
    match (file, config) {
        (Some(f), Some(c)) if !config_from_env && !same_file(&f, &c) => {
            Err(config_exit(format_args!(
                "check-config: FILE {} and --config {} are different files; give one of them",
                f.display(),
                c.display()
            )))
        }
        (Some(f), _) | (None, Some(f)) => Ok(f),
        (None, None) => Err(config_exit(
            "check-config: FILE, --config FILE or WARDEN_CONFIG is required",
        )),
    }
}

/// The same path, or two paths to one existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// `check-config`: every problem of `file` on stdout, exit 64 if any.
fn check_config(file: &Path) -> ExitCode {
    match warden_config::check_deployment(file) {
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
    }
}

pub(crate) async fn dispatch(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Orchestrator { node, .. } => {
            let cfg = match load_config(cli.config.as_deref()) {
                Ok(c) => c,
                Err(c) => return c,
            };
            if let Some(n) = &node {
                if let Err(e) = warden_orchestrator::node_known(&cfg, n) {
                    return config_exit(e);
                }
            }
            warden_config::child::configure(&cfg, &cfg.orchestrator.pass_env);
            let settings = match warden_orchestrator::OrchestratorSettings::from_config(cfg)
                .and_then(|s| match &node {
                    Some(n) => s.as_node(n),
                    None => Ok(s),
                }) {
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
            if let Some(sc) = cfg.sites.get(&site) {
                warden_config::child::configure(&cfg, &sc.pass_env);
            }
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
        Cmd::CheckConfig { file } => {
            let file = match check_config_file(file, cli.config, cli.config_from_env) {
                Ok(f) => f,
                Err(c) => return c,
            };
            check_config(&file)
        }
        Cmd::RsyncGate {
            site,
            ssh: false,
            early: false,
        } => super::gate::rsync_gate(cli.config.as_deref(), &site),
        Cmd::RsyncGate {
            site,
            ssh: false,
            early: true,
        } => super::gate::early_gate(cli.config.as_deref(), &site),
        Cmd::RsyncGate {
            site, ssh: true, ..
        } => super::gate::ssh_gate(cli.config.as_deref(), &site),
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
        Cmd::EchoServer {
            listen,
            text,
            served_by,
        } => {
            let token = CancellationToken::new();
            shutdown_on_signal(token.clone());
            match crate::echo::serve(listen, text, served_by, token, None).await {
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
