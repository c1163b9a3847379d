//! The Swift plans' side of the config: a site's endpoint and login, the
//! copier's manifest, the container-sync key and sites, and the `swift`
//! plan's active fence.

use super::*;

/// One site's Swift endpoint from the config (key, password or secret loaded).
pub(super) fn swift_settings(
    r: &ReplicationConfig,
    group: &str,
    name: &str,
) -> Result<SwiftSettings, AgentError> {
    let s = site(r, group, name)?;
    if let Some(k) = &s.keystone {
        let key = format!("groups.{group}.replication.sites.{name}.keystone");
        return Ok(SwiftSettings::keystone(KeystoneSettings::from_config(
            &key, k,
        )?));
    }
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
pub(super) fn swift_manifest(r: &ReplicationConfig, group: &str, name: &str) -> PathBuf {
    r.sites
        .get(name)
        .and_then(|s| s.manifest.clone())
        .unwrap_or_else(|| {
            PathBuf::from(format!(
                "/var/lib/warden/{group}.{name}.swift-manifest.json"
            ))
        })
}

/// The configured `sync_key` of a `swift-container-sync` group.
fn sync_key(r: &ReplicationConfig, group: &str) -> Result<Secret, AgentError> {
    let key_ref = r
        .sync_key
        .as_ref()
        .ok_or_else(|| AgentError::InvalidSetting {
            key: format!("groups.{group}.replication.sync_key"),
            reason: "missing".into(),
        })?;
    Ok(Secret::load(
        &format!("groups.{group}.replication.sync_key"),
        key_ref,
    )?)
}

pub(super) fn container_sync(
    r: &ReplicationConfig,
    group: &str,
    here: &str,
    peer: &str,
    epoch: u64,
    order_stands: Option<OrderCheck>,
) -> Result<SwiftContainerSync, AgentError> {
    let realm = r.realm.clone().ok_or_else(|| AgentError::InvalidSetting {
        key: format!("groups.{group}.replication.realm"),
        reason: "missing".into(),
    })?;
    let key = sync_key(r, group)?;
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
    )
    .at_epoch(group, epoch);
    s.poll = r.interval;
    s.order_stands = order_stands;
    // the manifest this site's failback resync reads
    s.manifest = Some(swift_manifest(r, group, here));
    SwiftContainerSync::new(s)
}

/// `site`'s own side of a `swift-container-sync` group (what a demote, a
/// stop or a promote does to its containers); `None` for the other plans.
pub fn container_sync_site(
    config: &Config,
    group: &str,
    site: &str,
) -> Result<Option<ContainerSyncSite>, AgentError> {
    let r = repl(config, group)?;
    if r.plan != ReplicationPlan::SwiftContainerSync {
        return Ok(None);
    }
    ContainerSyncSite::new(
        swift_settings(r, group, site)?,
        sync_key(r, group)?,
        group,
        r.containers.clone(),
    )
    .map(Some)
}

/// `site`'s own side of a `swift` group's fence (what a promote sets on
/// its containers); `None` for the other plans.
pub fn active_fence(
    config: &Config,
    group: &str,
    site: &str,
) -> Result<Option<ActiveFence>, AgentError> {
    let r = repl(config, group)?;
    if r.plan != ReplicationPlan::Swift {
        return Ok(None);
    }
    ActiveFence::new(
        swift_settings(r, group, site)?,
        group,
        site,
        r.containers.clone(),
    )
    .map(Some)
}
