//! Serving subcommands (`orchestrator`, `agent`, `frontend`, ...): load and
//! validate the config, resolve the settings, run until a signal; a config
//! or setup error exits with status 64 before anything is bound.

use std::path::Path;
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

pub(crate) async fn dispatch(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Orchestrator { node, .. } => {
            let cfg = match load_config(cli.config.as_deref()) {
                Ok(c) => c,
                Err(c) => return c,
            };
            warden_config::child::set_pass_env(&cfg.orchestrator.pass_env);
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
                warden_config::child::set_pass_env(&sc.pass_env);
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
