//! `warden`: the one binary. Parses the command line, starts tracing, loads
//! and validates the config, and hands over to a library's `run(config, shutdown)`.

mod cli;
mod client;
mod demo;
mod echo;
mod fake_noip;
mod probe;

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Cmd};

/// Exit status for configuration errors (EX_CONFIG-like, as sysexits' EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// The log's writer: every event, formatted whole, goes through the masking
/// of loaded secrets (and their encoded forms) that children's output gets
/// ([`warden_config::child::mask_bytes`]) before it reaches stderr. What
/// warden writes itself never holds a secret; this is for what its
/// dependencies write at debug and trace levels — tungstenite's handshake
/// logs the request with its `Authorization: Bearer` header at trace.
struct MaskedStderr;

impl std::io::Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::Write::write_all(
            &mut std::io::stderr(),
            &warden_config::child::mask_bytes(buf),
        )?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut std::io::stderr())
    }
}

fn init_tracing(quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("WARDEN_LOG_FORMAT").is_ok_and(|v| v == "json");
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| MaskedStderr)
        .with_target(false);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// First SIGINT/SIGTERM cancels `token` (graceful); a second one exits at
/// once. SIGHUP — the reload of TLS files, and what a certificate renewal,
/// a `systemctl reload` or a log rotation sends to every process — ends
/// none: caught from here on, whether or not the process has TLS to read
/// again (`warden_serve::catch_hangup`).
fn shutdown_on_signal(token: CancellationToken) {
    let _ = warden_serve::catch_hangup();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(cause = %e, "cannot install SIGTERM handler");
                    return;
                }
            };
        for n in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            if n == 0 {
                tracing::info!("shutting down (signal again to force)");
                token.cancel();
            } else {
                std::process::exit(130);
            }
        }
    });
}

/// One allocator for every process warden runs (orchestrator, agent,
/// frontend): fewer cycles per report than glibc's under many small
/// allocations (see BENCHMARKS.md, "Load").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse_args();
    let quiet =
        matches!(cli.cmd, Cmd::Demo { .. } | Cmd::Probe { json: true, .. }) || cli.cmd.is_client();
    init_tracing(quiet);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Cmd::Orchestrator { threads, .. } = &cli.cmd {
        builder.worker_threads(usize::from(*threads));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(cli::dispatch(cli))
}
