//! `warden fake-noip`: the strict fake No-IP update server of
//! `warden_testkit::noip` as a process, for integration tests whose hosts live
//! in network namespaces. Statistics at `GET /test/stats` (JSON `{requests,
//! good, nochg, errors, ips, log}`), scripted failures at `POST
//! /test/fail?code=911&count=1`. Not part of the product.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;
use warden_testkit::noip::{self, FakeNoip};

/// Which server the fake plays.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum FakeFlavor {
    /// No-IP's codes.
    Noip,
    /// Adds Dyn's `notfqdn`, `numhost`, `dnserr`.
    Dyndns2,
}

/// Serve a fake account `account` (password read from `password_file`)
/// owning `hosts` on `listen` until `shutdown`.
pub(crate) async fn run(
    listen: SocketAddr,
    account: &str,
    password_file: &Path,
    hosts: &[String],
    stats_path: &str,
    flavor: FakeFlavor,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let password = std::fs::read_to_string(password_file)
        .with_context(|| format!("cannot read --password-file {}", password_file.display()))?;
    let password = password.trim();
    if password.is_empty() {
        bail!("--password-file {} is empty", password_file.display());
    }
    if hosts.is_empty() {
        bail!("give at least one --host NAME");
    }
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let fake = FakeNoip::new(account, password, &names)
        .with_flavor(match flavor {
            FakeFlavor::Noip => noip::Flavor::Noip,
            FakeFlavor::Dyndns2 => noip::Flavor::Dyndns2,
        })
        .with_stats_path(stats_path);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(
        listen = %bound,
        stats = fake.stats_path(),
        hosts = %hosts.join(","),
        ?flavor,
        "fake-noip ready"
    );
    noip::serve(listener, fake, async move { shutdown.cancelled().await }).await?;
    Ok(())
}
