//! Builds a group's replication plan for one direction from the config:
//! the [`Replicator`] a source site runs toward its peer, and the
//! [`Resyncer`] a returning site runs against the active peer.

use std::path::PathBuf;
use std::sync::Arc;

use warden_config::{Config, ReplicationConfig, ReplicationPlan, ReplicationSite, Secret};

use super::{Replicator, Resyncer, RsyncReplicator, RsyncResyncer, RsyncSettings};
use crate::replication::unavailable;
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
        other => Err(unavailable(other.as_str())),
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
        other => Err(unavailable(other.as_str())),
    }
}
