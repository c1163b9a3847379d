//! The placement containers on both clusters: the placement list checked,
//! one HEAD of each per cluster, and each made to exist on both with the
//! replicated headers (metadata, ACLs) of the side that wins.

use std::collections::BTreeMap;

use tracing::{debug, info};

use super::{names, quarantine_container, ContainerInfo, SwiftClient};
use crate::AgentError;

/// Refuses a placement list with a name [`names`] does not accept (also as
/// the base of a quarantine container).
pub(crate) fn check_containers(containers: &[String]) -> Result<(), AgentError> {
    for c in containers {
        let reason = names::container_problem(c).map(str::to_string).or_else(|| {
            names::container_problem(&quarantine_container(c))
                .map(|r| format!("its quarantine container (NAME.warden-quarantine) is {r}"))
        });
        if let Some(reason) = reason {
            return Err(AgentError::InvalidSetting {
                key: "containers".into(),
                reason: format!(
                    "{:?} is not a usable container name: {reason}",
                    names::display(c)
                ),
            });
        }
    }
    Ok(())
}

/// Both clusters' headers of each of `containers` (`None`: missing there).
pub(crate) type ContainerHeads = Vec<(String, Option<ContainerInfo>, Option<ContainerInfo>)>;

/// One HEAD of every container of `containers` on each cluster.
pub(crate) async fn head_containers(
    a: &SwiftClient,
    b: &SwiftClient,
    containers: &[String],
) -> Result<ContainerHeads, AgentError> {
    let mut out = Vec::with_capacity(containers.len());
    for c in containers {
        let (ha, hb) = tokio::try_join!(a.head_container(c), b.head_container(c))?;
        out.push((c.clone(), ha, hb));
    }
    Ok(out)
}

/// Makes every container of `containers` exist on both clusters; `a`'s
/// replicated headers (metadata, ACLs) win, a container only `b` holds is
/// created at `a` with `b`'s headers.
pub(crate) async fn ensure_containers(
    a: &SwiftClient,
    b: &SwiftClient,
    containers: &[String],
) -> Result<(), AgentError> {
    let heads = head_containers(a, b, containers).await?;
    reconcile_containers(a, b, heads).await
}

/// The containers of `containers` that `a` holds made to exist at `b`
/// with `a`'s replicated headers; nothing is written at `a`, and a
/// container `a` lacks stays as it is at `b` (listed empty at `a`). The
/// failback's resync: `a` the active peer, whose containers only its own
/// users and its copier change — a container they deleted there must not
/// come back from the returning site, with that site's stale ACLs.
pub(crate) async fn follow_containers(
    a: &SwiftClient,
    b: &SwiftClient,
    containers: &[String],
) -> Result<(), AgentError> {
    let heads = head_containers(a, b, containers)
        .await?
        .into_iter()
        .filter(|(_, ha, _)| ha.is_some())
        .collect();
    reconcile_containers(a, b, heads).await
}

/// [`ensure_containers`] from the HEADs already made ([`head_containers`]).
pub(crate) async fn reconcile_containers(
    a: &SwiftClient,
    b: &SwiftClient,
    heads: ContainerHeads,
) -> Result<(), AgentError> {
    for (c, ha, hb) in heads {
        let c = c.as_str();
        match (ha, hb) {
            (None, None) => {
                a.put_container(c, &BTreeMap::new()).await?;
                b.put_container(c, &BTreeMap::new()).await?;
                info!(container = %c, "created container on both clusters");
            }
            (Some(ia), None) => {
                b.put_container(c, &ia.replicated()).await?;
                info!(container = %c, "created container at the peer cluster");
            }
            (None, Some(ib)) => {
                a.put_container(c, &ib.replicated()).await?;
                info!(container = %c, "container found only at the peer, created here too");
            }
            (Some(ia), Some(ib)) => {
                let want = ia.replicated();
                let have = ib.replicated();
                if want != have {
                    let mut h = want.clone();
                    for k in have.keys().filter(|k| !want.contains_key(*k)) {
                        let rest = k.strip_prefix("x-").unwrap_or(k);
                        h.insert(format!("x-remove-{rest}"), "x".into());
                    }
                    b.post_container(c, &h).await?;
                    debug!(container = %c, "container metadata copied to the peer cluster");
                }
            }
        }
    }
    Ok(())
}
