//! Builds a group's replication plan for one direction from the config:
//! the [`Replicator`] a source site runs toward its peer, and the
//! [`Resyncer`] a returning site runs against the active peer.

use std::path::PathBuf;
use std::sync::Arc;

use warden_config::{Config, ReplicationConfig, ReplicationPlan, ReplicationSite, Secret};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    CommandLine, CommandPlan, CommandSettings, ContainerSyncSettings, DivergentPolicy,
    NoReplication, PassReport, Replicator, ResyncProgress, Resyncer, RsyncReplicator,
    RsyncResyncer, RsyncSettings, SwiftContainerSync, SwiftReplicator, SwiftReplicatorSettings,
    SwiftResyncer, SwiftResyncerSettings, SwiftSettings, VerifyReport,
};
use crate::AgentError;

fn repl<'a>(config: &'a Config, group: &str) -> Result<&'a ReplicationConfig, AgentError> {
    config
        .groups
        .get(group)
        .and_then(|g| g.replication.as_ref())
        .map(|r| r.get_ref())
        .ok_or_else(|| AgentError::InvalidSetting {
            key: format!("groups.{group}.replication"),
            reason: "the group has no replication plan".into(),
        })
}

fn site<'a>(
    r: &'a ReplicationConfig,
    group: &str,
    site: &str,
) -> Result<&'a ReplicationSite, AgentError> {
    r.sites.get(site).ok_or_else(|| AgentError::InvalidSetting {
        key: format!("groups.{group}.replication.sites.{site}"),
        reason: "missing".into(),
    })
}

fn missing(group: &str, site: &str, key: &str) -> AgentError {
    AgentError::InvalidSetting {
        key: format!("groups.{group}.replication.sites.{site}.{key}"),
        reason: "missing".into(),
    }
}

/// The rsync settings for pushing `from`'s directory into `to`'s module (or,
/// for a resync, pulling `to`'s module into `from`'s directory).
pub fn rsync_settings(
    config: &Config,
    group: &str,
    from: &str,
    to: &str,
) -> Result<RsyncSettings, AgentError> {
    let r = repl(config, group)?;
    let here = site(r, group, from)?;
    let there = site(r, group, to)?;
    let path = here
        .path
        .clone()
        .ok_or_else(|| missing(group, from, "path"))?;
    let (host, port, module) = there
        .rsync_target()
        .ok_or_else(|| missing(group, to, "module"))?;
    let user = there
        .user
        .clone()
        .ok_or_else(|| missing(group, to, "user"))?;
    let pw_ref = there
        .password
        .as_ref()
        .ok_or_else(|| missing(group, to, "password"))?;
    let password = Secret::load(
        &format!("groups.{group}.replication.sites.{to}.password"),
        pw_ref,
    )?;
    let mut s = RsyncSettings::new(path.clone(), host, module, user, password);
    s.port = port;
    s.manifest = Some(manifest_path(here, &path));
    s.quarantine = Some(quarantine_path(here, &path));
    Ok(s)
}

/// `manifest`, or `PATH.warden-manifest.json` beside the directory.
pub fn manifest_path(s: &ReplicationSite, path: &std::path::Path) -> PathBuf {
    s.manifest.clone().unwrap_or_else(|| {
        let mut p = path.as_os_str().to_owned();
        p.push(".warden-manifest.json");
        PathBuf::from(p)
    })
}

/// `quarantine`, or `PATH.warden-quarantine` beside the directory.
pub fn quarantine_path(s: &ReplicationSite, path: &std::path::Path) -> PathBuf {
    s.quarantine.clone().unwrap_or_else(|| {
        let mut p = path.as_os_str().to_owned();
        p.push(".warden-quarantine");
        PathBuf::from(p)
    })
}

/// One site's Swift endpoint from the config (key loaded).
fn swift_settings(
    r: &ReplicationConfig,
    group: &str,
    name: &str,
) -> Result<SwiftSettings, AgentError> {
    let s = site(r, group, name)?;
    let url = s
        .auth_url
        .clone()
        .ok_or_else(|| missing(group, name, "auth_url"))?;
    let user = s.user.clone().ok_or_else(|| missing(group, name, "user"))?;
    let key_ref = s.key.as_ref().ok_or_else(|| missing(group, name, "key"))?;
    let key = Secret::load(
        &format!("groups.{group}.replication.sites.{name}.key"),
        key_ref,
    )?;
    Ok(SwiftSettings::new(url, user, key))
}

/// `manifest`, or `/var/lib/warden/GROUP.SITE.swift-manifest.json`.
fn swift_manifest(r: &ReplicationConfig, group: &str, name: &str) -> PathBuf {
    r.sites
        .get(name)
        .and_then(|s| s.manifest.clone())
        .unwrap_or_else(|| {
            PathBuf::from(format!(
                "/var/lib/warden/{group}.{name}.swift-manifest.json"
            ))
        })
}

fn container_sync(
    r: &ReplicationConfig,
    group: &str,
    here: &str,
    peer: &str,
) -> Result<SwiftContainerSync, AgentError> {
    let realm = r.realm.clone().ok_or_else(|| AgentError::InvalidSetting {
        key: format!("groups.{group}.replication.realm"),
        reason: "missing".into(),
    })?;
    let key_ref = r
        .sync_key
        .as_ref()
        .ok_or_else(|| AgentError::InvalidSetting {
            key: format!("groups.{group}.replication.sync_key"),
            reason: "missing".into(),
        })?;
    let key = Secret::load(&format!("groups.{group}.replication.sync_key"), key_ref)?;
    let cluster = |n: &str| {
        site(r, group, n)?
            .cluster
            .clone()
            .ok_or_else(|| missing(group, n, "cluster"))
    };
    let mut s = ContainerSyncSettings::new(
        swift_settings(r, group, here)?,
        swift_settings(r, group, peer)?,
        realm,
        cluster(here)?,
        cluster(peer)?,
        key,
        r.containers.clone(),
    );
    s.poll = r.interval;
    SwiftContainerSync::new(s)
}

fn command_plan(r: &ReplicationConfig, group: &str, peer: &str) -> CommandPlan {
    let line = |v: &Option<Vec<String>>| {
        CommandLine::Argv(v.clone().unwrap_or_else(|| vec!["true".to_string()]))
    };
    let mut s = CommandSettings::new(
        group,
        peer,
        line(&r.start),
        line(&r.stop),
        line(&r.resync),
        line(&r.verify),
    );
    s.lag = r.lag.clone().map(CommandLine::Argv);
    s.timeout = r.resync_timeout;
    CommandPlan::new(s)
}

/// Plan `none` (a stretched cluster): nothing to fetch, nothing differs.
struct NoResync;

#[async_trait]
impl Resyncer for NoResync {
    async fn pass(
        &self,
        _policy: DivergentPolicy,
        _cancel: CancellationToken,
        _progress: Option<watch::Sender<ResyncProgress>>,
    ) -> Result<PassReport, AgentError> {
        Ok(PassReport::default())
    }

    async fn verify(&self, _except: &[String]) -> Result<VerifyReport, AgentError> {
        Ok(VerifyReport::default())
    }
}

/// The continuous replicator `site` → `peer`.
pub fn replicator(
    config: &Config,
    group: &str,
    site: &str,
    peer: &str,
) -> Result<Arc<dyn Replicator>, AgentError> {
    let r = repl(config, group)?;
    match r.plan {
        ReplicationPlan::Rsync => Ok(Arc::new(RsyncReplicator::new(rsync_settings(
            config, group, site, peer,
        )?))),
        ReplicationPlan::Swift => {
            let mut s = SwiftReplicatorSettings::new(
                swift_settings(r, group, site)?,
                swift_settings(r, group, peer)?,
                r.containers.clone(),
                swift_manifest(r, group, site),
            );
            s.interval = r.interval;
            s.concurrency = r.concurrency;
            Ok(Arc::new(SwiftReplicator::new(s)?))
        }
        ReplicationPlan::SwiftContainerSync => Ok(Arc::new(container_sync(r, group, site, peer)?)),
        ReplicationPlan::None => Ok(Arc::new(NoReplication)),
        ReplicationPlan::Command => Ok(Arc::new(command_plan(r, group, peer))),
    }
}

/// The resyncer that brings `site` up to the active `peer`.
pub fn resyncer(
    config: &Config,
    group: &str,
    site: &str,
    peer: &str,
) -> Result<Arc<dyn Resyncer>, AgentError> {
    let r = repl(config, group)?;
    match r.plan {
        // The local directory is `site`'s; the module is `peer`'s.
        ReplicationPlan::Rsync => Ok(Arc::new(RsyncResyncer::new(rsync_settings(
            config, group, site, peer,
        )?)?)),
        // Container sync has no manifest of its own: the failback copies
        // through the API like the swift plan, then the direction flips.
        ReplicationPlan::Swift | ReplicationPlan::SwiftContainerSync => {
            let mut s = SwiftResyncerSettings::new(
                swift_settings(r, group, site)?,
                swift_settings(r, group, peer)?,
                r.containers.clone(),
                swift_manifest(r, group, site),
            );
            s.concurrency = r.concurrency;
            Ok(Arc::new(SwiftResyncer::new(s)?))
        }
        ReplicationPlan::None => Ok(Arc::new(NoResync)),
        ReplicationPlan::Command => Ok(Arc::new(command_plan(r, group, peer))),
    }
}
