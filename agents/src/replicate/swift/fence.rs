//! The `swift` plan's fence: a copier writes into a cluster only while no
//! newer active site says the cluster is its own.
//!
//! The copier runs at the active site with the peer's credentials; the
//! peer's Swift cannot tell its requests from anyone's. A site failed away
//! from that never heard its demote (cut off from the orchestrator, still
//! reaching the peer's Swift) would go on copying its writes and deletes
//! into the new active site. So:
//!
//! - a promote at epoch N sets [`ACTIVE_HEADER`]
//!   (`X-Container-Meta-Warden-Active: epoch=N site=S`) on every placement
//!   container of its own cluster and on the group's fence container
//!   ([`fence_container`], `warden-fence.GROUP`, holding no object)
//!   ([`ActiveFence::set`]; a container it lacks is created with it),
//!   needing nothing from the peer. The fence container is what keeps the
//!   mark when users of the new active site delete a placement container
//!   (the mark on it goes with it): the copier reads it beside the
//!   placement containers, so a deposed copier neither re-creates the
//!   container they deleted nor copies its stale objects into it;
//! - the copier knows the epoch of the start order it was built for
//!   ([`SwiftReplicatorSettings::order`](super::SwiftReplicatorSettings::order)).
//!   Every round reads the fence from the container HEADs it makes anyway
//!   on both sides (before it creates or updates a container there), and
//!   once more (a HEAD per container on each side, none per object) before
//!   it copies or deletes anything. A destination fence of a newer epoch,
//!   or of the same epoch naming another site than the copier's own,
//!   stops the round with nothing written ([`AgentError::Fenced`]), and the
//!   copier for good: its order is stale. The one exception: the same
//!   epoch when the copier's own containers are fenced at it too (a move
//!   rolled back before its switch promotes the old active site again at
//!   the move's epoch: [`CopierOrder::refusal`]). The status says why
//!   until a start at a newer epoch replaces it. A fence warden cannot
//!   read stops it too.
//! - a fence of an older epoch is superseded, not removed: a demote or a
//!   start leaves a site's own fence as it is, and the copier of a later
//!   epoch (a failback's, toward the site that was promoted long ago) goes
//!   ahead. Epochs only grow, so comparing them is enough.
//!
//! The header is never replicated ([`ContainerInfo::replicated`] leaves it
//! out, so the copier neither copies nor removes it, in either direction,
//! and neither does the failback's resync).
//!
//! A promote during a round's copies and deletes: the round reads the
//! destination's fence again while they run (a HEAD per container there,
//! this site's own as read before them) before its first delete, before
//! more than [`FENCE_RECHECK_OPS`](super::FENCE_RECHECK_OPS) ops started
//! since the last read, and every
//! [`FENCE_RECHECK_EVERY`](super::FENCE_RECHECK_EVERY) even while no op
//! starts; a refusal ends the round at once (no op starts, those in flight
//! are dropped) and the copier for good. The bound after a promote: at
//! most that many ops start, within that time (plus one read), and no
//! delete of a round runs when the mark was there before its first delete.

use std::collections::BTreeMap;

use tracing::info;

use super::client::{ContainerInfo, SwiftClient, SwiftSettings};
use crate::AgentError;

/// The container metadata header of the fence (lower case, as sent).
pub const ACTIVE_HEADER: &str = "x-container-meta-warden-active";

/// What a fence says: `site` became active at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveMark {
    pub epoch: u64,
    pub site: String,
}

impl ActiveMark {
    /// `epoch=N site=S`, the header's value.
    pub fn value(&self) -> String {
        format!("epoch={} site={}", self.epoch, self.site)
    }

    /// The value read back; `None` when it is not one warden wrote.
    pub fn parse(v: &str) -> Option<ActiveMark> {
        let (mut epoch, mut site) = (None, None);
        for part in v.split_whitespace() {
            match part.split_once('=')? {
                ("epoch", e) => epoch = Some(e.parse().ok()?),
                ("site", s) if !s.is_empty() => site = Some(s.to_string()),
                _ => return None,
            }
        }
        Some(ActiveMark {
            epoch: epoch?,
            site: site?,
        })
    }
}

/// The container of `group`'s fence at each site: the promote's mark on
/// a container users have no reason to touch (it holds no object; the
/// copier neither lists nor copies it), so the fence outlives a placement
/// container deleted at the active site. `None` for an empty group name
/// (a copier built without an order).
pub fn fence_container(group: &str) -> Option<String> {
    (!group.is_empty()).then(|| format!("warden-fence.{group}"))
}

/// The order a copier was built for: its group, its own site and peer,
/// the epoch of the start order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopierOrder {
    pub group: String,
    pub site: String,
    pub peer: String,
    pub epoch: u64,
}

impl CopierOrder {
    /// Why this copier must write nothing into the destination whose
    /// `container` answered `info` (`None`: it may); `own` is the same
    /// container at the source (this site), `dest` names the cluster for
    /// the message.
    ///
    /// Refused: a fence of a newer epoch than the order's; one of the
    /// order's epoch naming another site, unless this site's own container
    /// is fenced at that epoch too — both sites promoted at one epoch
    /// happens only when a failback or switchover that promoted its target
    /// is rolled back before its switch (the old active site promoted again
    /// at the move's epoch, DESIGN §4): the site promoted again is the
    /// active one, and it is the one with a start order at that epoch.
    pub fn refusal(
        &self,
        container: &str,
        info: &ContainerInfo,
        own: Option<&ContainerInfo>,
        dest: &str,
    ) -> Option<String> {
        let value = info.get(ACTIVE_HEADER)?;
        let me = if self.site.is_empty() {
            "this site".to_string()
        } else {
            format!("site {}", self.site)
        };
        let Some(mark) = ActiveMark::parse(value) else {
            return Some(format!(
                "container {container} at {dest} carries a fence warden cannot read \
                 (X-Container-Meta-Warden-Active: {value:?}): the copier of {me} (epoch {}) \
                 writes nothing there; fix or remove the header",
                self.epoch
            ));
        };
        let promoted_again = || {
            own.and_then(|o| o.get(ACTIVE_HEADER))
                .and_then(ActiveMark::parse)
                .is_some_and(|m| m.epoch == self.epoch && m.site == self.site)
        };
        let newer = mark.epoch > self.epoch
            || (mark.epoch == self.epoch && mark.site != self.site && !promoted_again());
        newer.then(|| {
            format!(
                "the destination {} is active at epoch {} (promoted; container {container} at {dest}): \
                 the copier of {me} (epoch {}) stops, nothing copied or deleted there; \
                 a start at a newer epoch replaces it",
                mark.site, mark.epoch, self.epoch
            )
        })
    }
}

/// One site's own side of the `swift` plan's fence (no peer needed): what
/// a promote does to its containers.
pub struct ActiveFence {
    client: SwiftClient,
    site: String,
    /// The placement containers, then the group's fence container.
    containers: Vec<String>,
}

impl ActiveFence {
    /// This site's cluster, the group, the site's name and the group's
    /// placement list.
    pub fn new(
        local: SwiftSettings,
        group: &str,
        site: impl Into<String>,
        mut containers: Vec<String>,
    ) -> Result<Self, AgentError> {
        containers.extend(fence_container(group));
        Ok(ActiveFence {
            client: SwiftClient::new(local)?,
            site: site.into(),
            containers,
        })
    }

    /// Sets `epoch=EPOCH site=SITE` on every placement container here and
    /// on the group's fence container (creating a missing one with it):
    /// from now on a copier of an older order writes nothing into this
    /// cluster, even into a placement container deleted and created again.
    /// Tries them all, then answers the first failure.
    pub async fn set(&self, epoch: u64) -> Result<(), AgentError> {
        let mark = ActiveMark {
            epoch,
            site: self.site.clone(),
        };
        let h: BTreeMap<String, String> = [(ACTIVE_HEADER.to_string(), mark.value())].into();
        let mut first = None;
        for c in &self.containers {
            let r = match self.client.post_container(c, &h).await {
                Err(AgentError::SwiftStatus { status: 404, .. }) => {
                    self.client.put_container(c, &h).await
                }
                r => r,
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        if let Some(e) = first {
            return Err(e);
        }
        info!(epoch, site = %self.site, containers = self.containers.len(), "swift containers fenced: this site is active");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(v: Option<&str>) -> ContainerInfo {
        let mut headers = BTreeMap::new();
        headers.insert("x-container-meta-owner".to_string(), "bob".to_string());
        if let Some(v) = v {
            headers.insert(ACTIVE_HEADER.to_string(), v.to_string());
        }
        ContainerInfo { headers }
    }

    fn order(site: &str, epoch: u64) -> CopierOrder {
        CopierOrder {
            group: "web".into(),
            site: site.into(),
            peer: if site == "a" { "b" } else { "a" }.into(),
            epoch,
        }
    }

    #[test]
    fn the_mark_reads_back_what_it_writes() {
        let m = ActiveMark {
            epoch: 7,
            site: "b".into(),
        };
        assert_eq!(m.value(), "epoch=7 site=b");
        assert_eq!(ActiveMark::parse(&m.value()), Some(m));
        assert_eq!(
            ActiveMark::parse(" site=b  epoch=7 ").map(|m| m.epoch),
            Some(7)
        );
        for bad in [
            "",
            "epoch=7",
            "site=b",
            "epoch=x site=b",
            "epoch=7 site=",
            "epoch=7 site=b extra",
            "epoch=-1 site=b",
        ] {
            assert_eq!(ActiveMark::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_copier_stops_at_a_fence_of_its_epoch_or_newer() {
        let dest = "the Swift cluster at http://b";
        let a1 = order("a", 1);
        // no fence, or the peer's own older promote: go ahead
        assert_eq!(a1.refusal("c", &info(None), None, dest), None);
        assert_eq!(
            a1.refusal("c", &info(Some("epoch=0 site=b")), None, dest),
            None
        );
        // the destination promoted at a newer epoch
        let why = a1
            .refusal("c", &info(Some("epoch=2 site=b")), None, dest)
            .unwrap();
        assert!(
            why.contains("the destination b is active at epoch 2 (promoted")
                && why.contains("the copier of site a (epoch 1) stops")
                && why.contains("container c at the Swift cluster at http://b"),
            "{why}"
        );
        // the same epoch naming another site: two active sites cannot be
        assert!(a1
            .refusal("c", &info(Some("epoch=1 site=b")), None, dest)
            .is_some());
        // ... unless this site was promoted again at that epoch (a move
        // rolled back before its switch); an older own fence does not count
        let own = |v| Some(info(Some(v)));
        let dest_b1 = info(Some("epoch=1 site=b"));
        assert_eq!(
            a1.refusal("c", &dest_b1, own("epoch=1 site=a").as_ref(), dest),
            None
        );
        for other in ["epoch=0 site=a", "epoch=1 site=b", "garbage"] {
            assert!(
                a1.refusal("c", &dest_b1, own(other).as_ref(), dest)
                    .is_some(),
                "{other}"
            );
        }
        // a newer fence is refused whatever this site's own says
        assert!(a1
            .refusal(
                "c",
                &info(Some("epoch=2 site=b")),
                own("epoch=1 site=a").as_ref(),
                dest
            )
            .is_some());
        // the same epoch naming this site (one cluster seen from both sides)
        assert_eq!(
            a1.refusal("c", &info(Some("epoch=1 site=a")), None, dest),
            None
        );
        // a newer one naming this site all the same
        assert!(a1
            .refusal("c", &info(Some("epoch=2 site=a")), None, dest)
            .is_some());
        // failback: b's copier at epoch 3 into a, which was promoted at 1
        let b3 = order("b", 3);
        assert_eq!(
            b3.refusal("c", &info(Some("epoch=1 site=a")), None, dest),
            None
        );
        assert_eq!(
            b3.refusal("c", &info(Some("epoch=2 site=b")), None, dest),
            None
        );
        // unreadable: refused, saying so
        let why = b3.refusal("c", &info(Some("garbage")), None, dest).unwrap();
        assert!(
            why.contains("cannot read") && why.contains("garbage"),
            "{why}"
        );
    }

    #[test]
    fn each_group_has_its_fence_container() {
        assert_eq!(fence_container("web").as_deref(), Some("warden-fence.web"));
        assert_eq!(fence_container(""), None);
    }

    #[test]
    fn the_fence_is_never_replicated() {
        let i = info(Some("epoch=2 site=b"));
        let r = i.replicated();
        assert!(!r.contains_key(ACTIVE_HEADER), "{r:?}");
        assert_eq!(
            r.get("x-container-meta-owner").map(String::as_str),
            Some("bob")
        );
    }
}
