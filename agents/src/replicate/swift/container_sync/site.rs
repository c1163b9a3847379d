//! The fence of the `swift-container-sync` plan and one site's side of it:
//! [`epoch_key`] (the sync key of an order's epoch), the container header
//! writes (`set_key`, `remove_sync_to`) and [`ContainerSyncSite`], what a
//! promote, a demote or a stop does to this site's containers.

use super::*;

/// The `X-Container-Sync-Key` warden sets on `group`'s containers for an
/// order of `epoch`: the lower-case hex HMAC-SHA256 of
/// `warden container-sync epoch=EPOCH group=GROUP`, keyed with the
/// configured `sync_key` (`printf 'warden container-sync epoch=%s group=%s'
/// EPOCH GROUP | openssl dgst -sha256 -hmac "$SYNC_KEY"` gives the same).
/// A secret: never logged.
pub fn epoch_key(sync_key: &Secret, group: &str, epoch: u64) -> Secret {
    use ring::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, sync_key.expose().as_bytes());
    let tag = hmac::sign(
        &key,
        format!("warden container-sync epoch={epoch} group={group}").as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Secret::registered(hex)
}

pub(super) fn header(name: &str, value: &str) -> BTreeMap<String, String> {
    [(name.to_string(), value.to_string())].into()
}

/// A missing container: nothing there to push from or to receive.
fn is_missing(e: &AgentError) -> bool {
    matches!(e, AgentError::SwiftStatus { status: 404, .. })
}

/// Sets `key` as `X-Container-Sync-Key` on those of `containers` that
/// exist at `client`'s cluster, leaving `X-Container-Sync-To` as it is.
pub(super) async fn set_key(
    client: &SwiftClient,
    containers: &[String],
    key: &Secret,
) -> Result<(), AgentError> {
    let h = header("x-container-sync-key", key.expose());
    for c in containers {
        match client.post_container(c, &h).await {
            Err(e) if !is_missing(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Removes `X-Container-Sync-To` from every one of `containers` (a missing
/// container has none); tries them all, then answers the first failure.
pub(super) async fn remove_sync_to(
    client: &SwiftClient,
    containers: &[String],
) -> Result<(), AgentError> {
    let h = header("x-remove-container-sync-to", "x");
    let mut first = None;
    for c in containers {
        match client.post_container(c, &h).await {
            Err(e) if !is_missing(&e) => {
                warn!(container = %c, cause = %e, "cannot remove X-Container-Sync-To here");
                first.get_or_insert(e);
            }
            _ => {}
        }
    }
    first.map_or(Ok(()), Err)
}

/// One site's side of the `swift-container-sync` plan, needing nothing
/// from the peer: what a demote, a stop or a promote does to this site's
/// containers whatever the agent remembers (after a restart it remembers
/// no role).
pub struct ContainerSyncSite {
    client: SwiftClient,
    sync_key: Secret,
    group: String,
    containers: Vec<String>,
}

impl ContainerSyncSite {
    /// This site's cluster, the configured `sync_key`, the group and its placement list.
    pub fn new(
        local: SwiftSettings,
        sync_key: Secret,
        group: impl Into<String>,
        containers: Vec<String>,
    ) -> Result<Self, AgentError> {
        Ok(ContainerSyncSite {
            client: SwiftClient::new(local)?,
            sync_key,
            group: group.into(),
            containers,
        })
    }

    /// Removes `X-Container-Sync-To` from this site's containers: its
    /// container-sync daemon pushes nothing more (a demote, a stop).
    pub async fn remove_sync_to(&self) -> Result<(), AgentError> {
        remove_sync_to(&self.client, &self.containers).await
    }

    /// Sets the key of `epoch` ([`epoch_key`]) on this site's containers,
    /// `X-Container-Sync-To` untouched: from now on they refuse what a site
    /// keyed for another epoch pushes (a promote at `epoch`).
    pub async fn fence(&self, epoch: u64) -> Result<(), AgentError> {
        let key = epoch_key(&self.sync_key, &self.group, epoch);
        set_key(&self.client, &self.containers, &key).await
    }
}
